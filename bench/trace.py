"""Benchmark: what tracing costs a run, as ratios to the same run with tracing off.

    .venv/bin/python bench/trace.py [--quick]

The run is the message-heaviest loop there is, clone(SIGCHLD, fn)+exit+waitpid (about 50
trace events per iteration). Each round runs it with trace=False, with the in-memory
trace (what ``ukernel.run(...).trace`` returns), and as ``ukernel run -v`` runs it: the
in-memory trace and the console sink writing coloured lines to /dev/null (line-buffered,
as stderr is); back to back, thread CPU time of the program's run (bench/common.py run_cpu).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from common import CLONE, figure, finish, machine, print_figures, ratios, rounds, run_cpu

import services
from ukernel.trace import ConsoleSink

ROUNDS = 9  # more than common's 5: a tracing ratio is a few percent, the machine's noise is more
PROBLEMS: list[str] = []


def figures(quick: bool = False) -> list[dict]:
    """In-memory trace / trace off, and -v / trace off."""
    n = str(100 if quick else 200)
    with open(os.devnull, "w", buffering=1) as devnull:
        console = ConsoleSink(devnull, colours=services.colours(), colour=True)
        s = rounds(
            {
                "off": lambda: run_cpu(CLONE, [n], PROBLEMS, trace=False),
                "memory": lambda: run_cpu(CLONE, [n], PROBLEMS, trace=True),
                "console": lambda: run_cpu(CLONE, [n], PROBLEMS, trace=True, sinks=(console,)),
            },
            ROUNDS,
        )
    return [
        figure("in-memory trace / trace off", ratios(s["memory"], s["off"]), "<= 1.15"),
        figure("-v (console lines) / trace off", ratios(s["console"], s["off"]), "<= 1.5"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a loop of 100, not 200")
    opts = parser.parse_args(argv)
    wall = time.perf_counter()
    print(machine())
    print_figures(figures(opts.quick), "tracing (thread CPU time, interleaved rounds)")
    return finish(wall, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
