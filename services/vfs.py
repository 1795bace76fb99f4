"""vfs: a tmpfs, mount namespaces, fs_struct, files_struct and open files.

copy_files and copy_fs are two of fork's steps. Without CLONE_FILES the
child gets a new fd table (dup_fd) whose fds point at the *same* open file
descriptions, so offsets are shared; with it, the table itself is shared.
Three counts say who holds what: files_struct.count, fs_struct.users and
file.f_count.
"""

from __future__ import annotations

import stat as st
from collections.abc import Callable
from dataclasses import dataclass, field

from ukernel import abi
from ukernel.service import Call, Service, get, op

NR_OPEN_DEFAULT = 1024  # RLIMIT_NOFILE's usual soft limit


@dataclass
class Inode:
    mode: int  # S_IF* | permission bits
    data: bytearray = field(default_factory=bytearray)
    children: dict[str, Inode] = field(default_factory=dict)
    device: str = ""  # for character devices: console, null, zero
    nlink: int = 1

    @property
    def is_dir(self) -> bool:
        return st.S_ISDIR(self.mode)


@dataclass
class File:
    """struct file: an open file description, shared by dup and by fork."""

    inode: Inode
    path: str
    flags: int
    pos: int = 0
    f_count: int = 1


@dataclass
class FilesStruct:
    """struct files_struct: the fd table, with close-on-exec bits."""

    fds: dict[int, list] = field(default_factory=dict)  # fd -> [file handle, cloexec]
    count: int = 1


@dataclass
class FsStruct:
    """struct fs_struct: root, cwd and umask, shared under CLONE_FS."""

    root: str = "/"
    pwd: str = "/"
    umask: int = 0o022
    users: int = 1


@dataclass
class MntNamespace:
    mounts: list[str] = field(default_factory=lambda: ["/"])
    count: int = 1


