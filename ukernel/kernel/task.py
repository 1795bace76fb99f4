"""TaskStruct (the kernel's task_struct) and the task table.

A TaskStruct holds *handles* that services gave out (mm, files, fs, sighand,
signal, nsproxy, pid), never a service's objects. Links between tasks
(parent, children, group leader) are the kernel's own and are kept here, with
``current`` and the two kernel control-flow exceptions (exit, exec).
"""

from __future__ import annotations

import contextvars
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from .wait import WaitChannel, WaitEvent

if TYPE_CHECKING:
    from ..user.binfmt import Image

#: The task the running Python code acts for (like Linux's ``current``).
current: contextvars.ContextVar[TaskStruct] = contextvars.ContextVar("current")


class TaskExit(BaseException):
    """Unwinds a task's Python stack to do_exit (BaseException: programs can't catch it)."""

    def __init__(self, status: int, group: bool = True):
        super().__init__(status)
        self.status, self.group = status, group


class ExecImage(BaseException):
    """Unwinds the old program after a successful execve; the new one starts."""

    def __init__(self, image: Image):
        super().__init__(image.path)
        self.image = image


#: The empty signal set and flag set every task starts with: one object, not a set each
#: (a set is 216 bytes; these are replaced when they change, never changed in place).
EMPTY: frozenset = frozenset()
NO_INFO: dict[int, dict] = {}  # the pending_info of a task with none pending: shared, so never changed in place

#: The wait channel of a sleep that names none.
NO_WCHAN = WaitChannel("", "")


class Pins:
    """Kernel paths using a task's handle across awaits (a SIGCHLD on its way to a parent's
    sighand): the put waits for them, and after ``close`` nobody new may pin. Linux holds
    tasklist_lock / siglock over such a use; a service's handle can only be counted."""

    __slots__ = ("count", "closing", "_released")

    def __init__(self) -> None:
        self.count, self.closing = 0, False
        self._released: trio.Event | None = None  # made by the put that waits: most never do

    def pin(self) -> bool:
        """Take a pin; False once the handle is being put (treat it as gone)."""
        if self.closing:
            return False
        self.count += 1
        return True

    def unpin(self) -> None:
        self.count -= 1
        if not self.count and self._released is not None:
            self._released.set()
            self._released = None

    async def close(self) -> None:
        """No new pins; wait until the ones held are given back."""
        self.closing = True
        while self.count:
            if self._released is None:
                self._released = trio.Event()
            await self._released.wait()


