"""The chrome view: the whole run as Chrome Trace Event JSON, for Perfetto.

Time on the timeline is the order of the trace: an event's ``ts`` in the output is its
``seq`` (docs/trace.md, *The chrome timeline*, says why). ``chrome`` builds the slices
track by track (syscalls, messages, the kernel's own work, CPUs), finds the slice each
request was sent from, then names the tracks and writes the slices and flows.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...testing import MESSAGE_TYPES
from .. import Event
from .format import call_line, jsonable
from .pstree import Task, process_tree

#: The pid of the "ukernel" process that holds the kernel, service and CPU tracks: Linux's
#: PID_MAX_LIMIT (2**22), a number no pid reaches, so it never meets a task's. Its tracks'
#: tids count up from the same number: kernel, each service in order of appearance, each CPU.
CHROME_PID = 1 << 22


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
    return jsonable(args)


def _tid(e: Event) -> Any:
    """The task an event is about: its ``tid``, else its ``pid``."""
    return e.get("tid", e.get("pid"))


def _track_of(name: Any) -> tuple:
    """The track of a message's ``src`` or ``dst``: the kernel's, a task's or a service's."""
    name = str(name)
    if name == "kernel":
        return ("kernel",)
    if re.fullmatch(r"pid:\d+", name):
        return ("task", int(name[4:]))
    return ("service", name)


def _tasks(events: list[Event]) -> dict[int, Task]:
    """Every task of the pstree, by pid: for the names of processes, threads and CPU slices."""
    tasks: dict[int, Task] = {}
    stack = list(process_tree(events))
    while stack:
        task = stack.pop()
        tasks[task.pid] = task
        stack.extend(task.children)
    return tasks


def _enclosing(slices: list[_Slice], t: int) -> _Slice | None:
    """The innermost of ``slices`` that is in progress at ``t``."""
    inside = [s for s in slices if s.encloses(t)]
    return max(inside, key=lambda s: (s.start, -s.end)) if inside else None


class _Timeline:
    """The slices ``chrome`` draws, built from a trace one kind at a time, and the
    slice each request was sent from (the start of its flow)."""

    def __init__(self, events: list[Event]):
        self.events = events
        self.seq = {id(e): e.get("seq", i + 1) for i, e in enumerate(events)}
        self.last = max(self.seq.values(), default=0)
        self.tasks = _tasks(events)
        self.replies: dict[Any, Event] = {}
        self.exits: dict[Any, Event] = {}
        for e in events:
            if e["type"] == "reply":
                self.replies.setdefault(e.get("msgid"), e)
            elif e["type"] == "syscall_exit":
                self.exits[e.get("msgid")] = e  # the last: after an SA_RESTART handler, the call returns again
        self.requests = [e for e in events if e["type"] in ("request", "notify")]
        self.slices: list[_Slice] = []
        self.calls: dict[Any, _Slice] = {}  # syscall msgid -> its slice
        self.by_tid: dict[Any, list[_Slice]] = defaultdict(list)
        self.handled: dict[Any, _Slice] = {}  # request msgid -> the slice of its handling
        self.callers: dict[int, _Slice] = {}  # id of a request -> the slice it was sent from
        self.work: dict[tuple, _Slice] = {}  # the kernel's own work, by what it is

    def at(self, e: Event) -> int:
        return self.seq[id(e)]

    def add_syscalls(self) -> None:
        """A slice per syscall on its task's track, from its entry to its (last) exit."""
        for i, e in enumerate(self.events):
            if e["type"] != "syscall_enter" or not isinstance(_tid(e), int):
                continue
            tid = _tid(e)
            exit_ = self.exits.get(e.get("msgid"))
            end = self.at(exit_) if exit_ is not None else self._end_of_exit(i, tid)
            args = {"call": call_line(e, exit_), "msgid": e.get("msgid"), "pid": e.get("pid"), "tid": tid}
            if exit_ is not None and exit_.get("dur_us") is not None:
                args["dur_us"] = exit_["dur_us"]
            s = _Slice(("task", tid), self.at(e), end, e["op"], "syscall", jsonable(args))
            self.slices.append(s)
            self.calls[e.get("msgid")] = s
            self.by_tid[tid].append(s)

    def _end_of_exit(self, i: int, tid: int) -> int:
        """Where a call that never returned ends: with the do_exit that followed, before the task's next call."""
        end = self.at(self.events[i])
        for later in self.events[i + 1 :]:
            if _tid(later) != tid:
                continue
            if later["type"] == "syscall_enter":
                break
            if later["type"] in MESSAGE_TYPES and later.get("syscall") == "exit":
                end = self.at(later)
        return end

    def add_messages(self) -> None:
        """A slice per request or notify on its handler's track, from the request to its reply."""
        for e in self.requests:
            start = self.at(e)
            reply = self.replies.get(e.get("msgid")) if e["type"] == "request" else None
            end = self.at(reply) if reply is not None else start if e["type"] == "notify" else self.last
            s = _Slice(_track_of(e.get("dst")), start, end, e["op"], "message", _message_args(e, reply))
            self.slices.append(s)
            self.handled[e.get("msgid")] = s
            if s.track[0] == "task":
                self.by_tid[s.track[1]].append(s)

    def find_callers(self) -> None:
        """The slice each request was sent from: the service's handling of its cause, the
        syscall that caused it, the syscall the task is in, else a slice of the kernel's work."""
        for e in self.requests:
            t = self.at(e)
            src = _track_of(e.get("src"))
            if src[0] == "service":
                caller = self.handled.get(e.get("cause"))
            elif src[0] == "task":
                caller = _enclosing(self.by_tid[src[1]], t)
            else:
                caller = self.calls.get(e.get("cause"))
                if caller is None or not caller.encloses(t):
                    caller = _enclosing(self.by_tid.get(_tid(e), []), t)
                if caller is None:
                    caller = self._kernel_work(e, t)
            if caller is not None and caller.encloses(t):
                self.callers[id(e)] = caller

    def _kernel_work(self, e: Event, t: int) -> _Slice:
        """The slice on the kernel track of the work a request is part of, made or grown.

        One slice per piece of work: a do_exit or boot's kernel_thread is one, and
        housekeeping of one kind (release_task frees pids from system tasks, all at once)
        is one while its requests overlap.
        """
        tid = _tid(e)
        if e.get("syscall") is not None or e.get("cause") is not None:
            key: tuple = (e.get("syscall"), e.get("cause"), tid)
            name = "do_exit" if e.get("syscall") == "exit" else str(e.get("syscall") or e["op"])
            args = {"pid": e.get("pid"), "tid": tid, "cause": e.get("cause")}
        else:
            key = ("housekeeping", e.get("step") or e["op"])
            name, args = str(key[1]), {}
        done = self.handled[e.get("msgid")].end
        work = self.work.get(key)
        if work is None or (key[0] == "housekeeping" and t > work.end):
            args = {k: v for k, v in args.items() if v is not None}
            work = _Slice(("kernel",), t, done, name, "kernel", jsonable(args))
            self.work[key] = work
            self.slices.append(work)
        work.end = max(work.end, done)
        if key[0] == "housekeeping":
            work.args.setdefault("msgids", []).append(e.get("msgid"))
        return work

    def add_picks(self) -> None:
        """A slice per ``sched`` pick on the CPU's track, named by the task, until the CPU's next pick."""
        picks: dict[Any, list[Event]] = defaultdict(list)
        for e in self.events:
            if e["type"] == "sched" and e["op"] == "pick":
                picks[e.get("cpu", 0)].append(e)
        for cpu, ps in picks.items():
            for k, e in enumerate(ps):
                end = self.at(ps[k + 1]) if k + 1 < len(ps) else self.last + 1
                tid = _tid(e)
                task = self.tasks.get(tid)
                name = f"{(task.group or task).comm if task else 'pid'} {tid}"
                args = {"pid": e.get("pid"), "tid": tid}
                self.slices.append(_Slice(("cpu", cpu), self.at(e), end, name, "sched", args))


