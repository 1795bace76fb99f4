"""The wire is the MessagePack-RPC spec, and nothing a peer sends can stop a node.

The client here is written from the spec and the handshake in tcp.py's docstring alone: the
stdlib's blocking ``socket``, ``msgpack``, ``hmac`` (in a thread; spec_client.py for the
handshake and the records), none of ukernel's transport code. The nodes listen on loopback
TCP with ``--insecure``: the shared secret's handshake, and a MAC on every record.
"""

from __future__ import annotations

import os
import socket
from functools import partial

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from spec_client import SpecSession, packb

from services.mm import MmService
from services.pid import PidService
from services.vfs import VfsService
from ukernel import abi
from ukernel.ipc import node as node_server
from ukernel.ipc import tcp
from ukernel.ipc.params import INT_MAX, INT_MIN
from ukernel.ipc.service import DEFERRED, Service, op
from ukernel.testing import service_client

SECRET = b"wire-secret"
AUTH = tcp.Auth(SECRET, insecure=True)
TIMEOUT = 10
FUZZ_EXAMPLES = int(os.environ.get("UKERNEL_FUZZ_EXAMPLES", "40"))  # make fuzz: many more
FRAME_EXAMPLES = int(os.environ.get("UKERNEL_FUZZ_EXAMPLES", "60"))


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


BIG = st.sampled_from([0, 1, 2, 2**32, 2**63, 2**64 - 1, -1, -(2**63)])
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8), st.binary(max_size=8)
)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(leaves, inner, max_size=3))
ops = st.sampled_from(
    ["pid.alloc_pid", "pid.free_pid", "pid.ping", "pid.create_pid_ns", "pid.x", "nope", "", "."]
    + ["signals.scale", "signals.later", "signals.wake", "ukernel.session", "ukernel.end", "ukernel.accounting"]
)
envelopes = st.one_of(
    st.tuples(st.sampled_from([0, 1, 2, 3, -1, None]), values, ops, values).map(list),
    st.tuples(st.just(0), st.integers(0, 2**32), ops, st.tuples(st.dictionaries(st.text(max_size=6), values), values)),
    st.tuples(st.just(2), ops, values).map(list),
    values,
    st.tuples(  # a reply msgpack may not carry: n * by past 64 bits
        st.just(0),
        st.integers(0, 2**32),
        st.sampled_from(["signals.scale", "signals.wake"]),
        st.tuples(st.fixed_dictionaries({"n": st.integers(-(2**63), 2**64 - 1), "by": BIG}), st.just({})),
    ),
    st.tuples(  # pieces of a message too large for a frame, of any content
        st.just(2),
        st.just("ukernel.chunk"),
        st.tuples(
            st.fixed_dictionaries({"id": st.integers(-1, 3), "data": st.binary(max_size=20), "end": values}), values
        ),
    ),
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


@settings(max_examples=FRAME_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(attacks, min_size=1, max_size=4), after_handshake=st.booleans(), close=st.booleans())
@example(chunks=[b"\x81\x90\x01"], after_handshake=False, close=False)  # found: a map keyed by an array
@example(chunks=[b"\x81\x90\x01"], after_handshake=True, close=False)
def test_fuzzed_frames_never_stop_a_node(chunks, after_handshake, close):
    trio.run(_fuzz, chunks, after_handshake, close)


async def _fuzz(chunks: list[bytes], after_handshake: bool, close: bool) -> None:
    pid = PidService()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, [pid, Overflow()], "tcp://127.0.0.1:0", AUTH)
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


def _good_client(host: str, port: int, service: str = "pid") -> list:
    client = SpecClient(host, port)
    assert client.handshake(SECRET) == {"ok": True}
    client.send([0, 9, f"{service}.ping", [{}, {}]])
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


# --- fuzzing a node with requests whose replies msgpack may not carry -------------------------
class Overflow(Service):
    """Answers computed from the request: past msgpack's 64 bits for some, at once or deferred."""

    name = "signals"

    def __init__(self):
        super().__init__()
        self.waiting: list = []

    @op
    async def scale(self, req, n: int, by: int):
        return n * by

    @op
    async def later(self, req):
        self.waiting.append(req.defer())
        return DEFERRED

    @op
    async def wake(self, req, n: int, by: int):
        """Answer every deferred ``later`` with n * by (an int msgpack may not carry)."""
        waiting, self.waiting = self.waiting, []
        for deferred in waiting:
            await self.reply(deferred, n * by)
        return len(waiting)


