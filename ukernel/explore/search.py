"""The search: run the program again and again, each run following a choice list.

Stateless model checking (VeriSoft's, CHESS's): a run is program + settings +
choice list, so the choice tree is walked by replaying prefixes. A run follows
its prefix, then takes option 0 at every later point (let the current task go
on) and records how many options each point had; each untried option of a
point past the prefix is a new prefix to run (``dfs``: deepest first, ``bfs``:
shallowest first). ``random`` draws every choice; ``pct`` gives each task a
random priority and lowers the running one's at a few random points (Burckhardt
et al., ASPLOS'10). Neither of those two can prove anything: never complete.

State caching: at each point past its prefix a run asks for the state digest
(kernel/choice.py ``state_digest``); a state met before has had its options
queued already, so the run queues nothing from there on: it goes to its end
with option 0 and no more digests, and its ending is not counted (cancelling a
run midway would leave shielded clean-ups waiting for services already gone).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from .checkpoint import ABANDONED
from .graph import Notes, StateGraph
from .outcome import Exploration, Tally, ending_of

STRATEGIES = ("dfs", "bfs", "random", "pct")
METHODS = {
    "stateful": "source-DPOR, sleep sets and state caching",
    "dpor": "source-DPOR and sleep sets",
    "cache": "state caching",
    "none": "every path",
}
PCT_DEPTH = 3  # pct's bug depth d: d - 1 priority change points per run


@dataclass
class Recorder:
    """The chooser of one explored run: ``prefix`` first, then ``pick`` (option 0 by default);
    with ``seen``, a state met before stops the run (every later point is someone else's)."""

    prefix: list[int]
    seen: set | None = None
    pick: Callable[[dict, int], int] | None = None
    taken: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    cut: bool = False
    new_states: list = field(default_factory=list)  # the digests this run met first (for --jobs' count)
    notes: Notes | None = None  # explore --graph: a record of each point past the prefix

    @property
    def wants_state(self) -> bool:
        """Only past the prefix (the prefix's states were met by the run that queued it),
        and not once the run met a known state."""
        wanted = self.seen is not None or self.notes is not None
        return wanted and not self.cut and len(self.taken) >= len(self.prefix)

    def wants_detail(self, state: int) -> bool:
        """Whether the kernel should spell this state out (kernel/statedump.py): for the graph."""
        return self.notes is not None and self.notes.wants_detail(state)

    def choose(self, point: dict) -> int:
        i = len(self.taken)
        if self.cut:
            return 0
        if i < len(self.prefix):
            chosen = self.prefix[i] if self.prefix[i] < len(point["options"]) else 0
        else:
            if self.seen is not None:
                if point["state"] in self.seen:
                    self.cut = True
                    if self.notes is not None:
                        self.notes.add(i, point, None)
                    return 0
                self.seen.add(point["state"])
                self.new_states.append(point["state"])
            chosen = self.pick(point, i) if self.pick is not None else 0
            if self.notes is not None:
                self.notes.add(i, point, chosen)
        self.taken.append(chosen)
        self.widths.append(len(point["options"]))
        return chosen


@dataclass
class RunReport:
    """What the search keeps of one run (picklable, for --jobs)."""

    prefix: list[int]
    taken: list[int]
    widths: list[int]
    ending: dict | None  # None: stopped at a state seen before
    new_states: list
    points: list[dict] | None = None  # explore --graph: the Notes' records


def run_one(program: str, argv: list[str] | None, settings: dict, recorder: Recorder) -> RunReport:
    """One run under ``recorder``; its ending (None when it stopped at a known state)."""
    from ..api import run_async

    result = trio.run(partial(run_async, program, argv, schedule=recorder, trace=False, **settings))
    ending = None if recorder.cut else ending_of(result)
    points = recorder.notes.records if recorder.notes is not None else None
    return RunReport(recorder.prefix, recorder.taken, recorder.widths, ending, recorder.new_states, points)


def trimmed(choices: list[int]) -> list[int]:
    """A choice list without its trailing zeros (past its end a replay takes 0 anyway)."""
    end = len(choices)
    while end and choices[end - 1] == 0:
        end -= 1
    return choices[:end]


def children(report: RunReport, max_depth: int | None) -> tuple[list[list[int]], bool]:
    """The untried options of each point past the run's prefix, as prefixes to run (deepest
    last); True if ``max_depth`` left some out."""
    out, truncated = [], False
    for i in range(len(report.prefix), len(report.widths)):
        if max_depth is not None and i >= max_depth:
            return out, report.widths[i] > 1 or truncated
        out.extend(report.taken[:i] + [alt] for alt in range(report.widths[i]) if alt != report.taken[i])
    return out, truncated


@contextmanager
def quiet() -> Iterator[None]:
    """Each deadlocked run would print its dump: the exploration reports them itself."""
    logger = logging.getLogger("ukernel")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class Search:
    """One exploration's state: the frontier, the seen states, the tally, the bounds."""

    def __init__(self, program: str, argv: list[str] | None, settings: dict, options: dict):
        self.program, self.argv, self.settings = program, argv, settings
        self.strategy = options["strategy"]
        self.max_runs, self.max_depth = options["max_runs"], options["max_depth"]
        self.time_limit, self.cache = options["time_limit"], options["cache"]
        self.progress: Callable[[Exploration], None] | None = options["progress"]
        self.rng = random.Random(settings.get("seed", 0))
        self.frontier: deque[list[int]] = deque([[]])
        states = not options["reduction"] or options["graph"] is not None  # the graph's nodes are states
        caching = self.cache and states and self.strategy in ("dfs", "bfs")
        self.seen: set | None = set() if caching else None
        self.counted: set = set()  # every state counted (--jobs: each worker has its own seen set)
        self.tally = Tally()
        self.result = Exploration(program.rsplit("/", 1)[-1].removesuffix(".py"), list(argv or []))
        self.truncated = False
        self.started = time.perf_counter()
        self.graph = StateGraph(program, self.argv) if options["graph"] is not None else None
        self.described: set = set()  # the states this process asked the kernel to spell out (graph)

    def bound_hit(self) -> str:
        """The bound that ends the search now, if one does."""
        if self.max_runs is not None and self.result.runs >= self.max_runs:
            return f"--max-runs {self.max_runs}"
        if self.time_limit is not None and time.perf_counter() - self.started >= self.time_limit:
            return f"--time-limit {self.time_limit:g}"
        return ""

    def next_prefixes(self, n: int) -> list[list[int]]:
        """Up to ``n`` prefixes to run (random and pct: empty ones, drawn afresh)."""
        if self.strategy in ("random", "pct"):
            return [[] for _ in range(n)]
        take = self.frontier.pop if self.strategy == "dfs" else self.frontier.popleft
        return [take() for _ in range(min(n, len(self.frontier)))]

    def recorder(self, prefix: list[int]) -> Recorder:
        notes = Notes(self.described) if self.graph is not None else None
        if self.strategy == "random":
            return Recorder(prefix, None, lambda point, i: self.rng.randrange(len(point["options"])), notes=notes)
        if self.strategy == "pct":
            return Recorder(prefix, None, pct_picker(self.rng), notes=notes)
        return Recorder(prefix, self.seen, notes=notes)

    def take(self, report: RunReport) -> None:
        """A finished run: its ending tallied, its untried options queued."""
        self.result.runs += 1
        if self.seen is not None:
            fresh = [s for s in report.new_states if s not in self.counted]
            self.counted.update(fresh)
            self.result.states += len(fresh)
        else:  # no caching: each point past the prefix is a node of the tree no other run has
            self.result.states += len(report.widths) - len(report.prefix)
        if report.ending is not None:
            self.tally.add(report.ending, trimmed(report.taken))
        if self.graph is not None:
            self.graph.add(report)
        if self.strategy in ("dfs", "bfs"):
            more, truncated = children(report, self.max_depth)
            self.truncated = self.truncated or truncated
            self.frontier.extend(more)
        if self.progress is not None:
            self.progress(self.snapshot())

    def snapshot(self) -> Exploration:
        self.tally.fill(self.result)
        self.result.seconds = time.perf_counter() - self.started
        return self.result

    def finish(self, stopped_by: str) -> Exploration:
        result = self.snapshot()
        systematic = self.strategy in ("dfs", "bfs")
        result.complete = systematic and not stopped_by and not self.frontier and not self.truncated
        if not systematic:
            result.why_incomplete = f"--strategy {self.strategy} samples runs; it cannot prove it saw them all"
        elif stopped_by:
            left = f" with {len(self.frontier)} prefixes left" if self.frontier else ""  # (a fork tree keeps none)
            result.why_incomplete = f"stopped by {stopped_by}{left}"
        elif self.truncated:
            result.why_incomplete = f"--max-depth {self.max_depth} left choice points unexplored"
        return result


def pct_picker(rng: random.Random) -> Callable[[dict, int], int]:
    """PCT for one run: random task priorities, the running task's lowered at d-1 random points."""
    priority: dict[int, float] = {}
    changes = set(rng.sample(range(1, 200), PCT_DEPTH - 1))

    def pick(point: dict, i: int) -> int:
        options = point["options"]
        for pid in options:
            priority.setdefault(pid, rng.random())
        if i in changes:
            priority[point["pid"]] = -i  # below every drawn priority, and below earlier changes
        return max(range(len(options)), key=lambda j: priority[options[j]])

    return pick


def explore(
    program: str,
    argv: list[str] | None = None,
    *,
    max_runs: int | None = None,
    max_depth: int | None = None,
    time_limit: float | None = None,
    strategy: str = "dfs",
    jobs: int = 1,
    cache: bool = True,
    reduction: bool = True,
    progress: Callable[[Exploration], None] | None = None,
    graph: str | os.PathLike | None = None,
    **settings: Any,
) -> Exploration:
    """Every interleaving of ``program`` (up to reduction and caching): its distinct outcomes,
    deadlocks and violations, each with a choice list that replays it (``ukernel run --schedule``).
    ``settings`` are ukernel.run's keywords (``cpus=2``: the CPUs take turns, kernel/choice.py).
    ``graph``: a file to write the state-graph page to (graph.py); the result's ``graph`` holds its model.

    ``dfs`` in one process walks the tree by forking at choice points (checkpoint.py): with
    ``reduction`` by source-DPOR and sleep sets (and state caching too if ``cache``: stateful
    DPOR), else with state caching if ``cache``, else every path. ``bfs``, ``random``, ``pct``,
    ``--jobs`` and ``graph`` replay prefixes, caching states only with ``reduction=False``.
    DPOR walks one CPU's task choices; with several CPUs, or at a choice that is no task's
    (a futex's waiters, tied timers), the search goes on with state caching instead."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if jobs < 1:
        raise ValueError(f"jobs: at least 1, not {jobs}")
    for name in ("schedule", "trace"):
        if name in settings:
            raise ValueError(f"{name}: explore sets it for each run itself")
    options = {
        "strategy": strategy,
        "max_runs": max_runs if max_runs is not None or strategy in ("dfs", "bfs") else 100,
        "max_depth": max_depth,
        "time_limit": time_limit,
        "cache": cache,
        "reduction": reduction,
        "progress": progress,
        "graph": graph,
    }
    search = Search(program, argv, settings, options)
    with quiet():
        if strategy == "dfs" and jobs == 1 and graph is None:
            dpor = reduction and settings.get("cpus", 1) == 1  # several CPUs: choices of whose turn too
            mode = ("stateful" if cache else "dpor") if dpor else "cache" if cache else "none"
            stopped_by = _walk_tree(search, mode)
            if stopped_by == ABANDONED:  # a choice DPOR cannot reverse: walk again, caching states
                search = Search(program, argv, settings, options | {"reduction": False})
                mode = "cache" if cache else "none"
                stopped_by = _walk_tree(search, mode)
            met = f" (DPOR met {ABANDONED})" if dpor and mode not in ("dpor", "stateful") else ""
            search.result.method = METHODS[mode] + met
        elif jobs == 1:
            stopped_by = _walk(search)
        else:
            from .jobs import walk_parallel

            stopped_by = walk_parallel(search, jobs)
        if not search.result.method:
            search.result.method = "replayed prefixes" + (", state caching" if search.seen is not None else "")
    result = search.finish(stopped_by)
    if search.graph is not None:
        result.graph = search.graph.write(graph, result, search.settings)
    return result


def _walk_tree(search: Search, mode: str) -> str:
    """The search as one tree of forked processes (checkpoint.py); the bound that stopped it."""
    from .checkpoint import Bounds, walk_tree

    deadline = search.started + search.time_limit if search.time_limit is not None else None
    bounds = Bounds(deadline, search.max_runs, search.max_depth)
    stopped, errors, diverged = [], [], []

    def take(message: dict) -> None:
        search.result.states += message["states"]
        for name in ("forks", "replays", "replayed"):  # (an error's message has none)
            setattr(search.result, name, getattr(search.result, name) + message.get(name, 0))
        if message["stopped"]:
            stopped.append(message["stopped"])
        kind = message["ending"]
        if kind == "error":
            errors.append(message["text"])
        if kind == "diverged":
            diverged.append(message["point"])
        if kind in ("node", "error", "diverged"):
            return
        search.result.runs += 1
        if kind is not None:
            search.tally.add(kind, trimmed(message["schedule"]))
        if search.progress is not None:
            search.progress(search.snapshot())

    walk_tree(search.program, search.argv, search.settings, mode, bounds, take)
    search.frontier.clear()
    if errors:
        raise RuntimeError(f"explore: a process of the search failed:\n{errors[0]}")
    if diverged:  # checkpoint.py's replays: the program read something no choice decides
        raise ValueError(
            f"{search.result.program}: the same choices gave another run (a replay diverged at point"
            f" {diverged[0]}): a program must not read the host's files, clock or randomness"
        )
    depth = [s for s in stopped if s.startswith("--max-depth")]
    if depth and len(depth) == len(stopped):
        search.truncated = True
        return ""
    return next((s for s in stopped if not s.startswith("--max-depth")), "")


def _walk(search: Search) -> str:
    """The search in this process, one run at a time; the bound that stopped it, if any."""
    while search.frontier or search.strategy in ("random", "pct"):
        stopped_by = search.bound_hit()
        if stopped_by:
            return stopped_by
        (prefix,) = search.next_prefixes(1)
        search.take(run_one(search.program, search.argv, search.settings, search.recorder(prefix)))
    return ""
