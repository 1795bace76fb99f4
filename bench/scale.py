"""Benchmark: do per-operation costs stay flat as the number of processes grows?

    .venv/bin/python bench/scale.py [--big] [--repeats R]

Prints two tables of ratios (issue 18's scaling targets):

1. per-fork CPU with N live blocked processes: one ukernel run (trace off)
   forks blocked children (each sleeps in read() on a pipe) up to N = 100,
   1,000 and 10,000 (32,000 with ``--big``), and at each N times 100
   clone(SIGCHLD, fn)+exit+waitpid, each by its CPU time (the whole kernel runs
   in this thread, so that is the kernel's CPU time for the clone).
   The median of the 100 is compared with the one at N = 100.
2. worst alloc_pid at N live pids: a pid service object with N live pids packed
   right after RESERVED_PIDS and its cursor at pid_max - 1, so the next
   allocation wraps and has to pass all N of them (the worst case of a cyclic
   allocator). Rounds interleave every N, R rounds (at least 5); min and median
   in microseconds of CPU, and the median as a ratio to N = 100.

CPU time is ``time.thread_time``, not ``process_time``: while the watchdog's
ITIMER_PROF is armed (every run), this host's process CPU clock only moves at
the timer's ticks (milliseconds), the thread clock keeps its microseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import trio
from common import finish, machine

import ukernel
from services.pid import INIT_PID_NS, PidService
from ukernel import abi

CLONES = 100  # clones timed at each N
RUN_TIMEOUT = 3600  # seconds the whole scaling run may take
LIMIT = 40000  # threads-max and RLIMIT_NPROC for the run (a 64M kernel's own limit is 256)

#: argv: the Ns, ascending. Prints "N median_us" per N.
SCALE = b"""
import statistics
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
        await sys.write(1, f"{n} {statistics.median(costs) * 1e6:.1f}\\n".encode())
    await sys.close(w)
    for _ in range(live):
        await sys.waitpid(-1, 0)
    return 0
""".replace(b"CLONES", str(CLONES).encode())


def fork_costs(ns: list[int]) -> dict[int, float]:
    """Median CPU microseconds of one clone+exit+wait at each N live, from one run."""

    async def one() -> ukernel.Result:
        with trio.fail_after(RUN_TIMEOUT):
            return await ukernel.run_async(
                "/bin/scale",
                ["scale", *map(str, ns)],
                trace=False,
                files={"/bin/scale": SCALE},
                max_threads=LIMIT,
                nproc=LIMIT,
            )

    result = trio.run(one)
    if result.exit_code != 0 or result.problems:
        raise SystemExit(f"scale run: status {result.status:#x}, {result.problems}, {result.stdout[-400:]!r}")
    costs = {}
    for line in result.stdout.decode().splitlines():
        n, us = line.split()
        costs[int(n)] = float(us)
    return costs


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
    print(f"clone(fn)+exit+wait with N live blocked processes (median CPU of {CLONES}, one run)")
    print(f"{'N live':>8}  {'median us':>9}  {'/ N=100':>8}")
    for n, us in costs.items():
        print(f"{n:>8}  {us:>9.1f}  {us / costs[ns[0]]:>7.2f}x")
    return finish(wall, [])


if __name__ == "__main__":
    sys.exit(main())