@dataclass(eq=False, slots=True)
class TaskStruct:
    """task_struct. Slotted: a live task's own memory is one of the costs that must not
    grow (issue 18's memory per blocked process), and a slot is 8 bytes, a dict entry more."""

    comm: str = "swapper"
    # --- identity (set by alloc_pid and the link step) ---
    id: int = 0  # the kernel's own number for the task (sched's key); the idle task is 0
    pid: int = 0  # global number (level 0)
    tgid: int = 0
    numbers: list[int] = field(default_factory=lambda: [0])  # pid at each pid-ns level, outermost first
    pid_handle: int | None = None
    pid_ns: int = 1  # the pid namespace this task lives in (task_active_pid_ns)
    ns_path: list[int] = field(default_factory=lambda: [1])  # the pid ns at each level, outermost first
    # --- family ---
    real_parent: TaskStruct | None = None
    children: Children = field(default_factory=lambda: Children())
    group_leader: TaskStruct | None = None
    thread_group: list[TaskStruct] = field(default_factory=list)  # on the leader: every live thread
    _exit_signal: int = abi.SIGCHLD  # exit_signal (the property below keeps the parent's count)
    # --- handles from the services ---
    mm: int | None = None
    files: int | None = None
    fs: int | None = None
    sighand: int | None = None
    signal: int | None = None
    nsproxy: int | None = None
    pid_ns_for_children: int = 1
    undo_list: int | None = None  # task->sysvsem.undo_list (namespaces), made by the first SEM_UNDO
    time_offsets: dict[str, int] = field(default_factory=dict)  # the time ns's offsets, ns (the vvar page)
    # --- state ---
    state: str = "new"  # new, running, zombie, dead
    exit_code: int = 0  # the wait status once a zombie
    group_exit_code: int | None = None  # on the leader: set by exit_group (signal->group_exit_code)
    group_exec_task: TaskStruct | None = None  # on the leader: the thread whose execve is killing the rest
    flags: frozenset[str] = EMPTY  # PF_EXITING, SIGNAL_UNKILLABLE, ... (replaced, not changed in place)
    rlim: dict[int, Any] = field(default_factory=dict)  # on the group leader (signal->rlim); replaced, never changed
    _pgrp: list[int] = field(default_factory=lambda: [0])  # on the leader: the group leader's numbers (PIDTYPE_PGID)
    _session: list[int] = field(
        default_factory=lambda: [0]
    )  # on the leader: the session leader's numbers (PIDTYPE_SID)
    grouped: TaskTable | None = None  # the table whose group and session indexes hold it (a leader in it)
    table_slot: int = -1  # its place in the task table's order (TaskTable)
    tty: int = 0  # on the leader: the controlling terminal's device number, 0 for none (signal->tty)
    did_exec: bool = False
    start_time: int = 0  # the tick it was created at (start_boottime): /proc/PID/stat's starttime
    child_subreaper: bool = False  # on the leader: PR_SET_CHILD_SUBREAPER
    # --- signals (task->pending, task->blocked; TIF_SIGPENDING) ---
    pending: frozenset[int] = EMPTY  # (these two are replaced when they change, never changed in place)
    pending_info: dict[int, dict] = field(
        default_factory=lambda: NO_INFO
    )  # the siginfo of each thread-pending signal (replaced, never changed)
    blocked: frozenset[int] | set[int] = EMPTY
    real_blocked: set[int] | frozenset[int] = frozenset()  # sigtimedwait: the mask while it waits unblocked
    saved_sigmask: set[int] | None = None  # sigsuspend: the mask to put back once a handler ran
    last_siginfo: dict | None = None  # the siginfo of the signal whose handler runs (SA_SIGINFO's argument)
    restart_block: Any = None  # ERESTART_RESTARTBLOCK: how the call goes on (nanosleep's time left)
    _sigpending: bool = False  # TIF_SIGPENDING (the property below notes a sleeper)
    sleep_interruptible: bool = True
    stopped: int = 0  # on the leader: the stop signal once every thread stopped (SIGNAL_STOP_STOPPED)
    group_stop_count: int = 0  # on the leader: threads yet to stop for the group stop (signal->group_stop_count)
    group_stop_sig: int = 0  # on the leader: the signal of the group stop in progress
    jobctl_stop_pending: bool = False  # JOBCTL_STOP_PENDING: this thread is to stop at its next kernel exit
    task_stopped: bool = False  # __TASK_STOPPED: this thread sleeps in do_signal_stop (/proc's T)
    _report: tuple | None = None  # report (the property below queues it for the parent's wait4)
    cld_notify: int = 0  # on the leader: SIGNAL_CLD_STOPPED / _CONTINUED as a CLD_* code, the parent yet to hear
    cont_event: WaitEvent = field(default_factory=WaitEvent)
    set_child_tid: int = 0
    clear_child_tid: int = 0
    vfork_done: trio.Event | None = None
    # --- the runtime's side: CPU and Python program ---
    cpu: int | None = None
    go: WaitEvent = field(
        default_factory=WaitEvent
    )  # set when it gets a CPU (a WaitEvent: no trio.Event until awaited)
    ran: int = 0  # ticks since the last report to sched
    slice: int = 0
    _killed: int = 0  # a fatal signal is pending: exit at the next kernel exit (the property notes a sleeper)
    host: Any = None  # its trio task, once it entered the kernel with a chooser (choice.py: its frames)
    resume_entry: bool = False  # preempted at a syscall's entry by a chooser: it runs that call next (choice.py)
    parked: trio.lowlevel.Task | None = None  # while asleep: its trio task, parked (wait.py park)
    asleep_in: Any = None  # while asleep: the kernel's Sleepers (wait.py), told when a signal comes
    sleep_order: int = 0  # while asleep: when it fell asleep (sleepers wake in that order)
    wchan: WaitChannel | None = None  # while asleep: what for (the hang dump, kernel/hung.py)
    image: Any = None
    entry: Any = None  # how the child starts: replay, fn, copied fn
    #: wait_chldexit: the wait4s asleep on this group's children, each (its event, whether a
    #: child's change is one it looks at: child_wait_callback's filter)
    child_waiters: tuple[tuple[WaitEvent, Callable[[TaskStruct], bool]], ...] = ()
    sighand_pins: Pins = field(default_factory=Pins)  # signals on their way to this group's sighand
    utime: int = 0

    def __repr__(self) -> str:
        """Who it is, not everything it holds: the default repr walks parent, children and
        threads, and in an error message that is tens of kilobytes."""
        return f"TaskStruct(pid={self.pid}, comm={self.comm!r}, state={self.state!r})"

    @property
    def exit_signal(self) -> int:
        """The signal the parent gets when this child dies; a child whose signal is not
        SIGCHLD is a "clone" child, waited for only with __WCLONE or __WALL."""
        return self._exit_signal

    @exit_signal.setter
    def exit_signal(self, sig: int) -> None:
        parent = self.real_parent
        if parent is not None and self in parent.children:
            parent.children.reclass(self, sig)
        self._exit_signal = sig

    @property
    def killed(self) -> int:
        """The fatal signal pending, 0 for none; set on a sleeper, it is noted for its wake."""
        return self._killed

    @killed.setter
    def killed(self, sig: int) -> None:
        self._killed = sig
        if sig and self.asleep_in is not None:
            self.asleep_in.note(self)

    @property
    def sigpending(self) -> bool:
        """TIF_SIGPENDING; set on a sleeper, it is noted for its wake (wait.py)."""
        return self._sigpending

    @sigpending.setter
    def sigpending(self, pending: bool) -> None:
        self._sigpending = pending
        if pending and self.asleep_in is not None:
            self.asleep_in.note(self)

    @property
    def pgrp(self) -> list[int]:
        """On the leader: the process group, named by its leader's numbers. A move
        (setpgid, setsid) moves it in the table's index and its parent's counts."""
        return self._pgrp

    @pgrp.setter
    def pgrp(self, pgrp: list[int]) -> None:
        old, self._pgrp = self._pgrp, pgrp
        if self.grouped is not None:
            self.grouped.pgrps.move(self, tuple(old), tuple(pgrp))
        parent = self.real_parent
        if parent is not None and self in parent.children:
            parent.children.regroup(self, old, pgrp)

    @property
    def session(self) -> list[int]:
        """On the leader: the session, named by its leader's numbers (indexed as pgrp is)."""
        return self._session

    @session.setter
    def session(self, session: list[int]) -> None:
        old, self._session = self._session, session
        if self.grouped is not None:
            self.grouped.sessions.move(self, tuple(old), tuple(session))

    @property
    def report(self) -> tuple | None:
        """On the leader: ("stopped", sig) or ("continued", SIGCONT), for the parent's wait4.
        A report given is queued on the parent, so its wait4 finds it without a walk."""
        return self._report

    @report.setter
    def report(self, report: tuple | None) -> None:
        self._report = report
        if report is not None and self.real_parent is not None:
            self.real_parent.children.note(self)

    @property
    def level(self) -> int:
        return len(self.numbers) - 1

    @property
    def leader(self) -> TaskStruct:
        return self.group_leader or self

    def nr_in(self, level: int) -> int:
        """pid_nr_ns: this task's number as seen at ``level``, 0 if not visible there."""
        return self.numbers[level] if level < len(self.numbers) else 0

    def vnr(self, viewer: TaskStruct) -> int:
        """task_pid_vnr from the viewer's pid namespace."""
        return self.nr_in(viewer.level) if self.is_visible_from(viewer) else 0

    def tgid_vnr(self, viewer: TaskStruct) -> int:
        return self.leader.vnr(viewer)

    def ppid_vnr(self, viewer: TaskStruct) -> int:
        """getppid as ``viewer`` sees it: 0 for a parent outside the viewer's pid
        namespace, and for the idle task's children (its number is 0 at every level)."""
        parent = self.leader.real_parent
        return parent.tgid_vnr(viewer) if parent is not None else 0

    def is_visible_from(self, viewer: TaskStruct) -> bool:
        return viewer.level < len(self.numbers) and self._ns_chain_contains(viewer)

    def _ns_chain_contains(self, viewer: TaskStruct) -> bool:
        return self.ns_path[: viewer.level + 1] == viewer.ns_path