def _meta(kind: str, pid: int, tid: int, /, **args: Any) -> dict:
    """An ``M`` event: the name or sort index (``kind``) of a process or thread."""
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}


def _task_metadata(tid: int, tasks: dict[int, Task], named: set[int]) -> tuple[int, list[dict]]:
    """(pid of its process, the ``M`` events) for a task's track: its process is its thread
    group (named once, by comm), its thread named by comm (``{comm}`` for a thread)."""
    task = tasks.get(tid)
    group = (task.group or task) if task else None
    pid = group.pid if group else tid
    comm = group.comm if group else "?"
    out = []
    if pid not in named:
        named.add(pid)
        out += [_meta("process_name", pid, pid, name=comm), _meta("process_sort_index", pid, pid, sort_index=pid)]
    out.append(_meta("thread_name", pid, tid, name=f"{{{comm}}}" if task and task.thread else comm))
    return pid, out


def _name_tracks(slices: list[_Slice], tasks: dict[int, Task]) -> tuple[list[dict], dict]:
    """The ``M`` events, and (track, lane) -> (pid, tid) for every lane the slices use."""
    tracks: dict[tuple, list[_Slice]] = defaultdict(list)
    for s in slices:
        tracks[s.track].append(s)
    order = {"kernel": 0, "service": 1, "cpu": 2, "task": 3}
    services = list(dict.fromkeys(s.track for s in slices if s.track[0] == "service"))

    def rank(track: tuple) -> tuple:
        if track[0] == "service":
            return (order["service"], services.index(track))
        return (order[track[0]], track[1] if len(track) > 1 else 0)

    out = [
        _meta("process_name", CHROME_PID, CHROME_PID, name="ukernel"),
        _meta("process_sort_index", CHROME_PID, CHROME_PID, sort_index=-1),
    ]
    next_tid = CHROME_PID
    tid_of: dict[tuple[tuple, int], tuple[int, int]] = {}
    named: set[int] = {CHROME_PID}
    extra_lanes: list[tuple[tuple, int]] = []
    for track in sorted(tracks, key=rank):
        lanes = _lanes(tracks[track]) if track[0] != "cpu" else 1
        if track[0] == "task":
            pid, meta = _task_metadata(track[1], tasks, named)
            out += meta
            tid_of[(track, 0)] = (pid, track[1])
            extra_lanes += [(track, lane) for lane in range(1, lanes)]
            continue
        for lane in range(lanes):
            name = {"kernel": "kernel", "cpu": f"cpu{track[-1]}"}.get(track[0], str(track[-1]))
            name += f" #{lane + 1}" if lane else ""
            tid_of[(track, lane)] = (CHROME_PID, next_tid)
            out.append(_meta("thread_name", CHROME_PID, next_tid, name=name))
            out.append(_meta("thread_sort_index", CHROME_PID, next_tid, sort_index=next_tid - CHROME_PID))
            next_tid += 1
    for track, lane in extra_lanes:  # a task's overlapping slices (not seen in practice): a made-up tid
        pid = tid_of[(track, 0)][0]
        tid_of[(track, lane)] = (pid, next_tid)
        out.append(_meta("thread_name", pid, next_tid, name=f"{track[1]} #{lane + 1}"))
        next_tid += 1
    return out, tid_of


