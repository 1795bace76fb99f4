"""Every benchmark's figures as one table of ratios: ``make bench``.

    .venv/bin/python bench/all.py [--quick] [--only NAME ...]

Imports each bench/*.py that has ``figures(quick=False)`` (bench/common.py says what a
figure is), runs them one after another, and prints one table: figure | min | median |
target | met? (the median against the target). A script that fails is named with its
error and the others still run; the exit status is 1 then, or when a run reported a
problem.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from common import finish, machine, print_figures

HERE = Path(__file__).resolve().parent
NOT_BENCHES = {"all", "common"}


def scripts() -> list[str]:
    """The bench modules that have figures(), by name."""
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHES)
    return [name for name in names if callable(getattr(importlib.import_module(name), "figures", None))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each script's quick figures")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these scripts (fork, trace, ...)")
    opts = parser.parse_args(argv)
    wall = time.perf_counter()
    names = scripts()
    unknown = sorted(set(opts.only or ()) - set(names))
    if unknown:
        print(f"bench: no script with figures(): {', '.join(unknown)} (there are: {', '.join(names)})", file=sys.stderr)
        return 2
    print(machine())
    rows, problems = [], []
    for name in opts.only or names:
        started = time.perf_counter()
        module = importlib.import_module(name)
        try:
            figs = module.figures(quick=opts.quick)
        except Exception as exc:  # one script's failure is a line; the others still run
            problems.append(f"{name}.py: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            continue
        rows += [dict(f, figure=f"{name}: {f['figure']}") for f in figs]
        problems += getattr(module, "PROBLEMS", [])
        print(f"  {name}.py: {len(figs)} figures in {time.perf_counter() - started:.0f} s", flush=True)
    print_figures(rows, "\nall figures (ratios in one run, interleaved with their baselines)")
    return finish(wall, problems)


if __name__ == "__main__":
    sys.exit(main())
