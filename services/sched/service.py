"""sched: run queues, scheduling entities, CPUs, the virtual clock and its timers.

The kernel asks sched who runs where; sched never touches a task. Tasks are
known by the kernel's task number (sched_fork comes before alloc_pid, as in
Linux, so there is no pid yet). A CPU is a slot: ``schedule`` is called by the
task giving its CPU up (slice used, yield, sleep, death) and answers with the
next task for that CPU; ``wake`` and ``wake_up_new_task`` answer with a
dispatch when a CPU is idle, and with the CPUs whose task should give way
(``preempt``: the kernel's TIF_NEED_RESCHED) when the newcomer outranks it.

Each CPU has one queue per scheduling class, asked in Linux's order: rt
(SCHED_FIFO, SCHED_RR) before the fair slot (SCHED_OTHER, SCHED_BATCH,
SCHED_IDLE), which holds CFS by default or whichever class the config names
(services/sched/classes.py; docs/sched.md).

Time is virtual: the kernel counts a tick per kernel entry and says ``now``;
sched keeps the clock and the timer queue (nanosleep, timed futex waits), and
when every CPU is idle it jumps the clock to the next timer (unless the kernel
says ``jump=False``: with Config.realtime its idle clock follows the wall).
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from ukernel import abi
from ukernel.ipc.service import Call, Service, get, op, readable

from .classes import MIGRATE, NEW, RESTORE, SLEEP, WAKEUP, RtClass, SchedClass, SchedEntity, load_class
from .loadavg import LoadAvg

SLICE_TICKS = 10  # the round-robin class's time slice, in ticks (one tick per kernel entry)
KTIME_MAX = 2**63 - 1  # ktime_t is s64: Linux's time arithmetic saturates there (ktime_add_safe)

#: Linux's defaults on a machine with 8 or more CPUs (sysctl_sched_* scaled by 1 + ilog2(8)), in ticks of 1 ms.
DEFAULT_SETTINGS = {
    "sched_latency": 24,
    "sched_min_granularity": 3,
    "sched_wakeup_granularity": 4,
    "sched_rr_timeslice": 100,  # RR_TIMESLICE: 100 ms
    "rr_slice": SLICE_TICKS,
}
RT_POLICIES = (abi.SCHED_FIFO, abi.SCHED_RR)
FAIR_POLICIES = (abi.SCHED_OTHER, abi.SCHED_BATCH, abi.SCHED_IDLE)
#: What state_digest keeps of a sched entity (after its task number), the names its fields show.
_DIGESTED = ("state", "cpu", "policy", "static_prio", "rt_priority", "reset_on_fork", "cpus_allowed", "wake_pending")


#: sched_stat's fields a restore gives back (sched_restore's ``stats``) -> SchedEntity's.
_RESTORED_STATS = {
    "vruntime": "vruntime",
    "runtime": "sum_exec_runtime",
    "nvcsw": "nvcsw",
    "nivcsw": "nivcsw",
    "nr_migrations": "nr_migrations",
}


def normal_prio(se: SchedEntity) -> int:
    """__normal_prio: rt_priority 99 is prio 0, the best; the rest is 100 + 20 + nice."""
    return abi.MAX_RT_PRIO - 1 - se.rt_priority if se.policy in RT_POLICIES else se.static_prio


def check_params(policy: int, priority: int) -> None:
    """sched_setscheduler's EINVAL checks (valid_policy, the priority range of the policy)."""
    if policy not in RT_POLICIES + FAIR_POLICIES:
        raise abi.kernel_error(abi.EINVAL, f"policy {policy} is not one of {abi.SCHED_POLICY_NAMES}")
    if policy in RT_POLICIES and not 1 <= priority <= 99:
        raise abi.kernel_error(
            abi.EINVAL, f"{abi.SCHED_POLICY_NAMES[policy]} takes sched_priority 1..99, not {priority}"
        )
    if policy in FAIR_POLICIES and priority != 0:
        raise abi.kernel_error(abi.EINVAL, f"{abi.SCHED_POLICY_NAMES[policy]} takes sched_priority 0, not {priority}")


