"""do_exit, exit_notify, release_task and wait4: the other half of a life.

do_exit is a table like COPY_STEPS: each row puts one reference the task
holds, so every handle clone took is given back along a visible route.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import abi
from ..ipc.router import Sent
from .choice import ALL_TASKS, COUNT, READ, children_of, futex_picks, touch, touch_tasks
from .contracts import ServiceBug
from .signal import exit_signals, k_kill, send_to_process, siginfo
from .steps import Step, StepWalk
from .task import Children, TaskExit, TaskStruct, WaitChannel, nr_in, wake_waiters
from .tty import disassociate_ctty
from .wait import WaitEvent

if TYPE_CHECKING:
    from .core import Kernel

# fmt: off
EXIT_STEPS: tuple[Step, ...] = (
    #    step               service       op                     handle
    Step("exit_mm",         "mm",         op_clear="mmput",       attr="mm",        param="mm"),
    Step("exit_sem",        "namespaces", op_clear="exit_sem",    attr="undo_list", param="undo_list"),
    Step("exit_files",      "vfs",        op_clear="put_files",   attr="files",     param="files"),
    Step("exit_fs",         "vfs",        op_clear="put_fs",      attr="fs",        param="fs"),
    Step("exit_sighand",    "signals",    op_clear="put_sighand", attr="sighand",   param="sighand"),
    Step("exit_signal",     "signals",    op_clear="put_signal",  attr="signal",    param="signal"),
    Step("exit_namespaces", "namespaces", op_clear="put_nsproxy", attr="nsproxy",   param="nsproxy"),
)
# fmt: on


class ExitReferences(StepWalk):
    """EXIT_STEPS for one task: each row puts one handle it holds (none can fail in Linux,
    so there is no undo). With parallel_copy the rows go at once: each drops one
    reference in its own structure and none needs another's reply; each service still
    gets its rows in table order (vfs: files then fs; signals: sighand then signal)."""

    table = EXIT_STEPS

    def __init__(self, k: Kernel, task: TaskStruct, meta: dict):
        super().__init__(k, at_once=frozenset(s.name for s in EXIT_STEPS) if k.config.parallel_copy else frozenset())
        self.task, self.base = task, meta

    def meta(self, label: str, flag: str | None = None) -> dict:
        return self.base | {"step": label}

    def skip(self, step: Step) -> bool:
        return getattr(self.task, step.attr) is None

    def step_args(self, step: Step, op: str) -> dict:
        return {step.param: getattr(self.task, step.attr)}

    def store(self, step: Step, reply: object) -> None:
        setattr(self.task, step.attr, None)

    async def do_step(self, step: Step) -> None:
        if self.pinned(step):
            await self.task.sighand_pins.close()
        await super().do_step(step)

    async def send_step(self, step: Step) -> Sent | None:
        if self.pinned(step):
            await self.task.sighand_pins.close()
        return await super().send_step(step)

    def pinned(self, step: Step) -> bool:
        """The group's sighand goes only when no signal is on its way to it (tasklist_lock):
        its row waits for the pins first. (A test, not a coroutine: five rows of six need no wait.)"""
        return step.attr == "sighand" and self.task is self.task.leader


async def do_exit(k: Kernel, task: TaskStruct, status: int, group: bool) -> None:
    """Give back every handle, notify the parent, leave the CPU for good."""
    touch_tasks(k, task)  # explore's POR: the exiting group (the others it reaches are touched below)
    task.flags = task.flags | {"PF_EXITING"}
    if group and task.leader.group_exec_task is None:  # an execve in progress keeps its thread
        zap_other_threads(task, status)
    await exit_signals(k, task)
    meta = {"pid": task.pid, "tid": task.pid, "syscall": "exit"}
    await mm_release(k, task, meta)
    await exit_references(k, task, meta)
    if _group_dead(task):
        await disassociate_ctty(k, task, meta)
    k.runtime.forget(task)
    task.image = None
    await exit_notify(k, task, status, meta)
    await k.task_dead(task, meta)


def _group_dead(task: TaskStruct) -> bool:
    """The last thread of its group is exiting (signal->live reaching 0)."""
    return all(t is task or "PF_EXITING" in t.flags or t.state != "running" for t in task.leader.thread_group)


async def exit_references(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """EXIT_STEPS. A put cannot fail in Linux: a failure is an oops, and the walk goes
    again for the handles still held (each row done cleared its own), as the service
    may never have seen the message (fault injection fails one): nothing leaks. A
    second failure is a service that cannot put what it gave: a panic."""
    since = len(k.bugs)
    try:
        await ExitReferences(k, task, meta).run()
    except (OSError, ServiceBug) as exc:
        k.oops(task, "do_exit", exc)
    else:
        return
    try:
        await ExitReferences(k, task, meta).run()
    except (OSError, ServiceBug) as exc:
        if k.lost:
            raise
        raise k.cannot_go_on("do_exit", exc, since) from None


async def mm_release(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """CLONE_CHILD_CLEARTID's write, and the end of a vfork parent's wait."""
    if task.mm is not None and task.clear_child_tid:
        addr, task.clear_child_tid = task.clear_child_tid, 0
        reply = await k.call_cannot_fail(
            task, "mm", "mm_release", {"mm": task.mm, "clear_child_tid": addr}, meta | {"step": "mm_release"}
        )
        if reply["cleared"]:  # put_user(0), then FUTEX_WAKE 1: how pthread_join wakes up
            key = (task.mm, addr)
            touch(k, ("futex", *key))
            k.futexes.wake(key, 1, await futex_picks(k, task, k.futexes.waiters(key), 1))
    if task.vfork_done is not None:
        touch(k, ("task", "vfork", task.pid))  # the vfork parent's wake (fork.py)
        task.vfork_done.set()
        task.vfork_done = None


def zap_other_threads(task: TaskStruct, status: int | None = None) -> None:
    """exit_group: every other thread of the group gets SIGKILL; the group's status is ours."""
    if status is not None and task.leader.group_exit_code is None:
        task.leader.group_exit_code = status
    for other in task.leader.thread_group:
        if other is not task and other.state == "running":
            k_kill(other, abi.SIGKILL)


