"""The console's lines (``ukernel run -v``): one readable line per event, coloured for a person.

Drawn from an event's dict or from the tracer's record of it (records.py), the same
line either way; written in batches (ConsoleSink), in order with the program's output.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

from .records import ENTERED, EXITED, SCHED, Event, event_of, json_default

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

    It draws a line from a dict (``__call__``) or from the tracer's record (``record``), the
    same line either way. Lines are written ``batch`` at a time, in one write, and whenever
    the machine idles (a sched ``idle``: it waits for time or for input) or something went
    wrong (oops, hung, panic); whoever writes to the same terminal, and the run's end,
    calls ``flush`` first, so the lines keep their order with the program's output.
    """

    direct = True  # its line depends on the event alone: the tracer need not go through structlog
    records = True  # and it can draw it from a record: the tracer need build no dict for it

    def __init__(
        self,
        stream: IO[str],
        colours: dict[str, str] | None = None,
        width: int = 60,
        colour: bool | None = None,
        batch: int = 64,
    ):
        self.stream, self.width, self.batch = stream, width, batch
        wanted = colour_wanted(stream) if colour is None else colour
        self.colours = colours if colours is not None and wanted else None
        self._lines: list[str] = []
        self._heads: dict[tuple, tuple[str, str, str]] = {}  # (src, dst, op, kind) -> _head's parts
        #: The kernel's own lines' colour (what ``_put`` gives a line of no service): before, after.
        self._styles = {kind: self._wrap(self._sgr(None, kind)) for kind in ("sched", "syscall_enter", "syscall_exit")}
        self._flushing = False

    def __call__(self, event: Event) -> None:
        line = format_event(event, self.width)
        if line is not None:
            kind = event["type"]
            service = event.get("dst") if kind == "request" else event.get("src") if kind == "reply" else None
            self._put(line, kind, service, kind in FLUSH_AFTER or (kind == "sched" and event.get("op") == "idle"))

    def record(self, record: tuple) -> None:
        """The line of a tracer's record; a record of a rarer kind is drawn from its dict. (A
        message the router keeps as its frames comes to ``message`` and ``answer`` instead.)"""
        kind = record[0]
        lines = self._lines
        if kind == SCHED:  # (kind, seq, ts, op, cpu, pid): sched_line's, its tid the pid
            _, _, _, op, cpu, pid = record
            before, after = self._styles["sched"]
            lines.append(f"{before}   sched cpu{cpu} {op} tid {pid}{after}")
            if op == "idle":
                self.flush()
                return
        elif kind == ENTERED:  # (kind, seq, ts, pid, dst, op, msgid, args, handler)
            _, _, _, pid, _, op, msgid, args, _ = record
            before, after = self._styles["syscall_enter"]
            lines.append(f"{before}#{msgid} [pid {pid}] {op}({short(args, self.width)[1:-1]}) ...{after}")
        elif kind == EXITED:  # (kind, seq, ts, src, pid, op, msgid, dur_us, outcome)
            _, _, _, _, pid, op, msgid, _, outcome = record
            before, after = self._styles["syscall_exit"]
            if "errno" in outcome:
                lines.append(f"{before}#{msgid} [pid {pid}] ... {op} = -1 {outcome['errno']}{after}")
            else:
                lines.append(
                    f"{before}#{msgid} [pid {pid}] ... {op} = {short(outcome.get('result'), self.width)}{after}"
                )
        else:
            self(event_of(record))
            return
        if len(lines) >= self.batch:
            self.flush()

    def message(self, src: str, dst: str, op: str, msgid: int, meta: dict, args: Any) -> None:
        """A request the router keeps as its frame (records.py's SENT): ``request_line``'s
        line, drawn from the args and meta at hand rather than from the decoded frame, in
        one format: its fixed part (colour, who to whom, the op, padded) is made once a route."""
        head = self._heads.get((src, dst, op, "request"))
        if head is None:
            head = self._head((src, dst, op, "request"), f"{src} -> {dst:<10} {op:<16} ", dst)
        flag = meta.get("flag")
        syscall = meta.get("syscall")
        if syscall:
            pid = meta.get("pid")
            tail = f" ({syscall} by pid {pid}, {flag})" if flag else f" ({syscall} by pid {pid})"
        else:
            tail = f" ({flag})" if flag else ""
        lines = self._lines
        lines.append(f"{head[0]}{msgid} {head[1]}{short(args, self.width)}{tail}{head[2]}")
        if len(lines) >= self.batch:
            self.flush()

    def answer(self, src: str, dst: str, op: str, msgid: int, error: dict | None, result: Any) -> None:
        """Its reply from ``src`` (records.py's ANSWERED): ``reply_line``'s, from the error and
        result the caller decoded."""
        head = self._heads.get((src, dst, op, "reply"))
        if head is None:
            head = self._head((src, dst, op, "reply"), f"{dst} <- {src:<10} {op:<16} = ", src)
        if error is None:
            outcome = short(result, self.width)
        else:
            outcome = f"-1 {error.get('name')} ({error.get('message')})"
        lines = self._lines
        lines.append(f"{head[0]}{msgid} {head[1]}{outcome}{head[2]}")
        if len(lines) >= self.batch:
            self.flush()

    def _head(self, key: tuple, middle: str, service: str) -> tuple[str, str, str]:
        """A route's fixed parts: what comes before the msgid (the colour's SGR and ``#``),
        between it and the values, and after them (the reset)."""
        before, after = self._wrap(self._sgr(service, key[3]))
        head = (f"{before}#", middle, after)
        self._heads[key] = head
        return head

    @staticmethod
    def _wrap(sgr: str | None) -> tuple[str, str]:
        """What goes before and after a line of colour ``sgr`` (``_put``'s): nothing uncoloured."""
        return (f"\x1b[{sgr}m", "\x1b[0m") if sgr else ("", "")

    def _sgr(self, service: str | None, kind: str) -> str | None:
        """A line's colour: its service's, else its kind's style; None when uncoloured."""
        colours = self.colours
        if colours is None:
            return None
        return colours.get(service) if service in colours else STYLE.get(kind)

    def _put(self, line: str, kind: str, service: str | None, now: bool) -> None:
        if self.colours is not None:
            before, after = self._wrap(self._sgr(service, kind))
            line = f"{before}{line}{after}"
        self._lines.append(line)
        if now or len(self._lines) >= self.batch:
            self.flush()

    def clear(self) -> None:
        """Before someone else writes to the stream (the program's output, a log line): this
        sink's lines first, as the progress line is erased first (ProgressSink.clear)."""
        self.flush()

    def flush(self) -> None:
        """Write the lines drawn so far, in one write. The watchdog's timer calls it too, from
        a signal handler, so that the line of a message whose handler spins shows: a flush
        it interrupts is left to finish (no line twice), a line being drawn is not lost,
        and a write it would interrupt (a reentrant call) leaves the lines for the next one."""
        lines = self._lines
        if self._flushing or not lines:
            return
        self._flushing = True
        try:
            n = len(lines)
            self.stream.write("\n".join(lines[:n]) + "\n")
            self.stream.flush()
            del lines[:n]
        except RuntimeError:  # the stream was being written to when the timer came
            return
        finally:
            self._flushing = False