def nr_in(numbers: list[int], level: int) -> int:
    """pid_nr_ns for a struct pid kept as its numbers: 0 where it is not visible."""
    return numbers[level] if level < len(numbers) else 0


def wake_waiters(leader: TaskStruct, child: TaskStruct) -> None:
    """__wake_up_parent: ``child`` changed state; wake the wait4s sleeping on this thread
    group's children that would look at it (child_wait_callback: its pid, its group or any
    child, a __WNOTHREAD wait only its own thread's children). The others sleep on: a
    waitpid(A) is not woken by B's exit, as in Linux."""
    for event, looks_at in leader.child_waiters:
        if looks_at(child):
            event.set()


class Children:
    """task->children, kept so that wait4 need not walk it.

    The children in the order they joined (list_add_tail: at fork, when reparented),
    each with its place in that order; ``nr_clone``, how many are __WCLONE children,
    and ``groups``, how many of each class are in each process group, so wait4 knows at
    once whether it has anyone to wait for; and a heap of the children that may have
    something to report (a zombie, a stop, a continue), by place: one wait4 takes the
    earliest, not a walk of every child. An entry there is checked when looked at (one
    reaped or reported since is dropped then), so a child becoming reportable only has
    to be noted."""

    __slots__ = ("_place", "_next", "nr_clone", "groups", "_heap", "_queued", "_stale")

    def __init__(self, children: Iterable[TaskStruct] = ()) -> None:
        # Most tasks never have a child: the containers are the shared empty ones (never
        # written: append and note make a task's own) until the first child and report.
        self._place: dict[TaskStruct, int] = _NONE
        self._next = 0
        self.nr_clone = 0
        self.groups: dict[tuple, list[int]] = _NONE  # pgrp -> [SIGCHLD children, __WCLONE children]
        self._heap: list[tuple[int, int, TaskStruct]] = _NO_HEAP  # (place, task id, child) that may report
        self._queued: dict[TaskStruct, int] = _NONE  # the children in the heap, at which place
        self._stale = 0  # heap entries of children gone (``_unqueue``)
        for child in children:
            self.append(child)

    def append(self, child: TaskStruct) -> None:
        if self._place is _NONE:
            self._place, self.groups = {}, {}
        self._place[child] = self._next
        self._next += 1
        self._count(child, tuple(child.pgrp), _is_clone(child.exit_signal), 1)

    def remove(self, child: TaskStruct) -> None:
        del self._place[child]
        self._count(child, tuple(child.pgrp), _is_clone(child.exit_signal), -1)
        self._unqueue(child)

    def replace(self, old: TaskStruct, new: TaskStruct) -> None:
        """``new`` takes ``old``'s place (de_thread: the exec'ing thread becomes the child)."""
        self._place = {new if c is old else c: place for c, place in self._place.items()}
        self._count(old, tuple(old.pgrp), _is_clone(old.exit_signal), -1)
        self._count(new, tuple(new.pgrp), _is_clone(new.exit_signal), 1)
        self._unqueue(old)

    def _unqueue(self, child: TaskStruct) -> None:
        """A child leaves: its heap entry is stale (a wait4(pid) reaped it, never looking at
        the heap). When stale entries are half of the heap, it is rebuilt without them, so
        it holds no task that is gone (amortized O(1) a child)."""
        if self._queued.pop(child, None) is None:
            return
        self._stale += 1
        if self._stale * 2 > len(self._heap):
            self._heap = [e for e in self._heap if self._queued.get(e[2]) == e[0]]
            heapq.heapify(self._heap)
            self._stale = 0

    def reclass(self, child: TaskStruct, sig: int) -> None:
        """``child``'s exit signal becomes ``sig`` (exec, reparenting): recount."""
        key = tuple(child.pgrp)
        self._count(child, key, _is_clone(child.exit_signal), -1)
        self._count(child, key, _is_clone(sig), 1)

    def regroup(self, child: TaskStruct, old: list[int], new: list[int]) -> None:
        """``child`` moved from process group ``old`` to ``new`` (setpgid, setsid): recount."""
        clone = _is_clone(child.exit_signal)
        self._count(child, tuple(old), clone, -1)
        self._count(child, tuple(new), clone, 1)

    def _count(self, child: TaskStruct, pgrp: tuple, clone: bool, by: int) -> None:
        if self.groups is _NONE:
            self.groups = {}
        self.nr_clone += by if clone else 0
        counts = self.groups.setdefault(pgrp, [0, 0])
        counts[clone] += by
        if counts == [0, 0]:
            del self.groups[pgrp]

    def waitable(self, options: int, pgrp: tuple | None = None) -> int:
        """How many children a wait with ``options`` (__WALL, __WCLONE) may wait for, in
        process group ``pgrp`` or in all."""
        if pgrp is None:
            plain, clone = len(self._place) - self.nr_clone, self.nr_clone
        else:
            plain, clone = self.groups.get(pgrp, (0, 0))
        if options & _WALL:
            return plain + clone
        return clone if options & _WCLONE else plain

    def note(self, child: TaskStruct) -> None:
        """``child`` may have something to report now."""
        place = self._place.get(child)
        if place is not None and self._queued.get(child) != place:
            if self._queued is _NONE:
                self._queued, self._heap = {}, []
            self._queued[child] = place
            heapq.heappush(self._heap, (place, child.id, child))

    def first_reportable(self, match: Callable[[TaskStruct], bool]) -> TaskStruct | None:
        """The earliest child that may report and ``match`` accepts (the wait's eligible
        and ready); entries no longer reportable are dropped on the way."""
        heap, skipped = self._heap, []
        try:
            while heap:
                place, _, child = heap[0]
                if self._place.get(child) != place or not (child.state == "zombie" or child.report is not None):
                    heapq.heappop(heap)  # reaped, moved, or its report taken since it was queued
                    if self._queued.get(child) == place:
                        del self._queued[child]
                    else:
                        self._stale = max(0, self._stale - 1)
                elif match(child):
                    return child
                else:
                    skipped.append(heapq.heappop(heap))
            return None
        finally:
            for entry in skipped:
                heapq.heappush(heap, entry)

    def place(self, child: TaskStruct) -> int:
        return self._place[child]

    def __contains__(self, child: object) -> bool:
        return child in self._place

    def __iter__(self) -> Iterator[TaskStruct]:
        return iter(self._place)

    def __len__(self) -> int:
        return len(self._place)


