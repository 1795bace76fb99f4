"""The strace view: one line per syscall, as ``strace`` prints them (``-f``, ``-e trace=``, ``-tt``, ``-T``, ``-r``).

Time is virtual: a kernel entry charges one tick (``abi.HZ`` a second), so a call's time
(``-T``, ``-c``) is the tick its entry charged plus the ticks other tasks' entries took
before it returned, the same on every run. ``-c``'s table is in strace_count.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ... import abi
from ...testing import births, faults_by_syscall
from .. import Event
from .format import (
    NO_RETURN,
    call_line,
    call_parts,
    fault_line,
    mask_text,
    result_text,
    segv_line,
    signal_line,
    signal_name,
    succeeded,
)

#: strace's syscall classes (``-e trace=%process``), for the syscalls ukernel has: the
#: TRACE_PROCESS, TRACE_SIGNAL, TRACE_MEMORY, TRACE_FILE and TRACE_DESC flags of its table.
TRACE_CLASSES: dict[str, tuple[str, ...]] = {
    "%process": ("fork", "vfork", "clone", "clone3", "execve", "exit", "exit_group", "wait4", "waitid")
    + ("kill", "tgkill", "unshare"),
    "%signal": ("kill", "tgkill", "sigaction", "sigprocmask", "pause", "sigsuspend", "sigpending", "sigtimedwait"),
    "%memory": ("mmap", "munmap", "mprotect", "brk"),
    "%file": ("execve", "open", "stat", "lstat", "access", "chdir", "chroot", "getcwd", "mkdir", "mknod")
    + ("rmdir", "unlink", "rename", "link", "symlink", "readlink", "mount", "umount"),
    "%desc": ("open", "read", "write", "close", "lseek", "getdents", "fstat", "dup", "dup2", "dup3", "fcntl")
    + ("ioctl", "pipe2", "fchdir", "setns"),
}

#: How ``-t``, ``-tt``, ``-ttt`` and ``-r`` stamp a line, from its virtual time in microseconds.
TIMESTAMPS = {
    "t": lambda us, last: f"{us // 3_600_000_000 % 24:02d}:{us // 60_000_000 % 60:02d}:{us // 1_000_000 % 60:02d} ",
    "tt": lambda us, last: TIMESTAMPS["t"](us, last)[:-1] + f".{us % 1_000_000:06d} ",
    "ttt": lambda us, last: f"{us // 1_000_000}.{us % 1_000_000:06d} ",
    "r": lambda us, last: f"{(us - last) // 1_000_000:6d}.{(us - last) % 1_000_000:06d} ",
}


def ticks_us(ticks: int) -> int:
    """Virtual microseconds in ``ticks``."""
    return ticks * 1_000_000 // abi.HZ


# --- which tasks: strace without -f traces one process, with -f its children too ----------------
def program_pid(events: list[Event]) -> int | None:
    """The program's first process: the task init (pid 1) made first, as ``strace PROG`` traces
    the process that runs PROG; else the first task that made a syscall."""
    for enter, pid in births(events).values():
        if enter.get("pid") == 1:
            return pid
    return next((e["pid"] for e in events if e["type"] == "syscall_enter" and isinstance(e.get("pid"), int)), None)


def tasks_in(events: list[Event]) -> set[int]:
    """Every task the trace shows acting (``-p`` must name one of them)."""
    return {e["pid"] for e in events if e["type"] == "syscall_enter" and isinstance(e.get("pid"), int)}


def _followed(events: list[Event], pid: int) -> set[int]:
    """``pid`` and every task it or its descendants created (threads too), as ``strace -f``."""
    chosen = {pid}
    for _, (enter, child) in sorted(births(events).items()):
        if enter.get("pid") in chosen:
            chosen.add(child)
    return chosen


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


# --- the items to print, then their lines ------------------------------------------------------
_Item = tuple[str, Any, Event]  # (kind, pid, event): a syscall event, a signal, an exit -e leaves out
# ("return"), or an exit mark ("mark", pid, {"text": ...})


def _items(events: list[Event], tasks: set[int] | None, ops: Iterable[str] | None) -> tuple[list[_Item], bool]:
    """The syscall events, signals and exit marks to print, and whether more than one task made syscalls."""
    wanted = None if ops is None else set(ops)
    marks = _exit_marks(events)
    items: list[_Item] = []
    pids = set()
    for i, e in enumerate(events):
        if i in marks:
            if tasks is None or marks[i][0] in tasks:
                items.append(("mark", marks[i][0], {"text": marks[i][1], "ts": e.get("ts")}))
            continue
        kind, pid = e["type"], e.get("pid")
        if kind not in ("syscall_enter", "syscall_exit", "signal") or (tasks is not None and pid not in tasks):
            continue
        if kind == "signal":
            items.append(("signal", pid, e))
            continue
        pids.add(pid)
        if wanted is None or e["op"] in wanted:
            items.append((kind, pid, e))
        elif kind == "syscall_exit":  # not printed, but the task returns to user mode: signals meet it
            items.append(("return", pid, e))
    return items, len(pids) > 1


@dataclass
class Line:
    """One line of output: the task, its virtual time (ticks), its text, and -T's time in the call."""

    pid: Any
    ts: int | None
    text: str
    took: int | None = None  # ticks, for a line that ends a call
    call: bool = False  # it ends with `` = result``, which -a aligns


