"""vfs: tmpfs, mount namespaces, fs_struct, files_struct, open files, pipes, devices.

copy_files and copy_fs are two of fork's steps. Without CLONE_FILES the
child gets a new fd table (dup_fd) whose fds point at the *same* open file
descriptions, so offsets are shared; with it, the table itself is shared.
Three counts say who holds what: files_struct.count, fs_struct.users and
file.f_count; inodes add nlink (names) and i_count (open files).

A read of an empty pipe never blocks this service: it answers
``{"wait": N}``, a wait-queue entry; the kernel then sends ``wait`` (answered
when a writer wakes the queue) and sleeps in sched meanwhile, or
``finish_wait`` when a signal ends the sleep (prepare_to_wait /
finish_wait). Paths into /proc answer ``{"proc": rel}``: the kernel, which
owns the task table, generates /proc and comes back with ``open_proc``.
"""

from __future__ import annotations

import itertools
import stat as st
from collections.abc import Callable

from ukernel import abi
from ukernel.ipc.service import Call, Service, changes, get, op, touches
from ukernel.ipc.waitq import Waiter, WaitQueues

from . import footprint as fp
from .inode import (
    NR_OPEN_DEFAULT,
    TMPFS_SIZE_DEFAULT,
    File,
    FileData,
    FilesStruct,
    FsStruct,
    Inode,
    Pipe,
)
from .mount import MountOps
from .namei import MOUNT_MAX, Found, MntNamespace, Mount, NameOps, ProcRedirect, d_path, walk
from .pipe import PipeOps
from .proc import ProcOps
from .read_write import ReadWriteOps
from .tty import Tty, TtyOps


