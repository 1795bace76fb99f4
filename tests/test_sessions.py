"""Per-kernel sessions on a served service, their reclaim, large messages, unencodable replies.

Nodes run in the test process (fast) unless the test is about ``ukernel serve`` itself; the
raw client here speaks the wire of tcp.py and node.py (the secret's handshake and records from
spec_client.py, then ``ukernel.session``). Waits for a log line are bounded by a hang detector, never
asserted on time.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import msgpack
import pytest
import trio
from conftest import program, read_line
from spec_client import SpecSession, packb
from test_distributed import NSDEMO  # a namespaces demo whose output names its pid and status

import services
import ukernel
from ukernel import abi
from ukernel.cli import main
from ukernel.config import Config
from ukernel.ipc import chunks, tcp
from ukernel.ipc import endpoint as endpoint_module
from ukernel.ipc import node as node_server
from ukernel.ipc import session as session_module
from ukernel.ipc.service import DEFERRED, Service, op

SECRET = b"sessions-secret"
AUTH = tcp.Auth(SECRET, insecure=True)  # the nodes here listen on loopback TCP
TIMEOUT = 30
UKERNEL = [sys.executable, "-m", "ukernel.cli"]
ENV = dict(os.environ, UKERNEL_SECRET=SECRET.decode(), PYTHONPATH=str(Path(__file__).resolve().parent.parent))


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET.decode())


class Client:
    """A peer on the wire: the documented handshake, then requests answered by msgid."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.wire = SpecSession(SECRET)
        self.ids = itertools.count(1)
        self.others: dict[int, list] = {}  # replies that came while waiting for another

    @classmethod
    async def connect(
        cls, url: str, session: str | None = None, timeout: float | None = None, trace: bool = False
    ) -> Client:
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        client = cls(await trio.open_tcp_stream(host, int(port)))
        await client.stream.send_all(client.wire.answer(await client.recv(), trace=trace))
        verdict = await client.recv()
        assert client.wire.accept(verdict), verdict
        if session is not None:
            client.bound = await client.result("ukernel.session", {"id": session, "timeout": timeout})
        return client

    async def recv(self):
        while (obj := self.wire.next()) is None:
            data = await self.stream.receive_some(1 << 16)
            if not data:
                raise EOFError
            self.wire.feed(data)
        return obj

    async def send(self, obj) -> None:
        await self.stream.send_all(self.wire.seal_all(packb(obj)))

    async def call(self, method: str, args: dict | None = None) -> list:
        """[1, msgid, error, result] of one request (trace notifications skipped)."""
        msgid = next(self.ids)
        await self.send([0, msgid, method, [args or {}, {}]])
        return await self.reply_to(msgid)

    async def reply_to(self, msgid: int) -> list:
        while msgid not in self.others:
            reply = await self.recv()
            if reply[0] == 1:
                self.others[reply[1]] = reply
        return self.others.pop(msgid)

    async def result(self, method: str, args: dict | None = None):
        reply = await self.call(method, args)
        assert reply[2] is None, reply
        return reply[3]

    async def aclose(self) -> None:
        await self.stream.aclose()


async def serve(nursery: trio.Nursery, names: list[str], config: Config | None = None, **kw) -> str:
    """A node in this process serving ``names`` with one set of services per kernel session,
    as ``ukernel serve`` does."""
    config = config or Config()
    factory = partial(lambda: [services.build(name, config) for name in names])
    settings = {name: services.settings_of(name, config) for name in names}
    return await nursery.start(
        partial(node_server.serve_services, factory, "tcp://127.0.0.1:0", AUTH, settings=settings, **kw)
    )


async def logged(caplog, text: str) -> str:
    """The first log line containing ``text``, once it is there."""
    while True:
        for record in caplog.records:
            if text in record.getMessage():
                return record.getMessage()
        await trio.sleep(0.01)


# --- per-kernel state --------------------------------------------------------------------------
SAY = program(
    """
    from ukernel.abi import O_CREAT, O_RDONLY, O_WRONLY

    async def main(sys, argv):
        fd = await sys.open("/mine", O_WRONLY | O_CREAT)
        await sys.write(fd, argv[1].encode())
        await sys.close(fd)
        await sys.nanosleep(0.01)  # the other run writes its own /mine meanwhile
        fd = await sys.open("/mine", O_RDONLY)
        await sys.write(1, b"%s run, /mine holds %s\\n" % (argv[1].encode(), await sys.read(fd, 100)))
        return 0
    """
)


