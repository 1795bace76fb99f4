"""Benchmark: what one fork costs as the parent's touched memory grows (1, 16, 100 MiB).

    .venv/bin/python bench/mm.py [--quick]

fork copies page tables, not pages (dup_mm write-protects every private PTE
and shares the frame), so its cost grows with the number of present pages
but no page data moves. Prints two tables and the figure:

1. time: a ukernel program mmaps N MiB, writes every page (in 1 MiB pokes),
   then makes ONE clone(SIGCHLD, fn) + exit + waitpid, or none. The fork's
   cost is (run with it) - (run without it), thread CPU time of the program's
   run (bench/common.py run_cpu), interleaved rounds, trace=False,
   memory=512M. Beside it: ``dup_mm`` alone and the child's ``mmput``
   (exit_mmap) alone, each one message to the mm service sent while the
   program is stopped (thread CPU time: the mm service runs in this thread),
   each round beside the baseline, a C program that mallocs N MiB, writes every
   page, then times one fork + _exit + waitpid (its own clock), compiled with
   ``cc -O2``.
2. counters: the same program in a live kernel, stopping itself (SIGSTOP)
   before the clone, in the child, and after the wait; at each stop the mm
   service's frame counts and the stopped process's mm_stat. Page data copied
   by the fork = (frames with the child alive - frames before - the child's
   page-table root) * PAGE_SIZE, and it must be 0.

The figure: dup_mm of the largest size / C's fork of it, per round (target: no
slower than C at 100 MiB).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing
from common import ROUNDS, c_program, figure, finish, machine, print_figures, ratios, rounds, run_cpu

import ukernel
from ukernel import abi

MEMORY = "512M"
RUN_TIMEOUT = 120  # seconds one ukernel run may take before it counts as hung
PAGE = abi.PAGE_SIZE

PROGRAM = b"""
from ukernel.abi import *

CHUNK = 1 << 20  # one poke writes 256 pages


async def stop(sys):
    await sys.kill(await sys.getpid(), SIGSTOP)


def child(sys, mode):
    return 0


async def child_stops(sys, mode):
    await stop(sys)
    return 0


async def main(sys, argv):
    size, mode = int(argv[1]) << 20, argv[2]
    buf = await sys.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    chunk = b"\\x01" * CHUNK
    for off in range(0, size, CHUNK):
        await sys.poke(buf + off, chunk[: size - off])
    if mode == "none":
        return 0
    if mode == "stops":
        await stop(sys)
    pid = await sys.clone(SIGCHLD, child_stops if mode == "stops" else child, mode)
    await sys.waitpid(pid, 0)
    if mode == "stops":
        await stop(sys)
    return 0
"""

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t size = (size_t)atol(argv[1]) << 20;
    int repeats = atoi(argv[2]);
    long page = sysconf(_SC_PAGESIZE);
    volatile char *buf = malloc(size);
    if (!buf) { perror("malloc"); return 1; }
    for (size_t i = 0; i < size; i += page) buf[i] = 1;
    double best = 1e9;
    for (int r = 0; r < repeats; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) { fprintf(stderr, "waitpid\n"); return 1; }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        if (secs < best) best = secs;
    }
    printf("%.1f\n", best * 1e6);
    return 0;
}
"""

PROBLEMS: list[str] = []


# --- 1. whole runs, with and without the fork -------------------------------------------------
def fork_cost(mib: int) -> tuple[list[float], list[float]]:
    """(runs without, runs with) the fork, in CPU seconds, interleaved rounds."""
    s = rounds(
        {
            mode: (lambda mode=mode: run_cpu(PROGRAM, [str(mib), mode], PROBLEMS, memory=MEMORY, trace=False))
            for mode in ("none", "fork")
        }
    )
    return s["none"], s["fork"]


