"""Runs that cost only their suffix: the choice tree walked by forking the explorer.

At a choice point with something left to explore, the process running the
kernel forks (``os.fork``, inside the chooser's ``choose``, a plain function
call: no trio code runs meanwhile): the child returns the option to the
kernel and goes on with the run, the parent waits for it *synchronously*
(``os.read`` on a pipe, then ``waitpid``), so trio's epoll and wake-up fds are
never used by two processes at once; then it forks the next option's child.
A child takes
an epoll instance of its own (``_own_epoll``: the inherited one is the
parent's, and trio's one-shot registrations would be re-armed or dropped
under it). No run boots again or replays its prefix: a run costs its suffix and a fork
per branch. A process that is done reports what it learnt to its parent (a
pickle on its pipe) and ends with ``os._exit``: no clean-up is left hanging,
so a run can stop at once wherever it is (**early stop**: a state seen before,
or every option asleep).

The modes (``Tree.mode``):

- ``dpor``: source-DPOR with sleep sets (por.py). Each point starts with one
  option; a finished run's races add options to earlier points of its path, sent
  up with the report; a point forks one child per option its set holds at the end
  (the last in its own process once every awake option is in the set). A point a
  few steps below its process's origin does not fork for its first option at all
  (*lazy*, ``LAZY_REACH``): the option runs in the point's own process, and if a
  race adds another there, the addition goes up with the report (``Passed``: the
  choices down to it, its done set) to the process waiting at the origin, which,
  once that subtree is walked, forks a child that *replays* the known choices to
  the point (the same program and choices give the same run) and explores the
  added options there as the eager tree would have (``_explore``, ``_follow``).
- ``cache``: every option of a point, and state caching: a state seen before
  ends the run. The seen set goes down by fork and comes up with each report, so
  a state is counted once; the last option of a point runs in the point's own
  process (no fork).
- ``stateful`` (the default): both (Yang et al., SPIN'08). A run that reaches a
  state seen before stops, and the races its cut future would have shown are
  added from the state's summary instead: which task touched what anywhere in the
  subtree explored from it (por.py ``summary_races``; ``Visit``). What a process learnt of
  the states below it reaches the tree through one shared log (visits.py), not the reports.
- ``none``: every option of every point, nothing merged (the reference the
  reduced modes are tested against).

Every run's end (its ending, or ``None`` when it stopped early, and its choice
list) goes to the explorer's own process on one more pipe; only one process of
the tree runs at a time, so its messages never interleave.
"""

from __future__ import annotations

import gc
import mmap
import os
import pickle
import select
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from .outcome import ending_of
from .por import (
    Footprint,
    dependent,
    happens_before,
    merge_summary,
    prepend_summary,
    race_choices,
    races,
    summary_choices,
    summary_races,
)
from .visits import Visit, Visits

MODES = ("stateful", "dpor", "cache", "none")
#: The points whose options are tasks (who runs next): the only ones source-DPOR reverses. At
#: another (which of a futex's waiters a wake picks, which tied timer fires first) the task
#: that asked goes on whatever is chosen: the dpor tree takes every option there (a full
#: branch, no reduction at that point) and its step stays the one it was in, so races and
#: sleep sets see one transition from the task point before (``Tree._inner``). A ``cpu`` or
#: ``turn`` point (several CPUs, which DPOR does not walk) gives the tree up (``ABANDONED``).
TASK_POINTS = frozenset({"entry", "schedule"})
INNER_POINTS = frozenset({"futex", "timer"})
ABANDONED = "a choice that is no task's"
#: dpor: how far below its process's origin a point may be lazy (``Tree._lazy``). A replayed step
#: costs about half a fork (its step, and its state digest, which a replay must ask for too: a
#: run without the digest's messages is not the same run), and a point gets a second option
#: about one time in two to seven: deeper, the fork is the cheaper insurance (docs/explore.md).
LAZY_REACH = 2
_LEN = struct.Struct("<Q")
_FLAGS = _LEN.size  # the counter's second word: 1 once a dpor run met a point it cannot reduce


