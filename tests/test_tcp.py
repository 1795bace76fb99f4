"""Services in other processes: msgpack-rpc over TCP and Unix sockets (ukernel/ipc/tcp.py)."""

from __future__ import annotations

import socket
from functools import partial

import msgpack
import pytest
import trio
import trio.testing
from spec_client import SpecSession, packb

import ukernel
from services import SERVICES, settings_of
from services.mm import MmService
from services.namespaces import NamespacesService
from services.pid import PidService
from services.vfs import VfsService
from ukernel import abi
from ukernel.config import Config
from ukernel.ipc import node as node_server
from ukernel.ipc import protocol, tcp
from ukernel.ipc.local import HostedInbox
from ukernel.ipc.router import BootError
from ukernel.ipc.service import Service, op

SECRET = b"test-secret-42"
AUTH = tcp.Auth(SECRET, insecure=True)  # loopback TCP and Unix sockets: the secret's handshake and MACs
TIMEOUT = 10
DEFAULTS = {name: settings_of(name, Config()) for name in SERVICES}  # what a node says services built bare run with


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET.decode())


# --- framing ------------------------------------------------------------------------------
async def test_framing_round_trip_with_fragmented_writes():
    left, right = trio.testing.memory_stream_pair()
    frames = [
        protocol.encode_request(1, "pid.alloc_pid", {"ns": 1}, {"pid": 1}),
        protocol.encode_response(1, None, {"data": b"\x00" * 70000, "s": "é"}),
        protocol.encode_request(2, "vfs.write_file", {"path": "/x", "data": bytes(range(256)) * 300}, {}),
    ]
    wire = b"".join(frames)
    reader = tcp.FramedStream(right)

    async def write_in_bits():
        for i in range(0, len(wire), 7):  # 7 bytes at a time: frames split anywhere
            await left.send_all(wire[i : i + 7])
        await left.aclose()

    got = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_in_bits)
            while True:
                try:
                    got.append(msgpack.packb(await reader.receive_obj(), use_bin_type=True))
                except EOFError:
                    break
    assert got == frames
    assert [protocol.decode(f) for f in got] == [protocol.decode(f) for f in frames]


async def test_a_frame_larger_than_the_bound_is_refused():
    left, right = trio.testing.memory_stream_pair()
    reader = tcp.FramedStream(right, max_frame=1024)
    await left.send_all(msgpack.packb([0, 1, "pid.x", [{"data": b"x" * 5000}, {}]], use_bin_type=True))
    with pytest.raises(ValueError, match="larger than"):
        await reader.receive_obj()


def test_secret_from_a_file_or_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "secret"
    path.write_bytes(b"from-file\n")
    assert tcp.load_secret(path) == b"from-file"
    assert tcp.load_secret() == SECRET
    monkeypatch.delenv("UKERNEL_SECRET")
    with pytest.raises(ValueError, match="UKERNEL_SECRET"):
        tcp.load_secret()


# --- a raw client written against the spec -----------------------------------------------
class RawClient:
    """A msgpack-rpc client on a plain socket, the handshake and records from the spec (spec_client.py)."""

    def __init__(self, sock: trio.socket.SocketType):
        self.sock = trio.SocketStream(sock)  # only for send_all/receive_some: no framing from ukernel
        self.session = SpecSession(SECRET)

    async def recv(self):
        while (obj := self.session.next()) is None:
            data = await self.sock.receive_some(65536)
            if not data:
                raise EOFError
            self.session.feed(data)
        return obj

    async def send(self, obj) -> None:
        data = packb(obj)
        await self.sock.send_all(self.session.seal(data) if self.session.send_key else data)

    async def handshake(self, secret: bytes) -> dict:
        await self.sock.send_all(self.session.answer(await self.recv(), secret=secret))
        verdict = await self.recv()
        self.session.accept(verdict)
        return {k: v for k, v in verdict.items() if k != "mac"}


async def raw_connect(url: str) -> RawClient:
    kind, where = tcp.parse_url(url)
    family = socket.AF_INET if kind == "tcp" else socket.AF_UNIX
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    await sock.connect(where)
    return RawClient(sock)


class Spy(Service):
    name = "pid"
    seen: list = []

    @op
    async def probe(self, req):
        Spy.seen.append(req.msgid)
        return "reached"


async def test_a_wrong_secret_is_refused_before_any_request_is_read(caplog):
    Spy.seen = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, [Spy()], "tcp://127.0.0.1:0", AUTH)
            client = await raw_connect(url)
            answer = client.session.answer(await client.recv(), secret=b"wrong")
            # the request rides in the same write as the bad answer: it must still never be read
            await client.sock.send_all(answer + protocol.encode_request(1, "pid.probe", {}, {}))
            verdict = await client.recv()
            assert verdict["ok"] is False and "secret" in verdict["error"]
            with pytest.raises(EOFError):
                await client.recv()  # disconnected
            await client.sock.aclose()
            with pytest.raises(tcp.HandshakeError, match="refused"):
                await tcp.dial(url, tcp.Auth(b"also wrong", insecure=True))
            nursery.cancel_scope.cancel()
    assert Spy.seen == []
    assert "refused peer" in caplog.text


