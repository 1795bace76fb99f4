"""What one explored run ended in, and the grouping of many: the ``Exploration``.

A complete run's outcome is its console output and exit status (and, when a
program's ``assert`` failed, "assertion failed at FILE:LINE"); a run where
every task sleeps and nothing can wake one is a deadlock, kept with its
wait-for graph (who waits for which pipe end, futex, child); a run that left
something behind (check_invariants) is an invariant violation. Each group
keeps a count and the first choice list that reached it, which replays it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import abi

_FRAME = re.compile(r'^  File "([^"]+)", line (\d+)', re.M)


def assertion_site(text: str) -> str | None:
    """'assertion failed at /bin/x:12' when ``text`` holds an AssertionError's traceback."""
    at = text.rfind("AssertionError")
    start = text.rfind("Traceback (most recent call last):", 0, at)
    if at < 0 or start < 0:
        return None
    frames = _FRAME.findall(text, start, at)
    return f"assertion failed at {frames[-1][0]}:{frames[-1][1]}" if frames else "assertion failed"


def exit_status(status: int) -> int:
    """The shell's $?: the exit code, or 128 + the signal that killed the program."""
    return abi.WEXITSTATUS(status) if abi.WIFEXITED(status) else 128 + abi.WTERMSIG(status)


@dataclass
class Group:
    """Runs that ended alike: how many, and one choice list that replays the ending."""

    key: Any
    count: int
    schedule: list[int]


@dataclass
class Exploration:
    """The result of ``ukernel.explore``; ``as_json`` is the ``--json`` schema of issue 17."""

    program: str
    argv: list[str]
    complete: bool = False  # every outcome was seen (bounded only by reduction and caching)
    runs: int = 0
    states: int = 0  # distinct states met at choice points
    forks: int = 0  # the fork tree's (checkpoint.py): processes forked at choice points
    replays: int = 0  # of those, the ones that first replayed a path to a lazy point
    replayed: int = 0  # the steps those replays ran again
    outcomes: list[dict] = field(default_factory=list)  # stdout, exit_status, count, schedule (+ assertion)
    deadlocks: list[dict] = field(default_factory=list)  # schedule, waits, count
    violations: list[dict] = field(default_factory=list)  # schedule, problems, count
    why_incomplete: str = ""  # the bound that stopped the search, if one did
    method: str = ""  # how the tree was walked: dpor, state caching, every path (search.py)
    seconds: float = 0.0
    graph: dict | None = field(default=None, repr=False)  # with explore(graph=FILE): its nodes and edges (graph.py)

    def as_json(self) -> dict:
        return {
            "program": self.program,
            "argv": self.argv,
            "complete": self.complete,
            "runs": self.runs,
            "states": self.states,
            "outcomes": self.outcomes,
            "deadlocks": self.deadlocks,
            "violations": self.violations,
        }

    def stdouts(self) -> set[str]:
        return {o["stdout"] for o in self.outcomes}


class Tally:
    """The groups as runs come in (dicts keep the order they were first met)."""

    def __init__(self) -> None:
        self.outcomes: dict[Any, Group] = {}
        self.deadlocks: dict[Any, Group] = {}
        self.violations: dict[Any, Group] = {}
        self.details: dict[Any, Any] = {}

    def add(self, ending: dict, schedule: list[int], count: int = 1) -> None:
        """One run's ending (``ending`` from ``ending_of``) under the schedule that reached it."""
        kind = ending["kind"]
        table = {"outcome": self.outcomes, "deadlock": self.deadlocks, "violation": self.violations}[kind]
        key = (kind, _freeze(ending["key"]))
        group = table.get(key)
        if group is None:
            table[key] = Group(key, count, list(schedule))
            self.details[key] = ending
        else:
            group.count += count

    def fill(self, exploration: Exploration) -> None:
        exploration.outcomes = [self._row(g, ("stdout", "exit_status", "assertion")) for g in self.outcomes.values()]
        exploration.deadlocks = [self._row(g, ("waits",)) for g in self.deadlocks.values()]
        exploration.violations = [self._row(g, ("problems", "stdout")) for g in self.violations.values()]

    def _row(self, group: Group, fields: tuple[str, ...]) -> dict:
        ending = self.details[group.key]
        row = {f: ending[f] for f in fields if ending.get(f) is not None}
        return row | {"count": group.count, "schedule": group.schedule}


def ending_of(result: Any) -> dict:
    """A finished run (a ukernel Result) as an ending: outcome, deadlock or violation."""
    stdout = result.stdout.decode("utf-8", "replace")
    if result.hung:
        waits = [_wait(row) for row in result.hung if row["comm"] != "init" or row["wchan"]]
        return {"kind": "deadlock", "key": waits, "waits": waits}
    problems = [p for p in result.problems]
    if result.error and not result.hung:
        problems.append(result.error)
    if problems:
        return {"kind": "violation", "key": (problems, stdout), "problems": problems, "stdout": stdout}
    status = exit_status(result.status)
    assertion = assertion_site(stdout)
    return {
        "kind": "outcome",
        "key": (stdout, status),
        "stdout": stdout,
        "exit_status": status,
        "assertion": assertion,
    }


def _wait(row: dict) -> dict:
    """One edge of the wait-for graph: a task, the syscall it sleeps in, what it waits for."""
    return {
        "pid": row["pid"],
        "comm": row["comm"],
        "state": row["state"],
        "syscall": row["syscall"],
        "waits_for": row["wchan"],
    }


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value
