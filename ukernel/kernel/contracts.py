"""What the kernel may expect of a service's reply: a table of contracts, one per op it sends.

A service is someone else's code (a student's, a remote host's): the kernel
stores the handles it answers, indexes its dicts and dispatches the tasks it
names, so a wrong reply would surface far away, as a crash in the kernel. Each
reply to the kernel is checked where it arrives (``check``, called by the
router for every reply the kernel collects) against its op's row:

- the **shape**: a reply's kind, written as an op's annotations are (``int``,
  ``list[int]``, ``int | None``), or a dict of its keys and their kinds (a key
  ending in ``?`` may be missing; other keys are allowed);
- cheap **semantic checks** where a wrong value would do harm later: alloc_pid's
  numbers are not a live task's; a copy is a new handle, a share the same one;
  sched names tasks and CPUs the kernel knows; a count is never below zero.

A reply that breaks its contract raises ``ServiceBug``: the service's bug,
reported (bug.py) and handled as an oops for the task it was for. An op with
no row here is the program's to judge (read's bytes, stat's fields): nothing
the kernel keeps comes from it. Each check is O(1), or O(the reply's size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ipc.params import INLINE_TESTS, INT_MAX, INT_MIN, Kind, kind_of

if TYPE_CHECKING:
    from ..ipc.router import Sent
    from .core import Kernel

Check = Callable[["Kernel", "Sent", Any], "str | None"]


class ServiceBug(Exception):
    """A reply that broke its op's contract: the service's bug, not the kernel's.

    An Exception (not an OSError): no syscall path takes it for an errno; the
    syscall entry makes it an oops for the task it was met for."""

    def __init__(self, service: str, op: str, msgid: int, reply: Any, why: str):
        super().__init__(f"{service}.{op} (#{msgid}) broke its reply contract: {why}")
        self.service, self.op, self.msgid, self.reply, self.why = service, op, msgid, reply, why


# --- semantic checks -------------------------------------------------------------------
def numbers_free(k: Kernel, sent: Sent, reply: dict) -> str | None:
    """alloc_pid: one number per level, each >= 1; set_tid's own numbers honoured; the
    global one not a live task's (the task table knows every global pid in use)."""
    numbers, wanted = reply["numbers"], sent.args.get("set_tid")
    if not numbers or min(numbers) < 1:
        return f"numbers {numbers}: a pid has one number >= 1 per level"
    if wanted:  # set_tid[0] is the number in the child's own namespace, the deepest level
        for level, nr in zip(range(len(numbers) - 1, -1, -1), wanted, strict=False):
            if numbers[level] != nr:
                return f"set_tid asked for {nr} at level {level}, the reply gives {numbers[level]}"
    holder = k.tasks.by_pid.get(numbers[0])
    if holder is not None:
        return f"pid {numbers[0]} is in use: live task pid {holder.pid} ({holder.comm}) holds it"
    return None


def new_handle(param: str, arg: str | None = None) -> Check:
    """A copy's handle is a new one: not the handle it was made from (args[arg])."""

    def check(k: Kernel, sent: Sent, reply: dict) -> str | None:
        handle, old = reply[param], sent.args.get(arg or param)
        if handle < 1:
            return f"{param} {handle}: a handle is a number >= 1"
        if handle == old:
            return f"{param} {handle} is the handle it was asked to copy, not a new one"
        return None

    return check


def same_handle(param: str) -> Check:
    """A share answers the handle it was given: one more user of the same object."""

    def check(k: Kernel, sent: Sent, reply: dict) -> str | None:
        if reply[param] != sent.args[param]:
            return f"{param} {reply[param]}: sharing {param} {sent.args[param]} must answer that handle"
        return None

    return check


def not_negative(key: str) -> Check:
    """A put's count left: below zero, the object was put more often than it was taken."""

    def check(k: Kernel, sent: Sent, reply: dict) -> str | None:
        return f"{key} {reply[key]}: put more often than taken" if reply[key] < 0 else None

    return check


def known_tasks(k: Kernel, sent: Sent, reply: dict) -> str | None:
    """sched's decisions: every task it names is one the kernel runs, every CPU exists
    (and its expired timers, known_timers)."""
    cpus = len(k.cpu_curr)
    nxt = reply.get("next")
    if nxt is not None and nxt not in k.by_id:
        return f"next {nxt}: no task the kernel runs has that number"
    for entry in reply.get("dispatch", ()):
        if len(entry) < 2 or not 0 <= entry[0] < cpus or entry[1] not in k.by_id:
            return f"dispatch {entry}: want [cpu, task, slice?] with a cpu below {cpus} and a task the kernel runs"
    for cpu in reply.get("preempt", ()):
        if not 0 <= cpu < cpus:
            return f"preempt {cpu}: there are {cpus} CPUs"
    if "cpu" in reply and not 0 <= reply["cpu"] < cpus:
        return f"cpu {reply['cpu']}: there are {cpus} CPUs"
    return known_timers(k, sent, reply) if "expired" in reply else None


