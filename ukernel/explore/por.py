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

from ..kernel.choice import COUNT, READ, woken
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
            objects.add((READ, woken(pid)))  # after the step that made it runnable
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


def wakes(fp: frozenset, pid: int) -> bool:
    """Whether the step of ``fp`` made task ``pid`` runnable: they are never in a reversible race
    (the task cannot run before that step), though dependent (``woken``)."""
    return woken(pid) in fp


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


def happens_before(pids: list[int], fps: list[frozenset], hb: list[int] | None = None) -> list[int]:
    """For each transition, the bit set of the earlier ones that happen before it: the same
    task's, the dependent ones, and (transitively) theirs. ``hb``: those of a prefix of the
    transitions, found before (the path a process inherited): extended in place, so each
    transition of a path is weighed once, not once per run through it."""
    hb = [] if hb is None else hb
    last = {pid: j for j, pid in enumerate(pids[: len(hb)])}
    for j in range(len(hb), len(pids)):
        pid, fp = pids[j], fps[j]
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


def races(
    pids: list[int], fps: list[frozenset], start: int = 0, hb: list[int] | None = None
) -> list[tuple[int, set[int]]]:
    """source-DPOR's races in one run whose second transition is at ``start`` or later: for
    each, the index ``i`` of the first and the tasks that could run first at ``i`` to
    reverse it (the initials of ``v``: what of the run after ``i`` does not depend on it,
    then the second transition). ``hb``: ``happens_before``'s prefix, extended here."""
    hb = happens_before(pids, fps, hb)
    out = []
    for j in range(max(start, 1), len(pids)):
        preds = _direct(j, pids, fps, hb)
        covered = 0
        for k in preds:
            covered |= hb[k]
        for i in preds:
            if pids[i] == pids[j] or (covered >> i) & 1 or wakes(fps[i], pids[j]) or not dependent(fps[i], fps[j]):
                continue
            v = [k for k in range(i + 1, j) if not (hb[k] >> i) & 1] + [j]
            vmask = 0
            for k in v:
                vmask |= 1 << k
            out.append((i, {pids[k] for k in v if not hb[k] & vmask}))
    return out


@dataclass(frozen=True)
class SummaryRace:
    """A race between step ``i`` of a run cut at a cached state and what task ``q`` touches in
    that state's subtree. ``first``: the tasks that start ``u``, the run's steps after ``i``
    that do not happen after it (source-DPOR's initials of them; empty when ``u`` is);
    ``quiet``: the summary's tasks with no step after ``i`` in the run."""

    i: int
    q: int
    first: frozenset
    quiet: frozenset


def summary_races(
    pids: list[int], fps: list[frozenset], summary: dict[int, Below], hb: list[int] | None = None
) -> list[SummaryRace]:
    """The races of a run cut at a cached state against that state's summary (pid -> what
    the task touched in the subtree below; SPIN'08's stateful DPOR): each step ``i`` of another
    task dependent with a step of a task ``q`` there that does not come after it (``Below``), unless ``i`` happens before ``q``'s
    last step of the run or the last that made it runnable (its fork, a wake: all of ``q``'s
    steps below come after both). ``hb``: as ``races``'."""
    hb = happens_before(pids, fps, hb)
    last = {pid: j for j, pid in enumerate(pids)}
    waker = {q: k for q in summary for k, fp in enumerate(fps) if wakes(fp, q)}  # the last one
    out, cut, ahead = [], {}, {}
    for q, objects in summary.items():
        before = 0
        for k in (last.get(q), waker.get(q)):
            if k is not None:
                before |= hb[k] | (1 << k)
        for i, pid in enumerate(pids):
            if pid == q or (before >> i) & 1:
                continue
            if i not in ahead:
                ahead[i] = _ahead(i, pids, fps, hb)
            if races_below(objects, fps[i], ahead[i]):
                if i not in cut:
                    cut[i] = _after(i, pids, hb, summary, last, waker)
                out.append(SummaryRace(i, q, *cut[i]))
    return out