async def test_two_kernels_at_once_and_one_after_another_against_one_serve_see_only_their_own():
    """The issue's case: a second run's stdout began with the first run's output."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                partial(
                    trio.run_process,
                    [*UKERNEL, "serve", "vfs", "--listen", "tcp://127.0.0.1:0", "--insecure"],
                    stderr=subprocess.PIPE,
                    env=ENV,
                    check=False,
                )
            )
            line = await read_line(process.stderr)
            assert line.startswith("ukernel: serving vfs on "), line
            url = line.rsplit(" on ", 1)[1]
            run = partial(ukernel.run_async, "/bin/say", files={"/bin/say": SAY}, remote={"vfs": url}, insecure=True)
            results = {}

            async def one(name: str) -> None:
                results[name] = await run(["say", name])

            async with trio.open_nursery() as both:
                both.start_soon(one, "first")
                both.start_soon(one, "second")
            results["third"] = await run(["say", "third"])
            process.terminate()
    for name, result in results.items():
        assert result.problems == [] and result.exit_code == 0
        assert result.stdout == b"%s run, /mine holds %s\n" % (name.encode(), name.encode())


async def test_two_sessions_have_their_own_handles():
    """Fresh services per session number their handles alike, and neither reaches the other's."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["vfs"])
            a = await Client.connect(url, "kernel-a")
            b = await Client.connect(url, "kernel-b")
            assert a.bound == {"session": "kernel-a", "resumed": False, "grace": 30.0}
            assert b.bound == {"session": "kernel-b", "resumed": False, "grace": 30.0}
            files_a = (await a.result("vfs.init_files"))["files"]
            fs_a = (await a.result("vfs.init_fs"))["fs"]
            files_b = (await b.result("vfs.init_files"))["files"]
            assert files_a == files_b  # the same number, two files_structs
            fd = await a.result("vfs.open", {"fs": fs_a, "files": files_a, "path": "/secret", "flags": 0o101})
            assert await a.result("vfs.write", {"files": files_a, "fd": fd, "data": b"a's"}) == 3
            read = await b.call("vfs.read", {"files": files_b, "fd": fd, "n": 10})
            assert read[2]["name"] == "EBADF"
            fs_b = (await b.result("vfs.init_fs"))["fs"]
            opened = await b.call("vfs.open", {"fs": fs_b, "files": files_b, "path": "/secret", "flags": 0})
            assert opened[2]["name"] == "ENOENT"
            nursery.cancel_scope.cancel()


async def test_a_node_forwards_the_kernels_session_so_what_it_reaches_through_it_is_one_state():
    """namespaces (node 1) calls pid and vfs (nodes 2, 3) in the session of the kernel, which
    reaches pid and vfs directly too: the pid namespace it made and the mount namespace it
    asked for are the kernel's, as embedded. Two kernels at once keep them apart."""
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("/bin/nsdemo", ["nsdemo"], files={"/bin/nsdemo": NSDEMO})
        async with trio.open_nursery() as nursery:
            pid = await serve(nursery, ["pid"])
            vfs = await serve(nursery, ["vfs"])
            ns = await serve(nursery, ["namespaces"], remote={"pid": pid, "vfs": vfs})
            remote = {"pid": pid, "vfs": vfs, "namespaces": ns}
            results = []

            async def one() -> None:
                run = ukernel.run_async(
                    "/bin/nsdemo", ["nsdemo"], files={"/bin/nsdemo": NSDEMO}, remote=remote, insecure=True
                )
                results.append(await run)

            async with trio.open_nursery() as both:
                both.start_soon(one)
                both.start_soon(one)
            nursery.cancel_scope.cancel()
    assert embedded.stdout == b"pid 1 in its namespace, status 7\n"
    for result in results:
        assert result.problems == [] and result.stdout == embedded.stdout
        assert [(e["dst"], e["op"]) for e in result.trace if e["type"] == "request"] == [
            (e["dst"], e["op"]) for e in embedded.trace if e["type"] == "request"
        ]