_NONE: dict = {}  # Children's shared empty containers: read, never written
_NO_HEAP: list = []
_WALL, _WCLONE = abi.__WALL, abi.__WCLONE  # not spelled inside a class: Python mangles __ names there


def _is_clone(exit_signal: int) -> bool:
    """A "clone" child: one whose exit signal is not SIGCHLD (waited for with __WCLONE)."""
    return exit_signal != abi.SIGCHLD


class Groups:
    """Thread-group leaders by the numbers that name their process group (or session),
    and those names by (level, number): kill(-pgrp), setpgid and exit's orphaned-group
    check look at the group's members, not at every task (PIDTYPE_PGID's pid->tasks)."""

    __slots__ = ("members", "names")

    def __init__(self) -> None:
        self.members: dict[tuple, dict[TaskStruct, None]] = {}
        self.names: dict[tuple[int, int], dict[tuple, None]] = {}

    def join(self, key: tuple, task: TaskStruct) -> None:
        members = self.members.get(key)
        if members is None:
            members = self.members[key] = {}
            for name in enumerate(key):
                self.names.setdefault(name, {})[key] = None
        members[task] = None

    def leave(self, key: tuple, task: TaskStruct) -> None:
        members = self.members[key]
        del members[task]
        if not members:
            del self.members[key]
            for name in enumerate(key):
                keys = self.names[name]
                del keys[key]
                if not keys:
                    del self.names[name]

    def move(self, task: TaskStruct, old: tuple, new: tuple) -> None:
        self.leave(old, task)
        self.join(new, task)

    def of(self, key: tuple) -> list[TaskStruct]:
        """The members of group ``key``, in task-table order."""
        return sorted(self.members.get(key, ()), key=_table_slot)

    def named(self, level: int, nr: int) -> list[TaskStruct]:
        """The members of every group whose number at ``level`` is ``nr``, in table order."""
        keys = self.names.get((level, nr), ())
        return sorted((t for key in keys for t in self.members[key]), key=_table_slot)


