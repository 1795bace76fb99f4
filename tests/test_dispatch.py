"""Dispatch: arguments checked against the op's annotations, and a handler's bug is EIO.

A wrong argument is the caller's mistake (EINVAL, naming the argument and the
type wanted); an exception from a handler whose arguments were right is the
service's bug (EIO to the caller, a fault with the file:line for
check_invariants). Everything here goes through real messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from services.pid import PidService
from ukernel import abi
from ukernel.ipc import protocol
from ukernel.ipc.params import INT_MAX, INT_MIN
from ukernel.ipc.service import Call, Service, op
from ukernel.testing import service_client


class Kinds(Service):
    """One op per kind of annotation; each answers what it got."""

    name = "kinds"

    @op
    async def an_int(self, req: Call, n: int) -> int:
        return n

    @op
    async def a_str(self, req: Call, s: str) -> str:
        return s

    @op
    async def some_bytes(self, req: Call, data: bytes) -> bytes:
        return data

    @op
    async def a_bool(self, req: Call, flag: bool) -> bool:
        return flag

    @op
    async def a_float(self, req: Call, x: float) -> float:
        return x

    @op
    async def a_list(self, req: Call, items: list[int]) -> list[int]:
        return items

    @op
    async def a_dict(self, req: Call, table: dict) -> dict:
        return table

    @op
    async def maybe(self, req: Call, n: Optional[int] = None) -> int | None:  # noqa: UP045 (Optional is a kind too)
        return n

    @op
    async def either(self, req: Call, v: str | bytes) -> str | bytes:
        return v

    @op
    async def anything(self, req: Call, v: Any, w=None) -> list:
        return [v, w]

    @op
    async def a_set(self, req: Call) -> set:
        return {1, 2}  # msgpack has no sets: the service's bug


class BuggyPid(PidService):
    """A pid service whose free_pid has a bug a student could write."""

    @op
    async def free_pid(self, req: Call, pid: int) -> int:
        return self.pids[999].refcount  # the bug: a KeyError


class Failing(Service):
    name = "failing"

    @op
    async def full(self, req: Call) -> None:
        raise abi.kernel_error(abi.ENOSPC, "no room")

    @op
    async def missing(self, req: Call, path: str) -> None:
        raise FileNotFoundError(abi.ENOENT, path)


async def errno_of(c, op_name: str, **args) -> tuple[int, str]:
    with pytest.raises(OSError) as info:
        await c.call(op_name, **args)
    return info.value.errno, info.value.strerror


# --- the type check, one kind at a time ---------------------------------------------------------
@pytest.mark.parametrize(
    ("op_name", "arg", "good", "bad", "want"),
    [
        ("an_int", "n", 7, "7", "int"),
        ("an_int", "n", -(2**63), True, "int"),  # a bool is not an int: msgpack keeps them apart
        ("a_str", "s", "x", b"x", "str"),
        ("some_bytes", "data", b"\x00", "x", "bytes"),
        ("a_bool", "flag", False, 0, "bool"),
        ("a_float", "x", 1.5, "1.5", "float"),
        ("a_list", "items", [1, 2], (1, "two"), "list[int]"),  # the items are checked
        ("a_list", "items", [], {"a": 1}, "list[int]"),
        ("a_dict", "table", {"a": [1]}, [["a", 1]], "dict"),
        ("maybe", "n", None, "x", "int | None"),
        ("either", "v", b"x", 1, "str | bytes"),
    ],
)
async def test_a_wrong_type_is_einval_naming_the_argument_and_the_type(op_name, arg, good, bad, want):
    service = Kinds()
    async with service_client(service) as c:
        assert await c.call(op_name, **{arg: good}) == good
        err, message = await errno_of(c, op_name, **{arg: bad})
        assert err == abi.EINVAL
        assert message.startswith(f"EINVAL: kinds.{op_name}: argument {arg} must be {want}, not ")
    assert service.faults == []


async def test_the_message_names_service_op_argument_and_types():
    async with service_client(PidService()) as c:
        err, message = await errno_of(c, "free_pid", pid="1")
    assert (err, message) == (abi.EINVAL, "EINVAL: pid.free_pid: argument pid must be int, not str")


async def test_an_int_takes_an_int_for_a_float_and_any_value_without_a_check():
    async with service_client(Kinds()) as c:
        assert await c.call("a_float", x=2) == 2  # as typing says: an int is acceptable as a float
        assert await c.call("anything", v={"any": [b"thing"]}, w=1.5) == [{"any": [b"thing"]}, 1.5]


async def test_an_int_beyond_msgpack_is_einval():
    """msgpack cannot encode such an int, but a node hands a service decoded requests."""
    service = Kinds()
    async with service_client(service):
        replies = []

        async def collect(frame: bytes) -> None:
            replies.append(protocol.decode(frame))

        for msgid, n in enumerate([INT_MAX, INT_MIN, INT_MAX + 1, INT_MIN - 1]):
            await service.handle_request([0, msgid, "kinds.an_int", [{"n": n}, {}]], collect)
    assert [r.result for r in replies[:2]] == [INT_MAX, INT_MIN]
    for reply in replies[2:]:
        assert reply.error["name"] == "EINVAL"
        assert reply.error["message"].startswith("kinds.an_int: argument n must be int, not ")
        assert "beyond msgpack's 64 bits" in reply.error["message"]


# --- bugs are bugs ------------------------------------------------------------------------------
async def test_a_handler_raising_keyerror_is_eio_and_a_fault_with_its_line():
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if "# the bug:" in text)
    service = BuggyPid()
    async with service_client(service) as c:
        pid = (await c.call("alloc_pid", ns=1))["pid"]
        err, message = await errno_of(c, "free_pid", pid=pid)
        assert err == abi.EIO
        assert message.startswith("EIO: pid.free_pid crashed at ")
        assert message.endswith(f"test_dispatch.py:{line}: KeyError(999)")
        assert (await c.call("accounting"))["faults"] == 1
        assert await c.call("ping") == "pid"  # the service goes on
    (fault,) = service.faults
    assert fault.startswith(message.removeprefix("EIO: ")) and "Traceback" in fault and "KeyError: 999" in fault


async def test_an_oserror_from_a_handler_keeps_its_errno():
    service = Failing()
    async with service_client(service) as c:
        assert (await errno_of(c, "full"))[0] == abi.ENOSPC
        assert (await errno_of(c, "missing", path="/x"))[0] == abi.ENOENT
    assert service.faults == []


async def test_a_result_msgpack_cannot_carry_is_eio_and_a_fault():
    service = Kinds()
    async with service_client(service) as c:
        err, message = await errno_of(c, "a_set")
        assert err == abi.EIO and message.startswith("EIO: kinds.a_set answered what msgpack cannot carry")
        assert await c.call("an_int", n=1) == 1
    assert len(service.faults) == 1


# --- annotations dispatch cannot check are refused when the class is made ------------------------
def test_an_unsupported_annotation_is_refused_at_class_creation():
    with pytest.raises(TypeError, match=r"Pairs\.swap: parameter pair: tuple\[int, int\] is not a kind"):

        class Pairs(Service):
            name = "pairs"

            @op
            async def swap(self, req: Call, pair: tuple[int, int]) -> list:  # msgpack has no tuples
                return [pair[1], pair[0]]


def test_an_annotation_that_does_not_resolve_is_refused_at_class_creation():
    with pytest.raises(TypeError, match=r"Typo\.get: its annotations do not resolve: NameError"):

        class Typo(Service):
            name = "typo"

            @op
            async def get(self, req: Call, pid: Pid) -> int:  # noqa: F821 (the student's typo)
                return 0


async def test_a_failed_assert_in_a_service_client_block_is_itself_not_a_group():
    """A grader asserts inside the block: it must see its AssertionError, unwrapped."""
    with pytest.raises(AssertionError, match="^the grader's check$"):
        async with service_client(PidService()) as c:
            assert await c.call("ping") == "pid"
            raise AssertionError("the grader's check")
