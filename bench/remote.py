"""Benchmark: ukernel with every service remote, against embedded and a bare TCP round trip.

    .venv/bin/python bench/remote.py [--quick]

Every service runs in its own ``ukernel serve`` process (one process per
service), reached over loopback TCP, then over Unix sockets. Measured in the
same run:

1. bare rtt: one msgpack request and reply between two trio tasks over a
   loopback TCP connection (TCP_NODELAY): the floor under a remote message.
2. getpid (no message: the kernel answers it) and write(/dev/null) (one
   vfs message): the slope of a whole run between 0 and N calls.
3. fork+exit+wait: clone(SIGCHLD, fn)+waitpid's slope (no replay), serial
   copy steps and with ``parallel_copy=True`` (ukernel/kernel/fork.py INDEPENDENT_STEPS).

Ratios: remote write / bare rtt (target <= 1.5) and remote fork rate /
embedded fork rate (target >= 0.25). Every figure is the best of REPEATS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import trio
from common import CLONE, GETPID, best, finish, machine

import ukernel
from services import SERVICES, serve_order
from ukernel.ipc import tcp

REPEATS = 3
RUN_TIMEOUT = 120
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


def cross_process_rtt(n: int) -> float:
    echo = subprocess.Popen([sys.executable, __file__, "--echo"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(echo.stdout.readline())
        return best(lambda: trio.run(_tcp_rtt, n, port), REPEATS)
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


# --- 2./3. whole runs ---------------------------------------------------------------------------
def run_seconds(source: bytes, count: int, settings: dict) -> float:
    async def one() -> ukernel.Result:
        with trio.fail_after(RUN_TIMEOUT):
            return await ukernel.run_async(
                "/bin/bench", ["bench", str(count)], trace=False, files={"/bin/bench": source}, **settings
            )

    started = time.perf_counter()
    result = trio.run(one)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or result.problems:
        PROBLEMS.append(
            f"{settings.get('remote') and 'remote' or 'embedded'} {count}: {result.status:#x} {result.problems}"
        )
    return elapsed


def slope(source: bytes, low: int, high: int, settings: dict) -> float:
    t_low = best(lambda: run_seconds(source, low, settings), REPEATS)
    t_high = best(lambda: run_seconds(source, high, settings), REPEATS)
    return (t_high - t_low) / (high - low)


def measure(settings: dict, n: int, m1: int, m2: int) -> dict[str, float]:
    return {
        "getpid": slope(GETPID, 0, n, settings) * 1e6,
        "write": slope(WRITE, 0, n, settings) * 1e6,
        "fork": 1 / slope(CLONE, m1, m2, settings),
        "fork_par": 1 / slope(CLONE, m1, m2, settings | {"parallel_copy": True}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N/M")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)  # the other process of the rtt
    opts = parser.parse_args(argv)
    if opts.echo:
        trio.run(_print_port_and_echo)
        return 0
    n, m1, m2, n_rtt = (1000, 20, 60, 5000) if opts.quick else (4000, 50, 150, 20000)
    os.environ["UKERNEL_SECRET"] = SECRET
    wall = time.perf_counter()
    print(machine())
    print(
        f"best of {REPEATS}; rtt N={n_rtt}, getpid/write N=0/{n}, clone+exit+wait M={m1}/{m2}; one serve process per service"
    )
    rtt = best(lambda: trio.run(_tcp_rtt, n_rtt), REPEATS) * 1e6
    rtt_x = cross_process_rtt(n_rtt) * 1e6
    figures = {"embedded": measure({}, n, m1, m2)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("tcp", "unix"):
            urls, procs = start_services(kind, tmp)
            try:
                figures[f"remote {kind}"] = measure({"remote": urls}, n, m1, m2)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()
    emb = figures["embedded"]
    print(f"{'':16}{'getpid us':>11}{'write us':>11}{'fork /s':>10}{'fork /s (parallel)':>20}")
    for name, f in figures.items():
        print(f"{name:16}{f['getpid']:11.2f}{f['write']:11.2f}{f['fork']:10.1f}{f['fork_par']:20.1f}")
    print(f"bare trio TCP rtt (msgpack, loopback): {rtt:.2f} us in one process, {rtt_x:.2f} us to another process")
    for kind in ("tcp", "unix"):
        f = figures[f"remote {kind}"]
        ratio, ratio_x = f["write"] / rtt, f["write"] / rtt_x
        fork_ratio = max(f["fork"], f["fork_par"]) / emb["fork"]
        print(
            f"remote {kind}: getpid / bare rtt = {f['getpid'] / rtt:.2f} "
            f"(target <= 1.5 {'ok' if f['getpid'] / rtt <= 1.5 else 'MISSED'}); write / bare rtt = {ratio:.2f}, "
            f"/ cross-process rtt = {ratio_x:.2f} (target <= 1.5 {'ok' if ratio_x <= 1.5 else 'MISSED'}); "
            f"fork / embedded = {f['fork'] / emb['fork']:.2f} serial, {f['fork_par'] / emb['fork']:.2f} parallel "
            f"(target >= 0.25 {'ok' if fork_ratio >= 0.25 else 'MISSED'})"
        )
    return finish(wall, PROBLEMS)


async def _print_port_and_echo() -> None:
    async with trio.open_nursery() as nursery:
        print(await nursery.start(serve_echo), flush=True)


if __name__ == "__main__":
    sys.exit(main())
