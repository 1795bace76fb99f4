"""Partial-order reduction: what a transition touched, and source-DPOR's races.

A *transition* is the task chosen at a choice point running to the next point.
Its *footprint* is the set of kernel objects it touched, built from what the
kernel saw it do (``Footprint``, fed by kernel/choice.py's hooks): the syscalls
it entered and the messages sent on its behalf. Where ukernel cannot see which
object a step touched, the footprint is coarse, never missing: a message to a
service is the whole service unless the op's handle names its object
(``HANDLE_OPS``); the task table's and the futex table's objects are added by
the kernel's hooks as its code runs (``touch``: the thread groups, process
groups and futex words fork, exit, wait4, getppid, kill and futex really read
or change); the rest of the table's syscalls are the whole table
(``("task", "*")``); a syscall in no table (tgkill, timers, the clock...) is
``GLOBAL``, which conflicts with everything, and so is a transition in which a
second task ran (init, a task with no choice point between). Every transition also touches its task's user memory:
the program's globals it read and wrote (``user_objects``, from user/watch.py's
hooks: threads sharing an mm share the program's Python globals), or all of it.

``races`` is source-DPOR's race detection (Abdulla, Aronis, Jonsson, Sagonas,
POPL'14) over one run's transitions: for each pair of dependent transitions of
two tasks, not ordered by happens-before through a third, the tasks that could
start the reversed order (the initials of ``v``) must get a branch at the first
one's state, unless one of them already has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..kernel.choice import COUNT, READ
from ..kernel.choice import EVERYTHING as GLOBAL  # conflicts with every footprint

#: Syscalls whose kernel side touches only the calling task (what else they touch goes by
#: message, and is in the footprint from there). The rest reach other tasks or the clock.
TASK_LOCAL_SYSCALLS = frozenset(
    """read write pread64 pwrite64 readv writev open openat close lseek dup dup2 dup3 pipe pipe2
    fcntl chdir fchdir getcwd mkdir rmdir unlink rename stat lstat fstat getdents umask chroot
    mmap munmap mprotect brk sigaction sigprocmask uname sethostname readlink symlink link cmpxchg
    access truncate ftruncate mknod mkfifo getpid gettid sched_yield peek poke""".split()
)
#: Syscalls whose kernel side names what it touches as it runs (``Footprint.touch``, from the
#: kernel's hooks: kernel/fork.py, exit.py, futex.py, signal.py): the tasks it reads or
#: changes as ``("task", tgid)`` (a thread group's struct, its children lists and wait
#: queue), ``("task", "pgrp", g)`` a process group's member index, ``("task", "nr_threads")``
#: the count fork checks, and ``("futex", mm, addr)`` one futex word's queue (futex.py's key).
#: Only the code that really runs adds objects: a wait4 that sleeps touches the child it
#: reaps when it resumes, an exit touches a reaper only when it has children to move.
HOOKED_SYSCALLS = frozenset("fork vfork clone clone3 exit exit_group wait4 waitpid waitid getppid kill futex".split())
#: The rest of the task table's syscalls: the whole table (``("task", "*")``, which
#: conflicts with every ``("task", ...)`` object): process groups and sessions change, and
#: execve's de_thread and pause/sigsuspend's wake-ups are not broken down.
TASK_SYSCALLS = frozenset("getpgid getpgrp setpgid getsid setsid execve pause sigsuspend".split())
#: The whole task table: what a step touches when it reads or changes tasks it does not name.
ALL_TASKS = ("task", "*")

#: Messages that are the choice machinery's own, or sched's bookkeeping of who runs (with a
#: chooser, who runs is the choice itself; why a task sleeps or wakes is in the object it
#: waits on, which both sides' footprints hold).
IGNORED_OPS = frozenset(
    {
        ("sched", "runqueue"),
        ("sched", "schedule"),
        ("sched", "wake"),
        ("sched", "wake_up_new_task"),
        ("sched", "sched_fork"),
        ("sched", "sched_cancel_fork"),
        ("sched", "sched_exit"),
    }
)
#: (``check`` and ``console_output``: the run's end, where the harness reads the console and
#: checks invariants once every task is gone: no step follows them, they change nothing, and
#: runs explore counts as the same end in one state, so they read the same.)
IGNORED_ANYWHERE = frozenset({"state_digest", "accounting", "ping", "runqueue", "check", "console_output"})
#: Messages that read or set the clock: the clock counts every task's syscalls.
CLOCK_OPS = frozenset({"hrtimer_start", "hrtimer_cancel", "hrtimer_interrupt", "now", "sched_stat", "loadavg"})

#: Ops whose object is named by a handle argument, and nothing else of the service: a
#: sighand_struct or signal_struct is its handle's alone (shared ones share the handle).
#: (send_signal is the signals service's own ``@touches``: whether it queues, the action decides.)
HANDLE_OPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("signals", "sigaction"): ("sighand",),
    ("signals", "dequeue_signal"): ("sighand", "signal"),
    ("signals", "collect_sigign_sigcatch"): ("sighand",),
    ("signals", "shared_pending"): ("signal",),
    ("signals", "flush_signal_handlers"): ("sighand",),
    ("signals", "share_sighand"): ("sighand",),
    ("signals", "share_signal"): ("signal",),
    ("signals", "put_sighand"): ("sighand",),
    ("signals", "put_signal"): ("signal",),
    # a wait-queue entry: the ops that wake or remove it name it too (their ``touches``)
    ("vfs", "wait"): ("waiter",),
}
#: Handle ops that only read what their handles name, for these arguments: a sigaction that
#: installs nothing is a query; the rest of HANDLE_OPS write their objects.
QUERY_OPS = {
    ("signals", "sigaction"): lambda args: args.get("handler") is None,
    ("signals", "collect_sigign_sigcatch"): lambda args: True,
    ("signals", "shared_pending"): lambda args: True,
}
#: Ops that copy the object a handle names into a new one: they read it (copy_sighand its
#: actions, copy_signal only that it exists), and the new handle's number is the service's
#: counter's, so they write that counter.
COPY_OPS = {("signals", "copy_sighand"): ("sighand",), ("signals", "copy_signal"): ("signal",)}


@dataclass
class Footprint:
    """What the steps since the last choice point touched (the kernel's hooks add to it): a
    step is one task on the CPU, from a point or a switch (``switch``) to the next."""

    pid: int = 0  # the task of the current step
    objects: set = field(default_factory=set)
    pids: set[int] = field(default_factory=set)  # who entered syscalls in the current step (one)
    steps: list[tuple[int, set]] = field(default_factory=list)  # the earlier steps since the point
    current: dict[int, str] = field(default_factory=dict)  # the syscall each task last entered
    #: this step's requests whose replies may say what they touched: msgid -> (service, the
    #: objects: the whole service until the reply's meta names fewer)
    pending: dict[int, tuple[str, set]] = field(default_factory=dict)
    #: the kernel's hooks on user memory (user/watch.py ``UserSteps``): which globals a step
    #: read and wrote; None, or a step it could not see, touches all of its task's
    user: Any = None
    users: list = field(default_factory=list)  # each earlier step's (reads, writes), or None

    def syscall(self, pid: int, name: str) -> None:
        """A task entered ``name`` (or, resumed, goes on with it)."""
        self.pids.add(pid)  # another task's syscall in this step: it ran with no switch seen
        self.current[pid] = name
        self._kernel_side(name)

    def switch(self, pid: int) -> None:
        """``pid`` got the CPU: a new step, unless it is the one just chosen."""
        if pid == self.pid:
            return
        self._close()
        self.pid = pid
        self.begin(pid)

    def begin(self, pid: int, resuming: bool = True) -> None:
        """``pid`` runs; ``resuming``: it may go on with the syscall it was in (a wait4 that
        slept reaps now), not at a syscall's entry."""
        self.pid = pid
        self.pids.add(pid)
        if self.user is not None:
            self.user.begin(pid)
        name = self.current.get(pid) if resuming else None
        if name is not None:
            self._kernel_side(name)

    def touch(self, *objects: tuple) -> None:
        """The kernel's hooks: the current step read or changed these (tasks, futex words)."""
        self.objects.update(objects)

    def _kernel_side(self, name: str) -> None:
        """What the kernel's own part of ``name`` touches, beyond what its hooks say; anything
        not in a table (tgkill, the clock, timers...) conflicts with everything."""
        if name in HOOKED_SYSCALLS or name in TASK_LOCAL_SYSCALLS:
            return
        self.objects.add(ALL_TASKS if name in TASK_SYSCALLS else GLOBAL)

    def _close(self) -> None:
        objects = self.objects
        for _, touched in self.pending.values():  # a reply still owed (deferred): its whole service
            objects.update(touched)
        self.pending.clear()
        if self.pids - {self.pid}:
            objects.add(GLOBAL)  # a step where another task ran too, unseen: assume the worst
        self.steps.append((self.pid, objects))
        self.users.append(self.user.end(self.pid) if self.user is not None else None)
        self.objects, self.pids = set(), set()

    def message(
        self, calls: dict[str, frozenset[str]], dst: str, op: str, args: dict, meta: dict, msgid: int | None = None
    ) -> bool:
        """A request on its way (the router's send); ``calls`` is the router's call graph (a
        message to a service may reach what that service calls: the requests it sends are
        told here too). True when the request is to ask its service what the op touches
        (``refine`` takes the reply's answer); until then it is the whole service."""
        if op in IGNORED_ANYWHERE or (dst, op) in IGNORED_OPS or meta.get("step") in ("choice", "state_digest"):
            return False
        if dst == "sched" and op in CLOCK_OPS:
            self.objects.add(GLOBAL)
            return False
        names = HANDLE_OPS.get((dst, op)) or COPY_OPS.get((dst, op))
        if names is not None and all(isinstance(args.get(n), int) for n in names if n in args):
            query = (dst, op) in COPY_OPS or QUERY_OPS.get((dst, op), _never)(args)
            objects = [(dst, n, args[n]) for n in names if n in args]
            self.objects.update([(READ, o) for o in objects] if query else objects)
            if (dst, op) in COPY_OPS:
                self.objects.add((dst, "handles"))
            return False
        if msgid is None:
            self.objects.update(_reach(dst, calls))
            return False
        self.pending[msgid] = (dst, _reach(dst, calls))
        return True

    def refine(self, msgid: int, touched: object) -> None:
        """The reply to request ``msgid`` says what its op touched (the service's ``@touches``,
        ``[kind, id, mode]`` triples): that, instead of the whole service and what it may call
        (the requests it sent are in the footprint on their own). A reply of an earlier step
        (deferred: its step took the whole service) or an answer not of that form changes nothing."""
        entry = self.pending.get(msgid)
        if entry is None:
            return
        objects = touched_objects(entry[0], touched)
        if objects is not None:
            self.pending[msgid] = (entry[0], objects)

    def take(self, owners: list[dict[int, tuple]], timers: bool) -> list[tuple[int, frozenset]]:
        """The steps since the last point, each (pid, footprint), with what every step of a
        task touches (``owners``: pid -> (mm, signal) before and after): its user memory
        (threads share it: the globals it read and wrote, ``user_objects``) and its
        signal_struct, which it reads at each kernel exit (TIF_SIGPENDING, which only a
        signal queued there sets: send_signal writes it then; a step that takes a signal
        writes it by dequeue_signal). The hooks start afresh."""
        self._close()
        out = []
        for (pid, objects), user in zip(self.steps, self.users, strict=True):
            for own in owners:
                mm, signal = own.get(pid, (0, 0))
                if mm:
                    objects.update(user_objects(mm, user))
                if signal:
                    objects.add((READ, ("signals", "signal", signal)))
            if timers:
                objects.add(GLOBAL)  # armed timers fire by the global tick count
            out.append((pid, frozenset(objects)))
        self.steps, self.users, self.pid = [], [], 0
        return out


def _never(args: dict) -> bool:
    return False


def user_objects(mm: int, user: tuple[frozenset[str], frozenset[str]] | None) -> list[tuple]:
    """A step's objects in the user memory of ``mm``: a read of global ``g`` is
    ``(READ, (("user", mm), g))``, a write ``(("user", mm), g)``; a step whose globals were
    not seen touches ``(("user", mm), "*")``, all of it (as a whole service)."""
    space = ("user", mm)
    if user is None:
        return [(space, "*")]
    reads, writes = user
    return [(READ, (space, name)) for name in reads if name not in writes] + [(space, name) for name in writes]


def _reach(service: str, calls: dict[str, frozenset[str]]) -> set[tuple[str, str]]:
    """The whole of ``service`` and of every service it may call (namespaces -> pid, vfs)."""
    out, todo = set(), [service]
    while todo:
        name = todo.pop()
        if (name, "*") not in out:
            out.add((name, "*"))
            todo.extend(calls.get(name, ()))
    return out


#: How a footprint holds an object by mode: a write is the object's tuple itself (so every
#: footprint made before modes reads as writes); a read is ("r", object), a count's change
#: that keeps it above zero ("c", object). Two reads commute, and two count changes do
#: (increments and decrements that release nothing); every other pair of one object conflicts.
#: (The kernel's hooks write them too: kernel/choice.py holds the names.)
#: For a moded entry, the other mode it conflicts with (besides the write).
_CLASH = {READ: COUNT, COUNT: READ}


def touched_objects(service: str, touched: object) -> set | None:
    """A service's ``[kind, id, mode]`` triples as footprint objects, or None (the whole
    service stands) when they are not of that form: a reply is data, checked like any."""
    if type(touched) is not list:
        return None
    out: set = set()
    for item in touched:
        if type(item) is not list or len(item) != 3 or type(item[1]) not in (int, str):
            return None
        kind, ident, mode = item
        obj = (service, kind, ident)
        if mode == "w":
            out.add(obj)
        elif mode == READ or mode == COUNT:
            out.add((mode, obj))
        else:
            return None
    return out


def dependent(a: frozenset, b: frozenset) -> bool:
    """Whether two transitions' footprints may not commute: GLOBAL; one object in both and
    not read by both nor counted by both (a write is the object itself, READ and COUNT
    entries wrap it); a whole service (``(name, "*")``) against any of its objects."""
    if GLOBAL in a or GLOBAL in b:
        return True
    for o in a:
        mode = o[0]
        if mode == READ or mode == COUNT:
            base = o[1]
            if base in b or (_CLASH[mode], base) in b:
                return True
            service = base[0]
        else:
            if o in b or (READ, o) in b or (COUNT, o) in b:
                return True
            service = mode
        if (service, "*") in b:
            return True
    for o in b:
        mode = o[0]
        if ((o[1][0] if mode == READ or mode == COUNT else mode), "*") in a:
            return True
    return False


def happens_before(pids: list[int], fps: list[frozenset]) -> list[int]:
    """For each transition, the bit set of the earlier ones that happen before it: the same
    task's, the dependent ones, and (transitively) theirs."""
    hb: list[int] = []
    last: dict[int, int] = {}
    for j, (pid, fp) in enumerate(zip(pids, fps, strict=True)):
        mask = 0
        if pid in last:
            k = last[pid]
            mask |= hb[k] | (1 << k)
        for k in range(j):
            if not (mask >> k) & 1 and dependent(fps[k], fp):
                mask |= hb[k] | (1 << k)
        hb.append(mask)
        last[pid] = j
    return hb


def races(pids: list[int], fps: list[frozenset], start: int = 0) -> list[tuple[int, set[int]]]:
    """source-DPOR's races in one run whose second transition is at ``start`` or later: for
    each, the index ``i`` of the first and the tasks that could run first at ``i`` to
    reverse it (the initials of ``v``: what of the run after ``i`` does not depend on it,
    then the second transition)."""
    hb = happens_before(pids, fps)
    out = []
    for j in range(max(start, 1), len(pids)):
        preds = _direct(j, pids, fps, hb)
        covered = 0
        for k in preds:
            covered |= hb[k]
        for i in preds:
            if pids[i] == pids[j] or (covered >> i) & 1 or not dependent(fps[i], fps[j]):
                continue
            v = [k for k in range(i + 1, j) if not (hb[k] >> i) & 1] + [j]
            vmask = 0
            for k in v:
                vmask |= 1 << k
            out.append((i, {pids[k] for k in v if not hb[k] & vmask}))
    return out


def summary_races(pids: list[int], fps: list[frozenset], summary: dict[int, frozenset]) -> list[tuple[int, int]]:
    """The races of a run cut at a cached state against that state's summary (pid -> what
    the task touched in the subtree below; SPIN'08's stateful DPOR): each step ``i`` of another
    task dependent with what a task ``q`` touches there, unless ``i`` happens before ``q``'s
    last step of the run (then before all of ``q``'s later ones). Each as (i, q)."""
    hb = happens_before(pids, fps)
    last = {pid: j for j, pid in enumerate(pids)}
    out = []
    for q, objects in summary.items():
        before = hb[last[q]] | (1 << last[q]) if q in last else 0
        out.extend(
            (i, q)
            for i, (pid, fp) in enumerate(zip(pids, fps, strict=True))
            if pid != q and not (before >> i) & 1 and dependent(fp, objects)
        )
    return out


def merge_summary(into: dict[int, frozenset], other: dict[int, frozenset]) -> dict[int, frozenset]:
    """``into`` with what each task of ``other`` touched too (footprints join by union: a step
    depends on the union iff it depends on one of them)."""
    for pid, objects in other.items():
        into[pid] = into.get(pid, frozenset()) | objects
    return into


def _direct(j: int, pids: list[int], fps: list[frozenset], hb: list[int]) -> list[int]:
    """The transitions ``j`` directly depends on: its task's previous one and the dependent ones."""
    out = [k for k in range(j) if dependent(fps[k], fps[j])]
    same = [k for k in range(j) if pids[k] == pids[j]]
    if same and same[-1] not in out:
        out.append(same[-1])
    return out