#: Kinds whose line is written at once: a person reads them (and the run may end on them).
FLUSH_AFTER = frozenset({"oops", "hung", "panic"})


#: Values whose rendering is ``str(value)``: short() writes them without a call of its own.
_PLAIN = frozenset({int, str, bool, float, type(None)})


def short(value: Any, width: int = 60) -> str:
    """A compact rendering of args/results: ``{files: 3}``, long bytes cut."""
    kind = type(value)
    if kind in _PLAIN:
        text = str(value)
    elif kind is dict:  # most args and results: by their keys' renderer (one string built), or a loop
        render = _RENDERERS.get(keys := tuple(value), _MISSING)
        if render is _MISSING:
            render = _renderer(keys)
        if render is not None:
            text = render(value.values(), width)
        else:
            parts = []
            for k, v in value.items():
                parts.append(f"{k}: {v}" if type(v) in _PLAIN else f"{k}: {short(v, width)}")
            text = "{" + ", ".join(parts) + "}"
    elif isinstance(value, dict):
        text = "{" + ", ".join([f"{k}: {v if type(v) in _PLAIN else short(v, width)}" for k, v in value.items()]) + "}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join([str(v) if type(v) in _PLAIN else short(v, width) for v in value]) + "]"
    elif isinstance(value, bytes):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


