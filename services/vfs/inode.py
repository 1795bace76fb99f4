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


@dataclass(eq=False)
class Inode:
    ino: int
    mode: int  # S_IF* | permission bits
    nlink: int = 0  # directory entries naming it; a directory also counts '.' and its subdirs' '..'
    i_count: int = 0  # open file descriptions holding it
    uid: int = 0
    gid: int = 0
    data: bytearray = field(default_factory=bytearray)  # a regular file's bytes
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


NR_OPEN_DEFAULT = 1024  # RLIMIT_NOFILE's usual soft limit
#: How far lseek goes: tmpfs's s_maxbytes in Linux, MAX_LFS_FILESIZE (LLONG_MAX); past it is EINVAL.
MAX_LFS_FILESIZE = 2**63 - 1
#: How large a file may grow. Linux's tmpfs is sparse up to MAX_LFS_FILESIZE; ukernel's keeps each
#: file's bytes in one bytearray, so a write at or past 16 MiB is EFBIG and one that would cross
#: it is cut short (generic_write_check_limits, as on a file system with a smaller s_maxbytes).
MAX_FILE_SIZE = 16 * 1024 * 1024
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


@dataclass
class FilesStruct:
    """struct files_struct: the fd table, with close-on-exec bits."""

    fds: dict[int, list] = field(default_factory=dict)  # fd -> [file handle, cloexec]
    count: int = 1


@dataclass
class FsStruct:
    """struct fs_struct: root, cwd and umask, shared under CLONE_FS; and the mount
    namespace its paths are walked in (copy_mnt_ns moves it, as Linux's new_fs)."""

    root: Inode
    pwd: Inode
    mnt_ns: int
    umask: int = 0o022
    users: int = 1
