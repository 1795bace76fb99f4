"""Services in several nodes: forwarding between nodes, the trace of a distributed run, losing a node.

The nodes here are trio tasks of the test process (fast); tests/test_multiprocess.py
runs the same with one ``ukernel serve`` process per service.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import pytest
import trio
from conftest import FORKS_AFTER_A_LOSS, KILL_POINT, program

import services
import ukernel
import ukernel.api
from services.pid import PidService
from ukernel import abi
from ukernel.config import Config, load_config
from ukernel.ipc import node as node_server
from ukernel.ipc import protocol, tcp
from ukernel.ipc.endpoint import RemoteEndpoint
from ukernel.ipc.router import BootError
from ukernel.kernel.fork import COPY_STEPS, INDEPENDENT_STEPS
from ukernel.kernel.steps import step_groups

SECRET = b"distributed-secret"
AUTH = tcp.Auth(SECRET, insecure=True)  # the nodes here listen on loopback TCP
TIMEOUT = 20

NSDEMO_SOURCE = """
    from ukernel.abi import CLONE_NEWNS, CLONE_NEWPID, O_CREAT, O_RDONLY, O_WRONLY, SIGCHLD


    async def child(sys, arg):
        fd = await sys.open("/out", O_WRONLY | O_CREAT)
        await sys.write(fd, b"pid %d in its namespace" % await sys.getpid())
        await sys.close(fd)
        return 7


    async def main(sys, argv):
        pid = await sys.clone(CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, child)
        _, status = await sys.waitpid(pid, 0)
        fd = await sys.open("/out", O_RDONLY)
        await sys.write(1, await sys.read(fd, 100) + b", status %d\\n" % (status >> 8))
        return 0
    """
NSDEMO = program(NSDEMO_SOURCE)


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET.decode())


def comparable(trace: list[dict]) -> list[dict]:
    """A trace without what differs between runs by nature: wall time, and which node."""
    return [{k: v for k, v in e.items() if k not in ("dur_us", "node")} for e in trace]


async def serve(
    nursery: trio.Nursery, names: list[str], remote: dict | None = None, config: Config | None = None, **kw
) -> str:
    """A node in this process, on a fresh loopback port, hosting ``names`` built from
    ``config`` (default: the defaults) as ``ukernel serve`` builds them."""
    config = config or Config()
    hosted = [services.build(name, config) for name in names]
    settings = {name: services.settings_of(name, config) for name in names}
    listen = partial(node_server.serve_services, hosted, "tcp://127.0.0.1:0", AUTH, remote=remote, settings=settings)
    return await nursery.start(partial(listen, **kw))


async def test_a_served_service_reaches_its_callees_in_other_nodes_and_the_trace_says_where(tmp_path):
    """namespaces (node 1) calls pid (node 2) and vfs (node 3); the kernel has its mm in node 4."""
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("/bin/nsdemo", ["nsdemo"], files={"/bin/nsdemo": NSDEMO})
        async with trio.open_nursery() as nursery:
            mm = await serve(nursery, ["mm"], name="node-mm")
            pid = await serve(nursery, ["pid"], name="node-pid")
            vfs = await serve(nursery, ["vfs"], name="node-vfs")
            ns = await serve(nursery, ["namespaces"], {"pid": pid, "vfs": vfs}, name="node-ns")
            remote = {"mm": mm, "pid": pid, "vfs": vfs, "namespaces": ns}
            result = await ukernel.run_async(
                "/bin/nsdemo", ["nsdemo"], files={"/bin/nsdemo": NSDEMO}, remote=remote, insecure=True
            )
            nursery.cancel_scope.cancel()
    assert embedded.problems == [] and result.problems == []
    assert result.stdout == embedded.stdout == b"pid 1 in its namespace, status 7\n"
    assert comparable(result.trace) == comparable(embedded.trace)
    messages = [e for e in result.trace if e["type"] in ("request", "reply")]
    assert all("node" in e for e in messages) and not any("node" in e for e in embedded.trace)
    forwarded = {(e["src"], e["dst"], e["node"]) for e in messages if e["type"] == "request" and e["src"] != "kernel"}
    assert forwarded == {("namespaces", "pid", "node-pid"), ("namespaces", "vfs", "node-vfs")}
    assert {e["node"] for e in messages if e["type"] == "request" and e["src"] == "kernel"} == {
        "local",
        "node-mm",
        "node-pid",
        "node-vfs",
        "node-ns",
    }


async def test_vfs_served_alone_does_file_io():
    """vfs calls no other service: a node serves it without being told where mm is."""
    source = program(
        """
        from ukernel.abi import O_CREAT, O_RDWR

        async def main(sys, argv):
            fd = await sys.open("/data", O_RDWR | O_CREAT)
            await sys.write(fd, b"x" * 5000)
            await sys.lseek(fd, 4998, 0)
            data = await sys.read(fd, 10)
            await sys.write(1, data + b"|%d" % await sys.lseek(fd, 0, 2))
            return 0
        """
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            vfs = await serve(nursery, ["vfs"])
            result = await ukernel.run_async(
                "/bin/t", ["t"], files={"/bin/t": source}, remote={"vfs": vfs}, insecure=True
            )
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.stdout, result.problems) == (0, b"xx|5000", [])


async def test_all_six_services_remote_run_forktest_as_embedded():
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("forktest", ["forktest", "6"])
        async with trio.open_nursery() as nursery:
            remote = {}
            for name in services.serve_order():
                remote[name] = await serve(nursery, [name], dict(remote))
            result = await ukernel.run_async("forktest", ["forktest", "6"], remote=remote, insecure=True)
            nursery.cancel_scope.cancel()
    assert result.problems == [] and result.exit_code == embedded.exit_code == 0
    assert result.stdout == embedded.stdout
    assert comparable(result.trace) == comparable(embedded.trace)


async def test_a_remote_mm_reports_its_page_faults_into_the_kernels_trace():
    """The fault events an mm in another node takes reach the kernel's trace, in place and
    tied to the kernel's msgids, as in an embedded run."""
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("cow", ["cow"])
        async with trio.open_nursery() as nursery:
            result = await ukernel.run_async(
                "cow", ["cow"], remote={"mm": await serve(nursery, ["mm"], name="n")}, insecure=True
            )
            nursery.cancel_scope.cancel()
    assert result.problems == [] and result.stdout == embedded.stdout
    assert comparable(result.trace) == comparable(embedded.trace)
    faults = [e for e in result.trace if e["type"] == "fault"]
    assert [e["kind"] for e in faults] == ["zero-fill"] * 4 + ["cow-copy"] and {e["node"] for e in faults} == {"n"}


