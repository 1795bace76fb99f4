"""Benchmark: do per-operation costs stay flat as the number of processes grows?

    .venv/bin/python bench/scale.py [--big] [--repeats R]

Prints three tables (issue 18's scaling targets), and ``figures()`` gives them to
``make bench`` as ratios (min and median of 5 or more):

1. per-fork CPU with N live blocked processes: one ukernel run (trace off)
   forks blocked children (each sleeps in read() on a pipe) up to N = 100,
   1,000 and 10,000 (32,000 with ``--big``), and at each N times 100
   clone(SIGCHLD, fn)+exit+waitpid, each by its CPU time (the whole kernel runs
   in this thread, so that is the kernel's CPU time for the clone), after 100
   untimed ones (the first clones of a process fill its caches).
   The median of the 100 is compared with the one at N = 100; as a figure, the
   100 are 5 blocks of 20 in order, and block i at N is divided by block i at 100.
2. worst alloc_pid at N live pids: a pid service object with N live pids packed
   right after RESERVED_PIDS and its cursor at pid_max - 1, so the next
   allocation wraps and has to pass all N of them (the worst case of a cyclic
   allocator). Rounds interleave every N, R rounds (at least 5); min and median
   in microseconds of CPU, and the median as a ratio to N = 100.
3. memory per live blocked process: tracemalloc traces the run; the program forks
   5 rounds of 200 blocked children (clone(fn), asleep in read() on a pipe), and
   after a full gc.collect() before and after each round, the traced memory it
   gained over 200 is one sample (KiB): everything a blocked process holds, the
   TaskStruct, its trio task and coroutine frames, its namespace copy and what
   every service keeps for it. tracemalloc counts Python's allocations, not pages.

CPU time is ``time.thread_time``, not ``process_time``: while the watchdog's
ITIMER_PROF is armed (every run), this host's process CPU clock only moves at
the timer's ticks (milliseconds), the thread clock keeps its microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import trio
from common import finish, machine

import ukernel
from services.pid import INIT_PID_NS, PidService
from ukernel import abi

CLONES = 100  # clones timed at each N
RUN_TIMEOUT = 3600  # seconds the whole scaling run may take
LIMIT = 40000  # threads-max and RLIMIT_NPROC for the run (a 64M kernel's own limit is 256)
MEMORY = "512M"  # the run's memory: 32,000 processes need more than 64M's 16,384 frames

#: argv: the Ns, ascending. Prints "N median_us" per N.
SCALE = b"""
import time

from ukernel.abi import SIGCHLD


async def blocked(sys, fds):
    r, w = fds
    await sys.close(w)
    await sys.read(r, 1)  # sleeps until the parent closes the write end
    return 0


def quick(sys, arg):
    return 0


async def main(sys, argv):
    r, w = await sys.pipe()
    live = 0
    for _ in range(CLONES):  # warm-up, untimed: the first clones of a process fill its caches
        await sys.waitpid(await sys.clone(SIGCHLD, quick, None), 0)
    for n in map(int, argv[1:]):
        while live < n:
            await sys.clone(SIGCHLD, blocked, (r, w))
            live += 1
        costs = []
        for _ in range(CLONES):
            started = time.thread_time()
            pid = await sys.clone(SIGCHLD, quick, None)
            await sys.waitpid(pid, 0)
            costs.append(time.thread_time() - started)
        await sys.write(1, (f"{n} " + " ".join(f"{c * 1e6:.1f}" for c in costs) + "\\n").encode())
    await sys.close(w)
    for _ in range(live):
        await sys.waitpid(-1, 0)
    return 0
""".replace(b"CLONES", str(CLONES).encode())


def fork_costs(ns: list[int]) -> dict[int, list[float]]:
    """CPU microseconds of each clone+exit+wait at each N live, in order, from one run."""

    async def one() -> ukernel.Result:
        with trio.fail_after(RUN_TIMEOUT):
            return await ukernel.run_async(
                "/bin/scale",
                ["scale", *map(str, ns)],
                trace=False,
                files={"/bin/scale": SCALE},
                max_threads=LIMIT,
                nproc=LIMIT,
                memory=MEMORY,
            )

    result = trio.run(one)
    if result.exit_code != 0 or result.problems:
        raise SystemExit(f"scale run: status {result.status:#x}, {result.problems}, {result.stdout[-400:]!r}")
    costs = {}
    for line in result.stdout.decode().splitlines():
        n, *us = line.split()
        costs[int(n)] = [float(u) for u in us]
    return costs


def block_ratios(costs: list[float], base: list[float], blocks: int = 5) -> list[float]:
    """Block i's median over the baseline's block i: the run's drift stays in each pair."""
    size = len(costs) // blocks
    return [
        statistics.median(costs[i * size : (i + 1) * size]) / statistics.median(base[i * size : (i + 1) * size])
        for i in range(blocks)
    ]


# --- memory per live blocked process ------------------------------------------------------------
MEMORY_ROUNDS, MEMORY_BATCH = 5, 200

MEMORY_PROGRAM = b"""
import gc
import tracemalloc

from ukernel.abi import SIGCHLD


async def blocked(sys, fds):
    await sys.close(fds[1])
    await sys.read(fds[0], 1)  # sleeps until the parent closes the write end
    return 0


def traced():
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def main(sys, argv):
    rounds, batch = int(argv[1]), int(argv[2])
    r, w = await sys.pipe()
    for _ in range(batch):  # the first children's one-off costs (a pipe's waiters list, the heap's growth)
        await sys.clone(SIGCHLD, blocked, (r, w))
    for _ in range(rounds):
        await sys.sched_yield()
        before = traced()
        for _ in range(batch):
            await sys.clone(SIGCHLD, blocked, (r, w))
        await sys.sched_yield()  # the last ones asleep too
        await sys.write(1, f"{(traced() - before) / batch / 1024:.3f}\\n".encode())
    await sys.close(w)
    for _ in range(batch * (rounds + 1)):
        await sys.waitpid(-1, 0)
    return 0
"""