async def test_a_kernel_whose_connection_breaks_finds_its_session_again(caplog):
    caplog.set_level(logging.WARNING, logger="ukernel")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm"], grace=600)
            async with ukernel.boot(remote={"mm": url}, insecure=True, heartbeat=0.05, rpc_timeout=1.0) as kernel:
                mm = (await kernel.call("mm", "mm_init", {}))["mm"]
                before = await kernel.call("mm", "accounting", {})
                endpoint = kernel.router.endpoints["mm"]
                await endpoint.conn.stream.aclose()  # the link breaks under the kernel
                line = await logged(caplog, "reconnected to mm")
                assert await kernel.call("mm", "accounting", {}) == before
                await kernel.call("mm", "mmput", {"mm": mm})
            nursery.cancel_scope.cancel()
    assert line.endswith("; the same server instance and session: no state lost")


async def test_a_kernel_back_after_the_grace_period_is_told_its_session_was_reclaimed(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="ukernel")
    monkeypatch.setattr(endpoint_module, "BACKOFF_MIN", 0.3)  # the redial comes well after grace 0
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm"], grace=0)
            async with ukernel.boot(remote={"mm": url}, insecure=True, heartbeat=0.05, rpc_timeout=1.0) as kernel:
                mm = (await kernel.call("mm", "mm_init", {}))["mm"]
                endpoint = kernel.router.endpoints["mm"]
                while (endpoint.last_accounting or {}).get("mms") != 1:  # a heartbeat saw it
                    await trio.sleep(0.01)
                await endpoint.conn.stream.aclose()
                reclaimed = await logged(caplog, "reclaimed session")
                line = await logged(caplog, "reconnected to mm")
                with pytest.raises(OSError) as err:
                    await kernel.call("mm", "mmput", {"mm": mm})
                assert err.value.errno == abi.EINVAL
            nursery.cancel_scope.cancel()
    assert reclaimed.startswith(f"ukernel: reclaimed session {kernel.session_id}, lost ")
    assert line.endswith(
        "; the same server instance, but it had reclaimed our session (away past its grace period): "
        "all state was lost; its handles are gone: 1 frame_refs, 1 frames, 1 mms, 1 users"
    )


async def test_a_session_whose_callee_is_unreachable_is_eio_and_the_node_serves_on():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as pid_nursery:
                pid = await serve(pid_nursery, ["pid"])
                vfs = await serve(nursery, ["vfs"])
                ns = await serve(nursery, ["namespaces"], remote={"pid": pid, "vfs": vfs})
                pid_nursery.cancel_scope.cancel()  # gone after the node's start
            client = await Client.connect(ns)
            refused = await client.call("namespaces.init_nsproxy", {"pid_ns": 1, "mnt_ns": 1})
            assert await client.result("namespaces.ping") == "namespaces"
            bound = await client.call("ukernel.session", {"id": "k"})
            nursery.cancel_scope.cancel()
    assert refused[2]["name"] == "EIO" and refused[2]["message"].startswith(f"remote: pid at {pid}: ECONNREFUSED")
    assert bound[2] == refused[2]


# --- reclaim -----------------------------------------------------------------------------------
async def test_a_lost_kernel_is_reclaimed_after_the_grace_period_and_accounted(caplog):
    caplog.set_level(logging.INFO, logger="ukernel.tcp")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm", "vfs"], grace=0.05)
            lost = await Client.connect(url, "lost-kernel")
            for _ in range(2):
                await lost.result("mm.mm_init", {"code_size": 4096})
            await lost.result("vfs.init_files")
            await lost.aclose()  # gone without ukernel.end: a killed kernel
            line = await logged(caplog, "reclaimed session lost-kernel")
            assert line.endswith(
                "(grace 0.05 s): mm: 2 frame_refs, 2 frames, 2 mms, 2 users; "
                "vfs: 3 f_count, 3 fds, 1 files_refs, 1 files_structs, 1 mnt_namespaces, 1 open_files"
            )
            other = await Client.connect(url, "next-kernel")
            assert other.bound["resumed"] is False
            assert await other.result("ukernel.accounting") == {
                "sessions": 1,  # next-kernel's
                "ended": 0,
                "reclaimed": 1,
                "reclaimed_held": {"mm": MM | {"mms": 2, "users": 2, "frames": 2, "frame_refs": 2}, "vfs": VFS_INIT},
                "held": {"mm": MM, "vfs": VFS},
            }
            await other.result("vfs.init_files")
            assert (await other.result("ukernel.accounting"))["held"] == {"mm": MM, "vfs": VFS_INIT}
            again = await Client.connect(url, "lost-kernel")  # the lost kernel back, too late
            assert again.bound["resumed"] is False
            assert (await again.result("mm.accounting"))["mms"] == 0
            nursery.cancel_scope.cancel()


