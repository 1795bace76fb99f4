"""Every service in its own ``ukernel serve`` process (and, where the machine allows, on its own host).

The kernel runs in the test process; the services are real subprocesses
reached over Unix sockets and loopback TCP, so what is tested is what a
user gets from ``ukernel serve`` and ``ukernel run --remote``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from conftest import FORKS_AFTER_A_LOSS, KILL_POINT, read_line

import ukernel
from services import SERVICES, serve_order
from ukernel import abi, keys
from ukernel.ipc.router import BootError

SECRET = "multiprocess-secret"
START_TIMEOUT = 20  # seconds for a serve process to say it is listening (hang detector)
TIMEOUT = 30
UKERNEL = [sys.executable, "-m", "ukernel.cli"]
REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, UKERNEL_SECRET=SECRET, PYTHONPATH=str(REPO))


def requests(trace: list[dict]) -> list[tuple[str, str]]:
    """The route of a run: every request's (service, op), in order."""
    return [(e["dst"], e["op"]) for e in trace if e["type"] == "request"]


class Serve:
    """One ``ukernel serve`` subprocess."""

    def __init__(
        self, services: list[str], listen: str, remote: dict[str, str], prefix: list[str] = (), options: list[str] = ()
    ):
        self.args = [*prefix, *UKERNEL, "serve", *services, *options, "--listen", listen, "--heartbeat", "0.1"]
        self.args += ["--rpc-timeout", "1"]
        for name, url in remote.items():
            self.args += ["--remote", f"{name}={url}"]
        self.process: trio.Process | None = None
        self.url = ""

    async def start(self, nursery: trio.Nursery) -> str:
        self.process = await nursery.start(
            lambda task_status: trio.run_process(
                self.args, stderr=subprocess.PIPE, env=ENV, check=False, task_status=task_status
            )
        )
        with trio.fail_after(START_TIMEOUT):
            line = await read_line(self.process.stderr)
        assert line.startswith("ukernel: serving "), line
        self.url = line.rsplit(" on ", 1)[1]
        return self.url

    def kill(self) -> None:
        self.process.kill()


async def serve_all(nursery: trio.Nursery, tmp_path: Path, keys: str) -> dict[str, str]:
    """One process per service; odd ones on loopback TCP with TLS (``keys``), the rest on Unix sockets."""
    urls: dict[str, str] = {}
    for i, name in enumerate(serve_order()):
        listen = "tcp://127.0.0.1:0" if i % 2 else f"unix:{tmp_path / name}.sock"
        callees = {c: urls[c] for c in SERVICES[name].calls}
        urls[name] = await Serve([name], listen, callees, options=["--tls", keys]).start(nursery)
    return urls


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET)


@pytest.mark.parametrize(("program", "argv"), [("nginx", ["nginx", "3"]), ("forktest", ["forktest", "5"])])
async def test_every_service_in_its_own_process_gives_the_embedded_output_and_route(program, argv, tmp_path, tls_keys):
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async(program, argv)
        async with trio.open_nursery() as nursery:
            remote = await serve_all(nursery, tmp_path, tls_keys)
            result = await ukernel.run_async(program, argv, remote=remote, tls=tls_keys)
            nursery.cancel_scope.cancel()
    assert result.problems == [] and result.exit_code == embedded.exit_code == 0
    assert result.stdout == embedded.stdout
    assert requests(result.trace) == requests(embedded.trace)
    assert {e["node"] for e in result.trace if e["type"] == "request"} == set(remote.values())