class VfsService(ReadWriteOps, TtyOps, PipeOps, NameOps, MountOps, ProcOps, WaitQueues, Service):
    name = "vfs"
    calls = frozenset()
    takes = {"stdin": "stdin", "console": "console", "tmpfs_size": "tmpfs_size"}  # Config field -> __init__ keyword
    DIGEST_APART = frozenset({"output", "tty"})  # a console write's parts (read_write.CONSOLE_WRITE)

    def __init__(
        self,
        stdin: bytes = b"",
        console: Callable[[bytes], None] | None = None,
        tmpfs_size: int = TMPFS_SIZE_DEFAULT,
        mount_max: int = MOUNT_MAX,
    ):
        super().__init__()
        self.tmpfs_size = tmpfs_size  # bytes the regular files may hold in all (tmpfs's size=)
        self.tmpfs_used = 0  # what they hold now (shmem's used_blocks, in bytes)
        self._inos = itertools.count(1)
        self._devs = itertools.count(1)
        self.clock = 0  # the vfs's own clock for inode times: one tick per change
        self.root = self._new_inode(st.S_IFDIR | 0o755)
        self.root.nlink, self.root.parent = 2, self.root
        self.files: dict[int, File] = {}
        self.files_structs: dict[int, FilesStruct] = {}
        self.fs_structs: dict[int, FsStruct] = {}
        self.mnt_namespaces: dict[int, MntNamespace] = {}
        self.waiters: dict[int, Waiter] = {}
        self.console_wait: list[int] = []
        self.orphans: set[Inode] = set()  # unlinked but still open
        for path in ("/bin", "/dev", "/tmp", "/etc", "/proc", "/mnt"):
            self._mkdir_at(self.root, path[1:], 0o1777 if path == "/tmp" else 0o755)
        dev = self.root.children["dev"]
        for name in ("console", "tty", "null", "zero"):
            self._link(dev, name, self._new_inode(st.S_IFCHR | 0o666, device=name))
        init_ns = MntNamespace([Mount("tmpfs", "rootfs", self.root, None, next(self._devs))], max_mounts=mount_max)
        init_ns.add(self._new_mount("proc", "proc", self.root.children["proc"]))
        self.init_mnt_ns = self.new_handle(self.mnt_namespaces, init_ns)  # never freed
        self.stdin = bytearray(stdin)
        self.stdin_live = False  # more input may come: an empty console blocks instead of EOF
        self.output = bytearray()
        self.console_sink = console
        self.tty = Tty()  # the console's line discipline and who owns it (tty.py)
        self.console_tty = False  # input is typed at a real terminal: it goes through the discipline

    # --- inodes -------------------------------------------------------------------
    def _new_inode(self, mode: int, **kw) -> Inode:
        self.clock += 1
        return Inode(next(self._inos), mode, times=[self.clock] * 3, **kw)

    def _touch(self, inode: Inode, *which: int) -> None:
        self.clock += 1
        for i in which:
            inode.times[i] = self.clock

    def _link(self, directory: Inode, name: str, inode: Inode) -> None:
        directory.children[name] = inode
        inode.nlink += 1
        if inode.is_dir:
            inode.parent = directory
            directory.nlink += 1  # the child's '..'
        self._touch(directory, 1, 2)

    def _unlink(self, directory: Inode, name: str) -> None:
        inode = directory.children.pop(name)
        inode.nlink -= 1
        if inode.is_dir:
            inode.nlink -= 1  # its '.'
            directory.nlink -= 1
        self._touch(directory, 1, 2)
        self._touch(inode, 2)
        if inode.nlink == 0 and inode.i_count > 0:
            self.orphans.add(inode)
        elif inode.nlink == 0:
            self._uncharge(inode)  # evict: no name and no opener left

    def _mkdir_at(self, directory: Inode, name: str, mode: int) -> Inode:
        inode = self._new_inode(st.S_IFDIR | mode, nlink=1)  # '.'; the entry adds the other
        self._link(directory, name, inode)
        return inode

    # --- path walk -------------------------------------------------------------------
    def _ns(self, fss: FsStruct) -> MntNamespace:
        return get(self.mnt_namespaces, fss.mnt_ns, "mount namespace")

    def _walk(self, fss: FsStruct, path: str, follow: bool = True, at_proc: bool = True) -> Found:
        return walk(self._ns(fss), fss.root, fss.pwd, path, follow, at_proc)

    def _lookup(self, fss: FsStruct, path: str, follow: bool = True) -> Inode:
        found = self._walk(fss, path, follow)
        if found.inode is None:
            raise abi.kernel_error(abi.ENOENT, path)
        return found.inode

    def _parent(self, fss: FsStruct, path: str, what: str) -> Found:
        """The directory a name is made in or removed from; /proc is the kernel's."""
        try:
            found = self._walk(fss, path, follow=False, at_proc=False)
        except ProcRedirect:
            raise abi.kernel_error(abi.EACCES, f"{what} {path}: /proc is made by the kernel") from None
        if found.dir is None:
            raise abi.kernel_error(abi.EEXIST if what == "mkdir" else abi.EBUSY, f"{what} {path}: not a name")
        if found.dir.proc is not None:
            raise abi.kernel_error(abi.EACCES, f"{what} {path}: /proc is made by the kernel")
        return found

    def _fs(self, fs: int) -> FsStruct:
        return get(self.fs_structs, fs, "fs_struct")

    def _fst(self, files: int) -> FilesStruct:
        return get(self.files_structs, files, "files_struct")

    # --- set-up from the kernel (boot) ---------------------------------------------
    @op
    async def write_file(self, req: Call, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace a regular file, making its directories (boot: /bin, files=)."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise abi.kernel_error(abi.EINVAL, f"write_file {path!r}: no file name")
        directory = self.root
        *dirs, name = parts
        for part in dirs:
            directory = directory.children.get(part) or self._mkdir_at(directory, part, 0o755)
        old = directory.children.get(name)
        if old is not None:
            self._unlink(directory, name)
        inode = self._new_inode(st.S_IFREG | (mode & 0o7777), data=FileData(data))
        self._charge(inode.data.held)
        self._link(directory, name, inode)

    @op
    @touches(fp.kernel_read_file)
    async def kernel_read_file(self, req: Call, fs: int, path: str) -> dict:
        """What execve reads: the file's bytes, if it is a regular executable file."""
        fss = self._fs(fs)
        try:
            found = self._walk(fss, path)
        except ProcRedirect:
            raise abi.kernel_error(abi.EACCES, f"{path}: not an executable file") from None
        inode = found.inode
        if inode is None:
            raise abi.kernel_error(abi.ENOENT, path)
        if inode.is_dir:
            raise abi.kernel_error(abi.EACCES, f"{path} is a directory")
        if not st.S_ISREG(inode.mode) or not inode.mode & 0o111:
            raise abi.kernel_error(abi.EACCES, f"{path} is not executable")
        dev = self._ns(fss).mount_of(found.dir or inode).dev
        path = self._file_path(fss, found.dir, found.name, inode)
        return {"data": bytes(inode.data), "path": path, "dev": dev, "ino": inode.ino}

    @op
    async def init_files(self, req: Call) -> dict:
        """The first fd table: 0, 1, 2 on one open /dev/console."""
        console = self.root.children["dev"].children["console"]
        handle = self._new_file(File(console, abi.O_RDWR, self.root.children["dev"], "console", f_count=3))
        return {
            "files": self.new_handle(
                self.files_structs, FilesStruct({0: [handle, False], 1: [handle, False], 2: [handle, False]})
            )
        }

    @op
    async def init_fs(self, req: Call) -> dict:
        return {"fs": self.new_handle(self.fs_structs, FsStruct(self.root, self.root, self.init_mnt_ns))}

    @op
    @changes(())
    async def console_output(self, req: Call) -> bytes:
        """Everything written to /dev/console so far (ukernel.run's stdout)."""
        return bytes(self.output)

    @op
    @changes(())
    async def console_unread(self, req: Call) -> dict:
        """The console's input not read yet, and whether more may come (RS reads it from a
        dead instance's core: the fresh one must not read again what was read)."""
        return {"stdin": bytes(self.stdin), "live": self.stdin_live}

    @op
    async def console_restore(self, req: Call, output: bytes, unread: dict | None = None) -> None:
        """State transfer into a fresh instance (the reincarnation server's SEF init): what
        the console showed before the old one died goes first, so console_output is still
        the whole run's, in order; not shown again (the terminal has it already). ``unread``
        (console_unread's answer) replaces the input this instance was booted with."""
        self.output[:0] = output
        if unread is not None:
            self.stdin, self.stdin_live = bytearray(unread["stdin"]), unread["live"]

    @op
    async def console_input(self, req: Call, data: bytes = b"", live: bool = True, tty: bool = False) -> dict:
        """Input for the console (the terminal's interrupt): ``tty`` when typed at a real
        terminal (then the line discipline edits it, tty.py), ``live=False`` when it ended.
        The reply names the signals for the kernel to send: ``{"signals": [[sig, pgrp]],
        "hangup": [sid, pgrp]}`` (the foreground group's keys; a hung-up terminal's owner)."""
        reply = self._tty_input(data, live, tty)
        await self._wake(self.console_wait)
        return reply

    # --- copy_files -----------------------------------------------------------------
    @op
    @touches(fp.share_files)
    async def share_files(self, req: Call, files: int) -> dict:
        """CLONE_FILES: atomic_inc(&oldf->count), the same table."""
        self._fst(files).count += 1
        return {"files": files}

    @op
    @touches(fp.dup_files)
    async def dup_files(self, req: Call, files: int) -> dict:
        """dup_fd: a new table pointing at the same open files (f_count++ each)."""
        old = self._fst(files)
        for handle, _ in old.fds.values():
            self.files[handle].f_count += 1
        table = dict(old.fds)  # (an entry is a tuple, replaced when it changes: shared, not copied)
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}

    @op
    @touches(fp.put_files)
    async def put_files(self, req: Call, files: int) -> dict:
        fst = self._fst(files)
        fst.count -= 1
        if fst.count == 0:
            for fd in list(fst.fds):
                await self._close(fst, fd)
            del self.files_structs[files]
        return {"count": fst.count}

    @op
    @touches(fp.exec_files)
    async def exec_files(self, req: Call, files: int) -> dict:
        """execve: unshare the fd table (undoing CLONE_FILES), then close FD_CLOEXEC fds."""
        fst = self._fst(files)
        if fst.count > 1:
            new = (await self.dup_files(req, files))["files"]
            fst.count -= 1  # this task lets go of the shared table
            files, fst = new, self.files_structs[new]
        for fd in [fd for fd, (_, cloexec) in fst.fds.items() if cloexec]:
            await self._close(fst, fd)
        return {"files": files}

    # --- copy_fs ----------------------------------------------------------------------
    @op
    @touches(fp.share_fs)
    async def share_fs(self, req: Call, fs: int) -> dict:
        self._fs(fs).users += 1
        return {"fs": fs}

    @op
    @touches(fp.copy_fs)
    async def copy_fs(self, req: Call, fs: int) -> dict:
        """copy_fs_struct: same root, cwd and umask, its own from now on."""
        old = self._fs(fs)
        return {"fs": self.new_handle(self.fs_structs, FsStruct(old.root, old.pwd, old.mnt_ns, old.umask))}

    @op
    @touches(fp.put_fs)
    async def put_fs(self, req: Call, fs: int) -> dict:
        fss = self._fs(fs)
        fss.users -= 1
        if fss.users == 0:
            del self.fs_structs[fs]
        return {"users": fss.users}

    # --- open files -------------------------------------------------------------------
    def _new_file(self, file: File) -> int:
        inode = file.inode
        inode.i_count += 1
        if inode.pipe is not None:
            inode.pipe.readers += file.readable
            inode.pipe.writers += file.writable
        return self.new_handle(self.files, file)

    def _file(self, fst: FilesStruct, fd: int) -> File:
        if fd not in fst.fds:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open")
        return self.files[fst.fds[fd][0]]

    def _install(self, fst: FilesStruct, handle: int, cloexec: bool, lowest: int = 0) -> int:
        """get_unused_fd_flags: the lowest free fd at or above ``lowest``."""
        fd = lowest
        while fd in fst.fds:
            fd += 1
        if fd >= NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EMFILE, f"no free fd below {NR_OPEN_DEFAULT}")
        fst.fds[fd] = (handle, cloexec)
        return fd

    def _install_new(self, fst: FilesStruct, file: File, cloexec: bool) -> int:
        handle = self._new_file(file)
        try:
            return self._install(fst, handle, cloexec)
        except OSError:
            self._release_now(self.files.pop(handle))  # never installed: nobody waits on it
            raise

    async def _close(self, fst: FilesStruct, fd: int) -> None:
        handle, _ = fst.fds.pop(fd)
        await self._fput(handle)

    async def _fput(self, handle: int) -> None:
        """Drop one reference to an open file; the last one releases it (__fput)."""
        file = self.files[handle]
        file.f_count -= 1
        if file.f_count:
            return
        del self.files[handle]
        pipe = self._release_now(file)
        if pipe is not None:  # the other end sees EOF or EPIPE
            await self._wake(pipe.rd_wait)
            await self._wake(pipe.wr_wait)

    def _release_now(self, file: File) -> Pipe | None:
        inode = file.inode
        inode.i_count -= 1
        if inode.i_count == 0 and inode in self.orphans:
            self.orphans.discard(inode)
            self._uncharge(inode)
        if inode.pipe is not None:
            inode.pipe.readers -= file.readable
            inode.pipe.writers -= file.writable
        return inode.pipe

    def _file_path(self, fss: FsStruct, directory: Inode | None, name: str, inode: Inode) -> str:
        ns = self._ns(fss)
        if directory is None or inode.is_dir:
            return d_path(ns, fss.root, inode)
        base = d_path(ns, fss.root, directory).rstrip("/")
        deleted = "" if directory.children.get(name) is inode else " (deleted)"
        return f"{base}/{name}{deleted}"

    # --- wait queues (ukernel.waitq) -------------------------------------------------
    def waiter_touches(self, waiter: int) -> list:
        return fp.finish_wait(self, {"waiter": waiter})

    def wait_queues(self) -> list[list[int]]:
        pipes = {id(f.inode.pipe): f.inode.pipe for f in self.files.values() if f.inode.pipe is not None}
        queues = [self.console_wait]
        for p in pipes.values():
            queues += [p.rd_wait, p.wr_wait, p.rd_open_wait, p.wr_open_wait]
        return queues

    # --- file syscalls ------------------------------------------------------------------
    @op
    @touches(fp.open_)
    async def open(
        self, req: Call, files: int, fs: int, path: str, flags: int = 0, mode: int = 0o666, job: dict | None = None
    ) -> object:
        """``job`` is what the kernel knows of the caller for a terminal (tty.py's ioctl):
        /dev/tty is its controlling terminal, and a session leader may acquire the console."""
        fst, fss = self._fst(files), self._fs(fs)
        found = self._walk(fss, path, follow=not flags & (abi.O_NOFOLLOW | abi.O_EXCL))
        inode = found.inode
        if inode is None:
            if not flags & abi.O_CREAT:
                raise abi.kernel_error(abi.ENOENT, path)
            if path.endswith("/"):
                raise abi.kernel_error(abi.EISDIR, f"{path}: O_CREAT of a directory name")
            if found.dir.proc is not None:
                raise abi.kernel_error(abi.EACCES, f"{path}: /proc is made by the kernel")
            inode = self._new_inode(st.S_IFREG | (mode & ~fss.umask & 0o7777))
            self._link(found.dir, found.name, inode)
        elif flags & abi.O_CREAT and flags & abi.O_EXCL:
            raise abi.kernel_error(abi.EEXIST, path)
        self._may_open(inode, flags, path)
        if flags & abi.O_TRUNC and st.S_ISREG(inode.mode) and flags & abi.O_ACCMODE != abi.O_RDONLY:
            self._uncharge(inode)
            self._touch(inode, 1, 2)
        file = File(
            inode,
            flags & ~(abi.O_CLOEXEC | abi.O_CREAT | abi.O_EXCL | abi.O_TRUNC | abi.O_NOFOLLOW),
            found.dir,
            found.name,
        )
        if inode.pipe is not None:  # a named FIFO (mknod)
            return await self._fifo_open(fst, file, bool(flags & abi.O_CLOEXEC))
        if inode.device in ("console", "tty"):
            return self._tty_open(fst, file, job or {}, bool(flags & abi.O_CLOEXEC))
        return self._install_new(fst, file, bool(flags & abi.O_CLOEXEC))

    def _may_open(self, inode: Inode, flags: int, path: str) -> None:
        """may_open: what kind of inode this open can have."""
        if inode.is_symlink:
            raise abi.kernel_error(abi.ELOOP, f"{path} is a symlink (O_NOFOLLOW)")
        if inode.is_dir and (flags & abi.O_ACCMODE != abi.O_RDONLY or flags & abi.O_CREAT):
            raise abi.kernel_error(abi.EISDIR, path)
        if flags & abi.O_DIRECTORY and not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)

    @op
    @touches(fp.close)
    async def close(self, req: Call, files: int, fd: int) -> None:
        fst = self._fst(files)
        self._file(fst, fd)
        await self._close(fst, fd)

    # --- fd table ---------------------------------------------------------------------
    @op
    @touches(fp.dup)
    async def dup(self, req: Call, files: int, fd: int) -> int:
        fst = self._fst(files)
        self._file(fst, fd)
        return self._dup_to(fst, fd, 0, False)

    def _dup_to(self, fst: FilesStruct, fd: int, lowest: int, cloexec: bool) -> int:
        handle = fst.fds[fd][0]
        new = self._install(fst, handle, cloexec, lowest)
        self.files[handle].f_count += 1
        return new

    @op
    async def dup2(self, req: Call, files: int, old: int, new: int) -> int:
        fst = self._fst(files)
        self._file(fst, old)
        if new == old:
            return new
        return await self._replace_fd(fst, old, new, False)

    @op
    async def dup3(self, req: Call, files: int, old: int, new: int, flags: int = 0) -> int:
        """dup2 that can set O_CLOEXEC; EINVAL for old == new or other flags."""
        fst = self._fst(files)
        if flags & ~abi.O_CLOEXEC:
            raise abi.kernel_error(abi.EINVAL, f"dup3 flags {flags!r}: only O_CLOEXEC")
        self._file(fst, old)
        if new == old:
            raise abi.kernel_error(abi.EINVAL, "dup3 with old == new")
        return await self._replace_fd(fst, old, new, bool(flags))

    async def _replace_fd(self, fst: FilesStruct, old: int, new: int, cloexec: bool) -> int:
        if not 0 <= new < NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EBADF, f"fd {new} is out of range")
        handle = fst.fds[old][0]
        self.files[handle].f_count += 1
        if new in fst.fds:
            await self._close(fst, new)
        fst.fds[new] = (handle, cloexec)
        return new

    @op
    async def fcntl(self, req: Call, files: int, fd: int, cmd: int, arg: int = 0) -> int:
        fst = self._fst(files)
        file = self._file(fst, fd)
        if cmd in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC):
            if not 0 <= arg < NR_OPEN_DEFAULT:
                raise abi.kernel_error(abi.EINVAL, f"F_DUPFD from {arg}: out of range")
            return self._dup_to(fst, fd, arg, cmd == abi.F_DUPFD_CLOEXEC)
        if cmd == abi.F_GETFD:
            return abi.FD_CLOEXEC if fst.fds[fd][1] else 0
        if cmd == abi.F_SETFD:
            fst.fds[fd] = (fst.fds[fd][0], bool(arg & abi.FD_CLOEXEC))
            return 0
        if cmd == abi.F_GETFL:
            return file.flags
        if cmd == abi.F_SETFL:
            file.flags = (file.flags & ~abi.O_SETFL_MASK) | (arg & abi.O_SETFL_MASK)
            return 0
        raise abi.kernel_error(
            abi.EINVAL, f"fcntl command {cmd} (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL)"
        )

    # --- fs_struct ------------------------------------------------------------------------
    def _dir(self, fss: FsStruct, path: str) -> Inode:
        inode = self._lookup(fss, path)
        if not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)
        return inode

    @op
    async def chdir(self, req: Call, fs: int, path: str) -> None:
        fss = self._fs(fs)
        fss.pwd = self._dir(fss, path)

    @op
    async def fchdir(self, req: Call, files: int, fs: int, fd: int) -> None:
        file = self._file(self._fst(files), fd)
        if not file.inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, f"fd {fd} is not a directory")
        self._fs(fs).pwd = file.inode

    @op
    async def chroot(self, req: Call, fs: int, path: str) -> None:
        """The root moves; the cwd stays (it may now be outside the root, as in Linux)."""
        fss = self._fs(fs)
        try:
            fss.root = self._dir(fss, path)
        except ProcRedirect:
            raise abi.kernel_error(abi.EACCES, f"chroot into /proc is not supported: {path}") from None

    @op
    async def getcwd(self, req: Call, fs: int) -> str:
        fss = self._fs(fs)
        if fss.pwd.nlink == 0:
            raise abi.kernel_error(abi.ENOENT, "the current directory was removed")
        return d_path(self._ns(fss), fss.root, fss.pwd)

    @op
    async def umask(self, req: Call, fs: int, mask: int) -> int:
        fss = self._fs(fs)
        old, fss.umask = fss.umask, mask & 0o777
        return old

    # --- stat, access ---------------------------------------------------------------------------
    def _stat_path(self, fs: int, path: str, follow: bool) -> dict:
        fss = self._fs(fs)
        found = self._walk(fss, path, follow)
        inode = self._existing(found, path)
        return inode.stat(self._ns(fss).mount_of(found.dir or inode).dev)

    @op
    @touches(fp.stat)
    async def stat(self, req: Call, fs: int, path: str) -> object:
        return self._stat_path(fs, path, True)

    @op
    @touches(fp.lstat)
    async def lstat(self, req: Call, fs: int, path: str) -> object:
        return self._stat_path(fs, path, False)

    @op
    async def access(self, req: Call, fs: int, path: str, mode: int = abi.F_OK) -> object:
        """access(2) as root: read and write always, execute if any x bit (or a directory)."""
        if mode & ~(abi.R_OK | abi.W_OK | abi.X_OK):
            raise abi.kernel_error(abi.EINVAL, f"access mode {mode!r}")
        result = self._stat_path(fs, path, True)
        if mode & abi.X_OK and not (st.S_ISDIR(result["st_mode"]) or result["st_mode"] & 0o111):
            raise abi.kernel_error(abi.EACCES, f"{path} is not executable")
        return 0

    # --- invariants ------------------------------------------------------------------------------
    @op
    @changes(())
    async def check(self, req: Call) -> list[str]:
        """Every count against what it counts: nlink against directory entries, i_count
        and pipe ends against open files, orphans against nlink; nothing left waiting."""
        problems = []
        names: dict[Inode, int] = {}
        subdirs: dict[Inode, int] = {}
        seen: set[Inode] = set()
        roots = {m.root for ns in self.mnt_namespaces.values() for m in ns.mounts}
        stack = list(roots)
        while stack:
            inode = stack.pop()
            if inode in seen:
                continue
            seen.add(inode)
            for child in inode.children.values():
                names[child] = names.get(child, 0) + 1
                if child.is_dir:
                    subdirs[inode] = subdirs.get(inode, 0) + 1
                stack.append(child)
        for inode in seen:
            want = 2 + subdirs.get(inode, 0) if inode.is_dir else names.get(inode, 0)
            if inode.nlink != want and inode.proc is None:
                problems.append(f"vfs: inode {inode.ino} has nlink {inode.nlink}, {want} names")
        opened: dict[Inode, list[File]] = {}
        for file in self.files.values():
            opened.setdefault(file.inode, []).append(file)
        for inode, files in opened.items():
            if inode.i_count != len(files):
                problems.append(f"vfs: inode {inode.ino} has i_count {inode.i_count}, {len(files)} open files")
            if inode.pipe is not None:
                ends = (sum(f.readable for f in files), sum(f.writable for f in files))
                if (inode.pipe.readers, inode.pipe.writers) != ends:
                    problems.append(
                        f"vfs: pipe {inode.ino} counts {inode.pipe.readers}r/{inode.pipe.writers}w, open {ends}"
                    )
        for inode in self.orphans:
            if inode.nlink or not inode.i_count:
                problems.append(f"vfs: orphan inode {inode.ino} has nlink {inode.nlink}, i_count {inode.i_count}")
        held = sum(i.data.held for i in seen | self.orphans if st.S_ISREG(i.mode) and i.proc is None)
        if held != self.tmpfs_used:
            problems.append(f"vfs: tmpfs counts {self.tmpfs_used} bytes used, its files hold {held}")
        return problems

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "files_structs": len(self.files_structs),
            "files_refs": sum(f.count for f in self.files_structs.values()),
            "fs_structs": len(self.fs_structs),
            "fs_users": sum(f.users for f in self.fs_structs.values()),
            "open_files": len(self.files),
            "f_count": sum(f.f_count for f in self.files.values()),
            "fds": sum(len(f.fds) for f in self.files_structs.values()),
            "mnt_namespaces": len(self.mnt_namespaces),
            "pipes": len({id(f.inode) for f in self.files.values() if f.inode.pipe is not None}),
            "orphan_inodes": sum(1 for i in self.orphans if not i.device),  # /dev/console unlinked: still open, no leak
            "waiters": len(self.waiters),
        }