class _Printer:
    """Turns the items into lines, as strace does: an enter followed by its exit is one line;
    one another line interrupts is ``<unfinished ...>`` and its exit ``<... op resumed>``.
    A call's page faults follow the line that ends it; a signal is ``--- SIG {...} ---``
    (one dropped as it was sent shows where the receiver next returns from the kernel)."""

    def __init__(self, items: list[_Item], faults: dict[Any, list[Event]]) -> None:
        self.items, self.faults = items, faults
        self.exits_left = Counter(e["msgid"] for kind, _, e in items if kind == "syscall_exit")
        self.pending: dict[Any, Event] = {}  # msgid -> the enter of an unfinished call
        self.last_exit: dict[Any, Event] = {}  # msgid -> its previous exit (a call restarted)
        self.enters = {e.get("msgid"): e for kind, _, e in items if kind == "syscall_enter"}
        self.handlers = [
            (p, e.get("seq", 0)) for kind, p, e in items if kind == "signal" and e.get("action") == "handler"
        ]
        self.signals: dict[Any, list[Event]] = {}  # task -> signals to show when it next leaves the kernel
        self.returning: dict[Any, Any] = {}  # task just out of a syscall -> when: signals now are its delivery
        self.lines: list[Line] = []

    def run(self) -> list[Line]:
        done: set[int] = set()  # exits already printed with their entry
        for n, (kind, p, e) in enumerate(self.items):
            if n in done:
                continue
            if kind == "signal":
                self._signal(p, e)
                continue
            self._flush(p)
            if kind == "return":
                self.returning[p] = e.get("ts")
                continue
            if kind == "mark":
                self.signals.pop(p, None)  # dropped signals it never returned to meet
                self.lines.append(Line(p, e.get("ts"), e["text"]))
            elif kind == "syscall_enter":
                at = self._exit_next(n)
                if at is not None:
                    done.add(at)
                self._enter(p, e, self.items[at][2] if at is not None else None)
            else:
                self._exit(p, e)
                self.returning[p] = e.get("ts")
        return self.lines

    def _exit_next(self, n: int) -> int | None:
        """Where the enter at ``n``'s exit is, when only dropped signals (which print later) lie between."""
        msgid = self.items[n][2].get("msgid")
        for at in range(n + 1, len(self.items)):
            kind, _, e = self.items[at]
            if kind == "syscall_exit" and e.get("msgid") == msgid:
                return at
            if kind != "return" and (kind != "signal" or e.get("action") != "discard"):
                return None
        return None

    def _signal(self, p: Any, e: Event) -> None:
        """A signal dropped as it was sent waits for the receiver's return to user mode; the
        ones met there go out together, lowest number first, as dequeue_signal takes them."""
        if e.get("action") == "discard" or p in self.returning:
            waiting = self.signals.setdefault(p, [])
            signo = (e.get("info") or {}).get("signo")
            realtime = isinstance(signo, int) and signo >= abi.SIGRTMIN
            if realtime or not any((w.get("info") or {}).get("signo") == signo for w in waiting):
                waiting.append(e)  # a standard signal already pending is not queued again (legacy_queue)
        else:
            self.lines.append(Line(p, e.get("ts"), signal_line(e)))

    def _flush(self, p: Any) -> None:
        """Before the task's next line: the signals its return to user mode met, if it returned."""
        if p not in self.returning:
            return
        at = self.returning.pop(p)  # when it returned: one dropped earlier shows then
        for e in sorted(self.signals.pop(p, ()), key=lambda e: (e.get("info") or {}).get("signo") or 0):
            ts = e.get("ts")
            self.lines.append(
                Line(p, max(ts, at) if isinstance(ts, int) and isinstance(at, int) else ts, signal_line(e))
            )

    def _ended(self, p: Any, e: Event, text: str, start: int | None, at: int | None = None) -> None:
        """The line that ends a call, stamped ``at`` (its entry, for a whole call) or its exit."""
        ts = e.get("ts")
        took = ts - start if isinstance(ts, int) and isinstance(start, int) else None
        self.lines.append(Line(p, ts if at is None else at, text, took, call=True))
        for fault in self.faults.pop(e.get("msgid"), ()):
            self.lines.append(Line(p, ts, "  " + fault_line(fault)))
            if fault.get("kind") == "segv" and e["type"] == "syscall_enter":  # the task died of it: SIGSEGV
                # (a bad address a call returns EFAULT for is no signal)
                self.lines.append(Line(p, ts, segv_line(fault)))

    def _enter(self, p: Any, e: Event, exit_: Event | None) -> None:
        msgid, start = e.get("msgid"), _started(e)
        if exit_ is not None:
            self.exits_left[msgid] -= 1
            self.last_exit[msgid] = exit_
            self._ended(p, exit_, call_line(e, exit_), start, e.get("ts"))  # strace stamps the entry
            self.returning[p] = exit_.get("ts")
        elif self.exits_left[msgid] > 0:
            self.lines.append(Line(p, e.get("ts"), f"{call_parts(e, None)[0]} <unfinished ...>"))
            self.pending[msgid] = e
        else:  # it never returns (exit_group, or the task died in it)
            self._ended(p, e, call_line(e, None), None)

    def _exit(self, p: Any, e: Event) -> None:
        msgid, op = e.get("msgid"), e["op"]
        self.exits_left[msgid] -= 1
        enter = self.pending.pop(msgid, None)
        before = self.last_exit.get(msgid)
        self.last_exit[msgid] = e
        if enter is not None:
            text = f"<... {op} resumed>{call_parts(enter, e)[1]} = {result_text(op, e)}"
            self._ended(p, e, text, _started(enter))
        elif before is None:  # an exit whose entry is not printed (-e, or a trace cut short)
            self._ended(p, e, f"<... {op} resumed> = {result_text(op, e)}", None)
        else:
            self._ended(p, e, self._again(p, e, before), before.get("ts"))

    def _again(self, p: Any, e: Event, before: Event) -> str:
        """A second exit of one call, after a signal: the restart strace shows."""
        op, result = e["op"], result_text(e["op"], e)
        if before.get("errno") == "ERESTART_RESTARTBLOCK":
            return f"restart_syscall(<... resuming interrupted {op} ...>) = {result}"
        ran = any(q == p and before.get("seq", 0) < seq < e.get("seq", 0) for q, seq in self.handlers)
        if e.get("errno") == "EINTR" and ran:  # the handler returned: EINTR from rt_sigreturn
            return f"rt_sigreturn({{mask={mask_text(e.get('mask'))}}}) = {result}"
        enter = self.enters.get(e.get("msgid"))  # SA_RESTART: strace shows the call again
        return call_line(enter, e) if enter is not None else f"{op}(...) = {result}"


