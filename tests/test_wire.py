"""The wire is the MessagePack-RPC spec, and nothing a peer sends can stop a node.

The client here is written from the spec and the handshake in tcp.py's docstring alone: the
stdlib's blocking ``socket``, ``msgpack``, ``hmac`` (in a thread; spec_client.py for the
handshake and the records), none of ukernel's transport code. The nodes listen on loopback
TCP with ``--insecure``: the shared secret's handshake, and a MAC on every record.
"""

from __future__ import annotations

import socket
from functools import partial

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from spec_client import SpecSession, packb

from services.pid import PidService
from ukernel import abi
from ukernel.ipc import node as node_server
from ukernel.ipc import tcp
from ukernel.ipc.service import Service, op
from ukernel.testing import service_client

SECRET = b"wire-secret"
AUTH = tcp.Auth(SECRET, insecure=True)
TIMEOUT = 10


class SpecClient:
    """MessagePack-RPC over a plain socket, with ukernel's documented handshake."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.session = SpecSession(SECRET)

    def recv(self):
        while (obj := self.session.next()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.session.feed(data)
        return obj

    def send(self, obj) -> None:
        self.sock.sendall(self.session.seal(packb(obj)))

    def handshake(self, secret: bytes) -> dict:
        self.sock.sendall(self.session.answer(self.recv(), secret=secret))
        verdict = self.recv()
        self.session.accept(verdict)
        return {k: v for k, v in verdict.items() if k != "mac"}


class Gate(Service):
    """A service whose ``wait`` answers only once the Opener's ``open`` was called: a reply held back."""

    name = "signals"

    def __init__(self):
        super().__init__()
        self.opened = trio.Event()

    @op
    async def wait(self, req):
        await self.opened.wait()
        return "waited"


class Opener(Service):
    name = "sched"

    def __init__(self, gate: Gate):
        super().__init__()
        self.gate = gate

    @op
    async def open(self, req):
        self.gate.opened.set()
        return "opened"


async def test_a_client_written_from_the_spec_gets_spec_replies_out_of_order():
    gate = Gate()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                node_server.serve_services, [PidService(), gate, Opener(gate)], "tcp://127.0.0.1:0", AUTH
            )
            host, port = url.removeprefix("tcp://").rsplit(":", 1)
            replies = await trio.to_thread.run_sync(partial(_spec_session, host, int(port), gate))
            nursery.cancel_scope.cancel()
    first, rest, last = replies
    assert first["verdict"] == {"ok": True}
    assert rest == {
        2: [1, 2, None, {"pid": rest[2][3]["pid"], "numbers": [1]}],
        3: [1, 3, None, "pid"],
        4: [1, 4, {"errno": 38, "name": "ENOSYS", "message": "pid has no op 'no_such_op'"}, None],
        5: [1, 5, {"errno": 22, "name": "EINVAL", "message": rest[5][2]["message"]}, None],
        6: [1, 6, None, {"pid": rest[6][3]["pid"], "numbers": [2]}],
    }
    assert rest[5][2]["message"] == "pid.alloc_pid: argument ns must be int, not str"
    assert sorted(last) == [1, 7] and last[1] == [1, 1, None, "waited"] and last[7] == [1, 7, None, "opened"]


def _spec_session(host: str, port: int, gate: Gate) -> tuple[dict, dict, dict]:
    """Send six requests at once, the first held back by the server; read replies by msgid."""
    client = SpecClient(host, port)
    verdict = client.handshake(SECRET)
    client.send([0, 1, "signals.wait", [{}, {}]])  # answered only after sched.open
    client.send([0, 2, "pid.alloc_pid", [{"ns": 1}, {}]])
    client.send([0, 3, "pid.ping", [{}, {}]])
    client.send([0, 4, "pid.no_such_op", [{}, {}]])
    client.send([0, 5, "pid.alloc_pid", [{"ns": "one"}, {}]])  # a wrong argument type
    client.send([0, 6, "pid.alloc_pid", {"ns": 1}])  # params as a bare map
    rest = {}
    while len(rest) < 5:
        reply = client.recv()
        rest[reply[1]] = reply
    client.send([0, 7, "sched.open", [{}, {}]])
    last = {}
    while len(last) < 2:
        reply = client.recv()
        last[reply[1]] = reply
    client.sock.close()
    return {"verdict": verdict}, rest, last


