"""kernel_clone and copy_process: Linux's fork path as a table of messages.

Reading COPY_STEPS *is* reading the route: each row names the service that
does the step and the op it gets, which depends on one clone flag (share when
set, copy when clear). copy_process walks the rows in Linux's order; when a
step fails, the undo ops of the steps already done are sent in reverse (the
bad_fork_cleanup_* labels of kernel/fork.c) and the caller gets the errno.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from .choice import COUNT, READ, children_of, touch, touch_tasks
from .steps import Step, StepWalk, flag_note
from .task import EMPTY, TaskStruct, WaitChannel

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


# fmt: off
COPY_STEPS: tuple[Step, ...] = (
    #    step               service       flag            op when set (share)       op when clear (copy)      undo (bad_fork_cleanup_*)          handle
    Step("dup_task_struct", "kernel",                                                    op_clear="dup_task_struct"),
    Step("limits",          "kernel",                                                    op_clear="check_limits"),
    Step("sched_fork",      "sched",                                                     op_clear="sched_fork",    undo="sched_cancel_fork",                  param="task"),
    Step("copy_semundo",    "namespaces", CLONE_SYSVSEM,  op_set="copy_semundo",                                   undo="exit_sem",    attr="undo_list",  param="undo_list"),
    Step("copy_files",      "vfs",        CLONE_FILES,    op_set="share_files",     op_clear="dup_files",     undo="put_files",   attr="files",      param="files"),
    Step("copy_fs",         "vfs",        CLONE_FS,       op_set="share_fs",        op_clear="copy_fs",       undo="put_fs",      attr="fs",         param="fs"),
    Step("copy_sighand",    "signals",    CLONE_SIGHAND,  op_set="share_sighand",   op_clear="copy_sighand",  undo="put_sighand", attr="sighand",    param="sighand"),
    Step("copy_signal",     "signals",    CLONE_THREAD,   op_set="share_signal",    op_clear="copy_signal",   undo="put_signal",  attr="signal",     param="signal"),
    Step("copy_mm",         "mm",         CLONE_VM,       op_set="share_mm",        op_clear="dup_mm",        undo="mmput",       attr="mm",         param="mm"),
    Step("copy_namespaces", "namespaces", CLONE_NEW_MASK, op_set="copy_namespaces", op_clear="share_nsproxy", undo="put_nsproxy", attr="nsproxy",    param="nsproxy"),
    Step("copy_thread",     "kernel",                                                    op_clear="copy_thread"),
    Step("alloc_pid",       "pid",                                                       op_clear="alloc_pid",     undo="free_pid",    attr="pid_handle", param="pid"),
    Step("link",            "kernel",                                                    op_clear="link"),
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


class CopyProcess(StepWalk):
    """One walk of COPY_STEPS for one clone: the child, what was done, the unwind."""

    table = COPY_STEPS

    def __init__(self, kernel: Kernel, current: TaskStruct, args: CloneArgs, cause: int):
        super().__init__(kernel, args.flags, INDEPENDENT_STEPS if kernel.config.parallel_copy else frozenset())
        self.current, self.args, self.cause = current, args, cause
        self.child = TaskStruct(comm=current.comm, id=next(kernel.task_ids), start_time=kernel.ticks)
        self.faults = faults_for(kernel, current)  # (looked up once: every row asks)

    async def make(self) -> TaskStruct:
        await self.run()
        return self.child

    def meta(self, label: str, flag: str | None = None) -> dict:
        cur = self.current
        meta = {"cause": self.cause, "pid": cur.pid, "tid": cur.pid, "syscall": self.args.syscall, "step": label}
        if flag:
            meta["flag"] = flag
        return meta

    def note(self, step: Step) -> str | None:
        return flag_note(step, self.flags)

    def injected(self, step: Step) -> int | None:
        return self.faults.get(step.name) if self.faults else None

    def skip(self, step: Step) -> bool:
        return step.attr == "mm" and self.current.mm is None  # copy_mm: if (!oldmm) return 0

    def waits_for_others(self, step: Step) -> bool:
        """With CLONE_NEWNS, copy_namespaces needs copy_fs's reply (the child's fs walks the new mount table)."""
        return step.name == "copy_namespaces" and bool(self.flags & CLONE_NEWNS)

    def handle(self, step: Step) -> Any:
        return self.child.id if step.name == "sched_fork" else getattr(self.child, step.attr)

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
            offsets = reply["time_offsets"]  # (most are the parent's: then its dict, shared, as nothing changes one)
            child.time_offsets = self.current.time_offsets if offsets == self.current.time_offsets else dict(offsets)
        if step.name == "copy_semundo":
            self.current.undo_list = reply["undo_list"]  # get_undo_list made it if it had none

    # --- the kernel's own steps -------------------------------------------------------
    def dup_task_struct(self) -> None:
        """The child's task_struct starts as a copy of the parent's."""
        cur, child = self.current, self.child
        child.pid_ns_for_children = cur.pid_ns_for_children
        child.blocked = frozenset(cur.blocked) if cur.blocked else EMPTY  # the mask is copied (shared: immutable)

    def check_limits(self) -> None:
        """RLIMIT_NPROC (counting the new child) and threads-max: EAGAIN."""
        k = self.k
        nproc = self.current.leader.rlim.get(abi.RLIMIT_NPROC, k.config.nproc)
        limit = k.config.max_threads if nproc == abi.RLIM_INFINITY else min(k.config.max_threads, nproc)
        touch(k, *limit_objects(k, limit))
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
        path = cur.ns_path[: child.level] + [child.pid_ns]  # the pid ns at each level
        child.ns_path = cur.ns_path if path == cur.ns_path else path  # (shared: never changed in place)
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
            if cur.leader.stopped or cur.leader.group_stop_count:  # a thread born into a group stop stops too
                child.jobctl_stop_pending, child.sigpending = True, True
                cur.leader.group_stop_count += 1
        else:
            child.group_leader = None
            child.tgid = child.pid
            child.thread_group = [child]
            child.rlim = cur.leader.rlim  # shared: a change replaces the dict (sys.py prlimit)
            child.pgrp, child.session, child.tty = cur.leader.pgrp, cur.leader.session, cur.leader.tty
            if child.real_parent is not None:
                child.real_parent.children.append(child)
        if flags & abi.CLONE_CHILD_SETTID:
            child.set_child_tid = self.args.child_tid
        if flags & abi.CLONE_CHILD_CLEARTID:
            child.clear_child_tid = self.args.child_tid
        if child.numbers[-1] == 1:  # is_child_reaper: pid 1 of its namespace
            child.flags = child.flags | {"SIGNAL_UNKILLABLE"}
        if cur is self.k.init and self.k.program is None:
            self.k.program = child  # the program ukernel.run reports on
        child.state = "running"
        self.touch_linked(child)
        self.k.tasks.add(child)
        self.k.nr_threads += 1
        self.k.total_forks += 1

    def touch_linked(self, child: TaskStruct) -> None:
        """explore's POR: what link read and changed. The new task; the caller's struct read
        (its group, session, tty, limits: only setpgid, setsid, execve and the tty's calls
        change them, and they touch the whole table), written for a thread (its group's
        list of threads); the parent's children lists, an entry added (a COUNT: it commutes
        with a child's exit noting a zombie there and with a reap taking one out); the
        group index, an entry added (COUNT, as a reap's removal)."""
        cur, k = self.current, self.k
        touch_tasks(k, child)
        touch(k, ("task", cur.leader.pid) if self.args.flags & CLONE_THREAD else (READ, ("task", cur.leader.pid)))
        if child.real_parent is not None and not self.args.flags & CLONE_THREAD:
            touch(k, (COUNT, children_of(child.real_parent)))
        touch(k, (COUNT, ("task", "pgrp", tuple(child.leader.pgrp))))


def limit_objects(k: Kernel, limit: int) -> tuple:
    """explore's POR: what fork's limit check (``count + 1 <= limit``) touches. Every fork
    writes ``total_forks``, so forks keep their order in every run explore counts as the
    same; a fork then never sees more than ``total_forks`` tasks (the count had no task been
    reaped), whatever the order of the reaps around it. Below the limit even then, the
    check passes in every such order: the fork only adds to the count (a COUNT, which
    commutes with a reap's). Else it reads it (a reap could let it through: a write)."""
    if k.total_forks + 1 <= limit:
        return ("task", "total_forks"), (COUNT, ("task", "nr_threads"))
    return ("task", "total_forks"), ("task", "nr_threads")


def faults_for(k: Kernel, current: TaskStruct) -> dict[str, int] | None:
    """``--fail STEP=ERRNO``'s steps for a clone by ``current``: the program's clones fail, not init's own."""
    return k.fail if k.fail and current is not k.idle and current is not k.init else None


def injected_at(k: Kernel, current: TaskStruct, step: str) -> int | None:
    """The errno ``--fail STEP=ERRNO`` gives this clone at ``step``."""
    faults = faults_for(k, current)
    return faults.get(step) if faults else None


async def kernel_clone(
    kernel: Kernel, current: TaskStruct, args: CloneArgs, cause: int, done: dict | None = None
) -> int:
    """copy_process, then the parent's tid word, the wake-up and the vfork wait.

    The result is the child's pid in the caller's namespace; ``done["child"]`` gets its
    global pid (the syscall's meta: its syscall_exit event carries it, as Linux's
    sched_process_fork tracepoint carries child_pid, so views need not map namespaces).
    """
    flags = args.flags
    validate(current, flags)
    if flags & CLONE_PIDFD:
        raise abi.kernel_error(abi.ENOSYS, "pidfds are not built yet (CLONE_PIDFD)")
    walker = kernel.config.copy_process or CopyProcess  # a lab's own walker (Config.copy_process)
    child = await walker(kernel, current, args, cause).make()
    nr = child.vnr(current)
    if done is not None:
        done["child"] = child.pid
    meta = {"cause": cause, "pid": current.pid, "tid": current.pid, "syscall": args.syscall}
    if flags & CLONE_PARENT_SETTID and current.mm is not None:
        try:  # put_user(nr, parent_tid): a bad address is ignored, as in Linux
            await kernel.call(
                "mm",
                "write_mem",
                {"mm": current.mm, "addr": args.parent_tid, "data": nr.to_bytes(4, "little")},
                meta | {"step": "settid", "flag": "CLONE_PARENT_SETTID"},
                injected_at(kernel, current, "settid"),
            )
        except OSError:
            pass
    if flags & CLONE_VFORK:
        child.vfork_done = trio.Event()
    await kernel.wake_up_new_task(
        child, meta | {"step": "wake_up_new_task"}, injected_at(kernel, current, "wake_up_new_task")
    )
    if flags & CLONE_VFORK:
        wchan = WaitChannel(args.syscall, f"vfork child {child.pid}")
        await kernel.sleep_on(current, child.vfork_done, interruptible=False, wchan=wchan)  # killable only
        touch(kernel, ("task", "vfork", child.pid))  # explore's POR: woken by the child's exec or exit
    return nr


async def sys_fork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return await kernel_clone(k, task, CloneArgs(exit_signal=abi.SIGCHLD, syscall="fork"), meta["cause"], meta)


async def sys_vfork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    args = CloneArgs(flags=abi.CLONE_VFORK | abi.CLONE_VM, exit_signal=abi.SIGCHLD, syscall="vfork")
    return await kernel_clone(k, task, args, meta["cause"], meta)


async def sys_clone(
    k: Kernel, task: TaskStruct, meta: dict, flags: int, fn: Any, arg: Any, parent_tid: int, child_tid: int, tls: int
) -> int:
    """clone(): the low byte is the exit signal; bits above 32 are dropped (lower_32_bits)."""
    flags &= 0xFFFFFFFF
    args = CloneArgs(flags & ~abi.CSIGNAL, flags & abi.CSIGNAL, fn, arg, parent_tid, child_tid, tls)
    return await kernel_clone(k, task, args, meta["cause"], meta)


def clone3_args_valid(flags: int, exit_signal: int) -> None:
    """clone3_args_valid (clone-semantics.md §2b): EINVAL. copy_clone_args_from_user's
    set_tid length is the argument table's (uaccess.py)."""
    checks = (
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
    clone3_args_valid(flags, exit_signal)
    if flags & abi.CLONE_INTO_CGROUP:
        raise abi.kernel_error(abi.ENOSYS, "CLONE_INTO_CGROUP needs cgroup v2 (not built yet)")
    if pidfd:
        flags |= abi.CLONE_PIDFD
    args = CloneArgs(flags, exit_signal, fn, arg, set_tid=set_tid, syscall="clone3")
    return await kernel_clone(k, task, args, meta["cause"], meta)