def find_new_reaper(k: Kernel, task: TaskStruct) -> TaskStruct:
    """find_new_reaper: a live thread of the group, else the nearest subreaper ancestor
    in the same pid namespace, else the namespace's init (the idle task once it is gone).
    Each task it looks at is touched (explore's POR): their exits and subreaper flags decide."""
    for thread in task.leader.thread_group:
        if thread is not task and thread.state == "running" and "PF_EXITING" not in thread.flags:
            return thread
    ancestor = task.leader.real_parent
    while ancestor is not None and ancestor is not k.idle and ancestor.pid_ns == task.pid_ns:
        touch_tasks(k, ancestor)
        if ancestor.leader.child_subreaper and ancestor.state == "running":
            return ancestor.leader
        ancestor = ancestor.leader.real_parent
    return find_child_reaper(k, task)


def find_child_reaper(k: Kernel, task: TaskStruct) -> TaskStruct:
    """The init of the task's pid namespace (its number 1 there), or the idle task once
    that init is gone."""
    init = k.tasks.find_in(task.pid_ns, 1)
    touch_tasks(k, init)
    if init is not None and init.pid_ns == task.pid_ns and init.state == "running" and init is not task:
        return init
    return k.idle


async def exit_notify(k: Kernel, task: TaskStruct, status: int, meta: dict) -> None:
    """Reparent the children, become a zombie, and tell whoever waits."""
    task.state = "zombie"
    task.exit_code = status if task.leader.group_exit_code is None else task.leader.group_exit_code
    if task.level > 0 and task.numbers[-1] == 1 and task is task.leader:
        await zap_pid_ns_processes(k, task, meta)
    children, task.children = list(task.children), Children()
    reaper = find_new_reaper(k, task) if children else None  # forget_original_parent: only for children
    for child in children:  # forget_original_parent
        if child.state == "dead":  # released on another CPU while an earlier child was notified
            continue  # (it saw its parent exiting: do_notify_parent's release): nothing to move
        touch_tasks(k, child, reaper)  # explore's POR: its parent link (getppid) and the reaper's list
        child.real_parent = reaper
        if reaper.leader is task.leader:  # same_thread_group: no reparent_leader, no second notify
            reaper.children.append(child)
            if child.state == "zombie" or child.report is not None:
                reaper.children.note(child)
            continue
        child.exit_signal = abi.SIGCHLD  # reparent_leader: "we don't want people slaying init"
        reaper.children.append(child)
        if child.state == "zombie":
            await notify_parent(k, child, meta)
        else:
            if child.report is not None:  # a stop or continue not yet waited for goes along
                reaper.children.note(child)
            await kill_orphaned_pgrp(k, child, task, meta)  # reparent_leader
    leader = task.leader
    if all(t is task or t.state != "running" for t in leader.thread_group):  # group_dead: the last thread
        await kill_orphaned_pgrp(k, leader, None, meta)
    if task is not leader:  # a thread is never waited for: it reaps itself
        await release_task(k, task)
        if leader.state == "zombie" and thread_group_empty(leader):
            await notify_parent(k, leader, meta)
    elif thread_group_empty(task):
        await notify_parent(k, task, meta)