def _started(enter: Event) -> int | None:
    """The tick a call's entry charged (its enter's ``ts`` is the clock after it)."""
    ts = enter.get("ts")
    return ts - 1 if isinstance(ts, int) else None


def strace_lines(
    events: Iterable[Event], pid: int | None = None, ops: Iterable[str] | None = None, follow: bool = False
) -> tuple[list[Line], bool]:
    """The lines of the tasks chosen (see ``strace``), and whether more than one task made syscalls."""
    events = list(events)
    tasks = None if pid is None else (_followed(events, pid) if follow else {pid})
    items, many = _items(events, tasks, ops)
    return _Printer(items, faults_by_syscall(events)).run(), many


def strace(
    events: Iterable[Event],
    pid: int | None = None,
    ops: Iterable[str] | None = None,
    follow: bool = False,
    timestamps: str | None = None,
    syscall_times: bool = False,
    pid_column: bool = False,
    align: int = 0,
    pid_width: int = 0,
) -> str:
    """One line per syscall, as ``strace`` prints them.

    ``pid`` None: every task of the run (what ``strace -f`` of init would print); else that
    task only, or with ``follow`` it and every task it and its children created
    (``strace -f -p PID``). ``[pid N] `` prefixes every line when more than one task made
    syscalls (``pid_column``: ``N     `` on every line, as ``strace -f -o FILE`` writes).
    ``ops`` keeps only those syscalls; exit and signal lines stay. ``timestamps``: ``t``,
    ``tt``, ``ttt`` or ``r`` (relative), in virtual time; ``syscall_times``: ``<0.001000>``
    after each result (-T). ``align``: results at that column, as strace's ``-a`` (its
    default is 40: what ``ukernel trace strace`` does); ``pid_width``: ``[pid     2]``, the
    pid right-aligned in that many columns as strace writes it (5). A call interrupted by another task's line prints ``<unfinished
    ...>`` and later ``<... op resumed>``; a signal ``--- SIGCHLD {si_signo=...} ---``; exits
    ``+++ exited with N +++``; the page faults a call took ``  --- page fault: ... ---``.
    """
    lines, many = strace_lines(events, pid, ops, follow)
    stamp, last, out = TIMESTAMPS.get(timestamps or ""), None, []
    for line in lines:
        head = f"{line.pid:<5} " if pid_column else f"[pid {line.pid:>{pid_width}}] " if many else ""
        if stamp is not None:
            now = ticks_us(line.ts) if isinstance(line.ts, int) else last or 0
            head += stamp(now, now if last is None else last)  # -r: the first line is 0
            last = now
        tail = (
            f" <{line.took // abi.HZ}.{ticks_us(line.took % abi.HZ):06d}>"
            if syscall_times and line.took is not None
            else ""
        )
        text = head + line.text
        if align and line.call:  # strace's tabto(): ``= result`` at the column, or `` = `` past it
            call, _, result = text.rpartition(" = ")
            text = f"{call:<{align - 1}} = {result}" if len(call) < align - 1 else text
        out.append(text + tail)
    return "\n".join(out) + ("\n" if out else "")


