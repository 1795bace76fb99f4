"""kernel/sys.c: ids, process groups and sessions, limits, rusage and the host name.

getpid/gettid/getppid are answered from the task_struct (no message). A group and a session are named by the struct pid of their leader; here the
leader's numbers at every pid-namespace level, so each caller sees them in
its own namespace. They live on the thread-group leader (signal_struct in
Linux) and are inherited by fork.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import abi
from .task import TaskStruct, nr_in

if TYPE_CHECKING:
    from .core import Kernel


def _find(k: Kernel, task: TaskStruct, pid: int) -> TaskStruct:
    """pid 0 is the caller; otherwise the process numbered pid in the caller's namespace."""
    if pid == 0:
        return task.leader
    if pid < 0:
        raise abi.kernel_error(abi.EINVAL, f"bad pid {pid}")
    target = k.tasks.find(pid, task)
    if target is None or target.state != "running":
        raise abi.kernel_error(abi.ESRCH, f"no process {pid}")
    return target.leader


async def sys_getpgid(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    return nr_in(_find(k, task, pid).pgrp, task.level)


async def sys_getsid(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    return nr_in(_find(k, task, pid).session, task.level)


async def sys_setpgid(k: Kernel, task: TaskStruct, meta: dict, pid: int, pgid: int) -> None:
    """The rules of setpgid(2): self or a child not yet exec'd, same session, no session leader."""
    if pgid < 0:
        raise abi.kernel_error(abi.EINVAL, f"negative pgid {pgid}")
    me = task.leader
    target = _find(k, task, pid)
    if target is not me:
        if target.real_parent is None or target.real_parent.leader is not me:
            raise abi.kernel_error(abi.ESRCH, f"{pid} is neither the caller nor its child")
        if target.did_exec:
            raise abi.kernel_error(abi.EACCES, f"child {pid} has already called execve")
        if target.session != me.session:
            raise abi.kernel_error(abi.EPERM, f"child {pid} is in another session")
    if target.session == target.numbers:
        raise abi.kernel_error(abi.EPERM, "a session leader cannot change its process group")
    if pgid == 0 or pgid == target.nr_in(task.level):
        target.pgrp = target.numbers
        return
    members = [
        t for t in k.tasks if t.leader is t and nr_in(t.pgrp, task.level) == pgid and t.session == target.session
    ]
    if not members:
        raise abi.kernel_error(abi.EPERM, f"no process group {pgid} in the caller's session")
    target.pgrp = members[0].pgrp


async def sys_setsid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    """A new session and group, led by the caller; EPERM for a group leader."""
    me = task.leader
    if any(t.leader is t and t.pgrp == me.numbers for t in k.tasks):
        raise abi.kernel_error(abi.EPERM, "the caller leads a process group")
    me.session = me.pgrp = me.numbers
    return me.nr_in(task.level)


async def sys_getpid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.leader.nr_in(task.level)


async def sys_gettid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.nr_in(task.level)


async def sys_getppid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.ppid_vnr(task)


async def sys_set_child_subreaper(k: Kernel, task: TaskStruct, meta: dict, flag: bool) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants come to us, not to init."""
    task.leader.child_subreaper = bool(flag)


async def sys_prlimit(k: Kernel, task: TaskStruct, meta: dict, resource: int, new: int | None) -> int:
    """prlimit on the calling process; only RLIMIT_NPROC is modelled."""
    if resource != abi.RLIMIT_NPROC:
        raise abi.kernel_error(abi.ENOSYS, f"resource {resource} is not modelled (only RLIMIT_NPROC)")
    old = task.leader.rlim.get(resource, k.config.nproc)
    if new is not None:  # -1 (RLIM_INFINITY) and up: the argument table checked it
        task.leader.rlim[resource] = new
    return old


async def sys_getrusage(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    """The calling process's fault counts (from its mm) and the ticks it ran."""
    stat = await k.call("mm", "mm_stat", {"mm": task.mm}, meta) if task.mm is not None else {}
    ticks = sum(t.utime + t.ran for t in task.leader.thread_group)
    return {
        "utime": ticks,
        "stime": 0,
        "minflt": stat.get("min_flt", 0),
        "majflt": stat.get("maj_flt", 0),
        "maxrss": stat.get("hiwater_rss", 0) * abi.PAGE_SIZE // 1024,  # the high-water mark
    }


async def sys_uname(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    return await k.call("namespaces", "uname", {"nsproxy": task.nsproxy}, meta)


async def sys_sethostname(k: Kernel, task: TaskStruct, meta: dict, name: str) -> None:
    await k.call("namespaces", "sethostname", {"nsproxy": task.nsproxy, "name": name}, meta)


async def sys_setdomainname(k: Kernel, task: TaskStruct, meta: dict, name: str) -> None:
    await k.call("namespaces", "setdomainname", {"nsproxy": task.nsproxy, "name": name}, meta)