@pytest.mark.parametrize("where", ["tcp", "unix"])
async def test_a_served_pid_answers_a_plain_msgpack_rpc_client(where, tmp_path):
    listen = "tcp://127.0.0.1:0" if where == "tcp" else f"unix:{tmp_path / 'pid.sock'}"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, [PidService()], listen, AUTH)
            client = await raw_connect(url)
            assert await client.handshake(SECRET) == {"ok": True}
            # three requests in flight at once, one of them for a service not served here
            await client.send([0, 10, "pid.ping", [{}, {}]])
            await client.send([0, 11, "pid.no_such_op", [{}, {}]])
            await client.send([0, 12, "mm.ping", [{}, {}]])
            replies = {}
            for _ in range(3):
                kind, msgid, error, result = await client.recv()
                assert kind == 1
                replies[msgid] = (error and error["name"], result)
            assert replies == {10: (None, "pid"), 11: ("ENOSYS", None), 12: ("ENOSYS", None)}
            await client.sock.aclose()
            nursery.cancel_scope.cancel()


def test_serving_a_service_without_its_callees_is_refused():
    with pytest.raises(BootError, match="namespaces calls pid, vfs: serve namespaces pid vfs together, or name where"):
        node_server.check_hosted([NamespacesService()])
    node_server.check_hosted([NamespacesService(), PidService()], remote=["vfs"])
    node_server.check_hosted([VfsService()])  # vfs calls nobody


# --- a kernel with remote services -------------------------------------------------------
def requests(trace: list[dict]) -> list[tuple[str, str]]:
    return [(e["dst"], e["op"]) for e in trace if e["type"] == "request"]


async def test_remote_mm_and_pid_run_nginx_as_an_embedded_kernel_does(tmp_path):
    with trio.fail_after(TIMEOUT):
        embedded = await ukernel.run_async("nginx", ["nginx", "3"])
        async with trio.open_nursery() as nursery:
            url_mm = await nursery.start(
                partial(node_server.serve_services, [MmService()], "tcp://127.0.0.1:0", AUTH, settings=DEFAULTS)
            )
            pid_sock = f"unix:{tmp_path / 'pid.sock'}"
            url_pid = await nursery.start(
                partial(node_server.serve_services, [PidService()], pid_sock, AUTH, settings=DEFAULTS)
            )
            remote = await ukernel.run_async(
                "nginx", ["nginx", "3"], remote={"mm": url_mm, "pid": url_pid}, insecure=True
            )
            nursery.cancel_scope.cancel()
    assert remote.problems == [] and remote.exit_code == embedded.exit_code == 0
    assert remote.stdout == embedded.stdout
    assert requests(remote.trace) == requests(embedded.trace)
    assert {"mm", "pid"} <= {dst for dst, _ in requests(remote.trace)}


async def test_a_dead_server_turns_calls_into_eio_and_the_kernel_still_shuts_down():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server = trio.CancelScope()

            async def serve(task_status=trio.TASK_STATUS_IGNORED):
                with server:
                    await node_server.serve_services(
                        [PidService()], "tcp://127.0.0.1:0", AUTH, settings=DEFAULTS, task_status=task_status
                    )

            url = await nursery.start(serve)
            async with ukernel.boot(remote={"pid": url}, insecure=True) as kernel:
                assert await kernel.call("pid", "ping", {}) == "pid"
                server.cancel()  # the server process dies
                for _ in range(2):  # in flight when it drops, and after
                    with pytest.raises(OSError) as err:
                        await kernel.call("pid", "ping", {})
                    assert err.value.errno == abi.EIO
            # the kernel shut down, with its reader task, without hanging


class DyingPid(PidService):
    """A pid server that dies once a few pids are out: mid-run, with tasks alive."""

    scope: trio.CancelScope

    @op
    async def alloc_pid(self, req, ns, set_tid=None):
        result = await super().alloc_pid(req, ns, set_tid)
        self.allocated = getattr(self, "allocated", 0) + 1
        if self.allocated == 3:
            DyingPid.scope.cancel()
        return result


async def test_killing_the_server_mid_run_ends_the_run_with_eio_not_a_hang():
    errors = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            DyingPid.scope = trio.CancelScope()

            async def serve(task_status=trio.TASK_STATUS_IGNORED):
                with DyingPid.scope:
                    await node_server.serve_services(
                        [DyingPid()], "tcp://127.0.0.1:0", AUTH, settings=DEFAULTS, task_status=task_status
                    )

            url = await nursery.start(serve)
            try:
                result = await ukernel.run_async("nginx", ["nginx", "3"], remote={"pid": url}, insecure=True)
            except* OSError as group:
                errors = [exc.errno for exc in _leaves(group)]
            else:  # the run ended: what needed pid failed, and check_invariants says so
                assert result.problems
    assert set(errors) <= {abi.EIO}


def _leaves(group):
    for exc in group.exceptions:
        yield from _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]


async def test_remote_needs_a_secret(monkeypatch):
    monkeypatch.delenv("UKERNEL_SECRET")
    with pytest.raises(ValueError, match="^no shared secret: UKERNEL_SECRET is empty or unset$"):  # one, not a group
        async with ukernel.boot(remote={"pid": "tcp://127.0.0.1:1"}, insecure=True):
            pass


async def test_a_hosted_inbox_runs_requests_in_the_reader_only_when_nothing_is_queued():
    """A never_waits service's requests skip its inbox, but never overtake a queued message."""
    inbox = HostedInbox(PidService())
    answered: list[int] = []

    async def reply(frame: bytes) -> None:
        answered.append(protocol.decode(frame).msgid)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await inbox.send(protocol.encode_request(1, "pid.ping", {}, {}), reply)  # from the node's router
            await inbox.post([0, 2, "pid.ping", [{}, {}]], reply)  # a peer's: queued behind #1
            assert answered == []
            nursery.start_soon(inbox.serve)
            while len(answered) < 2:
                await trio.sleep(0.001)
            await inbox.post([0, 3, "pid.ping", [{}, {}]], reply)  # nothing queued: answered in the reader
            assert answered == [1, 2, 3]
            nursery.cancel_scope.cancel()
