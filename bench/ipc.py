"""Benchmark: the local fast path (issue 18, item 1), as ratios against their baselines.

    .venv/bin/python bench/ipc.py [--quick] [--rounds R]

Three figures, each measured in rounds that interleave it with its baseline
(and with the same run on the inbox path, LocalEndpoint.fastpath off: the
"before"), min and median of the rounds' ratios:

1. router call / (an awaited call + msgpack encode and decode both ways): one
   ``Router.call`` to an idle local service (tracing off), against what no
   message system can go below: the request encoded and decoded, the handler
   awaited, the reply encoded and decoded. CPU time (``time.thread_time``).
2. clone(fn)+exit+wait / C fork+_exit+waitpid: the C loop's wall time per fork
   (bench/fork.py's program) over ukernel's CPU time per clone, timed inside the
   program (the whole kernel runs in that thread), tracing off. Higher is better.
3. fork()+exit+wait at N=100 in a loop / C: the same with fork(), whose children
   replay the parent's journal (child i replays 2*i entries).

CPU time is ``thread_time``: while the watchdog's ITIMER_PROF is armed (every
run), this host's process CPU clock only moves at the timer's ticks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgpack
import trio
from common import c_program, finish, machine
from fork import C_SOURCE

import ukernel
from ukernel.ipc.local import LocalEndpoint, open_local
from ukernel.ipc.router import Router
from ukernel.ipc.service import Call, Service, op
from ukernel.trace import Tracer

PROBLEMS: list[str] = []

CLONE_TIMED = b"""
import time

from ukernel.abi import SIGCHLD


def child(sys, arg):
    return 0