def _after(i: int, pids: list[int], hb: list[int], summary: dict, last: dict, waker: dict) -> tuple[frozenset, ...]:
    """``SummaryRace``'s ``first`` and ``quiet`` for step ``i`` (quiet: no step of the task and
    no wake of it from ``i`` on, so what it does below need not come after ``i``)."""
    u = [k for k in range(i + 1, len(pids)) if not (hb[k] >> i) & 1]
    mask = sum(1 << k for k in u)
    first = frozenset(pids[k] for k in u if not hb[k] & mask)
    return first, frozenset(r for r in summary if max(last.get(r, -1), waker.get(r, -1)) < i)


def summary_choices(options: list[int], have: set[int], race: SummaryRace) -> list[int]:
    """The options a summary race adds at its step's point (``have``: those it has). The run the
    race stands for is the path, then the cut subtree's steps to ``q``'s; reversed, it starts
    with ``v``: ``u`` (the path's steps after ``i`` not after it), then the subtree's steps not
    after ``i``, then ``q``'s. Source-DPOR needs one initial of ``v`` there (Abdulla et al.,
    POPL'14), and every initial of ``u`` is one (``u`` is ``v``'s start: what precedes a step
    of ``u`` within ``v`` is in ``u``); if the race can be reversed at all, ``u``'s first step
    can run at ``i``, so one of them is an option. When none is (or ``u`` is empty), ``v`` is
    all in the subtree, whose order the summary does not keep: its initials are among the
    tasks that can run at ``i`` and are quiet (``SummaryRace``), so each of those. (Before:
    ``q`` if it could run there, else every option, classic DPOR's rule as in SPIN'08.)"""
    first = [p for p in options if p in race.first]
    if first:
        return [] if have.intersection(first) else first[:1]
    return [p for p in options if p in race.quiet]  # none: not a reversible race (``race_choices``)


def race_choices(options: list[int], have: set[int], initials: set[int]) -> list[int]:
    """The option a race of one run adds at its first step's point: one of the initials of
    ``v`` that can run there, none when one is there already. None can run there: the race is
    not reversible, as the real initials are among the computed ones (the footprints' relation
    is in the real one: a wake or a fork enables a task without touching what its next step
    does, so that edge may be missing, never an extra one) and the first of a reversed ``v``
    can run where it starts. Not every option, as classic DPOR's rule would add: a task woken
    by the first step (a reap after the exit, a futex waiter after the wake) is no race."""
    if have.intersection(initials):
        return []
    return [p for p in options if p in initials][:1]


class Below:
    """What one task did in the subtree below a state (a summary's value), with enough of the
    order to tell which of its steps come after a step on a path to the state: ``steps`` maps
    the tasks with a step before it below (happens-before) to what it touched, ``F``, and what
    those earlier steps touched, ``P`` (steps merged under one key: ``F`` joined, ``P`` the
    common part, which can only make a step look earlier). A path step that ``P`` depends
    on, or a task of the key's steps after it, comes before the step: no race (a worker's exit
    and main's exit below it, after main's wait4 reaped the worker)."""

    __slots__ = ("steps",)

    def __init__(self, steps: dict[frozenset, tuple[frozenset, frozenset]] | None = None):
        self.steps = steps or {}

    def __reduce__(self) -> tuple:
        return Below, (self.steps,)

    def add(self, tasks: frozenset, touched: frozenset, earlier: frozenset) -> None:
        known = self.steps.get(tasks)
        self.steps[tasks] = (touched, earlier) if known is None else (known[0] | touched, known[1] & earlier)

    def __or__(self, other: Below | frozenset) -> Below:
        """Two subtrees' (alternatives below one state): every step of both."""
        out = Below(dict(self.steps))
        for tasks, (touched, earlier) in below(other).steps.items():
            out.add(tasks, touched, earlier)
        return out


