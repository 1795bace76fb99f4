"""Same program + config + seed -> the same interleaving, with any number of CPUs.

With several CPUs, several tasks run Python at once, as trio tasks, so their
interleaving is trio's scheduling order. trio shuffles its run queue on
purpose (so code cannot rely on an order); it has a switch, meant for
pytest-trio under Hypothesis, that makes the shuffle come from a seedable
generator instead. ``replay_schedule`` turns it on and seeds it with the
run's seed. Both are undone afterwards.

But that generator is drawn from once per task in each batch trio runs, so a
task in a batch that is not the kernel's moves every later shuffle: trio's own
task that drains its wake-up socket (every host signal lands there: the
watchdog's SIGPROF comes every few CPU milliseconds, at no fixed point of the
run), a watcher woken by a wall-clock deadline (api.py's deadlock look), the
host's own tasks. 2-CPU runs with one seed diverged so, now and then, some
thousand events in (a sched reply before a task's exit, or after it); 1-CPU
runs did not, as one task runs at a time there whatever the batch order. So
the shuffle (``KernelShuffle``) draws for the kernel's tasks only, in their
spawn order, and runs the others after them: a task is the kernel's if it was
spawned inside the run (``IN_KERNEL``, a context variable that tasks inherit),
and not while it waits on something from outside the kernel (``outside``: the
wall clock, the host), so its wake-up at a wall-clock moment draws nothing.

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
import random
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import trio._core._run as _trio_run  # private: the run queue's shuffle (see above)

YOUNG_EVERY = 128  # tasks started or released between two collections of the young generations
FULL_EVERY = 2048  # at least this many between two full collections
FULL_PER_LIVE = 2  # ... and twice as many as there are live tasks: a full one then costs O(1) a task


#: True in the trio tasks of a run (the caller's, and all spawned from it), but
#: while one waits in ``outside``: which tasks of a batch the shuffle orders.
IN_KERNEL: ContextVar[bool] = ContextVar("ukernel_in_kernel", default=False)


class KernelShuffle(random.Random):
    """trio's batch shuffle (``_r.shuffle``, given the batch in spawn order) with draws for
    the kernel's tasks only; the others run after them, unshuffled. A task woken from
    outside the run (a signal, a deadline, the host) so changes neither the draws nor the
    order of the kernel's tasks: that order comes from the seed and the kernel alone."""

    def shuffle(self, batch: MutableSequence[Any]) -> None:  # type: ignore[override]
        ours = [t for t in batch if t.context.get(IN_KERNEL, False)]
        if len(ours) == len(batch):
            return super().shuffle(batch)
        others = [t for t in batch if not t.context.get(IN_KERNEL, False)]
        super().shuffle(ours)
        batch[:] = others + ours  # trio runs the batch from its end


@contextmanager
def outside() -> Iterator[None]:
    """The current task waits for the wall clock or the host (a backoff, a watcher's
    look), not for the kernel: while it does, its wake-up draws nothing from the shuffle."""
    token = IN_KERNEL.set(False)
    try:
        yield
    finally:
        IN_KERNEL.reset(token)


@contextmanager
def replay_schedule(seed: int) -> Iterator[None]:
    gc_was_on = gc.isenabled()
    switch, shuffle = _trio_run._ALLOW_DETERMINISTIC_SCHEDULING, _trio_run._r
    _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True
    _trio_run._r = KernelShuffle(seed)
    token = IN_KERNEL.set(True)
    gc.disable()
    try:
        yield
    finally:
        IN_KERNEL.reset(token)
        _trio_run._ALLOW_DETERMINISTIC_SCHEDULING, _trio_run._r = switch, shuffle
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
