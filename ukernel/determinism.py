"""Same program + config + seed -> the same interleaving, with any number of CPUs.

With several CPUs, several tasks run Python at once, as trio tasks, so their
interleaving is trio's scheduling order. trio shuffles its run queue on
purpose (so code cannot rely on an order); it has a switch, meant for
pytest-trio under Hypothesis, that makes the shuffle come from a seedable
generator instead. ``replay_schedule`` turns it on and seeds it with the
run's seed. Both are undone afterwards.

The cyclic garbage collector must not run at an unpredictable moment (a
collection can finalize objects whose clean-up schedules trio tasks, and so
move the shuffle), but a run must not keep its garbage for ever either (every
clone(fn) namespace copy is a reference cycle). So its automatic collections
are off during a run, what exists once the kernel has booted is frozen
(``gc.freeze``: later collections need not look at it), and the kernel
collects at its own points, a task's start (wake_up_new_task) and its end
(release_task), every ``YOUNG_EVERY`` of them (``Collector``): the same run
collects at the same moments. Counting starts too keeps the young generations
young: a run that only forks (10,000 blocked children) has its objects promoted
as it goes, not all traversed by the first collection after it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import trio._core._run as _trio_run  # private: the run queue's shuffle (see above)

YOUNG_EVERY = 128  # tasks started or released between two collections of the young generations
FULL_EVERY = 2048  # at least this many between two full collections
FULL_PER_LIVE = 2  # ... and twice as many as there are live tasks: a full one then costs O(1) a task


@contextmanager
def replay_schedule(seed: int) -> Iterator[None]:
    gc_was_on = gc.isenabled()
    switch = _trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    state = _trio_run._r.getstate()
    _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True
    _trio_run._r.seed(seed)
    gc.disable()
    try:
        yield
    finally:
        _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = switch
        _trio_run._r.setstate(state)
        gc.unfreeze()  # what boot froze is the host's to collect again
        if gc_was_on:
            gc.enable()


def freeze_boot() -> None:
    """The kernel has booted: what exists now (services, /bin, the host's own objects)
    lives as long as the run, so the run's collections skip it."""
    gc.freeze()


class Collector:
    """Collections at kernel points, counted in tasks started and released, never by
    allocations.

    The young generations every YOUNG_EVERY starts and releases (what a short-lived
    task left, what a new one made); everything when FULL_PER_LIVE times as many tasks
    as are alive (and at least FULL_EVERY) started or ended since the last full
    collection, so a full collection, whose cost grows with what is alive, costs the
    same per task at any size."""

    __slots__ = ("ticks", "since_full", "collections")

    def __init__(self) -> None:
        self.ticks = 0
        self.since_full = 0
        self.collections = [0, 0]  # young, full: how many so far

    def tick(self, live: int) -> None:
        """A task started or was released; ``live`` tasks are in the table."""
        self.ticks += 1
        if self.ticks % YOUNG_EVERY:
            return
        self.since_full += YOUNG_EVERY
        if self.since_full >= max(FULL_EVERY, FULL_PER_LIVE * live):
            self.since_full = 0
            self.collections[1] += 1
            gc.collect()
        else:
            self.collections[0] += 1
            gc.collect(1)
