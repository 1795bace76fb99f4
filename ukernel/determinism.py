"""Same program + config + seed -> the same interleaving, with any number of CPUs.

With several CPUs, several tasks run Python at once, as trio tasks, so their
interleaving is trio's scheduling order. trio shuffles its run queue on
purpose (so code cannot rely on an order); it has a switch, meant for
pytest-trio under Hypothesis, that makes the shuffle come from a seedable
generator instead. ``replay_schedule`` turns it on and seeds it with the
run's seed, and keeps the cyclic garbage collector out of the run (a
collection at an unpredictable moment can finalize objects whose clean-up
schedules trio tasks, and so move the shuffle). Both are undone afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import trio._core._run as _trio_run  # private: the run queue's shuffle (see above)


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
        if gc_was_on:
            gc.enable()
