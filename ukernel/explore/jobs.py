"""``--jobs J``: the search's runs spread over J worker processes on this machine.

The parent keeps the frontier and the tally; each round hands up to J * 4
prefixes to the workers (forked, so they start with ukernel imported), which
run them and send back a RunReport each. Each worker keeps its own set of seen
states: a state it met had its options queued (with the parent) by the run that
met it, so stopping at it again is as sound as in one process; two workers may
both explore a state the other met, which costs time, never an outcome. States
are counted once all the same: a report lists the digests its run met first, and
the parent counts each digest once (Search.take). With reduction on (the
default) nothing is cached: each run's points past its prefix are tree nodes
no other run has, counted once by construction.
"""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING

from .graph import Notes
from .search import Recorder, RunReport, quiet, run_one

if TYPE_CHECKING:
    from .search import Search

_worker: dict = {}  # in each worker: the program, its settings, the states it has seen (and spelled out)


def _init(program: str, argv: list[str] | None, settings: dict, cache: bool, graph: bool) -> None:
    described = set() if graph else None
    _worker.update(program=program, argv=argv, settings=settings, seen=set() if cache else None, described=described)


def _run(prefix: list[int]) -> RunReport:
    notes = Notes(_worker["described"]) if _worker["described"] is not None else None
    recorder = Recorder(prefix, _worker["seen"], notes=notes)
    with quiet():
        return run_one(_worker["program"], _worker["argv"], _worker["settings"], recorder)


def walk_parallel(search: Search, jobs: int) -> str:
    """The search over ``jobs`` processes; the bound that stopped it, if any. random and pct
    draw in the parent (their generator is one sequence), so they run here, one at a time."""
    if search.strategy not in ("dfs", "bfs"):
        from .search import _walk

        return _walk(search)
    context = multiprocessing.get_context("fork")
    args = (search.program, search.argv, search.settings, search.seen is not None, search.graph is not None)
    # the parent counts states once (Search.take)
    with context.Pool(jobs, initializer=_init, initargs=args) as pool:
        while search.frontier:
            stopped_by = search.bound_hit()
            if stopped_by:
                return stopped_by
            batch = search.next_prefixes(jobs * 4)
            if search.max_runs is not None:
                batch, back = (
                    batch[: search.max_runs - search.result.runs],
                    batch[search.max_runs - search.result.runs :],
                )
                search.frontier.extend(back)
            for report in pool.imap(_run, batch):
                search.take(report)
    return ""
