"""kernel_clone and copy_process: Linux's fork path as a table of messages.

Reading COPY_STEPS *is* reading the route: each row names the service that
does the step and the op it gets, which depends on one clone flag (share when
set, copy when clear). copy_process walks the rows in Linux's order; when a
step fails, the undo ops of the steps already done are sent in reverse (the
bad_fork_cleanup_* labels of kernel/fork.c) and the caller gets the errno.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from ..abi import (
    CLONE_DETACHED,
    CLONE_FILES,
    CLONE_FS,
    CLONE_NEW_MASK,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_PARENT,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
)
from ..ipc.router import Sent
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel


@dataclass
class CloneArgs:
    """struct kernel_clone_args, plus the Python entry of the child (fn, arg)."""

    flags: int = 0
    exit_signal: int = abi.SIGCHLD
    fn: Any = None
    arg: Any = None
    parent_tid: int = 0
    child_tid: int = 0
    tls: int = 0
    set_tid: list[int] = field(default_factory=list)
    pidfd: int = 0
    syscall: str = "clone"


@dataclass(frozen=True)
class Step:
    """One row of copy_process: who does it, and which op the flag picks."""

    name: str
    service: str
    flag: int  # 0: the same op every time
    op_set: str | None  # the op when a flag bit is set (share)
    op_clear: str | None  # the op when it is clear (copy); None: no message (copy_semundo)
    undo: str | None  # bad_fork_cleanup_*
    attr: str | None = None  # the TaskStruct field that holds the handle
    param: str | None = None  # the handle's name in the message

    def op_for(self, flags: int) -> str | None:
        return self.op_set if self.flag and flags & self.flag and self.op_set else self.op_clear


# fmt: off
COPY_STEPS: tuple[Step, ...] = (
    #    step               service       flag            op when set        op when clear     undo                 handle
    Step("dup_task_struct", "kernel",     0,              None,              "dup_task_struct", None),
    Step("limits",          "kernel",     0,              None,              "check_limits",   None),
    Step("sched_fork",      "sched",      0,              None,              "sched_fork",     "sched_cancel_fork", None,        "task"),
    Step("copy_semundo",    "namespaces", CLONE_SYSVSEM,  "copy_semundo",    None,             "exit_sem",          "undo_list", "undo_list"),
    Step("copy_files",      "vfs",        CLONE_FILES,    "share_files",     "dup_files",      "put_files",         "files",     "files"),
    Step("copy_fs",         "vfs",        CLONE_FS,       "share_fs",        "copy_fs",        "put_fs",            "fs",        "fs"),
    Step("copy_sighand",    "signals",    CLONE_SIGHAND,  "share_sighand",   "copy_sighand",   "put_sighand",       "sighand",   "sighand"),
    Step("copy_signal",     "signals",    CLONE_THREAD,   "share_signal",    "copy_signal",    "put_signal",        "signal",    "signal"),
    Step("copy_mm",         "mm",         CLONE_VM,       "share_mm",        "dup_mm",         "mmput",             "mm",        "mm"),
    Step("copy_namespaces", "namespaces", CLONE_NEW_MASK, "copy_namespaces", "share_nsproxy",  "put_nsproxy",       "nsproxy",   "nsproxy"),
    Step("copy_thread",     "kernel",     0,              None,              "copy_thread",    None),
    Step("alloc_pid",       "pid",        0,              None,              "alloc_pid",      "free_pid",          "pid_handle", "pid"),
    Step("link",            "kernel",     0,              None,              "link",           None),
)
# fmt: on
STEP_NAMES = tuple(s.name for s in COPY_STEPS) + ("settid", "wake_up_new_task")

#: Steps that may be sent at once (Config.parallel_copy): each needs only the
#: parent's handles, none needs another's reply, and they go to four services
#: (vfs, signals, mm, namespaces) that share no state. sched_fork stays first
#: (the child must be known to sched before anything can fail and undo it),
#: alloc_pid after copy_namespaces (it needs the child's pid namespace). One
#: exception: with CLONE_NEWNS, copy_namespaces needs copy_fs's reply (the
#: child's fs walks the new mount table), so it goes after the others.
INDEPENDENT_STEPS = frozenset(
    {"copy_semundo", "copy_files", "copy_fs", "copy_sighand", "copy_signal", "copy_mm", "copy_namespaces"}
)


def step_groups(parallel: bool) -> list[tuple[Step, ...]]:
    """COPY_STEPS as the walk takes them: one at a time, or the independent run as one group."""
    groups: list[tuple[Step, ...]] = []
    for step in COPY_STEPS:
        if parallel and step.name in INDEPENDENT_STEPS and groups and groups[-1][0].name in INDEPENDENT_STEPS:
            groups[-1] += (step,)
        else:
            groups.append((step,))
    return groups


def validate(current: TaskStruct, flags: int) -> None:
    """The EINVAL checks of copy_process (clone-semantics.md §2c-§2d), before any message."""
    validate_flags(
        flags,
        unkillable="SIGNAL_UNKILLABLE" in current.leader.flags,
        pidns_changed=current.pid_ns != current.pid_ns_for_children,
    )


def validate_flags(flags: int, *, unkillable: bool = False, pidns_changed: bool = False) -> None:
    """The checks on the flags alone, plus the two facts of the caller they need."""
    checks = (
        (flags & CLONE_NEWNS and flags & CLONE_FS, "CLONE_NEWNS and CLONE_FS together"),
        (flags & CLONE_NEWUSER and flags & CLONE_FS, "CLONE_NEWUSER and CLONE_FS together"),
        (flags & CLONE_THREAD and not flags & CLONE_SIGHAND, "CLONE_THREAD needs CLONE_SIGHAND"),
        (flags & CLONE_SIGHAND and not flags & CLONE_VM, "CLONE_SIGHAND needs CLONE_VM"),
        (
            flags & CLONE_PARENT and unkillable,
            "CLONE_PARENT from an init process (its parent is outside the namespace)",
        ),
        (
            flags & CLONE_THREAD and flags & (CLONE_NEWUSER | CLONE_NEWPID),
            "CLONE_THREAD with CLONE_NEWUSER or CLONE_NEWPID",
        ),
        (
            flags & CLONE_THREAD and pidns_changed,
            "CLONE_THREAD after unshare(CLONE_NEWPID): the thread would be in another pid namespace",
        ),
        (flags & CLONE_PIDFD and flags & CLONE_DETACHED, "CLONE_PIDFD with CLONE_DETACHED"),
    )
    for failed, why in checks:
        if failed:
            raise abi.kernel_error(abi.EINVAL, why)


def flag_note(step: Step, flags: int) -> str | None:
    """What decided the op, for the trace: 'CLONE_FILES' or 'no CLONE_FILES'."""
    if not step.flag:
        return None
    if step.flag == CLONE_NEW_MASK:
        names = [abi.CLONE_FLAG_NAMES[b] for b in abi.CLONE_FLAG_NAMES if b & flags & CLONE_NEW_MASK]
        return "|".join(names) if names else "no CLONE_NEW*"
    name = abi.CLONE_FLAG_NAMES[step.flag]
    return name if flags & step.flag else f"no {name}"


def route(flags: int, *, parent_has_mm: bool = True) -> list[tuple[str, str, str | None]]:
    """The (service, op, why) list a clone with these flags sends, without a kernel."""
    rows = [
        (s.service, s.op_for(flags), flag_note(s, flags))
        for s in COPY_STEPS
        if s.service != "kernel" and s.op_for(flags) is not None
    ]
    if not parent_has_mm:
        rows = [r for r in rows if r[0] != "mm"]
    if flags & CLONE_PARENT_SETTID:
        rows.append(("mm", "write_mem", "CLONE_PARENT_SETTID"))
    rows.append(("sched", "wake_up_new_task", None))
    return rows


class CopyProcess:
    """One walk of COPY_STEPS for one clone: the child, what was done, the unwind."""

    def __init__(self, kernel: Kernel, current: TaskStruct, args: CloneArgs, cause: int):
        self.k, self.current, self.args, self.cause = kernel, current, args, cause
        self.child = TaskStruct(comm=current.comm, id=next(kernel.task_ids))
        self.done: list[Step] = []

    def meta(self, step: str, flag: str | None = None) -> dict:
        meta = {
            "cause": self.cause,
            "pid": self.current.pid,
            "tid": self.current.pid,
            "syscall": self.args.syscall,
            "step": step,
        }
        if flag:
            meta["flag"] = flag
        return meta

    async def run(self) -> TaskStruct:
        try:
            for group in step_groups(self.k.config.parallel_copy):
                if len(group) == 1:
                    await self.do_step(group[0])
                else:
                    await self.do_steps_at_once(group)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.unwind()
            raise
        return self.child

    async def do_step(self, step: Step) -> None:
        if step.service == "kernel":
            inject = self.k.fail.get(step.name) if self.current not in (self.k.idle, self.k.init) else None
            if inject:
                raise abi.kernel_error(inject, f"fault injected at {step.name}")
            getattr(self, step.op_clear)()
            self.done.append(step)
            return
        sent = await self.send_step(step)
        if sent is not None:
            self.finish_step(step, await self.k.router.collect(sent))

    async def send_step(self, step: Step) -> Sent | None:
        """Send a service's step without waiting for its reply; None if it has nothing to do."""
        if step.attr == "mm" and self.current.mm is None:
            return None  # a kernel thread has no mm to copy (copy_mm: if (!oldmm) return 0)
        inject = self.k.fail.get(step.name) if self.current not in (self.k.idle, self.k.init) else None
        flags = self.args.flags
        op = step.op_for(flags)
        if op is None:  # nothing to send (no CLONE_SYSVSEM: the child's undo list is empty)
            if inject:
                raise abi.kernel_error(inject, f"fault injected at {step.name}")
            return None
        args, meta = self.step_args(step, op), self.meta(step.name, flag_note(step, flags))
        return await self.k.router.send("kernel", step.service, op, args, meta, inject)

    def finish_step(self, step: Step, reply: Any) -> None:
        self.done.append(step)
        self.store(step, reply)

    async def do_steps_at_once(self, group: tuple[Step, ...]) -> None:
        """Independent steps sent together, then their replies taken in table order.

        No task per service: every request goes out at once, and each service
        still gets its own steps in table order (its inbox or connection is first
        in, first out). Every step sent is collected even after a failure (a reply
        in flight is a handle given out: dropping it would leak it); ``done`` stays
        in table order, so the unwind is Linux's reverse order, and the first
        failure in table order is the one raised. copy_namespaces with CLONE_NEWNS
        needs copy_fs's reply (the child's fs walks the new mount table), so it
        then waits for the others and goes alone, as in the serial walk.
        """
        after = [s for s in group if s.name == "copy_namespaces" and self.args.flags & CLONE_NEWNS]
        sends = [(step, partial(self.send_step, step)) for step in group if step not in after]
        await self.k.router.call_at_once(sends, self.finish_step)
        for step in after:
            await self.do_step(step)

    def step_args(self, step: Step, op: str) -> dict:
        cur, flags = self.current, self.args.flags
        if step.name == "sched_fork":  # the parent's policy, nice and affinity are inherited
            return {"task": self.child.id, "parent": cur.id}
        if step.name == "alloc_pid":
            return {"ns": self.child.pid_ns_for_children, "set_tid": self.args.set_tid}
        args = {step.param: getattr(cur, step.attr)}
        if op == "copy_semundo":
            args["nsproxy"] = cur.nsproxy
        if op == "copy_namespaces":
            args |= {"flags": flags, "active_pid_ns": cur.pid_ns, "vm": bool(flags & CLONE_VM)}
            if flags & abi.CLONE_NEWNS:  # copy_mnt_ns(..., new_fs): the child's own fs_struct
                args["fs"] = self.child.fs
        if op == "share_nsproxy" and flags & CLONE_VM:
            args["vm"] = True  # a thread stays in its time namespace (timens_on_fork)
        if op == "copy_sighand" and flags & abi.CLONE_CLEAR_SIGHAND:
            args["clear"] = True
        return args

    def store(self, step: Step, reply: Any) -> None:
        child = self.child
        if step.name == "alloc_pid":
            child.pid_handle, child.numbers = reply["pid"], list(reply["numbers"])
            child.pid = child.numbers[0]
        elif step.attr is not None:
            setattr(child, step.attr, reply[step.param])
        if step.name == "copy_namespaces":
            child.pid_ns_for_children = reply["pid_ns"]
            child.time_offsets = dict(reply["time_offsets"])
        if step.name == "copy_semundo":
            self.current.undo_list = reply["undo_list"]  # get_undo_list made it if it had none

    async def unwind(self) -> None:
        """The bad_fork_cleanup_* labels: undo what was done, newest first."""
        child = self.child
        for step in reversed(self.done):
            if step.service == "kernel" or step.undo is None:
                continue
            handle = child.id if step.name == "sched_fork" else getattr(child, step.attr)
            await self.k.call(step.service, step.undo, {step.param: handle}, self.meta(f"undo {step.name}"))
        self.done.clear()

    # --- the kernel's own steps -------------------------------------------------------
    def dup_task_struct(self) -> None:
        """The child's task_struct starts as a copy of the parent's."""
        cur, child = self.current, self.child
        child.pid_ns_for_children = cur.pid_ns_for_children
        child.blocked = set(cur.blocked)  # the mask is copied; pending starts empty

    def check_limits(self) -> None:
        """RLIMIT_NPROC (counting the new child) and threads-max: EAGAIN."""
        k = self.k
        nproc = self.current.leader.rlim.get(abi.RLIMIT_NPROC, k.config.nproc)
        if k.nr_threads >= k.config.max_threads:
            raise abi.kernel_error(abi.EAGAIN, f"threads-max ({k.config.max_threads}) reached")
        if nproc != abi.RLIM_INFINITY and k.nr_threads + 1 > nproc:
            raise abi.kernel_error(abi.EAGAIN, f"RLIMIT_NPROC ({nproc}) reached")

    def copy_thread(self) -> None:
        """The child's execution context: where it starts, and that clone returns 0 there."""
        self.child.entry = self.k.runtime.copy_thread(self.current, self.child, self.args)

    def link(self) -> None:
        """real_parent, group_leader, tgid, exit_signal and the children lists."""
        cur, child, flags = self.current, self.child, self.args.flags
        child.pid_ns = child.pid_ns_for_children  # where alloc_pid put it
        child.ns_path = cur.ns_path[: child.level] + [child.pid_ns]  # the pid ns at each level
        if flags & (CLONE_PARENT | CLONE_THREAD):
            child.real_parent = cur.real_parent
            child.exit_signal = -1 if flags & CLONE_THREAD else cur.leader.exit_signal
        else:
            child.real_parent = cur
            child.exit_signal = self.args.exit_signal
        if flags & CLONE_THREAD:
            child.group_leader = cur.leader
            child.tgid = cur.tgid
            cur.leader.thread_group.append(child)
        else:
            child.group_leader = None
            child.tgid = child.pid
            child.thread_group = [child]
            child.rlim = dict(cur.leader.rlim)
            child.pgrp, child.session = cur.leader.pgrp, cur.leader.session
            if child.real_parent is not None:
                child.real_parent.children.append(child)
        if flags & abi.CLONE_CHILD_SETTID:
            child.set_child_tid = self.args.child_tid
        if flags & abi.CLONE_CHILD_CLEARTID:
            child.clear_child_tid = self.args.child_tid
        if child.numbers[-1] == 1:  # is_child_reaper: pid 1 of its namespace
            child.flags.add("SIGNAL_UNKILLABLE")
        if cur is self.k.init and self.k.program is None:
            self.k.program = child  # the program ukernel.run reports on
        child.state = "running"
        self.k.tasks.add(child)
        self.k.nr_threads += 1


