"""Start-up (issue 18 item 7): CPU time of ``ukernel run hello`` against ``python -c "import trio"``.

    .venv/bin/python bench/startup.py [--quick]

Each pair is measured back to back (interleaved), as children's user+system CPU time, so a
noisy machine moves both; the figure is the per-round ratio, min and median.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from common import figure, finish, machine, print_figures, ratios, rounds


def cpu(command: list[str]) -> float:
    """User + system CPU seconds that one run of ``command`` took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def figures(quick: bool = False) -> list[dict]:
    """``ukernel run hello`` / ``python -c 'import trio'``, CPU time."""
    s = rounds(
        {
            "trio": lambda: cpu([sys.executable, "-c", "import trio"]),
            "ukernel": lambda: cpu([sys.executable, "-m", "ukernel", "run", "hello"]),
        },
        5 if quick else 7,
    )
    return [figure("ukernel run hello / python -c 'import trio', CPU", ratios(s["ukernel"], s["trio"]), "<= 4")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, not 7")
    opts = parser.parse_args(argv)
    wall = time.perf_counter()
    print(machine())
    print_figures(figures(opts.quick), "start-up (children's CPU time, interleaved rounds)")
    return finish(wall, [])


if __name__ == "__main__":
    sys.exit(main())
