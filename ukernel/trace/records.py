"""Compact trace records, and the MemorySink that keeps them.

A record is a tuple of what the tracer had at hand when the event happened, its kind
first (an int: which of BUILDERS makes the event's dict from it). The dict is built when the trace is read, with the same keys in the same order and the same
values as the tracer's eager dicts (docs/trace.md's schema): keeping a trace then costs
a tuple per event, not a ~13-key dict and everything it holds. A message the router
encoded is kept as its frames (the msgpack bytes the service was sent and answered):
its args, meta and result are decoded from them on read, so the trace holds the
message as it went, and bytes rather than the objects they were made from. The router
builds those two records itself (no tracer call per message).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgpack

Event = dict[str, Any]

#: A field the event does not have (a request outside a syscall has no ``syscall``).
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>", "__slots__": ()})()


def decode(frame: bytes) -> Any:
    """A frame as the router's receiver decodes it (router.py): the same values."""
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def _keyed(keys: tuple[str, ...]) -> Callable[[tuple], Event]:
    """The event of a record whose values follow ``keys``, absent ones left out, in that order."""

    def build(record: tuple) -> Event:
        return {
            key: value
            for key, value in zip(keys, itertools.islice(record, 1, None), strict=True)
            if value is not ABSENT
        }

    return build


def _from_fields(record: tuple) -> Event:
    """An ``emit``'s event: seq, ts and type, then its keyword arguments in their order."""
    _, seq, ts, type_, fields = record
    return {"seq": seq, "ts": ts, "type": type_, **fields}


def meta_tail(event: Event, meta: dict) -> Event:
    """The syscall and clone step a message is for, in this order: a record read back and the
    tracer's eager event both end with them (the schema's one definition)."""
    if "syscall" in meta:
        event["syscall"] = meta["syscall"]
    if "step" in meta:
        event["step"] = meta["step"]
    if "flag" in meta:
        event["flag"] = meta["flag"]
    return event


def _sent(record: tuple) -> Event:
    """A request kept as its frame: ``(kind, seq, ts, src, dst, op, frame)``."""
    _, seq, ts, src, dst, op, frame = record
    _, msgid, _, (args, meta) = decode(frame)
    event = {"seq": seq, "ts": ts, "type": "request", "src": src, "dst": dst, "op": op, "msgid": msgid}
    event["cause"], event["pid"], event["tid"], event["args"] = (
        meta.get("cause"),
        meta.get("pid"),
        meta.get("tid"),
        args,
    )
    return meta_tail(event, meta)


def _answered(record: tuple) -> Event:
    """Its reply: ``(kind, seq, ts, the request's record, reply frame, seconds it took)`` (the
    router keeps the seconds, dur_us is made of them here); who, what and why come from the
    request's frame (the meta the reply is traced with is its own)."""
    _, seq, ts, request, reply, took = record
    _, _, _, src, dst, op, frame = request
    _, msgid, _, (_, meta) = decode(frame)
    _, _, error, result = decode(reply)[:4]  # (a fifth: the footprint explore asked for)
    event = {"seq": seq, "ts": ts, "type": "reply", "src": dst, "dst": src, "op": op, "msgid": msgid}
    event["cause"], event["pid"], event["tid"] = meta.get("cause"), meta.get("pid"), meta.get("tid")
    if error is not None:
        event["errno"], event["message"] = error.get("name"), error.get("message")
    else:
        event["result"] = result
    event["dur_us"] = int(took * 1e6)
    return meta_tail(event, meta)


def _sched(record: tuple) -> Event:
    """A CPU's scheduling step: ``(kind, seq, ts, op, cpu, pid)`` (the task's tid is its pid)."""
    _, seq, ts, op, cpu, pid = record
    return {"seq": seq, "ts": ts, "type": "sched", "op": op, "cpu": cpu, "pid": pid, "tid": pid}


def _entered(record: tuple) -> Event:
    """A syscall's entry: ``(kind, seq, ts, pid, dst, op, msgid, args, handler)``."""
    _, seq, ts, pid, dst, op, msgid, args, handler = record
    event = {"seq": seq, "ts": ts, "type": "syscall_enter", "src": f"pid:{pid}", "dst": dst, "op": op}
    event["msgid"], event["pid"], event["tid"], event["args"] = msgid, pid, pid, args
    if handler is not None:
        event["handler"] = handler
    return event


def _exited(record: tuple) -> Event:
    """Its exit: ``(kind, seq, ts, src, pid, op, msgid, dur_us, outcome)``."""
    _, seq, ts, src, pid, op, msgid, dur_us, outcome = record
    event = {"seq": seq, "ts": ts, "type": "syscall_exit", "src": src, "dst": f"pid:{pid}", "op": op}
    event["msgid"], event["pid"], event["tid"], event["dur_us"] = msgid, pid, pid, dur_us
    event.update(outcome)
    return event