def known_timers(k: Kernel, sent: Sent, reply: dict) -> str | None:
    """Expired timers name tasks the kernel knows."""
    stray = [tid for tid in reply.get("expired", ()) if tid not in k.by_id]
    return f"expired {stray}: no task the kernel runs has those numbers" if stray else None


# --- the table -------------------------------------------------------------------------
SCHED_REPLY = {"dispatch?": list[list[int]], "preempt?": list[int], "migrated?": list[list[int]], "timer?": int | None}
NSPROXY_REPLY = {"nsproxy": int, "pid_ns": int, "time_offsets": dict[str, int]}

#: (service, op) -> (shape, semantic checks...): the kernel's expectations, as data.
# fmt: off
CONTRACTS: dict[tuple[str, str], tuple] = {
    # copy_process (fork.py COPY_STEPS), unshare (nsproxy.py), and their undo ops
    ("sched", "sched_fork"):          ({"task": int},),
    ("sched", "sched_cancel_fork"):   (None,),
    ("sched", "sched_restore"):       ({"task": int},),
    ("namespaces", "copy_semundo"):   ({"undo_list": int},),
    ("vfs", "dup_files"):             ({"files": int}, new_handle("files")),
    ("vfs", "share_files"):           ({"files": int}, same_handle("files")),
    ("vfs", "copy_fs"):               ({"fs": int}, new_handle("fs")),
    ("vfs", "share_fs"):              ({"fs": int}, same_handle("fs")),
    ("signals", "copy_sighand"):      ({"sighand": int}, new_handle("sighand")),
    ("signals", "share_sighand"):     ({"sighand": int}, same_handle("sighand")),
    ("signals", "copy_signal"):       ({"signal": int}, new_handle("signal")),
    ("signals", "share_signal"):      ({"signal": int}, same_handle("signal")),
    ("mm", "dup_mm"):                 ({"mm": int}, new_handle("mm")),
    ("mm", "share_mm"):               ({"mm": int}, same_handle("mm")),
    ("namespaces", "copy_namespaces"): (NSPROXY_REPLY,),
    ("namespaces", "share_nsproxy"):  (NSPROXY_REPLY,),  # a new one when time_ns_for_children differs
    ("namespaces", "unshare_nsproxy"): (NSPROXY_REPLY, new_handle("nsproxy")),
    ("pid", "alloc_pid"):             ({"pid": int, "numbers": list[int]}, numbers_free),
    # do_exit (exit.py EXIT_STEPS), release_task, exec
    ("mm", "mmput"):                  ({"users": int}, not_negative("users")),
    ("mm", "mm_release"):             ({"cleared": bool},),
    ("mm", "mm_init"):                ({"mm": int},),
    ("namespaces", "exit_sem"):       ({"count": int},),
    ("vfs", "put_files"):             ({"count": int}, not_negative("count")),
    ("vfs", "put_fs"):                ({"users": int}, not_negative("users")),
    ("signals", "put_sighand"):       ({"count": int}, not_negative("count")),
    ("signals", "put_signal"):        ({"nr_threads": int}, not_negative("nr_threads")),
    ("namespaces", "put_nsproxy"):    ({"count": int}, not_negative("count")),
    ("pid", "free_pid"):              (int,),
    ("vfs", "exec_files"):            ({"files": int},),
    ("vfs", "kernel_read_file"):      ({"path": str, "data": bytes, "dev?": int, "ino?": int},),
    # boot: the idle task's handles
    ("vfs", "init_files"):            ({"files": int},),
    ("vfs", "init_fs"):               ({"fs": int},),
    ("signals", "init_sighand"):      ({"sighand": int},),
    ("signals", "init_signal"):       ({"signal": int},),
    ("namespaces", "init_nsproxy"):   ({"nsproxy": int},),
    # the CPUs (cpu.py) and time (time.py)
    ("sched", "schedule"):            ({"next": int | None, "slice": int, "now": int, "expired?": list[int]} | SCHED_REPLY,
                                       known_tasks),
    ("sched", "wake"):                (SCHED_REPLY, known_tasks),
    ("sched", "wake_up_new_task"):    (SCHED_REPLY, known_tasks),
    ("sched", "hrtimer_interrupt"):   ({"expired": list[int], "timer": int | None}, known_timers),
    ("sched", "hrtimer_start"):       ({"armed": bool, "expires": int, "timer": int | None},),
    ("sched", "hrtimer_cancel"):      ({"remaining": int, "timer": int | None},),
    # signals the kernel acts on
    ("signals", "send_signal"):       ({"queued": bool},),
    ("signals", "sigaction"):         (list,),
    ("signals", "dequeue_signal"):    ({"sig": int, "flags": int, "info?": dict},),
    # /proc's machine-wide files (proc_misc.py)
    ("mm", "meminfo"):                ({"total": int, "free": int, "anon": int, "shmem": int, "page_tables": int,
                                        "committed": int},),
    ("sched", "loadavg"):             ({"avenrun": list[int], "nr_running": int},),
    # what a lost namespaces' nsproxies held, put for it by RS (restore.py)
    ("pid", "nsproxy_refs"):          (list[list[int]],),
    ("vfs", "nsproxy_refs"):          (list[list[int]],),
    # what check_invariants compares
    ("mm", "check"):                  (list[str],),
    ("vfs", "check"):                 (list[str],),
}
# fmt: on