async def zap_pid_ns_processes(k: Kernel, init: TaskStruct, meta: dict) -> None:
    """The init of a pid namespace died: no new pids there, SIGKILL to everyone left in it."""
    touch(k, ALL_TASKS)
    await k.call_cannot_fail(
        init, "pid", "disable_pid_allocation", {"ns": init.pid_ns}, meta | {"step": "zap_pid_ns_processes"}
    )
    level = init.level
    for task in k.tasks:
        if task is not init and task.state == "running" and task.ns_path[: level + 1] == init.ns_path:
            k_kill(task, abi.SIGKILL)


async def kill_orphaned_pgrp(k: Kernel, task: TaskStruct, parent: TaskStruct | None, meta: dict) -> None:
    """POSIX 3.3.2.2: a process group that becomes orphaned with a stopped member gets SIGHUP
    then SIGCONT. ``parent`` None: ``task`` is exiting and may have been its group's last tie
    to the session outside it; else ``task`` is a child of the exiting ``parent``, reparented
    (kernel/exit.c kill_orphaned_pgrp)."""
    leader, ignored = task.leader, task.leader if parent is None else None
    parent = (parent or leader.real_parent or k.idle).leader
    touch_tasks(k, leader)  # explore's POR: their groups and sessions decide (the parent's are read)
    touch(k, (READ, ("task", parent.pid)))
    pgrp = leader.pgrp
    if (
        parent.pgrp != pgrp
        and parent.session == leader.session
        and will_become_orphaned_pgrp(k, pgrp, ignored)
        and has_stopped_jobs(k, pgrp)
    ):
        for sig in (abi.SIGHUP, abi.SIGCONT):  # __kill_pgrp_info with SEND_SIG_PRIV
            for member in pgrp_members(k, pgrp):
                await send_to_process(k, member, sig, meta | {"step": "kill_orphaned_pgrp"})


def pgrp_members(k: Kernel, pgrp: list[int]) -> list[TaskStruct]:
    """The thread groups in a process group (do_each_pid_task(pgrp, PIDTYPE_PGID)), from
    the table's group index. Each is touched, and the index (explore's POR): a member's
    exit, stop or parent decides whether the group is orphaned."""
    members = [t for t in k.tasks.pgrps.of(tuple(pgrp)) if t.state in ("running", "zombie")]
    touch(k, ("task", "pgrp", tuple(pgrp)))
    touch_tasks(k, *members, *(t.real_parent for t in members))
    return members


