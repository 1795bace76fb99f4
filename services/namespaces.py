"""namespaces: the nsproxy and the uts, ipc, net, cgroup, time and user namespaces.

copy_namespaces is how a container is born: each CLONE_NEW* flag makes one
new namespace, the rest are shared by reference. The pid and mount
namespaces are owned by the pid and vfs services, so this service asks them
(``pid.create_pid_ns``, ``vfs.copy_mnt_ns``) and keeps only their handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ukernel import abi
from ukernel.service import Call, Service, get, op

#: The namespaces this service owns: kind -> (CLONE flag, initial data).
OWN_KINDS: dict[str, tuple[int, dict[str, Any]]] = {
    "uts": (
        abi.CLONE_NEWUTS,
        {"sysname": "ukernel", "nodename": "ukernel", "release": "6.9-ukernel", "domainname": "(none)"},
    ),
    "ipc": (abi.CLONE_NEWIPC, {}),
    "net": (abi.CLONE_NEWNET, {"links": ["lo"]}),
    "cgroup": (abi.CLONE_NEWCGROUP, {"root": "/"}),
    "user": (abi.CLONE_NEWUSER, {"uid_map": "0 0 4294967295"}),
    "time": (abi.CLONE_NEWTIME, {"monotonic_offset": 0}),
}


@dataclass
class Namespace:
    kind: str
    data: dict[str, Any]
    level: int = 0
    count: int = 1


@dataclass
class Nsproxy:
    """struct nsproxy: one handle per namespace kind; pid_ns is pid_ns_for_children."""

    ns: dict[str, int] = field(default_factory=dict)
    pid_ns: int = 1
    mnt_ns: int = 1
    count: int = 1


class NamespacesService(Service):
    name = "namespaces"
    calls = frozenset({"pid", "vfs"})

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: dict[int, Namespace] = {}
        self.nsproxies: dict[int, Nsproxy] = {}

    @op
    async def init_nsproxy(self, req: Call, pid_ns: int, mnt_ns: int) -> dict:
        """init_nsproxy: the namespaces of the first task."""
        own = {
            kind: self.new_handle(self.namespaces, Namespace(kind, dict(data))) for kind, (_, data) in OWN_KINDS.items()
        }
        return self._result(self.new_handle(self.nsproxies, Nsproxy(own, pid_ns, mnt_ns)))

    @op
    async def share_nsproxy(self, req: Call, nsproxy: int) -> dict:
        """No CLONE_NEW* flag: the child shares the parent's nsproxy (get_nsproxy)."""
        get(self.nsproxies, nsproxy, "nsproxy").count += 1
        return self._result(nsproxy)

    @op
    async def copy_namespaces(self, req: Call, nsproxy: int, flags: int, fs: int | None = None) -> dict:
        """create_new_namespaces: a new nsproxy, a new namespace for each NEW flag.
        ``fs`` is the child's fs_struct: a new mount namespace becomes where its paths walk."""
        old = get(self.nsproxies, nsproxy, "nsproxy")
        if flags & abi.CLONE_NEWIPC and flags & abi.CLONE_SYSVSEM:
            raise abi.kernel_error(
                abi.EINVAL, "CLONE_NEWIPC with CLONE_SYSVSEM: a semadj list cannot span two ipc namespaces"
            )
        own: dict[str, int] = {}
        made: list[int] = []
        for kind, (flag, _) in OWN_KINDS.items():
            if flags & flag:
                parent = self.namespaces[old.ns[kind]]
                handle = self.new_handle(self.namespaces, Namespace(kind, dict(parent.data), parent.level + 1))
                made.append(handle)
            else:
                handle = old.ns[kind]
                self.namespaces[handle].count += 1
            own[kind] = handle
        new = Nsproxy(own, old.pid_ns, old.mnt_ns, 1)
        try:
            if flags & abi.CLONE_NEWNS:
                new.mnt_ns = (await self.call("vfs", "copy_mnt_ns", mnt_ns=old.mnt_ns, fs=fs))["mnt_ns"]
            else:
                await self.call("vfs", "get_mnt_ns", mnt_ns=old.mnt_ns)
        except OSError:
            self._put_own(new)
            raise
        try:
            if flags & abi.CLONE_NEWPID:
                new.pid_ns = (await self.call("pid", "create_pid_ns", parent=old.pid_ns))["ns"]
            else:
                await self.call("pid", "get_pid_ns", ns=old.pid_ns)
        except OSError:  # unwind what this step took, then report
            self._put_own(new)
            await self.call("vfs", "put_mnt_ns", mnt_ns=new.mnt_ns)
            raise
        return self._result(self.new_handle(self.nsproxies, new))

    @op
    async def put_nsproxy(self, req: Call, nsproxy: int) -> dict:
        proxy = get(self.nsproxies, nsproxy, "nsproxy")
        proxy.count -= 1
        if proxy.count == 0:
            del self.nsproxies[nsproxy]
            await self._release(proxy)
        return {"count": proxy.count}

    async def _release(self, proxy: Nsproxy) -> None:
        """Drop the references one nsproxy holds (free_nsproxy)."""
        self._put_own(proxy)
        await self.call("vfs", "put_mnt_ns", mnt_ns=proxy.mnt_ns)
        await self.call("pid", "put_pid_ns", ns=proxy.pid_ns)

    def _put_own(self, proxy: Nsproxy) -> None:
        for handle in proxy.ns.values():
            ns = self.namespaces[handle]
            ns.count -= 1
            if ns.count == 0:
                del self.namespaces[handle]

    def _result(self, handle: int) -> dict:
        proxy = self.nsproxies[handle]
        return {"nsproxy": handle, "pid_ns": proxy.pid_ns, "mnt_ns": proxy.mnt_ns}

    # --- uts ------------------------------------------------------------------
    @op
    async def uname(self, req: Call, nsproxy: int) -> dict:
        uts = self.namespaces[get(self.nsproxies, nsproxy, "nsproxy").ns["uts"]]
        return {k: uts.data[k] for k in ("sysname", "nodename", "release")} | {"machine": "trio"}

    @op
    async def sethostname(self, req: Call, nsproxy: int, name: str) -> None:
        if len(name.encode()) > 64:
            raise abi.kernel_error(abi.EINVAL, "a hostname is at most 64 bytes")
        self.namespaces[get(self.nsproxies, nsproxy, "nsproxy").ns["uts"]].data["nodename"] = name

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "nsproxies": len(self.nsproxies),
            "nsproxy_refs": sum(p.count for p in self.nsproxies.values()),
            "namespaces": len(self.namespaces),
            "ns_refs": sum(n.count for n in self.namespaces.values()),
        }
