"""Benchmark: the local fast path (issue 18, item 1), as ratios against their baselines.

    .venv/bin/python bench/ipc.py [--quick] [--rounds R]

Three figures, each measured in rounds that interleave it with its baseline, min and
median of the rounds' ratios:

1. router call / (an awaited call + msgpack encode and decode both ways): one
   ``Router.call`` to an idle local service (tracing off), against what no
   message system can go below: the request encoded and decoded, the handler
   awaited, the reply encoded and decoded. CPU time (``time.thread_time``).
   Beside it, the same call on the inbox path (LocalEndpoint.fastpath off: the
   "before") over the same floor.
2. the clone(fn)+exit+wait loop on the inbox path / on the fast path: how much the
   fast path saves on a fork path's ~20 messages (CPU per iteration, timed inside
   the program by bench/fork.py's CLONE_TIMED, trace off). Higher is better.
3. the same for the fork()+exit+wait loop of 100 (FORK_TIMED).

The loops' ratios **to C** are bench/fork.py's (one benchmark owns each figure, so
``make bench`` has one answer per figure); this script compares ukernel with
itself.

CPU time is ``thread_time``: while the watchdog's ITIMER_PROF is armed (every
run), this host's process CPU clock only moves at the timer's ticks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgpack
import trio
from common import finish, machine
from fork import CLONE_TIMED, FORK_TIMED, PROBLEMS, timed  # (their problems are this run's too)

from ukernel.ipc.local import LocalEndpoint, open_local
from ukernel.ipc.router import Router
from ukernel.ipc.service import Call, Service, op
from ukernel.trace import Tracer


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


# --- 2./3. process loops, fast path against the inbox path ------------------------------------
def loop_rounds(source: bytes, n: int, rounds: int) -> list[tuple[float, float]]:
    """(fast path, inbox path) CPU seconds per iteration, per round, interleaved, after one
    run that is not counted (imports, caches)."""
    timed(source, n)
    out = []
    for _ in range(rounds):
        with fastpath(True):
            fast = timed(source, n)
        with fastpath(False):
            slow = timed(source, n)
        out.append((fast, slow))
    return out


# --- the figures ------------------------------------------------------------------------------
def _figure(name: str, ratios: list[float], target: str) -> dict:
    return {"figure": name, "min": min(ratios), "median": statistics.median(ratios), "target": target, "unit": "x"}


def figures(quick: bool = False, rounds: int = 5) -> list[dict]:
    """bench/'s protocol: ratios against baselines measured in the same run, min and median."""
    n_call, n_clone = (5000, 100) if quick else (20000, 300)
    calls = trio.run(_router_rounds, rounds, n_call)
    clones = loop_rounds(CLONE_TIMED, n_clone, rounds)
    forks = loop_rounds(FORK_TIMED, 100, rounds)
    return [
        _figure("router call / (awaited call + msgpack both ways)", [f / b for b, f, _ in calls], "<= 1.5"),
        _figure("router call / its floor, inbox path (before the fast path)", [s / b for b, _, s in calls], ""),
        _figure("clone(fn)+exit+wait loop, inbox path / fast path (CPU)", [s / f for f, s in clones], ""),
        _figure("fork()+exit+wait loop of 100, inbox path / fast path (CPU)", [s / f for f, s in forks], ""),
    ]


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
    print(f"ratios, {rounds} interleaved rounds each; tracing off; CPU time")
    width = max(len(f["figure"]) for f in figs)
    print(f"{'figure':<{width}}  {'min':>7}  {'median':>7}  target")
    for fig in figs:
        print(f"{fig['figure']:<{width}}  {fig['min']:7.2f}  {fig['median']:7.2f}  {_verdict(fig)}")
    return finish(wall, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