async def main(sys, argv):
    n = int(argv[1])
    started = time.thread_time()
    for _ in range(n):
        pid = await sys.clone(SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
    await sys.write(1, b"%.9f\\n" % ((time.thread_time() - started) / n))
    return 0
"""

FORK_TIMED = b"""
import time


async def main(sys, argv):
    n = int(argv[1])
    started = time.thread_time()
    for _ in range(n):
        pid = await sys.fork()
        if pid == 0:
            return 0
        await sys.waitpid(pid, 0)
    await sys.write(1, b"%.9f\\n" % ((time.thread_time() - started) / n))
    return 0
"""


# --- 1. one router call against its floor -------------------------------------------------------
class Echo(Service):
    """A service whose one op answers its argument: the handler costs nothing of its own."""

    name = "echo"

    @op
    async def echo(self, req: Call, task: int) -> int:
        return task


async def _floor_handler(task: int) -> int:
    return task


META = {"pid": 2, "tid": 2, "syscall": "getpid", "cause": 7}


async def _floor(n: int) -> float:
    """CPU seconds per awaited call with the request and the reply through msgpack."""
    packb, unpackb = msgpack.packb, msgpack.unpackb
    started = time.thread_time()
    for i in range(n):
        request = unpackb(packb([0, i, "echo.echo", [{"task": i}, META]], use_bin_type=True), strict_map_key=False)
        result = await _floor_handler(**request[3][0])
        reply = unpackb(packb([1, i, None, result], use_bin_type=True), strict_map_key=False)
        assert reply[3] == i
    return (time.thread_time() - started) / n


async def _router(router: Router, n: int) -> float:
    started = time.thread_time()
    for i in range(n):
        assert await router.call("kernel", "echo", "echo", {"task": i}, META) == i
    return (time.thread_time() - started) / n


@contextmanager
def fastpath(on: bool) -> Iterator[None]:
    was = LocalEndpoint.fastpath
    LocalEndpoint.fastpath = on
    try:
        yield
    finally:
        LocalEndpoint.fastpath = was


async def _router_rounds(rounds: int, n: int) -> list[tuple[float, float, float]]:
    """(floor, fast path, inbox path) seconds per call, per round, interleaved."""
    tracer = Tracer()
    tracer.on = False
    router, echo = Router(tracer), Echo()
    endpoint, inbox = open_local(echo)
    echo.router = router
    router.attach(echo.name, endpoint, echo.calls)
    out = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo.serve, inbox)
        await _router(router, n // 10)  # warm up
        for _ in range(rounds):
            floor = await _floor(n)
            with fastpath(True):
                fast = await _router(router, n)
            with fastpath(False):
                slow = await _router(router, n)
            out.append((floor, fast, slow))
        nursery.cancel_scope.cancel()
    return out


# --- 2./3. process loops against C ------------------------------------------------------------
def ukernel_seconds(source: bytes, n: int) -> float:
    """CPU seconds per iteration, as the program timed them (tracing off)."""
    result = ukernel.run("/bin/bench", ["bench", str(n)], trace=False, files={"/bin/bench": source})
    if result.exit_code != 0 or result.problems:
        PROBLEMS.append(f"bench {n}: status {result.status:#x}, {result.problems}, {result.stdout[-300:]!r}")
        return float("nan")
    return float(result.stdout.split()[-1])


def loop_rounds(c_run: Callable[..., str], source: bytes, n: int, n_c: int, rounds: int) -> list[tuple[float, ...]]:
    """(C seconds per fork, fast path, inbox path) per round, interleaved."""
    out = []
    for _ in range(rounds):
        c = float(c_run(n_c))  # seconds per fork (fork.py's C loop prints that)
        with fastpath(True):
            fast = ukernel_seconds(source, n)
        with fastpath(False):
            slow = ukernel_seconds(source, n)
        out.append((c, fast, slow))
    return out


# --- the figures ------------------------------------------------------------------------------
def _figure(name: str, ratios: list[float], target: str) -> dict:
    return {"figure": name, "min": min(ratios), "median": statistics.median(ratios), "target": target, "unit": "x"}


def figures(quick: bool = False, rounds: int = 5) -> list[dict]:
    """bench/'s protocol: ratios against baselines measured in the same run, min and median."""
    n_call, n_clone, n_c = (5000, 100, 1000) if quick else (20000, 300, 2000)
    calls = trio.run(_router_rounds, rounds, n_call)
    figs = [
        _figure("router call / (awaited call + msgpack both ways)", [f / b for b, f, _ in calls], "<= 1.5"),
        _figure("router call / its floor, inbox path (before the fast path)", [s / b for b, _, s in calls], ""),
    ]
    with c_program(C_SOURCE, "cfork") as c_run:
        if c_run is None:
            PROBLEMS.append("no cc: the C fork loop is not measured")
            return figs
        clones = loop_rounds(c_run, CLONE_TIMED, n_clone, n_c, rounds)
        forks = loop_rounds(c_run, FORK_TIMED, 100, n_c, rounds)
    figs += [
        _figure("clone(fn)+exit+wait / C fork+_exit+waitpid", [c / f for c, f, _ in clones], ">= 0.4"),
        _figure("clone(fn) loop / C, inbox path (before the fast path)", [c / s for c, _, s in clones], ""),
        _figure("fork()+exit+wait, N=100 in a loop / C", [c / f for c, f, _ in forks], ">= 0.35"),
        _figure("fork() loop N=100 / C, inbox path (before the fast path)", [c / s for c, _, s in forks], ""),
    ]
    return figs


def _verdict(fig: dict) -> str:
    target = fig["target"]
    if not target:
        return ""
    bound = float(target.split()[1])
    ok = fig["median"] <= bound if target.startswith("<=") else fig["median"] >= bound
    return f"{target} {'ok' if ok else 'MISSED'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and clones (a few seconds)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (at least 5)")
    opts = parser.parse_args(argv)
    wall = time.perf_counter()
    print(machine())
    rounds = max(opts.rounds, 5)
    figs = figures(opts.quick, rounds)
    print(f"ratios, {rounds} interleaved rounds each; tracing off; CPU time (C: wall time)")
    width = max(len(f["figure"]) for f in figs)
    print(f"{'figure':<{width}}  {'min':>7}  {'median':>7}  target")
    for fig in figs:
        print(f"{fig['figure']:<{width}}  {fig['min']:7.2f}  {fig['median']:7.2f}  {_verdict(fig)}")
    return finish(wall, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