def _timed(tl: _Timeline, tid_of: dict) -> list[dict]:
    """The ``X`` slices and the ``s``/``f`` flows, in time order."""
    timed: list[dict] = []
    for s in tl.slices:
        pid, tid = tid_of[(s.track, s.lane)]
        timed.append(
            {"ph": "X", "name": s.name, "cat": s.cat, "pid": pid, "tid": tid, "ts": s.start, "dur": s.end - s.start}
            | ({"args": s.args} if s.args else {})
        )
    for e in tl.requests:
        caller = tl.callers.get(id(e))
        if caller is None:
            continue
        t = tl.at(e)
        for ph, s in (("s", caller), ("f", tl.handled[e.get("msgid")])):
            pid, tid = tid_of[(s.track, s.lane)]
            flow = {"ph": ph, "id": e.get("msgid"), "name": e["op"], "cat": "flow", "pid": pid, "tid": tid, "ts": t}
            if ph == "f":
                flow["bp"] = "e"
            timed.append(flow)
    phase = {"X": 0, "s": 1, "f": 2}
    timed.sort(key=lambda ev: (ev["ts"], phase[ev["ph"]], -ev.get("dur", 0)))
    return timed


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
    tl = _Timeline(list(events))
    tl.add_syscalls()
    tl.add_messages()
    tl.find_callers()
    tl.add_picks()
    metadata, tid_of = _name_tracks(tl.slices, tl.tasks)
    return {"traceEvents": metadata + _timed(tl, tid_of)}


def chrome_json(events: Iterable[Event]) -> str:
    """``chrome(events)`` as JSON text with one trace event per line (what ``ukernel trace chrome`` writes)."""
    lines = [json.dumps(e) for e in chrome(events)["traceEvents"]]
    return '{"traceEvents": [\n' + ",\n".join(lines) + "\n]}\n"