class PausedClock(trio.abc.Clock):
    """trio's clock less the time a process spent waiting for its children: a parent that
    waited minutes resumes with its timers (the deadlock watcher's) where they were."""

    def __init__(self) -> None:
        self.paused = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.perf_counter() - self.paused

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - self.current_time()


@dataclass
class Point:
    """One choice point of the path this process is on: its options (pids), who was chosen,
    what that transition touched, and (dpor) the options to explore, done, and asleep."""

    options: list[int]
    pid: int = 0
    fp: frozenset = frozenset()  # the chosen task's step from here
    event: int = 0  # that step's index in Tree.events
    backtrack: set[int] = field(default_factory=set)
    done: dict[int, frozenset] = field(default_factory=dict)  # explored option -> its transition's footprint
    sleep: dict[int, frozenset] = field(default_factory=dict)  # asleep option -> its footprint
    state: Any = None  # stateful: the state digest here (this process's own points)
    sub: dict[int, frozenset] = field(default_factory=dict)  # stateful: the children's summaries
    inner: bool = False  # a futex or timer point: the asking task's step goes on (INNER_POINTS)
    within: int = -1  # inner: the task point whose step goes on through it (-1: none)
    asker: int = 0  # inner: that step's task
    carried: dict[int, frozenset] = field(default_factory=dict)  # inner: the sleep set carried through
    lazy: bool = False  # dpor: its option runs in this process, not forked; the others come by replay


@dataclass
class Passed:
    """dpor: a point a process went on from, as the process waiting above it needs it to replay
    there: its options and the one taken, what the search holds for it (backtrack, done), what
    the taken transition touched (its ``done`` entry once its subtree is walked), its state."""

    options: list[int]
    choice: int
    backtrack: set[int]
    done: dict[int, frozenset]
    fp: frozenset
    state: Any
    lazy: bool


@dataclass
class Bounds:
    """What stops the whole search: a deadline and a number of runs (shared through reports)."""

    deadline: float | None
    max_runs: int | None
    max_depth: int | None


