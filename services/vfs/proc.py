"""The vfs's side of /proc: the kernel generates /proc (it owns the task table),
and the vfs keeps the open files on what it generated, lists /proc/PID/fd
from the fd table itself, and names fds, cwd and root for /proc/PID links.
"""

from __future__ import annotations

import stat as st

from ukernel import abi
from ukernel.ipc.service import Call, op

from .inode import File, FileData, Inode
from .namei import MntNamespace, d_path

PROC_MODES = {"dir": st.S_IFDIR | 0o555, "file": st.S_IFREG | 0o444, "nsfs": st.S_IFREG | 0o444}


def nsfs_name(data: bytes) -> tuple[str, int]:
    """A namespace file's name and inode number, from the kernel's ``b"uts:[4026531838]"``."""
    name = data.decode(errors="replace")
    kind, _, number = name.partition(":[")
    if not (kind and number.endswith("]") and number[:-1].isdecimal()):
        raise abi.kernel_error(abi.EINVAL, f"{name!r} is not a namespace name (kind:[inum])")
    return name, int(number[:-1])


class ProcOps:
    """The vfs's /proc ops (mixed into VfsService)."""

    @op
    async def open_proc(
        self,
        req: Call,
        files: int,
        fs: int,
        rel: str,
        kind: str,
        flags: int = 0,
        data: bytes = b"",
        entries: list[str] | None = None,
        fds_of: int | None = None,
        writable: bool = False,
    ) -> int:
        """The kernel's answer to ``{"proc": rel}``: an open file on what it generated
        (seq_file: the contents are made once, at open). ``fds_of``: a /proc/PID/fd
        directory, listed from that fd table at each getdents, as proc_readfd does.
        Writes to a ``writable`` one go back to the kernel (``{"proc": rel}`` from write)."""
        fst = self._fst(files)
        self._fs(fs)
        if kind not in PROC_MODES:
            raise abi.kernel_error(abi.EINVAL, f"proc node kind {kind!r}")
        inode = self._proc_inode(fs, rel, kind, data)
        if kind == "nsfs":  # the file is the namespace: its name, and its number as st_ino
            inode.nsfs, inode.ino = nsfs_name(data)
            inode.data = FileData()
        self._may_open(inode, flags, f"/proc/{rel}")
        if flags & abi.O_ACCMODE != abi.O_RDONLY and not writable:
            raise abi.kernel_error(abi.EACCES, f"/proc/{rel} is read-only")
        file = File(inode, flags & ~abi.O_CLOEXEC, None, rel, entries=list(entries) if kind == "dir" else None)
        file.fds_of = fds_of
        return self._install_new(fst, file, bool(flags & abi.O_CLOEXEC))

    def _proc_inode(self, fs: int, rel: str, kind: str, data: bytes = b"") -> Inode:
        """A /proc node the kernel described, hung under the proc root it was reached from
        (its parents are made too, so '..' and getcwd work)."""
        fss = self._fs(fs)
        ns = self._ns(fss)
        node = next((m.root for m in ns.mounts if m.fstype == "proc"), None)
        if node is None:
            raise abi.kernel_error(abi.ENOENT, f"/proc/{rel}: no proc is mounted in this namespace")
        parts = [p for p in rel.split("/") if p]
        for i, _ in enumerate(parts):
            last = i == len(parts) - 1
            mode = PROC_MODES[kind] if last else PROC_MODES["dir"]
            child = self._new_inode(mode, nlink=1, data=FileData(data if last else b""))
            child.proc, child.parent = "/".join(parts[: i + 1]), node
            node = child
        return node

    @op
    async def chdir_proc(self, req: Call, fs: int, rel: str) -> None:
        """chdir into a /proc directory the kernel found."""
        self._fs(fs).pwd = self._proc_inode(fs, rel, "dir")

    @op
    async def ns_of_fd(self, req: Call, files: int, fd: int) -> str:
        """setns's first step: the namespace an fd was opened on ("uts:[4026531838]")."""
        file = self._file(self._fst(files), fd)
        if not file.inode.nsfs:
            raise abi.kernel_error(abi.EINVAL, f"fd {fd} is not a namespace file (/proc/PID/ns/*)")
        return file.inode.nsfs

    @op
    async def fd_links(self, req: Call, files: int, fs: int) -> dict:
        """/proc/PID/fd: each fd's path (pipes as pipe:[ino])."""
        fst, fss = self._fst(files), self._fs(fs)
        links = {}
        for fd, (handle, _) in sorted(fst.fds.items()):
            file = self.files[handle]
            if file.inode.pipe is not None:
                links[str(fd)] = file.name
            elif file.inode.nsfs:
                links[str(fd)] = file.inode.nsfs
            elif file.inode.proc is not None:
                links[str(fd)] = f"/proc/{file.inode.proc}"
            else:
                links[str(fd)] = self._file_path(fss, file.dir, file.name, file.inode)
        return links

    @op
    async def fs_paths(self, req: Call, fs: int) -> dict:
        """/proc/PID/cwd and root, and the umask."""
        fss = self._fs(fs)
        ns = self._ns(fss)
        root = d_path(ns, self._ns_root(ns), fss.root)
        return {"cwd": d_path(ns, fss.root, fss.pwd), "root": root, "umask": fss.umask}

    def _ns_root(self, ns: MntNamespace) -> Inode:
        return ns.mounts[0].root
