"""A trace kept as records (tuples of what was at hand, a fast-path message as its msgpack
frames) reads back as the events the tracer builds eagerly: the same keys in the same order
and the same values, as JSON byte for byte; and the console draws the same lines from
either. Random programs and settings; the eager run is the same run (same seed) with a
sink that takes dicts beside the memory trace."""

from __future__ import annotations

import io
import json

import trio
from conftest import RUN_TIMEOUT, program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
import ukernel
from ukernel.trace import ConsoleSink
from ukernel.trace.records import ANSWERED, SENT, json_default

HEAD = """
from ukernel.abi import SIGCHLD, SIGUSR1

def child(sys, arg):
    return 0

def on_usr1(sys, sig):
    pass

async def main(sys, argv):
"""

#: One step of a program: syscalls that take the fast path, the inbox (a blocked read),
#: errors (a reply's errno, a syscall's), signals, page faults, bytes that are not UTF-8.
STEPS = {
    "getpid": "    await sys.getpid()\n",
    "fork": "    pid = await sys.fork()\n    if pid == 0:\n        return 3\n    await sys.waitpid(pid, 0)\n",
    "clone": "    await sys.waitpid(await sys.clone(SIGCHLD, child, None), 0)\n",
    "pipe": (
        "    r, w = await sys.pipe()\n    pid = await sys.fork()\n    if pid == 0:\n"
        "        await sys.sched_yield()\n        await sys.write(w, b'\\xff\\x00late')\n        return 0\n"
        "    await sys.read(r, 8)\n    await sys.waitpid(pid, 0)\n    await sys.close(r)\n    await sys.close(w)\n"
    ),
    "enoent": "    try:\n        await sys.open('/nope', 0)\n    except OSError:\n        pass\n",
    "ebadf": "    try:\n        await sys.close(99)\n    except OSError:\n        pass\n",
    "signal": "    await sys.sigaction(SIGUSR1, on_usr1)\n    await sys.kill(await sys.getpid(), SIGUSR1)\n",
    "mmap": "    a = await sys.mmap(0, 8192, 3, 0x22)\n    await sys.poke(a, b'z')\n    await sys.peek(a + 4096, 1)\n",
    "write": "    await sys.write(1, bytes([0x80, 0x41, 10]))\n",
}

SETTINGS = st.fixed_dictionaries(
    {
        "cpus": st.sampled_from([1, 2]),
        "seed": st.integers(0, 2**16),
        "fail": st.sampled_from([{}, {"copy_mm": "ENOMEM"}, {"copy_files": "EMFILE"}]),
    }
)


def _json(events: list[dict]) -> list[str]:
    """Each event as JSON, but its wall-clock field (dur_us differs between two runs)."""
    return [json.dumps({k: v for k, v in e.items() if k != "dur_us"}, default=json_default) for e in events]


async def _traced(source: bytes, eager: bool, run_settings: dict, colour: bool = False) -> tuple[list[dict], int, str]:
    """A run's memory trace, how many of its events were framed messages, and the console's text."""
    console = io.StringIO()
    sinks: tuple = (ConsoleSink(console, colours=services.colours(), colour=colour),)
    if eager:
        sinks += (lambda event: None,)  # a sink that takes dicts: every event is built at once
    with trio.fail_after(RUN_TIMEOUT):
        async with ukernel.boot(files={"/bin/t": source}, sinks=sinks, **run_settings) as kernel:
            await kernel.run("/bin/t", ["t"])
            assert await kernel.check_invariants() == []
            kept = kernel.trace._events
            framed = sum(type(e) is tuple and e[0] in (SENT, ANSWERED) for e in kept)
            assert eager or all(type(e) is tuple for e in kept)  # nothing built before it is read
            events = list(kernel.trace)
    return events, framed, console.getvalue()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=5), SETTINGS, st.booleans())
async def test_records_read_back_as_the_eager_events_and_lines(steps, run_settings, colour):
    source = program(HEAD + "".join(STEPS[s] for s in steps) + "    return 0\n")
    lazy, framed, lazy_lines = await _traced(source, False, run_settings, colour)
    eager, none, eager_lines = await _traced(source, True, run_settings, colour)
    assert framed > 0 and none == 0
    assert _json(lazy) == _json(eager)
    assert [list(e) for e in lazy] == [list(e) for e in eager]  # the keys in the same order
    assert lazy_lines == eager_lines and lazy_lines.count("\n") > len(steps)


async def test_a_framed_message_is_decoded_as_its_service_saw_it():
    """The fast path's request and reply are kept as their frames: their args and result
    read back as msgpack gives them (bytes stay bytes), with the caller's meta."""
    source = program(HEAD + STEPS["write"] + "    return 0\n")
    events, framed, _ = await _traced(source, False, {})
    assert framed > 0
    write = next(e for e in events if e["type"] == "request" and e["op"] == "write")
    assert write["args"]["data"] == bytes([0x80, 0x41, 10]) and write["syscall"] == "write"
    reply = next(e for e in events if e["type"] == "reply" and e["msgid"] == write["msgid"])
    assert (reply["src"], reply["dst"], reply["result"], reply["cause"]) == ("vfs", "kernel", 3, write["cause"])