def _table_slot(task: TaskStruct) -> int:
    return task.table_slot


class TaskTable:
    """Every task the kernel knows, by global pid, and by its number in each pid namespace
    it is seen from (the pid_hash: find_pid_ns then pid_task); the leaders by process
    group and by session (``pgrps``, ``sessions``).

    Iterating it copies nothing and is safe across awaits, as an RCU walk of the
    tasklist is: the order is a list where a removed task leaves a hole (filled in
    when holes are half of it and no walk is under way), a task added meanwhile is
    seen, one removed is not."""

    def __init__(self) -> None:
        self.by_pid: dict[int, TaskStruct] = {}
        self.by_ns: dict[tuple[int, int], TaskStruct] = {}
        self.pgrps = Groups()
        self.sessions = Groups()
        self._order: list[TaskStruct | None] = []
        self._holes = 0
        self._walks = 0  # walks under way: the order is not compacted under them

    def add(self, task: TaskStruct) -> None:
        self.by_pid[task.pid] = task
        for key in zip(task.ns_path, task.numbers, strict=True):
            self.by_ns[key] = task
        task.table_slot = len(self._order)
        self._order.append(task)
        if task.group_leader is None:
            task.grouped = self
            self.pgrps.join(tuple(task.pgrp), task)
            self.sessions.join(tuple(task.session), task)

    def remove(self, task: TaskStruct) -> None:
        self.by_pid.pop(task.pid, None)
        for key in zip(task.ns_path, task.numbers, strict=True):
            if self.by_ns.get(key) is task:
                del self.by_ns[key]
        if task.grouped is self:
            task.grouped = None
            self.pgrps.leave(tuple(task.pgrp), task)
            self.sessions.leave(tuple(task.session), task)
        slot = task.table_slot
        if 0 <= slot < len(self._order) and self._order[slot] is task:
            self._order[slot] = None
            self._holes += 1
            if self._holes * 2 > len(self._order) and not self._walks:
                self._compact()

    def _compact(self) -> None:
        """The order without holes (never while a walk is under way: it goes by index)."""
        self._order = [t for t in self._order if t is not None]
        self._holes = 0
        for slot, task in enumerate(self._order):
            task.table_slot = slot

    def find_in(self, ns: int, nr: int) -> TaskStruct | None:
        """The task numbered ``nr`` in pid namespace ``ns``."""
        return self.by_ns.get((ns, nr))

    def find(self, nr: int, viewer: TaskStruct) -> TaskStruct | None:
        """find_task_by_vpid: the task numbered ``nr`` in the viewer's namespace."""
        task = self.by_ns.get((viewer.ns_path[viewer.level], nr))
        return task if task is not None and task.is_visible_from(viewer) else None

    def __len__(self) -> int:
        return len(self.by_pid)

    def __iter__(self) -> Iterator[TaskStruct]:
        self._walks += 1
        try:
            order = self._order
            for task in order:  # a list iterator sees what is appended meanwhile
                if task is not None:
                    yield task
        finally:
            self._walks -= 1