class SchedService(Service):
    name = "sched"
    calls = frozenset()
    #: Config field -> keyword of __init__ (services.build)
    takes = {"cpus": "cpus", "sched": "policy", "seed": "seed", "sched_settings": "settings"}
    never_waits = True  # no handler waits (waits are deferred replies): a node may run requests in its reader

    def __init__(
        self,
        cpus: int = 1,
        slice_ticks: int = SLICE_TICKS,
        policy: str = "rr",
        seed: int = 0,
        settings: dict[str, int] | None = None,
    ):
        super().__init__()
        if cpus < 1:
            raise ValueError("a machine needs at least one CPU")
        self.settings = DEFAULT_SETTINGS | {"rr_slice": slice_ticks} | dict(settings or {})
        fair = load_class(policy)
        self.fair_name = policy
        self.clock = 0
        self.load = LoadAvg()
        self.entities: dict[int, SchedEntity] = {}
        self.rqs: list[tuple[SchedClass, SchedClass]] = [
            (RtClass(cpu, self.settings), fair(cpu, self.settings)) for cpu in range(cpus)
        ]
        self.curr: list[int | None] = [None] * cpus
        self.timers: dict[int, tuple[int, int]] = {}  # task -> (expires, arming order)
        self.timer_heap: list[tuple[int, int, int]] = []  # (expires, arming order, task), stale ones too
        self.timer_seq = 0
        self.seed = seed
        self.rng = random.Random(seed)
        self.migrated: list[list[int]] = []  # [task, from, to] during one handler, for the reply
        self.kicked: list[list[int]] = []  # [cpu, task, slice]: idle CPUs given work during one handler

    # --- fork ---------------------------------------------------------------
    @op
    async def sched_fork(self, req: Call, task: int, parent: int = 0) -> dict:
        """Set up the child's entity from the parent's (policy, nice, affinity), with
        sched_reset_on_fork applied; it is not runnable until wake_up_new_task."""
        if task in self.entities:
            raise abi.kernel_error(abi.EEXIST, f"task {task} already has a sched entity")
        dad = self.entities.get(parent)
        se = SchedEntity(task)
        if dad is not None:
            se.policy, se.static_prio, se.rt_priority = dad.policy, dad.static_prio, dad.rt_priority
            se.cpus_allowed, se.cpu = dad.cpus_allowed, dad.cpu
            if dad.reset_on_fork:
                if se.policy in RT_POLICIES:
                    se.policy, se.rt_priority = abi.SCHED_OTHER, 0
                se.static_prio = max(se.static_prio, abi.DEFAULT_PRIO)
        se.normal_prio = se.prio = normal_prio(se)
        self._class(se, max(se.cpu, 0)).task_fork(se, dad)
        self.entities[task] = se
        return {"task": task}

    @op
    async def sched_cancel_fork(self, req: Call, task: int) -> None:
        se = get(self.entities, task, "sched entity")
        if se.state != "new":
            raise abi.kernel_error(abi.EINVAL, f"task {task} already runs; only a new task can be cancelled")
        del self.entities[task]

    @op
    async def wake_up_new_task(self, req: Call, task: int, cpu: int | None = None) -> dict:
        """Enqueue the child on the idlest allowed CPU (select_task_rq's fork balancing), or on
        ``cpu``, one of the tied ones, when the kernel's chooser chose (select_task_rq)."""
        se = get(self.entities, task, "sched entity")
        if se.state != "new":
            raise abi.kernel_error(abi.EINVAL, f"task {task} was woken already")
        self.migrated = []
        se.cpu = self._idlest(se) if cpu is None else self._check_cpu(se, cpu, "wake_up_new_task")
        return self._activate(se, NEW)

    @op
    async def select_task_rq(self, req: Call, task: int, why: str) -> list[int]:
        """The CPUs that tie for ``task`` (``why``: wake or wake_up_new_task), among which
        ``_choose`` would pick: a chooser's options (kernel/choice.py ``select_cpu``)."""
        se = get(self.entities, task, "sched entity")
        if why not in ("wake", "wake_up_new_task"):
            raise abi.kernel_error(abi.EINVAL, f"select_task_rq for wake or wake_up_new_task, not {why!r}")
        if why == "wake_up_new_task":
            return self._least_loaded(se)
        if se.state != "blocked":
            return []
        return self._wake_ties(se)

    def _check_cpu(self, se: SchedEntity, cpu: int, why: str) -> int:
        """EINVAL unless ``cpu`` is one of the CPUs that tie for se (select_task_rq)."""
        tied = self._least_loaded(se) if why == "wake_up_new_task" else self._wake_ties(se)
        if cpu not in tied:
            raise abi.kernel_error(abi.EINVAL, f"cpu {cpu} is not one of the CPUs tied for task {se.task}: {tied}")
        return cpu

    # --- running --------------------------------------------------------------
    @op
    async def schedule(
        self,
        req: Call,
        cpu: int,
        prev: int,
        state: str,
        ran: int = 0,
        now: int | None = None,
        jump: bool = True,
        pick: int | None = None,
    ) -> dict:
        """prev leaves ``cpu`` as ``state`` (preempted, yield, blocked, dead); pick the next
        (``pick``, a task queued on ``cpu``, when the kernel's chooser chose: kernel/choice.py).
        When every CPU is then idle the clock jumps to the next timer, unless ``jump`` is
        false: the kernel's idle clock follows the wall then and fires it with hrtimer_interrupt."""
        se = get(self.entities, prev, "sched entity")
        if not 0 <= cpu < len(self.curr) or self.curr[cpu] != prev:
            raise abi.kernel_error(abi.EINVAL, f"task {prev} is not running on cpu {cpu}")
        if state not in ("preempted", "yield", "blocked", "dead"):
            raise abi.kernel_error(abi.EINVAL, f"unknown state {state!r}")
        self.migrated = []
        self._advance(ran, now)
        cls = self._class(se, cpu)
        cls.task_tick(se, ran)
        se.sum_exec_runtime += ran
        se.slice_left -= ran
        pending, se.wake_pending = se.wake_pending, False
        if pick is not None:
            self._check_pick(pick, cpu, prev)
        self.curr[cpu] = None
        self._put_prev(se, cls, cpu, state, pending)
        nxt = self._pick_next(cpu, pick)
        reply: dict[str, Any] = {"next": nxt, "slice": self.entities[nxt].slice_left if nxt is not None else 0}
        if jump and nxt is None and all(c is None for c in self.curr) and self.timers:
            reply["expired"] = self._expire(self._next_timer())  # nothing else can happen
        reply["now"] = self.clock
        return self._with_extras(reply)

    def _check_pick(self, pick: int, cpu: int, prev: int) -> None:
        """EINVAL unless ``pick`` is queued on ``cpu`` (or is prev, which a yield requeues)."""
        se = self.entities.get(pick)
        if se is None or (pick != prev and (se.state != "runnable" or se.cpu != cpu)):
            raise abi.kernel_error(abi.EINVAL, f"task {pick} is not runnable on cpu {cpu}: it cannot be picked")

    @op
    async def runqueue(self, req: Call, cpu: int) -> list[int]:
        """The tasks waiting for ``cpu``, best first: a chooser's options (kernel/choice.py)."""
        if not 0 <= cpu < len(self.curr):
            raise abi.kernel_error(abi.EINVAL, f"no cpu {cpu} (cpus 0..{len(self.curr) - 1})")
        return [se.task for se in self._queued_on(cpu)]

    def _put_prev(self, se: SchedEntity, cls: SchedClass, cpu: int, state: str, pending: bool) -> None:
        """What becomes of the task leaving the CPU: requeued, asleep, or gone."""
        if state == "dead":
            cls.dequeue(se, SLEEP)
            self.timers.pop(se.task, None)
            del self.entities[se.task]
            return
        if state == "preempted":
            se.nivcsw += 1
        else:
            se.nvcsw += 1
        if state == "blocked" and not pending:
            cls.dequeue(se, SLEEP)
            se.state = "blocked"
            return
        se.state = "runnable"  # preempted, yielded, or woken before it could sleep
        if state == "yield":
            cls.yield_task(se)
        else:
            cls.put_prev(se)
        if not self._allowed(se, cpu):  # its affinity changed while it ran
            self._migrate(se, self._idlest(se))
            self._kick(se.cpu)

    @op
    async def wake(self, req: Call, task: int, cpu: int | None = None) -> dict:
        """A blocked task becomes runnable (try_to_wake_up), on ``cpu`` if the kernel's
        chooser chose among tied CPUs (select_task_rq)."""
        se = get(self.entities, task, "sched entity")
        self.migrated = []
        if se.state == "running":  # still on its way to sleep (another CPU): it will not block
            se.wake_pending = True
        if se.state != "blocked":
            return {"dispatch": []}
        target = self._select_wake(se) if cpu is None else self._check_cpu(se, cpu, "wake")
        if target != se.cpu:
            self.migrated.append([se.task, se.cpu, target])
            se.nr_migrations += 1
        se.cpu = target
        return self._activate(se, WAKEUP)

    @op
    async def sched_exit(self, req: Call, task: int) -> None:
        """Forget a task that died while not on a CPU (killed in its sleep)."""
        se = get(self.entities, task, "sched entity")
        if se.state == "running":
            raise abi.kernel_error(abi.EBUSY, f"task {task} is on cpu {se.cpu}; it leaves with schedule(dead)")
        if se.state == "runnable":
            self._class(se, se.cpu).dequeue(se, SLEEP)
        self.timers.pop(task, None)
        del self.entities[task]

    @op
    async def sched_restore(
        self,
        req: Call,
        task: int,
        state: str,
        cpu: int,
        policy: int = abi.SCHED_OTHER,
        static_prio: int = abi.DEFAULT_PRIO,
        rt_priority: int = 0,
        reset_on_fork: bool = False,
        cpus_allowed: list[int] | None = None,
        wake_pending: bool = False,
        timer_left: int | None = None,
        now: int | None = None,
        stats: dict | None = None,
    ) -> dict:
        """State transfer into a fresh instance (the reincarnation server's SEF init): a task
        of the dead one put back as it was, on ``cpu``, running, queued (at the tail: RS sends
        a queue in order), blocked or new; ``stats``: its vruntime and sched_stat's counts."""
        if task in self.entities:
            raise abi.kernel_error(abi.EEXIST, f"task {task} already has a sched entity")
        if state not in ("new", "runnable", "running", "blocked"):
            raise abi.kernel_error(abi.EINVAL, f"unknown state {state!r}")
        if not 0 <= cpu < len(self.curr) and state != "new":
            raise abi.kernel_error(abi.EINVAL, f"no cpu {cpu} (cpus 0..{len(self.curr) - 1})")
        if state == "running" and self.curr[cpu] is not None:
            raise abi.kernel_error(abi.EBUSY, f"cpu {cpu} already runs task {self.curr[cpu]}")
        check_params(policy, rt_priority)
        self._advance(0, now)
        se = SchedEntity(task, cpu=cpu, policy=policy, static_prio=static_prio, rt_priority=rt_priority)
        se.reset_on_fork, se.cpus_allowed, se.wake_pending = reset_on_fork, tuple(cpus_allowed or ()), wake_pending
        se.normal_prio = se.prio = normal_prio(se)
        cls = self._class(se, max(cpu, 0))
        cls.task_fork(se, None)
        for key, value in (stats or {}).items():
            if key in _RESTORED_STATS:
                setattr(se, _RESTORED_STATS[key], value)
        self.entities[task] = se
        se.state = state
        if state in ("runnable", "running"):
            cls.enqueue(se, RESTORE)
        if state == "running":
            cls.pick_task(se)
            se.slice_left, self.curr[cpu] = cls.time_slice(se), task
        if timer_left is not None:
            self.timer_seq += 1
            self.timers[task] = (min(self.clock + max(timer_left, 0), KTIME_MAX), self.timer_seq)
            self._queue_timer(task)
        return {"task": task}

    # --- policy and priority (sched_setscheduler, nice, affinity) --------------------
    @op
    async def sched_setscheduler(
        self, req: Call, task: int, policy: int, priority: int, reset_on_fork: bool | None = None
    ) -> dict:
        """policy -1 keeps the policy (sched_setparam, Linux's SETPARAM_POLICY)."""
        se = get(self.entities, task, "sched entity")
        policy = se.policy if policy == -1 else policy
        check_params(policy, priority)
        self.migrated = []

        def change() -> None:
            se.policy, se.rt_priority = policy, priority
            if reset_on_fork is not None:
                se.reset_on_fork = bool(reset_on_fork)

        return self._change(se, change)

    @op
    async def set_user_nice(self, req: Call, task: int, nice: int) -> dict:
        """static_prio = 120 + nice; an rt task keeps running by rt_priority meanwhile."""
        se = get(self.entities, task, "sched entity")
        if not abi.MIN_NICE <= nice <= abi.MAX_NICE:
            raise abi.kernel_error(abi.EINVAL, f"nice {nice!r} is outside {abi.MIN_NICE}..{abi.MAX_NICE}")
        self.migrated = []

        def change() -> None:
            se.static_prio = abi.DEFAULT_PRIO + nice

        return self._change(se, change)

    @op
    async def sched_setaffinity(self, req: Call, task: int, cpus: list[int]) -> dict:
        """The mask is cut to the CPUs there are; none left is EINVAL. A task on a CPU
        it may no longer use is moved (queued) or told to give it up (running)."""
        se = get(self.entities, task, "sched entity")
        online = sorted({c for c in cpus if 0 <= c < len(self.curr)})
        if not online:
            raise abi.kernel_error(abi.EINVAL, f"no CPU of {sorted(set(cpus))} exists (cpus 0..{len(self.curr) - 1})")
        self.migrated = []
        se.cpus_allowed = () if len(online) == len(self.curr) else tuple(online)
        reply: dict[str, Any] = {"dispatch": []}
        if se.state == "runnable" and not self._allowed(se, se.cpu):
            self._class(se, se.cpu).dequeue(se, MIGRATE)
            se.cpu, se.nr_migrations = self._idlest(se), se.nr_migrations + 1
            reply = self._activate(se, MIGRATE)
        elif se.state == "running" and not self._allowed(se, se.cpu):
            reply["preempt"] = [se.cpu]
        elif not self._allowed(se, max(se.cpu, 0)):
            se.cpu = self._idlest(se)  # blocked or new: it wakes on an allowed CPU
        return self._with_extras(reply)

    @op
    async def sched_getaffinity(self, req: Call, task: int) -> list:
        se = get(self.entities, task, "sched entity")
        return list(se.cpus_allowed or range(len(self.curr)))

    # --- time: the clock and the timer queue --------------------------------------------
    @op
    async def hrtimer_start(self, req: Call, task: int, ticks: int, now: int | None = None) -> dict:
        """Arm task's one timer ``ticks`` from now; 0 ticks has already expired."""
        get(self.entities, task, "sched entity")
        if ticks < 0:
            raise abi.kernel_error(abi.EINVAL, f"a timer needs 0 or more ticks, not {ticks!r}")
        self._advance(0, now)
        expires = min(self.clock + ticks, KTIME_MAX)
        if ticks:
            self.timer_seq += 1
            self.timers[task] = (expires, self.timer_seq)
            self._queue_timer(task)
        return {"expires": expires, "armed": bool(ticks), "timer": self._next_timer()}

    @op
    async def hrtimer_cancel(self, req: Call, task: int, now: int | None = None) -> dict:
        """Disarm; ``remaining`` is what nanosleep reports after a signal (0 if it fired)."""
        self._advance(0, now)
        expires, _ = self.timers.pop(task, (self.clock, 0))
        return {"remaining": max(0, expires - self.clock), "timer": self._next_timer()}

    @op
    async def hrtimer_interrupt(self, req: Call, now: int) -> dict:
        """The tick found a timer due: which tasks' timers expired."""
        self._advance(0, now)
        return {"expired": self._expire(self.clock), "timer": self._next_timer()}

    @op
    async def now(self, req: Call) -> int:
        return self.clock

    # --- statistics -----------------------------------------------------------------------
    @op
    async def sched_stat(self, req: Call, task: int) -> dict:
        """/proc/PID/sched: where the task is, what it ran, how it is ranked."""
        se = get(self.entities, task, "sched entity")
        return {
            "state": se.state,
            "cpu": se.cpu,
            "runtime": se.sum_exec_runtime,
            "nvcsw": se.nvcsw,
            "nivcsw": se.nivcsw,
            "nr_switches": se.nr_switches,
            "nr_migrations": se.nr_migrations,
            "policy": se.policy,
            "prio": se.prio,
            "static_prio": se.static_prio,
            "normal_prio": se.normal_prio,
            "rt_priority": se.rt_priority,
            "nice": se.nice,
            "reset_on_fork": se.reset_on_fork,
            "vruntime": se.vruntime,
        }

    @op
    async def loadavg(self, req: Call, now: int | None = None) -> dict:
        """/proc/loadavg's numbers: avenrun (fixed point, abi.FSHIFT) and nr_running."""
        self._advance(0, now)
        return {"avenrun": list(self.load.avenrun), "nr_running": self._nr_active()}

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "entities": len(self.entities),
            "queued": sum(len(list(cls.queued())) for rq in self.rqs for cls in rq),
            "running": sum(t is not None for t in self.curr),
            "timers": len(self.timers),
        }

    @op
    async def state_digest(self, req: Call, fields: bool = False) -> int | dict:
        """Who is runnable, running, blocked, with which policy, and each timer's time left:
        not the statistics (switch counts, runtime, vruntime, the clock) nor the queues'
        order, which change no outcome when a chooser picks who runs (kernel/choice.py).
        With ``fields``, those as a map a person reads (explore --graph)."""
        entities = tuple(
            (t, se.state, se.cpu, se.policy, se.static_prio, se.rt_priority, se.reset_on_fork, se.cpus_allowed)
            + (se.wake_pending,)
            for t, se in sorted(self.entities.items())
        )
        timers = tuple(sorted((t, expires - self.clock) for t, (expires, _) in self.timers.items()))
        if fields:
            rows = {str(row[0]): dict(zip(_DIGESTED, row[1:], strict=True)) for row in entities}
            return readable({"entities": rows, "curr": list(self.curr), "timers_left": dict(timers)})
        return hash((entities, tuple(self.curr), timers))

    # --- internals: classes, CPUs ----------------------------------------------------------
    def _class(self, se: SchedEntity, cpu: int) -> SchedClass:
        rt, fair = self.rqs[cpu]
        return rt if se.policy in RT_POLICIES else fair

    def _rank(self, se: SchedEntity) -> int:
        return 0 if se.policy in RT_POLICIES else 1

    def _allowed(self, se: SchedEntity, cpu: int) -> bool:
        return not se.cpus_allowed or cpu in se.cpus_allowed

    def _load(self, cpu: int) -> int:
        return sum(len(list(cls.queued())) for cls in self.rqs[cpu]) + (self.curr[cpu] is not None)

    def _choose(self, cpus: list[int]) -> int:
        """A tie between CPUs: seed 0 takes the lowest (a cpumask scan); another seed draws."""
        if len(cpus) == 1 or not self.seed:
            return cpus[0]
        return self.rng.choice(cpus)

    def _least_loaded(self, se: SchedEntity) -> list[int]:
        """The allowed CPUs with the least load: find_idlest_cpu's ties."""
        allowed = [c for c in range(len(self.curr)) if self._allowed(se, c)]
        if len(allowed) == 1:  # one CPU to choose from (every run with cpus=1): no load to weigh
            return allowed
        least = min(self._load(c) for c in allowed)
        return [c for c in allowed if self._load(c) == least]

    def _idlest(self, se: SchedEntity) -> int:
        """find_idlest_cpu among the allowed ones."""
        return self._choose(self._least_loaded(se))

    def _wake_ties(self, se: SchedEntity) -> list[int]:
        """select_task_rq on wakeup: the previous CPU if idle, else the idle ones (ties), else the
        previous, else the least loaded."""
        idle = [c for c, t in enumerate(self.curr) if t is None and self._allowed(se, c)]
        if se.cpu in idle or (not idle and self._allowed(se, se.cpu)):
            return [se.cpu]
        return idle or self._least_loaded(se)

    def _select_wake(self, se: SchedEntity) -> int:
        return self._choose(self._wake_ties(se))

    def _migrate(self, se: SchedEntity, dst: int) -> None:
        if dst == se.cpu:
            return
        self._class(se, se.cpu).dequeue(se, MIGRATE)
        self.migrated.append([se.task, se.cpu, dst])
        se.cpu, se.nr_migrations = dst, se.nr_migrations + 1
        self._class(se, dst).enqueue(se, MIGRATE)

    def _kick(self, cpu: int) -> None:
        """An idle CPU that was given work picks it up now (Linux's reschedule IPI to
        the idle task); the dispatch rides on the reply as ``kicked``."""
        if self.curr[cpu] is None:
            nxt = self._pick_next(cpu)
            if nxt is not None:
                self.kicked.append([cpu, nxt, self.entities[nxt].slice_left])

    def _activate(self, se: SchedEntity, why: str) -> dict:
        """Queue se on its CPU; dispatch at once if that CPU is idle, else maybe preempt."""
        se.state = "runnable"
        self._class(se, se.cpu).enqueue(se, why)
        reply: dict[str, Any] = {"cpu": se.cpu, "dispatch": []}
        if self.curr[se.cpu] is None:
            nxt = self._pick_next(se.cpu)
            reply["dispatch"] = [[se.cpu, nxt, self.entities[nxt].slice_left]]
        elif self._preempts(se, self.entities[self.curr[se.cpu]]):
            reply["preempt"] = [se.cpu]
        return self._with_extras(reply)

    def _preempts(self, se: SchedEntity, curr: SchedEntity) -> bool:
        """check_preempt_curr: a higher class always wins; within a class, the class decides."""
        if self._rank(se) != self._rank(curr):
            return self._rank(se) < self._rank(curr)
        return self._class(se, curr.cpu).check_preempt(curr, se)

    def _change(self, se: SchedEntity, change: Any) -> dict:
        """__sched_setscheduler's dance: off the queue, change, back on, check preemption."""
        queued = se.state == "runnable"
        before = self._class(se, max(se.cpu, 0))
        if queued:
            before.dequeue(se, RESTORE)
        change()
        se.normal_prio = se.prio = normal_prio(se)
        after = self._class(se, max(se.cpu, 0))
        reply: dict[str, Any] = {"dispatch": []}
        if queued:
            after.enqueue(se, RESTORE if after is before else WAKEUP)
            curr = self.curr[se.cpu]
            if curr is not None and self._preempts(se, self.entities[curr]):
                reply["preempt"] = [se.cpu]
        elif se.state == "running":
            if after is not before:  # the new class places it as a waking task, then it runs on
                before.dequeue(se, RESTORE)
                after.enqueue(se, WAKEUP)
                after.dequeue(se, RESTORE)
            if any(self._preempts(other, se) for other in self._queued_on(se.cpu)):
                reply["preempt"] = [se.cpu]
        return self._with_extras(reply)

    def _queued_on(self, cpu: int) -> list[SchedEntity]:
        return [s for cls in self.rqs[cpu] for s in cls.queued()]

    def _pick_next(self, cpu: int, pick: int | None = None) -> int | None:
        if pick is not None:
            se = self.entities[pick]
            se = self._class(se, cpu).pick_task(se)
        else:
            se = self._pick_from(cpu) or (self._pull(cpu) and self._pick_from(cpu))
        if not se:
            return None
        se.state, se.cpu = "running", cpu
        se.slice_left = self._class(se, cpu).time_slice(se)
        self.curr[cpu] = se.task
        return se.task

    def _pick_from(self, cpu: int) -> SchedEntity | None:
        for cls in self.rqs[cpu]:
            se = cls.pick_next()
            if se is not None:
                return se
        return None

    def _pull(self, cpu: int) -> bool:
        """Idle balancing (newidle_balance): take one task allowed here from the busiest queue."""
        loads = {c: len(self._queued_on(c)) for c in range(len(self.curr)) if c != cpu}
        candidates = [c for c, n in loads.items() if n and any(self._allowed(s, cpu) for s in self._queued_on(c))]
        if not candidates:
            return False
        most = max(loads[c] for c in candidates)
        src = self._choose([c for c in candidates if loads[c] == most])
        se = next(s for s in self._queued_on(src) if self._allowed(s, cpu))
        self._migrate(se, cpu)
        return True

    # --- internals: time -----------------------------------------------------------------
    def _advance(self, ran: int, now: int | None) -> None:
        """The kernel's tick count is the clock's source; alone (tests), ran adds up."""
        self._set_clock(min(max(self.clock, now) if now is not None else self.clock + ran, KTIME_MAX))

    def _set_clock(self, clock: int) -> None:
        """Time moves on: the load average takes the samples due on the way (calc_global_load)."""
        self.load.advance(clock, self._nr_active)
        self.clock = clock

    def _nr_active(self) -> int:
        """calc_load_fold_active: the tasks running or waiting for a CPU."""
        return sum(se.state in ("running", "runnable") for se in self.entities.values())

    # --- internals: the timer queue (a heap by expiry then arming order, as hrtimers' rbtree) --
    def _queue_timer(self, task: int) -> None:
        """``timers`` is the truth; the heap may hold entries a cancel or an exit made stale,
        dropped when they come to the top, or all at once when they are half of it."""
        heap = self.timer_heap
        if len(heap) > 2 * len(self.timers) + 16:
            heap[:] = [(e, seq, t) for t, (e, seq) in self.timers.items()]
            heapq.heapify(heap)
        else:
            expires, seq = self.timers[task]
            heapq.heappush(heap, (expires, seq, task))

    def _timer_head(self) -> tuple[int, int, int] | None:
        """The earliest armed timer, stale entries popped on the way."""
        heap = self.timer_heap
        while heap:
            expires, seq, task = heap[0]
            if self.timers.get(task) == (expires, seq):
                return heap[0]
            heapq.heappop(heap)
        return None

    def _next_timer(self) -> int | None:
        head = self._timer_head()
        return head[0] if head is not None else None

    def _expire(self, upto: int) -> list[int]:
        """Every timer due by ``upto``, in expiry then arming order; the clock moves to upto."""
        self._set_clock(max(self.clock, upto))
        due = []
        while (head := self._timer_head()) is not None and head[0] <= self.clock:
            heapq.heappop(self.timer_heap)
            del self.timers[head[2]]
            due.append(head[2])
        return due

    def _with_extras(self, reply: dict) -> dict:
        """Migrations and the next timer ride on the reply when there are any."""
        if self.migrated:
            reply["migrated"], self.migrated = self.migrated, []
        if self.kicked:
            reply["dispatch"], self.kicked = reply.get("dispatch", []) + self.kicked, []
        if self.timers:
            reply["timer"] = self._next_timer()
        return reply