MM = {"faults": 0, "mms": 0, "users": 0, "frames": 0, "frame_refs": 0}  # a fresh mm's accounting
VFS = {"faults": 0, "files_structs": 0, "files_refs": 0, "fs_structs": 0, "fs_users": 0, "open_files": 0}
VFS |= {"f_count": 0, "fds": 0, "mnt_namespaces": 1, "pipes": 0, "orphan_inodes": 0, "waiters": 0}
#: after vfs.init_files: init's files_struct with the console on fds 0, 1, 2
VFS_INIT = VFS | {"files_structs": 1, "files_refs": 1, "open_files": 1, "f_count": 3, "fds": 3, "mnt_namespaces": 1}


async def test_a_kernel_back_within_the_grace_period_finds_its_state():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm"], grace=600)
            first = await Client.connect(url, "k")
            mm = (await first.result("mm.mm_init", {"code_size": 4096}))["mm"]
            await first.aclose()
            back = await Client.connect(url, "k")
            assert back.bound["resumed"] is True
            assert (await back.result("mm.accounting"))["mms"] == 1
            await back.result("mm.mmput", {"mm": mm})
            assert (await back.result("mm.accounting"))["mms"] == 0
            nursery.cancel_scope.cancel()


async def test_a_silent_kernel_is_dropped_after_its_rpc_timeout_then_reclaimed(caplog):
    """A stopped kernel (SIGSTOP) keeps its socket open but says nothing."""
    caplog.set_level(logging.INFO, logger="ukernel.tcp")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm"], grace=0.05)
            stopped = await Client.connect(url, "stopped", timeout=0.1)
            await stopped.result("mm.mm_init", {"code_size": 4096})
            assert (await logged(caplog, "dropping peer")).endswith(": silent for 0.1 s (its rpc_timeout)")
            assert (await logged(caplog, "reclaimed session stopped")).endswith(
                ": mm: 1 frame_refs, 1 frames, 1 mms, 1 users"
            )
            with pytest.raises((EOFError, trio.BrokenResourceError)):
                await stopped.call("mm.ping")
            nursery.cancel_scope.cancel()


async def test_runs_that_end_free_their_session_at_once_so_mms_no_longer_grow(caplog):
    """The issue's case: the served mm's mms went 0, 2, 4 over two runs."""
    caplog.set_level(logging.INFO, logger="ukernel.tcp")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm"], grace=600)
            for n in range(1, 4):
                result = await ukernel.run_async("hello", ["hello"], remote={"mm": url}, insecure=True)
                assert result.problems == [] and result.exit_code == 0
                while sum("ended; freed" in r.getMessage() for r in caplog.records) < n:
                    await trio.sleep(0.01)
            probe = await Client.connect(url)
            accounting = await probe.result("ukernel.accounting")
            nursery.cancel_scope.cancel()
    assert accounting == {"sessions": 0, "ended": 3, "reclaimed": 0, "reclaimed_held": {}, "held": {}}


WAIT = program(
    """
    async def main(sys, argv):
        await sys.write(1, b"up\\n")
        await sys.read(0, 1)  # input that never comes (the pipe stays open): no deadlock, a wait
    """
)


async def test_a_killed_ukernel_run_is_reclaimed_by_ukernel_serve_after_its_grace(tmp_path):
    prog = tmp_path / "wait.py"
    prog.write_bytes(WAIT)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            serve_args = [
                *UKERNEL,
                "serve",
                "mm",
                "--listen",
                "tcp://127.0.0.1:0",
                "--insecure",
                "--session-grace",
                "0.05",
            ]
            server = await nursery.start(
                partial(trio.run_process, serve_args, stderr=subprocess.PIPE, env=ENV, check=False)
            )
            url = (await read_line(server.stderr)).rsplit(" on ", 1)[1]
            run_args = [*UKERNEL, "run", "--insecure", "--remote", f"mm={url}", str(prog)]
            kernel = await nursery.start(
                partial(trio.run_process, run_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV, check=False)
            )
            assert await read_line(kernel.stdout) == "up"
            kernel.send_signal(signal.SIGKILL)
            while "reclaimed session" not in (line := await read_line(server.stderr)):
                pass
            assert "(grace 0.05 s): mm: " in line and " 2 mms, " in line  # init's and the program's
            probe = await Client.connect(url)
            accounting = await probe.result("ukernel.accounting")
            server.terminate()
    assert accounting["sessions"] == 0 and accounting["reclaimed"] == 1 and accounting["held"] == {}
    assert accounting["reclaimed_held"]["mm"]["mms"] == 2  # init's and the program's (their frames vary with size)