REQUEST_KEYS = ("seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "args")
REPLY_KEYS = ("seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid")
REPLY_KEYS += ("errno", "message", "result", "dur_us")
META_KEYS = ("syscall", "step", "flag", "node")

#: A record's first value: its kind, an index into BUILDERS (how the event's dict is built
#: from it). An int, not an object: the gc untracks a tuple of ints, strings and bytes once
#: a collection has seen it, so a kept trace of messages and scheduling steps costs the
#: later collections nothing.
REQUEST, REPLY, FIELDS, SCHED, ENTERED, EXITED, SENT, ANSWERED = range(8)
BUILDERS: tuple[Callable[[tuple], Event], ...] = (
    _keyed(REQUEST_KEYS + META_KEYS),
    _keyed(REPLY_KEYS + META_KEYS),
    _from_fields,
    _sched,
    _entered,
    _exited,
    _sent,
    _answered,
)


def event_of(record: tuple) -> Event:
    """A record's event, as the tracer would have built it at once."""
    return BUILDERS[record[0]](record)


class MemorySink(Sequence):
    """Keeps events (what ``ukernel.run(...).trace`` is copied from), read as a list of dicts.

    The tracer hands it records when no sink of the run needs a dict at once: a tuple
    costs a fraction of what a ~13-key dict costs to build and keep, and most of a trace
    is read once, at the end, if at all. Each event's dict is built when the trace is
    first read (len, iteration, indexing, ==) and kept in its place, so it is built once
    and is the same dict at every read. ``maxlen`` keeps only the last events (a ring,
    as a deque). A ring added to a tracer that keeps a whole trace already *follows* it
    (``follow``): it is the last ``maxlen`` events of that trace, and nothing is appended
    to it twice.
    """

    __slots__ = ("_events", "_built", "append", "maxlen", "_of", "_start", "_followers")

    def __init__(self, maxlen: int | None = None) -> None:
        self._events: list | collections.deque = [] if maxlen is None else collections.deque(maxlen=maxlen)
        self._built = 0  # the events before this index are dicts (a list's; a ring is scanned)
        self.append = self._events.append  # an event (a dict) or a record: no Python frame per event
        self.maxlen = maxlen
        self._of: MemorySink | None = None  # the whole trace this ring is the tail of
        self._start = 0  # ... from this index of it on
        self._followers: list[MemorySink] = []

    def __call__(self, event: Event) -> None:
        self.append(event)

    @property
    def following(self) -> bool:
        """True for a ring that reads its events from a whole trace (the tracer skips it)."""
        return self._of is not None

    def follow(self, whole: MemorySink) -> None:
        """From now on, the events ``whole`` (an unbounded sink of the same tracer) gets are
        this ring's too, read from there: the tracer need append each event once."""
        assert self.maxlen is not None and whole.maxlen is None and whole._of is None
        self._of, self._start = whole, len(whole._events)
        whole._followers.append(self)

    def _dicts(self) -> list | collections.deque:
        """The events, every record built into its dict first."""
        if self._of is not None:
            return self._tail()
        events = self._events
        start = self._built if isinstance(events, list) else 0
        for i in range(start, len(events)):
            event = events[i]
            if type(event) is tuple:
                events[i] = BUILDERS[event[0]](event)
        self._built = len(events)
        return events

    def _tail(self) -> collections.deque:
        """A follower's events: its own (from before it followed), then the whole trace's
        since, the last ``maxlen`` of them. The trace's records are built in its place
        (only these: a bug's report in a long run builds 200 dicts, not the whole trace)."""
        own = self._events
        for i in range(len(own)):
            if type(own[i]) is tuple:
                own[i] = BUILDERS[own[i][0]](own[i])
        events = self._of._events
        lo = max(self._start, len(events) - self.maxlen)
        for i in range(lo, len(events)):
            event = events[i]
            if type(event) is tuple:
                events[i] = BUILDERS[event[0]](event)
        ring = collections.deque(own, maxlen=self.maxlen)
        ring.extend(itertools.islice(events, lo, None))
        return ring

    def __len__(self) -> int:
        if self._of is not None:
            return min(self.maxlen, len(self._events) + len(self._of._events) - self._start)
        return len(self._events)

    def __getitem__(self, index: Any) -> Any:
        events = self._dicts()
        if isinstance(index, slice):
            return list(events)[index]
        return events[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._dicts()))  # a copy: a sink appended to while read is not read past its end

    def __reversed__(self) -> Iterator[Event]:
        return reversed(list(self._dicts()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MemorySink):
            other = list(other._dicts())
        return list(self._dicts()) == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a list)

    def clear(self) -> None:
        """Forget every event kept so far (a test's client, between two steps). A ring that
        follows this trace keeps its last events: they are copied into it first."""
        for ring in self._followers:
            ring._events = ring._tail()
            ring._start, ring.append = 0, ring._events.append
        self._events.clear()
        self._built = 0
        if self._of is not None:
            self._start = len(self._of._events)

    def __repr__(self) -> str:
        return f"MemorySink({list(self._dicts())!r})"


def json_default(value: Any) -> Any:
    """What JSON cannot hold: bytes as text (utf-8, backslashreplace), anything else its repr."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)