#: A dict's renderer by its keys (their order too): a function generated once per set of keys
#: (a message's args or result have the same keys every time), which builds ``{k: v, ...}`` as
#: one f-string, where short's loop builds a string per item, joins and wraps them. None: keys
#: that are not all identifiers (the loop renders those). Bounded: forgotten when full.
_RENDERERS: dict[tuple, Any] = {}
_RENDERERS_MAX = 4096
_MISSING = object()


def _renderer(keys: tuple) -> Any:
    """The renderer of a dict with ``keys``: ``render(values, width)``, the text short's loop
    makes (a value not plain is ``short(v, width)``, as there)."""
    if len(_RENDERERS) >= _RENDERERS_MAX:
        _RENDERERS.clear()
    if not all(type(k) is str and k.isidentifier() for k in keys):
        _RENDERERS[keys] = None
        return None
    names = [f"v{i}" for i in range(len(keys))]
    items = ", ".join(
        f"{k}: {{{v} if type({v}) in PLAIN else short({v}, width)}}" for k, v in zip(keys, names, strict=True)
    )
    source = "def render(values, width):\n"
    source += f"    {', '.join(names)}{',' if len(names) == 1 else ''} = values\n" if names else ""
    source += f"    return f{('{{' + items + '}}')!r}\n"
    scope: dict[str, Any] = {"PLAIN": _PLAIN, "short": short}
    exec(source, scope)  # noqa: S102 (our own source: the keys are identifiers)
    render = _RENDERERS[keys] = scope["render"]
    return render


def format_event(event: Event, width: int = 60) -> str | None:
    """One line per event, or None for kinds the console leaves out."""
    kind = event["type"]
    msgid = event.get("msgid")
    if kind == "request":
        fields = event["src"], event["dst"], event["op"], msgid, event.get("pid"), event.get("args")
        return request_line(*fields, event.get("syscall"), event.get("flag"), width)
    if kind == "reply":
        error = {"name": event["errno"], "message": event.get("message")} if "errno" in event else None
        return reply_line(event["src"], event["dst"], event["op"], msgid, error, event.get("result"), width)
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
    return f"   {kind} {json.dumps(event, default=json_default)}"


def request_line(
    src: str, dst: str, op: str, msgid: Any, pid: Any, args: Any, syscall: Any, flag: Any, width: int = 60
) -> str:
    """``#31 kernel -> vfs  share_files  {files: 3} (clone by pid 7, CLONE_FILES)``."""
    if syscall:
        tail = f" ({syscall} by pid {pid}, {flag})" if flag else f" ({syscall} by pid {pid})"
    else:
        tail = f" ({flag})" if flag else ""
    return f"#{msgid} {src} -> {dst:<10} {op:<16} {short(args, width)}{tail}"


def reply_line(src: str, dst: str, op: str, msgid: Any, error: dict | None, result: Any, width: int = 60) -> str:
    """``#31 kernel <- vfs  share_files  = {files: 3}``, or ``= -1 EMFILE (why)`` for an error."""
    outcome = f"-1 {error.get('name')} ({error.get('message')})" if error is not None else short(result, width)
    return f"#{msgid} {dst} <- {src:<10} {op:<16} = {outcome}"


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
