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
from dataclasses import dataclass, field

from ukernel import abi
from ukernel.service import Call, Service, get, op
from ukernel.waitq import Waiter, WaitQueues

from .inode import Inode, Pipe
from .namei import Found, MntNamespace, Mount, ProcRedirect, d_path, walk

NR_OPEN_DEFAULT = 1024  # RLIMIT_NOFILE's usual soft limit
PROC_MODES = {"dir": st.S_IFDIR | 0o555, "file": st.S_IFREG | 0o444, "nsfs": st.S_IFREG | 0o444}


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
        return self.flags & abi.O_ACCMODE != abi.O_WRONLY

    @property
    def writable(self) -> bool:
        return self.flags & abi.O_ACCMODE != abi.O_RDONLY


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


class VfsService(WaitQueues, Service):
    name = "vfs"
    calls = frozenset({"mm"})

    def __init__(self, stdin: bytes = b"", console: Callable[[bytes], None] | None = None):
        super().__init__()
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
        for name in ("console", "null", "zero"):
            self._link(dev, name, self._new_inode(st.S_IFCHR | 0o666, device=name))
        init_ns = MntNamespace([Mount("tmpfs", "rootfs", self.root, None, next(self._devs))])
        init_ns.mounts.append(self._new_mount("proc", "proc", self.root.children["proc"]))
        self.init_mnt_ns = self.new_handle(self.mnt_namespaces, init_ns)  # never freed
        self.stdin = bytearray(stdin)
        self.stdin_live = False  # a terminal: an empty console blocks instead of EOF
        self.output = bytearray()
        self.console_sink = console

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

    def _mkdir_at(self, directory: Inode, name: str, mode: int) -> Inode:
        inode = self._new_inode(st.S_IFDIR | mode, nlink=1)  # '.'; the entry adds the other
        self._link(directory, name, inode)
        return inode

    def _new_mount(self, fstype: str, source: str, mountpoint: Inode) -> Mount:
        root = self._new_inode(st.S_IFDIR | (0o555 if fstype == "proc" else 0o1777), nlink=2)
        root.parent = root
        if fstype == "proc":
            root.proc = ""
        return Mount(fstype, source, root, mountpoint, next(self._devs))

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
        directory = self.root
        *dirs, name = [p for p in path.split("/") if p]
        for part in dirs:
            directory = directory.children.get(part) or self._mkdir_at(directory, part, 0o755)
        old = directory.children.get(name)
        if old is not None:
            self._unlink(directory, name)
        self._link(directory, name, self._new_inode(st.S_IFREG | mode, data=bytearray(data)))

    @op
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
        return {"data": bytes(inode.data), "path": self._file_path(fss, found.dir, found.name, inode)}

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
    async def console_output(self, req: Call) -> bytes:
        """Everything written to /dev/console so far (ukernel.run's stdout)."""
        return bytes(self.output)

    @op
    async def console_input(self, req: Call, data: bytes = b"", live: bool = True) -> None:
        """Input typed at the terminal (``live``: an empty console blocks readers);
        ``live=False`` is end of input (^D): readers see EOF."""
        self.stdin += data
        self.stdin_live = live
        await self._wake(self.console_wait)

    # --- copy_files -----------------------------------------------------------------
    @op
    async def share_files(self, req: Call, files: int) -> dict:
        """CLONE_FILES: atomic_inc(&oldf->count), the same table."""
        self._fst(files).count += 1
        return {"files": files}

    @op
    async def dup_files(self, req: Call, files: int) -> dict:
        """dup_fd: a new table pointing at the same open files (f_count++ each)."""
        old = self._fst(files)
        for handle, _ in old.fds.values():
            self.files[handle].f_count += 1
        table = {fd: list(entry) for fd, entry in old.fds.items()}
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}

    @op
    async def put_files(self, req: Call, files: int) -> dict:
        fst = self._fst(files)
        fst.count -= 1
        if fst.count == 0:
            for fd in list(fst.fds):
                await self._close(fst, fd)
            del self.files_structs[files]
        return {"count": fst.count}

    @op
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
    async def share_fs(self, req: Call, fs: int) -> dict:
        self._fs(fs).users += 1
        return {"fs": fs}

    @op
    async def copy_fs(self, req: Call, fs: int) -> dict:
        """copy_fs_struct: same root, cwd and umask, its own from now on."""
        old = self._fs(fs)
        return {"fs": self.new_handle(self.fs_structs, FsStruct(old.root, old.pwd, old.mnt_ns, old.umask))}

    @op
    async def put_fs(self, req: Call, fs: int) -> dict:
        fss = self._fs(fs)
        fss.users -= 1
        if fss.users == 0:
            del self.fs_structs[fs]
        return {"users": fss.users}

    # --- mount namespaces -----------------------------------------------------------
    @op
    async def copy_mnt_ns(self, req: Call, mnt_ns: int, fs: int | None = None, inum: int = 0) -> dict:
        """CLONE_NEWNS: a copy of the mount table; later mounts stay on their side.
        ``fs`` (the child's own fs_struct) walks its paths in the copy from now on;
        ``inum`` is the number the namespaces service gave it."""
        old = get(self.mnt_namespaces, mnt_ns, "mount namespace")
        fss = self._fs(fs) if fs is not None else None
        handle = self.new_handle(self.mnt_namespaces, MntNamespace(list(old.mounts), inum=inum))
        if fss is not None:
            fss.mnt_ns = handle
        return {"mnt_ns": handle}

    @op
    async def get_mnt_ns(self, req: Call, mnt_ns: int) -> None:
        get(self.mnt_namespaces, mnt_ns, "mount namespace").count += 1

    @op
    async def put_mnt_ns(self, req: Call, mnt_ns: int) -> None:
        ns = get(self.mnt_namespaces, mnt_ns, "mount namespace")
        ns.count -= 1
        if ns.count == 0 and mnt_ns != self.init_mnt_ns:
            del self.mnt_namespaces[mnt_ns]

    @op
    async def mnt_ns_inum(self, req: Call, mnt_ns: int) -> int:
        """The inode number of a mount namespace (the ``mnt:[N]`` of /proc/PID/ns/mnt)."""
        return get(self.mnt_namespaces, mnt_ns, "mount namespace").inum

    @op
    async def mntns_install(self, req: Call, fs: int, inum: int) -> dict:
        """setns to the mount namespace numbered ``inum`` (mntns_install): EINVAL while
        another task shares this fs_struct; root and cwd move to the namespace's '/'."""
        fss = self._fs(fs)
        handle = next((h for h, n in self.mnt_namespaces.items() if n.inum == inum), None)
        if handle is None:
            raise abi.kernel_error(abi.EINVAL, f"mount namespace {inum} is gone")
        if fss.users != 1:
            raise abi.kernel_error(abi.EINVAL, "setns to a mount namespace with a shared fs_struct (CLONE_FS)")
        ns = self.mnt_namespaces[handle]
        ns.count += 1
        fss.mnt_ns = handle
        fss.root = fss.pwd = ns.follow_mount(self._ns_root(ns))
        return {"mnt_ns": handle}

    @op
    async def mount(self, req: Call, fs: int, source: str, target: str, fstype: str) -> None:
        """mount(2) of a new tmpfs or proc on a directory, in the caller's namespace only."""
        fss = self._fs(fs)
        if fstype not in ("tmpfs", "proc"):
            raise abi.kernel_error(abi.ENODEV, f"unknown file system type {fstype!r} (tmpfs, proc)")
        inode = self._mountpoint(fss, target)
        if not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, target)
        self._ns(fss).mounts.append(self._new_mount(fstype, str(source), inode))

    @op
    async def umount(self, req: Call, fs: int, target: str) -> None:
        """umount(2): EINVAL unless target is a mount's root, EBUSY while anything is open
        or anyone's root or cwd below it."""
        fss = self._fs(fs)
        ns = self._ns(fss)
        inode = self._mountpoint(fss, target)
        mount = ns.rooted_at(inode)
        if mount is None or mount.mountpoint is None:
            raise abi.kernel_error(abi.EINVAL, f"{target} is not a mount point")
        if ns.covering(mount.root) is not None or self._busy(ns, mount):
            raise abi.kernel_error(abi.EBUSY, f"{target} is in use")
        ns.mounts.remove(mount)

    def _mountpoint(self, fss: FsStruct, target: str) -> Inode:
        """The directory a mount goes on or comes off: /proc itself is one (a new proc
        mount stacks on the old one), a path inside /proc is the kernel's."""
        try:
            found = self._walk(fss, target, at_proc=False)
        except ProcRedirect:
            raise abi.kernel_error(abi.EACCES, f"{target}: inside /proc, which the kernel makes") from None
        if found.inode is None:
            raise abi.kernel_error(abi.ENOENT, target)
        return found.inode

    def _busy(self, ns: MntNamespace, mount: Mount) -> bool:
        held = [f.dir or f.inode for f in self.files.values()]  # a file's mount is its directory's
        held += [
            i for fss in self.fs_structs.values() if fss.mnt_ns in self._ns_handles(ns) for i in (fss.root, fss.pwd)
        ]
        return any(ns.mount_of(inode) is mount for inode in held)

    def _ns_handles(self, ns: MntNamespace) -> set[int]:
        return {h for h, n in self.mnt_namespaces.items() if n is ns}

    @op
    async def mounts(self, req: Call, fs: int) -> list[str]:
        """/proc/mounts lines, as the task's root sees them."""
        fss = self._fs(fs)
        ns = self._ns(fss)
        lines = []
        for mount in ns.mounts:
            where = "/" if mount.mountpoint is None else d_path(ns, fss.root, mount.mountpoint)
            if not where.startswith("("):
                lines.append(f"{mount.source} {where} {mount.fstype} rw 0 0")
        return lines

    # --- open files -------------------------------------------------------------------
    def _new_file(self, file: File) -> int:
        inode = file.inode
        inode.i_count += 1
        if inode.pipe is not None:
            inode.pipe.readers += file.readable
            inode.pipe.writers += file.writable
        return self.new_handle(self.files, file)

    def _file(self, fst: FilesStruct, fd: int) -> File:
        if not isinstance(fd, int) or fd not in fst.fds:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open")
        return self.files[fst.fds[fd][0]]

    def _install(self, fst: FilesStruct, handle: int, cloexec: bool, lowest: int = 0) -> int:
        """get_unused_fd_flags: the lowest free fd at or above ``lowest``."""
        fd = lowest
        while fd in fst.fds:
            fd += 1
        if fd >= NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EMFILE, f"no free fd below {NR_OPEN_DEFAULT}")
        fst.fds[fd] = [handle, cloexec]
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
        if inode.i_count == 0:
            self.orphans.discard(inode)
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
    def wait_queues(self) -> list[list[int]]:
        pipes = {id(f.inode.pipe): f.inode.pipe for f in self.files.values() if f.inode.pipe is not None}
        return [self.console_wait] + [q for p in pipes.values() for q in (p.rd_wait, p.wr_wait)]

    # --- file syscalls ------------------------------------------------------------------
    @op
    async def open(self, req: Call, files: int, fs: int, path: str, flags: int = 0, mode: int = 0o666) -> object:
        fst, fss = self._fst(files), self._fs(fs)
        if not isinstance(flags, int):
            raise abi.kernel_error(abi.EINVAL, "open's flags must be an int")
        try:
            found = self._walk(fss, path, follow=not flags & (abi.O_NOFOLLOW | abi.O_EXCL))
        except ProcRedirect as redirect:
            return {"proc": redirect.rel, "follow": redirect.follow}
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
            inode.data.clear()
            self._touch(inode, 1, 2)
        file = File(
            inode,
            flags & ~(abi.O_CLOEXEC | abi.O_CREAT | abi.O_EXCL | abi.O_TRUNC | abi.O_NOFOLLOW),
            found.dir,
            found.name,
        )
        return self._install_new(fst, file, bool(flags & abi.O_CLOEXEC))

    def _may_open(self, inode: Inode, flags: int, path: str) -> None:
        """may_open: what kind of inode this open can have."""
        if inode.is_symlink:
            raise abi.kernel_error(abi.ELOOP, f"{path} is a symlink (O_NOFOLLOW)")
        if flags & abi.O_ACCMODE == abi.O_ACCMODE:
            raise abi.kernel_error(abi.EINVAL, "O_ACCMODE is not an access mode")
        if inode.is_dir and (flags & abi.O_ACCMODE != abi.O_RDONLY or flags & abi.O_CREAT):
            raise abi.kernel_error(abi.EISDIR, path)
        if flags & abi.O_DIRECTORY and not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)

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
        entries: list | None = None,
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
            inode.nsfs, inode.data = data.decode(), bytearray()
            inode.ino = int(inode.nsfs.rsplit("[", 1)[1].rstrip("]"))
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
        node = next(m.root for m in ns.mounts if m.fstype == "proc")
        parts = [p for p in rel.split("/") if p]
        for i, _ in enumerate(parts):
            last = i == len(parts) - 1
            mode = PROC_MODES[kind] if last else PROC_MODES["dir"]
            child = self._new_inode(mode, nlink=1, data=bytearray(data) if last else bytearray())
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
    async def close(self, req: Call, files: int, fd: int) -> None:
        fst = self._fst(files)
        self._file(fst, fd)
        await self._close(fst, fd)

    @op
    async def read(self, req: Call, files: int, fd: int, n: int) -> object:
        file = self._file(self._fst(files), fd)
        if not isinstance(n, int) or n < 0:
            raise abi.kernel_error(abi.EINVAL, "read count must be a non-negative int")
        if not file.readable:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for reading")
        inode = file.inode
        if inode.is_dir:
            raise abi.kernel_error(abi.EISDIR, f"fd {fd} is a directory (use getdents)")
        if inode.nsfs:
            raise abi.kernel_error(abi.EINVAL, f"fd {fd} is a namespace ({inode.nsfs}): it has no data")
        if inode.pipe is not None:
            return await self._pipe_read(file, n)
        if inode.device:
            return self._device_read(file, inode.device, n)
        data = bytes(inode.data[file.pos : file.pos + n])
        file.pos += len(data)
        return data

    def _device_read(self, file: File, device: str, n: int) -> object:
        if device == "zero":
            return bytes(n)
        if device == "null":
            return b""
        if not self.stdin and self.stdin_live and n:  # the console: wait for a line
            if file.flags & abi.O_NONBLOCK:
                raise abi.kernel_error(abi.EAGAIN, "no input yet")
            return self._prepare_to_wait(self.console_wait)
        data = bytes(self.stdin[:n])
        del self.stdin[:n]
        return data

    async def _pipe_read(self, file: File, n: int) -> object:
        """pipe_read: data if there is any, EOF once no writer is left, else wait."""
        pipe = file.inode.pipe
        if pipe.buffer or not n:
            data = pipe.read(n)
            await self._wake(pipe.wr_wait)
            return data
        if pipe.writers == 0:
            return b""
        if file.flags & abi.O_NONBLOCK:
            raise abi.kernel_error(abi.EAGAIN, "the pipe is empty (O_NONBLOCK)")
        return self._prepare_to_wait(pipe.rd_wait)

    @op
    async def write(self, req: Call, files: int, fd: int, data: bytes) -> object:
        file = self._file(self._fst(files), fd)
        if not isinstance(data, bytes):
            raise abi.kernel_error(abi.EFAULT, "write takes bytes")
        if not file.writable:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for writing")
        inode = file.inode
        if inode.pipe is not None:
            return await self._pipe_write(file, data)
        if inode.proc is not None:  # a writable /proc file: the kernel takes the bytes
            return {"proc": inode.proc}
        if inode.device == "console":
            self.output += data
            if self.console_sink is not None:
                self.console_sink(data)
            return len(data)
        if inode.device:
            return len(data)
        if file.flags & abi.O_APPEND:
            file.pos = len(inode.data)
        end = file.pos + len(data)
        if end > len(inode.data):
            inode.data.extend(bytes(end - len(inode.data)))
        inode.data[file.pos : end] = data
        file.pos = end
        self._touch(inode, 1, 2)
        return len(data)

    async def _pipe_write(self, file: File, data: bytes) -> object:
        """pipe_write: EPIPE with no reader; up to PIPE_BUF bytes go in whole or not at
        all; otherwise what fits goes in and the writer waits for room for the rest."""
        pipe = file.inode.pipe
        if pipe.readers == 0:
            raise abi.kernel_error(abi.EPIPE, "no process has the pipe open for reading")
        room = pipe.room()
        take = len(data) if len(data) <= room else (0 if len(data) <= abi.PIPE_BUF else room)
        if take:
            pipe.buffer += data[:take]
            await self._wake(pipe.rd_wait)
        if take == len(data):
            return take
        if file.flags & abi.O_NONBLOCK:
            if take:
                return take
            raise abi.kernel_error(abi.EAGAIN, "the pipe is full (O_NONBLOCK)")
        return {"written": take} | self._prepare_to_wait(pipe.wr_wait)

    @op
    async def pipe2(self, req: Call, files: int, flags: int = 0) -> list[int]:
        """pipe2: a pipe inode and two open files on it, read end first."""
        fst = self._fst(files)
        if not isinstance(flags, int) or flags & ~(abi.O_CLOEXEC | abi.O_NONBLOCK):
            raise abi.kernel_error(abi.EINVAL, f"pipe2 flags {flags!r}: only O_CLOEXEC and O_NONBLOCK")
        if sum(fd not in fst.fds for fd in range(NR_OPEN_DEFAULT)) < 2:
            raise abi.kernel_error(abi.EMFILE, "two free fds are needed")
        inode = self._new_inode(st.S_IFIFO | 0o600, pipe=Pipe())
        status = flags & abi.O_NONBLOCK
        cloexec = bool(flags & abi.O_CLOEXEC)
        rfd = self._install_new(fst, File(inode, abi.O_RDONLY | status, name=f"pipe:[{inode.ino}]"), cloexec)
        wfd = self._install_new(fst, File(inode, abi.O_WRONLY | status, name=f"pipe:[{inode.ino}]"), cloexec)
        return [rfd, wfd]

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
        if base is None or not isinstance(offset, int) or base + offset < 0:
            raise abi.kernel_error(abi.EINVAL, f"bad whence {whence} or offset {offset}")
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
    async def fstat(self, req: Call, files: int, fd: int) -> dict:
        file = self._file(self._fst(files), fd)
        return file.inode.stat(0)

    # --- fd table ---------------------------------------------------------------------
    @op
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
        if not isinstance(flags, int) or flags & ~abi.O_CLOEXEC:
            raise abi.kernel_error(abi.EINVAL, f"dup3 flags {flags!r}: only O_CLOEXEC")
        self._file(fst, old)
        if new == old:
            raise abi.kernel_error(abi.EINVAL, "dup3 with old == new")
        return await self._replace_fd(fst, old, new, bool(flags))

    async def _replace_fd(self, fst: FilesStruct, old: int, new: int, cloexec: bool) -> int:
        if not isinstance(new, int) or not 0 <= new < NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EBADF, f"fd {new} is out of range")
        handle = fst.fds[old][0]
        self.files[handle].f_count += 1
        if new in fst.fds:
            await self._close(fst, new)
        fst.fds[new] = [handle, cloexec]
        return new

    @op
    async def fcntl(self, req: Call, files: int, fd: int, cmd: int, arg: int = 0) -> int:
        fst = self._fst(files)
        file = self._file(fst, fd)
        if not isinstance(arg, int):
            raise abi.kernel_error(abi.EINVAL, "fcntl's arg must be an int")
        if cmd in (abi.F_DUPFD, abi.F_DUPFD_CLOEXEC):
            if not 0 <= arg < NR_OPEN_DEFAULT:
                raise abi.kernel_error(abi.EINVAL, f"F_DUPFD from {arg}: out of range")
            return self._dup_to(fst, fd, arg, cmd == abi.F_DUPFD_CLOEXEC)
        if cmd == abi.F_GETFD:
            return abi.FD_CLOEXEC if fst.fds[fd][1] else 0
        if cmd == abi.F_SETFD:
            fst.fds[fd][1] = bool(arg & abi.FD_CLOEXEC)
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
    def _dir_or_proc(self, fss: FsStruct, path: str) -> object:
        try:
            inode = self._lookup(fss, path)
        except ProcRedirect as redirect:
            return {"proc": redirect.rel, "follow": True}
        if not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)
        return inode

    @op
    async def chdir(self, req: Call, fs: int, path: str) -> object:
        fss = self._fs(fs)
        inode = self._dir_or_proc(fss, path)
        if isinstance(inode, dict):
            return inode
        fss.pwd = inode
        return None

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
        inode = self._dir_or_proc(fss, path)
        if isinstance(inode, dict):
            raise abi.kernel_error(abi.EACCES, f"chroot into /proc is not supported: {path}")
        fss.root = inode

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

    # --- names ------------------------------------------------------------------------------
    @op
    async def mkdir(self, req: Call, fs: int, path: str, mode: int = 0o777) -> None:
        fss = self._fs(fs)
        found = self._parent(fss, path, "mkdir")
        if found.inode is not None:
            raise abi.kernel_error(abi.EEXIST, path)
        self._mkdir_at(found.dir, found.name, mode & ~fss.umask & 0o7777)

    @op
    async def rmdir(self, req: Call, fs: int, path: str) -> None:
        fss = self._fs(fs)
        if path.rstrip("/").rsplit("/", 1)[-1] == ".":
            raise abi.kernel_error(abi.EINVAL, f"rmdir {path}: the last component is '.'")
        found = self._parent(fss, path, "rmdir")
        inode = self._existing(found, path)
        if not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)
        if inode.children:
            raise abi.kernel_error(abi.ENOTEMPTY, path)
        if self._is_mount_root(found.dir, found.name) or inode is fss.root:
            raise abi.kernel_error(abi.EBUSY, f"{path} is a mount point or a root")
        self._unlink(found.dir, found.name)

    @op
    async def unlink(self, req: Call, fs: int, path: str) -> None:
        found = self._parent(self._fs(fs), path, "unlink")
        inode = self._existing(found, path)
        if inode.is_dir:
            raise abi.kernel_error(abi.EISDIR, f"{path} is a directory (use rmdir)")
        self._unlink(found.dir, found.name)

    @op
    async def link(self, req: Call, fs: int, old: str, new: str) -> None:
        fss = self._fs(fs)
        src = self._parent(fss, old, "link")
        inode = self._existing(src, old)
        if inode.is_dir:
            raise abi.kernel_error(abi.EPERM, f"{old} is a directory; hard links to directories are not allowed")
        dst = self._parent(fss, new, "link")
        if dst.inode is not None:
            raise abi.kernel_error(abi.EEXIST, new)
        self._same_mount(fss, src.dir, dst.dir, old, new)
        self._link(dst.dir, dst.name, inode)
        self._touch(inode, 2)

    @op
    async def symlink(self, req: Call, fs: int, target: str, path: str) -> None:
        if not isinstance(target, str) or not target:
            raise abi.kernel_error(abi.ENOENT, "empty symlink target")
        found = self._parent(self._fs(fs), path, "symlink")
        if found.inode is not None:
            raise abi.kernel_error(abi.EEXIST, path)
        self._link(found.dir, found.name, self._new_inode(st.S_IFLNK | 0o777, target=target))

    @op
    async def readlink(self, req: Call, fs: int, path: str) -> object:
        fss = self._fs(fs)
        try:
            inode = self._lookup(fss, path, follow=False)
        except ProcRedirect as redirect:
            return {"proc": redirect.rel, "follow": False}
        if not inode.is_symlink:
            raise abi.kernel_error(abi.EINVAL, f"{path} is not a symlink")
        self._touch(inode, 0)
        return inode.target

    @op
    async def rename(self, req: Call, fs: int, old: str, new: str) -> None:
        """rename(2) with its rules: EXDEV, EISDIR/ENOTDIR by kind, ENOTEMPTY, EINVAL
        for a directory moved under itself; an existing target is replaced atomically."""
        fss = self._fs(fs)
        src = self._parent(fss, old, "rename")
        inode = self._existing(src, old)
        dst = self._parent(fss, new, "rename")
        self._same_mount(fss, src.dir, dst.dir, old, new)
        victim = dst.inode
        if victim is inode:
            return
        if inode.is_dir and self._is_ancestor(inode, dst.dir):
            raise abi.kernel_error(abi.EINVAL, f"cannot move {old} into itself")
        if victim is not None:
            if victim.is_dir and not inode.is_dir:
                raise abi.kernel_error(abi.EISDIR, f"{new} is a directory")
            if inode.is_dir and not victim.is_dir:
                raise abi.kernel_error(abi.ENOTDIR, f"{new} is not a directory")
            if victim.children:
                raise abi.kernel_error(abi.ENOTEMPTY, new)
            if self._is_mount_root(dst.dir, dst.name) or self._is_mount_root(src.dir, src.name):
                raise abi.kernel_error(abi.EBUSY, f"{new} is a mount point")
            self._unlink(dst.dir, dst.name)
        src.dir.children.pop(src.name)
        dst.dir.children[dst.name] = inode
        if inode.is_dir:
            src.dir.nlink -= 1
            dst.dir.nlink += 1
            inode.parent = dst.dir
        for directory in (src.dir, dst.dir):
            self._touch(directory, 1, 2)
        self._touch(inode, 2)

    def _existing(self, found: Found, path: str) -> Inode:
        if found.inode is None:
            raise abi.kernel_error(abi.ENOENT, path)
        return found.inode

    def _is_ancestor(self, inode: Inode, directory: Inode) -> bool:
        cur = directory
        while True:
            if cur is inode:
                return True
            if cur.parent is None or cur.parent is cur:
                return False
            cur = cur.parent

    def _is_mount_root(self, directory: Inode, name: str) -> bool:
        """Is something mounted on directory/name, in any namespace (EBUSY)?"""
        child = directory.children.get(name)
        return any(ns.covering(child) is not None for ns in self.mnt_namespaces.values())

    def _same_mount(self, fss: FsStruct, a: Inode, b: Inode, old: str, new: str) -> None:
        ns = self._ns(fss)
        if ns.mount_of(a) is not ns.mount_of(b):
            raise abi.kernel_error(abi.EXDEV, f"{old} and {new} are on different mounts")

    # --- stat, access ---------------------------------------------------------------------------
    def _stat_path(self, fs: int, path: str, follow: bool) -> object:
        fss = self._fs(fs)
        try:
            found = self._walk(fss, path, follow)
        except ProcRedirect as redirect:
            return {"proc": redirect.rel, "follow": redirect.follow}
        inode = self._existing(found, path)
        return inode.stat(self._ns(fss).mount_of(found.dir or inode).dev)

    @op
    async def stat(self, req: Call, fs: int, path: str) -> object:
        return self._stat_path(fs, path, True)

    @op
    async def lstat(self, req: Call, fs: int, path: str) -> object:
        return self._stat_path(fs, path, False)

    @op
    async def access(self, req: Call, fs: int, path: str, mode: int = abi.F_OK) -> object:
        """access(2) as root: read and write always, execute if any x bit (or a directory)."""
        if not isinstance(mode, int) or mode & ~(abi.R_OK | abi.W_OK | abi.X_OK):
            raise abi.kernel_error(abi.EINVAL, f"access mode {mode!r}")
        result = self._stat_path(fs, path, True)
        if "proc" in result:
            return result
        if mode & abi.X_OK and not (st.S_ISDIR(result["st_mode"]) or result["st_mode"] & 0o111):
            raise abi.kernel_error(abi.EACCES, f"{path} is not executable")
        return 0

    # --- what /proc shows of the vfs --------------------------------------------------------
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

    # --- invariants ------------------------------------------------------------------------------
    @op
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
            "orphan_inodes": len(self.orphans),
            "waiters": len(self.waiters),
        }
