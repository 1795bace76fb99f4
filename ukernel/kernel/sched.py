"""The scheduling syscalls (kernel/sched/syscalls.c); the clock and sleeps are in time.py.

The kernel resolves the pid a program names to a task (in the caller's pid
namespace) and sends sched that task's number; sched owns the policy, the
priorities, the affinity masks, the clock and the timer queue, and checks
the values (EINVAL). There is no capability model: every task may do what
root may (raise its priority, set SCHED_FIFO, renice others), so the EPERM
and EACCES cases of the man pages never arise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel


# --- finding the target (find_process_by_pid) -----------------------------------------
def find_task(k: Kernel, task: TaskStruct, pid: Any) -> TaskStruct:
    """pid 0 is the caller; otherwise the thread with that number in the caller's namespace."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise abi.kernel_error(abi.EINVAL, f"bad pid {pid!r}")
    target = task if pid == 0 else k.tasks.find(pid, task)
    if target is None or target.state != "running":
        raise abi.kernel_error(abi.ESRCH, f"no thread {pid}")
    return target


async def sched_call(k: Kernel, meta: dict, op: str, target: TaskStruct, **args: Any) -> Any:
    """One message to sched about ``target``; dispatches and preemptions in the reply are carried out."""
    reply = await k.call("sched", op, {"task": target.id, **args}, meta)
    if isinstance(reply, dict) and ("dispatch" in reply or "preempt" in reply):
        k.apply_sched(reply)
    return reply


async def sched_stat(k: Kernel, meta: dict, target: TaskStruct) -> dict:
    return await k.call("sched", "sched_stat", {"task": target.id}, meta)


# --- policy and priority ----------------------------------------------------------------
async def sys_sched_setscheduler(k: Kernel, task: TaskStruct, meta: dict, pid: int, policy: int, priority: int) -> int:
    """policy may carry SCHED_RESET_ON_FORK; sched checks the policy and the priority."""
    if not isinstance(policy, int) or policy < 0:
        raise abi.kernel_error(abi.EINVAL, f"bad policy {policy!r}")
    target = find_task(k, task, pid)
    reset = bool(policy & abi.SCHED_RESET_ON_FORK)
    policy &= ~abi.SCHED_RESET_ON_FORK
    await sched_call(k, meta, "sched_setscheduler", target, policy=policy, priority=priority, reset_on_fork=reset)
    return 0


async def sys_sched_setparam(k: Kernel, task: TaskStruct, meta: dict, pid: int, priority: int) -> int:
    target = find_task(k, task, pid)
    await sched_call(k, meta, "sched_setscheduler", target, policy=-1, priority=priority)
    return 0


async def sys_sched_getscheduler(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    stat = await sched_stat(k, meta, find_task(k, task, pid))
    return stat["policy"] | (abi.SCHED_RESET_ON_FORK if stat["reset_on_fork"] else 0)


async def sys_sched_getparam(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    return (await sched_stat(k, meta, find_task(k, task, pid)))["rt_priority"]


async def sys_sched_get_priority_max(k: Kernel, task: TaskStruct, meta: dict, policy: int) -> int:
    return _priority_range(policy)[1]


async def sys_sched_get_priority_min(k: Kernel, task: TaskStruct, meta: dict, policy: int) -> int:
    return _priority_range(policy)[0]


def _priority_range(policy: int) -> tuple[int, int]:
    if policy in (abi.SCHED_FIFO, abi.SCHED_RR):
        return 1, abi.MAX_RT_PRIO - 1
    if policy in (abi.SCHED_OTHER, abi.SCHED_BATCH, abi.SCHED_IDLE):
        return 0, 0
    raise abi.kernel_error(abi.EINVAL, f"policy {policy!r} is not one of {abi.SCHED_POLICY_NAMES}")


def _clamp_nice(nice: int) -> int:
    return max(abi.MIN_NICE, min(abi.MAX_NICE, nice))


async def sys_nice(k: Kernel, task: TaskStruct, meta: dict, inc: int) -> int:
    """The new nice value, clamped to -20..19 (glibc's nice; the raw syscall answers 0)."""
    if not isinstance(inc, int):
        raise abi.kernel_error(abi.EINVAL, f"nice takes an int increment, not {inc!r}")
    nice = _clamp_nice((await sched_stat(k, meta, task))["nice"] + inc)
    await sched_call(k, meta, "set_user_nice", task, nice=nice)
    return nice


def _prio_targets(k: Kernel, task: TaskStruct, which: int, who: int) -> list[TaskStruct]:
    """The threads setpriority/getpriority act on: one process, a group, or a user's (all: uid 0)."""
    if not isinstance(who, int) or who < 0:
        raise abi.kernel_error(abi.EINVAL, f"bad who {who!r}")
    if which == abi.PRIO_PROCESS:
        return [find_task(k, task, who)]
    if which == abi.PRIO_PGRP:
        pgid = who or _pgid(task, task)
        found = [t for t in k.tasks if t.state == "running" and t.is_visible_from(task) and _pgid(t, task) == pgid]
    elif which == abi.PRIO_USER:  # everyone is root (uid 0)
        found = [t for t in k.tasks if t.state == "running" and t.is_visible_from(task)] if who == 0 else []
    else:
        raise abi.kernel_error(abi.EINVAL, f"which must be PRIO_PROCESS, PRIO_PGRP or PRIO_USER, not {which!r}")
    if not found:
        raise abi.kernel_error(abi.ESRCH, f"no process matches which={which} who={who}")
    return found


def _pgid(t: TaskStruct, viewer: TaskStruct) -> int:
    pgrp = t.leader.pgrp
    return pgrp[viewer.level] if viewer.level < len(pgrp) else 0


async def sys_getpriority(k: Kernel, task: TaskStruct, meta: dict, which: int, who: int) -> int:
    """The lowest nice value among the targets (Python's os.getpriority; the raw syscall gives 20 - nice)."""
    return min([(await sched_stat(k, meta, t))["nice"] for t in _prio_targets(k, task, which, who)])


async def sys_setpriority(k: Kernel, task: TaskStruct, meta: dict, which: int, who: int, prio: int) -> int:
    if not isinstance(prio, int):
        raise abi.kernel_error(abi.EINVAL, f"setpriority takes an int nice value, not {prio!r}")
    for target in _prio_targets(k, task, which, who):
        await sched_call(k, meta, "set_user_nice", target, nice=_clamp_nice(prio))
    return 0


async def sys_sched_setaffinity(k: Kernel, task: TaskStruct, meta: dict, pid: int, cpus: list) -> int:
    target = find_task(k, task, pid)
    await sched_call(k, meta, "sched_setaffinity", target, cpus=list(cpus))
    return 0


async def sys_sched_getaffinity(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> list:
    return await k.call("sched", "sched_getaffinity", {"task": find_task(k, task, pid).id}, meta)


# --- time -------------------------------------------------------------------------------------


# fmt: off
# fmt: on


async def sys_sched_yield(k: Kernel, task: TaskStruct, meta: dict) -> None:
    await k.schedule(task, "yield")
