"""The tracer hands an event to sinks that only keep it directly and to every other sink
through structlog: both see the same events, in the same order, with the same fields."""

from __future__ import annotations

import collections
import io
import json

import ukernel
from ukernel.trace.events import ConsoleSink, JsonlSink, MemorySink, Tracer, format_event, is_direct


def test_kept_and_piped_sinks_see_the_same_events():
    tracer = Tracer()
    kept, deque, piped, stream, console = MemorySink(), collections.deque(maxlen=2), [], io.StringIO(), io.StringIO()
    sinks = (kept, deque.append, ConsoleSink(console, colour=False), lambda event: piped.append(dict(event)))
    for sink in (*sinks, JsonlSink(stream)):
        tracer.add_sink(sink)
    assert [is_direct(s) for s in (*tracer.direct, *tracer.sinks)] == [True, True, True, False, False]
    tracer.message(
        "request",
        "kernel",
        "vfs",
        "dup_files",
        7,
        {"cause": 3, "pid": 2, "tid": 2, "syscall": "fork"},
        args={"files": 1},
    )
    tracer.message(
        "reply",
        "vfs",
        "kernel",
        "dup_files",
        7,
        {"cause": 3, "pid": 2, "tid": 2, "flag": "X"},
        error={"name": "EMFILE", "message": "too many"},
        dur_us=5,
    )
    tracer.emit("sched", op="pick", cpu=0, pid=2, tid=2)
    assert kept == piped == [json.loads(line) for line in stream.getvalue().splitlines()]
    assert list(deque) == kept[1:]
    assert console.getvalue().splitlines() == [format_event(e) for e in piped]
    assert [list(e) for e in kept] == [
        ["seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "args", "syscall"],
        ["seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "errno", "message", "dur_us", "flag"],
        ["seq", "ts", "type", "op", "cpu", "pid", "tid"],
    ]
    assert [e["seq"] for e in kept] == [1, 2, 3]


async def test_a_run_traced_to_memory_and_through_structlog_gives_one_trace():
    piped: list = []
    result = await ukernel.run_async("hello", sinks=(lambda event: piped.append(dict(event)),))
    assert result.problems == []
    assert result.trace == piped and len(piped) > 20
