"""namespaces: the nsproxy and the uts, ipc, net, cgroup, time and user namespaces.

copy_namespaces is how a container is born: each CLONE_NEW* flag makes one
new namespace, the rest are shared by reference. The pid and mount
namespaces are owned by the pid and vfs services, so this service asks them
(``pid.create_pid_ns``, ``vfs.copy_mnt_ns``) and keeps only their handles.
unshare and setns go through the same code (kernel/nsproxy.c:
create_new_namespaces, unshare_nsproxy_namespaces, setns's install step).

Each namespace has an inode number, what ``/proc/PID/ns/uts`` names
(``uts:[4026531838]``): the initial ones have Linux's numbers, new ones
count up from 4026532000. This service hands out every number, also for the
pid and mount namespaces it asks the others to make (proc_alloc_inum).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ukernel import abi
from ukernel.ipc.service import Call, Service, get, op, touches
from ukernel.ipc.waitq import Waiter, WaitQueues

from . import sem

UTS_INIT = {
    "sysname": "ukernel",
    "nodename": "ukernel",
    "release": "6.9-ukernel",
    "version": "#1",
    "machine": "trio",
    "domainname": "(none)",
}
UTS_FIELD_MAX = 64  # __NEW_UTS_LEN: hostname and domainname are at most 64 bytes
CLOCKS = ("monotonic", "boottime")  # the clocks a time namespace offsets


def _time_ns(frozen: bool) -> dict:
    return {"offsets": {clock: [0, 0] for clock in CLOCKS}, "frozen": frozen}


# fmt: off
#: The kinds this service owns: kind -> (CLONE flag, data at boot, data of a new one
#: made from its parent's). A new uts ns copies its parent's names (copy_utsname); a
#: new ipc ns has no semaphores; a new net ns has only its loopback; a new user ns maps
#: its root to the creator's uid 0 (one uid_map line); a new time ns starts at offset 0.
KINDS: dict[str, tuple[int, Callable[[], dict], Callable[[dict], dict]]] = {
    "uts":    (abi.CLONE_NEWUTS,    lambda: dict(UTS_INIT),                      dict),
    "ipc":    (abi.CLONE_NEWIPC,    lambda: {"sem": sem.SemNamespace()},         lambda p: {"sem": sem.SemNamespace()}),
    "net":    (abi.CLONE_NEWNET,    lambda: {"links": ["lo", "eth0"]},           lambda p: {"links": ["lo"]}),
    "cgroup": (abi.CLONE_NEWCGROUP, lambda: {"root": "/"},                       lambda p: {"root": "/"}),
    "user":   (abi.CLONE_NEWUSER,   lambda: {"uid_map": [0, 0, 4294967295]},     lambda p: {"uid_map": [0, 0, 1]}),
    "time":   (abi.CLONE_NEWTIME,   lambda: _time_ns(frozen=True),               lambda p: _time_ns(frozen=False)),
}
#: The nsproxy's slots: the time namespace has two, as in Linux (time_ns for the task,
#: time_ns_for_children for what it forks; unshare(CLONE_NEWTIME) changes only the second).
SLOTS: dict[str, str] = {kind: kind for kind in KINDS} | {"time_for_children": "time"}
# fmt: on


@dataclass
class Namespace:
    kind: str
    data: dict[str, Any]
    level: int = 0
    count: int = 1
    inum: int = 0


@dataclass
class Nsproxy:
    """struct nsproxy: one handle per slot; pid_ns is pid_ns_for_children."""

    ns: dict[str, int] = field(default_factory=dict)
    pid_ns: int = 1
    mnt_ns: int = 1
    count: int = 1


class NamespacesService(WaitQueues, Service):
    name = "namespaces"
    calls = frozenset({"pid", "vfs"})
    takes = {}  # Config field -> keyword of __init__ (services.build)

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: dict[int, Namespace] = {}
        self.nsproxies: dict[int, Nsproxy] = {}
        self.undo_lists: dict[int, sem.UndoList] = {}
        self.waiters: dict[int, Waiter] = {}
        self._inums = itertools.count(abi.FIRST_NS_INUM)

    # --- the nsproxy ------------------------------------------------------------
    @op
    async def init_nsproxy(self, req: Call, pid_ns: int, mnt_ns: int) -> dict:
        """init_nsproxy: the namespaces of the first task."""
        own = {
            kind: self.new_handle(self.namespaces, Namespace(kind, make(), inum=abi.INIT_NS_INUMS[kind]))
            for kind, (_, make, _) in KINDS.items()
        }
        own["time_for_children"] = own["time"]
        self.namespaces[own["time"]].count += 1
        return self._result(self.new_handle(self.nsproxies, Nsproxy(own, pid_ns, mnt_ns)))

    def count_touches(self, args: dict, change: int) -> list | None:
        """explore's reduction (``@touches``): a get or put that leaves the nsproxy's count above
        zero changes a count (they commute); a fork that needs its own nsproxy (a time namespace
        unshared) or the last put (it frees namespaces, asking pid and vfs) is the whole service."""
        proxy = self.nsproxies[args["nsproxy"]]
        if change > 0 and not (args.get("vm") or proxy.ns["time"] == proxy.ns["time_for_children"]):
            return None
        if change < 0 and proxy.count <= 1:
            return None
        return [("nsproxy", args["nsproxy"], "c")]

    @op
    @touches(lambda service, args: service.count_touches(args, +1))
    async def share_nsproxy(self, req: Call, nsproxy: int, vm: bool = False) -> dict:
        """No CLONE_NEW* flag: the child shares the parent's nsproxy (get_nsproxy), unless
        the parent unshared its time namespace and the child is a process: then the child
        needs its own nsproxy in time_for_children (copy_namespaces' timens check)."""
        old = get(self.nsproxies, nsproxy, "nsproxy")
        if vm or old.ns["time"] == old.ns["time_for_children"]:
            old.count += 1
            return self._result(nsproxy)
        new = await self._dup_nsproxy(old)
        self._timens_on_fork(new)
        return self._result(self.new_handle(self.nsproxies, new))

    @op
    async def copy_namespaces(
        self,
        req: Call,
        nsproxy: int,
        flags: int,
        fs: int | None = None,
        active_pid_ns: int | None = None,
        vm: bool = False,
    ) -> dict:
        """create_new_namespaces for clone: a new nsproxy, a new namespace for each NEW
        flag. ``fs`` is the child's fs_struct: a new mount namespace becomes where its
        paths walk. A process child enters time_for_children (timens_on_fork)."""
        old = get(self.nsproxies, nsproxy, "nsproxy")
        if flags & abi.CLONE_NEWIPC and flags & abi.CLONE_SYSVSEM:
            raise abi.kernel_error(
                abi.EINVAL, "CLONE_NEWIPC with CLONE_SYSVSEM: a semadj list cannot span two ipc namespaces"
            )
        new = await self._create_new_namespaces(old, flags, fs, active_pid_ns)
        if not vm:
            self._timens_on_fork(new)
        return self._result(self.new_handle(self.nsproxies, new))

    @op
    async def unshare_nsproxy(
        self, req: Call, nsproxy: int, flags: int, fs: int, active_pid_ns: int | None = None
    ) -> dict:
        """unshare_nsproxy_namespaces: the caller's new nsproxy. The caller stays in its
        pid and time namespaces; only what it forks from now on enters the new ones. The
        kernel puts the old nsproxy (switch_task_namespaces)."""
        old = get(self.nsproxies, nsproxy, "nsproxy")
        new = await self._create_new_namespaces(old, flags, fs, active_pid_ns)
        return self._result(self.new_handle(self.nsproxies, new))

    async def _create_new_namespaces(self, old: Nsproxy, flags: int, fs: int | None, active: int | None) -> Nsproxy:
        """One new namespace per NEW flag, the others shared; then mount and pid, which
        other services own. On failure every reference taken is given back."""
        if flags & abi.CLONE_NEWPID and active is not None and active != old.pid_ns:
            raise abi.kernel_error(
                abi.EINVAL, "CLONE_NEWPID after unshare(CLONE_NEWPID) or setns: children already go elsewhere"
            )
        if flags & abi.CLONE_NEWUSER and self.namespaces[old.ns["user"]].level > abi.MAX_USER_NS_LEVEL:
            raise abi.kernel_error(abi.EUSERS, f"user namespaces nest at most {abi.MAX_USER_NS_LEVEL} deep")
        new = Nsproxy({}, old.pid_ns, old.mnt_ns)
        for slot, handle in old.ns.items():
            if slot != "time" and flags & KINDS[SLOTS[slot]][0]:
                new.ns[slot] = self._new_ns(slot, handle)
            else:
                new.ns[slot] = handle
                self.namespaces[handle].count += 1
        try:
            if flags & abi.CLONE_NEWNS:
                reply = await self.call("vfs", "copy_mnt_ns", mnt_ns=old.mnt_ns, fs=fs, inum=next(self._inums))
                new.mnt_ns = reply["mnt_ns"]
            else:
                await self.call("vfs", "get_mnt_ns", mnt_ns=old.mnt_ns)
        except OSError:
            self._put_own(new)
            raise
        try:
            if flags & abi.CLONE_NEWPID:
                reply = await self.call("pid", "create_pid_ns", parent=old.pid_ns, inum=next(self._inums))
                new.pid_ns = reply["ns"]
            else:
                await self.call("pid", "get_pid_ns", ns=old.pid_ns)
        except OSError:  # unwind what this step took, then report
            self._put_own(new)
            await self.call("vfs", "put_mnt_ns", mnt_ns=new.mnt_ns)
            raise
        return new

    def _new_ns(self, slot: str, parent_handle: int) -> int:
        kind = SLOTS[slot]
        parent = self.namespaces[parent_handle]
        data = KINDS[kind][2](parent.data)
        return self.new_handle(self.namespaces, Namespace(kind, data, parent.level + 1, inum=next(self._inums)))

    async def _dup_nsproxy(self, old: Nsproxy) -> Nsproxy:
        """A new nsproxy holding the same namespaces (create_new_namespaces with no flags)."""
        new = Nsproxy(dict(old.ns), old.pid_ns, old.mnt_ns)
        for handle in new.ns.values():
            self.namespaces[handle].count += 1
        await self.call("vfs", "get_mnt_ns", mnt_ns=new.mnt_ns)
        await self.call("pid", "get_pid_ns", ns=new.pid_ns)
        return new

    def _timens_on_fork(self, proxy: Nsproxy) -> None:
        """A new process enters time_for_children; its offsets are frozen from now on."""
        target = proxy.ns["time_for_children"]
        if proxy.ns["time"] != target:
            self._put_ns(proxy.ns["time"])
            self.namespaces[target].count += 1
            proxy.ns["time"] = target
        self.namespaces[target].data["frozen"] = True

    @op
    @touches(lambda service, args: service.count_touches(args, -1))
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
        await _put_again_if_lost(lambda: self.call("vfs", "put_mnt_ns", mnt_ns=proxy.mnt_ns))
        await _put_again_if_lost(lambda: self.call("pid", "put_pid_ns", ns=proxy.pid_ns))

    def _put_own(self, proxy: Nsproxy) -> None:
        for handle in proxy.ns.values():
            self._put_ns(handle)

    def _put_ns(self, handle: int) -> None:
        ns = self.namespaces[handle]
        ns.count -= 1
        if ns.count == 0:
            del self.namespaces[handle]

    def _result(self, handle: int) -> dict:
        """What the kernel keeps: the handles it needs, and the time offsets of the
        task's time namespace (Linux maps them into the vDSO's vvar page)."""
        proxy = self.nsproxies[handle]
        offsets = self.namespaces[proxy.ns["time"]].data["offsets"]
        return {
            "nsproxy": handle,
            "pid_ns": proxy.pid_ns,
            "mnt_ns": proxy.mnt_ns,
            "time_offsets": {clock: sec * 10**9 + nsec for clock, (sec, nsec) in offsets.items()},
        }

    def _own(self, nsproxy: int, slot: str) -> Namespace:
        return self.namespaces[get(self.nsproxies, nsproxy, "nsproxy").ns[slot]]

    # --- setns ------------------------------------------------------------------
    @op
    async def setns(
        self, req: Call, nsproxy: int, kind: str, inum: int, fs: int, active_pid_ns: int, threaded: bool = False
    ) -> dict:
        """setns(2)'s install step: a new nsproxy like the caller's but in the namespace
        numbered ``inum``. pid: only the caller's own or a descendant, and only for its
        children; mnt: root and cwd move to that namespace's '/'; time: the caller too
        (timens_install). The kernel puts the old nsproxy."""
        old = get(self.nsproxies, nsproxy, "nsproxy")
        new = Nsproxy(dict(old.ns), old.pid_ns, old.mnt_ns)
        if kind in KINDS:
            self._install_own(new, kind, inum, threaded)
        elif kind == "pid":
            new.pid_ns = await self.call("pid", "pidns_install", active=active_pid_ns, inum=inum)
        elif kind == "mnt":
            new.mnt_ns = (await self.call("vfs", "mntns_install", fs=fs, inum=inum))["mnt_ns"]
        else:
            raise abi.kernel_error(abi.EINVAL, f"no namespace kind {kind!r}")
        for handle in new.ns.values():
            self.namespaces[handle].count += 1
        if kind != "mnt":
            await self.call("vfs", "get_mnt_ns", mnt_ns=new.mnt_ns)
        if kind != "pid":
            await self.call("pid", "get_pid_ns", ns=new.pid_ns)
        return self._result(self.new_handle(self.nsproxies, new))

    def _install_own(self, new: Nsproxy, kind: str, inum: int, threaded: bool) -> None:
        """The *_install checks of this service's kinds; the slot(s) point at the target."""
        handle = next((h for h, n in self.namespaces.items() if n.kind == kind and n.inum == inum), None)
        if handle is None:
            raise abi.kernel_error(abi.EINVAL, f"{kind} namespace {inum} is gone")
        if kind == "user" and handle == new.ns["user"]:
            raise abi.kernel_error(abi.EINVAL, "setns to the caller's own user namespace")
        if kind == "user" and threaded:
            raise abi.kernel_error(abi.EINVAL, "a multithreaded process cannot enter another user namespace")
        if kind == "time":
            if threaded:
                raise abi.kernel_error(abi.EUSERS, "a multithreaded process cannot enter another time namespace")
            new.ns["time_for_children"] = handle
            self.namespaces[handle].data["frozen"] = True
        new.ns[kind] = handle

    # --- /proc/PID/ns -------------------------------------------------------------
    @op
    async def ns_links(self, req: Call, nsproxy: int, pid_ns: int) -> dict:
        """The targets of /proc/PID/ns/*: ``kind:[inum]`` for each slot; ``pid`` is the
        task's own pid namespace (``pid_ns``), ``pid_for_children`` the nsproxy's."""
        proxy = get(self.nsproxies, nsproxy, "nsproxy")
        links = {slot: f"{SLOTS[slot]}:[{self.namespaces[h].inum}]" for slot, h in proxy.ns.items()}
        links["pid"] = f"pid:[{await self.call('pid', 'pid_ns_inum', ns=pid_ns)}]"
        links["pid_for_children"] = f"pid:[{await self.call('pid', 'pid_ns_inum', ns=proxy.pid_ns)}]"
        links["mnt"] = f"mnt:[{await self.call('vfs', 'mnt_ns_inum', mnt_ns=proxy.mnt_ns)}]"
        return dict(sorted(links.items()))

    # --- uts ------------------------------------------------------------------
    @op
    async def uname(self, req: Call, nsproxy: int) -> dict:
        uts = self._own(nsproxy, "uts")
        return {k: uts.data[k] for k in ("sysname", "nodename", "release", "version", "machine", "domainname")}

    @op
    async def sethostname(self, req: Call, nsproxy: int, name: str) -> None:
        self._set_uts(nsproxy, "nodename", name)

    @op
    async def setdomainname(self, req: Call, nsproxy: int, name: str) -> None:
        self._set_uts(nsproxy, "domainname", name)

    def _set_uts(self, nsproxy: int, key: str, name: str) -> None:
        if len(name.encode()) > UTS_FIELD_MAX:
            raise abi.kernel_error(abi.EINVAL, f"a {key} is a string of at most {UTS_FIELD_MAX} bytes")
        self._own(nsproxy, "uts").data[key] = name

    # --- net, cgroup, user, time: what /proc shows of them -------------------------
    @op
    async def net_links(self, req: Call, nsproxy: int) -> list[str]:
        """The network interfaces of the caller's net namespace (/proc/net/dev)."""
        return list(self._own(nsproxy, "net").data["links"])

    @op
    async def cgroup_root(self, req: Call, nsproxy: int) -> str:
        """The cgroup namespace's root: /proc/PID/cgroup shows paths relative to it."""
        return self._own(nsproxy, "cgroup").data["root"]

    @op
    async def uid_map(self, req: Call, nsproxy: int) -> list[int]:
        """The user namespace's one uid_map line: first uid inside, outside, count."""
        return list(self._own(nsproxy, "user").data["uid_map"])

    @op
    async def timens_offsets(self, req: Call, nsproxy: int) -> dict:
        """/proc/PID/timens_offsets: the offsets of time_for_children, clock -> [sec, nsec]."""
        return {clock: list(v) for clock, v in self._own(nsproxy, "time_for_children").data["offsets"].items()}

    @op
    async def set_timens_offset(self, req: Call, nsproxy: int, clock: str, sec: int, nsec: int) -> None:
        """A write to /proc/PID/timens_offsets: only before any task has entered the
        namespace (proc_timens_set_offset: EACCES once frozen)."""
        ns = self._own(nsproxy, "time_for_children")
        if clock not in CLOCKS:
            raise abi.kernel_error(abi.EINVAL, f"clock {clock!r}: only {', '.join(CLOCKS)}")
        if not 0 <= nsec < 10**9:
            raise abi.kernel_error(abi.EINVAL, "an offset is whole seconds and 0 <= nsec < 10**9")
        if ns.data["frozen"]:
            raise abi.kernel_error(abi.EACCES, "a task has entered this time namespace: its offsets are fixed")
        ns.data["offsets"][clock] = [sec, nsec]

    # --- System V semaphores (ipc/sem.c) ---------------------------------------------
    def _sem_ns(self, nsproxy: int) -> tuple[int, sem.SemNamespace]:
        handle = get(self.nsproxies, nsproxy, "nsproxy").ns["ipc"]
        return handle, self.namespaces[handle].data["sem"]

    @op
    async def semget(self, req: Call, nsproxy: int, key: int, nsems: int, semflg: int) -> int:
        return sem.semget(self._sem_ns(nsproxy)[1], key, nsems, semflg)

    @op
    async def semop(
        self, req: Call, nsproxy: int, semid: int, sops: list[list[int]], undo_list: int | None = None
    ) -> object:
        """semop: all operations at once or none. When it would block: EAGAIN under
        IPC_NOWAIT, else a wait-queue entry on the set (the kernel sleeps and asks
        again). SEM_UNDO records go to the caller's undo list, made here on first use;
        the reply names it."""
        ipc, ns = self._sem_ns(nsproxy)
        sma = sem.array(ns, semid)
        ops = sem.check_sops(sma, sops)
        blocked = sem.try_semop(sma, ops)
        if blocked is not None:
            num, flg = blocked
            if flg & abi.IPC_NOWAIT:
                raise abi.kernel_error(abi.EAGAIN, f"semaphore {num} of set {semid} would block (IPC_NOWAIT)")
            return self._prepare_to_wait(sma.waiters)
        if any(flg & abi.SEM_UNDO for _, _, flg in ops):
            undo_list = self._undo_list(undo_list, ipc)
            sem.record_undo(self.undo_lists[undo_list], semid, ops)
        await self._wake(sma.waiters)
        return {"undo_list": undo_list}

    def _undo_list(self, undo_list: int | None, ipc: int) -> int:
        """get_undo_list: the task's list, made on first use."""
        if undo_list is None:
            return self.new_handle(self.undo_lists, sem.UndoList(ipc))
        get(self.undo_lists, undo_list, "sem_undo_list")
        return undo_list

    @op
    async def semctl(self, req: Call, nsproxy: int, semid: int, semnum: int, cmd: int, arg: int = 0) -> int:
        """GETVAL, SETVAL (clears every process's semadj for it) and IPC_RMID (waiters get EIDRM)."""
        ipc, ns = self._sem_ns(nsproxy)
        sma = sem.array(ns, semid)
        if cmd == abi.IPC_RMID:
            del ns.arrays[semid]
            await self._wake(sma.waiters, error=abi.EIDRM)
            return 0
        if not 0 <= semnum < len(sma.values):
            raise abi.kernel_error(abi.EINVAL, f"semnum {semnum} is not below {len(sma.values)}")
        if cmd == abi.GETVAL:
            return sma.values[semnum]
        if cmd == abi.SETVAL:
            if not 0 <= arg <= abi.SEMVMX:
                raise abi.kernel_error(abi.ERANGE, f"SETVAL {arg!r} is not in 0..{abi.SEMVMX}")
            sma.values[semnum] = arg
            for lst in self.undo_lists.values():
                if lst.ipc == ipc:
                    lst.adj.get(semid, {}).pop(semnum, None)
            await self._wake(sma.waiters)
            return 0
        raise abi.kernel_error(abi.EINVAL, f"semctl command {cmd} (GETVAL, SETVAL, IPC_RMID)")

    @op
    async def copy_semundo(self, req: Call, undo_list: int | None, nsproxy: int) -> dict:
        """CLONE_SYSVSEM: parent and child share one undo list (made now if the parent
        had none); the reply is the handle both keep."""
        handle = self._undo_list(undo_list, get(self.nsproxies, nsproxy, "nsproxy").ns["ipc"])
        self.undo_lists[handle].count += 1
        return {"undo_list": handle}

    @op
    async def exit_sem(self, req: Call, undo_list: int) -> dict:
        """exit_sem: the last holder of an undo list applies its adjustments."""
        lst = get(self.undo_lists, undo_list, "sem_undo_list")
        lst.count -= 1
        if lst.count:
            return {"count": lst.count}
        del self.undo_lists[undo_list]
        ipc = self.namespaces.get(lst.ipc)
        if ipc is not None:
            for semid in sem.apply_undo(ipc.data["sem"], lst):
                await self._wake(ipc.data["sem"].arrays[semid].waiters)
        return {"count": 0}

    def wait_queues(self) -> list[list[int]]:
        return [a.waiters for n in self.namespaces.values() if n.kind == "ipc" for a in n.data["sem"].arrays.values()]

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "nsproxies": len(self.nsproxies),
            "nsproxy_refs": sum(p.count for p in self.nsproxies.values()),
            "namespaces": len(self.namespaces),
            "ns_refs": sum(n.count for n in self.namespaces.values()),
            "undo_lists": len(self.undo_lists),
            "waiters": len(self.waiters),
        }


async def _put_again_if_lost(put: Callable[[], Awaitable[object]]) -> None:
    """A put cannot fail (free_nsproxy returns void): one that did (a lost message, a
    fault injected) is sent once more, so the other service's count still drops."""
    try:
        await put()
    except OSError:
        await put()
