"""The strace view: one line per syscall, as ``strace -f`` prints them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ... import abi
from ...testing import births, faults_by_syscall
from .. import Event
from .format import NO_RETURN, call_line, call_parts, fault_line, result_text, signal_name, succeeded


# --- exits: +++ exited with N +++ --------------------------------------------------------
def _reaped(e: Event) -> tuple[int, int] | None:
    """(pid, status) when ``e`` is a wait4 exit that reaped a task that exited or was killed."""
    result = e.get("result")
    if e["type"] != "syscall_exit" or e["op"] != "wait4" or not succeeded(e):
        return None
    if not (isinstance(result, list) and len(result) >= 2 and isinstance(result[1], int) and result[0]):
        return None
    status = result[1]
    return (result[0], status) if abi.WIFEXITED(status) or abi.WIFSIGNALED(status) else None


def _exit_statuses(events: list[Event]) -> dict[int, tuple[int, int | None]]:
    """Index of the first event of each do_exit -> (pid, its wait status, or None if unknown).

    The status comes from the task's own exit(N)/exit_group(N), else from the
    first wait4 that reaped it.
    """
    born = {at: pid for at, (_, pid) in births(events).items()}
    global_pid: dict[tuple[Any, int], int] = {}  # (caller, the pid its clone returned) -> the global pid
    started: dict[int, int] = {}  # pid -> index where its current do_exit began
    last_enter: dict[int, Event] = {}
    marks: dict[int, tuple[int, int | None]] = {}
    for i, e in enumerate(events):
        pid = e.get("pid")
        if i in born:  # a new task with that pid: a new life
            started.pop(born[i], None)
            last_enter.pop(born[i], None)
        if e["type"] == "syscall_enter":
            last_enter[pid] = e
        elif e["type"] == "syscall_exit" and last_enter.get(pid, {}).get("msgid") == e.get("msgid"):
            del last_enter[pid]
            if isinstance(e.get("child"), int):  # what the caller's wait4 will name, in its pid namespace
                global_pid[pid, e["result"]] = e["child"]
        elif e.get("syscall") == "exit" and e.get("cause") is None and e["type"] == "request" and pid not in started:
            started[pid] = i
            enter = last_enter.get(pid)
            code = (enter.get("args") or {}).get("code") if enter is not None and enter["op"] in NO_RETURN else None
            marks[i] = (pid, abi.W_EXITCODE(code) if isinstance(code, int) else None)
        reaped = _reaped(e)
        if reaped is not None:
            reaped = (global_pid.get((pid, reaped[0]), reaped[0]), reaped[1])
        if reaped is not None and reaped[0] in started:
            at = started[reaped[0]]
            if marks[at][1] is None:
                marks[at] = reaped
    return marks


def _exit_marks(events: list[Event]) -> dict[int, tuple[int, str]]:
    """Index of the first event of each do_exit -> (pid, ``+++ exited with N +++``).

    When the status is not in the trace (no exit call of its own and no wait4 reaped it) the
    line says only ``+++ exited +++``.
    """
    marks = {}
    for i, (pid, status) in _exit_statuses(events).items():
        if status is None:
            text = "+++ exited +++"
        elif abi.WIFEXITED(status):
            text = f"+++ exited with {abi.WEXITSTATUS(status)} +++"
        else:
            text = f"+++ killed by {signal_name(abi.WTERMSIG(status))} +++"
        marks[i] = (pid, text)
    return marks


# --- strace --------------------------------------------------------------------------------
_Item = tuple[str, Any, Event]  # (kind, pid, event): a syscall event, or ("mark", pid, {"text": ...})


def _items(events: list[Event], pid: int | None, ops: Iterable[str] | None) -> tuple[list[_Item], bool]:
    """The syscall events and exit marks to print, and whether more than one pid made syscalls."""
    wanted = None if ops is None else set(ops)
    marks = _exit_marks(events)
    items: list[_Item] = []
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
    return items, len(pids) > 1


def _lines(items: list[_Item], faults: dict[Any, list[Event]]) -> list[tuple[Any, str]]:
    """(pid, line) per line: an enter followed by its exit is one line; an enter another
    line interrupts is ``<unfinished ...>`` and its exit ``<... op resumed>``. The page
    faults a call took follow the line that ends it, indented: ``  --- page fault: ... ---``."""
    exits_left = Counter(e["msgid"] for kind, _, e in items if kind == "syscall_exit")
    pending: dict[Any, Event] = {}
    lines: list[tuple[Any, str]] = []
    skip = False

    def ended(p: Any, msgid: Any, line: str) -> None:
        lines.append((p, line))
        lines.extend((p, "  " + fault_line(f)) for f in faults.pop(msgid, ()))

    for n, (kind, p, e) in enumerate(items):
        if skip:
            skip = False
            continue
        msgid = e.get("msgid")
        if kind == "mark":
            lines.append((p, e["text"]))
        elif kind == "syscall_enter":
            nxt = items[n + 1] if n + 1 < len(items) else None
            if nxt is not None and nxt[0] == "syscall_exit" and nxt[2].get("msgid") == msgid:
                ended(p, msgid, call_line(e, nxt[2]))
                exits_left[msgid] -= 1
                skip = True
            elif exits_left[msgid] > 0:
                lines.append((p, f"{call_parts(e, None)[0]} <unfinished ...>"))
                pending[msgid] = e
            else:
                ended(p, msgid, call_line(e, None))
        else:
            exits_left[msgid] -= 1
            enter = pending.pop(msgid, None)
            result = result_text(e["op"], e)
            if enter is not None:
                ended(p, msgid, f"<... {e['op']} resumed>{call_parts(enter, e)[1]} = {result}")
            else:  # SA_RESTART: the same call returns again after a handler ran
                ended(p, msgid, f"restart_syscall(<... resuming interrupted {e['op']} ...>) = {result}")
    return lines


def strace(events: Iterable[Event], pid: int | None = None, ops: Iterable[str] | None = None) -> str:
    """One line per syscall, as ``strace -f`` prints them.

    ``[pid N] `` prefixes every line when more than one pid made syscalls (after
    the ``pid`` filter). A call interrupted by another pid's line prints
    ``<unfinished ...>`` and, when it returns, ``<... op resumed>``. Exits print
    ``+++ exited with N +++`` (``killed by SIG``) where the status is in the
    trace. ``ops`` keeps only those syscalls; exit lines stay. Under a call, one
    ``  --- page fault: ... ---`` line per page fault it took (faults outside any
    syscall, such as do_exit's, are in the route and html views only).
    """
    events = list(events)
    items, many = _items(events, pid, ops)
    lines = [(f"[pid {p}] " if many else "") + line for p, line in _lines(items, faults_by_syscall(events))]
    return "\n".join(lines) + ("\n" if lines else "")
