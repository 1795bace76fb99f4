"""Benchmark: ukernel with every service remote, against embedded and a bare round trip.

    .venv/bin/python bench/remote.py [--quick]

Every service runs in its own ``ukernel serve`` process (one process per
service), reached three ways at once: loopback TCP (``--insecure``: the
secret's MACs on every record), TLS 1.3 (``--tls``, both ends with
certificates made for the run) and Unix sockets (the secret). Each round runs,
back to back:

1. bare rtt: one msgpack request and reply at a time between this process and
   an echo server in another (TCP_NODELAY), plain and in a trio.SSLStream:
   the floor under a remote message.
2. write(/dev/null) (one vfs message) N times and 0 times, remote: the
   difference over N is one write. (getpid sends no message: the kernel
   answers it, so a remote write is the figure for "one remote call".)
3. clone(SIGCHLD, fn)+exit+wait M times and 0 times (no replay), embedded and
   remote, serial copy steps and with ``parallel_copy=True`` (ukernel/kernel/fork.py
   INDEPENDENT_STEPS).

Wall time of the program's run (boot left out): the services' CPU is in other
processes, and what a remote call costs is its latency. Figures, per round:
remote write / its transport's bare rtt (target <= 1.5), remote write over TLS
/ over plain TCP (the cost of TLS), and remote fork rate / embedded fork rate,
the better of serial and parallel copy (target >= 0.25).
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
from ukernel import keys
from ukernel.ipc import tcp, tls

SECRET = "bench-remote-secret"
REPO = Path(__file__).resolve().parent.parent
KINDS = ("tcp", "tls", "unix")

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
def make_keys(tmp: str) -> str:
    """A CA and certificates for 127.0.0.1 (the nodes, the echo) and kernel, as ``ukernel keys`` makes them."""
    directory = Path(tmp, "keys")
    keys.init_ca(directory)
    for name in ("127.0.0.1", "kernel"):
        keys.issue(name, directory)
    return str(directory)


async def _echo(stream: trio.abc.Stream, keys_dir: str | None = None) -> None:
    tcp.set_nodelay(stream)
    if keys_dir is not None:
        stream = await tls.server(stream, tls.load(keys_dir, "127.0.0.1"))
    unpacker = msgpack.Unpacker(raw=False)
    try:
        while data := await stream.receive_some(65536):
            unpacker.feed(data)
            for _, msgid, _method, _params in unpacker:
                await stream.send_all(msgpack.packb([1, msgid, None, msgid], use_bin_type=True))
    except trio.BrokenResourceError:
        pass  # a TLS client that left without close_notify


async def serve_echo(keys_dir: str | None = None, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(lambda stream: _echo(stream, keys_dir), listeners)


async def _tcp_rtt(n: int, port: int, keys_dir: str | None = None) -> float:
    """One request/reply at a time to the echo server at ``port`` in another process (where a
    remote service always is: its wake-up is paid too); in TLS with ``keys_dir``."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tcp.set_nodelay(stream)
    if keys_dir is not None:
        stream = await tls.client(stream, tls.load(keys_dir, "kernel"), "127.0.0.1")
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
    await trio.aclose_forcefully(stream)
    return elapsed / n


@contextmanager
def echo_server(keys_dir: str | None = None) -> Iterator[int]:
    """An echo server in another process (TLS with ``keys_dir``); yields its port."""
    args = [sys.executable, __file__, "--echo", *(["--echo-tls", keys_dir] if keys_dir else [])]
    echo = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        yield int(echo.stdout.readline())
    finally:
        echo.kill()
        echo.wait()


# --- the serve processes ---------------------------------------------------------------------
def serve_options(kind: str, keys_dir: str) -> list[str]:
    """How a serve process of ``kind`` is protected: the secret's MACs, or TLS with ``keys_dir``."""
    return {"tcp": ["--insecure"], "unix": [], "tls": ["--tls", keys_dir]}[kind]


def run_options(kind: str, keys_dir: str) -> dict:
    """The same for the run that dials them."""
    return {"tcp": {"insecure": True}, "unix": {}, "tls": {"tls": keys_dir}}[kind]


def start_services(kind: str, tmp: str, keys_dir: str) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """One ``ukernel serve`` per service; callees first, so each can dial its own."""
    env = dict(os.environ, UKERNEL_SECRET=SECRET, PYTHONPATH=str(REPO))
    urls: dict[str, str] = {}
    procs = []
    for name in serve_order():
        listen = f"unix:{tmp}/{name}.sock" if kind == "unix" else "tcp://127.0.0.1:0"
        args = [sys.executable, "-m", "ukernel.cli", "serve", name, "--listen", listen, *serve_options(kind, keys_dir)]
        for callee in SERVICES[name].calls:
            args += ["--remote", f"{callee}={urls[callee]}"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, env=env, text=True)
        line = proc.stderr.readline().strip()
        if not line.startswith("ukernel: serving"):
            raise RuntimeError(f"ukernel serve {name}: {line}")
        urls[name] = line.rsplit(" on ", 1)[1]
        procs.append(proc)
    return urls, procs