class VfsService(Service):
    name = "vfs"
    calls = frozenset({"mm"})

    def __init__(self, stdin: bytes = b"", console: Callable[[bytes], None] | None = None):
        super().__init__()
        self.root = Inode(st.S_IFDIR | 0o755)
        self.files: dict[int, File] = {}
        self.files_structs: dict[int, FilesStruct] = {}
        self.fs_structs: dict[int, FsStruct] = {}
        self.mnt_namespaces: dict[int, MntNamespace] = {}
        self.init_mnt_ns = self.new_handle(self.mnt_namespaces, MntNamespace())  # never freed
        self.stdin = bytearray(stdin)
        self.output = bytearray()
        self.console_sink = console
        for path in ("/bin", "/dev", "/tmp", "/etc", "/proc"):
            self._mkdir(path, 0o755)
        for dev in ("console", "null", "zero"):
            self._dir("/dev").children[dev] = Inode(st.S_IFCHR | 0o666, device=dev)

    # --- path walk --------------------------------------------------------------
    def _abspath(self, fs: FsStruct | None, path: str) -> str:
        if not isinstance(path, str) or not path:
            raise abi.kernel_error(abi.ENOENT, "empty path")
        base = "/" if path.startswith("/") or fs is None else fs.pwd
        parts: list[str] = []
        for part in (base + "/" + path).split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()  # '..' stops at the root
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def _lookup(self, path: str) -> Inode:
        inode = self.root
        for part in filter(None, path.split("/")):
            if not inode.is_dir:
                raise abi.kernel_error(abi.ENOTDIR, f"{path}: a component is not a directory")
            if part not in inode.children:
                raise abi.kernel_error(abi.ENOENT, path)
            inode = inode.children[part]
        return inode

    def _dir(self, path: str) -> Inode:
        inode = self._lookup(path)
        if not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)
        return inode

    def _mkdir(self, path: str, mode: int) -> Inode:
        parent, name = path.rsplit("/", 1)
        inode = Inode(st.S_IFDIR | mode)
        self._dir(parent or "/").children[name] = inode
        return inode

    # --- set-up from the kernel (boot) ---------------------------------------------
    @op
    async def write_file(self, req: Call, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace a regular file (boot: /bin from userland/, files= config)."""
        path = self._abspath(None, path)
        parent, name = path.rsplit("/", 1)
        directory = self.root
        for part in filter(None, parent.split("/")):
            directory = directory.children.setdefault(part, Inode(st.S_IFDIR | 0o755))
        directory.children[name] = Inode(st.S_IFREG | mode, bytearray(data))

    @op
    async def kernel_read_file(self, req: Call, fs: int, path: str) -> dict:
        """What execve reads: the file's bytes, if it is a regular executable file."""
        inode = self._lookup(self._abspath(get(self.fs_structs, fs, "fs_struct"), path))
        if inode.is_dir:
            raise abi.kernel_error(abi.EACCES, f"{path} is a directory")
        if not st.S_ISREG(inode.mode) or not inode.mode & 0o111:
            raise abi.kernel_error(abi.EACCES, f"{path} is not executable")
        return {"data": bytes(inode.data), "path": self._abspath(self.fs_structs[fs], path)}

    @op
    async def init_files(self, req: Call) -> dict:
        """The first fd table: 0, 1, 2 on one open /dev/console."""
        console = self.new_handle(self.files, File(self._lookup("/dev/console"), "/dev/console", abi.O_RDWR, f_count=3))
        return {
            "files": self.new_handle(
                self.files_structs, FilesStruct({0: [console, False], 1: [console, False], 2: [console, False]})
            )
        }

    @op
    async def init_fs(self, req: Call) -> dict:
        return {"fs": self.new_handle(self.fs_structs, FsStruct())}

    # --- copy_files -----------------------------------------------------------------
    @op
    async def share_files(self, req: Call, files: int) -> dict:
        """CLONE_FILES: atomic_inc(&oldf->count), the same table."""
        get(self.files_structs, files, "files_struct").count += 1
        return {"files": files}

    @op
    async def dup_files(self, req: Call, files: int) -> dict:
        """dup_fd: a new table pointing at the same open files (f_count++ each)."""
        old = get(self.files_structs, files, "files_struct")
        for handle, _ in old.fds.values():
            self.files[handle].f_count += 1
        table = {fd: list(entry) for fd, entry in old.fds.items()}
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}

    @op
    async def put_files(self, req: Call, files: int) -> dict:
        fst = get(self.files_structs, files, "files_struct")
        fst.count -= 1
        if fst.count == 0:
            for fd in list(fst.fds):
                self._close(fst, fd)
            del self.files_structs[files]
        return {"count": fst.count}

    @op
    async def exec_files(self, req: Call, files: int) -> dict:
        """execve: unshare the fd table (undoing CLONE_FILES), then close FD_CLOEXEC fds."""
        fst = get(self.files_structs, files, "files_struct")
        if fst.count > 1:
            new = (await self.dup_files(req, files))["files"]
            fst.count -= 1  # this task lets go of the shared table
            files, fst = new, self.files_structs[new]
        for fd in [fd for fd, (_, cloexec) in fst.fds.items() if cloexec]:
            self._close(fst, fd)
        return {"files": files}

    # --- copy_fs ----------------------------------------------------------------------
    @op
    async def share_fs(self, req: Call, fs: int) -> dict:
        get(self.fs_structs, fs, "fs_struct").users += 1
        return {"fs": fs}

    @op
    async def copy_fs(self, req: Call, fs: int) -> dict:
        """copy_fs_struct: same root, cwd and umask, its own from now on."""
        old = get(self.fs_structs, fs, "fs_struct")
        return {"fs": self.new_handle(self.fs_structs, FsStruct(old.root, old.pwd, old.umask))}

    @op
    async def put_fs(self, req: Call, fs: int) -> dict:
        fss = get(self.fs_structs, fs, "fs_struct")
        fss.users -= 1
        if fss.users == 0:
            del self.fs_structs[fs]
        return {"users": fss.users}

    # --- mount namespaces -----------------------------------------------------------
    @op
    async def copy_mnt_ns(self, req: Call, mnt_ns: int) -> dict:
        """CLONE_NEWNS: a copy of the mount table; later mounts stay on their side."""
        old = get(self.mnt_namespaces, mnt_ns, "mount namespace")
        return {"mnt_ns": self.new_handle(self.mnt_namespaces, MntNamespace(list(old.mounts)))}

    @op
    async def get_mnt_ns(self, req: Call, mnt_ns: int) -> None:
        get(self.mnt_namespaces, mnt_ns, "mount namespace").count += 1

    @op
    async def put_mnt_ns(self, req: Call, mnt_ns: int) -> None:
        ns = get(self.mnt_namespaces, mnt_ns, "mount namespace")
        ns.count -= 1
        if ns.count == 0 and mnt_ns != self.init_mnt_ns:
            del self.mnt_namespaces[mnt_ns]

    # --- file syscalls ----------------------------------------------------------------
    def _file(self, fst: FilesStruct, fd: int) -> File:
        if not isinstance(fd, int) or fd not in fst.fds:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open")
        return self.files[fst.fds[fd][0]]

    def _install(self, fst: FilesStruct, handle: int, cloexec: bool, lowest: int = 0) -> int:
        """get_unused_fd_flags: the lowest free fd."""
        fd = lowest
        while fd in fst.fds:
            fd += 1
        if fd >= NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EMFILE, f"no free fd below {NR_OPEN_DEFAULT}")
        fst.fds[fd] = [handle, cloexec]
        return fd

    def _close(self, fst: FilesStruct, fd: int) -> None:
        handle, _ = fst.fds.pop(fd)
        file = self.files[handle]
        file.f_count -= 1
        if file.f_count == 0:
            del self.files[handle]

    @op
    async def open(self, req: Call, files: int, fs: int, path: str, flags: int = 0, mode: int = 0o666) -> int:
        fst = get(self.files_structs, files, "files_struct")
        fss = get(self.fs_structs, fs, "fs_struct")
        path = self._abspath(fss, path)
        try:
            inode = self._lookup(path)
            if flags & abi.O_CREAT and flags & abi.O_EXCL:
                raise abi.kernel_error(abi.EEXIST, path)
        except OSError as exc:
            if exc.errno != abi.ENOENT or not flags & abi.O_CREAT:
                raise
            parent, name = path.rsplit("/", 1)
            inode = Inode(st.S_IFREG | (mode & ~fss.umask & 0o7777))
            self._dir(parent or "/").children[name] = inode
        if inode.is_dir and (flags & abi.O_ACCMODE != abi.O_RDONLY or flags & abi.O_CREAT):
            raise abi.kernel_error(abi.EISDIR, path)
        if flags & abi.O_DIRECTORY and not inode.is_dir:
            raise abi.kernel_error(abi.ENOTDIR, path)
        if flags & abi.O_TRUNC and st.S_ISREG(inode.mode) and flags & abi.O_ACCMODE != abi.O_RDONLY:
            inode.data.clear()
        handle = self.new_handle(self.files, File(inode, path, flags & ~abi.O_CLOEXEC))
        try:
            return self._install(fst, handle, bool(flags & abi.O_CLOEXEC))
        except OSError:
            del self.files[handle]
            raise

    @op
    async def close(self, req: Call, files: int, fd: int) -> None:
        fst = get(self.files_structs, files, "files_struct")
        self._file(fst, fd)
        self._close(fst, fd)

    @op
    async def read(self, req: Call, files: int, fd: int, n: int) -> bytes:
        file = self._file(get(self.files_structs, files, "files_struct"), fd)
        if n < 0:
            raise abi.kernel_error(abi.EINVAL, "negative count")
        if file.flags & abi.O_ACCMODE == abi.O_WRONLY:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for reading")
        inode = file.inode
        if inode.is_dir:
            raise abi.kernel_error(abi.EISDIR, file.path)
        if inode.device == "console":
            data = bytes(self.stdin[:n])
            del self.stdin[:n]
            return data
        if inode.device == "zero":
            return bytes(n)
        if inode.device == "null":
            return b""
        data = bytes(inode.data[file.pos : file.pos + n])
        file.pos += len(data)
        return data

    @op
    async def write(self, req: Call, files: int, fd: int, data: bytes) -> int:
        file = self._file(get(self.files_structs, files, "files_struct"), fd)
        if not isinstance(data, bytes):
            raise abi.kernel_error(abi.EFAULT, "write takes bytes")
        if file.flags & abi.O_ACCMODE == abi.O_RDONLY:
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is not open for writing")
        inode = file.inode
        if inode.device == "console":
            self.output += data
            if self.console_sink is not None:
                self.console_sink(data)
            return len(data)
        if inode.device in ("null", "zero"):
            return len(data)
        if file.flags & abi.O_APPEND:
            file.pos = len(inode.data)
        end = file.pos + len(data)
        if end > len(inode.data):
            inode.data.extend(bytes(end - len(inode.data)))
        inode.data[file.pos : end] = data
        file.pos = end
        return len(data)

    @op
    async def lseek(self, req: Call, files: int, fd: int, offset: int, whence: int) -> int:
        file = self._file(get(self.files_structs, files, "files_struct"), fd)
        if file.inode.device:
            raise abi.kernel_error(abi.ESPIPE, f"fd {fd} is a character device")
        base = {abi.SEEK_SET: 0, abi.SEEK_CUR: file.pos, abi.SEEK_END: len(file.inode.data)}.get(whence)
        if base is None or base + offset < 0:
            raise abi.kernel_error(abi.EINVAL, f"bad whence {whence} or offset {offset}")
        file.pos = base + offset
        return file.pos

    @op
    async def dup(self, req: Call, files: int, fd: int) -> int:
        fst = get(self.files_structs, files, "files_struct")
        self._file(fst, fd).f_count += 1
        return self._install(fst, fst.fds[fd][0], False)

    @op
    async def dup2(self, req: Call, files: int, old: int, new: int) -> int:
        fst = get(self.files_structs, files, "files_struct")
        file = self._file(fst, old)
        if not isinstance(new, int) or not 0 <= new < NR_OPEN_DEFAULT:
            raise abi.kernel_error(abi.EBADF, f"fd {new} is out of range")
        if new == old:
            return new
        if new in fst.fds:
            self._close(fst, new)
        file.f_count += 1
        fst.fds[new] = [fst.fds[old][0], False]
        return new

    @op
    async def chdir(self, req: Call, fs: int, path: str) -> None:
        fss = get(self.fs_structs, fs, "fs_struct")
        path = self._abspath(fss, path)
        self._dir(path)
        fss.pwd = path

    @op
    async def getcwd(self, req: Call, fs: int) -> str:
        return get(self.fs_structs, fs, "fs_struct").pwd

    @op
    async def console_output(self, req: Call) -> bytes:
        """Everything written to /dev/console so far (ukernel.run's stdout)."""
        return bytes(self.output)

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
        }
