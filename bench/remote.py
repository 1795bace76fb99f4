"""Benchmark: ukernel with every service remote, against embedded and a bare TCP (and TLS) round trip.

    .venv/bin/python bench/remote.py [--quick]

Every service runs in its own ``ukernel serve`` process (one process per
service), reached over loopback TCP (``--insecure``: the secret's MACs), over
TLS 1.3 (``--tls``, keys made for the run) and over Unix sockets. Measured in
the same run:

1. bare rtt: one msgpack request and reply between two trio tasks over a
   loopback TCP connection (TCP_NODELAY), plain and in a trio.SSLStream
   (TLS 1.3, both ends with certificates): the floor under a remote message.
2. getpid (no message: the kernel answers it) and write(/dev/null) (one
   vfs message): the slope of a whole run between 0 and N calls.
3. fork+exit+wait: clone(SIGCHLD, fn)+waitpid's slope (no replay), serial
   copy steps and with ``parallel_copy=True`` (ukernel/kernel/fork.py INDEPENDENT_STEPS).

Ratios: remote write / bare rtt (target <= 1.5) and remote fork rate /
embedded fork rate (target >= 0.25). Every figure is the best of REPEATS.

``figures()`` (make bench's table): remote getpid and write over TLS against
the bare TLS round trip to another process (targets <= 1.5), and a write
over TLS against one over plain TCP; each ratio's numerator and denominator
are measured back to back in each of ROUNDS rounds (min and median).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from ukernel import keys
from ukernel.ipc import tcp, tls

REPEATS = 3
ROUNDS = 5  # samples of each figures() ratio
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


async def _tcp_rtt(n: int, port: int | None = None, keys_dir: str | None = None) -> float:
    """One request/reply at a time; the echo server in this trio loop, or at ``port``
    in another process (where a remote service always is: its wake-up is paid too);
    in TLS with ``keys_dir``."""
    async with trio.open_nursery() as nursery:
        if port is None:
            port = await nursery.start(serve_echo, keys_dir)
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
        nursery.cancel_scope.cancel()
    return elapsed / n


def start_echo(keys_dir: str | None = None) -> tuple[subprocess.Popen, int]:
    """The echo server in a process of its own (TLS with ``keys_dir``) and its port."""
    args = [sys.executable, __file__, "--echo", *(["--echo-tls", keys_dir] if keys_dir else [])]
    echo = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    return echo, int(echo.stdout.readline())


def cross_process_rtt(n: int, keys_dir: str | None = None) -> float:
    echo, port = start_echo(keys_dir)
    try:
        return best(lambda: trio.run(_tcp_rtt, n, port, keys_dir), REPEATS)
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


def start_services(kind: str, tmp: str, keys_dir: str = "") -> tuple[dict[str, str], list[subprocess.Popen]]:
    """One ``ukernel serve`` per service; callees first, so each can dial its own."""
    env = dict(os.environ, UKERNEL_SECRET=SECRET, PYTHONPATH=str(REPO))
    urls: dict[str, str] = {}
    procs = []
    for name in serve_order():
        listen = f"unix:{tmp}/{name}.sock" if kind == "unix" else "tcp://127.0.0.1:0"
        args = [sys.executable, "-m", "ukernel.cli", "serve", name, "--listen", listen]
        args += serve_options(kind, keys_dir)
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


def slope(source: bytes, low: int, high: int, settings: dict, repeats: int = REPEATS) -> float:
    t_low = best(lambda: run_seconds(source, low, settings), repeats)
    t_high = best(lambda: run_seconds(source, high, settings), repeats)
    return (t_high - t_low) / (high - low)


def measure(settings: dict, n: int, m1: int, m2: int) -> dict[str, float]:
    return {
        "getpid": slope(GETPID, 0, n, settings) * 1e6,
        "write": slope(WRITE, 0, n, settings) * 1e6,
        "fork": 1 / slope(CLONE, m1, m2, settings),
        "fork_par": 1 / slope(CLONE, m1, m2, settings | {"parallel_copy": True}),
    }


KINDS = ("tcp", "unix", "tls")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N/M")
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)  # the other process of the rtt
    parser.add_argument("--echo-tls", metavar="DIR", help=argparse.SUPPRESS)  # ... in TLS, with these keys
    opts = parser.parse_args(argv)
    if opts.echo:
        trio.run(_print_port_and_echo, opts.echo_tls)
        return 0
    n, m1, m2, n_rtt = (1000, 20, 60, 5000) if opts.quick else (4000, 50, 150, 20000)
    os.environ["UKERNEL_SECRET"] = SECRET
    wall = time.perf_counter()
    print(machine())
    print(
        f"best of {REPEATS}; rtt N={n_rtt}, getpid/write N=0/{n}, clone+exit+wait M={m1}/{m2}; one serve process per service"
    )
    table = {"embedded": measure({}, n, m1, m2)}
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = make_keys(tmp)
        rtt = {
            kind: best(lambda k=k: trio.run(_tcp_rtt, n_rtt, None, k), REPEATS) * 1e6 for kind, k in _floors(keys_dir)
        }
        rtt_x = {kind: cross_process_rtt(n_rtt, k) * 1e6 for kind, k in _floors(keys_dir)}
        for kind in KINDS:
            urls, procs = start_services(kind, tmp, keys_dir)
            try:
                table[f"remote {kind}"] = measure({"remote": urls} | run_options(kind, keys_dir), n, m1, m2)
            finally:
                _stop(procs)
    emb = table["embedded"]
    print(f"{'':16}{'getpid us':>11}{'write us':>11}{'fork /s':>10}{'fork /s (parallel)':>20}")
    for name, f in table.items():
        print(f"{name:16}{f['getpid']:11.2f}{f['write']:11.2f}{f['fork']:10.1f}{f['fork_par']:20.1f}")
    for floor in rtt:
        print(
            f"bare trio {floor} rtt (msgpack, loopback): {rtt[floor]:.2f} us in one process, "
            f"{rtt_x[floor]:.2f} us to another process"
        )
    for kind in KINDS:
        f = table[f"remote {kind}"]
        floor = "TLS" if kind == "tls" else "TCP"
        ratio, ratio_x = f["write"] / rtt[floor], f["write"] / rtt_x[floor]
        fork_ratio = max(f["fork"], f["fork_par"]) / emb["fork"]
        print(
            f"remote {kind}: getpid / bare {floor} rtt = {f['getpid'] / rtt[floor]:.2f} "
            f"(target <= 1.5 {'ok' if f['getpid'] / rtt[floor] <= 1.5 else 'MISSED'}); write / bare rtt = {ratio:.2f}, "
            f"/ cross-process rtt = {ratio_x:.2f} (target <= 1.5 {'ok' if ratio_x <= 1.5 else 'MISSED'}); "
            f"fork / embedded = {f['fork'] / emb['fork']:.2f} serial, {f['fork_par'] / emb['fork']:.2f} parallel "
            f"(target >= 0.25 {'ok' if fork_ratio >= 0.25 else 'MISSED'})"
        )
    tls_cost = table["remote tls"]["write"] / table["remote tcp"]["write"]
    print(f"TLS next to plain TCP: remote write {tls_cost:.2f}x, bare rtt {rtt_x['TLS'] / rtt_x['TCP']:.2f}x")
    print_figures(figures(quick=opts.quick))
    return finish(wall, PROBLEMS)


def _floors(keys_dir: str) -> list[tuple[str, str | None]]:
    return [("TCP", None), ("TLS", keys_dir)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


# --- make bench's figures -----------------------------------------------------------------------
def booted_slope(source: bytes, n: int, settings: dict) -> float:
    """Seconds per call of ``source`` in one booted kernel: ``bench N`` less ``bench 0``, so
    the boot (a TLS handshake per service) is not in it."""

    async def timed() -> float:
        with trio.fail_after(RUN_TIMEOUT):
            async with ukernel.boot(trace=False, files={"/bin/bench": source}, **settings) as kernel:
                spent = []
                for count in (0, n):
                    started = time.perf_counter()
                    status = await kernel.run("/bin/bench", ["bench", str(count)])
                    spent.append(time.perf_counter() - started)
                    if status != 0:
                        PROBLEMS.append(f"booted {count}: status {status:#x}")
                problems = await kernel.check_invariants()
                PROBLEMS.extend(problems)
        return (spent[1] - spent[0]) / n

    return trio.run(timed)


def figures(quick: bool = False) -> list[dict]:
    """Remote getpid and write over TLS / the bare TLS rtt to another process, and write over
    TLS / write over plain TCP: each ratio from a numerator and denominator measured back to
    back, in each of ROUNDS rounds."""
    os.environ["UKERNEL_SECRET"] = SECRET  # what the serve processes are given
    n, n_rtt = (1000, 2000) if quick else (3000, 10000)
    samples: dict[str, list[float]] = {"getpid": [], "write": [], "tls_tcp": []}
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = make_keys(tmp)
        echo, port = start_echo(keys_dir)
        tls_urls, tls_procs = start_services("tls", tmp, keys_dir)
        tcp_urls, tcp_procs = start_services("tcp", tmp, keys_dir)
        over_tls = {"remote": tls_urls, "tls": keys_dir}
        over_tcp = {"remote": tcp_urls, "insecure": True}
        try:
            for _ in range(ROUNDS):
                rtt = trio.run(_tcp_rtt, n_rtt, port, keys_dir)
                samples["getpid"].append(booted_slope(GETPID, n, over_tls) / rtt)
                rtt = trio.run(_tcp_rtt, n_rtt, port, keys_dir)
                tls_write = booted_slope(WRITE, n, over_tls)
                samples["write"].append(tls_write / rtt)
                samples["tls_tcp"].append(tls_write / booted_slope(WRITE, n, over_tcp))
        finally:
            _stop([echo, *tls_procs, *tcp_procs])
    names = {
        "getpid": ("remote getpid over TLS / bare TLS rtt", "<= 1.5"),
        "write": ("remote write over TLS / bare TLS rtt", "<= 1.5"),
        "tls_tcp": ("remote write: TLS / plain TCP", "cost of TLS (report)"),
    }
    return [
        {"figure": names[k][0], "min": min(v), "median": statistics.median(v), "target": names[k][1], "unit": "x"}
        for k, v in samples.items()
    ]


def print_figures(rows: list[dict]) -> None:
    print(f"{'figure':44}{'min':>8}{'median':>8}  target")
    for row in rows:
        print(f"{row['figure']:44}{row['min']:8.2f}{row['median']:8.2f}  {row['target']}")


async def _print_port_and_echo(keys_dir: str | None) -> None:
    async with trio.open_nursery() as nursery:
        print(await nursery.start(serve_echo, keys_dir), flush=True)


if __name__ == "__main__":
    sys.exit(main())
