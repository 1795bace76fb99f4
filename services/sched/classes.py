"""Scheduling classes: the policies sched plugs into its per-CPU run queues.

A class is a small Python class; one instance holds one CPU's queue for that
class (Linux's ``cfs_rq`` / ``rt_rq`` inside a ``struct rq``). The sched
service asks the classes of a CPU in order (rt before fair, as Linux's
``for_each_class``) who runs next, and tells the class of each entity what
happened to it. Only the first three methods are required; the rest have the
simplest sensible defaults, so ``RoundRobin`` below is a complete class in
twenty lines. docs/sched.md walks through it.

Time is in ticks (one per kernel entry, ``TICK_NSEC`` of virtual time each);
CFS keeps vruntime in nanoseconds, as Linux does, so the weight arithmetic
is Linux's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ukernel import abi, plugin

TICK_NSEC = abi.TICK_NSEC
NICE_0_LOAD = 1024
WEIGHT_IDLEPRIO = 3  # SCHED_IDLE's weight (kernel/sched/sched.h)
RUNTIME_INF = 1 << 62  # a SCHED_FIFO task's slice: it runs until it blocks or yields

#: kernel/sched/core.c: nice -20 .. 19 to load weight; each step is ~10% of CPU.
SCHED_PRIO_TO_WEIGHT = (
    # fmt: off
    88761,
    71755,
    56483,
    46273,
    36291,
    29154,
    23254,
    18705,
    14949,
    11916,
    9548,
    7620,
    6100,
    4904,
    3906,
    3121,
    2501,
    1991,
    1586,
    1277,
    1024,
    820,
    655,
    526,
    423,
    335,
    272,
    215,
    172,
    137,
    110,
    87,
    70,
    56,
    45,
    36,
    29,
    23,
    18,
    15,
    # fmt: on
)

#: Enqueue/dequeue reasons (ENQUEUE_WAKEUP, ENQUEUE_INITIAL, ENQUEUE_MIGRATED, DEQUEUE_SLEEP).
NEW, WAKEUP, MIGRATE, SLEEP, RESTORE = "new", "wakeup", "migrate", "sleep", "restore"


@dataclass(eq=False, slots=True)
class SchedEntity:
    """The scheduling part of a task_struct: priority fields and sched_entity."""

    task: int
    state: str = "new"  # new, runnable, running, blocked
    cpu: int = -1
    # task_struct priority fields (include/linux/sched.h)
    policy: int = abi.SCHED_OTHER
    static_prio: int = abi.DEFAULT_PRIO  # 100 + 20 + nice
    normal_prio: int = abi.DEFAULT_PRIO
    prio: int = abi.DEFAULT_PRIO
    rt_priority: int = 0
    reset_on_fork: bool = False
    cpus_allowed: tuple[int, ...] = ()  # empty: every CPU
    # sched_entity / sched_rt_entity
    vruntime: int = 0  # ns of virtual runtime (CFS)
    sum_exec_runtime: int = 0  # ticks run
    slice_left: int = 0  # ticks left of the slice given at the last pick
    seq: int = 0  # enqueue order: ties go to the earlier one (rbtree inserts equal keys to the right)
    # statistics (/proc/PID/sched)
    nvcsw: int = 0  # voluntary context switches (blocked, yielded)
    nivcsw: int = 0  # involuntary ones (slice used up, preempted)
    nr_migrations: int = 0
    wake_pending: bool = False  # woken while still running: the next schedule(blocked) does not sleep
    extra: dict[str, Any] = field(default_factory=dict)  # a student class's own per-task state

    @property
    def nice(self) -> int:
        return self.static_prio - abi.DEFAULT_PRIO

    @property
    def weight(self) -> int:
        if self.policy == abi.SCHED_IDLE:
            return WEIGHT_IDLEPRIO
        return SCHED_PRIO_TO_WEIGHT[self.nice + 20]

    @property
    def nr_switches(self) -> int:
        return self.nvcsw + self.nivcsw


class SchedClass(ABC):
    """One CPU's queue of one scheduling class. Subclasses must define the first three
    (a class that leaves one out is refused when the kernel boots with it)."""

    name = "base"

    def __init__(self, cpu: int, settings: dict[str, int]):
        self.cpu, self.settings = cpu, settings

    @abstractmethod
    def enqueue(self, se: SchedEntity, why: str) -> None:
        """se becomes runnable here (why: new, wakeup, migrate, restore)."""

    @abstractmethod
    def dequeue(self, se: SchedEntity, why: str) -> None:
        """se stops being runnable here (sleep, migrate, restore); it may be the running one."""

    @abstractmethod
    def pick_next(self) -> SchedEntity | None:
        """Take the entity to run next off the queue, or None if the queue is empty."""

    def queued(self) -> Iterable[SchedEntity]:
        """The waiting entities, best first (idle balancing steals from here)."""
        return ()

    def pick_task(self, se: SchedEntity) -> SchedEntity:
        """Take the queued se off the queue to run it next: a chooser's pick, not the class's
        (kernel/choice.py). By default a dequeue; a class with a notion of curr sets it too."""
        self.dequeue(se, RESTORE)
        return se

    def put_prev(self, se: SchedEntity) -> None:
        """The running se leaves the CPU but stays runnable (preempted, slice used)."""
        self.enqueue(se, RESTORE)

    def yield_task(self, se: SchedEntity) -> None:
        """sched_yield: the running se steps aside; by default like a used-up slice."""
        self.put_prev(se)

    def task_tick(self, se: SchedEntity, ticks: int) -> None:
        """The running se used ``ticks`` ticks (update_curr). A hook: nothing by default."""
        return None

    def task_fork(self, se: SchedEntity, parent: SchedEntity | None) -> None:
        """Place a new entity before its first enqueue. A hook: nothing by default."""
        return None

    def time_slice(self, se: SchedEntity) -> int:
        """Ticks se may run once picked before the kernel preempts it."""
        return self.settings["rr_slice"]

    def check_preempt(self, curr: SchedEntity, se: SchedEntity) -> bool:
        """Should se, just woken into this class, take the CPU from curr (same class)?"""
        return False


class RoundRobin(SchedClass):
    """The simplest class: one FIFO queue, a fixed slice, no priorities."""

    name = "rr"

    def __init__(self, cpu: int, settings: dict[str, int]):
        super().__init__(cpu, settings)
        self.queue: deque[SchedEntity] = deque()

    def enqueue(self, se: SchedEntity, why: str) -> None:
        self.queue.append(se)

    def dequeue(self, se: SchedEntity, why: str) -> None:
        if se in self.queue:
            self.queue.remove(se)

    def pick_next(self) -> SchedEntity | None:
        return self.queue.popleft() if self.queue else None

    def queued(self) -> Iterable[SchedEntity]:
        return list(self.queue)


class FairClass(SchedClass):
    """CFS (kernel/sched/fair.c before EEVDF): run the entity with the least vruntime.

    vruntime grows by ran * NICE_0_LOAD / weight, so a heavier (lower nice)
    task's clock runs slower and it gets more CPU, in proportion to weight.
    """

    name = "cfs"

    def __init__(self, cpu: int, settings: dict[str, int]):
        super().__init__(cpu, settings)
        self.min_vruntime = 0
        self.tree: list[SchedEntity] = []  # kept sorted by (vruntime, seq): the rbtree, flattened
        self.curr: SchedEntity | None = None
        self.skip: SchedEntity | None = None  # the yield buddy: passed over once
        self.seq = 0

    # --- the rbtree -------------------------------------------------------------------
    def _insert(self, se: SchedEntity) -> None:
        self.seq += 1
        se.seq = self.seq
        key = (se.vruntime, se.seq)
        i = len(self.tree)
        while i and (self.tree[i - 1].vruntime, self.tree[i - 1].seq) > key:
            i -= 1
        self.tree.insert(i, se)

    def queued(self) -> Iterator[SchedEntity]:
        return iter(list(self.tree))

    # --- arithmetic (calc_delta_fair, __sched_period, sched_slice) ---------------------
    def load(self, extra: SchedEntity | None = None) -> int:
        ses = self.tree + [s for s in (self.curr, extra) if s is not None and s not in self.tree]
        return sum(s.weight for s in set(ses))

    def nr_running(self, extra: SchedEntity | None = None) -> int:
        return len(set(self.tree) | {s for s in (self.curr, extra) if s is not None})

    @staticmethod
    def calc_delta_fair(delta_ns: int, se: SchedEntity) -> int:
        return delta_ns if se.weight == NICE_0_LOAD else delta_ns * NICE_0_LOAD // se.weight

    def sched_period(self, nr: int) -> int:
        s = self.settings
        if nr > s["sched_latency"] // s["sched_min_granularity"]:  # nr_latency
            return nr * s["sched_min_granularity"]
        return s["sched_latency"]

    def sched_slice(self, se: SchedEntity) -> int:
        """se's share of the period, in ticks, at least min_granularity."""
        period = self.sched_period(self.nr_running(se))
        return max(period * se.weight // self.load(se), self.settings["sched_min_granularity"], 1)

    def update_min_vruntime(self) -> None:
        candidates = [s.vruntime for s in (self.curr, self.tree[0] if self.tree else None) if s is not None]
        if candidates:
            self.min_vruntime = max(self.min_vruntime, min(candidates))

    def place_entity(self, se: SchedEntity, initial: bool) -> None:
        """A new task starts a vslice after min_vruntime (START_DEBIT); a sleeper gets
        at most half a latency of credit (GENTLE_FAIR_SLEEPERS)."""
        vruntime = self.min_vruntime
        if initial:
            vruntime += self.calc_delta_fair(self.sched_slice(se) * TICK_NSEC, se)
        else:
            vruntime -= self.settings["sched_latency"] * TICK_NSEC // 2
        se.vruntime = max(se.vruntime, vruntime)

    # --- the class interface -----------------------------------------------------------
    def task_fork(self, se: SchedEntity, parent: SchedEntity | None) -> None:
        """task_fork_fair: start from the parent's vruntime, place, then keep it relative
        to min_vruntime (wake_up_new_task may choose another CPU)."""
        se.vruntime = parent.vruntime if parent is not None and parent.vruntime else self.min_vruntime
        self.place_entity(se, initial=True)
        se.vruntime -= self.min_vruntime

    def enqueue(self, se: SchedEntity, why: str) -> None:
        if why in (NEW, MIGRATE):
            se.vruntime += self.min_vruntime  # back from relative
        elif why == WAKEUP:
            self.place_entity(se, initial=False)
        self._insert(se)
        self.update_min_vruntime()

    def dequeue(self, se: SchedEntity, why: str) -> None:
        if se in self.tree:
            self.tree.remove(se)
        if se is self.curr:
            self.curr = None
        if self.skip is se:
            self.skip = None
        self.update_min_vruntime()
        if why == MIGRATE:
            se.vruntime -= self.min_vruntime  # relative while in transit

    def pick_task(self, se: SchedEntity) -> SchedEntity:
        self.dequeue(se, RESTORE)
        self.curr = se
        return se

    def pick_next(self) -> SchedEntity | None:
        if not self.tree:
            return None
        se = self.tree[0]
        if self.skip is se and len(self.tree) > 1 and self._wakeup_preempt(self.tree[1], se) < 1:
            se = self.tree[1]
        self.skip = None
        self.tree.remove(se)
        self.curr = se
        return se

    def put_prev(self, se: SchedEntity) -> None:
        if self.curr is se:
            self.curr = None
        self._insert(se)
        self.update_min_vruntime()

    def yield_task(self, se: SchedEntity) -> None:
        self.put_prev(se)
        self.skip = se

    def task_tick(self, se: SchedEntity, ticks: int) -> None:
        """update_curr: the runtime, weighted, goes into vruntime."""
        se.vruntime += self.calc_delta_fair(ticks * TICK_NSEC, se)
        self.update_min_vruntime()

    def time_slice(self, se: SchedEntity) -> int:
        return self.sched_slice(se)

    def _wakeup_preempt(self, curr: SchedEntity, se: SchedEntity) -> int:
        """wakeup_preempt_entity: 1 if se is ahead of curr by more than the wakeup granularity."""
        vdiff = curr.vruntime - se.vruntime
        if vdiff <= 0:
            return -1
        gran = self.calc_delta_fair(self.settings["sched_wakeup_granularity"] * TICK_NSEC, se)
        return 1 if vdiff > gran else 0

    def check_preempt(self, curr: SchedEntity, se: SchedEntity) -> bool:
        """check_preempt_wakeup: SCHED_IDLE yields to anyone; only SCHED_NORMAL wakers preempt."""
        if curr.policy == abi.SCHED_IDLE and se.policy != abi.SCHED_IDLE:
            return True
        if se.policy != abi.SCHED_OTHER:
            return False
        return self._wakeup_preempt(curr, se) == 1


class RtClass(SchedClass):
    """SCHED_FIFO and SCHED_RR (kernel/sched/rt.c): a FIFO list per priority, highest first.

    FIFO runs until it blocks or yields; RR gets a slice and then goes to the back
    of its list. A preempted task goes back to the *head* of its list.
    """

    name = "rt"

    def __init__(self, cpu: int, settings: dict[str, int]):
        super().__init__(cpu, settings)
        self.queues: dict[int, deque[SchedEntity]] = {}  # prio (0 best .. 99) -> list

    def enqueue(self, se: SchedEntity, why: str) -> None:
        self.queues.setdefault(se.prio, deque()).append(se)

    def dequeue(self, se: SchedEntity, why: str) -> None:
        for prio, queue in list(self.queues.items()):
            if se in queue:
                queue.remove(se)
            if not queue:
                del self.queues[prio]

    def queued(self) -> Iterable[SchedEntity]:
        return [se for prio in sorted(self.queues) for se in self.queues[prio]]

    def pick_next(self) -> SchedEntity | None:
        if not self.queues:
            return None
        prio = min(self.queues)
        se = self.queues[prio].popleft()
        if not self.queues[prio]:
            del self.queues[prio]
        return se

    def put_prev(self, se: SchedEntity) -> None:
        queue = self.queues.setdefault(se.prio, deque())
        if se.policy == abi.SCHED_RR and se.slice_left <= 0:
            queue.append(se)  # slice used: the back of its list
        else:
            queue.appendleft(se)  # preempted by a higher priority: stays at the head

    def yield_task(self, se: SchedEntity) -> None:
        self.queues.setdefault(se.prio, deque()).append(se)

    def time_slice(self, se: SchedEntity) -> int:
        return self.settings["sched_rr_timeslice"] if se.policy == abi.SCHED_RR else RUNTIME_INF

    def check_preempt(self, curr: SchedEntity, se: SchedEntity) -> bool:
        return se.prio < curr.prio


#: Names a config can use for the class of SCHED_OTHER/BATCH/IDLE tasks.
FAIR_CLASSES: dict[str, type[SchedClass]] = {"cfs": FairClass, "rr": RoundRobin}


def load_class(name: str) -> type[SchedClass]:
    """'cfs', 'rr', or a student's class: 'path/to/file.py:ClassName' or 'package.module:ClassName'."""
    if name in FAIR_CLASSES:
        return FAIR_CLASSES[name]
    if ":" not in name:
        raise ValueError(f"unknown scheduling class {name!r}: one of {', '.join(FAIR_CLASSES)} or {plugin.FORMS}")
    try:
        cls = plugin.load_subclass(name, SchedClass)
    except ValueError as exc:
        raise ValueError(f"cannot load scheduling class {name!r}: {exc}") from None
    if cls.__abstractmethods__:
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ValueError(f"scheduling class {name!r} does not define {missing}")
    return cls
