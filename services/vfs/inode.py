"""The vfs's objects: inodes (tmpfs files, directories, symlinks, devices, pipes, /proc
nodes), open files, and the two tables fork copies or shares (files_struct, fs_struct).

An inode lives while a directory entry names it (``nlink``) or an open file
holds it (``i_count``), as in Linux's iput: an unlinked file that is still
open keeps its data until the last close.
"""

from __future__ import annotations

import stat as st
from dataclasses import dataclass, field

from ukernel import abi


@dataclass
class Pipe:
    """struct pipe_inode_info: a bounded buffer and who holds each end."""

    buffer: bytearray = field(default_factory=bytearray)
    readers: int = 0  # open file descriptions for reading
    writers: int = 0
    rd_wait: list[int] = field(default_factory=list)  # waiters (vfs wait-queue entries) for data
    wr_wait: list[int] = field(default_factory=list)  # waiters for room
    rd_open_wait: list[int] = field(default_factory=list)  # a FIFO's readers waiting for a writer to open
    wr_open_wait: list[int] = field(default_factory=list)  # and its writers waiting for a reader

    def read(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def room(self) -> int:
        return abi.PIPE_DEF_BUFFERS_SIZE - len(self.buffer)


class FileData:
    """A regular file's bytes as 4 KiB pages that exist only where something was written:
    a hole reads as zeros and costs nothing, as in tmpfs (shmem allocates pages on write)."""

    __slots__ = ("pages", "size")

    def __init__(self, data: bytes = b""):
        self.pages: dict[int, bytearray] = {}  # page index -> its bytes
        self.size = 0
        if data:
            self.write(0, data)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.read(0, self.size)

    @property
    def held(self) -> int:
        """Bytes of pages allocated: what the file costs the tmpfs."""
        return len(self.pages) * abi.PAGE_SIZE

    def read(self, pos: int, n: int) -> bytes:
        end, out = min(self.size, pos + n), bytearray()
        while pos < end:
            index, offset = divmod(pos, abi.PAGE_SIZE)
            take = min(abi.PAGE_SIZE - offset, end - pos)
            page = self.pages.get(index)
            out += page[offset : offset + take] if page is not None else bytes(take)
            pos += take
        return bytes(out)

    def new_pages(self, pos: int, n: int) -> int:
        """How many pages a write of ``n`` bytes at ``pos`` would allocate."""
        if n <= 0:
            return 0
        first, last = pos // abi.PAGE_SIZE, (pos + n - 1) // abi.PAGE_SIZE
        return sum(1 for index in range(first, last + 1) if index not in self.pages)

    def write(self, pos: int, data: bytes) -> None:
        done = 0
        while done < len(data):
            index, offset = divmod(pos + done, abi.PAGE_SIZE)
            take = min(abi.PAGE_SIZE - offset, len(data) - done)
            page = self.pages.get(index)
            if page is None:
                page = self.pages[index] = bytearray(abi.PAGE_SIZE)
            page[offset : offset + take] = data[done : done + take]
            done += take
        self.size = max(self.size, pos + len(data))

    def clear(self) -> None:
        self.pages.clear()
        self.size = 0


@dataclass(eq=False)
class Inode:
    ino: int
    mode: int  # S_IF* | permission bits
    nlink: int = 0  # directory entries naming it; a directory also counts '.' and its subdirs' '..'
    i_count: int = 0  # open file descriptions holding it
    uid: int = 0
    gid: int = 0
    data: FileData = field(default_factory=FileData)  # a regular file's bytes (sparse pages)
    children: dict[str, Inode] = field(default_factory=dict)  # a directory's entries
    parent: Inode | None = None  # a directory's '..' (itself for a file system's root)
    target: str = ""  # a symlink's target
    device: str = ""  # a character device: console, null, zero
    pipe: Pipe | None = None
    proc: str | None = None  # a /proc node: its path below the proc root ("" is the root)
    nsfs: str = ""  # a namespace file (nsfs): its name, "uts:[4026531838]"
    times: list[int] = field(default_factory=lambda: [0, 0, 0])  # atime, mtime, ctime (vfs clock)

    @property
    def is_dir(self) -> bool:
        return st.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return st.S_ISLNK(self.mode)

    @property
    def size(self) -> int:
        if self.is_symlink:
            return len(self.target.encode())
        if self.pipe is not None:
            return len(self.pipe.buffer)
        return len(self.data)

    def stat(self, dev: int) -> dict:
        """What stat(2) answers, with os.stat_result's field names."""
        atime, mtime, ctime = self.times
        return {
            "st_mode": self.mode,
            "st_ino": self.ino,
            "st_dev": dev,
            "st_nlink": self.nlink,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_size": self.size,
            "st_atime": atime,
            "st_mtime": mtime,
            "st_ctime": ctime,
        }


NR_OPEN_DEFAULT = abi.NR_OPEN_DEFAULT  # RLIMIT_NOFILE's usual soft limit
#: How far lseek goes: tmpfs's s_maxbytes in Linux, MAX_LFS_FILESIZE (LLONG_MAX); past it is EINVAL.
MAX_LFS_FILESIZE = 2**63 - 1
#: How large a file may grow: tmpfs's s_maxbytes. A write at or past it is EFBIG, one that would
#: cross it is cut short (generic_write_check_limits). Files are sparse (FileData), so a byte far
#: out costs one page, not the hole before it.
MAX_FILE_SIZE = MAX_LFS_FILESIZE
#: tmpfs's size= when none is given (the kernel passes half of memory, as tmpfs's default is half of RAM).
TMPFS_SIZE_DEFAULT = 32 * 1024 * 1024
#: The most one read of /dev/zero gives (read_iter_zero may stop early; a read may be short).
ZERO_READ_MAX = 1024 * 1024


@dataclass(eq=False)
class File:
    """struct file: an open file description, shared by dup and by fork."""

    inode: Inode
    flags: int  # access mode and status flags (O_APPEND, O_NONBLOCK)
    dir: Inode | None = None  # where it was opened (its dentry), for /proc/PID/fd
    name: str = ""
    pos: int = 0
    f_count: int = 1
    entries: list[str] | None = None  # a /proc directory's listing, made at open
    fds_of: int | None = None  # /proc/PID/fd: the files_struct listed at each getdents

    @property
    def readable(self) -> bool:
        """FMODE_READ: O_RDONLY or O_RDWR; access mode 3 (O_ACCMODE) is neither, "ioctl only"."""
        return self.flags & abi.O_ACCMODE in (abi.O_RDONLY, abi.O_RDWR)

    @property
    def writable(self) -> bool:
        return self.flags & abi.O_ACCMODE in (abi.O_WRONLY, abi.O_RDWR)


@dataclass(slots=True)
class FilesStruct:
    """struct files_struct: the fd table, with close-on-exec bits."""

    fds: dict[int, tuple] = field(default_factory=dict)  # fd -> (file handle, cloexec): replaced, never changed
    count: int = 1


@dataclass(slots=True)
class FsStruct:
    """struct fs_struct: root, cwd and umask, shared under CLONE_FS; and the mount
    namespace its paths are walked in (copy_mnt_ns moves it, as Linux's new_fs)."""

    root: Inode
    pwd: Inode
    mnt_ns: int
    umask: int = 0o022
    users: int = 1
