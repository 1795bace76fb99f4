"""Fault injection that means what it says (issue 13): msg:N counts from the program's
start, every accepted ``fail`` name injects, and anything else is refused when parsed."""

from __future__ import annotations

import pytest
from conftest import run_source

import ukernel
from ukernel.config import Config


def injected(trace: list[dict]) -> list[tuple[int, str, str]]:
    return [
        (e["pid"], e["op"], e["errno"])
        for e in trace
        if e["type"] == "reply" and "fault injected" in (e.get("message") or "")
    ]


async def test_msg_1_is_the_programs_first_message_not_inits():
    result = await ukernel.run_async("hello", fail={"msg:1": "EIO"})
    assert injected(result.trace) == [(2, "kernel_read_file", "EIO")]
    assert result.problems == []


async def test_msg_n_counts_every_message_from_the_programs_start():
    plain = await ukernel.run_async("hello")
    start = next(i for i, e in enumerate(plain.trace) if e["type"] == "request" and e["pid"] == 2)
    requests = [e for e in plain.trace[start:] if e["type"] == "request"]
    second = requests[1]
    result = await ukernel.run_async("hello", fail={"msg:2": "ENOMEM"})
    assert injected(result.trace) == [(second["pid"], second["op"], "ENOMEM")]
    assert result.problems == []


async def test_fail_settid_fails_the_parent_tid_write_which_linux_ignores():
    source = """
    from ukernel.abi import CLONE_PARENT_SETTID, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, SIGCHLD
    async def main(sys, argv):
        word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        pid = await sys.clone(CLONE_PARENT_SETTID | SIGCHLD, lambda sys, arg: 5, parent_tid=word)
        _, status = await sys.waitpid(pid)
        written = int.from_bytes(await sys.peek(word, 4), "little")
        await sys.write(1, b"%d %d\\n" % (status >> 8, written))
        return 0
    """
    result = await run_source(source, fail={"settid": "EFAULT"})
    assert result.stdout == b"5 0\n"
    assert [op for _, op, _ in injected(result.trace)] == ["write_mem"]
    assert (await run_source(source)).stdout.startswith(b"5 3")


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        ({"nope": "ENOMEM"}, "fail: unknown step 'nope'"),
        ({"msg:0": "EIO"}, "fail: unknown step 'msg:0'"),
        ({"msg:x": "EIO"}, "fail: unknown step 'msg:x'"),
        ({"copy_mm": "ENOPE"}, "unknown errno 'ENOPE'"),
    ],
)
def test_names_and_errnos_that_inject_nothing_are_refused_when_parsed(fail, message):
    with pytest.raises(ValueError, match=message):
        Config(fail=fail)
