"""The tracer hands an event to sinks that only keep it directly and to every other sink
through structlog: both see the same events, in the same order, with the same fields."""

from __future__ import annotations

import collections
import io
import json

import ukernel
from ukernel.trace.events import ConsoleSink, JsonlSink, MemorySink, Tracer, format_event, is_direct
from ukernel.trace.records import ANSWERED, SCHED, SENT


def test_kept_and_piped_sinks_see_the_same_events():
    tracer = Tracer()
    kept, deque, piped, stream, console = MemorySink(), collections.deque(maxlen=2), [], io.StringIO(), io.StringIO()
    sinks = (kept, deque.append, ConsoleSink(console, colour=False), lambda event: piped.append(dict(event)))
    for sink in (*sinks, JsonlSink(stream)):
        tracer.add_sink(sink)
    assert tracer.kept == [kept.append] and not tracer.compact  # a dict for every sink: the MemorySink too
    assert [is_direct(s) for s in (*tracer.direct, *tracer.sinks)] == [True, True, False, False]
    tracer.request("kernel", "vfs", "dup_files", 7, {"cause": 3, "pid": 2, "tid": 2, "syscall": "fork"}, {"files": 1})
    meta = {"cause": 3, "pid": 2, "tid": 2, "flag": "X"}
    tracer.reply("vfs", "kernel", "dup_files", 7, meta, None, {"name": "EMFILE", "message": "too many"}, 5)
    tracer.emit("sched", op="pick", cpu=0, pid=2, tid=2)
    assert kept == piped == [json.loads(line) for line in stream.getvalue().splitlines()]
    assert list(deque) == kept[1:]
    assert console.getvalue() == ""  # the console writes its lines in batches, or when flushed
    tracer.flush()
    assert console.getvalue().splitlines() == [format_event(e) for e in piped]
    assert [list(e) for e in kept] == [
        ["seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "args", "syscall"],
        ["seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "errno", "message", "dur_us", "flag"],
        ["seq", "ts", "type", "op", "cpu", "pid", "tid"],
    ]
    assert [e["seq"] for e in kept] == [1, 2, 3]


def feed(tracer: Tracer) -> None:
    """One of each kind of record: a request in a syscall's clone step, one outside any
    syscall, an error reply, a reply with a None result and no dur_us, an emit, a service's event."""
    meta = {"cause": 3, "pid": 2, "tid": 2, "syscall": "clone", "step": "copy_files", "flag": "CLONE_FILES"}
    tracer.request("kernel", "vfs", "share_files", 7, meta, {"files": 1})
    tracer.request("kernel", "pid", "alloc_pid", 8, {}, {"ns": [1]}, "notify")
    tracer.reply("vfs", "kernel", "share_files", 7, meta, None, {"name": "EMFILE", "message": "too many"}, 5)
    tracer.reply("pid", "kernel", "alloc_pid", 8, {"pid": 4}, None, None, None)
    tracer.emit("syscall_exit", src="vfs", op="clone", pid=2, result=4, child=9)
    tracer.service_event("fault", "mm", "touch", 7, meta, addr=4096, kind="zero-fill")


def test_a_memory_sink_alone_keeps_records_read_as_the_same_dicts():
    """MemorySinks alone get records (no dict per event); read back they are the dicts a
    sink that takes dicts is given: same keys, same order, same values, absent ones left out."""
    for nodes in ({}, {"vfs": "n1", "mm": "n2"}):
        compact, ring, plain, dicts = Tracer(), Tracer(), Tracer(), []
        kept, last, beside = MemorySink(), MemorySink(maxlen=2), MemorySink()
        compact.add_sink(kept)
        ring.add_sink(last)
        plain.add_sink(beside)
        plain.add_sink(dicts.append)
        for tracer in (compact, ring, plain):
            tracer.nodes = nodes
            feed(tracer)
        assert compact.compact and not plain.compact
        assert all(type(record) is tuple for record in kept._events)
        assert len(kept) == 6 and kept == dicts == beside and list(last) == dicts[-2:]
        assert [list(e) for e in kept] == [list(e) for e in dicts]
        assert [e.get("node") for e in kept] == [nodes.get(h) for h in ("vfs", "pid", "vfs", "pid", None, "mm")]
        assert kept[2] == {
            **{"seq": 3, "ts": 0, "type": "reply", "src": "vfs", "dst": "kernel", "op": "share_files", "msgid": 7},
            **{"cause": 3, "pid": 2, "tid": 2, "errno": "EMFILE", "message": "too many", "dur_us": 5},
            **{"syscall": "clone", "step": "copy_files", "flag": "CLONE_FILES"},
            **({"node": "n1"} if nodes else {}),
        }
        assert kept[3]["result"] is None and "dur_us" not in kept[3] and "syscall" not in kept[1]
        assert kept[0] is kept[0] and kept[1:3] == dicts[1:3] and list(reversed(kept)) == dicts[::-1]


async def test_a_run_traced_to_memory_and_through_structlog_gives_one_trace():
    piped: list = []
    result = await ukernel.run_async("hello", sinks=(lambda event: piped.append(dict(event)),))
    assert result.problems == []
    assert result.trace == piped and len(piped) > 20


def test_a_ring_added_beside_a_whole_trace_follows_it():
    """The kernel's ring of recent events, added after the run's trace, is that trace's tail:
    each event is appended once (the one sink's append is the tracer's keep), read back as a
    ring fed on its own is, and a clear of the trace leaves the ring its last events."""
    tracer, alone = Tracer(), Tracer()
    whole, ring, own = MemorySink(), MemorySink(maxlen=4), MemorySink(maxlen=4)
    tracer.add_sink(whole)
    tracer.add_sink(ring)
    alone.add_sink(own)
    assert ring.following and tracer.kept == [whole.append] and tracer.keep == whole.append
    for t in (tracer, alone):
        feed(t)
    assert len(ring) == 4 and ring == own and list(ring) == whole[-4:] and ring[0] is whole[2]
    whole.clear()
    assert ring == own and len(ring) == 4
    for t in (tracer, alone):
        t.sched("pick", 0, 3)
    assert len(whole) == 1 and ring == own and ring[-1] == {**whole[0]}
    assert [e["seq"] for e in ring] == [4, 5, 6, 7]
    ring.clear()
    assert len(ring) == 0 and list(ring) == [] and len(whole) == 1


async def test_message_and_sched_records_are_left_out_of_later_collections():
    """Records hold an int kind, not an object: once a collection has seen them the gc
    untracks a message's and a scheduling step's record, so a long trace costs later
    collections nothing."""
    import gc

    async with ukernel.boot(
        files={"/bin/t": b"async def main(sys, argv):\n    await sys.getpid()\n    return 0\n"}
    ) as k:
        assert await k.run("/bin/t", ["t"]) == 0
        gc.collect()
        kinds = {SCHED, SENT, ANSWERED}
        kept = [r for r in k.trace._events if r[0] in kinds]
        assert len(kept) > 10 and not any(gc.is_tracked(r) for r in kept)