# --- fuzzing a node ---------------------------------------------------------------------------
def _valid_frame() -> bytes:
    return msgpack.packb([0, 1, "pid.alloc_pid", [{"ns": 1}, {"pid": 1}]], use_bin_type=True)


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8), st.binary(max_size=8)
)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(leaves, inner, max_size=3))
ops = st.sampled_from(["pid.alloc_pid", "pid.free_pid", "pid.ping", "pid.create_pid_ns", "pid.x", "nope", "", "."])
envelopes = st.one_of(
    st.tuples(st.sampled_from([0, 1, 2, 3, -1, None]), values, ops, values).map(list),
    st.tuples(st.just(0), st.integers(0, 2**32), ops, st.tuples(st.dictionaries(st.text(max_size=6), values), values)),
    st.tuples(st.just(2), ops, values).map(list),
    values,
)
attacks = st.one_of(
    st.binary(max_size=300),  # random bytes
    st.integers(1, len(_valid_frame()) - 1).map(lambda n: _valid_frame()[:n]),  # a truncated frame
    st.sampled_from(  # huge declared lengths: str32, bin32, array32, map32, ext32
        [
            b"\xdb\xff\xff\xff\xff",
            b"\xc6\x7f\xff\xff\xffab",
            b"\xdd\xff\xff\xff\xff\x01",
            b"\xdf\x7f\xff\xff\xff",
            b"\xc9\xff\xff\xff\xff\x01",
        ]
    ),
    envelopes.map(lambda obj: msgpack.packb(obj, use_bin_type=True)),  # well-formed msgpack, wrong shapes and types
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(attacks, min_size=1, max_size=4), after_handshake=st.booleans(), close=st.booleans())
@example(chunks=[b"\x81\x90\x01"], after_handshake=False, close=False)  # found: a map keyed by an array
@example(chunks=[b"\x81\x90\x01"], after_handshake=True, close=False)
def test_fuzzed_frames_never_stop_a_node(chunks, after_handshake, close):
    trio.run(_fuzz, chunks, after_handshake, close)


async def _fuzz(chunks: list[bytes], after_handshake: bool, close: bool) -> None:
    pid = PidService()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, [pid], "tcp://127.0.0.1:0", AUTH)
            host, port = url.removeprefix("tcp://").rsplit(":", 1)
            attacker = await trio.open_tcp_stream(host, int(port))
            session = await _raw_handshake(attacker) if after_handshake else None
            try:
                for chunk in chunks:  # after the handshake: as records with good MACs, so the msgpack is what is fuzzed
                    await attacker.send_all(session.seal(chunk) if session else chunk)
            except trio.BrokenResourceError:
                pass  # the node hung up on it: allowed
            if close:
                await attacker.aclose()
            # whatever the attacker did, a good client is served
            reply = await trio.to_thread.run_sync(partial(_good_client, host, int(port)))
            assert reply == [1, 9, None, "pid"]
            nursery.cancel_scope.cancel()
    assert pid.faults == []  # no handler crashed on a bad argument


async def _raw_handshake(stream: trio.SocketStream) -> SpecSession:
    session = SpecSession(SECRET)
    while (hello := session.next()) is None:
        session.feed(await stream.receive_some(4096))
    await stream.send_all(session.answer(hello))
    while (verdict := session.next()) is None:
        session.feed(await stream.receive_some(4096))
    assert session.accept(verdict)
    return session


def _good_client(host: str, port: int) -> list:
    client = SpecClient(host, port)
    assert client.handshake(SECRET) == {"ok": True}
    client.send([0, 9, "pid.ping", [{}, {}]])
    reply = client.recv()
    client.sock.close()
    return reply


async def test_argument_names_of_mixed_types_get_einval_not_a_dead_service():
    """Found by the fuzzer: sorting {1, "ns"} for the error message killed the service's loop."""
    async with service_client(PidService()) as pid:
        with pytest.raises(OSError) as err:
            await pid.router.call("kernel", "pid", "alloc_pid", {1: 2, "ns": 1}, {})
        assert err.value.errno == abi.EINVAL
        assert err.value.strerror == "EINVAL: pid.alloc_pid: bad arguments ['ns', 1]; takes ns, set_tid"
        assert await pid.call("ping") == "pid"
