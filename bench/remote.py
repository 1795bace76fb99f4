"""Benchmark: ukernel with every service remote, against embedded and a bare TCP round trip.

    .venv/bin/python bench/remote.py [--quick]

Every service runs in its own ``ukernel serve`` process (one process per
service), reached over loopback TCP, then over Unix sockets. Each round runs,
back to back:

1. bare rtt: one msgpack request and reply at a time between this process and
   an echo server in another (TCP_NODELAY): the floor under a remote message.
2. write(/dev/null) (one vfs message) N times and 0 times, remote: the
   difference over N is one write.
3. clone(SIGCHLD, fn)+exit+wait M times and 0 times (no replay), embedded and
   remote, serial copy steps and with ``parallel_copy=True`` (ukernel/kernel/fork.py
   INDEPENDENT_STEPS).

Wall time of the program's run (boot left out): the services' CPU is in other
processes, and what a remote call costs is its latency. Figures, per round:
remote write / bare rtt (target <= 1.5) and remote fork rate / embedded fork
rate, the better of serial and parallel copy (target >= 0.25).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import trio
from common import CLONE, figure, finish, machine, print_figures, ratios, rounds, run_cpu

from services import SERVICES, serve_order
from ukernel.ipc import tcp

SECRET = "bench-remote-secret"
REPO = Path(__file__).resolve().parent.parent

WRITE = b"""
from ukernel.abi import O_WRONLY
async def main(sys, argv):
    fd = await sys.open("/dev/null", O_WRONLY)
    for _ in range(int(argv[1])):
        await sys.write(fd, b"x")
    return 0
"""

PROBLEMS: list[str] = []


# --- 1. the floor -------------------------------------------------------------------------------
async def _echo(stream: trio.SocketStream) -> None:
    tcp.set_nodelay(stream)
    unpacker = msgpack.Unpacker(raw=False)
    while data := await stream.receive_some(65536):
        unpacker.feed(data)
        for _, msgid, _method, _params in unpacker:
            await stream.send_all(msgpack.packb([1, msgid, None, msgid], use_bin_type=True))


async def serve_echo(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(_echo, listeners)


async def _tcp_rtt(n: int, port: int | None = None) -> float:
    """One request/reply at a time; the echo server in this trio loop, or at ``port``
    in another process (where a remote service always is: its wake-up is paid too)."""
    async with trio.open_nursery() as nursery:
        if port is None:
            port = await nursery.start(serve_echo)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        tcp.set_nodelay(stream)
        unpacker = msgpack.Unpacker(raw=False)
        meta = {"cause": 1, "pid": 2, "tid": 2}
        started = time.perf_counter()
        for msgid in range(n):
            await stream.send_all(msgpack.packb([0, msgid, "vfs.write", [{"file": 3, "data": b"x"}, meta]]))
            reply = None
            while reply is None:
                unpacker.feed(await stream.receive_some(65536))
                reply = next(unpacker, None)
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return elapsed / n


@contextmanager
def echo_server() -> Iterator[int]:
    """An echo server in another process; yields its port."""
    echo = subprocess.Popen([sys.executable, __file__, "--echo"], stdout=subprocess.PIPE, text=True)
    try:
        yield int(echo.stdout.readline())
    finally:
        echo.kill()
        echo.wait()


# --- the serve processes ---------------------------------------------------------------------
def start_services(kind: str, tmp: str) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """One ``ukernel serve`` per service; callees first, so each can dial its own."""
    env = dict(os.environ, UKERNEL_SECRET=SECRET, PYTHONPATH=str(REPO))
    urls: dict[str, str] = {}
    procs = []
    for name in serve_order():
        listen = "tcp://127.0.0.1:0" if kind == "tcp" else f"unix:{tmp}/{name}.sock"
        args = [sys.executable, "-m", "ukernel.cli", "serve", name, "--listen", listen]
        for callee in SERVICES[name].calls:
            args += ["--remote", f"{callee}={urls[callee]}"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, env=env, text=True)
        line = proc.stderr.readline().strip()
        if not line.startswith("ukernel: serving"):
            raise RuntimeError(f"ukernel serve {name}: {line}")
        urls[name] = line.rsplit(" on ", 1)[1]
        procs.append(proc)
    return urls, procs


# --- 2./3. runs, and the rounds -----------------------------------------------------------------
def run_seconds(source: bytes, count: int, settings: dict) -> float:
    """Wall seconds of the program's run (boot and shutdown left out)."""
    return run_cpu(source, [str(count)], PROBLEMS, clock=time.perf_counter, trace=False, **settings)


def per_call(source: bytes, count: int, settings: dict) -> float:
    return (run_seconds(source, count, settings) - run_seconds(source, 0, settings)) / count


def samples(urls: dict[str, str], n: int, m: int, n_rtt: int, port: int) -> dict[str, list[float]]:
    """Interleaved rounds of the rtt, remote write, and clone+exit+wait three ways."""
    remote = {"remote": urls}
    measures = {
        "rtt": lambda: trio.run(_tcp_rtt, n_rtt, port),
        "write": lambda: per_call(WRITE, n, remote),
        "fork_embedded": lambda: per_call(CLONE, m, {}),
        "fork_serial": lambda: per_call(CLONE, m, remote),
        "fork_parallel": lambda: per_call(CLONE, m, remote | {"parallel_copy": True}),
    }
    return rounds(measures)


def figures(quick: bool = False) -> list[dict]:
    """Per transport: remote write / bare rtt, and remote fork rate / embedded."""
    n, m, n_rtt = (500, 20, 2000) if quick else (2000, 50, 10000)
    os.environ["UKERNEL_SECRET"] = SECRET
    out = []
    with echo_server() as port, tempfile.TemporaryDirectory() as tmp:
        for kind in ("tcp", "unix"):
            urls, procs = start_services(kind, tmp)
            try:
                s = samples(urls, n, m, n_rtt, port)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()
            best = [min(a, b) for a, b in zip(s["fork_serial"], s["fork_parallel"], strict=True)]
            out += [
                figure(f"remote {kind}: write / bare cross-process TCP rtt", ratios(s["write"], s["rtt"]), "<= 1.5"),
                figure(
                    f"remote {kind}: clone(fn)+exit+wait rate / embedded, serial",
                    ratios(s["fork_embedded"], s["fork_serial"]),
                ),
                figure(
                    f"remote {kind}: the same, the better of serial and parallel_copy",
                    ratios(s["fork_embedded"], best),
                    ">= 0.25",
                ),
            ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N/M")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)  # the other process of the rtt
    opts = parser.parse_args(argv)
    if opts.echo:
        trio.run(_print_port_and_echo)
        return 0
    wall = time.perf_counter()
    print(machine())
    print_figures(figures(opts.quick), "remote services (wall time of the program's run, interleaved rounds)")
    return finish(wall, PROBLEMS)


async def _print_port_and_echo() -> None:
    async with trio.open_nursery() as nursery:
        print(await nursery.start(serve_echo), flush=True)


if __name__ == "__main__":
    sys.exit(main())
