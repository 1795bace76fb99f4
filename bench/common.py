"""What every benchmark shares: the programs timed, CPU timing of a whole run, interleaved
rounds, figures (ratios with min and median), the machine line, and a C baseline.

A figure is ``{"figure", "min", "median", "target", "unit"}``: per-round ratios against a
baseline measured in the same round (so a noisy machine moves both), ROUNDS rounds at
least. Each bench/*.py exposes ``figures(quick=False)``; bench/all.py prints them all.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import trio

import ukernel

ROUNDS = 5  # rounds of every figure, each measuring the figure and its baseline back to back
RUN_TIMEOUT = 600  # seconds one ukernel run may take before it counts as hung

# --- the programs timed (argv[1]: how many times) --------------------------------------------
GETPID = b"""
async def main(sys, argv):
    for _ in range(int(argv[1])):
        await sys.getpid()
    return 0
"""

FORK = b"""
async def main(sys, argv):
    for _ in range(int(argv[1])):
        pid = await sys.fork()
        if pid == 0:
            return 0
        await sys.waitpid(pid, 0)
    return 0
"""

FORK_HANDLED = b"""
from ukernel.abi import SIGCHLD

reaped = 0


async def on_chld(sys, sig):
    global reaped
    await sys.waitpid(-1, 0)
    reaped += 1


async def main(sys, argv):
    await sys.sigaction(SIGCHLD, on_chld)
    for i in range(int(argv[1])):
        pid = await sys.fork()
        if pid == 0:
            return 0
        while reaped <= i:
            try:
                await sys.pause()
            except InterruptedError:
                pass
    return 0
"""

CLONE = b"""
from ukernel.abi import SIGCHLD


def child(sys, arg):
    return 0


async def main(sys, argv):
    for _ in range(int(argv[1])):
        pid = await sys.clone(SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
    return 0
"""


def best(fn: Callable[[], float], repeats: int) -> float:
    """The least of a few timings: noise only ever adds time."""
    return min(fn() for _ in range(repeats))


# --- CPU time of a whole run, rounds, figures ----------------------------------------------------
def run_cpu(
    source: bytes,
    argv: list[str],
    problems: list[str],
    clock: Callable[[], float] = time.thread_time,
    **settings: object,
) -> float:
    """Thread CPU seconds of one run of ``source`` as /bin/bench in a kernel booted for it,
    boot and shutdown left out: the kernel and every service run in this thread. Not
    process_time: while the watchdog's ITIMER_PROF is armed this host's process clock
    moves only at the timer's ticks (bench/scale.py). ``clock=time.perf_counter`` for
    services in other processes, whose CPU this thread's clock does not see."""

    async def one() -> float:
        with trio.fail_after(RUN_TIMEOUT):
            async with ukernel.boot(files={"/bin/bench": source}, **settings) as kernel:
                started = clock()
                status = await kernel.run("/bin/bench", ["bench", *argv])
                elapsed = clock() - started
                if status != 0:
                    problems.append(f"bench {' '.join(argv)}: status {status:#x}")
                problems.extend(f"bench {' '.join(argv)}: {problem}" for problem in await kernel.check_invariants())
                return elapsed

    return trio.run(one)


def rounds(measures: dict[str, Callable[[], float]], count: int = ROUNDS) -> dict[str, list[float]]:
    """Each measure once per round, in the order given, ``count`` rounds (interleaved),
    after one round that is not counted."""
    for measure in measures.values():  # a round to warm up (imports, caches), not counted
        measure()
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(count):
        for name, measure in measures.items():
            samples[name].append(measure())
    return samples


def figure(name: str, ratios: list[float], target: str = "", unit: str = "x") -> dict:
    """One figure from its per-round values (ratios, unless ``unit`` says otherwise)."""
    return {"figure": name, "min": min(ratios), "median": statistics.median(ratios), "target": target, "unit": unit}


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Round by round: each value over its own round's baseline."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def met(fig: dict) -> str:
    """Whether the figure's median meets its target (``<= 1.5``, ``>= 0.4``): yes, NO, or -."""
    found = re.fullmatch(r"\s*(<=|>=)\s*([0-9.]+)\s*", fig["target"] or "")
    if found is None:
        return "-"
    bound = float(found.group(2))
    ok = fig["median"] <= bound if found.group(1) == "<=" else fig["median"] >= bound
    return "yes" if ok else "NO"


def print_figures(figs: list[dict], title: str = "") -> None:
    """The one table: figure | min | median | target | met?"""
    rows = [
        (f["figure"], f"{f['min']:.3f}{f['unit']}", f"{f['median']:.3f}{f['unit']}", f["target"] or "", met(f))
        for f in figs
    ]
    header = ("figure", "min", "median", "target", "met?")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    if title:
        print(title)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print(line)
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if 0 < i < 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    print(line)


def machine(extra: str = "") -> str:
    """One line that says what the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()} ({platform.python_implementation()}), {os.cpu_count()} cpus{model}, "
        f"{platform.system()} {platform.release()} {platform.machine()}, trio {trio.__version__}, "
        f"msgpack {'.'.join(map(str, msgpack.version))}{extra}, load {load}"
    )


@contextmanager
def c_program(source: str, name: str) -> Iterator[Callable[..., str] | None]:
    """Compile a C baseline with cc -O2; yields run(*args) -> stdout, or None without cc."""
    cc = shutil.which("cc")
    if cc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, f"{name}.c"), Path(tmp, name)
        src.write_text(source)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)

        def run(*args: object) -> str:
            return subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True).stdout

        yield run


def finish(started: float, problems: list[str]) -> int:
    """The closing lines: total time, then anything odd a ukernel run reported (exit 1)."""
    print(f"total {time.perf_counter() - started:.1f} s")
    if not problems:
        return 0
    print(f"ukernel problems ({len(problems)}):")
    for problem in dict.fromkeys(problems):
        print(f"  {problem}")
    return 1
