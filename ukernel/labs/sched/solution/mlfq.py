"""A multi-level feedback queue (Corbató's CTSS; OSTEP chapter 8's five rules) for SCHED_OTHER tasks.

Rule 1, 2: the task of the highest non-empty level runs; within a level,
round robin. Rule 3: a new task starts at the top (level 0). Rule 4: once a
task has used up its allotment at a level (``allotment``: quantum << level
ticks, however many times it gave up the CPU), it moves one level down.
Rule 5: every ``boost`` ticks of CPU this class has handed out, every task
goes back to the top. A task woken at a higher level than the running one
preempts it (``check_preempt``), so an interactive task runs soon after it wakes.

Settings (``sched_settings``, ints): mlfq_levels (3), mlfq_quantum (5), mlfq_boost (100).
"""

from __future__ import annotations

from collections import deque

from services.sched.classes import SchedClass, SchedEntity


class Mlfq(SchedClass):
    name = "mlfq"

    def __init__(self, cpu: int, settings: dict[str, int]):
        super().__init__(cpu, settings)
        self.levels = settings.get("mlfq_levels", 3)
        self.quantum = settings.get("mlfq_quantum", 5)
        self.boost = settings.get("mlfq_boost", 100)
        self.queues: list[deque[SchedEntity]] = [deque() for _ in range(self.levels)]
        # BEGIN SOLUTION
        # STUB: pass  # your per-CPU state for rule 5 here
        self.clock = 0  # ticks this class has run tasks for on this CPU
        self.epoch = 0  # boosts so far: a task last seen in an older epoch is back at the top
        # END SOLUTION

    def allotment(self, level: int) -> int:
        """Ticks a task may use at ``level`` before it moves down: 5, 10, 20 by default."""
        return self.quantum << level

    def level(self, se: SchedEntity) -> int:
        """se's level (0 is the top); a task not yet placed, or placed before the last boost, is at the top."""
        # BEGIN SOLUTION
        # STUB: return 0
        if se.extra.get("epoch") != self.epoch:
            se.extra.update(level=0, used=0, epoch=self.epoch)
        return se.extra["level"]
        # END SOLUTION

    def enqueue(self, se: SchedEntity, why: str) -> None:
        self.queues[self.level(se)].append(se)

    def dequeue(self, se: SchedEntity, why: str) -> None:
        for queue in self.queues:
            if se in queue:
                queue.remove(se)

    def queued(self) -> list[SchedEntity]:
        return [se for queue in self.queues for se in queue]

    def pick_next(self) -> SchedEntity | None:
        for queue in self.queues:
            if queue:
                return queue.popleft()
        return None

    def task_fork(self, se: SchedEntity, parent: SchedEntity | None) -> None:
        """Rule 3: a new task starts at the top with its whole allotment."""
        # BEGIN SOLUTION
        # STUB: pass
        se.extra.update(level=0, used=0, epoch=self.epoch)
        # END SOLUTION

    def time_slice(self, se: SchedEntity) -> int:
        """What is left of se's allotment at its level."""
        # BEGIN SOLUTION
        # STUB: return self.settings["rr_slice"]
        return max(1, self.allotment(self.level(se)) - se.extra["used"])
        # END SOLUTION

    def task_tick(self, se: SchedEntity, ticks: int) -> None:
        """se ran ``ticks``: rule 4 (demote when the allotment is used up), then rule 5 (boost)."""
        # BEGIN SOLUTION
        # STUB: pass
        level = self.level(se)
        se.extra["used"] += ticks
        if se.extra["used"] >= self.allotment(level):
            se.extra.update(level=min(level + 1, self.levels - 1), used=0)
        self.clock += ticks
        if self.clock >= self.boost * (self.epoch + 1):
            self.priority_boost()
        # END SOLUTION

    def check_preempt(self, curr: SchedEntity, se: SchedEntity) -> bool:
        """se just woke: it takes the CPU if it is at a higher level (a smaller number) than curr."""
        # BEGIN SOLUTION
        # STUB: return False
        return self.level(se) < self.level(curr)
        # END SOLUTION

    def priority_boost(self) -> None:
        """Rule 5: a new epoch puts every task at the top, queued ones in their order of levels."""
        # BEGIN SOLUTION
        self.epoch += 1
        everyone = self.queued()
        for queue in self.queues:
            queue.clear()
        for se in everyone:
            self.queues[self.level(se)].append(se)
        # END SOLUTION
