"""A fault at any message of a run ends with no leak and no hang (issue 13).

Each program runs once clean to count its messages (from its first CPU, as
``msg:N`` counts them), then once per message with that message failing EIO.
A failure Linux's callers see is an errno the program copes with; one at an op
Linux cannot fail (put_*, free_pid, schedule, wake_up_new_task, the exit
signal) is an oops that kills its task, with the object still given back. So
the only problems allowed are oops lines: nothing leaked, nothing escaped, no
hang. ``make test`` tries every 5th message; ``make fuzz`` (UKERNEL_SWEEP=all)
every one.
"""

from __future__ import annotations

import os

import pytest
import trio

import ukernel

PROGRAMS = {
    "nginx": ["nginx", "2"],
    "pipeline": ["sh", "-c", "echo hi | cat | cat"],
    "threads": ["threads"],
    "vforkexec": ["vforkexec"],
    "mmapdemo": ["mmapdemo"],
    "container": ["container", "--", "sh", "-c", "ps"],
}
STRIDE = 1 if os.environ.get("UKERNEL_SWEEP") == "all" else 5
RUN_TIMEOUT = 30


async def messages_of(argv: list[str]) -> int:
    clean = await ukernel.run_async(argv[0], argv)
    assert clean.problems == []
    start = next(i for i, e in enumerate(clean.trace) if e["type"] == "request" and e["pid"] == 2)
    return sum(1 for e in clean.trace[start:] if e["type"] == "request")


@pytest.mark.parametrize("name", PROGRAMS)
async def test_a_fault_at_any_message_leaks_nothing_and_ends(name):
    argv = PROGRAMS[name]
    total = await messages_of(argv)
    assert total > 40
    bad = {}
    for n in range(1, total + 1, STRIDE):
        with trio.fail_after(RUN_TIMEOUT):  # a hang fails the test, it is not a timing assertion
            result = await ukernel.run_async(argv[0], argv, fail={f"msg:{n}": "EIO"}, trace=False)
        leaks = [p for p in result.problems if not p.startswith("oops")]
        if leaks:
            bad[n] = leaks
    assert bad == {}
