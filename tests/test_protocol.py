"""Messages: the MessagePack-RPC envelope, bad frames, unknown ops, the call order."""

from __future__ import annotations

import msgpack
import pytest
import trio

from ukernel import abi
from ukernel.ipc import protocol
from ukernel.ipc.router import BootError, Router, check_call_order
from ukernel.ipc.service import DEFERRED, Call, Service, op
from ukernel.testing import service_client
from ukernel.trace import Tracer


class Echo(Service):
    name = "echo"

    def __init__(self):
        super().__init__()
        self.parked = []

    @op
    async def add(self, req: Call, a: int, b: int = 0) -> int:
        return a + b

    @op
    async def fail(self, req: Call) -> None:
        raise abi.kernel_error(abi.EAGAIN, "try later")

    @op
    async def crash(self, req: Call) -> None:
        raise RuntimeError("a bug")

    @op
    async def park(self, req: Call) -> object:
        self.parked.append(req.defer())
        return DEFERRED

    @op
    async def release(self, req: Call, value: int) -> int:
        for deferred in self.parked:
            await self.reply(deferred, value)
        n, self.parked = len(self.parked), []
        return n


def test_envelope_is_messagepack_rpc():
    frame = protocol.encode_request(7, "vfs.dup_files", {"files": 3}, {"cause": 5})
    assert msgpack.unpackb(frame) == [0, 7, "vfs.dup_files", [{"files": 3}, {"cause": 5}]]
    assert msgpack.unpackb(protocol.encode_response(7, None, {"files": 4})) == [1, 7, None, {"files": 4}]
    error = protocol.error_map(abi.EINVAL, "bad")
    assert error == {"errno": 22, "name": "EINVAL", "message": "bad"}
    exc = protocol.oserror_from_map(error)
    assert (exc.errno, exc.strerror) == (22, "EINVAL: bad")
    assert protocol.decode(protocol.encode_notification("sched.tick", {}, {})) == protocol.Notification(
        "sched", "tick", {}, {}
    )


@pytest.mark.parametrize(
    "obj",
    [
        b"\xc1",
        msgpack.packb(5),
        msgpack.packb([]),
        msgpack.packb([9, 1, 2, 3]),
        msgpack.packb([0, "x", "a.b", []]),
        msgpack.packb([0, 1, "nodot", [{}, {}]]),
        msgpack.packb([0, 1, "a.b", "args"]),
    ],
)
def test_malformed_frames_are_protocol_errors(obj):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(obj)


async def test_ops_errors_and_bad_arguments():
    async with service_client(Echo()) as client:
        assert await client.call("add", a=2, b=3) == 5
        with pytest.raises(OSError) as exc:
            await client.call("fail")
        assert (exc.value.errno, exc.value.strerror) == (abi.EAGAIN, "EAGAIN: try later")
        with pytest.raises(OSError) as exc:
            await client.call("nope")
        assert exc.value.errno == abi.ENOSYS
        with pytest.raises(OSError) as exc:
            await client.call("add", b=1)
        assert exc.value.errno == abi.EINVAL and "takes a, b" in exc.value.strerror
        with pytest.raises(OSError) as exc:
            await client.call("add", a="x", b=1)
        assert exc.value.errno == abi.EINVAL
        with pytest.raises(OSError) as exc:
            await client.call("crash")
        assert exc.value.errno == abi.EIO
        assert await client.call("accounting") == {"faults": 1}  # the bug is reported, the service goes on
        assert await client.call("add", a=1) == 1


async def test_raw_malformed_frame_gets_an_error_reply_and_the_service_lives():
    service = Echo()
    async with service_client(service) as client:
        replies = []

        async def collect(frame):
            replies.append(protocol.decode(frame))

        await service.handle_frame(msgpack.packb([0, 41, "echo.add", "not-params"]), collect)
        await service.handle_frame(b"\xc1garbage", collect)
        assert len(replies) == 1 and replies[0].msgid == 41 and replies[0].error["name"] == "EBADMSG"
        assert await client.call("add", a=1, b=1) == 2


async def test_deferred_replies_let_the_service_keep_serving():
    async with service_client(Echo()) as client:
        results = []
        async with trio.open_nursery() as nursery:

            async def parked():
                results.append(await client.call("park"))

            nursery.start_soon(parked)
            nursery.start_soon(parked)
            await trio.testing.wait_all_tasks_blocked()
            assert await client.call("add", a=1, b=2) == 3  # served while two requests wait
            assert await client.call("release", value=9) == 2
        assert results == [9, 9]


def test_call_order_cycle_is_refused_at_boot():
    check_call_order({"kernel": frozenset({"vfs", "mm"}), "vfs": frozenset({"mm"}), "mm": frozenset()})
    with pytest.raises(BootError, match="cycle: mm -> vfs -> mm"):
        check_call_order({"kernel": frozenset({"vfs", "mm"}), "vfs": frozenset({"mm"}), "mm": frozenset({"vfs"})})


async def test_undeclared_call_is_refused():
    router = Router(Tracer())

    class Vfs(Service):
        name = "vfs"

    with pytest.raises(OSError) as exc:
        await router.call("vfs", "pid", "alloc_pid", {}, {})
    assert exc.value.errno == abi.EPERM


async def test_every_message_is_traced_with_its_cause():
    async with service_client(Echo()) as client:
        await client.router.call("kernel", "echo", "add", {"a": 1}, {"cause": 99, "pid": 7, "tid": 7})
    request, reply = client.trace[-2:]
    assert {k: request[k] for k in ("type", "src", "dst", "op", "cause", "pid", "args")} == {
        "type": "request",
        "src": "kernel",
        "dst": "echo",
        "op": "add",
        "cause": 99,
        "pid": 7,
        "args": {"a": 1},
    }
    assert (reply["type"], reply["src"], reply["dst"], reply["result"], reply["msgid"]) == (
        "reply",
        "echo",
        "kernel",
        1,
        request["msgid"],
    )
    assert request["seq"] + 1 == reply["seq"]