@dataclass(frozen=True)
class Contract:
    """One op's row, ready to test replies: the kind of the whole, its keys', the checks."""

    whole: Kind | None  # None: any value
    required: tuple[str, ...]  # the keys a dict reply must have
    kinds: dict[str, Kind | None]  # every key's kind, required or not
    checks: tuple[Check, ...]
    breach: Breach = field(compare=False, repr=False, default=None)  # made by __post_init__

    @classmethod
    def of(cls, shape: Any, *checks: Check) -> Contract:
        if not isinstance(shape, dict):
            return cls(kind_of(Any if shape is None else shape), (), {}, checks)
        required = tuple(k for k in shape if not k.endswith("?"))
        return cls(kind_of(dict), required, {k.removesuffix("?"): kind_of(v) for k, v in shape.items()}, checks)

    def __post_init__(self) -> None:
        object.__setattr__(self, "breach", compile_breach(self))


#: ``breach(kernel, sent, reply)``: what is wrong with ``reply``, or None.
Breach = Callable[["Kernel", "Sent", Any], "str | None"]


def compile_breach(contract: Contract) -> Breach:
    """A contract's test as one generated function (as the start stubs are, ipc/params.py):
    this runs for every reply the kernel collects, so each key's test is inline code, with
    no loop over the reply and no call per kind. It answers as the row reads: the reply's
    kind, then every required key there, then each key's kind (in the row's order), then
    the semantic checks in order; the first thing wrong is the answer."""
    scope: dict[str, Any] = {"INT_MIN": INT_MIN, "INT_MAX": INT_MAX, "MISSING": _MISSING}
    lines = ["def breach(k, sent, reply):"]
    if contract.kinds:
        scope["WHOLE"] = "the reply must be dict, not "
        lines += ["    if type(reply) is not dict:", "        return WHOLE + type(reply).__name__"]
    elif contract.whole is not None:
        scope["whole"], scope["WHOLE"] = contract.whole.accepts, f"the reply must be {contract.whole.name}, not "
        lines += ["    if not whole(reply):", "        return WHOLE + type(reply).__name__"]
    names = {key: f"v{i}" for i, key in enumerate(contract.kinds)}
    for key in contract.required:
        v = names[key]
        scope[f"NO_{v}"] = f"the reply has no {key!r} (it must have {', '.join(contract.required)})"
        lines += [f"    {v} = reply.get({key!r}, MISSING)", f"    if {v} is MISSING:", f"        return NO_{v}"]
    for i, (key, kind) in enumerate(contract.kinds.items()):
        if kind is None:
            continue
        v = names[key]
        if kind.name in INLINE_TESTS:
            test = INLINE_TESTS[kind.name].format(v=v)
        else:
            scope[f"test{i}"] = kind.accepts
            test = f"test{i}({v})"
        if key not in contract.required:
            lines.append(f"    {v} = reply.get({key!r}, MISSING)")
            test = f"{v} is MISSING or {test}"
        scope[f"BAD_{v}"] = f"{key} must be {kind.name}, not "
        lines += [f"    if not ({test}):", f"        return BAD_{v} + type({v}).__name__"]
    for i, check in enumerate(contract.checks):
        scope[f"check{i}"] = check
        lines += [f"    why = check{i}(k, sent, reply)", "    if why:", "        return why"]
    lines.append("    return None")
    exec("\n".join(lines), scope)  # noqa: S102 (our own source: the table's keys and kinds)
    return scope["breach"]


_MISSING = object()


#: service -> op -> Contract: looked up for every reply the kernel collects (Bugs.on_collect).
TABLE: dict[str, dict[str, Contract]] = {}
for (_service, _op), (_shape, *_checks) in CONTRACTS.items():
    TABLE.setdefault(_service, {})[_op] = Contract.of(_shape, *_checks)
