"""The kernel's half of the terminal (drivers/tty/tty_jobctrl.c): controlling terminals and job control.

The line discipline and the terminal's owner (its session, its foreground
group) live in the vfs (services/vfs/tty.py). What a task_struct holds lives
here: whether a process has the console as its controlling terminal
(``signal->tty``, on the group leader, inherited by fork, dropped by setsid),
and the checks that need the caller's blocked mask, its handlers and its
family: tty_check_change (SIGTTIN / SIGTTOU for a background group, EIO when
the group is orphaned or ignores SIGTTIN). The vfs never sends a signal; its
replies name them and the kernel sends them here (kill_pgrp).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from .choice import ALL_TASKS, touch
from .contracts import ServiceBug
from .signal import kill_pgrp, send_to_process
from .task import TaskStruct, nr_in

if TYPE_CHECKING:
    from .core import Kernel


def job_args(task: TaskStruct) -> dict:
    """What the vfs's terminal needs to know of the caller: its session and group (global
    numbers), whether it leads its session, whether the console is its controlling tty."""
    me = task.leader
    return {"sid": me.session[0], "pgrp": me.pgrp[0], "leader": me.session == me.numbers, "ctty": bool(me.tty)}


def fg_args(task: TaskStruct) -> dict:
    """A read's or write's job-control argument: the caller's group, only when the console
    is its controlling terminal (another process's reads are never stopped)."""
    return {"pgrp": task.leader.pgrp[0]} if task.leader.tty else {}


async def is_ignored(k: Kernel, task: TaskStruct, sig: int, meta: dict) -> bool:
    """tty_jobctrl.c's is_ignored: blocked, or its handler is SIG_IGN."""
    if sig in task.blocked:
        return True
    handler, _ = await k.call("signals", "sigaction", {"sighand": task.sighand, "sig": sig, "handler": None}, meta)
    return handler == abi.SIG_IGN


def pgrp_orphaned(k: Kernel, pgrp: list[int]) -> bool:
    """will_become_orphaned_pgrp: no member has a parent in another group of its session
    (init's children do not count: init is outside every session's job control)."""
    for t in k.tasks.pgrps.of(tuple(pgrp)):  # the group's members, from the table's index
        if t.state != "running":
            continue
        parent = t.real_parent.leader if t.real_parent is not None else None
        if parent is None or parent is k.init:
            continue
        if parent.pgrp != pgrp and parent.session == t.session:
            return False
    return True


async def tty_check_change(k: Kernel, task: TaskStruct, sig: int, meta: dict) -> None:
    """__tty_check_change, told by the vfs that the caller is in the background: an ignored
    (or blocked) SIGTTOU lets the call go on (return), an ignored SIGTTIN or an orphaned
    group is EIO, otherwise the caller's whole group gets ``sig`` and the call ends so the
    stop happens with ERESTARTSYS: the call restarts once the group continues (entry.py's
    restart: no handler ran), or is EINTR if a handler without SA_RESTART caught it."""
    name = abi.SIGNAL_NAMES[sig]
    if await is_ignored(k, task, sig, meta):
        if sig == abi.SIGTTIN:
            raise abi.kernel_error(abi.EIO, "read from the terminal in the background with SIGTTIN ignored")
        return
    if pgrp_orphaned(k, task.leader.pgrp):
        raise abi.kernel_error(abi.EIO, f"the background group is orphaned: no {name} to stop it")
    await kill_pgrp(k, task.leader.pgrp[0], sig, meta, task)
    raise abi.kernel_error(abi.ERESTARTSYS, f"{meta.get('syscall', 'the call')} from the background: {name}")


async def send_tty_signals(k: Kernel, reply: dict, meta: dict) -> None:
    """A vfs reply's ``signals`` ([[sig, pgrp]]) sent to each group, and a ``hangup``
    ([session, foreground group])."""
    for sig, pgrp in reply.get("signals", ()):
        await kill_pgrp(k, pgrp, sig, meta)
    if "hangup" in reply:
        await tty_hangup(k, *reply["hangup"], meta)


async def tty_hangup(k: Kernel, sid: int, pgrp: int | None, meta: dict) -> None:
    """tty_signal_session_leader: the terminal hung up; its session lets go of it and
    the session leader gets SIGHUP and SIGCONT. When init leads the session (it plays
    the login shell, userland/init.py) the foreground job gets them, as a shell passes
    SIGHUP on to its jobs: init itself ignores what it has no handler for."""
    for t in session_clear_tty(k, sid):
        if t.session != t.numbers:
            continue
        if t is not k.init:
            await send_to_process(k, t, abi.SIGHUP, meta)
            await send_to_process(k, t, abi.SIGCONT, meta)
        elif pgrp is not None:
            await kill_pgrp(k, pgrp, abi.SIGHUP, meta)
            await kill_pgrp(k, pgrp, abi.SIGCONT, meta)


def session_clear_tty(k: Kernel, sid: int) -> list[TaskStruct]:
    """Every process of the session loses its controlling terminal; they are returned."""
    members = k.tasks.sessions.named(0, sid)
    for t in members:
        t.tty = 0
    return members


async def disassociate_ctty(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """do_exit of a session leader with a controlling tty (disassociate_ctty(1)): its
    foreground group gets SIGHUP, the session loses the terminal."""
    me = task.leader
    if not me.tty or me.session != me.numbers:
        return
    touch(k, ALL_TASKS)  # explore's POR: every task of the session, and signals to a group
    session_clear_tty(k, me.session[0])
    try:
        reply = await k.call("vfs", "tty_exit_session", {"sid": me.session[0]}, meta | {"step": "disassociate_ctty"})
    except (OSError, ServiceBug) as exc:  # the exit goes on; the vfs keeps a stale owner
        k.oops(task, "disassociate_ctty", exc)
        return
    await send_tty_signals(k, reply, meta)


# --- ioctl ------------------------------------------------------------------------------------
async def sys_ioctl(k: Kernel, task: TaskStruct, meta: dict, fd: int, cmd: int, arg: Any = None) -> Any:
    """tty_ioctl: the terminal's answer, after the kernel's part of each request (the group
    to look up for tcsetpgrp, the SIGTTOU check, the controlling tty taken or dropped)."""
    if cmd == abi.TIOCSPGRP:
        arg = _find_pgrp(k, task, arg)
    args = {"files": task.files, "fd": fd, "cmd": cmd, "arg": arg, "job": job_args(task)}
    while True:
        reply = await k.call("vfs", "ioctl", args, meta)
        if not (isinstance(reply, dict) and "jobctl" in reply):
            break
        try:
            await tty_check_change(k, task, reply["jobctl"], meta)
        except OSError as exc:
            if cmd == abi.TIOCSPGRP and exc.errno == abi.EIO:
                raise abi.kernel_error(abi.ENOTTY, f"tcsetpgrp: {exc.strerror}") from None  # tiocspgrp
            raise
        args = args | {"job": args["job"] | {"checked": True}}  # a new dict: the trace holds the old one
    return await _finish_ioctl(k, task, cmd, reply, meta)


async def _finish_ioctl(k: Kernel, task: TaskStruct, cmd: int, reply: Any, meta: dict) -> Any:
    if not isinstance(reply, dict):
        return reply
    if "pgrp" in reply:  # TIOCGPGRP: the foreground group as the caller's namespace numbers it
        return pgrp_vnr(k, task, reply["pgrp"])
    if "ctty" in reply:  # TIOCSCTTY
        if "stolen" in reply:
            session_clear_tty(k, reply["stolen"])
        task.leader.tty = reply["ctty"]
        return 0
    if reply.get("dropped") == "self":  # TIOCNOTTY by a process that does not lead its session
        task.leader.tty = 0
        return 0
    if reply.get("dropped") == "session":
        session_clear_tty(k, task.leader.session[0])
    await send_tty_signals(k, reply, meta)
    return 0


def _find_pgrp(k: Kernel, task: TaskStruct, pgid: Any) -> list[int] | None:
    """tiocspgrp's find_vpid and session_of_pgrp: [the group's global number, its session],
    None when there is none (the vfs says ESRCH after its own checks: ENOTTY comes first)."""
    if not isinstance(pgid, int) or isinstance(pgid, bool):
        raise abi.kernel_error(abi.EFAULT, f"tcsetpgrp takes a pgid, not {type(pgid).__name__}")
    if pgid < 0:
        raise abi.kernel_error(abi.EINVAL, f"negative pgid {pgid}")
    members = [t for t in k.tasks.pgrps.named(task.level, pgid) if t.state == "running" and t.is_visible_from(task)]
    found = k.tasks.find(pgid, task)
    alive = found is not None and found.leader is found and found.state == "running"
    owner = members[0] if members else found if alive else None
    if owner is None:
        return None
    group = owner.pgrp if members else owner.numbers
    return [group[0], owner.session[0]]


def pgrp_vnr(k: Kernel, task: TaskStruct, pgrp: int | None) -> int:
    """pid_vnr of the foreground group: 0 when none is set or it cannot be seen."""
    if pgrp is None:
        return 0
    leader = k.tasks.by_pid.get(pgrp)
    if leader is not None and leader.is_visible_from(task):
        return leader.nr_in(task.level)
    members = k.tasks.pgrps.named(0, pgrp)
    return nr_in(members[0].pgrp, task.level) if members else 0