async def kernel_clone(kernel: Kernel, current: TaskStruct, args: CloneArgs, cause: int) -> int:
    """copy_process, then the parent's tid word, the wake-up and the vfork wait."""
    flags = args.flags
    validate(current, flags)
    if flags & CLONE_PIDFD:
        raise abi.kernel_error(abi.ENOSYS, "pidfds are not built yet (CLONE_PIDFD)")
    child = await CopyProcess(kernel, current, args, cause).run()
    nr = child.vnr(current)
    meta = {"cause": cause, "pid": current.pid, "tid": current.pid, "syscall": args.syscall}
    if flags & CLONE_PARENT_SETTID and current.mm is not None:
        try:  # put_user(nr, parent_tid): a bad address is ignored, as in Linux
            await kernel.call(
                "mm",
                "write_mem",
                {"mm": current.mm, "addr": args.parent_tid, "data": nr.to_bytes(4, "little")},
                meta | {"step": "settid", "flag": "CLONE_PARENT_SETTID"},
            )
        except OSError:
            pass
    if flags & CLONE_VFORK:
        child.vfork_done = trio.Event()
    await kernel.wake_up_new_task(child, meta | {"step": "wake_up_new_task"})
    if flags & CLONE_VFORK:
        await kernel.sleep_on(current, child.vfork_done, interruptible=False)  # killable only
    return nr