async def test_killing_a_serve_process_mid_run_is_eio_then_a_restart_is_redialled(tmp_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            pid = Serve(["pid"], f"unix:{tmp_path / 'pid.sock'}", {})
            url = await pid.start(nursery)

            def console(data: bytes) -> None:
                if data == KILL_POINT:
                    pid.kill()

            settings = {"remote": {"pid": url}, "heartbeat": 0.1, "rpc_timeout": 1.0, "console": console}
            result = await ukernel.run_async("/bin/t", ["t"], files={"/bin/t": FORKS_AFTER_A_LOSS}, **settings)
            assert result.stdout.startswith(b"go\nfork: errno 5\nfork: errno 5\nfork: errno 5\n")
            assert result.status != 0 and "lost pid at unix:" in result.error
            # a kernel whose pid server comes back later: it redials and carries on
            pid = Serve(["pid"], f"unix:{tmp_path / 'pid.sock'}", {})
            await pid.start(nursery)
            async with ukernel.boot(remote={"pid": url}, heartbeat=0.1, rpc_timeout=1.0) as kernel:
                assert await kernel.run("/bin/hello") == 0
                pid.kill()
                with trio.fail_after(5):
                    while kernel.router.endpoints["pid"].lost is None:
                        await trio.sleep(0.01)
                with pytest.raises(OSError) as err:
                    await kernel.call("pid", "ping", {})
                assert err.value.errno == abi.EIO
                pid = Serve(["pid"], f"unix:{tmp_path / 'pid.sock'}", {})
                await pid.start(nursery)
                with trio.fail_after(5):
                    await kernel.router.endpoints["pid"].connected.wait()
                assert await kernel.run("/bin/hello") == 0  # a fresh pid service: new pids work
                assert await kernel.check_invariants() == []
            nursery.cancel_scope.cancel()
    assert sum("reconnected to pid" in r.getMessage() for r in caplog.records) == 1


# --- settings: a served service is built as the run would build it -------------------------
async def test_serve_takes_the_settings_of_run_and_a_run_with_others_is_refused_in_one_line(tmp_path):
    sched_toml = tmp_path / "sched.toml"
    sched_toml.write_text('cpus = 1\nsched = "cfs"\n')
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            mm = await Serve(["mm"], "tcp://127.0.0.1:0", {}, options=["--memory", "128M", "--insecure"]).start(nursery)
            # no --remote mm needed; --memory: the tmpfs is half of it
            vfs = await Serve(["vfs"], f"unix:{tmp_path / 'vfs.sock'}", {}, options=["--memory", "128M"]).start(nursery)
            sched = await Serve(
                ["sched"], "tcp://127.0.0.1:0", {}, options=["--config", str(sched_toml), "--insecure"]
            ).start(nursery)
            remote = {"mm": mm, "vfs": vfs, "sched": sched}
            embedded = await ukernel.run_async("nginx", ["nginx", "3"], memory="128M", sched="cfs")
            result = await ukernel.run_async(
                "nginx", ["nginx", "3"], memory="128M", sched="cfs", remote=remote, insecure=True
            )
            assert (result.exit_code, result.problems, result.stdout) == (0, [], embedded.stdout)
            with pytest.raises(BootError, match="^remote mm runs 128M of memory, this run asks for 64M of memory"):
                await ukernel.run_async("hello", sched="cfs", remote={"mm": mm}, insecure=True)
            cli = [
                *UKERNEL,
                "run",
                "--sched",
                "cfs",
                "--cpus",
                "2",
                "--insecure",
                "--remote",
                f"sched={sched}",
                "hello",
            ]
            done = await trio.run_process(cli, capture_stdout=True, capture_stderr=True, env=ENV, check=False)
            nursery.cancel_scope.cancel()
    assert (done.returncode, done.stderr.decode()) == (
        2,
        "ukernel: remote sched runs 1 CPU, this run asks for 2 CPUs: serve sched with the settings of the run\n",
    )


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["sched", "--cpus", "0"], "ukernel: serve: --cpus: must be at least 1 (a machine needs a CPU), not 0"),
        (["pid", "--pid-max", "1"], "ukernel: serve: --pid-max: must leave room for pid 1, not 1"),
        (["mm", "--memory", "lots"], "ukernel: serve: --memory: 'lots' is not a size"),
        (["namespaces", "pid"], "ukernel: serve: namespaces calls vfs: serve namespaces pid vfs together, or name"),
    ],
)
def test_serve_refuses_settings_as_run_does(options, error):
    done = subprocess.run([*UKERNEL, "serve", *options], capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    assert done.returncode == 2 and done.stderr.startswith(error), done.stderr


# --- several hosts: network namespaces -----------------------------------------------------
def _netns_unavailable() -> str | None:
    """Why separate network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "ip netns needs root"
    probe = f"ukprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class NetnsHost:
    """A 'host': a network namespace joined to this one by a veth pair, in 10.200.N.0/24."""

    def __init__(self, n: int):
        self.name = f"uk{os.getpid() % 10000}h{n}"
        self.outer, self.inner = f"uk{os.getpid() % 10000}o{n}", f"uk{os.getpid() % 10000}i{n}"
        self.subnet = 200 + n
        self.address = f"10.200.{self.subnet}.2"

    def up(self) -> None:
        net, name = f"10.200.{self.subnet}", self.name
        for cmd in (
            f"ip netns add {name}",
            f"ip link add {self.outer} type veth peer name {self.inner}",
            f"ip link set {self.inner} netns {name}",
            f"ip addr add {net}.1/24 dev {self.outer}",
            f"ip link set {self.outer} up",
            f"ip netns exec {name} ip addr add {net}.2/24 dev {self.inner}",
            f"ip netns exec {name} ip link set {self.inner} up",
            f"ip netns exec {name} ip link set lo up",
        ):
            subprocess.run(cmd.split(), check=True, capture_output=True)

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


async def test_services_on_separate_hosts_in_network_namespaces(tmp_path):
    """Off loopback only TLS may be used: each host has its certificate from one CA (ukernel keys)."""
    reason = _netns_unavailable()
    if reason is not None:
        print(f"skipped: separate network namespaces: {reason}")
        pytest.skip(f"separate network namespaces: {reason}")
    hosts = [NetnsHost(0), NetnsHost(1)]
    keys.init_ca(tmp_path / "keys")
    for name in [host.address for host in hosts] + ["kernel"]:
        keys.issue(name, tmp_path / "keys")
    tls = ["--tls", str(tmp_path / "keys")]
    forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()  # put back afterwards
    try:
        for host in hosts:
            host.up()
        with trio.fail_after(TIMEOUT):
            embedded = await ukernel.run_async("nginx", ["nginx", "3"])
            async with trio.open_nursery() as nursery:
                a, b = hosts
                mm = await Serve(["mm"], f"tcp://{a.address}:7001", {}, ["ip", "netns", "exec", a.name], tls).start(
                    nursery
                )
                # vfs on host b reaches its mm on host a through this namespace (routed by the kernel's host)
                subprocess.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], capture_output=True)
                for host, other in ((a, b), (b, a)):
                    subprocess.run(
                        [
                            "ip",
                            "netns",
                            "exec",
                            host.name,
                            "ip",
                            "route",
                            "add",
                            f"10.200.{other.subnet}.0/24",
                            "via",
                            f"10.200.{host.subnet}.1",
                        ],
                        capture_output=True,
                    )
                vfs = await Serve(
                    ["vfs", "pid"], f"tcp://{b.address}:7001", {"mm": mm}, ["ip", "netns", "exec", b.name], tls
                ).start(nursery)
                remote = {"mm": mm, "vfs": vfs, "pid": vfs}
                result = await ukernel.run_async("nginx", ["nginx", "3"], remote=remote, tls=tls[1])
                nursery.cancel_scope.cancel()
    finally:
        for host in hosts:
            host.down()
        subprocess.run(["sysctl", "-qw", f"net.ipv4.ip_forward={forwarding}"], capture_output=True)
    assert result.problems == [] and result.exit_code == embedded.exit_code == 0
    assert result.stdout == embedded.stdout
    assert requests(result.trace) == requests(embedded.trace)
    assert {e["node"] for e in result.trace if e["type"] == "request"} == {"local", mm, vfs}
