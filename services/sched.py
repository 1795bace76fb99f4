"""sched: run queues, scheduling entities, CPUs and the virtual clock.

The kernel asks sched who runs where; sched never touches a task. Tasks are
known by the kernel's task number (sched_fork comes before alloc_pid, as in
Linux, so there is no pid yet). A CPU is a
slot: ``schedule`` is called by the task giving its CPU up (slice used,
yield, sleep, death) and answers with the next task for that CPU; ``wake``
and ``wake_up_new_task`` answer with a dispatch when a CPU is idle. The
policy here is round-robin with a fixed slice, the simplest class to read.
Time is virtual: ticks charged by the kernel at each kernel entry.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ukernel import abi
from ukernel.service import Call, Service, get, op

SLICE_TICKS = 10  # round-robin time slice, in ticks (one tick per kernel entry)


@dataclass
class SchedEntity:
    """The scheduling part of a task_struct (struct sched_entity)."""

    task: int
    state: str = "new"  # new, runnable, running, blocked
    cpu: int = -1
    sum_exec_runtime: int = 0  # ticks run
    nvcsw: int = 0  # voluntary context switches (blocked, yielded)
    nivcsw: int = 0  # involuntary ones (slice used up)
    wake_pending: bool = False  # woken while still running: the next schedule(blocked) does not sleep


class SchedService(Service):
    name = "sched"

    def __init__(self, cpus: int = 1, slice_ticks: int = SLICE_TICKS):
        super().__init__()
        if cpus < 1:
            raise ValueError("a machine needs at least one CPU")
        self.slice = slice_ticks
        self.clock = 0
        self.entities: dict[int, SchedEntity] = {}
        self.runqueues: list[deque[int]] = [deque() for _ in range(cpus)]
        self.curr: list[int | None] = [None] * cpus

    # --- fork ---------------------------------------------------------------
    @op
    async def sched_fork(self, req: Call, task: int) -> dict:
        """Set up the child's entity; it is not runnable until wake_up_new_task."""
        if task in self.entities:
            raise abi.kernel_error(abi.EEXIST, f"task {task} already has a sched entity")
        self.entities[task] = SchedEntity(task)
        return {"task": task}

    @op
    async def sched_cancel_fork(self, req: Call, task: int) -> None:
        se = get(self.entities, task, "sched entity")
        if se.state != "new":
            raise abi.kernel_error(abi.EINVAL, f"task {task} already runs; only a new task can be cancelled")
        del self.entities[task]

    @op
    async def wake_up_new_task(self, req: Call, task: int) -> dict:
        """Enqueue the child on the idlest CPU (select_task_rq's fork balancing)."""
        se = get(self.entities, task, "sched entity")
        se.cpu = min(range(len(self.runqueues)), key=self._load)
        return {"dispatch": self._enqueue(se)}

    # --- running --------------------------------------------------------------
    @op
    async def schedule(self, req: Call, cpu: int, prev: int, state: str, ran: int = 0) -> dict:
        """prev leaves ``cpu`` as ``state`` (preempted, yield, blocked, dead); pick the next."""
        se = get(self.entities, prev, "sched entity")
        if not isinstance(cpu, int) or not 0 <= cpu < len(self.curr) or self.curr[cpu] != prev:
            raise abi.kernel_error(abi.EINVAL, f"task {prev} is not running on cpu {cpu}")
        if state not in ("preempted", "yield", "blocked", "dead"):
            raise abi.kernel_error(abi.EINVAL, f"unknown state {state!r}")
        self.clock += ran
        se.sum_exec_runtime += ran
        pending, se.wake_pending = se.wake_pending, False
        self.curr[cpu] = None
        if state == "preempted":
            se.nivcsw += 1
            se.state = "runnable"
            self.runqueues[cpu].append(prev)
        elif state == "yield":
            se.nvcsw += 1
            se.state = "runnable"
            self.runqueues[cpu].append(prev)
        elif state == "blocked" and pending:  # woken before it could sleep: stays runnable
            se.nvcsw += 1
            se.state = "runnable"
            self.runqueues[cpu].append(prev)
        elif state == "blocked":
            se.nvcsw += 1
            se.state = "blocked"
        else:  # dead
            del self.entities[prev]
        nxt = self._pick_next(cpu)
        return {"next": nxt, "slice": self.slice, "now": self.clock}

    @op
    async def wake(self, req: Call, task: int) -> dict:
        """A blocked task becomes runnable (try_to_wake_up)."""
        se = get(self.entities, task, "sched entity")
        if se.state == "running":  # still on its way to sleep (another CPU): it will not block
            se.wake_pending = True
        if se.state != "blocked":
            return {"dispatch": []}
        if self.curr[se.cpu] is not None:  # move to an idle CPU if there is one
            idle = [c for c, t in enumerate(self.curr) if t is None]
            if idle:
                se.cpu = idle[0]
        return {"dispatch": self._enqueue(se)}

    @op
    async def sched_exit(self, req: Call, task: int) -> None:
        """Forget a task that died while not on a CPU (killed in its sleep)."""
        se = get(self.entities, task, "sched entity")
        if se.state == "running":
            raise abi.kernel_error(abi.EBUSY, f"task {task} is on cpu {se.cpu}; it leaves with schedule(dead)")
        if se.state == "runnable":
            self.runqueues[se.cpu].remove(task)
        del self.entities[task]

    @op
    async def sched_stat(self, req: Call, task: int) -> dict:
        se = get(self.entities, task, "sched entity")
        return {
            "state": se.state,
            "cpu": se.cpu,
            "runtime": se.sum_exec_runtime,
            "nvcsw": se.nvcsw,
            "nivcsw": se.nivcsw,
        }

    @op
    async def now(self, req: Call) -> int:
        return self.clock

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "entities": len(self.entities),
            "queued": sum(len(q) for q in self.runqueues),
            "running": sum(t is not None for t in self.curr),
        }

    # --- internals ------------------------------------------------------------
    def _load(self, cpu: int) -> int:
        return len(self.runqueues[cpu]) + (self.curr[cpu] is not None)

    def _enqueue(self, se: SchedEntity) -> list[list[int]]:
        """Queue se on its CPU; dispatch at once if that CPU is idle."""
        se.state = "runnable"
        self.runqueues[se.cpu].append(se.task)
        if self.curr[se.cpu] is None:
            nxt = self._pick_next(se.cpu)
            return [[se.cpu, nxt]]
        return []

    def _pick_next(self, cpu: int) -> int | None:
        queue = self.runqueues[cpu]
        if not queue:  # idle balancing: steal from the busiest queue
            busiest = max(range(len(self.runqueues)), key=lambda c: len(self.runqueues[c]))
            if self.runqueues[busiest]:
                tid = self.runqueues[busiest].popleft()
                self.entities[tid].cpu = cpu
                queue.append(tid)
        if not queue:
            return None
        tid = queue.popleft()
        se = self.entities[tid]
        se.state, se.cpu = "running", cpu
        self.curr[cpu] = tid
        return tid
