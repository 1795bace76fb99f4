"""Views of a trace: pure functions from a list of events to text.

Every view reads the events ``ukernel.run(...).trace`` returns, or the same
events read back with ``ukernel.trace.load(path)`` from ``ukernel run --trace``
(the schema is docs/trace.md). None of them prints ``ts``-independent wall
time except ``stats``: ``dur_us`` is real time, so the other views leave it out
and are the same on every run of a deterministic program.

- ``strace``: one line per syscall, in strace's format.
- ``pstree``: the processes and threads the run created, from the clone family.
- ``route``: the messages one syscall caused, as a call tree.
- ``mermaid``: the same route as a Mermaid ``sequenceDiagram``.
- ``stats``: messages per service and op (count, mean and max ``dur_us``), syscalls per pid.
- ``assert_route``: ``route_of`` as an assertion whose message shows both routes side by side.
"""

from __future__ import annotations

import errno as _errno
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import abi
from .testing import route_of
from .trace import Event

__all__ = ["CLONE_FAMILY", "VIEWS", "assert_route", "mermaid", "pstree", "route", "select_route", "stats", "strace"]

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


_PROT = [(abi.PROT_READ, "PROT_READ"), (abi.PROT_WRITE, "PROT_WRITE"), (abi.PROT_EXEC, "PROT_EXEC")]
_MAP = [
    (abi.MAP_SHARED, "MAP_SHARED"),
    (abi.MAP_PRIVATE, "MAP_PRIVATE"),
    (abi.MAP_FIXED, "MAP_FIXED"),
    (abi.MAP_ANONYMOUS, "MAP_ANONYMOUS"),
]
_WAIT = [
    (abi.WNOHANG, "WNOHANG"),
    (abi.WUNTRACED, "WUNTRACED"),
    (abi.WEXITED, "WEXITED"),
    (abi.WCONTINUED, "WCONTINUED"),
    (abi.WNOWAIT, "WNOWAIT"),
    (abi.__WNOTHREAD, "__WNOTHREAD"),
    (abi.__WALL, "__WALL"),
    (abi.__WCLONE, "__WCLONE"),
]
_OPEN = [
    (abi.O_WRONLY, "O_WRONLY"),
    (abi.O_RDWR, "O_RDWR"),
    (abi.O_CREAT, "O_CREAT"),
    (abi.O_EXCL, "O_EXCL"),
    (abi.O_NOCTTY, "O_NOCTTY"),
    (abi.O_TRUNC, "O_TRUNC"),
    (abi.O_APPEND, "O_APPEND"),
    (abi.O_NONBLOCK, "O_NONBLOCK"),
    (abi.O_DIRECTORY, "O_DIRECTORY"),
    (abi.O_NOFOLLOW, "O_NOFOLLOW"),
    (abi.O_CLOEXEC, "O_CLOEXEC"),
]


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


VIEWS: dict[str, Callable[..., str]] = {
    "strace": strace,
    "pstree": pstree,
    "route": route,
    "mermaid": mermaid,
    "stats": stats,
}


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