# --- 2. a live kernel: counters at each stop, dup_mm and mmput timed alone ----------------------
async def _stops(mib: int, c_run: Callable[..., str] | None) -> dict:
    out: dict = {"stops": []}
    async with ukernel.boot(memory=MEMORY, trace=False, files={"/bin/mmbench": PROGRAM}) as k:
        status: list[int] = []

        async def go() -> None:
            status.append(await k.run("/bin/mmbench", ["mmbench", str(mib), "stops"]))

        with trio.fail_after(RUN_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(go)
                while True:
                    await trio.testing.wait_all_tasks_blocked(0.001)  # longer than the kernel's quiesce
                    if status:
                        break
                    stopped = [t for t in k.tasks if t.leader is t and t.stopped]
                    if not stopped:
                        raise RuntimeError("nothing runs, nothing is stopped, and the program has not exited")
                    for task in stopped:
                        counts = await k.call("mm", "accounting", {})
                        stat = await k.call("mm", "mm_stat", {"mm": task.mm})
                        out["stops"].append({"pid": task.pid, **counts, **stat})
                        if len(out["stops"]) == 1:  # the parent, before its clone: time the mm ops alone
                            out.update(await _time_dup_mm(k, task.mm, mib, c_run))
                        await k.kill(task, abi.SIGCONT)
        out["status"] = status[0]
        out["problems"] = await k.check_invariants()
    return out


async def _time_dup_mm(k, mm: int, mib: int, c_run: Callable[..., str] | None) -> dict[str, list[float]]:
    """Rounds of dup_mm and of the copy's mmput with nothing else running (thread CPU time),
    each round beside one C fork of the same memory (its own clock); a warm-up round first."""
    samples: dict[str, list[float]] = {"dup_mm": [], "mmput": [], "c": []}
    for round_ in range(ROUNDS + 1):
        gc.collect()
        t0 = time.thread_time()
        copy = (await k.call("mm", "dup_mm", {"mm": mm}))["mm"]
        t1 = time.thread_time()
        await k.call("mm", "mmput", {"mm": copy})
        t2 = time.thread_time()
        c = float(c_run(mib, 1)) / 1e6 if c_run is not None else None
        if round_:  # the first round warms up
            samples["dup_mm"].append(t1 - t0)
            samples["mmput"].append(t2 - t1)
            if c is not None:
                samples["c"].append(c)
    return samples


def counters(mib: int, c_run: Callable[..., str] | None) -> dict:
    out = trio.run(_stops, mib, c_run)
    if out["status"] != 0 or len(out["stops"]) != 3:
        PROBLEMS.append(f"{mib} MiB stops: status {out['status']:#x}, {len(out['stops'])} stops (want 3)")
    PROBLEMS.extend(f"{mib} MiB stops: {p}" for p in out["problems"])
    return out


# --- the tables -----------------------------------------------------------------------------
def transparent_hugepages() -> str:
    try:
        return Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return "?"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print(line)
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print(line)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def measure(sizes: list[int]) -> tuple[dict, dict]:
    """The whole-run fork costs and the live-kernel stops (with the C baseline) per size."""
    with c_program(C_SOURCE, "cforkmem") as c_run:
        timing = {mib: fork_cost(mib) for mib in sizes}
        stops = {mib: counters(mib, c_run) for mib in sizes}
    return timing, stops


def figures(quick: bool = False) -> list[dict]:
    """dup_mm of the largest size (100 MiB; 16 with ``quick``) / C's fork of it."""
    mib = 16 if quick else 100
    with c_program(C_SOURCE, "cforkmem") as c_run:
        if c_run is None:
            return []
        stops = counters(mib, c_run)
    return [_figure(mib, stops)]


def _figure(mib: int, stops: dict) -> dict:
    target = "<= 1" if mib == 100 else ""
    return figure(
        f"dup_mm of {mib} MiB touched / C fork+_exit+waitpid of it", ratios(stops["dup_mm"], stops["c"]), target
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 16 MiB only (a few seconds)")
    opts = parser.parse_args(argv)
    sizes = [1, 16] if opts.quick else [1, 16, 100]

    wall = time.perf_counter()
    print(machine(f", THP {transparent_hugepages()}"))
    print(f"medians of {ROUNDS} interleaved rounds; sizes {', '.join(f'{s} MiB' for s in sizes)}; memory={MEMORY}")
    timing, stops = measure(sizes)

    rows = []
    med = statistics.median
    for mib in sizes:
        without, with_ = timing[mib]
        cost = med([b - a for a, b in zip(without, with_, strict=True)])
        dup, put, c_samples = stops[mib]["dup_mm"], stops[mib]["mmput"], stops[mib]["c"]
        c = med(c_samples) if c_samples else None
        rows.append(
            (
                f"{mib} MiB",
                ms(med(without)),
                ms(med(with_)),
                ms(cost),
                ms(med(dup)),
                ms(med(put)),
                ms(c) if c else "(no cc)",
                f"{cost / c:.1f}x" if c else "",
                f"{med(dup) / c:.1f}x" if c else "",
            )
        )
    print("\ntime (ukernel: thread CPU of the program's run; C: its own clock)")
    table(
        (
            "touched",
            "run w/o fork",
            "run with fork",
            "one clone+exit+wait",
            "dup_mm alone",
            "mmput alone",
            "C fork+_exit+wait",
            "clone / C",
            "dup_mm / C",
        ),
        rows,
    )

    rows = []
    for mib in sizes:
        before, child, after = (stops[mib]["stops"] + [{}] * 3)[:3]
        if not after:
            continue
        copied = (child["frames"] - before["frames"] - 1) * PAGE  # the 1: the child's page-table root
        rows.append(
            (
                f"{mib} MiB",
                str(before["rss"]),
                f"{before['frames']} / {child['frames']} / {after['frames']}",
                f"{before['frame_refs']} / {child['frame_refs']} / {after['frame_refs']}",
                f"{before['cow']} / {child['cow']} / {after['cow']}",
                str(copied),
            )
        )
    print("\nmm counters at the three stops: parent before clone / child alive / parent after wait")
    table(("touched", "parent rss", "frames in use", "frame refs", "cow breaks", "page bytes copied by fork"), rows)
    if stops[sizes[-1]]["c"]:
        print_figures([_figure(sizes[-1], stops[sizes[-1]])], "\nfigure")
    return finish(wall, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