def below(value: Below | frozenset) -> Below:
    """A summary's value as a ``Below`` (a bare footprint: one step, nothing before it)."""
    return value if isinstance(value, Below) else Below({frozenset(): (value, frozenset())})


def merge_summary(into: dict[int, Below], other: dict[int, Below]) -> dict[int, Below]:
    """``into`` with what each task of ``other`` did too (a step depends on a union of
    footprints iff on one of them)."""
    for pid, objects in other.items():
        into[pid] = below(into[pid]) | objects if pid in into else below(objects)
    return into


def prepend_summary(events: list[tuple], summary: dict[int, Below]) -> dict[int, Below]:
    """The summary of the state before ``events`` (pid, footprint, ...), whose end is the state
    ``summary`` is of: their steps, each with what comes before it there, and the steps below
    with the events before them (the task's own, its wakes, those of a task with a step before
    it below, those whose footprint one before it depends on, and what comes before those)."""
    pids, fps = [e[0] for e in events], [e[1] for e in events]
    hb = happens_before(pids, fps)
    out = {}
    for q in set(pids) | set(summary):
        value = Below()
        mine = [k for k, pid in enumerate(pids) if pid == q]
        for k in mine:
            tasks, earlier = _earlier(hb[k], pids, fps)
            value.add(tasks, fps[k], earlier)
        seed = 0
        for k in mine + [k for k, fp in enumerate(fps) if wakes(fp, q)]:
            seed |= 1 << k
        for tasks, (touched, earlier) in below(summary[q]).steps.items() if q in summary else ():
            mask = seed
            for k, (pid, fp) in enumerate(zip(pids, fps, strict=True)):
                if pid in tasks or dependent(fp, earlier | touched):
                    mask |= 1 << k
            for k in range(len(pids)):
                if (mask >> k) & 1:
                    mask |= hb[k]
            more, before = _earlier(mask, pids, fps)
            value.add(tasks | more, touched, earlier | before)
        out[q] = value
    return out


def _earlier(mask: int, pids: list[int], fps: list[frozenset]) -> tuple[frozenset, frozenset]:
    """The tasks of the steps in ``mask`` and what they touched."""
    ks = [k for k in range(len(pids)) if (mask >> k) & 1]
    return frozenset(pids[k] for k in ks), frozenset().union(*(fps[k] for k in ks))


def races_below(value: Below | frozenset, fp: frozenset, ahead: tuple[frozenset, frozenset]) -> bool:
    """Whether a step below, of the task ``value`` is of, depends on a path step of footprint
    ``fp`` and does not come after it (a race). ``ahead`` (``_ahead``): the tasks of the steps
    from it on that come after it, and what the later ones touched; a step below comes after
    it when one of those tasks has a step before it below, or what it or the steps before it
    below touched depends on the path step or on those later ones."""
    tasks, later = ahead
    for those, (touched, earlier) in below(value).steps.items():
        if not dependent(fp, touched) or those & tasks or dependent(fp, earlier):
            continue
        if not later or not (dependent(later, earlier) or dependent(later, touched)):
            return True
    return False


def _ahead(i: int, pids: list[int], fps: list[frozenset], hb: list[int]) -> tuple[frozenset, frozenset]:
    """``races_below``'s view of the path after step ``i``."""
    later = [k for k in range(i + 1, len(pids)) if (hb[k] >> i) & 1]
    return frozenset([pids[i], *(pids[k] for k in later)]), frozenset().union(*(fps[k] for k in later))


def _direct(j: int, pids: list[int], fps: list[frozenset], hb: list[int]) -> list[int]:
    """The transitions ``j`` directly depends on: its task's previous one and the dependent ones."""
    out = [k for k in range(j) if dependent(fps[k], fps[j])]
    same = [k for k in range(j) if pids[k] == pids[j]]
    if same and same[-1] not in out:
        out.append(same[-1])
    return out
