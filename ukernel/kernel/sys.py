"""kernel/sys.c: ids, process groups and sessions, limits, rusage and the host name.

getpid/gettid/getppid are answered from the task_struct (no message). A group and a session are named by the struct pid of their leader; here the
leader's numbers at every pid-namespace level, so each caller sees them in
its own namespace. They live on the thread-group leader (signal_struct in
Linux) and are inherited by fork.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from .choice import READ, touch
from .signal import send_to_process
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
    members = [t for t in k.tasks.pgrps.named(task.level, pgid) if t.session == target.session]
    if not members:
        raise abi.kernel_error(abi.EPERM, f"no process group {pgid} in the caller's session")
    target.pgrp = members[0].pgrp


async def sys_setsid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    """A new session and group, led by the caller; EPERM for a group leader."""
    me = task.leader
    if tuple(me.numbers) in k.tasks.pgrps.members:
        raise abi.kernel_error(abi.EPERM, "the caller leads a process group")
    me.session = me.pgrp = me.numbers
    me.tty = 0  # proc_clear_tty: a new session starts without a controlling terminal
    return me.nr_in(task.level)


async def sys_getpid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.leader.nr_in(task.level)


async def sys_gettid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.nr_in(task.level)


async def sys_getppid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    """The parent link is the caller's own: only a reparenting (its parent's exit, which
    touches every child it moves) changes it: a read."""
    touch(k, (READ, ("task", task.leader.pid)))
    return task.ppid_vnr(task)


async def sys_set_child_subreaper(k: Kernel, task: TaskStruct, meta: dict, flag: bool) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants come to us, not to init."""
    task.leader.child_subreaper = bool(flag)


async def sys_prlimit(k: Kernel, task: TaskStruct, meta: dict, resource: int, new: Any = None) -> Any:
    """prlimit on the calling process: RLIMIT_NPROC (one number) and RLIMIT_CPU
    (``[soft, hard]`` in ticks of virtual time; an int sets the soft limit alone)."""
    if resource == abi.RLIMIT_CPU:
        return _prlimit_cpu(task, new)
    if resource != abi.RLIMIT_NPROC:
        raise abi.kernel_error(abi.ENOSYS, f"resource {resource} is not modelled (RLIMIT_NPROC and RLIMIT_CPU are)")
    old = task.leader.rlim.get(resource, k.config.nproc)
    if new is not None:  # -1 (RLIM_INFINITY) and up: the argument table checked it
        task.leader.rlim = task.leader.rlim | {resource: _limit(new)}  # (replaced: a child shares it)
    return old


def _limit(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < abi.RLIM_INFINITY:
        raise abi.kernel_error(abi.EINVAL, f"bad limit {value!r}")
    return value


def _prlimit_cpu(task: TaskStruct, new: Any) -> list[int]:
    old = list(task.leader.rlim.get(abi.RLIMIT_CPU, (abi.RLIM_INFINITY, abi.RLIM_INFINITY)))
    if new is None:
        return old
    soft, hard = (new, old[1]) if isinstance(new, int) else new if isinstance(new, list | tuple) else (None, None)
    soft, hard = _limit(soft), _limit(hard)
    if hard != abi.RLIM_INFINITY and (soft == abi.RLIM_INFINITY or soft > hard):
        raise abi.kernel_error(abi.EINVAL, f"RLIMIT_CPU soft limit {soft} is above the hard limit {hard}")
    task.leader.rlim = task.leader.rlim | {abi.RLIMIT_CPU: (soft, hard)}
    return old


async def check_rlimit_cpu(k: Kernel, task: TaskStruct) -> None:
    """check_process_timers at a kernel exit: the process's ticks (every thread's utime)
    against RLIMIT_CPU. At the hard limit SIGKILL; at the soft limit SIGXCPU, and the soft
    limit moves one second on, so a process that goes on gets one SIGXCPU a second."""
    soft, hard = task.leader.rlim[abi.RLIMIT_CPU]
    used = sum(t.utime + t.ran for t in task.leader.thread_group)
    meta = {"pid": task.pid, "tid": task.pid, "step": "check_process_timers"}
    if hard != abi.RLIM_INFINITY and used >= hard:
        await send_to_process(k, task, abi.SIGKILL, meta)
    elif soft != abi.RLIM_INFINITY and used >= soft:
        later = soft + abi.HZ
        task.leader.rlim = task.leader.rlim | {
            abi.RLIMIT_CPU: (later if hard == abi.RLIM_INFINITY else min(later, hard), hard)
        }
        await send_to_process(k, task, abi.SIGXCPU, meta)


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
