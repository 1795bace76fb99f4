"""The one-coroutine fast path (Router.call) and the start stubs (ipc/params.py): a message
answered there gets the same answer, the same trace and the same faults as through the
inbox; a service that changes how a message is handled is handled its way."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from ukernel.ipc import protocol
from ukernel.ipc.local import LocalEndpoint
from ukernel.ipc.service import Call, Service, op
from ukernel.testing import service_client


class Kinds(Service):
    """Ops whose arguments take every kind a stub tests inline, and some it leaves to Params."""

    name = "kinds"

    @op
    async def scalars(self, req: Call, n: int, s: str, b: bytes, flag: bool) -> list:
        return [n, s, b, flag]

    @op
    async def mixed(self, req: Call, items: list[int], maybe: int | None, x: float, anything: Any) -> list:
        return [items, maybe, x, anything]

    @op
    async def optional(self, req: Call, n: int, extra: str = "none") -> list:
        return [n, extra]

    @op
    async def nothing(self, req: Call) -> str:
        return "ok"

    @op
    async def unsendable(self, req: Call) -> set:
        return {1, 2}


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**65),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=2),
    st.lists(st.text(max_size=1), min_size=1, max_size=2),
)
INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
#: A value of each argument's own kind (most messages are right, and a wrong one stands out then).
GOOD = {
    "n": INT64,
    "s": st.text(max_size=3),
    "b": st.binary(max_size=3),
    "flag": st.booleans(),
    "items": st.lists(INT64, max_size=2),
    "maybe": st.none() | INT64,
    "x": st.floats(allow_nan=False) | INT64,
    "anything": VALUES,
    "extra": st.text(max_size=3),
}
PARAMS = {"scalars": ["n", "s", "b", "flag"], "mixed": ["items", "maybe", "x", "anything"], "optional": ["n", "extra"]}
PARAMS["nothing"] = []


@st.composite
def messages(draw: Any) -> tuple[str, dict]:
    """An op, and arguments mostly its own (every one, each of any kind), now and then one
    missing or one it does not take."""
    op_name = draw(st.sampled_from(sorted(PARAMS)))
    args = {name: draw(GOOD[name] if draw(st.integers(0, 3)) else VALUES) for name in PARAMS[op_name]}
    if args and draw(st.booleans()) and draw(st.booleans()):
        del args[draw(st.sampled_from(sorted(args)))]
    if draw(st.integers(0, 5)) == 0:
        args["other"] = draw(VALUES)
    return op_name, args


async def _answer(client: Any, op_name: str, args: dict) -> tuple[str, Any]:
    try:
        return "ok", await client.call(op_name, **args)
    except OSError as exc:
        return "error", (exc.errno, exc.strerror)
    except OverflowError as exc:  # an int past msgpack's 64 bits: the request cannot be encoded
        return "unsendable", str(exc)


async def _three_ways(op_name: str, args: dict) -> tuple[list, list]:
    """The answer and trace on the fast path, through the inbox, and with no start stubs."""
    answers, traces = [], []
    with_stubs = Kinds.PARAMS
    for fast, stubs in ((True, True), (False, True), (True, False)):
        LocalEndpoint.fastpath = fast
        if not stubs:
            Kinds.PARAMS = {name: dataclasses.replace(p, stub=None) for name, p in with_stubs.items()}
        try:
            async with service_client(Kinds()) as client:
                answers.append(await _answer(client, op_name, args))
                traces.append([{k: v for k, v in e.items() if k != "dur_us"} for e in client.trace])
        finally:
            LocalEndpoint.fastpath, Kinds.PARAMS = True, with_stubs
    return answers, traces


@settings(max_examples=200, deadline=None)
@given(message=messages())
def test_any_arguments_get_the_same_answer_and_trace_on_the_fast_path_as_through_the_inbox(message):
    """The stub only ever says "fine" sooner: what it refuses, Params.problem judges, with
    the message the inbox path gives."""
    answers, traces = trio.run(_three_ways, *message)
    assert answers[0] == answers[1] == answers[2]
    assert traces[0] == traces[1] == traces[2]


async def test_exact_answers_of_the_stubs_and_of_the_general_check():
    async with service_client(Kinds()) as client:
        assert await client.call("scalars", n=1, s="a", b=b"x", flag=True) == [1, "a", b"x", True]
        assert await client.call("mixed", items=[1], maybe=None, x=2, anything={"k": 1}) == [[1], None, 2, {"k": 1}]
        assert await client.call("optional", n=3) == [3, "none"]  # the stub: the default
        assert await client.call("optional", n=3, extra="e") == [3, "e"]  # the stub: an optional one given
        assert Kinds.PARAMS["optional"].stub(Kinds.optional, Kinds(), None, {"n": 3, "other": 1}) is None
        assert await client.call("nothing") == "ok"
        with pytest.raises(
            OSError, match=r"^\[Errno 22\] EINVAL: kinds\.scalars: argument flag must be bool, not int$"
        ):
            await client.call("scalars", n=1, s="a", b=b"x", flag=1)
        with pytest.raises(OSError, match=r"EINVAL: kinds\.optional: bad arguments \['m'\]; takes extra, n$"):
            await client.call("optional", m=3)
        with pytest.raises(OverflowError):  # past msgpack's 64 bits: no request to send, none in flight
            await client.call("scalars", n=2**64, s="a", b=b"x", flag=True)
        assert not client.router.pending


async def test_a_reply_msgpack_cannot_carry_is_the_services_fault_on_the_fast_path():
    kinds = Kinds()
    async with service_client(kinds) as client:
        with pytest.raises(OSError, match=r"EIO: kinds\.unsendable answered what msgpack cannot carry"):
            await client.call("unsendable")
        assert len(kinds.faults) == 1 and not kinds.busy
        assert await client.call("nothing") == "ok"  # the thread's packer starts clean after the failure


class OwnHandle(Kinds):
    """Changes how a message is handled (as tests/test_reincarnation.py's service does)."""

    name = "own"

    def __init__(self) -> None:
        super().__init__()
        self.handled = 0

    async def handle(self, item: bytes | list, reply_fn: Any) -> None:
        self.handled += 1
        await super().handle(item, reply_fn)


async def test_a_service_that_overrides_handle_is_handled_its_way():
    assert Kinds.flat and not OwnHandle.flat
    own = OwnHandle()
    async with service_client(own) as client:
        assert await client.call("nothing") == "ok"
        assert own.handled == 1


class WhereHandled(OwnHandle):
    """Notes the trio task each message's handle runs in."""

    name = "where"

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Any] = []

    async def handle(self, item: bytes | list, reply_fn: Any) -> None:
        self.tasks.append(trio.lowlevel.current_task())
        await super().handle(item, reply_fn)