# --- large messages ----------------------------------------------------------------------------
BIG = program(
    """
    from ukernel.abi import O_CREAT, O_RDWR, SEEK_SET

    async def main(sys, argv):
        data = bytes(range(256)) * (int(argv[1]) << 12)
        fd = await sys.open("/big", O_CREAT | O_RDWR)
        written = await sys.write(fd, data)
        await sys.lseek(fd, 0, SEEK_SET)
        back = await sys.read(fd, len(data))
        await sys.write(1, b"%d %d %s\\n" % (written, len(back), str(back == data).encode()))
        return 0
    """
)


async def test_a_64_mib_write_through_a_remote_vfs_reads_back_equal():
    config = Config(memory="256M")
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["vfs"], config)
            result = await ukernel.run_async(
                "/bin/big",
                ["big", "64"],
                files={"/bin/big": BIG},
                remote={"vfs": url},
                insecure=True,
                memory="256M",
                trace=False,
            )
            nursery.cancel_scope.cancel()
    assert result.problems == [] and result.exit_code == 0
    assert result.stdout == b"67108864 67108864 True\n"


def test_chunks_of_two_messages_interleave_and_join_to_what_was_sent():
    splitter, joiner = chunks.Splitter(), chunks.Joiner()
    small = msgpack.packb([0, 1, "vfs.ping", [{}, {}]])
    one = msgpack.packb([0, 2, "vfs.write", [{"data": b"a" * (3 * chunks.CHUNK_SIZE)}, {}]], use_bin_type=True)
    two = msgpack.packb([1, 3, None, b"b" * (chunks.CHUNK_SIZE + 1)], use_bin_type=True)
    assert list(splitter.frames(small)) == [small]
    pieces_one, pieces_two = list(splitter.frames(one)), list(splitter.frames(two))
    assert len(pieces_one) == 4 and len(pieces_two) == 2
    assert all(len(p) <= chunks.CHUNK_SIZE + 64 for p in pieces_one + pieces_two)
    got = []
    for piece in [pieces_one[0], pieces_two[0], *pieces_one[1:3], pieces_two[1], pieces_one[3]]:
        whole = joiner.feed(msgpack.unpackb(piece, raw=False))
        if whole is not None:
            got.append(whole)
    assert got == [msgpack.unpackb(two, raw=False), msgpack.unpackb(one, raw=False)]
    assert joiner.parts == {} and joiner.buffered == 0


def test_chunks_past_the_limit_or_malformed_end_the_connection():
    joiner = chunks.Joiner(limit=10)
    with pytest.raises(ValueError, match="a message larger than 10 bytes"):
        joiner.feed([2, chunks.METHOD, [{"id": 1, "data": b"x" * 11, "end": False}, {}]])
    with pytest.raises(ValueError, match="malformed ukernel.chunk"):
        chunks.Joiner().feed([2, chunks.METHOD, [{"id": "1", "data": b"x"}, {}]])
    with pytest.raises(ValueError, match="bad msgpack in chunks"):
        chunks.Joiner().feed([2, chunks.METHOD, [{"id": 1, "data": b"\xc1", "end": True}, {}]])


async def test_a_peer_sending_chunks_past_the_limit_is_dropped_and_others_are_served(monkeypatch, caplog):
    monkeypatch.setattr(chunks, "MAX_MESSAGE", 3 * chunks.CHUNK_SIZE)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["pid"])
            greedy = await Client.connect(url, "greedy")
            piece = b"x" * chunks.CHUNK_SIZE
            try:
                for _ in range(64):
                    await greedy.send([2, chunks.METHOD, [{"id": 1, "data": piece, "end": False}, {}]])
            except trio.BrokenResourceError:
                pass  # hung up on
            await logged(caplog, f"a message larger than {3 * chunks.CHUNK_SIZE} bytes (in chunks)")
            with pytest.raises((EOFError, trio.BrokenResourceError)):
                await greedy.recv()
            other = await Client.connect(url, "other")
            assert await other.result("pid.ping") == "pid"
            nursery.cancel_scope.cancel()