async def sys_fork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return await kernel_clone(k, task, CloneArgs(exit_signal=abi.SIGCHLD, syscall="fork"), meta["cause"])


async def sys_vfork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    args = CloneArgs(flags=abi.CLONE_VFORK | abi.CLONE_VM, exit_signal=abi.SIGCHLD, syscall="vfork")
    return await kernel_clone(k, task, args, meta["cause"])


async def sys_clone(
    k: Kernel, task: TaskStruct, meta: dict, flags: int, fn: Any, arg: Any, parent_tid: int, child_tid: int, tls: int
) -> int:
    """clone(): the low byte is the exit signal; bits above 32 are dropped (lower_32_bits)."""
    if not isinstance(flags, int):
        raise abi.kernel_error(abi.EINVAL, "clone flags must be an int")
    flags &= 0xFFFFFFFF
    if fn is not None and not callable(fn):
        raise abi.kernel_error(abi.EINVAL, "clone's fn must be callable")
    args = CloneArgs(flags & ~abi.CSIGNAL, flags & abi.CSIGNAL, fn, arg, parent_tid, child_tid, tls)
    return await kernel_clone(k, task, args, meta["cause"])


def clone3_args_valid(flags: int, exit_signal: int, set_tid: list) -> None:
    """copy_clone_args_from_user and clone3_args_valid (clone-semantics.md §2a-§2b): EINVAL."""
    checks = (
        (len(set_tid) > abi.MAX_PID_NS_LEVEL, f"set_tid has {len(set_tid)} entries; at most {abi.MAX_PID_NS_LEVEL}"),
        (exit_signal & ~abi.CSIGNAL or not abi.valid_signal(exit_signal), f"bad exit_signal {exit_signal}"),
        (
            flags & ~(abi.CLONE_LEGACY_FLAGS | abi.CLONE_CLEAR_SIGHAND | abi.CLONE_INTO_CGROUP),
            f"unknown flag bits in {flags:#x}",
        ),
        (
            flags & (abi.CLONE_DETACHED | (abi.CSIGNAL & ~abi.CLONE_NEWTIME)),
            "CLONE_DETACHED or exit-signal bits in clone3 flags",
        ),
        (flags & abi.CLONE_SIGHAND and flags & abi.CLONE_CLEAR_SIGHAND, "CLONE_SIGHAND with CLONE_CLEAR_SIGHAND"),
        (
            flags & (abi.CLONE_THREAD | abi.CLONE_PARENT) and exit_signal,
            "CLONE_THREAD or CLONE_PARENT with an exit_signal",
        ),
    )
    for failed, why in checks:
        if failed:
            raise abi.kernel_error(abi.EINVAL, why)


async def sys_clone3(
    k: Kernel, task: TaskStruct, meta: dict, flags: int, exit_signal: int, fn: Any, arg: Any, set_tid: list, pidfd: bool
) -> int:
    """clone3(): flags and exit_signal apart, checked; set_tid picks the numbers."""
    if not isinstance(flags, int) or not isinstance(exit_signal, int) or not all(isinstance(t, int) for t in set_tid):
        raise abi.kernel_error(abi.EINVAL, "clone3 takes int flags, exit_signal and set_tid")
    clone3_args_valid(flags, exit_signal, list(set_tid))
    if flags & abi.CLONE_INTO_CGROUP:
        raise abi.kernel_error(abi.ENOSYS, "CLONE_INTO_CGROUP needs cgroup v2 (not built yet)")
    if pidfd:
        flags |= abi.CLONE_PIDFD
    if fn is not None and not callable(fn):
        raise abi.kernel_error(abi.EINVAL, "clone3's fn must be callable")
    args = CloneArgs(flags, exit_signal, fn, arg, set_tid=list(set_tid), syscall="clone3")
    return await kernel_clone(k, task, args, meta["cause"])
