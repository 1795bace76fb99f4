"""The fork tree's lazy points against the eager tree (issue 17): CPU time of whole searches.

    .venv/bin/python bench/explore_lazy.py [--quick]

Each round explores each program twice, back to back: with checkpoint.LAZY_REACH 0 (the
eager tree: every point with two awake options forks for its first one) and with the
default (a point near its process's origin runs its option in its own process; an option a
race adds there later comes by replay). The figure is the default's CPU time (user+sys of
the whole tree: this process's waited-for children) over the eager tree's in the same
round, min and median of the rounds (below 1x: cheaper). Both must find the same runs,
states and outcomes; a difference is a problem (exit status 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

from common import figure, finish, machine, print_figures, ratios, rounds

import ukernel
from ukernel.explore import checkpoint

#: (figure's name, program, argv, settings): searches of a few seconds that complete (or
#: stop at the same run: the tree is walked in one order)
PROGRAMS = [
    ("parinc 2 2", "parinc", ["parinc", "2", "2"], {}),
    ("condvar 1 1", "condvar", ["condvar", "1", "1"], {}),
    ("forkbuf 2, 150 runs", "forkbuf", ["forkbuf", "2"], {"max_runs": 150}),
]
DEFAULT_REACH = checkpoint.LAZY_REACH
PROBLEMS: list[str] = []


def found(result: ukernel.Exploration) -> tuple:
    """What a search found and how far it went: runs, states, complete, outcomes, deadlocks."""
    outcomes = sorted((o["stdout"], o["exit_status"]) for o in result.outcomes)
    deadlocks = sorted(repr(d["waits"]) for d in result.deadlocks)
    return result.runs, result.states, result.complete, outcomes, deadlocks


def search(program: str, argv: list[str], settings: dict, reach: int, seen: dict) -> float:
    """One search's CPU seconds (the tree's processes are this one's children, waited for)."""
    checkpoint.LAZY_REACH = reach  # the tree forks from this process: it reads this
    before = os.times()
    result = ukernel.explore(program, argv, **settings)
    after = os.times()
    checkpoint.LAZY_REACH = DEFAULT_REACH
    known = seen.setdefault(" ".join(argv), found(result))
    if found(result) != known:
        PROBLEMS.append(f"{' '.join(argv)}: LAZY_REACH {reach} found {found(result)[:3]}, not {known[:3]}")
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def figures(quick: bool = False) -> list[dict]:
    """The default's CPU over the eager tree's, per program (quick: parinc 2 2 only)."""
    out, seen = [], {}
    for name, program, argv, settings in PROGRAMS[:1] if quick else PROGRAMS:
        one = partial(search, program, argv, settings, seen=seen)
        samples = rounds({"eager": partial(one, 0), "lazy": partial(one, DEFAULT_REACH)})
        ratio = ratios(samples["lazy"], samples["eager"])
        out.append(figure(f"explore {name}: lazy points' CPU / the eager tree's", ratio, "<= 1.0"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="parinc 2 2 only")
    ns = parser.parse_args()
    started = time.perf_counter()
    figs = figures(ns.quick)
    print_figures(figs, machine())
    return finish(started, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