class Tree:
    """The chooser of every process of the tree (each has its own copy, by fork)."""

    def __init__(self, mode: str, report_fd: int, bounds: Bounds, clock: PausedClock):
        self.mode, self.report_fd, self.bounds, self.clock = mode, report_fd, bounds, clock
        self.dpor = mode in ("dpor", "stateful")
        self.footprint = Footprint() if self.dpor else None
        self.seen: set | None = set() if mode == "cache" else None
        self.visits: Visits | None = Visits() if mode == "stateful" else None
        self.hit: dict[int, frozenset] = {}  # stateful: the summary of the cached state this run met
        self.path: list[Point] = []
        self.taken: list[int] = []
        self.up_fd: int | None = None  # to the parent process, None in the tree's first
        self.origin = -1  # the point this process was forked at
        self.fresh_from = 0  # points before this one are on a path a finished run already took
        self.additions: list[tuple[int, int]] = []  # dpor: options for points above origin
        self.new_seen: list = []
        self.states = 0
        self.counter = mmap.mmap(-1, 2 * _LEN.size)  # runs ended in the whole tree, and the abandon flag (shared)
        self.stopped = ""  # the bound that cut this subtree, if one did
        self.mms: dict[int, Any] = {}
        self.pending_sleep: dict[int, frozenset] = {}
        self.replay: list[Passed] = []  # dpor: the points a replay follows, from depth replay_base on
        self.replay_base = 0
        self.forks = self.replays = self.replayed = 0  # this process's, for the explorer's counts
        #: dpor: every step of the path, (pid, footprint, its point's index or -1 when no
        #: other task could run there): races are looked for among these.
        self.events: list[tuple[int, frozenset, int]] = []
        self.torn_down = False  # a deadlock was found: the steps since are its teardown's (``deadlocked``)
        self.hb: list[int] = []  # dpor: happens-before of the events so far (por.py), forked with them

    @property
    def wants_state(self) -> bool:
        return self.seen is not None or self.visits is not None

    # --- the kernel's call ------------------------------------------------------------
    def choose(self, point: dict) -> int:
        depth = len(self.path)
        inner = point["kind"] in INNER_POINTS
        if self.dpor and point["kind"] not in TASK_POINTS and not inner:
            self._abandon()
        here = Point(list(point["options"]), inner=inner)
        if self.footprint is not None:
            self._close_transition(point, here)
        if self.seen is not None:
            if point["state"] in self.seen:
                self.end_run(None)
            self.seen.add(point["state"])
            self.new_seen.append(point["state"])
        if self.footprint is not None and self.path:
            since = self.events[self.path[-1].event :]
            sleep = {
                q: fp
                for q, fp in self.pending_sleep.items()
                if not any(pid == q or dependent(fp, step) for pid, step, _ in since)
            }
            if inner:  # its options are no tasks: the tasks asleep stay so through it
                here.carried = sleep
            else:
                here.sleep = sleep
        passed = self._replaying(depth)
        if passed is not None:
            self._walked_again(here, passed)
        elif self.visits is None or self._visit(point["state"], here):
            self.states += 1
        here.event = len(self.events)
        self.path.append(here)
        if passed is not None:
            return self._follow(depth, here, passed, point)
        if self.bounds.max_depth is not None and depth >= self.bounds.max_depth:
            self.stopped = self.stopped or f"--max-depth {self.bounds.max_depth}"
            return self._go(here, here.options[0], point["kind"])
        if self.dpor and inner:
            here.backtrack = set(here.options)  # every option: no reduction at this point
        elif self.dpor:
            awake = [p for p in here.options if p not in here.sleep]
            if not awake:
                self.end_run(None)  # every option asleep: its runs are covered elsewhere
            here.backtrack = {awake[0]}
        else:
            here.backtrack = set(here.options)
        return self._branch(depth, here, point["kind"])

    def _diverged(self, depth: int) -> None:
        """The same choices did not give the same run: the explorer says so (not the program,
        whose call this is), and the whole tree stops (this subtree's parents with it)."""
        _send(self.report_fd, {"ending": "diverged", "point": depth, "states": 0, "stopped": ""})
        os._exit(1)

    def _replaying(self, depth: int) -> Passed | None:
        k = depth - self.replay_base
        return self.replay[k] if 0 <= k < len(self.replay) else None

    def _walked_again(self, here: Point, passed: Passed) -> None:
        """stateful: a replayed point's state is no new one, and no stop: it is on the path again,
        so a run below that meets it closes a cycle (as while its first run was below it)."""
        if self.visits is not None:
            here.state = passed.state
            self.visits[passed.state] = Visit(self.visits[passed.state].sleep, None)

    def _follow(self, depth: int, here: Point, passed: Passed, point: dict) -> int:
        """A replay's point: the first run's choice again (the same program and choices give the
        same steps, footprints and states), with what the search holds for the point. At the
        target, that choice is done and the options added there are explored as anywhere; at a
        point on the way with options left too, this process waits for the rest of the way
        (``_explore``), as the eager tree's would, so that point's replay is not run from above."""
        if here.options != passed.options or point.get("state", passed.state) != passed.state:
            self._diverged(depth)
        here.backtrack, here.done, here.lazy = set(passed.backtrack), dict(passed.done), passed.lazy
        pid, kind = here.options[passed.choice], point["kind"]
        rest = self.replay[depth + 1 - self.replay_base :]
        if rest and not (here.lazy and _left(here, pid)):
            return self._go(here, pid, kind)
        self.replay, here.lazy = [], False
        if rest:
            child = self._explore(depth, here, pid, kind, rest)
            if child is not None:
                return child
        else:
            here.done[pid] = passed.fp
        return self._branch(depth, here, kind)

    def _visit(self, state: Any, here: Point) -> bool:
        """stateful: a state met before whose explored options cover this visit's ends the run,
        its subtree's races added from its summary; otherwise it is walked (again). Whether
        it is new."""
        asleep = frozenset(here.carried if here.inner else here.sleep)
        visit = self.visits.get(state)
        if visit is not None and visit.sleep <= asleep:
            self.hit = visit.summary if visit.summary is not None else {}
            self._summary_races(visit.summary)
            self.end_run(None)
        if visit is not None:  # walked again for the options the first visit had asleep
            here.sub = dict(visit.summary or {})
            asleep &= visit.sleep
        self.visits[state] = Visit(asleep, None)
        here.state = state
        return visit is None

    def _summary_races(self, summary: dict[int, frozenset] | None) -> None:
        """The races between this path's steps and the steps of a cached state's subtree, as
        branches (por.py ``summary_choices``); None (a cycle: the state is on this path)
        branches every point of the path."""
        if summary is None:
            marks = [(i, None) for i in range(len(self.events))]
        else:
            pids, fps = [e[0] for e in self.events], [e[1] for e in self.events]
            marks = summary_races(pids, fps, summary, self._happens_before())
            marks = [(race.i, race) for race in marks]
        for i, race in marks:
            at = self.events[i][2]
            if at < 0:
                continue  # one task could run there (as in _races)
            point = self.path[at]
            have = point.backtrack | set(point.done)
            for c in point.options if race is None else summary_choices(point.options, have, race):
                if c not in point.backtrack and c not in point.done:
                    point.backtrack.add(c)
                    self.additions.append((at, c))

    def _abandon(self) -> None:
        """A point DPOR cannot walk: every process of the tree stops branching, the explorer
        walks again with state caching."""
        _LEN.pack_into(self.counter, _FLAGS, 1)
        self.stopped = ABANDONED
        self.end_run(None)

    def _close_transition(self, point: dict, here: Point) -> None:
        """The footprint of the transition that ends at this point (none before the first);
        at an inner point, which step goes on through it."""
        steps = self.footprint.take([self.mms, point["owners"]], point["timers"])
        self.mms = point["owners"]
        if self.path:
            self._add_steps(steps)
        # else: boot and init's start, before the first point, are no transition
        if here.inner:
            here.asker = steps[-1][0] if steps else point["pid"]
            last = self.events[-1] if self.events else None
            here.within = last[2] if last is not None and last[0] == here.asker else -1

    def _add_steps(self, steps: list[tuple[int, frozenset]]) -> None:
        """The steps from the last point: the chosen task's, then those of tasks that got the
        CPU with no choice (each the only one runnable). After an inner point the first is
        the step it was asked in, going on: an event of the task point that step began at,
        whose footprint grows by it (``_inner``)."""
        last = len(self.path) - 1
        before = self.path[-1]
        for n, (pid, fp) in enumerate(steps):
            if n == 0 and before.inner:
                if pid != before.asker:  # not the step it was asked in: no sound way on
                    self._abandon()
                self._inner(before, fp)
                self.events.append((pid, fp, before.within))
            else:
                self.events.append((pid, fp, last if n == 0 else -1))
        before.fp = steps[0][1]
        self._happens_before()  # here, so that the processes forked below inherit it

    def _happens_before(self) -> list[int]:
        """por.py's ``happens_before`` of the path, each event's found once (``self.hb``)."""
        return happens_before([e[0] for e in self.events], [e[1] for e in self.events], self.hb)

    def _inner(self, point: Point, fp: frozenset) -> None:
        """The step that began at the task point ``point.within`` went on after an inner
        point with ``fp``: that point's transition (its sleep sets' footprint) is the union."""
        if point.within >= 0:
            task_point = self.path[point.within]
            task_point.fp = task_point.fp | fp

    def _branch(self, depth: int, here: Point, kind: str) -> int:
        """Fork a child per option to explore but the last, which runs here. With dpor, the last
        runs here once no race below can add another (every awake option is in), or *lazily*
        near the origin (``_lazy``): an option a race adds later comes by replay (``_explore``)."""
        while True:
            todo = [p for p in here.options if p in here.backtrack and p not in here.done and p not in here.sleep]
            if not todo:
                break
            bound = self._bound_hit()
            if bound:
                self.stopped = self.stopped or bound
                break
            p = todo[0]
            if len(todo) == 1 and (not self.dpor or self._lazy(depth) or self._expanded(here)):
                if here.done:
                    self.fresh_from = depth
                here.lazy = self.dpor and not self._expanded(here)
                return self._go(here, p, kind)
            child = self._explore(depth, here, p, kind)
            if child is not None:
                return child
        self.end_node()
        raise AssertionError("end_node returns only in a child")  # pragma: no cover

    def _explore(self, depth: int, here: Point, pid: int, kind: str, replay: list[Passed] | None = None) -> int | None:
        """Option ``pid`` in a child (which first follows ``replay``); then, while the lazy points
        its subtree went through have options added and left, a replay to the deepest of them
        (DFS's order: it is in the subtree of those above); then ``pid`` is done here. The
        child's option index, in it."""
        index, report = self._fork(depth, here, pid, kind, replay or [])
        if index is not None:
            return index
        fp = report["fp"]
        while report["below"]:
            bound = self._bound_hit()
            if bound:
                self.stopped = self.stopped or bound
                break
            self.replays += 1
            self.replayed += len(report["below"])  # the steps run again: this point's, then each's on the way
            index, report = self._fork(depth, here, pid, kind, report["below"])
            if index is not None:
                return index
        here.done[pid] = fp
        if here.inner and self.dpor:  # that option's way on is the enclosing transition's too
            self._inner(here, fp)
        return None

    def _lazy(self, depth: int) -> bool:
        """dpor: whether a point here may run its option in this process though a race below
        may add another: when a replay to it (from the parent, waiting at the origin) would run
        few steps again (``LAZY_REACH``), and only below a parent (the tree's first has none)."""
        return self.up_fd is not None and depth - self.origin <= LAZY_REACH

    @staticmethod
    def _expanded(here: Point) -> bool:
        """dpor: every awake option is explored or to be: no run below can add one, so the
        last one may run in this process (a fork saved)."""
        return all(q in here.backtrack or q in here.done for q in here.options if q not in here.sleep)

    def _go(self, here: Point, pid: int, kind: str) -> int:
        here.pid = pid
        index = here.options.index(pid)
        self.taken.append(index)
        if self.footprint is not None and here.inner:  # the asking task's step goes on
            self.footprint.begin(here.asker)
            self.pending_sleep = dict(here.carried)
        elif self.footprint is not None:  # at an entry, option 0 is the task starting its next call
            self.footprint.begin(pid, resuming=not (kind == "entry" and index == 0))
            self.pending_sleep = dict(here.sleep) | dict(here.done)
        return index

    def _fork(self, depth: int, here: Point, pid: int, kind: str, replay: list[Passed]) -> tuple[int | None, dict]:
        """The child's option index (in the child), or the child's report in the parent once it
        ended. ``replay``: the points below this one the child follows first (``_follow``)."""
        r, w = os.pipe()
        waited = time.perf_counter()
        gc.freeze()  # what the child inherits is never walked again (the parent's pages stay shared)
        child = os.fork()
        if child == 0:
            os.close(r)
            if self.up_fd is not None:
                os.close(self.up_fd)
            self.up_fd, self.origin = w, depth
            if here.done:
                self.fresh_from = depth
            self.additions, self.new_seen, self.states = [], [], 0
            self.forks = self.replays = self.replayed = 0
            self.replay, self.replay_base = replay, depth + 1
            _own_epoll()
            _rearm_watchdog()
            return self._go(here, pid, kind), {}
        self.forks += 1
        os.close(w)
        data = _read_all(r)
        os.close(r)
        os.waitpid(child, 0)
        if not data:  # the child failed (its error went to the explorer): so does the subtree
            os._exit(1)
        report = pickle.loads(data)
        self.clock.paused += time.perf_counter() - waited
        for i, q in report["additions"]:
            self.path[i].backtrack.add(q)
            if i < depth:
                self.additions.append((i, q))
        if self.seen is not None:
            self.seen.update(report["seen"])
            self.new_seen.extend(report["seen"])
        if self.visits is not None:
            self._learn(here, report)
        return None, report

    def _bound_hit(self) -> str:
        if _LEN.unpack_from(self.counter, _FLAGS)[0]:
            return ABANDONED
        b = self.bounds
        if b.deadline is not None and time.perf_counter() >= b.deadline:
            return "--time-limit"
        if b.max_runs is not None and _LEN.unpack_from(self.counter)[0] >= b.max_runs:
            return f"--max-runs {b.max_runs}"
        return ""

    # --- ends ---------------------------------------------------------------------------
    def deadlocked(self) -> None:
        """api.py's call when a deadlock is found, before it kills every task: the run's last
        step ends here. The teardown (the kills, the exits, init's reaps) is no program's step:
        none of its races can be reversed (no kill comes before the deadlock), and it asks no
        choice (choice.py ``ask``), so its footprints join no race and no summary."""
        self._last_steps()
        self.torn_down = True

    def _last_steps(self) -> None:
        """The steps from the last point to the end of the run (or to its deadlock)."""
        if self.footprint is not None and self.path and not self.torn_down:
            self._add_steps(self.footprint.take([self.mms], False))

    def run_finished(self, result: Any) -> None:
        """run_async's call once the outcome is known (console output, exit status,
        check_invariants' leak check, all taken inside the run): the run ends here, without
        boot's teardown nor trio's (nothing of either is part of the outcome)."""
        self._last_steps()
        self.end_run(ending_of(result))

    def end_run(self, ending: dict | None) -> None:
        """A run ends here: its report to the explorer, dpor's races, then this process ends."""
        if self.footprint is not None:
            self._races()
        _LEN.pack_into(self.counter, 0, _LEN.unpack_from(self.counter)[0] + 1)
        self._report({"ending": ending, "schedule": list(self.taken)})
        self._leave()

    def end_node(self) -> None:
        """Every option of this process's point was explored (or a bound cut it)."""
        self._report({"ending": "node"})
        self._leave()

    def _report(self, message: dict) -> None:
        counts = {"states": self.states, "forks": self.forks, "replays": self.replays, "replayed": self.replayed}
        _send(self.report_fd, message | counts | {"stopped": self.stopped})
        self.states = 0

    def _leave(self) -> None:
        summary = self._summaries() if self.visits is not None else None
        if self.up_fd is not None:
            fp = self._origin_fp()
            up = {
                "fp": fp,
                "additions": [(i, q) for i, q in self.additions if i <= self.origin],
                "seen": self.new_seen,
                "summary": summary,
                "below": self._passed(),
            }
            _write_all(self.up_fd, pickle.dumps(up))
        os._exit(0)

    def _passed(self) -> list[Passed]:
        """dpor: the points below the origin this process went on from, down to the deepest lazy
        one with options added and left (its process is gone: the one waiting above replays)."""
        end = 0
        for d in range(self.origin + 1, len(self.taken)):
            point = self.path[d]
            if point.lazy and _left(point, point.pid):
                end = d + 1
        return [
            Passed(p.options, self.taken[d], p.backtrack, p.done, p.fp, p.state, p.lazy)
            for d, p in enumerate(self.path[self.origin + 1 : end], self.origin + 1)
        ]

    def _origin_fp(self) -> frozenset:
        """What this process's option touched, for its parent's sleep sets: at an inner point,
        the whole enclosing transition (it went on through more inner points, maybe)."""
        if not 0 <= self.origin < len(self.path):
            return frozenset()
        point = self.path[self.origin]
        return self.path[point.within].fp if point.inner and point.within >= 0 else point.fp

    def _summaries(self) -> dict[int, frozenset]:
        """stateful, as this process ends: the summary of each state at its own points (their
        subtrees are walked now) into ``visits`` (and its log); the summary below its origin."""
        acc = dict(self.hit)
        end = len(self.events)
        for d in range(len(self.path) - 1, max(self.origin, 0) - 1, -1):
            point = self.path[d]
            acc = prepend_summary(self.events[point.event : end], acc)
            merge_summary(acc, point.sub)
            end = point.event
            if d > self.origin and point.state is not None:
                self.visits.record(point.state, Visit(self.visits[point.state].sleep, dict(acc)))
        return acc

    def _learn(self, here: Point, report: dict) -> None:
        """stateful: a child's report: its summary joins this point's, the states its subtree
        learnt are known (the log has them: ``Visits``)."""
        merge_summary(here.sub, report["summary"])
        self.visits.catch_up()

    def _races(self) -> None:
        """source-DPOR: for each race of this run not seen by an earlier one, an option for
        the point where it starts, unless one that reverses it is there already."""
        pids = [e[0] for e in self.events]
        fps = [e[1] for e in self.events]
        start = self.path[self.fresh_from].event if self.fresh_from < len(self.path) else len(self.events)
        for i, initials in races(pids, fps, start, self._happens_before()):
            if self.events[i][2] < 0:
                continue  # one task could run there: the race is reversed at an earlier point, if anywhere
            i = self.events[i][2]
            point = self.path[i]
            for q in race_choices(point.options, point.backtrack | set(point.done), initials):
                point.backtrack.add(q)
                self.additions.append((i, q))


