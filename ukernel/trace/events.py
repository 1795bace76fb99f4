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
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import structlog

from .. import abi

log = logging.getLogger("ukernel")

Event = dict[str, Any]
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
    student's) gets it through structlog. When MemorySinks are the only sinks (a run's
    trace, the kernel's recent events), no dict is made at all: they are handed the
    event's values as a record (see MemorySink), which costs a third as much.
    """

    def __init__(self) -> None:
        self.sinks: list[Sink] = []  # through structlog
        self.direct: list[Sink] = []  # handed the event directly
        self.kept: list[Callable[[Any], None]] = []  # the MemorySinks' appends: a record or a dict
        self.compact = False  # only MemorySinks: records, no dicts
        self.on = False
        self.clock: Callable[[], int] = lambda: 0
        #: service -> the node that handles its messages; empty when every service is
        #: in this process, so an embedded trace has no ``node`` field at all.
        self.nodes: dict[str, str] = {}
        self._seq = itertools.count(1)
        self._log = structlog.wrap_logger(
            structlog.ReturnLogger(), processors=[self._fan_out], wrapper_class=structlog.BoundLogger
        ).bind()  # the bound logger itself: no lazy proxy to go through per event

    def add_sink(self, sink: Sink) -> None:
        if isinstance(sink, MemorySink):
            self.kept.append(sink.append)
        else:
            (self.direct if is_direct(sink) else self.sinks).append(sink)
        self.compact = not (self.direct or self.sinks)
        self.on = True

    def emit(self, type_: str, **fields: Any) -> None:
        if self.on:
            if self.compact:  # the kwargs dict is the event's own: kept as it is
                record = (_from_fields, next(self._seq), self.clock(), type_, fields)
                for keep in self.kept:
                    keep(record)
                return
            event = {"seq": next(self._seq), "ts": self.clock(), "type": type_, **fields}
            for sink in self.kept:  # the same dict to every sink
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
    def request(self, src: str, dst: str, op: str, msgid: int, meta: dict, args: Any, kind: str = "request") -> None:
        """One request (or notification): the router's, for every message, so it is built in
        one dict display and its keys unrolled (a loop and keyword arguments cost per event)."""
        get = meta.get
        if self.compact:
            node = self.nodes.get(dst) if self.nodes else None
            record = (
                _REQUEST,
                next(self._seq),
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
                get("syscall", _ABSENT),
                get("step", _ABSENT),
                get("flag", _ABSENT),
                _ABSENT if node is None else node,
            )
            for keep in self.kept:
                keep(record)
            return
        event: Event = {
            "seq": next(self._seq),
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
                errno = message = _ABSENT
            else:
                errno, message, result = error.get("name"), error.get("message"), _ABSENT
            record = (
                _REPLY,
                next(self._seq),
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
                _ABSENT if dur_us is None else dur_us,
                get("syscall", _ABSENT),
                get("step", _ABSENT),
                get("flag", _ABSENT),
                _ABSENT if node is None else node,
            )
            for keep in self.kept:
                keep(record)
            return
        event: Event = {
            "seq": next(self._seq),
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
        if "syscall" in meta:
            event["syscall"] = meta["syscall"]
        if "step" in meta:
            event["step"] = meta["step"]
        if "flag" in meta:
            event["flag"] = meta["flag"]
        if self.nodes:
            node = self.nodes.get(handler)
            if node is not None:
                event["node"] = node
        for sink in self.kept:  # the same dict to every sink (here, not in a method: every message comes here)
            sink(event)
        for sink in self.direct:
            sink(event)
        if self.sinks:
            self._log.msg(event)

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
#: A field the event does not have (a request outside a syscall has no ``syscall``).
_ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "<absent>", "__slots__": ()})()

_REQUEST_KEYS = ("seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid", "args")
_REPLY_KEYS = ("seq", "ts", "type", "src", "dst", "op", "msgid", "cause", "pid", "tid")
_REPLY_KEYS += ("errno", "message", "result", "dur_us")
_META_KEYS = ("syscall", "step", "flag", "node")


def _keyed(keys: tuple[str, ...]) -> Callable[[tuple], Event]:
    """The event of a record whose values follow ``keys``, absent ones left out, in that order."""

    def build(record: tuple) -> Event:
        return {
            key: value
            for key, value in zip(keys, itertools.islice(record, 1, None), strict=True)
            if value is not _ABSENT
        }

    return build


def _from_fields(record: tuple) -> Event:
    """An ``emit``'s event: seq, ts and type, then its keyword arguments in their order."""
    _, seq, ts, type_, fields = record
    return {"seq": seq, "ts": ts, "type": type_, **fields}


