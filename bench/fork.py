"""Benchmark: syscall and fork costs in ukernel against their baselines.

    .venv/bin/python bench/fork.py [--quick]

Prints one table:

1. channel rtt: a bare trio memory-channel round trip with msgpack on both
   sides (the floor under every ukernel message).
2. getpid: the slope of a program's whole run time between 0 and N getpids
   (programs have no clock, so the run is timed from outside).
3. fork+exit+wait: the slope between M1 and M2 iterations, for fork (the child
   replays the parent's journal from exec, so later children cost more) and for
   clone(SIGCHLD, fn) (the child runs ``fn`` on a copy of the namespace, no replay), and
   for fork with a SIGCHLD handler that reaps (each delivery is journaled and replayed).
4. C: the same fork/_exit/waitpid loop as a host C program, if ``cc`` exists.

Every figure is the best of REPEATS runs. All ukernel runs use trace=False.
"""

from __future__ import annotations

import argparse
import sys
import time

import msgpack
import trio
from common import CLONE, FORK, FORK_HANDLED, GETPID, best, c_program, finish, machine

import ukernel

REPEATS = 3
RUN_TIMEOUT = 60  # seconds one ukernel run may take before it counts as hung

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "waitpid failed\n");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.1f\n", n / secs);
    return 0;
}
"""

PROBLEMS: list[str] = []  # everything odd a ukernel run reported


# --- 1. the floor: trio memory channel + msgpack ----------------------------------------
async def _channel_rtt(n: int) -> float:
    req_send, req_recv = trio.open_memory_channel(256)
    rep_send, rep_recv = trio.open_memory_channel(1)

    async def server() -> None:
        async for frame in req_recv:
            _, msgid, _method, _params = msgpack.unpackb(frame, raw=False, strict_map_key=False)
            await rep_send.send(msgpack.packb([1, msgid, None, msgid], use_bin_type=True))

    meta = {"cause": 1, "pid": 2, "tid": 2}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        started = time.perf_counter()
        for msgid in range(n):
            await req_send.send(msgpack.packb([0, msgid, "kernel.getpid", [{}, meta]], use_bin_type=True))
            reply = msgpack.unpackb(await rep_recv.receive(), raw=False, strict_map_key=False)
            assert reply[1] == msgid
        elapsed = time.perf_counter() - started
        await req_send.aclose()
    return elapsed / n


def channel_rtt_us(n: int) -> float:
    return best(lambda: trio.run(_channel_rtt, n), REPEATS) * 1e6


# --- 2./3. whole ukernel runs -------------------------------------------------------------
def run_seconds(source: bytes, count: int) -> float:
    """Wall time of one whole ``ukernel.run`` (boot, init, the program, shutdown)."""

    async def one() -> ukernel.Result:
        with trio.fail_after(RUN_TIMEOUT):
            return await ukernel.run_async(
                "/bin/bench", ["bench", str(count)], trace=False, files={"/bin/bench": source}
            )

    started = time.perf_counter()
    try:
        result = trio.run(one)
    except trio.TooSlowError:
        PROBLEMS.append(f"bench {count}: no exit after {RUN_TIMEOUT} s (hung?)")
        raise
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        PROBLEMS.append(f"bench {count}: status {result.status:#x}, output {result.stdout[-400:]!r}")
    for problem in result.problems:
        PROBLEMS.append(f"bench {count}: {problem}")
    return elapsed


def slope(source: bytes, low: int, high: int) -> float:
    """Seconds per iteration between ``low`` and ``high`` iterations (best of REPEATS each)."""
    t_low = best(lambda: run_seconds(source, low), REPEATS)
    t_high = best(lambda: run_seconds(source, high), REPEATS)
    return (t_high - t_low) / (high - low)


# --- 4. C -----------------------------------------------------------------------------------
def c_forks_per_sec(n: int) -> float | None:
    with c_program(C_SOURCE, "cfork") as run:
        if run is None:
            return None
        return max(float(run(n)) for _ in range(REPEATS))


# --- the table ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N/M (a few seconds)")
    opts = parser.parse_args(argv)
    if opts.quick:
        n_rtt, n_getpid, m1, m2, n_c = 5000, 5000, 50, 100, 500
    else:
        n_rtt, n_getpid, m1, m2, n_c = 20000, 20000, 200, 400, 2000

    wall = time.perf_counter()
    print(machine())
    print(f"best of {REPEATS}; rtt N={n_rtt}, getpid N=0/{n_getpid}, fork M={m1}/{m2}, C n={n_c}")

    rtt = channel_rtt_us(n_rtt)
    try:
        getpid = slope(GETPID, 0, n_getpid) * 1e6
        fork_s = slope(FORK, m1, m2)
        handled_s = slope(FORK_HANDLED, m1, m2)
        clone_s = slope(CLONE, m1, m2)
    except trio.TooSlowError:
        print("\n".join(["ukernel problems:", *PROBLEMS]))
        return 2
    c_rate = c_forks_per_sec(n_c)

    rows: list[tuple[str, str, str, str]] = [
        ("channel rtt (trio + msgpack)", f"{rtt:10.2f} us", "", ""),
        ("ukernel getpid", f"{getpid:10.2f} us", f"{getpid / rtt:6.2f}x rtt", _verdict(getpid / rtt <= 1.5, "<= 1.5")),
        ("ukernel fork+exit+wait", f"{1 / fork_s:10.1f} /s", f"{fork_s * 1e6:8.0f} us each", ""),
        ("ukernel fork, SIGCHLD handler reaps", f"{1 / handled_s:10.1f} /s", f"{handled_s * 1e6:8.0f} us each", ""),
        ("ukernel clone(fn)+exit+wait", f"{1 / clone_s:10.1f} /s", f"{clone_s * 1e6:8.0f} us each", ""),
    ]
    if c_rate is None:
        rows.append(("C fork+_exit+waitpid", "   (no cc)", "", ""))
    else:
        rows += [
            ("C fork+_exit+waitpid", f"{c_rate:10.1f} /s", f"{1e6 / c_rate:8.0f} us each", ""),
            ("fork / C", f"{(1 / fork_s) / c_rate:10.4f}", "", _verdict((1 / fork_s) / c_rate >= 0.5, ">= 0.5")),
            ("clone(fn) / C", f"{(1 / clone_s) / c_rate:10.4f}", "", _verdict((1 / clone_s) / c_rate >= 0.5, ">= 0.5")),
        ]
    header = ("figure", "value", "detail", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(line)
    print(
        f"(fork's child i replays the parent's 2*i journal entries, so its slope is the cost near i={(m1 + m2) // 2})"
    )
    return finish(wall, PROBLEMS)


def _verdict(ok: bool, target: str) -> str:
    return f"{target} {'ok' if ok else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main())