def _left(point: Point, pid: int) -> bool:
    """Whether options were added at ``point`` that are still to explore, ``pid``'s aside."""
    return any(
        q in point.backtrack and q not in point.done and q not in point.sleep and q != pid for q in point.options
    )


def _own_epoll() -> None:
    """Give a just-forked child an epoll instance of its own. The one it inherited is the
    parent's (one kernel object): trio's one-shot registrations re-armed or dropped by the
    child would be gone for the parent when it resumes, and its run would never wake."""
    from trio._core._run import GLOBAL_RUN_CONTEXT

    io = GLOBAL_RUN_CONTEXT.runner.io_manager
    old, new = io._epoll, select.epoll()
    new.register(io._force_wakeup.wakeup_sock, select.EPOLLIN)
    for fd, waiters in io._registered.items():
        if waiters.current_flags:
            new.register(fd, waiters.current_flags | select.EPOLLONESHOT)
    io._epoll = new
    old.close()


def _rearm_watchdog() -> None:
    """A forked child has no interval timer (fork does not copy it): the watchdog's again."""
    from ..kernel import watchdog

    watchdog.rearm()


def _send(fd: int, message: dict) -> None:
    data = pickle.dumps(message)
    _write_all(fd, _LEN.pack(len(data)) + data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def reports(fd: int) -> Iterator[dict]:
    """The tree's messages to the explorer, as they come, until the last process ended."""
    buffer = b""
    while chunk := os.read(fd, 1 << 16):
        buffer += chunk
        while len(buffer) >= _LEN.size:
            (n,) = _LEN.unpack_from(buffer)
            if len(buffer) < _LEN.size + n:
                break
            yield pickle.loads(buffer[_LEN.size : _LEN.size + n])
            buffer = buffer[_LEN.size + n :]


def walk_tree(
    program: str, argv: list[str] | None, settings: dict, mode: str, bounds: Bounds, take: Callable[[dict], None]
) -> None:
    """The whole tree, forked from this process (which runs no kernel itself: it reads the
    reports and hands each to ``take``)."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            _root(program, argv, settings, mode, bounds, w)
        except BaseException:  # a bug here, in whichever process of the tree: the explorer raises it
            _send(w, {"ending": "error", "text": traceback.format_exc(), "states": 0, "stopped": ""})
        finally:
            os._exit(1)
    os.close(w)
    try:
        for message in reports(r):
            take(message)
    finally:
        os.close(r)
        os.waitpid(child, 0)


def _root(program: str, argv: list[str] | None, settings: dict, mode: str, bounds: Bounds, report_fd: int) -> None:
    """The first process of the tree: one run, which forks wherever it branches."""
    from ..api import run_async

    clock = PausedClock()
    tree = Tree(mode, report_fd, bounds, clock)
    options = {"service_timeout": 0} | settings
    gc.disable()  # the tree's processes are short-lived: a collection would only copy pages (COW)
    gc.freeze()
    trio.run(partial(run_async, program, argv, schedule=tree, trace=False, **options), clock=clock)
    raise RuntimeError("explore: a run ended without its outcome (run_async calls run_finished)")
