"""Signals, the kernel's half: sending, waking, delivering, stopping.

The handler table and the group's shared pending set belong to the signals
service; the per-thread pending set and blocked mask live in the task_struct,
as in Linux. A send asks the service whether the signal would be ignored and
queues it there; the target's threads get TIF_SIGPENDING (``sigpending``) and
a sleeping one is woken. Delivery happens on the way back to user mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import abi
from ..reprs import bounded
from .choice import ALL_TASKS, READ, touch, touch_tasks
from .task import NO_INFO, TaskExit, TaskStruct, WaitChannel, wake_waiters
from .time import seconds_to_ticks, sleep_timeout

if TYPE_CHECKING:
    from .core import Kernel


def _check_signal(sig: Any, allow_zero: bool = True) -> int:
    if not isinstance(sig, int) or not (0 if allow_zero else 1) <= sig <= abi._NSIG:
        raise abi.kernel_error(abi.EINVAL, f"no signal {bounded(sig)}")
    return sig


def k_kill(task: TaskStruct, sig: int) -> None:
    """A fatal signal: the task exits at its next kernel exit, woken if asleep."""
    task.killed = task.killed or sig  # (the setter notes a sleeper: the next wake_sleepers wakes it)


def signal_wake_up(task: TaskStruct, sig: int = 0) -> None:
    """Mark the thread; an interruptible sleep ends (the syscall sees EINTR). ``sig`` 0:
    no signal of its own to test against its mask (a group stop calls it to stop)."""
    if sig in task.blocked and sig not in abi.SIG_KERNEL_ONLY:
        return
    task.sigpending = True  # (the setter notes a sleeper: an interruptible sleep ends at the next wake)


def unkillable(leader: TaskStruct, sender: TaskStruct | None) -> bool:
    """SIGNAL_UNKILLABLE and not ``force``: init of a pid namespace ignores the signals it has
    no handler for, SIGKILL and SIGSTOP too, when they come from inside that namespace;
    from an ancestor namespace (or the kernel itself: no sender) they are forced
    (__send_signal_locked's force, sig_task_ignored)."""
    if "SIGNAL_UNKILLABLE" not in leader.flags:
        return False
    return sender is not None and leader.pid_ns in sender.ns_path


def siginfo(sig: int, code: int, pid: int = 0, status: int = 0) -> dict:
    """struct kernel_siginfo, the fields ukernel keeps (every task's uid is 0: root)."""
    return {"signo": sig, "code": code, "pid": pid, "uid": 0, "status": status}


def sender_info(sig: int, target: TaskStruct, sender: TaskStruct | None, code: int = abi.SI_USER) -> dict:
    """__send_signal's siginfo for a plain send: SI_USER and the sender's tgid as the target's
    pid namespace sees it; from the kernel itself (no sender), SI_KERNEL (SEND_SIG_PRIV)."""
    if sender is None:
        return siginfo(sig, abi.SI_KERNEL)
    return siginfo(sig, code, sender.leader.vnr(target))


def trace_signal(k: Kernel, task: TaskStruct, info: dict, action: str) -> None:
    """A ``signal`` event: the signal ``info`` describes meets ``task`` (strace's ``--- SIGCHLD
    {si_signo=...} ---``). ``action``: ``handler``, ``ignore``, ``stop`` or ``kill`` at delivery;
    ``discard`` when sig_ignored drops it as it is sent (strace, a tracer, still sees those)."""
    if k.tracer.on:
        sig = info.get("signo")
        name = abi.SIGNAL_NAMES.get(sig, str(sig))
        k.tracer.emit(
            "signal",
            src="kernel",
            dst=f"pid:{task.pid}",
            op=name,
            pid=task.pid,
            tid=task.pid,
            info=dict(info),
            action=action,
        )


def handler_name(task: TaskStruct, handler: Any) -> str | None:
    """What the trace calls a sigaction handler: SIG_DFL, SIG_IGN, or the Python function's name
    (libc's token for it, looked up in the image's handler table); None for none (a query)."""
    if isinstance(handler, str):  # SIG_DFL and SIG_IGN are their names
        return handler
    if not isinstance(handler, int) or isinstance(handler, bool):
        return None
    found = task.image.handlers.get(handler) if task.image is not None else None
    found = getattr(found, "handler", found)  # an SA_SIGINFO handler's wrapper: the function it calls
    return getattr(found, "__qualname__", None) or str(handler)


def blocked_by(task: TaskStruct, sig: int) -> bool:
    """sig_ignored's first test: a blocked signal is queued even if its action is to ignore it."""
    return sig in task.blocked or sig in task.real_blocked


async def send_to_process(
    k: Kernel, target: TaskStruct, sig: int, meta: dict, sender: TaskStruct | None = None, info: dict | None = None
) -> None:
    """__send_signal to a thread group, then complete_signal: SIGKILL kills every thread.
    ``sender`` is the task sending (None: the kernel), for init's protection (``unkillable``);
    ``info`` the siginfo queued with it (``sender_info`` when None)."""
    leader = target.leader
    touch(k, (READ, ("task", leader.pid)))  # explore's POR: its state and masks decide (written below if changed)
    if sig == abi.SIGCONT:
        touch_tasks(k, leader, leader.real_parent)  # continue_group's report is queued on the parent
    if leader.state != "running" or leader.sighand is None or not leader.sighand_pins.pin():
        return
    args = {
        "sighand": leader.sighand,
        "signal": leader.signal,
        "sig": sig,
        "unkillable": unkillable(leader, sender),
        "info": info or sender_info(sig, leader, sender),
        "blocked": blocked_by(leader, sig),
    }
    try:
        reply = await k.call_cannot_fail(sender or k.idle, "signals", "send_signal", args, meta)  # __send_signal
    finally:
        leader.sighand_pins.unpin()
    if sig == abi.SIGCONT:
        continue_group(leader)
    if not reply["queued"]:
        _trace_discard(k, leader, args, reply)  # dropped (sig_ignored): nothing of the task changed
        return
    touch_tasks(k, leader)  # its threads killed or woken (TIF_SIGPENDING)
    threads = [t for t in leader.thread_group if t.state == "running"]
    if sig == abi.SIGKILL:
        for thread in threads:
            k_kill(thread, sig)
        return
    for thread in threads:
        signal_wake_up(thread, sig)


async def send_to_thread(
    k: Kernel, target: TaskStruct, sig: int, meta: dict, sender: TaskStruct | None = None, info: dict | None = None
) -> None:
    """A thread-directed signal (tgkill): the thread's own pending set, its siginfo kept here."""
    leader = target.leader
    touch_tasks(k, leader)
    info = info or sender_info(sig, target, sender)
    args = {
        "sighand": leader.sighand,
        "signal": leader.signal,
        "sig": sig,
        "unkillable": unkillable(leader, sender),
        "shared": False,
        "info": info,
        "blocked": blocked_by(target, sig),
    }
    if leader.sighand is None or not leader.sighand_pins.pin():
        return  # the group is exiting: its sighand is gone or going
    try:
        reply = await k.call_cannot_fail(sender or k.idle, "signals", "send_signal", args, meta)
    finally:
        leader.sighand_pins.unpin()
    if not reply["queued"]:
        _trace_discard(k, target, args, reply)
    if sig == abi.SIGKILL and reply["queued"]:
        await send_to_process(k, target, sig, meta, sender)  # SIGKILL always takes the whole group
    elif reply["queued"]:
        if sig not in target.pending:  # a standard signal does not queue twice: the first's info stays
            target.pending = target.pending | {sig}
            target.pending_info = {**target.pending_info, sig: info}
        signal_wake_up(target, sig)


def _trace_discard(k: Kernel, target: TaskStruct, args: dict, reply: dict) -> None:
    """A signal sig_ignored dropped (SIG_IGN, or a default of ignore such as SIGCHLD's):
    traced, as a tracer sees it; not one an unkillable init refused."""
    if reply.get("handler") != abi.SIG_DFL or args["sig"] in abi.SIG_KERNEL_IGNORE:
        trace_signal(k, target, args["info"], "discard")


def continue_group(leader: TaskStruct) -> None:
    """SIGCONT (prepare_signal): the group stop is over, finished or not. No thread is to
    stop any more (JOBCTL_STOP_PENDING cleared) and the stopped ones run again; the stop's
    wait report is replaced by WCONTINUED's. The first thread to run tells the parent:
    CLD_CONTINUED if the group had stopped, CLD_STOPPED if SIGCONT caught the stop part-way
    (SIGNAL_CLD_CONTINUED / SIGNAL_CLD_STOPPED)."""
    why = abi.CLD_CONTINUED if leader.stopped else abi.CLD_STOPPED if leader.group_stop_count else 0
    for thread in leader.thread_group:  # wake_up_state(__TASK_STOPPED): no longer T, at once
        thread.jobctl_stop_pending = thread.task_stopped = False
    if why:
        leader.stopped = leader.group_stop_count = 0
        leader.report, leader.cld_notify = ("continued", abi.SIGCONT), why
        leader.cont_event.set()
        leader.cont_event = type(leader.cont_event)()


def kill_targets(k: Kernel, task: TaskStruct, pid: int) -> list[TaskStruct]:
    """kill_something_info: one process, the caller's group, a group, or everyone (-1).
    A process is found by its number and a group through the table's group index; only
    kill(-1) looks at every task, as it signals them all."""
    live = ("running", "zombie")  # a zombie still has its pid: kill(zombie, 0) succeeds
    if pid > 0:
        target = k.tasks.find(pid, task)
        touch(k, ("task", target.leader.pid) if target is not None else ALL_TASKS)  # no task: a fork may make it
        return [target] if target is not None and target.leader is target and target.state in live else []
    touch(k, ALL_TASKS)  # a group, or everyone: the group index and each member (explore's POR)
    if pid == -1:  # every process but init of the caller's namespace and the caller
        return [
            t
            for t in k.tasks
            if t.leader is t
            and t.state in live
            and t.is_visible_from(task)
            and t.nr_in(task.level) != 1
            and t is not task.leader
        ]
    members = k.tasks.pgrps.of(tuple(task.leader.pgrp)) if pid == 0 else k.tasks.pgrps.named(task.level, -pid)
    return [t for t in members if t.state in live and t.is_visible_from(task)]


async def kill_pgrp(k: Kernel, pgrp: int, sig: int, meta: dict, sender: TaskStruct | None = None) -> None:
    """kill_pgrp: every process of the group named by its leader's global pid (the
    terminal's keys, its hangup, SIGTTIN: sent by the kernel, or by ``sender``)."""
    touch(k, ALL_TASKS)
    for target in [t for t in k.tasks.pgrps.named(0, pgrp) if t.state == "running"]:
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
        await send_to_thread(k, target, sig, meta, task, sender_info(sig, target, task, abi.SI_TKILL))


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
    """Sleep until a signal is delivered: ERESTARTNOHAND, so only a handler ends it (EINTR);
    a stop and SIGCONT, or an ignored signal, puts the task back to sleep."""
    await _wait_for_signal(k, task, "pause")
    raise abi.kernel_error(abi.ERESTARTNOHAND, "pause ends with a signal")


async def sys_sigsuspend(k: Kernel, task: TaskStruct, meta: dict, mask: list) -> None:
    """Replace the mask and sleep, in one step, until a handler runs (ERESTARTNOHAND: EINTR
    then). The handler runs with ``mask``; the old mask comes back after it (saved_sigmask)."""
    task.saved_sigmask = set(task.blocked)
    task.blocked = set(mask) - abi.SIG_KERNEL_ONLY
    task.sigpending = True  # recalc_sigpending: one the new mask unblocks ends the wait at once
    await _wait_for_signal(k, task, "sigsuspend")
    raise abi.kernel_error(abi.ERESTARTNOHAND, "sigsuspend ends with a signal")


async def _wait_for_signal(k: Kernel, task: TaskStruct, syscall: str) -> None:
    """Sleep while no signal is deliverable (the wake that cancels the sleep says one is).
    A sigpending that dequeues nothing (a mask change's recalc) is cleared first."""
    while True:
        if task.sigpending and not await has_deliverable(k, task):
            task.sigpending = False
        if task.sigpending or task.killed:
            return
        await k.sleep_on(task, type(task.cont_event)(), wchan=WaitChannel(syscall, "a signal"))


async def has_deliverable(k: Kernel, task: TaskStruct) -> bool:
    """Is a signal pending that the mask lets through (recalc_sigpending's test)?"""
    return bool(await _pending_set(k, task) - task.blocked)


async def _pending_set(k: Kernel, task: TaskStruct) -> set[int]:
    """The thread's pending signals and its group's."""
    shared = await k.call("signals", "shared_pending", {"signal": task.signal}, _meta(task, "sigpending"))
    return set(task.pending) | set(shared)


def _meta(task: TaskStruct, step: str) -> dict:
    return {"pid": task.pid, "tid": task.pid, "step": step}


async def sys_sigpending(k: Kernel, task: TaskStruct, meta: dict) -> list:
    """The signals pending for the thread or its group that its mask blocks (do_sigpending)."""
    return sorted(await _pending_set(k, task) & task.blocked)


async def sys_sigtimedwait(k: Kernel, task: TaskStruct, meta: dict, mask: list, timeout: float | None) -> dict:
    """do_sigtimedwait: take a pending signal of ``mask`` without running its action and return
    its siginfo. None pending: unblock the set (the old mask kept in real_blocked) and sleep
    until one comes (or ``timeout`` seconds: EAGAIN); another signal ending the sleep is EINTR,
    never restarted (signal(7)), and its handler runs on the way out."""
    wanted = set(mask) - abi.SIG_KERNEL_ONLY
    got = await _dequeue(k, task, wanted)
    if got is not None:
        return got
    if timeout == 0:
        raise abi.kernel_error(abi.EAGAIN, "no signal of the set is pending")
    task.real_blocked, task.blocked = task.blocked, task.blocked - wanted
    try:
        wchan = WaitChannel(meta.get("syscall", "sigtimedwait"), f"a signal of {sorted(wanted)}")
        if timeout is None:
            await k.sleep_on(task, type(task.cont_event)(), wchan=wchan)
            timed_out = False
        else:
            timed_out, _ = await sleep_timeout(k, task, meta, seconds_to_ticks(timeout), None, wchan)
    finally:
        task.blocked, task.real_blocked = task.real_blocked, frozenset()
        task.sigpending = True  # recalc_sigpending with the mask back
    got = await _dequeue(k, task, wanted)
    if got is not None:
        return got
    if timed_out:
        raise abi.kernel_error(abi.EAGAIN, f"no signal of the set came within {timeout:g} s")
    raise abi.kernel_error(abi.EINTR, "sigtimedwait interrupted by a signal outside its set")


async def _dequeue(k: Kernel, task: TaskStruct, wanted: set[int]) -> dict | None:
    """dequeue_signal with every signal but ``wanted`` masked, no action taken: its siginfo."""
    args = {
        "sighand": task.sighand,
        "signal": task.signal,
        "pending": sorted(task.pending),
        "blocked": sorted(set(range(1, abi._NSIG + 1)) - wanted),
        "deliver": False,
    }
    got = await k.call("signals", "dequeue_signal", args, _meta(task, "dequeue_signal"))
    if not got["sig"]:
        return None
    return take_info(task, got)


def take_info(task: TaskStruct, got: dict) -> dict:
    """The dequeued signal's siginfo: the service keeps a group signal's, the thread its own."""
    sig = got["sig"]
    task.pending = task.pending - {sig}
    own = task.pending_info.get(sig)
    if sig in task.pending_info:
        task.pending_info = {s: i for s, i in task.pending_info.items() if s != sig} or NO_INFO
    info = got.get("info") if got.get("shared") else own
    return info or siginfo(sig, abi.SI_KERNEL)


async def do_signal(k: Kernel, task: TaskStruct) -> int | None:
    """Deliver what is pending: the sa_flags of the first handler that ran (it decides
    whether the interrupted syscall restarts, as in handle_signal), or None if none ran."""
    first: int | None = None
    await do_notify_cld_pending(k, task)
    while task.sigpending:
        leader = task.leader
        if task.jobctl_stop_pending:  # another thread's stop signal stops this one too
            await do_signal_stop(k, task, 0)
        args = {
            "sighand": task.sighand,
            "signal": task.signal,
            "pending": sorted(task.pending),
            "blocked": sorted(task.blocked),
        }
        got = await k.call("signals", "dequeue_signal", args, _meta(task, "do_signal"))
        sig, handler = got["sig"], got["handler"]
        if not sig:
            task.sigpending = False
            break
        info = take_info(task, got)
        if handler == abi.SIG_IGN or (handler == abi.SIG_DFL and sig in abi.SIG_KERNEL_IGNORE):
            trace_signal(k, task, info, "ignore")
            continue
        if handler == abi.SIG_DFL and sig in abi.SIG_KERNEL_STOP:
            trace_signal(k, task, info, "stop")
            await do_signal_stop(k, task, sig)
            continue
        if handler == abi.SIG_DFL:
            if "SIGNAL_UNKILLABLE" in leader.flags and sig not in abi.SIG_KERNEL_ONLY:
                continue
            trace_signal(k, task, info, "kill")
            raise TaskExit(abi.W_EXITCODE(0, sig), group=True)
        trace_signal(k, task, info, "handler")
        task.last_siginfo = info
        await k.runtime.run_handler(task, handler, sig, got["flags"])
        first = got["flags"] if first is None else first
    return first


async def do_signal_stop(k: Kernel, task: TaskStruct, sig: int) -> None:
    """The whole group stops until SIGCONT. The thread that took ``sig`` marks every live
    thread JOBCTL_STOP_PENDING and wakes it; each stops at its next kernel exit (``sig`` 0:
    a stop another thread started), and the last to stop tells the parent CLD_STOPPED
    (task_participate_group_stop). Once continued, the first thread to run tells it
    CLD_CONTINUED (get_signal's SIGNAL_CLD_MASK)."""
    leader, event = task.leader, task.leader.cont_event
    if not task.jobctl_stop_pending:
        if not leader.stopped:
            leader.group_stop_sig = sig
        leader.group_stop_count = 0
        for thread in leader.thread_group:
            if thread.state == "running" and not thread.task_stopped and "PF_EXITING" not in thread.flags:
                thread.jobctl_stop_pending = True
                leader.group_stop_count += 1
                if thread is not task:
                    signal_wake_up(thread)
    task.task_stopped = True
    try:
        await task_participate_group_stop(k, task)
        stop = abi.SIGNAL_NAMES.get(leader.group_stop_sig, leader.group_stop_sig)
        while not event.is_set() and not task.killed:
            await k.sleep_on(task, event, interruptible=False, wchan=WaitChannel("", f"SIGCONT (stopped by {stop})"))
    finally:
        task.task_stopped = False
    await do_notify_cld_pending(k, task)


async def task_participate_group_stop(k: Kernel, task: TaskStruct) -> None:
    """One more thread of a group stop has stopped (or is exiting): the last makes the stop
    the group's (SIGNAL_STOP_STOPPED), which wait4 then reports, and tells the parent, once."""
    leader = task.leader
    task.jobctl_stop_pending = False
    if leader.group_stop_count:
        leader.group_stop_count -= 1
    if leader.group_stop_count == 0 and not leader.stopped:
        sig = leader.group_stop_sig
        leader.stopped, leader.report, leader.cld_notify = sig, ("stopped", sig), 0
        await do_notify_parent_cldstop(k, task, abi.CLD_STOPPED, sig)


async def exit_signals(k: Kernel, task: TaskStruct) -> None:
    """exit_signals: a thread exiting while its group stops no longer holds the stop up
    (unless the whole group is exiting anyway)."""
    if task.jobctl_stop_pending and task.leader.group_exit_code is None and not task.killed:
        await task_participate_group_stop(k, task)
    task.jobctl_stop_pending = False


async def do_notify_cld_pending(k: Kernel, task: TaskStruct) -> None:
    """After a SIGCONT the first thread of the group to run tells the parent what happened."""
    leader = task.leader
    why, leader.cld_notify = leader.cld_notify, 0
    if why:
        status = abi.SIGCONT if why == abi.CLD_CONTINUED else leader.group_stop_sig
        await do_notify_parent_cldstop(k, task, why, status)


async def do_notify_parent_cldstop(k: Kernel, task: TaskStruct, why: int, status: int) -> None:
    """SIGCHLD with CLD_STOPPED / CLD_CONTINUED to the parent, unless its SIGCHLD action is
    SIG_IGN or has SA_NOCLDSTOP; its wait4 is woken either way (__wake_up_parent)."""
    leader = task.leader
    parent = leader.real_parent.leader if leader.real_parent is not None else None
    touch_tasks(k, leader, parent)  # the report given, the parent's wait4 woken
    if parent is None or parent is k.idle or parent.sighand is None or not parent.sighand_pins.pin():
        return
    meta = _meta(task, "do_notify_parent_cldstop")
    try:
        action = {"sighand": parent.sighand, "sig": abi.SIGCHLD}
        handler, flags = await k.call_cannot_fail(task, "signals", "sigaction", action, meta)
        if handler != abi.SIG_IGN and not flags & abi.SA_NOCLDSTOP:
            info = siginfo(abi.SIGCHLD, why, leader.vnr(parent), status)
            await send_to_process(k, parent, abi.SIGCHLD, meta, task, info)
    finally:
        parent.sighand_pins.unpin()
    wake_waiters(parent, leader)


#: What each restart code does once the signal is dealt with (handle_signal's switch and
#: arch_do_signal_or_restart): with no handler run every one restarts; after a handler only
#: ERESTARTNOINTR does, and ERESTARTSYS if the handler has SA_RESTART; the rest are EINTR.
RESTART_AFTER_HANDLER: dict[int, Callable[[int], bool]] = {
    abi.ERESTARTSYS: lambda flags: bool(flags & abi.SA_RESTART),
    abi.ERESTARTNOINTR: lambda flags: True,
    abi.ERESTARTNOHAND: lambda flags: False,
    abi.ERESTART_RESTARTBLOCK: lambda flags: False,
}


def syscall_restart(
    task: TaskStruct, exc: OSError, handled: int | None, again: Callable[[], Awaitable[Any]]
) -> Callable[[], Awaitable[Any]]:
    """After an interrupted syscall's signals: what runs next (the call again, or its
    restart_block for ERESTART_RESTARTBLOCK), or the error the program gets (EINTR for a
    restart code a handler ends; any other errno as it was)."""
    restore_saved_sigmask(task)
    rule = RESTART_AFTER_HANDLER.get(exc.errno or 0)
    if rule is None:
        raise exc
    if handled is not None and not rule(handled):
        task.restart_block = None
        raise abi.kernel_error(abi.EINTR, exc.strerror.partition(": ")[2]) from None
    if exc.errno == abi.ERESTART_RESTARTBLOCK:
        block, task.restart_block = task.restart_block, None
        return block
    return again


def restore_saved_sigmask(task: TaskStruct) -> None:
    """sigsuspend's old mask back, once the signal that ended it was dealt with."""
    if task.saved_sigmask is not None:
        task.blocked, task.saved_sigmask = task.saved_sigmask, None
        task.sigpending = True  # recalc_sigpending: the mask changed
