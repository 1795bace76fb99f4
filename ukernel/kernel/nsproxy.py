"""unshare(2), setns(2) and the namespaces' other syscalls, routed as messages.

unshare is ksys_unshare (kernel/fork.c) as a table like COPY_STEPS: the flags
a flag implies are added, check_unshare_flags runs before any message, then
each row makes the caller a private copy of one thing (its fs_struct, its fd
table, its nsproxy); only when every row succeeded are the new handles
installed and the old ones put (switch_task_namespaces), so a failure leaves
the caller as it was. setns (kernel/nsproxy.c) learns from the vfs which
namespace an fd was opened on and asks the namespaces service to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from ..abi import (
    CLONE_FILES,
    CLONE_FS,
    CLONE_NEW_MASK,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VM,
)
from .ipc import exit_sem
from .steps import Step, StepWalk
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel

#: ksys_unshare's implications, applied in this order: a flag on the left adds the right.
UNSHARE_IMPLIES: tuple[tuple[int, int], ...] = (
    (CLONE_NEWUSER, CLONE_THREAD | CLONE_FS),  # a new user ns needs its own root and cwd
    (CLONE_VM, CLONE_SIGHAND),
    (CLONE_SIGHAND, CLONE_THREAD),
    (CLONE_NEWNS, CLONE_FS),  # the new mount table is walked through a private fs_struct
)

# fmt: off
#: (step, service, flag, op, handle: the TaskStruct field and the message's parameter, put op)
UNSHARE_STEPS: tuple[Step, ...] = (
    #    step                          service       flag            op when set              undo               handle
    Step("unshare_fs",                 "vfs",        CLONE_FS,       op_set="copy_fs",         undo="put_fs",      attr="fs",      param="fs"),
    Step("unshare_fd",                 "vfs",        CLONE_FILES,    op_set="dup_files",       undo="put_files",   attr="files",   param="files"),
    Step("unshare_nsproxy_namespaces", "namespaces", CLONE_NEW_MASK, op_set="unshare_nsproxy", undo="put_nsproxy", attr="nsproxy", param="nsproxy"),
)
# fmt: on
#: The order ksys_unshare installs what it made: switch_task_namespaces, then fs, then files.
COMMIT_ORDER = ("nsproxy", "fs", "files")


def unshare_flags(flags: int) -> int:
    """The flags unshare really acts on, with what each implies."""
    for flag, implied in UNSHARE_IMPLIES:
        if flags & flag:
            flags |= implied
    return flags


def check_unshare_flags(k: Kernel, task: TaskStruct, flags: int) -> None:
    """EINVAL for unknown bits; CLONE_THREAD, CLONE_SIGHAND and CLONE_VM are accepted
    only when there is nothing to unshare (a single-threaded process whose signal
    handlers and address space no one else uses)."""
    if flags & ~abi.UNSHARE_FLAGS:
        raise abi.kernel_error(abi.EINVAL, f"unshare flags {flags!r}: unknown bits")
    others = [t for t in k.tasks if t is not task and t.state == "running"]
    checks = (
        (
            flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) and len(task.leader.thread_group) > 1,
            "unshare(CLONE_THREAD/CLONE_SIGHAND/CLONE_VM) in a multithreaded process",
        ),
        (
            flags & (CLONE_SIGHAND | CLONE_VM) and any(t.sighand == task.sighand for t in others),
            "unshare(CLONE_SIGHAND/CLONE_VM): the signal handlers are shared",
        ),
        (
            flags & CLONE_VM and task.mm is not None and any(t.mm == task.mm for t in others),
            "unshare(CLONE_VM): the address space is shared (vfork child or thread)",
        ),
    )
    for failed, why in checks:
        if failed:
            raise abi.kernel_error(abi.EINVAL, why)


async def sys_unshare(k: Kernel, task: TaskStruct, meta: dict, flags: int) -> None:
    """ksys_unshare: private copies first, then install them and put the old ones."""
    flags = unshare_flags(flags)
    check_unshare_flags(k, task, flags)
    made = UnshareCopies(k, task, meta, flags)
    await made.run()
    if flags & (CLONE_NEWIPC | CLONE_SYSVSEM):
        await exit_sem(k, task, meta)  # "CLONE_SYSVSEM is equivalent to sys_exit()"
    for step in sorted(made.done, key=lambda row: COMMIT_ORDER.index(row.attr)):
        old = getattr(task, step.attr)
        setattr(task, step.attr, made.copies[step.attr][step.param])
        await k.call(step.service, step.undo, {step.param: old}, meta | {"step": f"switch {step.name}"})
    if "nsproxy" in made.copies:
        task.pid_ns_for_children = made.copies["nsproxy"]["pid_ns"]


class UnshareCopies(StepWalk):
    """UNSHARE_STEPS for one caller: a private copy of each thing the flags name; on a
    failure the copies made so far are put again, and the caller is left as it was."""

    table = UNSHARE_STEPS

    def __init__(self, k: Kernel, task: TaskStruct, meta: dict, flags: int):
        super().__init__(k, flags)
        self.task, self.base = task, meta
        self.copies: dict[str, dict] = {}  # attr -> the reply that made the copy

    def meta(self, label: str, flag: str | None = None) -> dict:
        return self.base | {"step": label}

    def step_args(self, step: Step, op: str) -> dict:
        task = self.task
        args = {step.param: getattr(task, step.attr)}
        if op == "unshare_nsproxy":
            fs = self.copies["fs"]["fs"] if "fs" in self.copies else task.fs  # copy_mnt_ns re-points this one
            args |= {"flags": self.flags & CLONE_NEW_MASK, "fs": fs, "active_pid_ns": task.pid_ns}
        return args

    def store(self, step: Step, reply: Any) -> None:
        self.copies[step.attr] = reply

    def handle(self, step: Step) -> Any:
        return self.copies[step.attr][step.param]


def parse_ns_name(name: str) -> tuple[str, int]:
    """'uts:[4026531838]' -> ('uts', 4026531838)."""
    kind, _, rest = name.partition(":[")
    return kind, int(rest.rstrip("]"))


async def sys_setns(k: Kernel, task: TaskStruct, meta: dict, fd: int, nstype: int) -> None:
    """setns(fd, nstype): fd names a namespace (/proc/PID/ns/*); nstype 0 accepts any
    kind, else it must match (EINVAL). The new nsproxy replaces the caller's."""
    name = await k.call("vfs", "ns_of_fd", {"files": task.files, "fd": fd}, meta)
    kind, inum = parse_ns_name(name)
    if nstype and abi.NS_TYPES[kind] != nstype:
        raise abi.kernel_error(abi.EINVAL, f"fd {fd} is a {kind} namespace, not nstype {nstype!r}")
    args = {
        "nsproxy": task.nsproxy,
        "kind": kind,
        "inum": inum,
        "fs": task.fs,
        "active_pid_ns": task.pid_ns,
        "threaded": len(task.leader.thread_group) > 1,
    }
    reply = await k.call("namespaces", "setns", args, meta)
    old, task.nsproxy = task.nsproxy, reply["nsproxy"]
    task.pid_ns_for_children, task.time_offsets = reply["pid_ns"], dict(reply["time_offsets"])
    if kind == "ipc":
        await exit_sem(k, task, meta)  # ipcns_install: the old namespace's undo list goes
    await k.call("namespaces", "put_nsproxy", {"nsproxy": old}, meta | {"step": "switch_task_namespaces"})


# --- uts, ipc, time ---------------------------------------------------------------


# fmt: off
# fmt: on