# --- losing a node ------------------------------------------------------------------------
class Killable:
    """A node that the test can kill (cancel) and start again on the same port."""

    def __init__(self, nursery: trio.Nursery, make: type):
        self.nursery, self.make, self.scope, self.url = nursery, make, None, "tcp://127.0.0.1:0"

    async def start(self) -> str:
        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            with trio.CancelScope() as self.scope:
                settings = {"pid": services.settings_of("pid", Config())}
                await node_server.serve_services(
                    [self.make()], self.url, AUTH, settings=settings, task_status=task_status
                )

        self.url = await self.nursery.start(serve)
        return self.url

    def kill(self) -> None:
        self.scope.cancel()


async def test_a_silent_node_is_lost_after_the_timeout_and_every_call_fails_with_eio(caplog):
    """A node that stops answering but keeps the connection open: heartbeats notice within rpc_timeout."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def mute(stream):  # answers the handshake, then reads everything and says nothing
                conn = tcp.FramedStream(stream)
                await tcp.server_handshake(conn, SECRET, "mute", "1")
                with contextlib.suppress(EOFError):
                    while True:
                        await conn.receive_obj()

            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            await nursery.start(trio.serve_listeners, mute, listeners)
            port = listeners[0].socket.getsockname()[1]
            endpoint = RemoteEndpoint("pid", f"tcp://127.0.0.1:{port}", AUTH, heartbeat=0.05, timeout=0.3)
            await endpoint.start(nursery)
            replies = []

            async def reply(frame):
                replies.append(protocol.decode(frame))

            await endpoint.send(protocol.encode_request(1, "pid.ping", {}, {}), reply)
            with trio.fail_after(2):  # a hang detector only: rpc_timeout is 0.3 s
                await _wait_for(lambda: replies)
            assert (
                replies[0].error["name"] == "EIO" and "no answer to heartbeats for 0.3 s" in replies[0].error["message"]
            )
            await endpoint.send(protocol.encode_request(2, "pid.ping", {}, {}), reply)
            assert [r.error["name"] for r in replies] == ["EIO", "EIO"]  # later calls: at once
            nursery.cancel_scope.cancel()
    assert f"lost pid at tcp://127.0.0.1:{port} (mute): no answer to heartbeats for 0.3 s" in caplog.text


async def _wait_for(condition) -> None:
    while not condition():
        await trio.sleep(0.01)


async def test_losing_a_node_mid_run_is_eio_a_clean_result_and_a_redial_gets_it_back(caplog):
    caplog.set_level(logging.WARNING, "ukernel")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            pid_node = Killable(nursery, PidService)
            url = await pid_node.start()
            settings = {"remote": {"pid": url}, "heartbeat": 0.05, "rpc_timeout": 0.5, "insecure": True}

            def console(data: bytes) -> None:
                if data == KILL_POINT:
                    pid_node.kill()

            async with ukernel.boot(files={"/bin/t": FORKS_AFTER_A_LOSS}, console=console, **settings) as kernel:
                await _wait_for(lambda: kernel.router.endpoints["pid"].last_accounting)  # a heartbeat answered
                status, error = await ukernel.api._run_watched(kernel, "/bin/t", ["t"])
                assert "lost pid at" in error and status == abi.W_EXITCODE(1)
                out = await kernel.call("vfs", "console_output", {})
                assert out.startswith(b"go\nfork: errno 5\nfork: errno 5\nfork: errno 5\n")
                assert await kernel.call("sched", "ping", {}) == "sched"  # the others keep running
                with pytest.raises(OSError) as err:
                    await kernel.call("pid", "ping", {})
                assert err.value.errno == abi.EIO
                # the node comes back on the same port: the endpoint redials, says what was lost
                await pid_node.start()
                endpoint = kernel.router.endpoints["pid"]
                with trio.fail_after(5):
                    await endpoint.connected.wait()
                assert await kernel.call("pid", "ping", {}) == "pid"
                assert await kernel.call("pid", "alloc_pid", {"ns": 1})
            nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if "reconnected" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].endswith(
        "; a new pid instance: all state of the old one was lost; its handles are gone: 1 namespaces"
    ), lines


# --- settings from a TOML file -----------------------------------------------------------
async def test_a_toml_config_file_names_the_remote_services_and_other_settings(tmp_path):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            pid = await serve(nursery, ["pid"])
            config = tmp_path / "cluster.toml"
            config.write_text(
                f'cpus = 2\nrpc_timeout = 3.5\ninsecure = true\n\n[remote]\npid = "{pid}"\n\n[files]\n"/etc/motd" = "hi\\n"\n'
            )
            settings = load_config(config)
            assert settings == {
                "cpus": 2,
                "rpc_timeout": 3.5,
                "insecure": True,
                "remote": {"pid": pid},
                "files": {"/etc/motd": b"hi\n"},
            }
            result = await ukernel.run_async("hello", config=str(config), cpus=1)
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.problems) == (0, [])
    assert {e["node"] for e in result.trace if e["type"] == "request" and e["dst"] == "pid"} == {pid}


def test_a_config_file_with_an_unknown_setting_is_refused(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("cpu = 2\n")
    with pytest.raises(
        ValueError,
        match=r"bad.toml: unknown setting\(s\) cpu; settings are bin_dirs, copy_process, cpu_limit, cpus, fail, ",
    ):
        load_config(config)
    config.write_text("cpus = \n")
    with pytest.raises(ValueError, match="bad.toml: not TOML"):
        load_config(config)


# --- copy steps at once ------------------------------------------------------------------
def test_the_independent_copy_steps_form_one_group_only_when_asked():
    assert [len(g) for g in step_groups(COPY_STEPS, frozenset())] == [1] * 13
    assert [[s.name for s in g] for g in step_groups(COPY_STEPS, INDEPENDENT_STEPS)][2:5] == [
        ["sched_fork"],
        ["copy_semundo", "copy_files", "copy_fs", "copy_sighand", "copy_signal", "copy_mm", "copy_namespaces"],
        ["copy_thread"],
    ]


@pytest.mark.parametrize("step", ["copy_fs", "copy_signal", "copy_mm", "copy_namespaces"])
async def test_parallel_copy_unwinds_in_linux_reverse_order(step, run):
    source = """
    from ukernel.abi import SIGCHLD
    async def main(sys, argv):
        try:
            await sys.clone(SIGCHLD, lambda sys, arg: 0)
        except OSError as exc:
            return exc.errno
        return 0
    """
    serial = await run(source, fail={step: "ENOMEM"})
    parallel = await run(source, fail={step: "ENOMEM"}, parallel_copy=True)
    assert serial.exit_code == parallel.exit_code == abi.ENOMEM

    def undone(trace):
        return [e["step"].removeprefix("undo ") for e in trace if e.get("step", "").startswith("undo ")]

    order = [s.name for s in COPY_STEPS]
    assert undone(parallel.trace) == sorted(undone(parallel.trace), key=order.index, reverse=True)
    # the steps sent together with the failing one may have finished too: they are undone as well
    assert set(undone(serial.trace)) <= set(undone(parallel.trace))
    assert undone(serial.trace)[-1] == undone(parallel.trace)[-1] == "sched_fork"


async def test_parallel_copy_gives_copy_namespaces_the_childs_fs_under_clone_newns(run):
    """CLONE_NEWNS: the new mount table is walked by the child's own fs, copy_fs's reply."""

    def copy_namespaces_args(trace):
        return [e["args"] for e in trace if e.get("type") == "request" and e.get("op") == "copy_namespaces"]

    serial = await run(NSDEMO_SOURCE)
    parallel = await run(NSDEMO_SOURCE, parallel_copy=True)
    assert serial.stdout == parallel.stdout
    assert copy_namespaces_args(parallel.trace) == copy_namespaces_args(serial.trace)
    assert all(args["fs"] is not None for args in copy_namespaces_args(parallel.trace))


async def test_parallel_copy_with_every_service_remote_runs_forktest():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            remote = {}
            for name in services.serve_order():
                remote[name] = await serve(nursery, [name], dict(remote))
            result = await ukernel.run_async(
                "forktest", ["forktest", "6"], remote=remote, parallel_copy=True, insecure=True
            )
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.problems) == (0, [])


# --- settings reach remote services ----------------------------------------------------------
async def test_a_remote_sched_with_one_cpu_is_refused_by_a_run_that_asks_for_two():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            sched = await serve(nursery, ["sched"])
            with pytest.raises(BootError, match=r"^remote sched runs 1 CPU, this run asks for 2 CPUs: serve sched"):
                await ukernel.run_async("hello", cpus=2, remote={"sched": sched}, insecure=True)
            nursery.cancel_scope.cancel()


async def test_a_remote_sched_built_with_the_runs_settings_runs_it():
    config = Config(cpus=2, sched="cfs", seed=3)
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("forktest", ["forktest", "4"], cpus=2, sched="cfs", seed=3)
        async with trio.open_nursery() as nursery:
            sched = await serve(nursery, ["sched"], config=config)
            result = await ukernel.run_async(
                "forktest", ["forktest", "4"], cpus=2, sched="cfs", seed=3, remote={"sched": sched}, insecure=True
            )
            with pytest.raises(BootError, match="remote sched runs sched=cfs, this run asks for sched=rr"):
                await ukernel.run_async("hello", cpus=2, seed=3, remote={"sched": sched}, insecure=True)
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.problems) == (0, [])
    assert sorted(result.stdout.splitlines()) == sorted(embedded.stdout.splitlines())  # two CPUs: any interleaving


async def test_a_node_that_does_not_say_its_settings_or_serves_something_else_is_refused():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            bare = await nursery.start(node_server.serve_services, [PidService()], "tcp://127.0.0.1:0", AUTH)
            with pytest.raises(BootError, match=f"^remote pid: {bare} does not say which settings it runs with"):
                await ukernel.run_async("hello", remote={"pid": bare}, insecure=True)
            mm = await serve(nursery, ["mm"])
            with pytest.raises(BootError, match=f"^remote pid: {mm} serves mm, not pid"):
                await ukernel.run_async("hello", remote={"pid": mm}, insecure=True)
            nursery.cancel_scope.cancel()
