"""Views of a trace: pure functions from a list of events to text.

Every view reads the events ``ukernel.run(...).trace`` returns, or the same
events read back with ``ukernel.trace.load(path)`` from ``ukernel run --trace``
(the schema is docs/trace.md). None of them prints ``ts``-independent wall
time except ``stats``: ``dur_us`` is real time, so the other views leave it out
and are the same on every run of a deterministic program (``chrome`` and
``html`` keep it, with args and results, in the details a click shows; their
timeline and layout do not depend on it).

- ``strace``: one line per syscall, in strace's format.
- ``pstree``: the processes and threads the run created, from the clone family.
- ``route``: the messages one syscall caused, as a call tree.
- ``mermaid``: the same route as a Mermaid ``sequenceDiagram``.
- ``stats``: messages per service and op (count, mean and max ``dur_us``), syscalls per pid.
- ``chrome``: the whole run as Chrome Trace Event JSON (a dict) for Perfetto: tracks per service,
  CPU and task, a slice per message and syscall, flows from caller to handler.
- ``html``: one self-contained page: a route as an SVG sequence diagram, the pstree, the syscalls.
- ``assert_route``: ``route_of`` as an assertion whose message shows both routes side by side.
"""

from __future__ import annotations

import errno as _errno
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape as _escape
from typing import Any

from ... import abi
from ...testing import route_of
from .. import Event

__all__ = [
    "CLONE_FAMILY",
    "VIEWS",
    "assert_route",
    "chrome",
    "gantt",
    "html",
    "mermaid",
    "pstree",
    "route",
    "select_route",
    "stats",
    "strace",
]

#: The syscalls that create a task; their return value (in the parent) is the child's pid.
CLONE_FAMILY = ("fork", "vfork", "clone", "clone3")
#: Syscalls that never return to the caller.
NO_RETURN = ("exit", "exit_group")
#: Argument names that hold user addresses (printed in hex, 0 as NULL).
POINTER_ARGS = ("addr", "parent_tid", "child_tid", "tls")

STRSIZE = 32  # strace -s: how much of a string to show


# --- values, as strace prints them -------------------------------------------------------
def _text(value: str | bytes) -> str:
    """Bytes as the JSON Lines sink writes them, so a loaded trace prints the same."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\v": "\\v", "\f": "\\f", '"': '\\"', "\\": "\\\\"}


def cstring(value: str | bytes, limit: int = STRSIZE) -> str:
    """``"worker 0\\n"``: a C string literal, cut at ``limit`` characters with ``...`` after."""
    text = _text(value)
    out = []
    shown = text[:limit]
    for i, ch in enumerate(shown):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0o400:  # strace: short octal unless a digit follows
            nxt = shown[i + 1] if i + 1 < len(shown) else ""
            out.append(f"\\{ord(ch):03o}" if nxt.isdigit() else f"\\{ord(ch):o}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"' + ("..." if len(text) > limit else "")


def value(v: Any) -> str:
    """One argument or result: strings quoted, None as NULL, dicts as ``{k=v}``."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str | bytes):
        return cstring(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={value(x)}" for k, x in v.items()) + "}"
    return str(v)


def pointer(v: Any) -> str:
    if v == 0 or v is None:
        return "NULL"
    return hex(v) if isinstance(v, int) else value(v)


def _bits(v: Any, names: Iterable[tuple[int, str]], zero: str = "0") -> str:
    if not isinstance(v, int):
        return value(v)
    parts, rest = [], v
    for bit, name in names:
        if bit and rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or zero


def clone_flags(flags: Any, exit_signal_in_low_byte: bool = True) -> str:
    """``CLONE_VM|CLONE_FS|SIGCHLD``; clone3 keeps the exit signal apart, so its low byte is flags."""
    if not isinstance(flags, int):
        return value(flags)
    if exit_signal_in_low_byte:
        return "|".join(abi.decode_clone_flags(flags)) or "0"
    low = flags & abi.CSIGNAL
    names = abi.decode_clone_flags(flags & ~abi.CSIGNAL)
    if low & abi.CLONE_NEWTIME:
        names.insert(0, "CLONE_NEWTIME")
        low &= ~abi.CLONE_NEWTIME
    if low:
        names.append(hex(low))
    return "|".join(names) or "0"


def signal_name(sig: Any) -> str:
    return abi.SIGNAL_NAMES.get(sig, str(sig)) if isinstance(sig, int) and sig else value(sig)


def _named(*names: str) -> list[tuple[int, str]]:
    """(value, name) pairs from ukernel.abi, for decoding bit masks by name."""
    return [(getattr(abi, name), name) for name in names]


_PROT = _named("PROT_READ", "PROT_WRITE", "PROT_EXEC")
_MAP = _named("MAP_SHARED", "MAP_PRIVATE", "MAP_FIXED", "MAP_ANONYMOUS")
_WAIT = _named("WNOHANG", "WUNTRACED", "WEXITED", "WCONTINUED", "WNOWAIT", "__WNOTHREAD", "__WALL", "__WCLONE")
_OPEN = _named(
    "O_WRONLY",
    "O_RDWR",
    "O_CREAT",
    "O_EXCL",
    "O_NOCTTY",
    "O_TRUNC",
    "O_APPEND",
    "O_NONBLOCK",
    "O_DIRECTORY",
    "O_NOFOLLOW",
    "O_CLOEXEC",
)


def wait_status(status: Any) -> str:
    """``[{WIFEXITED(s) && WEXITSTATUS(s) == 10}]``, as strace decodes a wait status."""
    if not isinstance(status, int):
        return value(status)
    if abi.WIFEXITED(status):
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {abi.WEXITSTATUS(status)}}}]"
    if abi.WIFSIGNALED(status):
        return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(abi.WTERMSIG(status))}}}]"
    if abi.WIFSTOPPED(status):
        return f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name(abi.WSTOPSIG(status))}}}]"
    if abi.WIFCONTINUED(status):
        return "[{WIFCONTINUED(s)}]"
    return f"[{status:#x}]"


# --- one syscall, as strace prints it ----------------------------------------------------
# A formatter splits the call into what is known at entry (head) and what only the
# exit tells (tail): ``wait4(-1, `` + ``[{WIFEXITED(s) && ...}], 0, NULL)``. A call that
# blocks while others run prints ``head <unfinished ...>``, later ``<... op resumed>tail``.
Formatter = Callable[[dict, Event | None], tuple[str, str]]


def _ok(exit_: Event | None) -> bool:
    return exit_ is not None and "errno" not in exit_


def _fmt_generic(op: str) -> Formatter:
    def fmt(args: dict, exit_: Event | None) -> tuple[str, str]:
        parts = []
        for name, v in args.items():
            if name in POINTER_ARGS:
                parts.append(pointer(v))
            elif name == "sig":
                parts.append(signal_name(v))
            else:
                parts.append(value(v))
        return f"{op}({', '.join(parts)}", ")"

    return fmt


