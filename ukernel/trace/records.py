"""Compact trace records, and the MemorySink that keeps them.

A record is a tuple of what the tracer had at hand when the event happened, its kind
first (a ``Kind``: how to build the event's dict, and the console's line, from it). The
dict is built when the trace is read, with the same keys in the same order and the same
values as the tracer's eager dicts (docs/trace.md's schema): keeping a trace then costs
a tuple per event, not a ~13-key dict and everything it holds. A message the router
encoded is kept as its frames (the msgpack bytes the service was sent and answered):
its args, meta and result are decoded from them on read, so the trace holds the
message as it went, and bytes rather than the objects they were made from.
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


class Kind:
    """How one kind of record becomes its event (``event``) and its console fields
    (``fields``: the values a console line is drawn from, without the dict)."""

    __slots__ = ("event", "fields")

    def __init__(self, event: Callable[[tuple], Event], fields: Callable[[tuple], tuple] | None = None):
        self.event = event
        self.fields = fields


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


def _meta_tail(event: Event, meta: dict) -> Event:
    """The syscall and clone step a message is for, as the tracer adds them (in this order)."""
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
    return _meta_tail(event, meta)


def _answered(record: tuple) -> Event:
    """Its reply: ``(kind, seq, ts, the request's record, reply frame, dur_us)``; who, what
    and why come from the request's frame (the meta the reply is traced with is its own)."""
    _, seq, ts, request, reply, dur_us = record
    _, _, _, src, dst, op, frame = request
    _, msgid, _, (_, meta) = decode(frame)
    _, _, error, result = decode(reply)[:4]  # (a fifth: the footprint explore asked for)
    event = {"seq": seq, "ts": ts, "type": "reply", "src": dst, "dst": src, "op": op, "msgid": msgid}
    event["cause"], event["pid"], event["tid"] = meta.get("cause"), meta.get("pid"), meta.get("tid")
    if error is not None:
        event["errno"], event["message"] = error.get("name"), error.get("message")
    else:
        event["result"] = result
    event["dur_us"] = dur_us
    return _meta_tail(event, meta)


def _sent_fields(record: tuple) -> tuple:
    """A framed request's console fields: src, dst, op, msgid, pid, args, syscall, flag."""
    _, _, _, src, dst, op, frame = record
    _, msgid, _, (args, meta) = decode(frame)
    return src, dst, op, msgid, meta.get("pid"), args, meta.get("syscall"), meta.get("flag")


def _answered_fields(record: tuple) -> tuple:
    """A framed reply's console fields: src, dst, op, msgid, error, result."""
    _, _, _, request, reply, _ = record
    _, _, _, src, dst, op, _ = request
    _, msgid, error, result = decode(reply)[:4]
    return dst, src, op, msgid, error, result


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

REQUEST = Kind(_keyed(REQUEST_KEYS + META_KEYS))
REPLY = Kind(_keyed(REPLY_KEYS + META_KEYS))
FIELDS = Kind(_from_fields)
SCHED = Kind(_sched)
ENTERED = Kind(_entered)
EXITED = Kind(_exited)
SENT = Kind(_sent, _sent_fields)
ANSWERED = Kind(_answered, _answered_fields)


class MemorySink(Sequence):
    """Keeps events (what ``ukernel.run(...).trace`` is copied from), read as a list of dicts.

    The tracer hands it records when no sink of the run needs a dict at once: a tuple
    costs a fraction of what a ~13-key dict costs to build and keep, and most of a trace
    is read once, at the end, if at all. Each event's dict is built when the trace is
    first read (len, iteration, indexing, ==) and kept in its place, so it is built once
    and is the same dict at every read. ``maxlen`` keeps only the last events (a ring,
    as a deque).
    """

    __slots__ = ("_events", "_built", "append")

    def __init__(self, maxlen: int | None = None) -> None:
        self._events: list | collections.deque = [] if maxlen is None else collections.deque(maxlen=maxlen)
        self._built = 0  # the events before this index are dicts (a list's; a ring is scanned)
        self.append = self._events.append  # an event (a dict) or a record: no Python frame per event

    def __call__(self, event: Event) -> None:
        self.append(event)

    def _dicts(self) -> list | collections.deque:
        """The events, every record built into its dict first."""
        events = self._events
        start = self._built if isinstance(events, list) else 0
        for i in range(start, len(events)):
            event = events[i]
            if type(event) is tuple:
                events[i] = event[0].event(event)
        self._built = len(events)
        return events

    def __len__(self) -> int:
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
        """Forget every event kept so far (a test's client, between two steps)."""
        self._events.clear()
        self._built = 0

    def __repr__(self) -> str:
        return f"MemorySink({list(self._dicts())!r})"


def json_default(value: Any) -> Any:
    """What JSON cannot hold: bytes as text (utf-8, backslashreplace), anything else its repr."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)
