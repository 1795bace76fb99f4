"""Inodes of the vfs: tmpfs files, directories, symlinks, devices, pipes and /proc nodes.

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