async def test_its_way_and_a_message_msg_n_lets_through_run_in_the_callers_task():
    """Router.call is the one fast path: a service with its own handle, and the messages around
    one that ``msg:N`` answers, run in the caller's task, as a flat service's do."""
    where = WhereHandled()
    async with service_client(where) as client:
        client.router.fail_nth = {2: 5}  # the second message fails with EIO, unsent
        assert await client.call("nothing") == "ok"
        with pytest.raises(OSError, match=r"EIO: Input/output error \(fault injected at message 2\)"):
            await client.call("nothing")
        assert await client.call("optional", n=1) == [1, "none"]
        assert where.tasks == [trio.lowlevel.current_task()] * 2 and where.handled == 2
        assert [e["type"] for e in client.trace] == ["request", "reply"] * 3


async def test_send_takes_the_fast_path_and_collect_finds_the_reply_in():
    async with service_client(Kinds()) as client:
        router = client.router
        sent = await router.send("kernel", "kinds", "optional", {"n": 4}, {})
        assert sent.response is not None and sent.msgid in router.pending
        assert await router.collect(sent) == [4, "none"]
        assert not router.pending
        assert [e["type"] for e in client.trace] == ["request", "reply"]


async def test_a_call_the_router_refuses_is_refused_before_any_message():
    async with service_client(Kinds()) as client:
        with pytest.raises(PermissionError, match=r"EPERM: kinds may not call kinds \(it may call: nobody\)"):
            await client.router.call("kinds", "kinds", "nothing", {}, {})
        assert client.trace == []


def test_each_thread_encodes_with_its_own_packer():
    """A kernel may run in any thread (api.py): a Packer's buffer is never shared."""
    mine, theirs = protocol.packer(), []
    thread = threading.Thread(target=lambda: theirs.append(protocol.packer()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine and protocol.packer() is mine
    assert protocol.decode(protocol.encode_request(3, "a.b", {"k": b"v"}, {"pid": 1})) == protocol.Request(
        3, "a", "b", {"k": b"v"}, {"pid": 1}
    )
