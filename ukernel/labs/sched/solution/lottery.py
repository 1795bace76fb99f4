"""Lottery scheduling (Waldspurger and Weihl, OSDI '94) as ukernel's class for SCHED_OTHER tasks.

Every runnable task holds tickets; at each pick one ticket is drawn at
random and its holder runs for one slice (``time_slice``: the default,
settings["rr_slice"] = 10 ticks). Over many picks each task gets the CPU in
proportion to its tickets. A task's tickets come from its nice value
(``tickets`` below): nice 10 holds 100, nice 0 200, nice -10 300.
"""

from __future__ import annotations

import random

from services.sched.classes import SchedClass, SchedEntity


def tickets(se: SchedEntity) -> int:
    """10 tickets per step of nice below 20: nice 19 -> 10, nice 0 -> 200, nice -20 -> 400."""
    return 10 * (20 - se.nice)


class Lottery(SchedClass):
    name = "lottery"

    def __init__(self, cpu: int, settings: dict[str, int]):
        super().__init__(cpu, settings)
        self.rng = random.Random(settings.get("lottery_seed", 1) * 1000 + cpu)  # the same draws every run
        self.queue: list[SchedEntity] = []  # the runnable tasks of this CPU, not the running one

    def enqueue(self, se: SchedEntity, why: str) -> None:
        self.queue.append(se)

    def dequeue(self, se: SchedEntity, why: str) -> None:
        if se in self.queue:
            self.queue.remove(se)

    def queued(self) -> list[SchedEntity]:
        return list(self.queue)

    def pick_next(self) -> SchedEntity | None:
        """Draw a ticket among the queued tasks; take its holder off the queue and return it."""
        # BEGIN SOLUTION
        # STUB: return self.queue.pop(0) if self.queue else None  # first come, first served: hold a lottery instead
        if not self.queue:
            return None
        winner = self.rng.randrange(sum(tickets(se) for se in self.queue))
        for i, se in enumerate(self.queue):
            winner -= tickets(se)
            if winner < 0:
                return self.queue.pop(i)
        raise AssertionError("the winning ticket is always held by someone")
        # END SOLUTION
