"""Mount namespaces and mount(2) (fs/namespace.c).

Each namespace has its own mount table; CLONE_NEWNS copies it, and what is
mounted in the copy is not seen by the original. An fs_struct remembers the
namespace its paths are walked in: copy_mnt_ns moves the child's there, as
Linux's copy_mnt_ns(..., new_fs) does.
"""

from __future__ import annotations

import stat as st

from ukernel import abi
from ukernel.ipc.service import Call, get, op

from .inode import FsStruct, Inode
from .namei import MntNamespace, Mount, ProcRedirect, d_path


class MountOps:
    """The vfs's mount-namespace ops (mixed into VfsService)."""

    @op
    async def copy_mnt_ns(self, req: Call, mnt_ns: int, fs: int | None = None, inum: int = 0) -> dict:
        """CLONE_NEWNS: a copy of the mount table; later mounts stay on their side.
        ``fs`` (the child's own fs_struct) walks its paths in the copy from now on;
        ``inum`` is the number the namespaces service gave it."""
        old = get(self.mnt_namespaces, mnt_ns, "mount namespace")
        fss = self._fs(fs) if fs is not None else None
        handle = self.new_handle(
            self.mnt_namespaces, MntNamespace(list(old.mounts), inum=inum, max_mounts=old.max_mounts)
        )
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
    async def nsproxy_refs(self, req: Call) -> list[list[int]]:
        """[mnt_ns, n]: the references nsproxies hold on each mount namespace (all of its
        count but the initial one's own, which is never put). RS puts them for a namespaces
        instance lost with its nsproxies (restore.py)."""
        held = ((h, ns.count - (h == self.init_mnt_ns)) for h, ns in self.mnt_namespaces.items())
        return [[handle, n] for handle, n in held if n > 0]

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
        self._ns(fss).add(self._new_mount(fstype, source, inode))

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
        ns.remove(mount)

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

    def _new_mount(self, fstype: str, source: str, mountpoint: Inode) -> Mount:
        root = self._new_inode(st.S_IFDIR | (0o555 if fstype == "proc" else 0o1777), nlink=2)
        root.parent = root
        if fstype == "proc":
            root.proc = ""
        return Mount(fstype, source, root, mountpoint, next(self._devs))