BOUNDARY = st.sampled_from([0, 1, 2, 3, 4096, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)])
#: ops of the real services whose arguments are all ints (handles, offsets, lengths, flags)
INT_OPS = {
    "mm.mm_init": ("code_size", "dev", "ino"),
    "mm.brk": ("mm", "addr"),
    "mm.mmap": ("mm", "addr", "length", "prot", "flags"),
    "mm.munmap": ("mm", "addr", "length"),
    "mm.mprotect": ("mm", "addr", "length", "prot"),
    "mm.read_mem": ("mm", "addr", "n"),
    "mm.cmpxchg": ("mm", "addr", "old", "new"),
    "vfs.lseek": ("files", "fd", "offset", "whence"),
    "vfs.read": ("files", "fd", "n"),
    "vfs.dup3": ("files", "old", "new", "flags"),
    "vfs.fcntl": ("files", "fd", "cmd", "arg"),
    "vfs.umask": ("fs", "mask"),
    "signals.scale": ("n", "by"),
    "signals.later": (),
    "signals.wake": ("n", "by"),
}
int_requests = st.sampled_from(sorted(INT_OPS)).flatmap(
    lambda method: st.fixed_dictionaries({name: BOUNDARY for name in INT_OPS[method]}).map(lambda a: (method, a))
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.lists(int_requests, min_size=1, max_size=12), session=st.booleans())
@example(requests=[("mm.mm_init", {"code_size": 2**64 - 1, "dev": 0, "ino": 0})], session=False)
@example(requests=[("vfs.lseek", {"files": 3, "fd": 3, "offset": 2**63, "whence": 0})], session=True)
@example(requests=[("signals.later", {}), ("signals.wake", {"n": 2**63, "by": 2})], session=True)
def test_fuzzed_requests_whose_replies_msgpack_cannot_carry_are_eio_to_their_caller_and_never_stop_a_node(
    requests, session
):
    trio.run(_fuzz_replies, requests, session)


async def _fuzz_replies(requests: list[tuple[str, dict]], session: bool) -> None:
    built: list[Service] = []

    def build() -> list[Service]:
        built.extend([MmService(), VfsService(), Overflow()])
        return built[-3:]

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(node_server.serve_services, build, "tcp://127.0.0.1:0", AUTH)
            host, port = url.removeprefix("tcp://").rsplit(":", 1)
            replies = await trio.to_thread.run_sync(partial(_send_all, host, int(port), requests, session))
            reply = await trio.to_thread.run_sync(partial(_good_client, host, int(port), "signals"))
            assert reply == [1, 9, None, "signals"]
            nursery.cancel_scope.cancel()
    for msgid, (method, args) in enumerate(requests, 100):
        answer = replies.pop(msgid, None)
        if method == "signals.later":
            continue  # answered by a later wake (checked below), or never if none came after it
        error, result = answer[2], answer[3]
        if method == "signals.scale" and not INT_MIN <= args["n"] * args["by"] <= INT_MAX:
            assert error["name"] == "EIO" and "signals.scale answered what msgpack cannot carry" in error["message"]
        elif error is not None:
            assert isinstance(error["errno"], int) and error["name"] == abi.errno_name(error["errno"]), answer
            assert isinstance(error["message"], str) and result is None, answer
    wakes = [args for method, args in requests if method == "signals.wake"]
    for msgid, answer in replies.items():  # what is left: deferred laters, answered by the first wake after them
        assert requests[msgid - 100][0] == "signals.later"
        n, by = next(a for m, a in requests[msgid - 100 :] if m == "signals.wake").values()
        if INT_MIN <= n * by <= INT_MAX:
            assert answer == [1, msgid, None, n * by]
        else:
            assert (
                answer[2]["name"] == "EIO"
                and "signals.later answered what msgpack cannot carry" in answer[2]["message"]
            )
    assert wakes or not replies
    mm, vfs = [s for s in built if s.name in ("mm", "vfs")][:2]
    assert mm.faults == [] and vfs.faults == []  # a boundary int is the caller's mistake, not a crash


def _send_all(host: str, port: int, requests: list[tuple[str, dict]], session: bool) -> dict[int, list]:
    """Boot state (an mm, files, fs, an open file), then every request; the replies by msgid."""
    client = SpecClient(host, port)
    assert client.handshake(SECRET) == {"ok": True}
    if session:
        client.send([0, 1, "ukernel.session", [{"id": "fuzz", "timeout": None}, {}]])
    setup = [
        [0, 2, "mm.mm_init", [{}, {}]],
        [0, 3, "vfs.init_files", [{}, {}]],
        [0, 4, "vfs.init_fs", [{}, {}]],
        [0, 5, "vfs.open", [{"fs": 4, "files": 3, "path": "/f", "flags": abi.O_CREAT | abi.O_RDWR}, {}]],
    ]
    for request in setup:
        client.send(request)
    for msgid, (method, args) in enumerate(requests, 100):
        client.send([0, msgid, method, [args, {}]])
    waiting = {2, 3, 4, 5, *range(100, 100 + len(requests))} | ({1} if session else set())
    later = {m for m, (method, _) in enumerate(requests, 100) if method == "signals.later"}
    woken = any(method == "signals.wake" for method, _ in requests[max(later, default=100) - 100 :])
    if not woken:
        waiting -= later  # never answered: nothing woke them
    replies = {}
    while waiting:
        reply = client.recv()
        assert reply[0] == 1 and reply[1] not in replies, reply
        replies[reply[1]] = reply
        waiting.discard(reply[1])
    client.sock.close()
    assert all(replies[m][2] is None for m in (2, 3, 4, 5)), [replies[m] for m in (2, 3, 4, 5)]
    return {m: r for m, r in replies.items() if m >= 100}