def will_become_orphaned_pgrp(k: Kernel, pgrp: list[int], ignored: TaskStruct | None) -> bool:
    """No member (but ``ignored``, the one exiting) has a parent in another group of its
    session: nobody left could bring the group back to the foreground."""
    for p in pgrp_members(k, pgrp):
        parent = p.real_parent.leader if p.real_parent is not None else None
        if p is ignored or (p.state == "zombie" and thread_group_empty(p)):
            continue
        if parent is None or parent is k.idle or (parent.level == 0 and parent.pid == 1):  # is_global_init
            continue
        if parent.pgrp != pgrp and parent.session == p.session:
            return False
    return True


def has_stopped_jobs(k: Kernel, pgrp: list[int]) -> bool:
    return any(p.stopped for p in pgrp_members(k, pgrp))


def thread_group_empty(leader: TaskStruct) -> bool:
    return all(t is leader for t in leader.thread_group)


async def notify_parent(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """do_notify_parent: the exit signal to the parent, or autoreap when it ignores SIGCHLD."""
    parent = task.real_parent
    touch_tasks(k, task)  # explore's POR: the zombie, queued on the parent, whose wait4 is woken:
    if parent is not None:  # an entry noted in its children lists (a COUNT), its struct read
        touch(k, (READ, ("task", parent.leader.pid)), (COUNT, children_of(parent)))
        parent.children.note(task)  # a zombie for its wait4, even before the signal
    if parent is None or parent is k.idle or parent.leader.sighand is None or not parent.leader.sighand_pins.pin():
        await release_task(k, task)  # no parent left to tell (its sighand is being put: it is exiting too)
        return
    try:
        await _notify(k, task, parent, meta | {"step": "exit_notify"})
    finally:
        parent.leader.sighand_pins.unpin()


async def _notify(k: Kernel, task: TaskStruct, parent: TaskStruct, meta: dict) -> None:
    sig, autoreap = task.exit_signal, False
    if sig == abi.SIGCHLD:
        handler, flags = await k.call_cannot_fail(  # do_notify_parent cannot fail
            task, "signals", "sigaction", {"sighand": parent.leader.sighand, "sig": abi.SIGCHLD}, meta
        )
        if handler == abi.SIG_IGN or flags & abi.SA_NOCLDWAIT:
            autoreap = True
            if handler == abi.SIG_IGN:
                sig = 0
    if sig and abi.valid_signal(sig):
        await send_to_process(k, parent, sig, meta, task, exit_siginfo(task, parent, sig))
    wake_waiters(parent.leader, task)
    if autoreap:
        await release_task(k, task)


def exit_siginfo(task: TaskStruct, parent: TaskStruct, sig: int) -> dict:
    """do_notify_parent's siginfo: CLD_EXITED and the exit code, or CLD_KILLED / CLD_DUMPED
    and the signal."""
    why, status = exit_code_info(task.exit_code)
    return siginfo(sig, why, task.vnr(parent.leader), status)


def exit_code_info(code: int) -> tuple[int, int]:
    """A wait status as siginfo's si_code and si_status: CLD_EXITED and the exit code, or
    CLD_KILLED / CLD_DUMPED and the signal."""
    why = abi.CLD_DUMPED if code & 0x80 else abi.CLD_KILLED if code & 0x7F else abi.CLD_EXITED
    return why, code >> 8 & 0xFF if why == abi.CLD_EXITED else code & 0x7F


async def release_task(k: Kernel, task: TaskStruct) -> None:
    """The task is gone for good: its pid goes back, it leaves every list."""
    touch_tasks(k, task)  # explore's POR: the task; the entries it takes out of its parent's
    if task.real_parent is not None:  # children lists, the count and the group index (COUNTs:
        touch(k, (COUNT, children_of(task.real_parent)))  # a fork adds to them, see fork.py)
    touch(k, (COUNT, ("task", "nr_threads")), (COUNT, ("task", "pgrp", tuple(task.leader.pgrp))))
    task.state = "dead"
    if task.real_parent is not None and task in task.real_parent.children:
        task.real_parent.children.remove(task)
    if task in task.leader.thread_group:
        task.leader.thread_group.remove(task)
    k.tasks.remove(task)
    k.nr_threads -= 1
    await k.release_pid(task)
    k.reaped(task)
    k.collector.tick(len(k.tasks))  # a kernel point where the run collects garbage (determinism.py)


@dataclass
class WaitOpts:
    """struct wait_opts: whom a wait4 or waitid waits for (an idtype and its id, in the
    caller's pid namespace) and how (its options, WEXITED always set for wait4)."""

    type: int  # P_PID, P_PGID or P_ALL
    id: int  # the pid or process group number; P_PGID 0: the caller's own group
    options: int
    syscall: str


@dataclass
class WaitReport:
    """What a wait found: the child's pid as the waiter sees it, the event as siginfo's
    si_code and si_status (waitid), and as wait4's status word."""

    pid: int
    code: int
    status: int
    wstatus: int
    utime: int


def eligible(task: TaskStruct, child: TaskStruct, wo: WaitOpts) -> bool:
    """eligible_pid and eligible_child (kernel/exit.c)."""
    if wo.type == abi.P_PID and child.nr_in(task.level) != wo.id:
        return False
    if wo.type == abi.P_PGID and wo.id == 0 and child.leader.pgrp != task.leader.pgrp:
        return False
    if wo.type == abi.P_PGID and wo.id and nr_in(child.leader.pgrp, task.level) != wo.id:
        return False
    if wo.options & abi.__WALL:
        return True
    is_clone = child.exit_signal != abi.SIGCHLD
    return bool(wo.options & abi.__WCLONE) == is_clone


async def do_wait(k: Kernel, task: TaskStruct, wo: WaitOpts) -> WaitReport | None:
    """wait4 and waitid: reap a zombie child or take a stopped / continued child's report,
    or sleep until a child changes state; None under WNOHANG when none has.

    Linux walks every child of every thread here; ukernel looks only at the children
    queued as reportable (and at one child for wait4(pid)), so a wait costs the same
    with 10 children or 10,000. The child it takes is still the one the walk would
    take: the first thread's, earliest in its children list."""
    leader = task.leader
    while True:
        touch_waiter(k, task, wo)  # explore's POR (again once it resumes)
        threads = [task] if wo.options & abi.__WNOTHREAD else leader.thread_group
        child = find_reportable(k, task, threads, wo)
        if child is not None:
            return await wait_consider_task(k, task, child, wo)
        if not has_eligible_child(k, task, threads, wo):
            raise abi.kernel_error(abi.ECHILD, _no_child(wo))
        if wo.options & abi.WNOHANG:
            return None
        event = WaitEvent()
        waiter = (event, functools.partial(child_should_wake, task, wo))
        leader.child_waiters = (*leader.child_waiters, waiter)  # add_wait_queue(&wait_chldexit)
        try:
            await k.sleep_on(task, event, wchan=WaitChannel(wo.syscall, _waits_for(wo)))
        finally:
            leader.child_waiters = tuple(w for w in leader.child_waiters if w is not waiter)
        if task.killed:
            raise TaskExit(abi.W_EXITCODE(0, task.killed))
        if not event.is_set() and task.sigpending:
            raise abi.kernel_error(abi.ERESTARTSYS, f"{wo.syscall} interrupted by a signal")


def touch_waiter(k: Kernel, task: TaskStruct, wo: WaitOpts) -> None:
    """explore's POR: what a wait4's look reads. Its own group's struct (its threads); for
    any child or a group, the children lists too (which is ready first, whether any is
    left). A wait for one pid reads that child only (child_by_pid): its state, parent link
    and place in the list change only by its own exit, reparenting or reap, which write it;
    another child's exit does not wake this wait (wake_waiters), and a waker that does
    wake it has written the child it waits for. (The queue of waiters is the group's own:
    the wakers' look at it is covered so.)"""
    if wo.type == abi.P_PID:
        touch(k, (READ, ("task", task.leader.pid)))
    else:
        touch_tasks(k, task)


def child_should_wake(task: TaskStruct, wo: WaitOpts, child: TaskStruct) -> bool:
    """child_wait_callback's test (pid_child_should_wake): ``child``'s change concerns this
    wait: its pid or group is the one waited for, or any, and under __WNOTHREAD it is a
    child of the waiting thread itself."""
    if wo.options & abi.__WNOTHREAD and child.real_parent is not task:
        return False
    if wo.type == abi.P_PID:
        return child.nr_in(task.level) == wo.id
    if wo.type == abi.P_PGID:
        return child.leader.pgrp == task.leader.pgrp if wo.id == 0 else nr_in(child.leader.pgrp, task.level) == wo.id
    return True


def ready(child: TaskStruct, wo: WaitOpts) -> str | None:
    """What ``child`` has for this wait: "report" (a stop or continue the options ask
    for), "zombie" (dead, its threads gone, WEXITED asked for), or None."""
    report = child.report
    if (
        report
        and child.state == "running"
        and wo.options & (abi.WSTOPPED if report[0] == "stopped" else abi.WCONTINUED)
    ):
        return "report"
    if child.state == "zombie" and thread_group_empty(child) and wo.options & abi.WEXITED:
        return "zombie"
    return None


def find_reportable(k: Kernel, task: TaskStruct, threads: list[TaskStruct], wo: WaitOpts) -> TaskStruct | None:
    """The child this wait takes: for wait4(pid), that child if it is ready; else, in the
    first thread that has one, the ready eligible child earliest in its children."""
    if wo.type == abi.P_PID:
        child = child_by_pid(k, task, threads, wo)
        return child if child is not None and ready(child, wo) else None
    for thread in threads:
        found = thread.children.first_reportable(
            lambda child: eligible(task, child, wo) and ready(child, wo) is not None
        )
        if found is not None:
            touch_tasks(k, found)
            return found
    return None


def child_by_pid(k: Kernel, task: TaskStruct, threads: list[TaskStruct], wo: WaitOpts) -> TaskStruct | None:
    """wait4(pid)'s child: the task with that number in the waiter's namespace, if it is
    a child of the waiter (or of a thread of its group, without __WNOTHREAD)."""
    child = k.tasks.find(wo.id, task)
    parent = child.real_parent if child is not None else None
    if child is not None:  # its state, parent link and place in the parent's list read (its
        touch(k, (READ, ("task", child.leader.pid)))  # exit, a reparenting, its reap write them)
    # (none found: only the caller's fork could make it its child)
    if parent is None or child not in parent.children:
        return None
    mine = parent is task if wo.options & abi.__WNOTHREAD else parent.leader is task.leader
    return child if mine and eligible(task, child, wo) else None


def has_eligible_child(k: Kernel, task: TaskStruct, threads: list[TaskStruct], wo: WaitOpts) -> bool:
    """Whether there is anyone to wait for at all (else ECHILD), from the counts kept
    with each children list (per process group for a wait on a group): no walk."""
    if wo.type == abi.P_PID:
        return child_by_pid(k, task, threads, wo) is not None
    if wo.type == abi.P_ALL:
        return any(thread.children.waitable(wo.options) for thread in threads)
    for thread in threads:
        groups = thread.children.groups
        if wo.id == 0:
            mine = [tuple(task.leader.pgrp)]
        else:
            mine = [pgrp for pgrp in groups if nr_in(pgrp, task.level) == wo.id]
        if any(thread.children.waitable(wo.options, pgrp) for pgrp in mine):
            return True
    return False


async def wait_consider_task(k: Kernel, task: TaskStruct, child: TaskStruct, wo: WaitOpts) -> WaitReport:
    """A ready child: a stop or continue to report (wait_task_stopped /
    wait_task_continued, each once unless WNOWAIT), or a zombie to reap
    (wait_task_zombie; WNOWAIT leaves it)."""
    keep = wo.options & abi.WNOWAIT
    report, nr = child.report, child.vnr(task)
    if ready(child, wo) == "report":
        if not keep:
            child.report = None
        if report[0] == "continued":
            return WaitReport(nr, abi.CLD_CONTINUED, abi.SIGCONT, 0xFFFF, child.utime)
        return WaitReport(nr, abi.CLD_STOPPED, report[1], (report[1] << 8) | 0x7F, child.utime)
    if not keep:
        await release_task(k, child)
    return WaitReport(nr, *exit_code_info(child.exit_code), child.exit_code, child.utime)


def _no_child(wo: WaitOpts) -> str:
    if wo.type == abi.P_ALL:
        return "no child to wait for"
    if wo.type == abi.P_PID:
        return f"{wo.id} is not a child of this process"
    return f"no child in process group {wo.id}" if wo.id else "no child in the caller's process group"


def _waits_for(wo: WaitOpts) -> str:
    """What the wait is for, in words (the wait channel)."""
    if wo.type == abi.P_PID:
        return f"{wo.syscall} for pid {wo.id}"
    if wo.type == abi.P_ALL:
        return f"{wo.syscall} for any child"
    if wo.id == 0:
        return f"{wo.syscall} for a child in the caller's process group"
    return f"{wo.syscall} for process group {wo.id}"


async def sys_exit(k: Kernel, task: TaskStruct, meta: dict, code: int) -> None:
    raise TaskExit(abi.W_EXITCODE(code), group=False)


async def sys_exit_group(k: Kernel, task: TaskStruct, meta: dict, code: int) -> None:
    raise TaskExit(abi.W_EXITCODE(code), group=True)


#: The options each call takes (kernel_wait4, kernel_waitid).
WAIT4_OPTIONS = abi.WNOHANG | abi.WUNTRACED | abi.WCONTINUED | abi.__WNOTHREAD | abi.__WALL | abi.__WCLONE
WAITID_OPTIONS = abi.WNOHANG | abi.WNOWAIT | abi.WEXITED | abi.WSTOPPED | abi.WCONTINUED | WAIT4_OPTIONS


async def sys_wait4(k: Kernel, task: TaskStruct, meta: dict, pid: int, options: int) -> list:
    """kernel_wait4: ``pid`` -1 any child, > 0 that one, 0 the caller's group, < -1 group -pid;
    its status word and rusage."""
    if options & ~WAIT4_OPTIONS:
        raise abi.kernel_error(abi.EINVAL, f"unknown wait4 options {options:#x}")
    idtype = abi.P_ALL if pid == -1 else abi.P_PGID if pid <= 0 else abi.P_PID
    report = await do_wait(k, task, WaitOpts(idtype, abs(pid) if pid != -1 else 0, options | abi.WEXITED, "wait4"))
    if report is None:
        return [0, 0, {}]
    return [report.pid, report.wstatus, {"utime": report.utime, "stime": 0}]


async def sys_waitid(k: Kernel, task: TaskStruct, meta: dict, idtype: int, id: int, options: int) -> dict | None:
    """kernel_waitid: the child's siginfo (SIGCHLD, its pid, CLD_* and the status), None
    under WNOHANG when no child has changed state (si_pid 0)."""
    if options & ~WAITID_OPTIONS:
        raise abi.kernel_error(abi.EINVAL, f"unknown waitid options {options:#x}")
    if not options & (abi.WEXITED | abi.WSTOPPED | abi.WCONTINUED):
        raise abi.kernel_error(abi.EINVAL, "waitid needs WEXITED, WSTOPPED or WCONTINUED")
    if idtype == abi.P_PIDFD:
        raise abi.kernel_error(abi.ENOSYS, "waitid: P_PIDFD is not built (ukernel has no pidfds)")
    if idtype not in (abi.P_ALL, abi.P_PID, abi.P_PGID):
        raise abi.kernel_error(abi.EINVAL, f"waitid: no idtype {idtype}")
    if idtype == abi.P_PID and id <= 0 or idtype == abi.P_PGID and id < 0:
        raise abi.kernel_error(abi.EINVAL, f"waitid: bad id {id} for idtype {idtype}")
    report = await do_wait(k, task, WaitOpts(idtype, 0 if idtype == abi.P_ALL else id, options, "waitid"))
    if report is None:
        return None
    return siginfo(abi.SIGCHLD, report.code, report.pid, report.status)