def _fmt_clone(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [f"flags={clone_flags(args.get('flags'))}"]
    if args.get("fn") is not None:
        parts.append(f"fn={args['fn']}")
        parts.append(f"arg={value(args.get('arg'))}")
    for name in ("parent_tid", "child_tid", "tls"):
        if args.get(name):
            parts.append(f"{name}={pointer(args[name])}")
    return "clone(" + ", ".join(parts), ")"


def _fmt_clone3(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [f"flags={clone_flags(args.get('flags'), exit_signal_in_low_byte=False)}"]
    parts.append(f"exit_signal={signal_name(args.get('exit_signal', 0)) if args.get('exit_signal') else 0}")
    if args.get("set_tid"):
        parts.append(f"set_tid={value(args['set_tid'])}")
    if args.get("pidfd"):
        parts.append("pidfd=true")
    if args.get("fn") is not None:
        parts.append(f"fn={args['fn']}")
        parts.append(f"arg={value(args.get('arg'))}")
    return "clone3({" + ", ".join(parts) + "}", ")"


def _fmt_execve(args: dict, exit_: Event | None) -> tuple[str, str]:
    argv = args.get("argv")
    argv_text = "[" + ", ".join(cstring(a) for a in argv) + "]" if isinstance(argv, list) else value(argv)
    envp = args.get("envp") or {}
    return f"execve({cstring(args.get('path', ''))}, {argv_text}, /* {len(envp)} vars */", ")"


def _fmt_wait4(args: dict, exit_: Event | None) -> tuple[str, str]:
    status = "NULL"
    result = exit_.get("result") if _ok(exit_) else None
    if isinstance(result, list) and len(result) >= 2 and result[0]:
        status = wait_status(result[1])
    return f"wait4({value(args.get('pid'))}, ", f"{status}, {_bits(args.get('options'), _WAIT)}, NULL)"


def _fmt_write(args: dict, exit_: Event | None) -> tuple[str, str]:
    data = args.get("data", b"")
    size = len(data) if isinstance(data, bytes) else len(_text(data).encode("utf-8", "surrogateescape"))
    return f"write({value(args.get('fd'))}, {cstring(data)}, {size}", ")"


def _fmt_read(args: dict, exit_: Event | None) -> tuple[str, str]:
    data = exit_.get("result") if _ok(exit_) else None
    buf = cstring(data) if isinstance(data, str | bytes) else "NULL"
    return f"read({value(args.get('fd'))}, ", f"{buf}, {value(args.get('n'))})"


def _fmt_mmap(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [
        pointer(args.get("addr")),
        value(args.get("length")),
        _bits(args.get("prot"), _PROT, "PROT_NONE"),
        _bits(args.get("flags"), _MAP),
        value(args.get("fd")),
        value(args.get("offset")),
    ]
    return "mmap(" + ", ".join(parts), ")"


def _fmt_open(args: dict, exit_: Event | None) -> tuple[str, str]:
    flags = args.get("flags", 0)
    text = _bits(flags, _OPEN, "O_RDONLY")
    if isinstance(flags, int) and not flags & abi.O_ACCMODE and flags:
        text = "O_RDONLY|" + text
    parts = [cstring(args.get("path", "")), text]
    if isinstance(flags, int) and flags & abi.O_CREAT:
        parts.append(f"{args.get('mode', 0):#o}" if isinstance(args.get("mode"), int) else value(args.get("mode")))
    return "open(" + ", ".join(parts), ")"


FORMATTERS: dict[str, Formatter] = {
    "clone": _fmt_clone,
    "clone3": _fmt_clone3,
    "execve": _fmt_execve,
    "wait4": _fmt_wait4,
    "write": _fmt_write,
    "read": _fmt_read,
    "mmap": _fmt_mmap,
    "open": _fmt_open,
}


def call_parts(enter: Event, exit_: Event | None) -> tuple[str, str]:
    args = enter.get("args") or {}
    if not isinstance(args, dict):
        args = {"args": args}
    return FORMATTERS.get(enter["op"], _fmt_generic(enter["op"]))(args, exit_)


def errno_text(event: Event) -> str:
    """``-1 EINVAL (Invalid argument)``."""
    name = event.get("errno") or "?"
    number = getattr(abi, name, None) if name.startswith("E") else None
    if not isinstance(number, int):
        number = getattr(_errno, name, None)
    if isinstance(number, int) and number < 512:
        text = abi.strerror(number)
    else:  # kernel-internal codes (ERESTARTNOINTR): what the kernel said
        text = (event.get("message") or name).split(":")[0]
    return f"-1 {name} ({text})"


def result_text(op: str, exit_: Event | None) -> str:
    """What follows `` = `` in an strace line."""
    if exit_ is None:
        return "?"
    if "errno" in exit_:
        return errno_text(exit_)
    result = exit_.get("result")
    if result is None:
        return "0"
    if isinstance(result, bool):
        return str(int(result))
    if op == "wait4" and isinstance(result, list) and result:
        return value(result[0])
    if op == "read" and isinstance(result, str | bytes):
        return str(len(result) if isinstance(result, bytes) else len(result.encode("utf-8", "surrogateescape")))
    if op in ("mmap", "brk") and isinstance(result, int) and result > 0:
        return hex(result)
    return value(result)


def call_line(enter: Event, exit_: Event | None) -> str:
    """``clone(flags=CLONE_VM|..., fn=worker) = 8``, or ``exit_group(4) = ?``."""
    head, tail = call_parts(enter, exit_)
    if exit_ is None and enter["op"] not in NO_RETURN:
        return f"{head} <unfinished ...>{tail} = ?"
    return f"{head}{tail} = {result_text(enter['op'], exit_)}"


# --- exits: +++ exited with N +++ --------------------------------------------------------
def _creations(events: list[Event]) -> dict[int, tuple[int, Event, Event]]:
    """Index of each clone-family syscall_exit that made a task -> (index of its enter, enter, exit)."""
    enters: dict[Any, tuple[int, Event]] = {}
    made: dict[int, tuple[int, Event, Event]] = {}
    for i, e in enumerate(events):
        if e["type"] == "syscall_enter" and e["op"] in CLONE_FAMILY:
            enters[e.get("msgid")] = (i, e)
        elif e["type"] == "syscall_exit" and e["op"] in CLONE_FAMILY:
            found = enters.pop(e.get("msgid"), None)
            if found is not None and isinstance(e.get("result"), int) and e["result"] > 0:
                made[i] = (found[0], found[1], e)
    return made


def _exit_marks(events: list[Event]) -> dict[int, tuple[int, str]]:
    """Index of the first event of each do_exit -> (pid, ``+++ exited with N +++``).

    The status comes from the task's own exit(N)/exit_group(N), else from the
    first wait4 that reaped it; when neither is in the trace (init, threads) the
    line says only ``+++ exited +++``.
    """
    # A task's life starts at its clone's entry: a vfork child can exit before vfork returns.
    born = {at: exit_["result"] for at, _, exit_ in _creations(events).values()}
    started: dict[int, int] = {}  # pid -> index where its current do_exit began
    last_enter: dict[int, Event] = {}
    marks: dict[int, tuple[int, str]] = {}
    code: dict[int, int] = {}  # mark index -> status
    for i, e in enumerate(events):
        pid = e.get("pid")
        if i in born:  # a new task with that pid: a new life
            started.pop(born[i], None)
            last_enter.pop(born[i], None)
        if e["type"] == "syscall_enter":
            last_enter[pid] = e
        elif e["type"] == "syscall_exit" and last_enter.get(pid, {}).get("msgid") == e.get("msgid"):
            del last_enter[pid]
        elif e.get("syscall") == "exit" and e.get("cause") is None and e["type"] == "request" and pid not in started:
            started[pid] = i
            marks[i] = (pid, "")
            enter = last_enter.get(pid)
            if (
                enter is not None
                and enter["op"] in NO_RETURN
                and isinstance((enter.get("args") or {}).get("code"), int)
            ):
                code[i] = abi.W_EXITCODE(enter["args"]["code"])
        if e["type"] == "syscall_exit" and e["op"] == "wait4" and _ok(e):
            result = e.get("result")
            if isinstance(result, list) and len(result) >= 2 and isinstance(result[1], int) and result[0]:
                status = result[1]
                at = started.get(result[0])
                if at is not None and at not in code and (abi.WIFEXITED(status) or abi.WIFSIGNALED(status)):
                    code[at] = status
    for i, (pid, _) in marks.items():
        status = code.get(i)
        if status is None:
            text = "+++ exited +++"
        elif abi.WIFEXITED(status):
            text = f"+++ exited with {abi.WEXITSTATUS(status)} +++"
        else:
            text = f"+++ killed by {signal_name(abi.WTERMSIG(status))} +++"
        marks[i] = (pid, text)
    return marks


# --- strace --------------------------------------------------------------------------------
def strace(events: Iterable[Event], pid: int | None = None, ops: Iterable[str] | None = None) -> str:
    """One line per syscall, as ``strace -f`` prints them.

    ``[pid N] `` prefixes every line when more than one pid made syscalls (after
    the ``pid`` filter). A call interrupted by another pid's line prints
    ``<unfinished ...>`` and, when it returns, ``<... op resumed>``. Exits print
    ``+++ exited with N +++`` (``killed by SIG``) where the status is in the
    trace. ``ops`` keeps only those syscalls; exit lines stay.
    """
    events = list(events)
    wanted = None if ops is None else set(ops)
    marks = _exit_marks(events)
    items: list[tuple[str, Any, Event]] = []  # (kind, pid, event); a mark's event is {"text": ...}
    pids = set()
    for i, e in enumerate(events):
        if i in marks:
            if pid is None or marks[i][0] == pid:
                items.append(("mark", marks[i][0], {"text": marks[i][1]}))
            continue
        if e["type"] not in ("syscall_enter", "syscall_exit") or (pid is not None and e.get("pid") != pid):
            continue
        pids.add(e.get("pid"))
        if wanted is None or e["op"] in wanted:
            items.append((e["type"], e.get("pid"), e))
    many = len(pids) > 1

    def prefix(p: Any) -> str:
        return f"[pid {p}] " if many else ""

    exits_left = Counter(e["msgid"] for kind, _, e in items if kind == "syscall_exit")
    pending: dict[Any, Event] = {}
    lines: list[str] = []
    skip = False
    for n, (kind, p, e) in enumerate(items):
        if skip:
            skip = False
            continue
        if kind == "mark":
            lines.append(prefix(p) + e["text"])
        elif kind == "syscall_enter":
            msgid = e.get("msgid")
            nxt = items[n + 1] if n + 1 < len(items) else None
            if nxt is not None and nxt[0] == "syscall_exit" and nxt[2].get("msgid") == msgid:
                lines.append(prefix(p) + call_line(e, nxt[2]))
                exits_left[msgid] -= 1
                skip = True
            elif exits_left[msgid] > 0:
                head, _ = call_parts(e, None)
                lines.append(prefix(p) + f"{head} <unfinished ...>")
                pending[msgid] = e
            else:
                lines.append(prefix(p) + call_line(e, None))
        else:
            msgid = e.get("msgid")
            exits_left[msgid] -= 1
            enter = pending.pop(msgid, None)
            if enter is not None:
                _, tail = call_parts(enter, e)
                lines.append(prefix(p) + f"<... {e['op']} resumed>{tail} = {result_text(e['op'], e)}")
            else:  # SA_RESTART: the same call returns again after a handler ran
                lines.append(
                    prefix(p) + f"restart_syscall(<... resuming interrupted {e['op']} ...>) = {result_text(e['op'], e)}"
                )
    return "\n".join(lines) + ("\n" if lines else "")


# --- pstree --------------------------------------------------------------------------------
@dataclass
class _Task:
    pid: int
    comm: str
    thread: bool = False
    children: list[_Task] = field(default_factory=list)
    parent: _Task | None = None
    group: _Task | None = None  # the thread group leader (itself for a process)


def _comm(path: Any) -> str:
    """Linux's comm: the file name of the path execve ran, at most 15 characters."""
    return str(path).rstrip("/").rsplit("/", 1)[-1][:15] or "?"


def process_tree(events: Iterable[Event]) -> list[_Task]:
    """The roots of the creation tree: each task under the process that cloned it."""
    events = list(events)
    at_enter = {at: (enter, exit_) for at, enter, exit_ in _creations(events).values()}
    enters: dict[Any, Event] = {}
    current: dict[int, _Task] = {}
    roots: list[_Task] = []

    def task_of(pid: int) -> _Task:
        if pid not in current:
            root = _Task(pid, "?")
            root.group = root
            current[pid] = root
            roots.append(root)
        return current[pid]

    for i, e in enumerate(events):
        if i in at_enter:  # the child exists from copy_process on: create it at the clone's entry
            enter, exit_ = at_enter[i]
            caller = task_of(enter["pid"])
            group = caller.group or caller
            args = enter.get("args") or {}
            flags = args.get("flags", 0) if enter["op"] in ("clone", "clone3") else 0
            flags = flags if isinstance(flags, int) else 0
            child = _Task(exit_["result"], group.comm)
            if flags & abi.CLONE_THREAD:
                child.thread, child.group, child.parent = True, group, group
            else:
                child.group = child
                child.parent = (group.parent or group) if flags & abi.CLONE_PARENT else group
            child.parent.children.append(child)
            current[child.pid] = child
        if e["type"] == "syscall_enter" and isinstance(e.get("pid"), int):
            task_of(e["pid"])
            if e["op"] == "execve":
                enters[e.get("msgid")] = e
        if e["type"] == "syscall_exit" and e["op"] == "execve" and _ok(e) and isinstance(e.get("pid"), int):
            enter = enters.pop(e.get("msgid"), None)
            if enter is not None:
                task = task_of(e["pid"])
                (task.group or task).comm = _comm((enter.get("args") or {}).get("path", "?"))
    return roots


_UNICODE = {"one": "───", "first": "─┬─", "mid": " ├─", "last": " └─", "bar": " │ ", "gap": "   "}
_ASCII = {"one": "---", "first": "-+-", "mid": " |-", "last": " `-", "bar": " | ", "gap": "   "}


def _render(task: _Task, glyphs: dict[str, str], pids: bool) -> list[str]:
    label = f"{{{task.comm}}}" if task.thread else task.comm
    if pids:
        label += f"({task.pid})"
    ordered = [c for c in task.children if not c.thread] + [c for c in task.children if c.thread]
    blocks: list[tuple[list[str], int]] = []  # (lines, count), identical siblings folded
    for child in ordered:
        lines = _render(child, glyphs, pids)
        for k, (seen, count) in enumerate(blocks):
            if seen == lines:
                blocks[k] = (seen, count + 1)
                break
        else:
            blocks.append((lines, 1))
    folded = []
    for lines, count in blocks:
        if count > 1:
            head = f"{count}*["
            lines = [head + lines[0]] + [" " * len(head) + line for line in lines[1:]]
            lines[-1] += "]"
        folded.append(lines)
    if not folded:
        return [label]
    pad = " " * len(label)
    if len(folded) == 1:
        only = folded[0]
        return [label + glyphs["one"] + only[0]] + [pad + glyphs["gap"] + line for line in only[1:]]
    out: list[str] = []
    for k, lines in enumerate(folded):
        if k == 0:
            out.append(label + glyphs["first"] + lines[0])
        else:
            out.append(pad + (glyphs["last"] if k == len(folded) - 1 else glyphs["mid"]) + lines[0])
        rest = glyphs["gap"] if k == len(folded) - 1 else glyphs["bar"]
        out.extend(pad + rest + line for line in lines[1:])
    return out


def pstree(events: Iterable[Event], pids: bool = False, ascii: bool = False) -> str:
    """The processes of the run as ``pstree`` draws them: ``init───nginx───4*[nginx]``.

    Built from the clone family's results (the child's pid) and callers, named
    by execve (comm; a child keeps its parent's until it execs). Threads
    (CLONE_THREAD) are ``{name}``; identical sibling subtrees fold into
    ``N*[...]``. This is the tree of creation over the whole run: a task that
    exited or was reparented still shows where it was made. ``pids=True``
    labels every task ``name(pid)`` (nothing folds), ``ascii=True`` draws with
    ``-+|`` like ``pstree -A``.
    """
    glyphs = _ASCII if ascii else _UNICODE
    lines = [line for root in process_tree(events) for line in _render(root, glyphs, pids)]
    return "\n".join(lines) + ("\n" if lines else "")


# --- routes --------------------------------------------------------------------------------
MESSAGE_TYPES = ("request", "reply", "notify")


@dataclass
class Route:
    """One syscall's messages: ``root`` is its syscall_enter (None for an exit route)."""

    root: Event | None
    exit: Event | None
    pid: Any
    title: str
    requests: list[Event]  # requests and notifies, in trace order
    events: list[Event]  # every event of the route in trace order (enter, messages, replies, exit)
    parent_of: dict[Any, Any]  # msgid of a request -> the msgid it was caused by


def _descendants(events: list[Event], roots: set[Any]) -> set[Any]:
    """Msgids of requests caused (transitively) by one of ``roots``."""
    found: set[Any] = set()
    frontier = set(roots)
    while frontier:
        new = {
            e.get("msgid")
            for e in events
            if e["type"] in ("request", "notify") and e.get("cause") in frontier and e.get("msgid") not in found
        }
        new -= roots
        found |= new
        frontier = new
    return found


def _exit_routes(events: list[Event], pid: int | None) -> list[list[int]]:
    """do_exit's messages (``syscall: exit``, no cause), one list of indexes per task life."""
    born = {at: exit_["result"] for at, _, exit_ in _creations(events).values()}
    life: Counter = Counter()
    groups: dict[tuple[Any, int], list[int]] = {}
    for i, e in enumerate(events):
        if i in born:
            life[born[i]] += 1
        if e.get("syscall") == "exit" and e.get("cause") is None and e["type"] in MESSAGE_TYPES:
            if pid is None or e.get("pid") == pid:
                groups.setdefault((e.get("pid"), life[e.get("pid")]), []).append(i)
    return list(groups.values())


def select_route(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
) -> Route:
    """The route of one syscall: by ``msgid``, else the ``nth`` ``syscall`` (of ``pid``).

    With neither, the nth call of the clone family. ``syscall="exit"`` picks
    the nth do_exit (whose messages carry ``syscall: exit`` and no cause). A
    ``msgid`` of a request gives the sub-route under that request.
    """
    events = list(events)
    if msgid is not None:
        roots = [e for e in events if e.get("msgid") == msgid and e["type"] in ("syscall_enter", "request", "notify")]
        if not roots:
            raise ValueError(f"no syscall or request #{msgid} in the trace")
        root = roots[0]
        if root["type"] != "syscall_enter":
            ids = _descendants(events, {msgid}) | {msgid}
            chosen = [e for e in events if e["type"] in MESSAGE_TYPES and e.get("msgid") in ids]
            title = f"#{msgid} {root.get('src')} -> {root.get('dst')} {root['op']}"
            return _route(None, None, root.get("pid"), title, chosen)
        return _syscall_route(events, root)
    if syscall == "exit":
        groups = _exit_routes(events, pid)
        if nth >= len(groups):
            raise ValueError(f"the trace has {len(groups)} exits, not {nth + 1}")
        first = [events[i] for i in groups[nth]]
        ids = {e.get("msgid") for e in first if e["type"] != "reply"}
        ids |= _descendants(events, ids)
        chosen = [e for e in events if e["type"] in MESSAGE_TYPES and e.get("msgid") in ids]
        return _route(None, None, first[0].get("pid"), f"[pid {first[0].get('pid')}] exit (do_exit)", chosen)
    names = CLONE_FAMILY if syscall is None else (syscall,)
    calls = [
        e for e in events if e["type"] == "syscall_enter" and e["op"] in names and (pid is None or e["pid"] == pid)
    ]
    if nth >= len(calls):
        what = syscall or "/".join(CLONE_FAMILY)
        raise ValueError(
            f"the trace has {len(calls)} {what} calls{'' if pid is None else f' by pid {pid}'}, not {nth + 1}"
        )
    return _syscall_route(events, calls[nth])


def _syscall_route(events: list[Event], enter: Event) -> Route:
    msgid = enter.get("msgid")
    ids = _descendants(events, {msgid})
    exits = [e for e in events if e["type"] == "syscall_exit" and e.get("msgid") == msgid]
    chosen = [
        e
        for e in events
        if (e["type"] in MESSAGE_TYPES and e.get("msgid") in ids) or e is enter or any(e is x for x in exits)
    ]
    exit_ = exits[0] if exits else None
    title = f"#{msgid} [pid {enter.get('pid')}] {call_line(enter, exit_)}"
    return _route(enter, exit_, enter.get("pid"), title, chosen)


def _route(root: Event | None, exit_: Event | None, pid: Any, title: str, chosen: list[Event]) -> Route:
    requests = [e for e in chosen if e["type"] in ("request", "notify")]
    parent_of = {e.get("msgid"): e.get("cause") for e in requests}
    return Route(root, exit_, pid, title, requests, chosen, parent_of)


def _tags(event: Event) -> list[str]:
    tags = []
    if event.get("flag"):
        tags.append(event["flag"])
    step = event.get("step") or ""
    if step.startswith("undo "):
        tags.append(step)
    return tags


def route(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
) -> str:
    """The messages one syscall caused, indented as a call tree by ``cause``.

    The first line is the syscall as strace prints it; under it one line per
    request, ``[flag]`` beside the op (``[no CLONE_FILES]``), unwind steps as
    ``[undo copy_fs]`` and a failed reply's errno. A request a service sent
    while serving another is indented under it. Selection as ``select_route``.
    """
    events = list(events)
    r = select_route(events, msgid, syscall, nth, pid)
    replies = {e.get("msgid"): e for e in r.events if e["type"] == "reply"}
    ids = set(r.parent_of)

    def depth(m: Any) -> int:
        d, seen = 1, set()
        while r.parent_of.get(m) in ids and m not in seen:
            seen.add(m)
            m = r.parent_of[m]
            d += 1
        return d

    lines = [r.title]
    for e in r.requests:
        arrow = "~>" if e["type"] == "notify" else "->"
        line = f"{'  ' * depth(e.get('msgid'))}#{e.get('msgid')} {e.get('src')} {arrow} {e.get('dst', ''):<10} {e['op']:<17}"
        tags = _tags(e)
        if tags:
            line += " [" + ", ".join(tags) + "]"
        reply = replies.get(e.get("msgid"))
        if reply is not None and "errno" in reply:
            line += f" = {errno_text(reply)}"
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


# --- mermaid -------------------------------------------------------------------------------
#: Words Mermaid's sequenceDiagram grammar reserves: never used bare as a participant id.
MERMAID_KEYWORDS = frozenset(
    "end alt else opt loop par and rect note participant actor critical break box autonumber "
    "activate deactivate title over left right of as links link properties details create destroy".split()
)
_MERMAID_ENTITIES = {"#": "#35;", ";": "#59;", "{": "#123;", "}": "#125;", "<": "#lt;", ">": "#gt;", "\n": " "}
_MERMAID_SPECIAL = re.compile(r"[#;{}<>\n]|\bend\b", re.IGNORECASE)


def mermaid_text(text: str) -> str:
    """Message text Mermaid will not misread: ``#``, ``;``, braces and angle brackets as
    entity codes (``#59;``), the word ``end`` as ``#101;nd``."""

    def escape(m: re.Match) -> str:
        found = m.group()
        return _MERMAID_ENTITIES.get(found) or f"#{ord(found[0])};{found[1:]}"

    return _MERMAID_SPECIAL.sub(escape, text)


def mermaid_id(name: str) -> str:
    """A participant id: ``pid:2`` -> ``pid_2``; keywords and odd names get a prefix."""
    ident = re.sub(r"\W", "_", str(name))
    if not ident or ident[0].isdigit() or ident.lower() in MERMAID_KEYWORDS:
        ident = "svc_" + ident
    return ident


def compact(v: Any, width: int = 40) -> str:
    """``files=7, fs=8``: a message's args or result without the braces Mermaid reserves."""
    if isinstance(v, dict):
        text = ", ".join(f"{k}={compact(x, width)}" for k, x in v.items())
    elif isinstance(v, list | tuple):
        text = "[" + ", ".join(compact(x, width) for x in v) + "]"
    elif isinstance(v, str | bytes):
        text = cstring(v, width)
    elif v is None:
        text = "ok"
    else:
        text = str(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def _participant(name: Any) -> str:
    name = str(name)
    return name.replace(":", "_") if re.fullmatch(r"pid:\d+", name) else name


def _ends(e: Event) -> tuple[str, str]:
    """(src, dst) as participants; a syscall event without them is between its pid and the kernel."""
    caller = f"pid:{e.get('pid')}"
    default = (caller, "kernel") if e["type"] == "syscall_enter" else ("kernel", caller)
    return _participant(e.get("src") or default[0]), _participant(e.get("dst") or default[1])


def mermaid(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
    values: bool = False,
) -> str:
    """One syscall's route as a Mermaid ``sequenceDiagram``.

    Participants are the calling ``pid_N``, ``kernel`` and each service in order
    of appearance; requests are solid arrows (``->>``) labelled with the op and
    its ``[flag]``, replies dotted (``-->>``) with ``ok`` or the errno, notifies
    open (``-)``). The unwind after a failed step (steps named ``undo ...``)
    sits in an ``alt unwind`` block. Selection as ``select_route``.

    ``values=True`` adds each message's args and result (``dup_files(files=7)``,
    ``files=9``). They are left out by default because some are not the same
    from run to run in one Python process (the kernel numbers tasks globally).
    """
    r = select_route(list(events), msgid, syscall, nth, pid)
    names: list[str] = []
    for name in [_participant(f"pid:{r.pid}"), "kernel"] + [x for e in r.events for x in _ends(e)]:
        if name not in names:
            names.append(name)
    ids = {name: mermaid_id(name) for name in names}
    lines = ["sequenceDiagram"]
    for name in names:
        ident = ids[name]
        lines.append(
            f"    participant {ident}" if ident == name else f"    participant {ident} as {mermaid_text(name)}"
        )
    if r.root is None:
        lines.append(f"    Note over {ids[_participant(f'pid:{r.pid}')]}: {mermaid_text(r.title)}")
    in_unwind = False
    for e in r.events:
        undo = (e.get("step") or "").startswith("undo ")
        if undo and not in_unwind:
            lines.append("    alt unwind")
            in_unwind = True
        elif not undo and in_unwind:
            lines.append("    end")
            in_unwind = False
        indent = "        " if in_unwind else "    "
        src, dst = (ids[x] for x in _ends(e))
        kind = e["type"]
        if kind == "syscall_enter":
            head, tail = call_parts(e, r.exit)
            arrow, text = "->>", head + tail
        elif kind == "syscall_exit":
            arrow, text = "-->>", f"{e['op']} = {result_text(e['op'], e)}"
        elif kind == "reply":
            arrow = "-->>"
            text = errno_text(e) if "errno" in e else compact(e.get("result")) if values else "ok"
        else:
            arrow = "-)" if kind == "notify" else "->>"
            text = e["op"]
            if values:
                text += f"({compact(e.get('args')) if e.get('args') else ''})"
            tags = _tags(e)
            if tags:
                text += " [" + ", ".join(tags) + "]"
        lines.append(f"{indent}{src}{arrow}{dst}: {mermaid_text(text)}")
    if in_unwind:
        lines.append("    end")
    return "\n".join(lines) + "\n"


# --- stats ---------------------------------------------------------------------------------
def stats(events: Iterable[Event]) -> str:
    """Messages per service and op (count, mean and max ``dur_us`` of the replies) and
    syscalls per pid (calls, errors, the ops by count). ``dur_us`` is wall time."""
    events = list(events)
    count: Counter = Counter()
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    errors: Counter = Counter()
    for e in events:
        if e["type"] in ("request", "notify"):
            count[(e.get("dst"), e["op"])] += 1
        elif e["type"] == "reply":
            key = (e.get("src"), e["op"])
            if isinstance(e.get("dur_us"), int | float):
                durations[key].append(e["dur_us"])
            if "errno" in e:
                errors[key] += 1
    lines = [
        "messages by service and op:",
        f"  {'service':<11}{'op':<24}{'count':>6}{'errors':>7}{'mean_us':>9}{'max_us':>8}",
    ]
    for (service, op), n in sorted(count.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        d = durations.get((service, op), [])
        mean = f"{sum(d) / len(d):.0f}" if d else "-"
        top = f"{max(d)}" if d else "-"
        lines.append(f"  {service!s:<11}{op:<24}{n:>6}{errors[(service, op)]:>7}{mean:>9}{top:>8}")
    lines.append(f"  {'total':<35}{sum(count.values()):>6}{sum(errors.values()):>7}")
    calls: dict[Any, Counter] = defaultdict(Counter)
    failed: Counter = Counter()
    for e in events:
        if e["type"] == "syscall_enter":
            calls[e.get("pid")][e["op"]] += 1
        elif e["type"] == "syscall_exit" and "errno" in e:
            failed[e.get("pid")] += 1
    lines += ["", "syscalls by pid:", f"  {'pid':>5}{'calls':>7}{'errors':>7}  ops"]
    for p in sorted(calls, key=lambda x: (not isinstance(x, int), x if isinstance(x, int) else str(x))):
        ops = ", ".join(f"{op} {n}" for op, n in sorted(calls[p].items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  {p!s:>5}{sum(calls[p].values()):>7}{failed[p]:>7}  {ops}")
    return "\n".join(lines) + "\n"


# --- assertions ----------------------------------------------------------------------------
def assert_route(
    trace: list[Event],
    expected: Iterable[tuple[str, str]],
    syscall: str = "clone",
    nth: int = 0,
    pid: int | None = None,
) -> None:
    """``route_of(...) == expected``, failing with both routes side by side (``!`` marks rows that differ)."""
    want = [tuple(x) for x in expected]
    got = route_of(trace, syscall, nth, pid)
    if got == want:
        return
    left = [f"{s} {o}" for s, o in want]
    right = [f"{s} {o}" for s, o in got]
    width = max([len("expected"), *map(len, left)])
    rows = [f"   {'expected':<{width}}   actual"]
    for k in range(max(len(left), len(right))):
        a = left[k] if k < len(left) else ""
        b = right[k] if k < len(right) else ""
        mark = " ! " if a != b else "   "
        rows.append(f"{mark}{a:<{width}}   {b}".rstrip())
    who = "" if pid is None else f" of pid {pid}"
    raise AssertionError(f"route of {syscall} #{nth}{who} differs:\n" + "\n".join(rows))


# --- chrome: the Chrome Trace Event JSON that Perfetto and chrome://tracing open --------------
#: The pid of the "ukernel" process that holds the kernel, service and CPU tracks: Linux's
#: PID_MAX_LIMIT (2**22), a number no pid reaches, so it never meets a task's. Its tracks'
#: tids count up from the same number: kernel, each service in order of appearance, each CPU.
CHROME_PID = 1 << 22


def _jsonable(v: Any) -> Any:
    """A value JSON holds as it is: bytes as the JSON Lines sink writes them, tuples as lists."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return _text(v)
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


@dataclass
class _Slice:
    track: tuple  # ("kernel",), ("service", name), ("task", tid) or ("cpu", n)
    start: int
    end: int
    name: str
    cat: str
    args: dict
    lane: int = 0

    def encloses(self, t: int) -> bool:
        return self.start <= t <= self.end


def _lanes(slices: list[_Slice]) -> int:
    """Put each slice in the first lane of its track where it nests; the number of lanes.

    Slices sorted by start (longer first) nest in a lane when each one ends before the
    slice it starts in does. A service serves requests concurrently (``pid`` frees four
    pids at once), so one that overlaps without nesting goes to a lane of its own.
    """
    stacks: list[list[int]] = []  # per lane: the ends of the slices still open
    for s in sorted(slices, key=lambda s: (s.start, -s.end)):
        chosen = None
        for lane, stack in enumerate(stacks):
            while stack and stack[-1] <= s.start:
                stack.pop()
            if not stack or s.end <= stack[-1]:
                chosen = lane
                break
        if chosen is None:
            chosen = len(stacks)
            stacks.append([])
        stacks[chosen].append(s.end)
        s.lane = chosen
    return len(stacks)


def _message_args(e: Event, reply: Event | None) -> dict:
    args = {
        k: e[k]
        for k in ("msgid", "cause", "src", "dst", "pid", "tid", "syscall", "step", "flag")
        if e.get(k) is not None
    }
    if e.get("args") is not None:
        args["args"] = e["args"]
    if reply is not None:
        for k in ("result", "errno", "message", "dur_us"):
            if k in reply:
                args[k] = reply[k]
    elif e["type"] == "request":
        args["reply"] = "none in the trace"
    return _jsonable(args)


def chrome(events: Iterable[Event]) -> dict:
    """The trace in the Chrome Trace Event format (a dict to ``json.dump``), for Perfetto.

    Time is the event order: an event's ``ts`` in the output is its ``seq``, read as
    microseconds, so a message or syscall lasts as many microseconds as events were
    emitted while it was in progress. That is deterministic (``dur_us`` is wall time
    and stays in the slice's args) and keeps every slice in the order of the trace.

    - a process ``ukernel`` (pid ``CHROME_PID``) with a track for the kernel, one per
      service and one per CPU: each message a service handled is an ``X`` slice on its
      track from the request to the reply; the kernel's work that no syscall encloses
      (boot, do_exit of a thread, release_task) is a slice on the kernel track; a CPU's
      slices are the tasks it picked, each until its next pick;
    - a process per thread group (pid of the leader, named by comm) with a thread per
      task: its syscalls as ``X`` slices from entry to (last) exit; a call that never
      returns lasts until the end of its do_exit;
    - a flow (``s`` on the caller's slice, ``f`` with ``bp: "e"`` on the handler's
      slice, ``id`` the msgid) per request or notify;
    - ``M`` metadata naming the processes and threads and ordering the tracks.

    Slices on one track nest; a service that served requests concurrently gets a second
    track (``pid #2``) for those that overlap.
    """
    events = list(events)
    seq = {id(e): e.get("seq", i + 1) for i, e in enumerate(events)}
    last = max(seq.values(), default=0)
    tasks: dict[int, _Task] = {}
    stack = list(process_tree(events))
    while stack:
        task = stack.pop()
        tasks[task.pid] = task
        stack.extend(task.children)
    replies: dict[Any, Event] = {}
    exits: dict[Any, Event] = {}
    for e in events:
        if e["type"] == "reply":
            replies.setdefault(e.get("msgid"), e)
        elif e["type"] == "syscall_exit":
            exits[e.get("msgid")] = e  # the last: after an SA_RESTART handler, the call returns again

    def track_of(name: Any) -> tuple:
        name = str(name)
        if name == "kernel":
            return ("kernel",)
        if re.fullmatch(r"pid:\d+", name):
            return ("task", int(name[4:]))
        return ("service", name)

    slices: list[_Slice] = []
    calls: dict[Any, _Slice] = {}  # syscall msgid -> its slice
    by_tid: dict[Any, list[_Slice]] = defaultdict(list)
    for i, e in enumerate(events):
        if e["type"] != "syscall_enter" or not isinstance(e.get("tid", e.get("pid")), int):
            continue
        tid = e.get("tid", e.get("pid"))
        exit_ = exits.get(e.get("msgid"))
        if exit_ is not None:
            end = seq[id(exit_)]
        else:  # never returned: until the end of the do_exit that followed, before its next call
            end = seq[id(e)]
            for later in events[i + 1 :]:
                if later.get("tid", later.get("pid")) != tid:
                    continue
                if later["type"] == "syscall_enter":
                    break
                if later["type"] in MESSAGE_TYPES and later.get("syscall") == "exit":
                    end = seq[id(later)]
        args = {"call": call_line(e, exit_), "msgid": e.get("msgid"), "pid": e.get("pid"), "tid": tid}
        if exit_ is not None and exit_.get("dur_us") is not None:
            args["dur_us"] = exit_["dur_us"]
        s = _Slice(("task", tid), seq[id(e)], end, e["op"], "syscall", _jsonable(args))
        slices.append(s)
        calls[e.get("msgid")] = s
        by_tid[tid].append(s)

    def enclosing(slist: list[_Slice], t: int) -> _Slice | None:
        inside = [s for s in slist if s.encloses(t)]
        return max(inside, key=lambda s: (s.start, -s.end)) if inside else None

    handled: dict[Any, _Slice] = {}  # request msgid -> the slice of its handling
    requests = [e for e in events if e["type"] in ("request", "notify")]
    for e in requests:
        start = seq[id(e)]
        reply = replies.get(e.get("msgid")) if e["type"] == "request" else None
        end = seq[id(reply)] if reply is not None else start if e["type"] == "notify" else last
        s = _Slice(track_of(e.get("dst")), start, end, e["op"], "message", _message_args(e, reply))
        slices.append(s)
        handled[e.get("msgid")] = s
        if s.track[0] == "task":
            by_tid[s.track[1]].append(s)

    # The caller's slice of each request: the service's handling of its cause, the syscall
    # that caused it, the syscall the task is in, else a slice of kernel work on the kernel track.
    callers: dict[int, _Slice] = {}
    work: dict[tuple, _Slice] = {}
    for e in requests:
        t = seq[id(e)]
        src = track_of(e.get("src"))
        caller: _Slice | None = None
        if src[0] == "service":
            caller = handled.get(e.get("cause"))
        elif src[0] == "task":
            caller = enclosing(by_tid[src[1]], t)
        else:
            caller = calls.get(e.get("cause"))
            if caller is None or not caller.encloses(t):
                caller = enclosing(by_tid.get(e.get("tid", e.get("pid")), []), t)
            if caller is None:
                # One slice per piece of work: a do_exit or boot's kernel_thread is one, and
                # housekeeping of one kind (release_task frees pids from system tasks, all at
                # once) is one while its requests overlap.
                tid = e.get("tid", e.get("pid"))
                if e.get("syscall") is not None or e.get("cause") is not None:
                    key: tuple = (e.get("syscall"), e.get("cause"), tid)
                    name = "do_exit" if e.get("syscall") == "exit" else str(e.get("syscall") or e["op"])
                    args = {"pid": e.get("pid"), "tid": tid, "cause": e.get("cause")}
                else:
                    key = ("housekeeping", e.get("step") or e["op"])
                    name, args = str(key[1]), {}
                done = handled[e.get("msgid")].end
                caller = work.get(key)
                if caller is None or (key[0] == "housekeeping" and t > caller.end):
                    args = {k: v for k, v in args.items() if v is not None}
                    caller = _Slice(("kernel",), t, done, name, "kernel", _jsonable(args))
                    work[key] = caller
                    slices.append(caller)
                caller.end = max(caller.end, done)
                if key[0] == "housekeeping":
                    caller.args.setdefault("msgids", []).append(e.get("msgid"))
        if caller is not None and caller.encloses(t):
            callers[id(e)] = caller

    picks: dict[Any, list[Event]] = defaultdict(list)
    for e in events:
        if e["type"] == "sched" and e["op"] == "pick":
            picks[e.get("cpu", 0)].append(e)
    for cpu, ps in picks.items():
        for k, e in enumerate(ps):
            end = seq[id(ps[k + 1])] if k + 1 < len(ps) else last + 1
            tid = e.get("tid", e.get("pid"))
            task = tasks.get(tid)
            name = f"{(task.group or task).comm if task else 'pid'} {tid}"
            slices.append(_Slice(("cpu", cpu), seq[id(e)], end, name, "sched", {"pid": e.get("pid"), "tid": tid}))

    # Tracks, lanes and their tids.
    tracks: dict[tuple, list[_Slice]] = defaultdict(list)
    for s in slices:
        tracks[s.track].append(s)
    order = {"kernel": 0, "service": 1, "cpu": 2, "task": 3}
    services = list(dict.fromkeys(s.track for s in slices if s.track[0] == "service"))

    def rank(track: tuple) -> tuple:
        if track[0] == "service":
            return (order["service"], services.index(track))
        return (order[track[0]], track[1] if len(track) > 1 else 0)

    out: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": CHROME_PID, "tid": CHROME_PID, "args": {"name": "ukernel"}},
        {"ph": "M", "name": "process_sort_index", "pid": CHROME_PID, "tid": CHROME_PID, "args": {"sort_index": -1}},
    ]
    next_tid = CHROME_PID
    tid_of: dict[tuple[tuple, int], tuple[int, int]] = {}  # (track, lane) -> (pid, tid)
    named_processes: set[int] = {CHROME_PID}
    extra_lanes: list[tuple[tuple, int]] = []
    for track in sorted(tracks, key=rank):
        lanes = _lanes(tracks[track]) if track[0] != "cpu" else 1
        for lane in range(lanes):
            if track[0] == "task":
                tid = track[1]
                task = tasks.get(tid)
                group = (task.group or task) if task else None
                pid = group.pid if group else tid
                comm = group.comm if group else "?"
                if pid not in named_processes:
                    named_processes.add(pid)
                    out.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": comm}})
                    out.append(
                        {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": pid, "args": {"sort_index": pid}}
                    )
                if lane:
                    extra_lanes.append((track, lane))
                    continue
                name = f"{{{comm}}}" if task and task.thread else comm
                tid_of[(track, lane)] = (pid, tid)
                out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
                continue
            name = {"kernel": "kernel", "cpu": f"cpu{track[-1]}"}.get(track[0], str(track[-1]))
            if lane:
                name += f" #{lane + 1}"
            tid_of[(track, lane)] = (CHROME_PID, next_tid)
            out.append({"ph": "M", "name": "thread_name", "pid": CHROME_PID, "tid": next_tid, "args": {"name": name}})
            out.append(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": CHROME_PID,
                    "tid": next_tid,
                    "args": {"sort_index": next_tid - CHROME_PID},
                }
            )
            next_tid += 1
    for track, lane in extra_lanes:  # a task's overlapping slices (not seen in practice): a made-up tid
        pid = tid_of[(track, 0)][0]
        tid_of[(track, lane)] = (pid, next_tid)
        out.append(
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": next_tid, "args": {"name": f"{track[1]} #{lane + 1}"}}
        )
        next_tid += 1

    timed: list[dict] = []
    for s in slices:
        pid, tid = tid_of[(s.track, s.lane)]
        timed.append(
            {"ph": "X", "name": s.name, "cat": s.cat, "pid": pid, "tid": tid, "ts": s.start, "dur": s.end - s.start}
            | ({"args": s.args} if s.args else {})
        )
    for e in requests:
        caller = callers.get(id(e))
        if caller is None:
            continue
        t = seq[id(e)]
        handler = handled[e.get("msgid")]
        for ph, s in (("s", caller), ("f", handler)):
            pid, tid = tid_of[(s.track, s.lane)]
            flow = {"ph": ph, "id": e.get("msgid"), "name": e["op"], "cat": "flow", "pid": pid, "tid": tid, "ts": t}
            if ph == "f":
                flow["bp"] = "e"
            timed.append(flow)
    phase = {"X": 0, "s": 1, "f": 2}
    timed.sort(key=lambda ev: (ev["ts"], phase[ev["ph"]], -ev.get("dur", 0)))
    return {"traceEvents": out + timed}


# --- html: one page to read a run in a browser ------------------------------------------------
def _html_route(events: list[Event], msgid: int | None, syscall: str | None, nth: int, pid: int | None) -> Route | None:
    """The route ``html`` draws: as ``select_route`` when asked for one; by default the program's
    first clone-family call (the first not by init, pid 1, which only starts the program), else
    the first call of the clone family, else the first syscall that sent messages; None when none did."""
    if msgid is not None or syscall is not None or pid is not None or nth:
        return select_route(events, msgid, syscall, nth, pid)
    enters = [e for e in events if e["type"] == "syscall_enter"]
    clones = [e for e in enters if e["op"] in CLONE_FAMILY]
    for e in [*(e for e in clones if e.get("pid") != 1), *clones]:
        return _syscall_route(events, e)
    causes = {e.get("cause") for e in events if e["type"] in ("request", "notify")}
    for e in enters:
        if e.get("msgid") in causes:
            return _syscall_route(events, e)
    return None


def _label(e: Event, exit_: Event | None) -> str:
    """The text of an arrow, as the Mermaid view writes it (without its escapes)."""
    kind = e["type"]
    if kind == "syscall_enter":
        head, tail = call_parts(e, exit_)
        return head + tail
    if kind == "syscall_exit":
        return f"{e['op']} = {result_text(e['op'], e)}"
    if kind == "reply":
        return f"{e['op']} = {errno_text(e)}" if "errno" in e else f"{e['op']} ok"
    tags = _tags(e)
    return e["op"] + (" [" + ", ".join(tags) + "]" if tags else "")


def _raw_ends(e: Event) -> tuple[str, str]:
    """(src, dst) as the trace names them (``pid:2``); see ``_ends``."""
    caller = f"pid:{e.get('pid')}"
    default = (caller, "kernel") if e["type"] == "syscall_enter" else ("kernel", caller)
    return str(e.get("src") or default[0]), str(e.get("dst") or default[1])


_SVG_COL, _SVG_ROW, _SVG_TOP, _SVG_BOX = 124, 30, 78, 112


def _svg(r: Route) -> str:
    """The route as an SVG sequence diagram: a lifeline per participant, an arrow per event."""
    names: list[str] = []
    for name in [f"pid:{r.pid}", "kernel"] + [x for e in r.events for x in _raw_ends(e)]:
        if name not in names:
            names.append(name)
    x_of = {name: 20 + _SVG_COL // 2 + k * _SVG_COL for k, name in enumerate(names)}
    width = 40 + _SVG_COL * len(names) + 120  # room for a self message's loop and label
    height = _SVG_TOP + _SVG_ROW * len(r.events) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="diagram" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_escape(r.title)}">'
    ]
    undo_rows = [k for k, e in enumerate(r.events) if (e.get("step") or "").startswith("undo ")]
    if undo_rows:
        top = _SVG_TOP + undo_rows[0] * _SVG_ROW - 22
        bottom = _SVG_TOP + undo_rows[-1] * _SVG_ROW + 10
        out.append(f'<rect class="unwind" x="10" y="{top}" width="{width - 20}" height="{bottom - top}"/>')
        out.append(f'<text class="unwind-label" x="16" y="{top + 13}">alt unwind</text>')
    for name in names:
        x = x_of[name]
        out.append(f'<line class="life" x1="{x}" y1="44" x2="{x}" y2="{height - 8}"/>')
        out.append(
            f'<g class="participant"><rect x="{x - _SVG_BOX // 2}" y="12" width="{_SVG_BOX}" height="30" rx="4"/>'
            f'<text x="{x}" y="32">{_escape(name)}</text></g>'
        )
    for k, e in enumerate(r.events):
        y = _SVG_TOP + k * _SVG_ROW
        src, dst = _raw_ends(e)
        kind = {"syscall_enter": "request syscall", "syscall_exit": "reply syscall"}.get(e["type"], e["type"])
        if e["type"] in ("reply", "syscall_exit") and "errno" in e:
            kind += " error"
        label = _label(e, r.exit)
        msgid = e.get("msgid")
        full = f"#{msgid} {src} \u2192 {dst}: {label}"
        x1, x2 = x_of[src], x_of[dst]
        parts = [f'<g class="msg {kind}" data-ev="{k}" tabindex="0"><title>{_escape(full)}</title>']
        if x1 == x2:
            parts.append(f'<path class="line" d="M{x1} {y} h36 v12 h-32"/>')
            parts.append(f'<polygon class="head" points="{x1} {y + 12},{x1 + 9} {y + 8},{x1 + 9} {y + 16}"/>')
            parts.append(f'<text class="label" x="{x1 + 42}" y="{y + 10}" text-anchor="start">')
        else:
            d = 1 if x2 > x1 else -1
            parts.append(f'<line class="hit" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>')
            parts.append(f'<line class="line" x1="{x1}" y1="{y}" x2="{x2 - d * 9}" y2="{y}"/>')
            parts.append(f'<polygon class="head" points="{x2} {y},{x2 - d * 10} {y - 5},{x2 - d * 10} {y + 5}"/>')
            parts.append(f'<text class="label" x="{(x1 + x2) / 2:g}" y="{y - 6}" text-anchor="middle">')
        room = max(24, abs(x2 - x1) // 7) if x1 != x2 else 40
        shown = label if len(label) <= room else label[: room - 1] + "\u2026"
        parts.append(f"{_escape(shown)}</text></g>")
        out.append("".join(parts))
    out.append("</svg>")
    return "\n".join(out)


def _script_json(v: Any) -> str:
    """JSON safe inside a <script> element: no ``<`` that could end it."""
    return json.dumps(_jsonable(v), sort_keys=False).replace("<", "\\u003c")


_HTML_CSS = """
:root { --fg: #1d2330; --muted: #5c6475; --line: #c9cfdb; --req: #2456b3; --rep: #3b7d3b; --err: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 24px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: #fbfbfd; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 17px; margin: 22px 0 8px; overflow-wrap: anywhere; }
.summary, .hint { color: var(--muted); margin: 0; }
code, pre, td.call, input { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.route { display: flex; gap: 16px; align-items: flex-start; }
.diagram { overflow: auto; min-width: 0; max-height: 620px; border: 1px solid var(--line); background: #fff; border-radius: 6px; flex: 1 1 auto; }
#details { flex: 0 0 320px; min-width: 0; border: 1px solid var(--line); border-radius: 6px; background: #fff; padding: 8px 12px; }
#details h3 { margin: 0 0 6px; font-size: 14px; }
#detail { margin: 0; white-space: pre-wrap; word-break: break-all; max-height: 560px; overflow: auto; }
svg text { font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; fill: var(--fg); }
.participant rect { fill: #eef2fb; stroke: #7f8db0; }
.participant text { text-anchor: middle; font-weight: bold; }
.life { stroke: #9aa3b5; stroke-dasharray: 3 4; }
.unwind { fill: #fdf0ef; stroke: #e3a59f; stroke-dasharray: 5 3; }
.unwind-label { fill: var(--err); font-weight: bold; }
.msg { cursor: pointer; }
.msg .line { stroke: var(--req); stroke-width: 1.6; fill: none; }
.msg .head { fill: var(--req); }
.msg .hit { stroke: transparent; stroke-width: 14; }
.msg.reply .line { stroke: var(--rep); stroke-dasharray: 6 4; }
.msg.reply .head { fill: var(--rep); }
.msg.notify .head { fill: #fff; stroke: var(--req); }
.msg.error .line { stroke: var(--err); } .msg.error .head { fill: var(--err); } .msg.error text { fill: var(--err); }
.msg:hover text, .msg:focus text { font-weight: bold; }
.msg.selected .line { stroke-width: 3; } .msg.selected text { font-weight: bold; text-decoration: underline; }
pre.pstree { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; overflow: auto; }
#filter { width: 340px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; margin-top: 8px; background: #fff; width: 100%; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e6e9f0; vertical-align: top; }
th { background: #eef2fb; position: sticky; top: 0; }
td.num { text-align: right; color: var(--muted); }
td.call { overflow-wrap: anywhere; } td.result { white-space: nowrap; }
tr.call { cursor: pointer; } tr.call:hover { background: #f3f6fd; } tr.call.selected { background: #e3ebfb; }
tr.failed td.result { color: var(--err); }
"""

_HTML_JS = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const detail = document.getElementById("detail");
  const arrows = Array.from(document.querySelectorAll("#diagram .msg"));
  const rows = Array.from(document.querySelectorAll("#syscalls tbody tr"));
  const filter = document.getElementById("filter");
  const shown = document.getElementById("shown");

  function select(el, title, events) {
    document.querySelectorAll(".selected").forEach(function (x) { x.classList.remove("selected"); });
    el.classList.add("selected");
    detail.textContent = title + "\\n\\n" + events.map(function (e) { return JSON.stringify(e, null, 2); }).join("\\n");
  }
  function showMessage(el) {
    const event = data.route[Number(el.dataset.ev)];
    const pair = data.route.filter(function (e) { return e.msgid === event.msgid; });
    select(el, el.querySelector("title").textContent, pair);
  }
  function showCall(row) {
    select(row, row.querySelector(".call").textContent, data.calls[row.dataset.msgid] || []);
  }
  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let n = 0;
    rows.forEach(function (row) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every(function (w) { return text.includes(w); });
      if (!row.hidden) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " syscalls";
  }
  arrows.forEach(function (el) {
    el.addEventListener("click", function () { showMessage(el); });
    el.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); showMessage(el); }
    });
  });
  rows.forEach(function (row) { row.addEventListener("click", function () { showCall(row); }); });
  filter.addEventListener("input", applyFilter);

  // A link can say what to show: page.html#filter=fork&msg=3 (msg: the arrow's index).
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (params.has("filter")) filter.value = params.get("filter");
  applyFilter();
  const chosen = arrows[Number(params.get("msg"))];
  if (params.has("msg") && chosen) showMessage(chosen);
  document.body.dataset.ready = "1";
})();
"""


def html(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
) -> str:
    """One self-contained HTML page (inline CSS and JS, nothing fetched) to read a run.

    - the route of one syscall as an SVG sequence diagram: a lifeline per participant,
      an arrow (an element of class ``msg``) per event of the route, requests solid,
      replies dashed, failed replies red, the unwind shaded; a click shows the message
      (request and reply, with args and results) beside it;
    - the pstree (``pids=True``);
    - every syscall in a table with a text filter; a click shows its enter and exit.

    The route: as ``select_route`` when ``msgid``, ``syscall``, ``pid`` or ``nth`` is
    given, else the program's first clone-family call (the first not made by init,
    pid 1), else the first syscall that sent a message.
    """
    events = list(events)
    r = _html_route(events, msgid, syscall, nth, pid)
    exits: dict[Any, list[Event]] = defaultdict(list)
    for e in events:
        if e["type"] == "syscall_exit":
            exits[e.get("msgid")].append(e)
    children: dict[Any, list[Any]] = defaultdict(list)
    for e in events:
        if e["type"] in ("request", "notify"):
            children[e.get("cause")].append(e.get("msgid"))

    def sent(m: Any) -> int:
        count, todo, seen = 0, list(children.get(m, [])), set()
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            count += 1
            todo.extend(children.get(x, []))
        return count

    rows, calls = [], {}
    enters = [e for e in events if e["type"] == "syscall_enter"]
    for e in enters:
        done = exits.get(e.get("msgid"), [])
        exit_ = done[-1] if done else None
        head, tail = call_parts(e, exit_)
        result = result_text(e["op"], exit_) if exit_ is not None or e["op"] in NO_RETURN else "?"
        failed = " failed" if exit_ is not None and "errno" in exit_ else ""
        calls[str(e.get("msgid"))] = [e, *done]
        rows.append(
            f'<tr class="call{failed}" data-msgid="{_escape(str(e.get("msgid")))}">'
            f'<td class="num">{e.get("seq", "")}</td><td class="num">{_escape(str(e.get("pid")))}</td>'
            f'<td class="num">{_escape(str(e.get("tid", e.get("pid"))))}</td>'
            f'<td class="call">{_escape(head + tail)}</td><td class="result">{_escape(result)}</td>'
            f'<td class="num">{sent(e.get("msgid"))}</td></tr>'
        )
    n_messages = sum(1 for e in events if e["type"] in MESSAGE_TYPES)
    n_tasks = len({e.get("tid", e.get("pid")) for e in enters})
    if r is None:
        title, diagram = "no syscall in this trace sent a message", "<p class=hint>Nothing to draw.</p>"
        route_events: list[Event] = []
    else:
        title, diagram, route_events = r.title, _svg(r), r.events
    tree = pstree(events, pids=True) or "(no process)\n"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ukernel trace: {_escape(title)}</title>
<style>{_HTML_CSS}</style>
</head>
<body>
<header>
<h1>ukernel trace</h1>
<p class="summary">{len(events)} events, {len(enters)} syscalls by {n_tasks} tasks, {n_messages} messages</p>
</header>
<section>
<h2 id="route-title">Route of {_escape(title)}</h2>
<p class="hint">Requests solid, replies dashed; click an arrow for its message.</p>
<div class="route">
<div class="diagram">
{diagram}
</div>
<aside id="details"><h3>Details</h3><pre id="detail">Click a message or a syscall.</pre></aside>
</div>
</section>
<section>
<h2>Processes</h2>
<pre class="pstree">{_escape(tree)}</pre>
</section>
<section>
<h2>Syscalls</h2>
<input id="filter" type="search" placeholder="filter: words that must all appear (fork 2 ENOMEM)" aria-label="filter syscalls">
<span id="shown" class="hint"></span>
<table id="syscalls">
<thead><tr><th>seq</th><th>pid</th><th>tid</th><th>call</th><th>result</th><th>messages</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</section>
<script type="application/json" id="trace-data">{_script_json({"route": route_events, "calls": calls})}</script>
<script>{_HTML_JS}</script>
</body>
</html>
"""
    return page


#: The views that return text, by name (``chrome`` returns a dict: ``json.dump(chrome(events), f)``).
VIEWS: dict[str, Callable[..., str]] = {
    "strace": strace,
    "pstree": pstree,
    "route": route,
    "mermaid": mermaid,
    "stats": stats,
    "html": html,
}


# --- gantt: per-CPU timeline -----------------------------------------------------------
GANTT_WIDTH, GANTT_ROW, GANTT_LEFT = 960, 28, 56


def cpu_segments(events: Iterable[Event]) -> dict[int, list[tuple[int, int, int]]]:
    """(start tick, end tick, pid) per CPU: from each ``pick`` to the CPU's next pick or idle."""
    events = list(events)
    last = max((e.get("ts", 0) for e in events), default=0)
    segments: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    running: dict[int, tuple[int, int]] = {}  # cpu -> (since, pid)
    for e in events:
        if e["type"] != "sched" or e["op"] not in ("pick", "idle"):
            continue
        cpu = e.get("cpu", 0)
        if cpu in running:
            since, pid = running.pop(cpu)
            segments[cpu].append((since, e["ts"], pid))
        if e["op"] == "pick":
            running[cpu] = (e["ts"], e.get("pid"))
    for cpu, (since, pid) in running.items():
        segments[cpu].append((since, last, pid))
    return {cpu: [s for s in segments[cpu] if s[1] > s[0]] for cpu in sorted(segments)}


def gantt(events: Iterable[Event]) -> str:
    """The run as an SVG Gantt chart: a row per CPU, a bar per stretch a task ran (x: virtual ticks)."""
    rows = cpu_segments(events)
    end = max((s[1] for segs in rows.values() for s in segs), default=1) or 1
    scale = (GANTT_WIDTH - GANTT_LEFT - 8) / end
    height = GANTT_ROW * (len(rows) + 1) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{GANTT_WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f"<title>ukernel: CPU timeline, {end} ticks</title>",
    ]
    for row, (cpu, segs) in enumerate(rows.items()):
        y = 4 + row * GANTT_ROW
        out.append(f'<text x="4" y="{y + 17}">cpu{cpu}</text>')
        for start, stop, pid in segs:
            x, w = GANTT_LEFT + start * scale, max((stop - start) * scale, 0.5)
            hue = (int(pid or 0) * 67) % 360
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{GANTT_ROW - 6}" '
                f'fill="hsl({hue},60%,70%)" stroke="#333" stroke-width="0.3">'
                f"<title>pid {_escape(str(pid))}: ticks {start}-{stop}</title></rect>"
            )
            if w > 8 * len(str(pid)) + 4:
                out.append(f'<text x="{x + 2:.1f}" y="{y + 15}">{_escape(str(pid))}</text>')
    axis_y = 4 + len(rows) * GANTT_ROW + 12
    for k in range(11):
        tick = round(end * k / 10)
        out.append(f'<text x="{GANTT_LEFT + tick * scale:.1f}" y="{axis_y}" text-anchor="middle">{tick}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


VIEWS["gantt"] = gantt