@contextmanager
def served(tmp: str, keys_dir: str) -> Iterator[dict[str, dict]]:
    """Every kind's serve processes at once; yields each kind's run settings."""
    procs: list[subprocess.Popen] = []
    try:
        settings = {}
        for kind in KINDS:
            urls, started = start_services(kind, tmp, keys_dir)
            procs += started
            settings[kind] = {"remote": urls} | run_options(kind, keys_dir)
        yield settings
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


# --- 2./3. runs, and the rounds -----------------------------------------------------------------
def run_seconds(source: bytes, count: int, settings: dict) -> float:
    """Wall seconds of the program's run (boot and shutdown left out)."""
    return run_cpu(source, [str(count)], PROBLEMS, clock=time.perf_counter, trace=False, **settings)


def per_call(source: bytes, count: int, settings: dict) -> float:
    return (run_seconds(source, count, settings) - run_seconds(source, 0, settings)) / count


def samples(settings: dict[str, dict], ports: dict[str, int], keys_dir: str, sizes: tuple) -> dict[str, list[float]]:
    """Interleaved rounds: the two bare rtts, and per kind a remote write and clone+exit+wait two ways."""
    n, m, n_rtt = sizes
    measures = {
        "rtt tcp": lambda: trio.run(_tcp_rtt, n_rtt, ports["tcp"]),
        "rtt tls": lambda: trio.run(_tcp_rtt, n_rtt, ports["tls"], keys_dir),
        "fork embedded": lambda: per_call(CLONE, m, {}),
    }
    for kind, remote in settings.items():
        measures[f"write {kind}"] = lambda r=remote: per_call(WRITE, n, r)
        measures[f"fork {kind}"] = lambda r=remote: per_call(CLONE, m, r)
        measures[f"fork {kind} parallel"] = lambda r=remote: per_call(CLONE, m, r | {"parallel_copy": True})
    return rounds(measures)


def figures(quick: bool = False) -> list[dict]:
    """Per transport: remote write / its bare rtt, and remote fork rate / embedded; TLS / plain TCP."""
    sizes = (500, 20, 2000) if quick else (2000, 50, 10000)
    os.environ["UKERNEL_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = make_keys(tmp)
        with echo_server() as tcp_port, echo_server(keys_dir) as tls_port, served(tmp, keys_dir) as settings:
            s = samples(settings, {"tcp": tcp_port, "tls": tls_port}, keys_dir, sizes)
    out = []
    for kind in KINDS:
        floor = "tls" if kind == "tls" else "tcp"
        best = [min(a, b) for a, b in zip(s[f"fork {kind}"], s[f"fork {kind} parallel"], strict=True)]
        out += [
            figure(
                f"remote {kind}: write / bare cross-process {floor.upper()} rtt",
                ratios(s[f"write {kind}"], s[f"rtt {floor}"]),
                "<= 1.5",
            ),
            figure(
                f"remote {kind}: clone(fn)+exit+wait rate / embedded, serial",
                ratios(s["fork embedded"], s[f"fork {kind}"]),
            ),
            figure(
                f"remote {kind}: the same, the better of serial and parallel_copy",
                ratios(s["fork embedded"], best),
                ">= 0.25",
            ),
        ]
    out.append(figure("remote write: TLS / plain TCP (the cost of TLS)", ratios(s["write tls"], s["write tcp"])))
    out.append(figure("bare rtt: TLS / plain TCP", ratios(s["rtt tls"], s["rtt tcp"])))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N/M")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)  # the other process of the rtt
    parser.add_argument("--echo-tls", metavar="DIR", help=argparse.SUPPRESS)  # ... in TLS, with these keys
    opts = parser.parse_args(argv)
    if opts.echo:
        trio.run(_print_port_and_echo, opts.echo_tls)
        return 0
    wall = time.perf_counter()
    print(machine())
    print_figures(figures(opts.quick), "remote services (wall time of the program's run, interleaved rounds)")
    return finish(wall, PROBLEMS)


async def _print_port_and_echo(keys_dir: str | None) -> None:
    async with trio.open_nursery() as nursery:
        print(await nursery.start(serve_echo, keys_dir), flush=True)


if __name__ == "__main__":
    sys.exit(main())