#: strace -c's columns: ``%6.6s %11.11s %11.11s %9.9s %9.9s %s`` and its rule of dashes.
_COLUMNS = ("% time", "seconds", "usecs/call", "calls", "errors", "syscall")
_RULE = "------ ----------- ----------- --------- --------- ----------------"


def strace_summary(
    events: Iterable[Event], pid: int | None = None, ops: Iterable[str] | None = None, follow: bool = False
) -> str:
    """``strace -c``'s table: per syscall the time in it (virtual, as ``-T``), usecs per call,
    calls and errors, most time first (ties in order of first call), then ``total``. A call
    counts when it returns (each return of a restarted one), so exit and exit_group do not."""
    events = list(events)
    tasks = None if pid is None else (_followed(events, pid) if follow else {pid})
    wanted = None if ops is None else set(ops)
    started: dict[Any, int] = {}
    returned: dict[Any, Event] = {}  # msgid -> its last exit: a second one is the restart strace names
    rows: dict[str, list[int]] = {}  # op -> [ticks, calls, errors]
    for e in events:
        if e["type"] not in ("syscall_enter", "syscall_exit") or (tasks is not None and e.get("pid") not in tasks):
            continue
        if wanted is not None and e["op"] not in wanted or not isinstance(e.get("ts"), int):
            continue
        if e["type"] == "syscall_enter":
            started[e.get("msgid")] = e["ts"] - 1
            continue
        row = rows.setdefault(_returning_call(e, returned.get(e.get("msgid"))), [0, 0, 0])
        returned[e.get("msgid")] = e
        row[0] += e["ts"] - started.get(e.get("msgid"), e["ts"])
        row[1] += 1
        row[2] += "errno" in e
        started[e.get("msgid")] = e["ts"]
    total = [sum(r[k] for r in rows.values()) for k in range(3)]
    time, seconds, per_call, calls, errors, name = _COLUMNS
    out = [f"{time:>6} {seconds:>11} {per_call:>11} {calls:>9} {errors:>9} {name}", _RULE]
    ranked = sorted(rows.items(), key=lambda item: -item[1][0])
    out += [_summary_row(100 * r[0] / total[0] if total[0] else 0.0, r, op) for op, r in ranked]
    out += [_RULE, _summary_row(100.0, total, "total")]
    return "\n".join(out) + "\n"


def _returning_call(e: Event, before: Event | None) -> str:
    """The call strace counts for an exit: a second one is restart_syscall's or rt_sigreturn's."""
    if before is not None and before.get("errno") == "ERESTART_RESTARTBLOCK":
        return "restart_syscall"
    return "rt_sigreturn" if before is not None and e.get("errno") == "EINTR" else e["op"]


def _summary_row(percent: float, row: list[int], name: str) -> str:
    """``%6.2f %4ld.%06ld %11lu %9u %9.u %s``: an errors column of 0 is blank."""
    ticks, calls, errors = row
    us = ticks_us(ticks)
    per_call = us // calls if calls else 0
    return (
        f"{percent:6.2f} {us // 1_000_000:4d}.{us % 1_000_000:06d} {per_call:11d} {calls:9d} {errors or '':>9} {name}"
    )


def strace_command(
    events: Iterable[Event],
    pid: int | None = None,
    follow: bool = False,
    summary: bool = False,
    timestamps: int = 0,
    relative: bool = False,
    **options: Any,
) -> str:
    """What ``ukernel trace strace`` prints: without ``-p`` the program's first process (as
    ``strace PROG`` traces PROG), with ``follow`` its children too; ``summary``: -c's table;
    ``timestamps``: how many -t were given; ``relative``: -r."""
    events = list(events)
    pid = pid if pid is not None else program_pid(events)
    if summary:
        return strace_summary(events, pid, options.get("ops"), follow)
    stamp = "r" if relative else {0: None, 1: "t", 2: "tt"}.get(timestamps, "ttt")
    options = {"align": 40, "pid_width": 5} | options  # strace's -a 40 and [pid %5u]
    return strace(events, pid, follow=follow, timestamps=stamp, **options)
