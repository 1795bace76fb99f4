"""Tracing: every message, syscall and scheduling decision as one event.

Events go through a structlog pipeline (stamp ``seq`` and virtual ``ts``,
then fan out to the sinks). With no sink, ``Tracer.on`` is false and callers
skip building the event at all, so tracing off costs one attribute test.

Schema (DESIGN.md §6): ``seq, ts, type, src, dst, op, msgid, cause, pid, tid,
args, result | errno, dur_us``; ``type`` is request, reply, notify,
syscall_enter, syscall_exit, sched, or an event a service reports of its own
(``fault``: mm's page faults). Clone steps add ``step`` and ``flag``; a clone
family's syscall_exit adds ``child``, the new task's global pid (``result`` is
its pid in the caller's pid namespace);
a run with services in other processes adds ``node`` to every message.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import types
from collections.abc import Callable
from typing import IO, Any

import structlog

from .. import abi
from .console import ConsoleSink as ConsoleSink
from .console import colour_wanted as colour_wanted
from .console import fault_outcome as fault_outcome
from .console import fault_text as fault_text
from .console import format_event as format_event
from .console import short as short
from .records import (
    ABSENT,
    ANSWERED,
    ENTERED,
    EXITED,
    FIELDS,
    REPLY,
    REQUEST,
    SCHED,
    Event,
    MemorySink,
    event_of,
    json_default,
    meta_tail,
)

log = logging.getLogger("ukernel")

Sink = Callable[[Event], None]

#: The version of the event schema described in docs/trace.md. A JSON Lines file
#: may start with a header ``{"type": "schema", "version": N}``; ``load`` refuses
#: a version newer than this one (files without a header are version 1).
SCHEMA_VERSION = 1


class Tracer:
    """The structlog pipeline behind every trace event.

    A sink that only keeps events (a list's or a deque's ``append``), and the console's
    (whose line is drawn from the event alone), is handed each event directly: the
    pipeline would hand it the same dict, and skipping structlog's call chain is most of
    what an in-memory trace costs. Every other sink (a file, the progress line, a
    student's) gets it through structlog. When every sink can take a record (MemorySinks,
    the console), no dict is made at all: an event is a tuple of what is at hand
    (records.py), its dict built when the trace is read; a message the router encoded is
    its frames (``sent``, ``answered``).
    """

    def __init__(self) -> None:
        self.sinks: list[Sink] = []  # through structlog
        self.direct: list[Sink] = []  # handed the event directly
        self.kept: list[Callable[[Any], None]] = []  # a record, or (not compact) a dict: MemorySinks' appends
        #: What hands a record to every kept sink: the one sink's append itself when there
        #: is one (no Python frame per event), else a loop over them.
        self.keep: Callable[[Any], None] = self._keep_each
        #: What keeps a message the router encoded as its frames (records.py's SENT and
        #: ANSWERED, which the router builds itself): the MemorySinks' appends, as ``keep``;
        #: None when some sink needs a dict or a node is named (nodes are named at boot,
        #: before any sink is added). The consoles draw such a message's line from the
        #: values at hand (``drawn``: their ``message`` and ``answer``), not from its frames.
        self.framed: Callable[[tuple], None] | None = None
        self.drawn: tuple[Any, ...] = ()
        self._memory: list[Callable[[Any], None]] = []
        self.compact = False  # every sink takes records: no dicts
        self.on = False
        self.clock: Callable[[], int] = lambda: 0
        #: service -> the node that handles its messages; empty when every service is
        #: in this process, so an embedded trace has no ``node`` field at all.
        self.nodes: dict[str, str] = {}
        self.seq = itertools.count(1)  # the events' seq (next(seq)), one count for every sink
        self._all: list[Sink] = []
        self._log = structlog.wrap_logger(
            structlog.ReturnLogger(), processors=[self._fan_out], wrapper_class=structlog.BoundLogger
        ).bind()  # the bound logger itself: no lazy proxy to go through per event

    def add_sink(self, sink: Sink) -> None:
        """A sink for the events from now on; who gets records and who dicts is decided again.
        A ring (a bounded MemorySink) added while a whole trace is kept follows that trace."""
        if isinstance(sink, MemorySink) and sink.maxlen is not None and not sink.following and not len(sink):
            whole = next((s for s in self._all if isinstance(s, MemorySink) and s.maxlen is None), None)
            if whole is not None:
                sink.follow(whole)
        self._all.append(sink)
        memory = [s.append for s in self._all if isinstance(s, MemorySink) and not s.following]
        others = [s for s in self._all if not isinstance(s, MemorySink)]
        self.compact = all(getattr(s, "records", False) is True for s in others)
        if self.compact:  # the console draws from the record
            self.kept, self.direct, self.sinks = memory + [s.record for s in others], [], []
        else:
            self.kept = memory
            self.direct = [s for s in others if is_direct(s)]
            self.sinks = [s for s in others if not is_direct(s)]
        self.keep = self.kept[0] if len(self.kept) == 1 else self._keep_each
        self._memory = memory
        framed = memory[0] if len(memory) == 1 else self._keep_memory
        self.framed = framed if self.compact and not self.nodes else None
        self.drawn = tuple(others) if self.framed is not None else ()
        self.on = True

    def _keep_each(self, record: Any) -> None:
        for keep in self.kept:
            keep(record)

    def _keep_memory(self, record: tuple) -> None:
        for keep in self._memory:
            keep(record)

    def flush(self) -> None:
        """Have every sink that holds lines back (the console's batch) write them: the run ends."""
        for sink in self._all:
            flush = getattr(sink, "flush", None)
            if callable(flush) and getattr(sink, "records", False) is True:
                flush()

    def emit(self, type_: str, **fields: Any) -> None:
        if self.on:
            if self.compact:  # the kwargs dict is the event's own: kept as it is
                record = (FIELDS, next(self.seq), self.clock(), type_, fields)
                self.keep(record)
                return
            self._hand({"seq": next(self.seq), "ts": self.clock(), "type": type_, **fields})

    def sched(self, op: str, cpu: int, pid: int) -> None:
        """A CPU's scheduling step for a task (pick, sleep, idle with pid 0, enqueue, preempt)."""
        record = (SCHED, next(self.seq), self.clock(), op, cpu, pid)
        if self.compact:
            self.keep(record)
        else:
            self._hand(event_of(record))

    def syscall_enter(self, pid: int, dst: str, op: str, msgid: int, args: Any, handler: str | None) -> None:
        """A syscall's entry (``handler``: sigaction's, by name)."""
        record = (ENTERED, next(self.seq), self.clock(), pid, dst, op, msgid, args, handler)
        if self.compact:
            self.keep(record)
        else:
            self._hand(event_of(record))

    def syscall_exit(self, src: str, pid: int, op: str, msgid: int, dur_us: int, outcome: dict) -> None:
        """A syscall's exit: ``outcome`` is its fields after dur_us (result, or errno and message)."""
        record = (EXITED, next(self.seq), self.clock(), src, pid, op, msgid, dur_us, outcome)
        if self.compact:
            self.keep(record)
        else:
            self._hand(event_of(record))

    def _hand(self, event: Event) -> None:
        """An event's dict to every sink: the same dict."""
        for sink in self.kept:
            sink(event)
        for sink in self.direct:
            sink(event)
        if self.sinks:
            self._log.msg(event)

    def _fan_out(self, _logger: Any, _method: str, event_dict: dict) -> dict:
        event = event_dict["event"]
        for sink in self.sinks:
            sink(event)
        raise structlog.DropEvent

    # --- the event kinds ------------------------------------------------------
    def answered(self, request: tuple, reply: bytes, took: float) -> None:
        """The reply (its frame, ``[1, msgid, error, result]``) to a request the router kept
        as its frame (``framed``), once a sink that needs dicts has come in meanwhile (the
        router keeps the reply's record itself while ``framed``); ``took``: its seconds."""
        record = (ANSWERED, next(self.seq), self.clock(), request, reply, took)
        if self.compact:
            self.keep(record)
        else:  # a sink that needs dicts came in meanwhile
            self._hand(event_of(record))

    def request(self, src: str, dst: str, op: str, msgid: int, meta: dict, args: Any, kind: str = "request") -> None:
        """One request (or notification) as its values: built in one tuple or dict display,
        its keys unrolled (a loop and keyword arguments cost per event)."""
        get = meta.get
        if self.compact:
            node = self.nodes.get(dst) if self.nodes else None
            record = (
                REQUEST,
                next(self.seq),
                self.clock(),
                kind,
                src,
                dst,
                op,
                msgid,
                get("cause"),
                get("pid"),
                get("tid"),
                args,
                get("syscall", ABSENT),
                get("step", ABSENT),
                get("flag", ABSENT),
                ABSENT if node is None else node,
            )
            self.keep(record)
            return
        event: Event = {
            "seq": next(self.seq),
            "ts": self.clock(),
            "type": kind,
            "src": src,
            "dst": dst,
            "op": op,
            "msgid": msgid,
            "cause": get("cause"),
            "pid": get("pid"),
            "tid": get("tid"),
            "args": args,
        }
        self._finish(event, meta, dst)

    def reply(
        self,
        src: str,
        dst: str,
        op: str,
        msgid: int,
        meta: dict,
        result: Any,
        error: dict | None,
        dur_us: int | None,
        kind: str = "reply",
    ) -> None:
        """One reply: ``errno`` and ``message`` for an error, else ``result``; then ``dur_us``."""
        get = meta.get
        if self.compact:
            handler = dst if kind in ("request", "notify") else src
            node = self.nodes.get(handler) if self.nodes else None
            if error is None:
                errno = message = ABSENT
            else:
                errno, message, result = error.get("name"), error.get("message"), ABSENT
            record = (
                REPLY,
                next(self.seq),
                self.clock(),
                kind,
                src,
                dst,
                op,
                msgid,
                get("cause"),
                get("pid"),
                get("tid"),
                errno,
                message,
                result,
                ABSENT if dur_us is None else dur_us,
                get("syscall", ABSENT),
                get("step", ABSENT),
                get("flag", ABSENT),
                ABSENT if node is None else node,
            )
            self.keep(record)
            return
        event: Event = {
            "seq": next(self.seq),
            "ts": self.clock(),
            "type": kind,
            "src": src,
            "dst": dst,
            "op": op,
            "msgid": msgid,
            "cause": get("cause"),
            "pid": get("pid"),
            "tid": get("tid"),
        }
        if error is not None:
            event["errno"] = error.get("name")
            event["message"] = error.get("message")
        else:
            event["result"] = result
        if dur_us is not None:
            event["dur_us"] = dur_us
        self._finish(event, meta, dst if kind in ("request", "notify") else src)

    def _finish(self, event: Event, meta: dict, handler: str) -> None:
        """The syscall and clone step the message is for, its node, and out to the sinks."""
        meta_tail(event, meta)
        if self.nodes:
            node = self.nodes.get(handler)
            if node is not None:
                event["node"] = node
        self._hand(event)

    def service_event(self, type_: str, src: str, op: str, cause: int | None, meta: dict, /, **fields: Any) -> None:
        """An event a service reports while serving a message (mm's ``fault``): tied by
        ``cause`` to that message, with the task and syscall its meta names."""
        event: dict[str, Any] = {"src": src, "op": op, "cause": cause, "pid": meta.get("pid"), "tid": meta.get("tid")}
        if "syscall" in meta:
            event["syscall"] = meta["syscall"]
        event.update(fields)
        node = self.nodes.get(src)
        if node is not None:
            event["node"] = node
        self.emit(type_, **event)


def is_direct(sink: Sink) -> bool:
    """A sink that only stores the event (a MemorySink, a list's or deque's append) or says
    it is drawn from the event alone (``direct = True``: the console). (The tracer keeps
    MemorySinks apart: they can take records.)"""
    return (
        isinstance(sink, MemorySink)
        or getattr(sink, "direct", False) is True
        or (
            isinstance(sink, types.BuiltinMethodType)
            and sink.__name__ == "append"
            and isinstance(sink.__self__, list | collections.deque)
        )
    )


# --- sinks -------------------------------------------------------------------
class JsonlSink:
    """One JSON object per line, the raw material for every exporter."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self._render = structlog.processors.JSONRenderer(default=json_default)

    def __call__(self, event: Event) -> None:
        self.stream.write(self._render(None, "", dict(event)) + "\n")


class ProgressSink:
    """A live counter on a terminal: processes started and messages sent so far. Whoever
    writes to the same terminal calls ``clear`` first, so it is never drawn over."""

    def __init__(self, stream: IO[str], every: int = 500):
        self.stream, self.every = stream, every
        self.messages = self.processes = 0
        self.drawn = False

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        if kind == "request":
            self.messages += 1
            if event["op"] == "alloc_pid":
                self.processes += 1
            if self.messages % self.every == 0:
                self.stream.write(f"\r[ukernel] {self.processes} tasks, {self.messages} messages ")
                self.stream.flush()
                self.drawn = True

    def clear(self) -> None:
        """Erase the line, if drawn: back to its start, erase to its end (EL)."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False


def errno_field(err: int) -> str:
    return abi.errno_name(err)


# --- reading a trace back ---------------------------------------------------------
def load(source: str | os.PathLike | IO[str]) -> list[Event]:
    """The events of a JSON Lines trace (``ukernel run --trace FILE``), in file order.

    ``source`` is a path or an open text stream. Blank lines are skipped; a
    ``{"type": "schema", "version": N}`` header is checked against
    SCHEMA_VERSION and left out. Bytes were written as text (utf-8,
    backslashreplace) and come back as ``str``; tuples come back as lists.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, encoding="utf-8") as stream:
            return _load_lines(stream, os.fspath(source))
    return _load_lines(source, getattr(source, "name", "<stream>"))


def _load_lines(stream: IO[str], name: str) -> list[Event]:
    """ValueError says, in one line, that the file is not a ukernel trace and where (``FILE: not
    a ukernel trace (line 1: not JSON: ...)``); a last line cut short (what a killed run
    leaves) is skipped with one warning."""
    events: list[Event] = []
    try:
        lines = list(stream)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not a ukernel trace (byte {exc.start} is not UTF-8 text)") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if lineno == len(lines) and not line.endswith("\n") and events:
                log.warning(
                    "ukernel: %s:%d: the last line is cut short (a run that was stopped?); skipped", name, lineno
                )
                break
            raise ValueError(f"{name}: not a ukernel trace (line {lineno}: not JSON: {exc.msg})") from None
        if not isinstance(event, dict) or "type" not in event:
            raise ValueError(f"{name}: not a ukernel trace (line {lineno}: not an event, a JSON object with a type)")
        if event["type"] == "schema":
            version = event.get("version")
            if not isinstance(version, int) or version > SCHEMA_VERSION:
                raise ValueError(
                    f"{name}:{lineno}: trace schema version {version!r}; this ukernel reads up to {SCHEMA_VERSION}"
                )
            continue
        events.append(event)
    return events