def memory_per_process(rounds: int = MEMORY_ROUNDS, batch: int = MEMORY_BATCH) -> list[float]:
    """KiB that one more live blocked process holds, one sample per round (see the docstring)."""

    async def one() -> ukernel.Result:
        with trio.fail_after(RUN_TIMEOUT):
            return await ukernel.run_async(
                "/bin/memory",
                ["memory", str(rounds), str(batch)],
                trace=False,
                files={"/bin/memory": MEMORY_PROGRAM},
                max_threads=LIMIT,
                nproc=LIMIT,
                memory=MEMORY,
            )

    tracemalloc.start()
    try:
        result = trio.run(one)
    finally:
        tracemalloc.stop()
    if result.exit_code != 0 or result.problems:
        raise SystemExit(f"memory run: status {result.status:#x}, {result.problems}, {result.stdout[-400:]!r}")
    return [float(line) for line in result.stdout.decode().split()]


# --- worst alloc_pid ------------------------------------------------------------------------------
class WorstCase:
    """A pid service holding ``live`` pids at RESERVED_PIDS.. with its cursor at pid_max - 1."""

    def __init__(self, live: int):
        self.service = PidService()
        trio.run(self._fill, live)

    async def _fill(self, live: int) -> None:
        svc = self.service
        handles = [(await svc.alloc_pid(None, INIT_PID_NS))["pid"] for _ in range(1, svc.pid_max)]
        keep = range(abi.RESERVED_PIDS, abi.RESERVED_PIDS + live)
        for nr, handle in enumerate(handles, start=1):
            if nr not in keep:
                await svc.free_pid(None, handle)

    def once(self) -> float:
        """CPU seconds of one alloc_pid that wraps and passes every live pid; undone after."""
        return trio.run(self._once)

    async def _once(self) -> float:
        svc = self.service
        svc.namespaces[INIT_PID_NS].last = svc.pid_max - 1
        started = time.thread_time()
        got = await svc.alloc_pid(None, INIT_PID_NS)
        elapsed = time.thread_time() - started
        await svc.free_pid(None, got["pid"])
        return elapsed


def alloc_costs(ns: list[int], repeats: int) -> dict[int, list[float]]:
    cases = {n: WorstCase(n) for n in ns}
    samples: dict[int, list[float]] = {n: [] for n in ns}
    for _ in range(repeats):  # interleaved: every N in each round
        for n, case in cases.items():
            samples[n].append(case.once() * 1e6)
    return samples


def figures(quick: bool = False) -> list[dict]:
    """The scaling figures for ``make bench``: ratios to N = 100 in the same run, and the
    memory per blocked process (KiB). ``quick``: 2,000 live instead of 10,000."""
    far = 2000 if quick else 10000
    costs = fork_costs([100, far])
    forks = block_ratios(costs[far], costs[100])
    alloc = alloc_costs([100, 32000], 5)
    allocs = [big / small for big, small in zip(alloc[32000], alloc[100], strict=True)]
    memory = memory_per_process()
    return [
        _figure(f"per-fork CPU, {far:,} live / 100 live", forks, "<= 1.3x", "x"),
        _figure("worst alloc_pid, 32,000 live pids / 100", allocs, "<= 1.5x", "x"),
        _figure("memory per live blocked process", memory, "<= 12 KiB", "KiB"),
    ]


def _figure(name: str, samples: list[float], target: str, unit: str) -> dict:
    return {"figure": name, "min": min(samples), "median": statistics.median(samples), "target": target, "unit": unit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", action="store_true", help="also N = 32,000 (long: minutes of CPU)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of the alloc_pid figure (>= 5)")
    opts = parser.parse_args(argv)
    repeats = max(5, opts.repeats)
    ns = [100, 1000, 10000] + ([32000] if opts.big else [])
    wall = time.perf_counter()
    print(machine())

    alloc = alloc_costs([100, 1000, 10000, 32000], repeats)
    base = statistics.median(alloc[100])
    print(f"worst alloc_pid after a wrap past N live pids (CPU us, {repeats} interleaved rounds)")
    print(f"{'N live':>8}  {'min us':>9}  {'median us':>9}  {'median / N=100':>14}")
    for n, got in alloc.items():
        med = statistics.median(got)
        print(f"{n:>8}  {min(got):>9.1f}  {med:>9.1f}  {med / base:>13.2f}x")

    costs = fork_costs(ns)
    print(f"clone(fn)+exit+wait with N live blocked processes (CPU of {CLONES} in one run; ratios of 5 blocks)")
    print(f"{'N live':>8}  {'median us':>9}  {'min / N=100':>11}  {'median / N=100':>14}")
    for n, us in costs.items():
        ratios = block_ratios(us, costs[ns[0]])
        print(f"{n:>8}  {statistics.median(us):>9.1f}  {min(ratios):>10.2f}x  {statistics.median(ratios):>13.2f}x")

    memory = memory_per_process()
    print(f"memory per live blocked process (KiB traced, {MEMORY_ROUNDS} rounds of {MEMORY_BATCH}; target <= 12)")
    print(
        f"  min {min(memory):.2f}  median {statistics.median(memory):.2f}  all {' '.join(f'{m:.2f}' for m in memory)}"
    )
    return finish(wall, [])


if __name__ == "__main__":
    sys.exit(main())
