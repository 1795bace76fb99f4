"""Signals, the kernel's half: sending, waking, delivering, stopping.

The handler table and the group's shared pending set belong to the signals
service; the per-thread pending set and blocked mask live in the task_struct,
as in Linux. A send asks the service whether the signal would be ignored and
queues it there; the target's threads get TIF_SIGPENDING (``sigpending``) and
a sleeping one is woken. Delivery happens on the way back to user mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from ..reprs import bounded
from .task import TaskExit, TaskStruct, WaitChannel, nr_in, wake_waiters

if TYPE_CHECKING:
    from .core import Kernel


def _check_signal(sig: Any, allow_zero: bool = True) -> int:
    if not isinstance(sig, int) or not (0 if allow_zero else 1) <= sig <= abi._NSIG:
        raise abi.kernel_error(abi.EINVAL, f"no signal {bounded(sig)}")
    return sig


def k_kill(task: TaskStruct, sig: int) -> None:
    """A fatal signal: the task exits at its next kernel exit, woken if asleep."""
    task.killed = task.killed or sig
    if task.sleep_scope is not None:
        task.sleep_scope.cancel()


def signal_wake_up(task: TaskStruct, sig: int) -> None:
    """Mark the thread; an interruptible sleep ends (the syscall sees EINTR)."""
    if sig in task.blocked and sig not in abi.SIG_KERNEL_ONLY:
        return
    task.sigpending = True
    if task.sleep_scope is not None and task.sleep_interruptible:
        task.sleep_scope.cancel()


def unkillable(leader: TaskStruct, sender: TaskStruct | None) -> bool:
    """SIGNAL_UNKILLABLE and not ``force``: init of a pid namespace ignores the signals it has
    no handler for, SIGKILL and SIGSTOP too, when they come from inside that namespace;
    from an ancestor namespace (or the kernel itself: no sender) they are forced
    (__send_signal_locked's force, sig_task_ignored)."""
    if "SIGNAL_UNKILLABLE" not in leader.flags:
        return False
    return sender is not None and leader.pid_ns in sender.ns_path


async def send_to_process(
    k: Kernel, target: TaskStruct, sig: int, meta: dict, sender: TaskStruct | None = None
) -> None:
    """__send_signal to a thread group, then complete_signal: SIGKILL kills every thread.
    ``sender`` is the task sending (None: the kernel), for init's protection (``unkillable``)."""
    leader = target.leader
    if leader.state != "running" or leader.sighand is None or not leader.sighand_pins.pin():
        return
    args = {"sighand": leader.sighand, "signal": leader.signal, "sig": sig, "unkillable": unkillable(leader, sender)}
    try:
        reply = await k.call_cannot_fail(sender or k.idle, "signals", "send_signal", args, meta)  # __send_signal
    finally:
        leader.sighand_pins.unpin()
    if sig == abi.SIGCONT:
        continue_group(leader)
    if not reply["queued"]:
        return
    threads = [t for t in leader.thread_group if t.state == "running"]
    if sig == abi.SIGKILL:
        for thread in threads:
            k_kill(thread, sig)
        return
    for thread in threads:
        signal_wake_up(thread, sig)


async def send_to_thread(k: Kernel, target: TaskStruct, sig: int, meta: dict, sender: TaskStruct | None = None) -> None:
    """A thread-directed signal (tgkill): the thread's own pending set."""
    leader = target.leader
    args = {
        "sighand": leader.sighand,
        "signal": leader.signal,
        "sig": sig,
        "unkillable": unkillable(leader, sender),
        "shared": False,
    }
    if leader.sighand is None or not leader.sighand_pins.pin():
        return  # the group is exiting: its sighand is gone or going
    try:
        reply = await k.call_cannot_fail(sender or k.idle, "signals", "send_signal", args, meta)
    finally:
        leader.sighand_pins.unpin()
    if sig == abi.SIGKILL and reply["queued"]:
        await send_to_process(k, target, sig, meta, sender)  # SIGKILL always takes the whole group
    elif reply["queued"]:
        target.pending.add(sig)
        signal_wake_up(target, sig)


def continue_group(leader: TaskStruct) -> None:
    """SIGCONT: a stopped group runs again, and its parent may hear of it (WCONTINUED)."""
    if leader.stopped:
        leader.stopped = 0
        leader.report = ("continued", abi.SIGCONT)
        leader.cont_event.set()
        leader.cont_event = type(leader.cont_event)()
        if leader.real_parent is not None:
            wake_waiters(leader.real_parent.leader)


def kill_targets(k: Kernel, task: TaskStruct, pid: int) -> list[TaskStruct]:
    """kill_something_info: one process, the caller's group, a group, or everyone (-1)."""
    live = ("running", "zombie")  # a zombie still has its pid: kill(zombie, 0) succeeds
    leaders = [t for t in k.tasks if t.leader is t and t.state in live and t.is_visible_from(task)]
    if pid > 0:
        return [t for t in leaders if t.nr_in(task.level) == pid]
    if pid == 0:
        return [t for t in leaders if t.pgrp == task.leader.pgrp]
    if pid == -1:  # every process but init of the caller's namespace and the caller
        return [t for t in leaders if t.nr_in(task.level) != 1 and t is not task.leader]
    return [t for t in leaders if nr_in(t.pgrp, task.level) == -pid]


async def kill_pgrp(k: Kernel, pgrp: int, sig: int, meta: dict, sender: TaskStruct | None = None) -> None:
    """kill_pgrp: every process of the group named by its leader's global pid (the
    terminal's keys, its hangup, SIGTTIN: sent by the kernel, or by ``sender``)."""
    for target in [t for t in k.tasks if t.leader is t and t.state == "running" and t.pgrp[0] == pgrp]:
        await send_to_process(k, target, sig, meta, sender)


async def sys_kill(k: Kernel, task: TaskStruct, meta: dict, pid: int, sig: int) -> None:
    sig = _check_signal(sig)
    targets = kill_targets(k, task, pid)
    if not targets:
        raise abi.kernel_error(abi.ESRCH, f"no process {pid}" if pid > 0 else f"no process in group {abs(pid)}")
    if sig:
        for target in targets:
            await send_to_process(k, target, sig, meta, task)


async def sys_tgkill(k: Kernel, task: TaskStruct, meta: dict, tgid: int, tid: int, sig: int) -> None:
    sig = _check_signal(sig)
    if tgid <= 0 or tid <= 0:
        raise abi.kernel_error(abi.EINVAL, "tgkill takes positive tgid and tid")
    target = k.tasks.find(tid, task)
    if target is None or target.state != "running" or target.leader.nr_in(task.level) != tgid:
        raise abi.kernel_error(abi.ESRCH, f"no thread {tid} in process {tgid}")
    if sig:
        await send_to_thread(k, target, sig, meta, task)


async def sys_sigaction(k: Kernel, task: TaskStruct, meta: dict, sig: int, handler: Any, flags: int) -> list:
    """The handler is SIG_DFL, SIG_IGN or a token of the runtime's handler table; None queries."""
    _check_signal(sig, allow_zero=False)
    if handler is not None and not (handler in (abi.SIG_DFL, abi.SIG_IGN) or isinstance(handler, int)):
        raise abi.kernel_error(abi.EINVAL, f"bad handler {bounded(handler)}")
    return await k.call(
        "signals", "sigaction", {"sighand": task.sighand, "sig": sig, "handler": handler, "flags": flags}, meta
    )


async def sys_sigprocmask(k: Kernel, task: TaskStruct, meta: dict, how: int, mask: list | None) -> list:
    old = sorted(task.blocked)
    if mask is not None:
        wanted = {_check_signal(s, allow_zero=False) for s in mask} - abi.SIG_KERNEL_ONLY
        if how == abi.SIG_BLOCK:
            task.blocked |= wanted
        elif how == abi.SIG_UNBLOCK:
            task.blocked -= wanted
        elif how == abi.SIG_SETMASK:
            task.blocked = wanted
        else:
            raise abi.kernel_error(abi.EINVAL, f"bad how {how}")
        task.sigpending = True  # recalc_sigpending: an unblocked signal may now be deliverable
    return old


async def sys_pause(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """Sleep until a signal is delivered; always EINTR."""
    while not task.sigpending and not task.killed:
        await k.sleep_on(task, type(task.cont_event)(), wchan=WaitChannel("pause", "a signal"))
    raise abi.kernel_error(abi.EINTR, "pause ends with a signal")


async def do_signal(k: Kernel, task: TaskStruct) -> bool | None:
    """Deliver what is pending; True if a handler ran and every one had SA_RESTART."""
    ran, restart = False, True
    while task.sigpending:
        leader = task.leader
        args = {
            "sighand": task.sighand,
            "signal": task.signal,
            "pending": sorted(task.pending),
            "blocked": sorted(task.blocked),
        }
        got = await k.call("signals", "dequeue_signal", args, {"pid": task.pid, "tid": task.pid, "step": "do_signal"})
        sig, handler = got["sig"], got["handler"]
        if not sig:
            task.sigpending = False
            break
        task.pending.discard(sig)
        if handler == abi.SIG_IGN or (handler == abi.SIG_DFL and sig in abi.SIG_KERNEL_IGNORE):
            continue
        if handler == abi.SIG_DFL and sig in abi.SIG_KERNEL_STOP:
            await do_signal_stop(k, task, sig)
            continue
        if handler == abi.SIG_DFL:
            if "SIGNAL_UNKILLABLE" in leader.flags and sig not in abi.SIG_KERNEL_ONLY:
                continue
            raise TaskExit(abi.W_EXITCODE(0, sig), group=True)
        await k.runtime.run_handler(task, handler, sig, got["flags"])
        ran, restart = True, restart and bool(got["flags"] & abi.SA_RESTART)
    return ran and restart


async def do_signal_stop(k: Kernel, task: TaskStruct, sig: int) -> None:
    """The group stops until SIGCONT; the parent can see it with WUNTRACED."""
    leader = task.leader
    if not leader.stopped:
        leader.stopped, leader.report = sig, ("stopped", sig)
        if leader.real_parent is not None:
            wake_waiters(leader.real_parent.leader)
    event = leader.cont_event
    while leader.stopped and not task.killed:
        wchan = WaitChannel("", f"SIGCONT (stopped by {abi.SIGNAL_NAMES.get(sig, sig)})")
        await k.sleep_on(task, event, interruptible=False, wchan=wchan)