_REQUEST = _keyed(_REQUEST_KEYS + _META_KEYS)
_REPLY = _keyed(_REPLY_KEYS + _META_KEYS)


class MemorySink(Sequence):
    """Keeps events (what ``ukernel.run(...).trace`` is copied from), read as a list of dicts.

    The tracer hands it records, a tuple of an event's values in a fixed key order with
    its builder first, when it is the only kind of sink: a tuple costs a third of what
    a ~13-key dict costs to build and keep, and most of a trace is read once, at the
    end, if at all. Each event's dict is built when the trace is first read (len,
    iteration, indexing, ==) and kept in its place, so it is built once and is the same
    dict at every read. ``maxlen`` keeps only the last events (a ring, as a deque).
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
                events[i] = event[0](event)
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


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


class JsonlSink:
    """One JSON object per line, the raw material for every exporter."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self._render = structlog.processors.JSONRenderer(default=_json_default)

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


#: How the console paints what is not a service's message: SGR parameters that read on
#: light and dark terminals alike (no white or yellow text, no background): the kernel's
#: syscall and signal lines bold in the default colour, scheduling dim, anything else plain.
STYLE = {"syscall_enter": "1", "syscall_exit": "1", "signal": "1", "sched": "2"}


def colour_wanted(stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """Colour only for a person: never with NO_COLOR set (https://no-color.org, any non-empty
    value), always with FORCE_COLOR set (non-empty), else when the stream is a terminal."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ConsoleSink:
    """Readable lines: ``#31 kernel -> vfs  share_files  {files: 3} (clone by pid 7, CLONE_FILES)``.

    ``colours`` (service -> SGR parameters, e.g. "34") paints a message in its service's
    colour; the caller gives it (services.colours()), since tracing knows no service. They
    are used when ``colour_wanted(stream)`` says so, unless ``colour`` decides.
    """

    direct = True  # its line depends on the event alone: the tracer need not go through structlog

    def __init__(
        self, stream: IO[str], colours: dict[str, str] | None = None, width: int = 60, colour: bool | None = None
    ):
        self.stream, self.width = stream, width
        wanted = colour_wanted(stream) if colour is None else colour
        self.colours = colours if colours is not None and wanted else None

    def __call__(self, event: Event) -> None:
        line = format_event(event, self.width)
        if line is None:
            return
        if self.colours is not None:
            sgr = self.sgr(event)
            if sgr:
                line = f"\x1b[{sgr}m{line}\x1b[0m"
        self.stream.write(line + "\n")
        self.stream.flush()

    def sgr(self, event: Event) -> str | None:
        """A message takes its service's colour, anything else its kind's style (or none)."""
        kind = event["type"]
        if kind in ("request", "reply"):
            service = event.get("dst") if kind == "request" else event.get("src")
            if service in self.colours:
                return self.colours[service]
        return STYLE.get(kind)


#: Values whose rendering is ``str(value)``: short() writes them without a call of its own.
_PLAIN = frozenset({int, str, bool, float, type(None)})


def short(value: Any, width: int = 60) -> str:
    """A compact rendering of args/results: ``{files: 3}``, long bytes cut."""
    kind = type(value)
    if kind in _PLAIN:
        text = str(value)
    elif isinstance(value, dict):
        text = "{" + ", ".join([f"{k}: {v if type(v) in _PLAIN else short(v, width)}" for k, v in value.items()]) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join([str(v) if type(v) in _PLAIN else short(v, width) for v in value]) + "]"
    elif isinstance(value, bytes):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_event(event: Event, width: int = 60) -> str | None:
    """One line per event, or None for kinds the console leaves out."""
    kind = event["type"]
    msgid = event.get("msgid")
    if kind == "request":
        syscall, flag = event.get("syscall"), event.get("flag")
        if syscall:
            tail = (
                f" ({syscall} by pid {event.get('pid')}, {flag})" if flag else f" ({syscall} by pid {event.get('pid')})"
            )
        else:
            tail = f" ({flag})" if flag else ""
        return (
            f"#{msgid} {event['src']} -> {event['dst']:<10} {event['op']:<16} {short(event.get('args'), width)}{tail}"
        )
    if kind == "reply":
        outcome = (
            f"-1 {event['errno']} ({event.get('message')})" if "errno" in event else short(event.get("result"), width)
        )
        return f"#{msgid} {event['dst']} <- {event['src']:<10} {event['op']:<16} = {outcome}"
    if kind == "syscall_enter":
        return f"#{msgid} [pid {event.get('pid')}] {event['op']}({short(event.get('args'), width)[1:-1]}) ..."
    if kind == "syscall_exit":
        if "errno" in event:
            return f"#{msgid} [pid {event.get('pid')}] ... {event['op']} = -1 {event['errno']}"
        return f"#{msgid} [pid {event.get('pid')}] ... {event['op']} = {short(event.get('result'), width)}"
    if kind == "sched":
        return sched_line(event)
    if kind == "fault":
        return f"   fault [pid {event.get('pid')}] {fault_text(event)} (cause #{event.get('cause')})"
    if kind == "signal":
        from .views.format import signal_line  # the views import this module: strace's line, drawn once

        return f"   signal [pid {event.get('pid')}] {signal_line(event)} ({event.get('action')})"
    if kind == "restart":
        return f"   {restart_line(event)}"
    return f"   {kind} {json.dumps(event, default=_json_default)}"


def restart_line(event: Event) -> str:
    """``restart pid attempt 1 after 0.05 s: killed on purpose ... (it held 4 pids)``."""
    held = ", ".join(f"{v} {k}" for k, v in sorted((event.get("held") or {}).items()) if v and k != "faults")
    failed = f"; {event['failed']} call(s) failed with EIO" if "failed" in event else ""
    return (
        f"restart {event.get('service')} attempt {event.get('attempt')} after {event.get('delay'):g} s: "
        f"{event.get('why')} (it held {held or 'nothing'}{failed})"
    )


def sched_line(event: Event) -> str:
    """``sched cpu0 pick tid 3``; a wake names no CPU (the task gets one when it is picked)
    but who woke it: ``sched wake tid 3 by pid 2``."""
    cpu = event.get("cpu")
    where = f"cpu{cpu} " if cpu is not None else ""
    text = f"   sched {where}{event['op']} tid {event.get('tid')}"
    if event.get("by") is not None:
        text += f" by pid {event['by']}"
    if event.get("src_cpu") is not None:
        text += f" from cpu{event['src_cpu']}"
    return text


def fault_text(event: Event) -> str:
    """What a ``fault`` event says: ``write 0x7f0000001000 in [heap] cow-copy frame 12 -> 31``.

    The vma is named as /proc/PID/maps names it, or by its range and rights when it
    has no name; no vma at all (a bad address) names none.
    """
    addr = event.get("addr")
    text = f"{event.get('access')} {addr:#x}" if isinstance(addr, int) else f"{event.get('access')} {addr}"
    vma = event.get("vma")
    if isinstance(vma, dict):
        where = vma.get("name") or f"{vma.get('start', 0):#x}-{vma.get('end', 0):#x} {vma.get('perms')}"
        text += f" in {where}"
    return f"{text} {fault_outcome(event)}"


def fault_outcome(event: Event) -> str:
    """What the fault handler did: ``cow-copy frame 12 -> 31``, ``zero-fill frame 7``,
    ``segv (SEGV_MAPERR)``."""
    kind = event.get("kind")
    if kind == "cow-copy":
        return f"{kind} frame {event.get('old_frame')} -> {event.get('frame')}"
    if kind in ("segv", "oom"):
        return f"{kind} ({event.get('code')})"
    return f"{kind} frame {event.get('frame')}"


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