# --- unencodable replies -----------------------------------------------------------------------
class Overflow(Service):
    """A service whose answers msgpack cannot carry: at once, deferred, and in a trace event."""

    name = "signals"

    def __init__(self):
        super().__init__()
        self.waiting = None

    @op
    async def double(self, req, n: int):
        return n * 2

    @op
    async def wait(self, req):
        self.waiting = req.defer()
        return DEFERRED

    @op
    async def wake(self, req, n: int):
        await self.reply(self.waiting, {"n": n * 2})
        self.trace_event("odd", "wake", value={n})  # a set: no msgpack type
        return "woken"


async def test_an_unencodable_reply_is_eio_to_its_caller_and_the_node_keeps_serving(caplog):
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, lambda: [Overflow()], "tcp://127.0.0.1:0", AUTH)
            client = await Client.connect(url, "k", trace=True)
            fine = await client.call("signals.double", {"n": 2**62})
            too_big = await client.call("signals.double", {"n": 2**63})
            msgid = next(client.ids)
            await client.send([0, msgid, "signals.wait", [{}, {}]])
            woken = await client.call("signals.wake", {"n": 2**64 - 1})
            deferred = await client.reply_to(msgid)
            pong = await client.call("signals.ping")
            nursery.cancel_scope.cancel()
    assert fine[2:] == [None, 2**63]
    assert too_big[2]["name"] == "EIO" and too_big[2]["message"].startswith(
        "signals.double answered what msgpack cannot carry: "
    )
    assert woken[3] == "woken"
    assert deferred[1] == msgid and deferred[2]["name"] == "EIO"
    assert deferred[2]["message"].startswith("signals.wait answered what msgpack cannot carry: ")
    assert pong[3] == "signals"
    assert "a trace event for " in caplog.text and " msgpack cannot carry was left out: " in caplog.text


async def test_issue_cases_through_a_served_mm_and_vfs_are_errnos_not_a_dead_node():
    """mm.mm_init(code_size=2**64-1) and a 2**63 lseek: an errno each, then the node still serves."""
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["mm", "vfs"])
            client = await Client.connect(url, "k")
            init = await client.call("mm.mm_init", {"code_size": 2**64 - 1})
            files = (await client.result("vfs.init_files"))["files"]
            fs = (await client.result("vfs.init_fs"))["fs"]
            fd = await client.result("vfs.open", {"fs": fs, "files": files, "path": "/f", "flags": 0o101})
            seek = await client.call("vfs.lseek", {"files": files, "fd": fd, "offset": 2**63, "whence": abi.SEEK_SET})
            assert await client.result("mm.ping") == "mm" and await client.result("vfs.ping") == "vfs"
            nursery.cancel_scope.cancel()
    assert init[2]["name"] == "ENOMEM"
    assert seek[2]["name"] == "EINVAL"


def test_a_negative_session_grace_is_one_line(capsys):
    assert main(["serve", "mm", "--session-grace", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "ukernel: serve: --session-grace: seconds >= 0 (0: reclaim a lost kernel's state at once), not -1.0\n"


async def test_a_peer_naming_sessions_without_end_is_refused_past_the_limit_and_others_are_served(monkeypatch):
    monkeypatch.setattr(session_module, "MAX_SESSIONS", 3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await serve(nursery, ["pid"])
            greedy = await Client.connect(url)
            bound = [await greedy.call("ukernel.session", {"id": f"s{n}"}) for n in range(4)]
            assert [b[3]["session"] for b in bound[:3]] == ["s0", "s1", "s2"]  # s0 and s1 wait out their grace
            assert bound[3][2] == {
                "errno": abi.EAGAIN,
                "name": "EAGAIN",
                "message": "EAGAIN: this node has 3 sessions already (kernels lost, or ids without end)",
            }
            assert await greedy.result("pid.ping") == "pid"  # still bound to s2
            again = await Client.connect(url, "s1")  # a live one can still be named
            assert again.bound["resumed"] is True
            nursery.cancel_scope.cancel()
