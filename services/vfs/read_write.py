"""Reading and writing open files (fs/read_write.c, fs/readdir.c, fs/stat.c, drivers/char/mem.c).

read, write, lseek, getdents and fstat on an open file: a tmpfs file's sparse
pages (with the tmpfs's page count: ENOSPC when full), the console, /dev/null
and /dev/zero; a pipe goes to pipe.py, a /proc file back to the kernel.
"""

from __future__ import annotations

import stat as st
from typing import Any

from ukernel import abi
from ukernel.ipc.service import Call, changes, op, touches

from . import footprint as fp
from .inode import MAX_FILE_SIZE, MAX_LFS_FILESIZE, ZERO_READ_MAX, Inode

#: What a console write may change (n_tty_write): the bytes shown and the line discipline.
CONSOLE_WRITE = ("output", "tty")


def write_changes(vfs: Any, args: dict) -> tuple[str, ...] | None:
    """What a write may change, for state_digest: a console write only what the console
    shows (nearly every syscall of a traced program writes there), any other anything."""
    fst = vfs.files_structs.get(args.get("files"))
    entry = fst.fds.get(args.get("fd")) if fst is not None else None
    file = vfs.files.get(entry[0]) if entry is not None else None
    if file is not None and file.inode.device == "console" and file.inode.pipe is None and file.inode.proc is None:
        return CONSOLE_WRITE
    return None


class ReadWriteOps:
    """The vfs's read/write ops (a part of VfsService)."""

    @op
    @touches(fp.read)
    async def read(self, req: Call, files: int, fd: int, n: int, pgrp: int | None = None) -> object:
        """``pgrp``: the caller's process group when the console is its controlling terminal
        (job control, tty.py)."""
        file = self._file(self._fst(files), fd)
        if n < 0:
            raise abi.kernel_error(abi.EINVAL, "read count must not be negative")
        if not file.readable:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for reading")
        inode = file.inode
        if inode.is_dir:
            raise abi.kernel_error(abi.EISDIR, f"fd {fd} is a directory (use getdents)")
        if inode.nsfs:
            raise abi.kernel_error(abi.EINVAL, f"fd {fd} is a namespace ({inode.nsfs}): it has no data")
        if inode.pipe is not None:
            return await self._pipe_read(file, n)
        if inode.device == "console":
            return self._tty_read(file, n, pgrp)
        if inode.device:
            return self._device_read(inode.device, n)
        data = inode.data.read(file.pos, n)
        file.pos += len(data)
        return data

    def _device_read(self, device: str, n: int) -> bytes:
        if device == "zero":  # read_iter_zero goes a page at a time and may stop early: one reply's worth
            return bytes(min(n, ZERO_READ_MAX))
        return b""  # /dev/null

    @op
    @touches(fp.write)
    @changes(write_changes)
    async def write(self, req: Call, files: int, fd: int, data: Any, pgrp: int | None = None) -> object:
        file = self._file(self._fst(files), fd)
        if not isinstance(data, bytes):  # checked here, not at dispatch: a bad buffer is EFAULT, as in Linux
            raise abi.kernel_error(abi.EFAULT, "write takes bytes")
        if not file.writable:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for writing")
        inode = file.inode
        if inode.pipe is not None:
            return await self._pipe_write(file, data)
        if inode.proc is not None:  # a writable /proc file: the kernel takes the bytes
            return {"proc": inode.proc}
        if inode.device == "console":
            return self._tty_write(data, pgrp)
        if inode.device:
            return len(data)
        if file.flags & abi.O_APPEND:
            file.pos = len(inode.data)
        data = data[: self._write_limit(file.pos, fd)]
        self._charge(inode.data.new_pages(file.pos, len(data)) * abi.PAGE_SIZE)
        inode.data.write(file.pos, data)
        file.pos += len(data)
        self._touch(inode, 1, 2)
        return len(data)

    def _charge(self, grow: int) -> None:
        """shmem_acct_blocks: a file may grow only while the tmpfs has room (ENOSPC)."""
        if self.tmpfs_used + grow > self.tmpfs_size:
            raise abi.kernel_error(abi.ENOSPC, f"tmpfs is full ({self.tmpfs_used} of {self.tmpfs_size} bytes used)")
        self.tmpfs_used += grow

    def _uncharge(self, inode: Inode) -> None:
        """A regular file's bytes go back to the tmpfs (truncated, or the inode freed)."""
        if st.S_ISREG(inode.mode) and inode.proc is None:
            self.tmpfs_used -= inode.data.held
        inode.data.clear()

    def _write_limit(self, pos: int, fd: int) -> int:
        """generic_write_check_limits: at or past the file-size limit is EFBIG; a write
        that would cross it is cut short there."""
        if pos >= MAX_FILE_SIZE:
            raise abi.kernel_error(abi.EFBIG, f"fd {fd}: offset {pos} is past tmpfs's file-size limit {MAX_FILE_SIZE}")
        return MAX_FILE_SIZE - pos

    @op
    async def lseek(self, req: Call, files: int, fd: int, offset: int, whence: int) -> int:
        file = self._file(self._fst(files), fd)
        inode = file.inode
        if inode.pipe is not None or inode.device == "console":
            raise abi.kernel_error(abi.ESPIPE, f"fd {fd} is a pipe or a terminal")
        if inode.device:
            return 0  # /dev/null and /dev/zero: every offset is the same
        size = (
            len(file.entries) if file.entries is not None else len(inode.children) + 2 if inode.is_dir else inode.size
        )
        base = {abi.SEEK_SET: 0, abi.SEEK_CUR: file.pos, abi.SEEK_END: size}.get(whence)
        if base is None or not 0 <= base + offset <= MAX_LFS_FILESIZE:  # vfs_setpos
            raise abi.kernel_error(abi.EINVAL, f"bad whence {whence} or offset {offset} (from {base})")
        file.pos = base + offset
        return file.pos

    @op
    async def getdents(self, req: Call, files: int, fd: int) -> list[str]:
        """The directory's names from the file's position on ('.' and '..' first); an
        empty list at the end, as getdents64 returning 0."""
        file = self._file(self._fst(files), fd)
        if not file.inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, f"fd {fd} is not a directory")
        if file.fds_of is not None:
            table = self.files_structs.get(file.fds_of)
            names = [".", "..", *(str(fd) for fd in sorted(table.fds if table else ()))]
        else:
            names = file.entries if file.entries is not None else [".", "..", *file.inode.children]
        batch = names[file.pos :]
        file.pos = len(names)
        self._touch(file.inode, 0)
        return batch

    @op
    @touches(fp.fstat)
    async def fstat(self, req: Call, files: int, fd: int) -> dict:
        file = self._file(self._fst(files), fd)
        return file.inode.stat(0)
