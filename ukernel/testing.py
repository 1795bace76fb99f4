"""Helpers for tests and course work: talk to one service through real messages, and
pick one syscall's route out of a trace (the views draw the same routes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from .ipc.local import open_local
from .ipc.router import Router
from .ipc.service import Service
from .trace import Event, MemorySink, Tracer


class ServiceClient:
    """Sends ``kernel -> service`` requests, as the kernel would."""

    def __init__(self, router: Router, name: str, trace: MemorySink):
        self.router, self.name, self.trace = router, name, trace

    async def call(self, op: str, **args: Any) -> Any:
        return await self.router.call("kernel", self.name, op, args, {})


@asynccontextmanager
async def service_client(*services: Service) -> AsyncIterator[ServiceClient]:
    """Boot the given services alone (the first is the one the client talks to).

    An exception raised in the ``async with`` body (a grader's failed assert) comes out
    as itself, not wrapped in the nursery's ExceptionGroup: the services only serve,
    so the body's error is the only one there can be."""
    tracer = Tracer()
    trace = MemorySink()
    tracer.add_sink(trace)
    router = Router(tracer)
    try:
        async with trio.open_nursery() as nursery:
            for service in services:
                endpoint, inbox = open_local(service)
                service.router = router
                router.attach(service.name, endpoint, service.calls)
                nursery.start_soon(service.serve, inbox)
            yield ServiceClient(router, services[0].name, trace)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


#: The syscalls that create a task; their return value (in the parent) is the child's pid.
CLONE_FAMILY = ("fork", "vfork", "clone", "clone3")
MESSAGE_TYPES = ("request", "reply", "notify")
#: The events a service reports of its own while serving a message (mm's page faults):
#: on a route, under the message that is their ``cause``.
SERVICE_EVENT_TYPES = ("fault",)


def syscall_events(trace: list[dict], syscall: str, pid: int | None = None) -> list[dict]:
    """The syscall_enter events of one syscall (optionally of one pid), in order."""
    return [
        e for e in trace if e["type"] == "syscall_enter" and e["op"] == syscall and (pid is None or e["pid"] == pid)
    ]


def births(events: list[Event]) -> dict[int, tuple[Event, int]]:
    """Index of the syscall_enter of each clone-family call that made a task -> (enter, its global pid).

    A task exists from the clone's entry on (a vfork child can exit before vfork returns),
    so a pid that is used again starts a new life there. The exit's ``child`` is the
    global pid; its ``result`` is the pid in the caller's namespace (the same outside
    pid namespaces; traces older than ``child`` have only that).
    """
    enters: dict[Any, tuple[int, Event]] = {}
    made: dict[int, tuple[Event, int]] = {}
    for i, e in enumerate(events):
        if e["type"] == "syscall_enter" and e["op"] in CLONE_FAMILY:
            enters[e.get("msgid")] = (i, e)
        elif e["type"] == "syscall_exit" and e["op"] in CLONE_FAMILY:
            found = enters.pop(e.get("msgid"), None)
            pid = e.get("child", e.get("result"))
            if found is not None and isinstance(pid, int) and pid > 0:
                made[found[0]] = (found[1], pid)
    return made


@dataclass
class Route:
    """The messages of one syscall, of one request (and what it led to) or of one do_exit."""

    root: Event | None  # the syscall_enter; None for a request's or a do_exit's route
    exit: Event | None  # the syscall's (first) syscall_exit
    pid: Any
    requests: list[Event]  # requests and notifies, in trace order
    events: list[Event]  # every event of the route in trace order (enter, messages, replies, exit)
    parent_of: dict[Any, Any]  # msgid of a request -> the msgid it was caused by
    request: Event | None = None  # the request a request's route starts at
    faults: list[Event] = field(default_factory=list)  # the page faults its messages took, in trace order


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


def faults_by_syscall(events: list[Event]) -> dict[Any, list[Event]]:
    """Msgid of a syscall -> the page faults taken on its route (by the messages it
    caused, or theirs), in trace order. Faults outside any syscall (do_exit's) are left out."""
    cause_of = {e.get("msgid"): e.get("cause") for e in events if e["type"] in ("request", "notify")}
    calls = {e.get("msgid") for e in events if e["type"] == "syscall_enter"}
    found: dict[Any, list[Event]] = {}
    for e in events:
        if e["type"] != "fault":
            continue
        m, seen = e.get("cause"), set()
        while m not in calls and m in cause_of and m not in seen:
            seen.add(m)
            m = cause_of[m]
        if m in calls:
            found.setdefault(m, []).append(e)
    return found


def _route(
    chosen: list[Event], pid: Any, root: Event | None = None, exit_: Event | None = None, request: Event | None = None
) -> Route:
    requests = [e for e in chosen if e["type"] in ("request", "notify")]
    parent_of = {e.get("msgid"): e.get("cause") for e in requests}
    faults = [e for e in chosen if e["type"] == "fault"]
    return Route(root, exit_, pid, requests, chosen, parent_of, request, faults)


def _on_route(e: Event, ids: set[Any]) -> bool:
    """A message among ``ids``, or an event a service reported while serving one."""
    if e["type"] in MESSAGE_TYPES:
        return e.get("msgid") in ids
    return e["type"] in SERVICE_EVENT_TYPES and e.get("cause") in ids


def _messages(events: list[Event], ids: set[Any]) -> list[Event]:
    return [e for e in events if _on_route(e, ids)]


def syscall_route(events: list[Event], enter: Event) -> Route:
    """The route of the syscall ``enter`` starts: its enter, every message it led to, its exits."""
    msgid = enter.get("msgid")
    ids = _descendants(events, {msgid})
    exits = [e for e in events if e["type"] == "syscall_exit" and e.get("msgid") == msgid]
    chosen = [e for e in events if _on_route(e, ids) or e is enter or any(e is x for x in exits)]
    return _route(chosen, enter.get("pid"), enter, exits[0] if exits else None)


def _msgid_route(events: list[Event], msgid: int) -> Route:
    """The route of a syscall, or of a request and what it led to, by its msgid."""
    roots = [e for e in events if e.get("msgid") == msgid and e["type"] in ("syscall_enter", "request", "notify")]
    if not roots:
        raise ValueError(f"no syscall or request #{msgid} in the trace")
    root = roots[0]
    if root["type"] == "syscall_enter":
        return syscall_route(events, root)
    return _route(_messages(events, _descendants(events, {msgid}) | {msgid}), root.get("pid"), request=root)


def _exit_route(events: list[Event], nth: int, pid: int | None) -> Route:
    """The nth do_exit (of ``pid``): its messages carry ``syscall: exit`` and no cause."""
    born = {at: pid for at, (_, pid) in births(events).items()}
    life: Counter = Counter()
    groups: dict[tuple[Any, int], list[Event]] = {}  # (pid, which life) -> its do_exit's messages
    for i, e in enumerate(events):
        if i in born:
            life[born[i]] += 1
        if e.get("syscall") == "exit" and e.get("cause") is None and e["type"] in MESSAGE_TYPES:
            if pid is None or e.get("pid") == pid:
                groups.setdefault((e.get("pid"), life[e.get("pid")]), []).append(e)
    if nth >= len(groups):
        raise ValueError(f"the trace has {len(groups)} exits, not {nth + 1}")
    first = list(groups.values())[nth]
    ids = {e.get("msgid") for e in first if e["type"] != "reply"}
    return _route(_messages(events, ids | _descendants(events, ids)), first[0].get("pid"))


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
        return _msgid_route(events, msgid)
    if syscall == "exit":
        return _exit_route(events, nth, pid)
    names = CLONE_FAMILY if syscall is None else (syscall,)
    calls = [
        e for e in events if e["type"] == "syscall_enter" and e["op"] in names and (pid is None or e["pid"] == pid)
    ]
    if nth >= len(calls):
        what = syscall or "/".join(CLONE_FAMILY)
        raise ValueError(
            f"the trace has {len(calls)} {what} calls{'' if pid is None else f' by pid {pid}'}, not {nth + 1}"
        )
    return syscall_route(events, calls[nth])


def _expected_route(trace: list[Event], syscall: str, nth: int, pid: int | None) -> Route:
    """``select_route`` for a test: a call that is not in the trace is a failed expectation."""
    try:
        return select_route(trace, syscall=syscall, nth=nth, pid=pid)
    except ValueError as exc:
        raise AssertionError(str(exc)) from None


def route_of(trace: list[dict], syscall: str = "clone", nth: int = 0, pid: int | None = None) -> list[tuple[str, str]]:
    """The (service, op) requests the nth such syscall sent, in order (``exit``: the nth do_exit)."""
    r = _expected_route(trace, syscall, nth, pid)
    cause = r.root["msgid"] if r.root else None
    return [(e["dst"], e["op"]) for e in r.requests if e["type"] == "request" and e.get("cause") == cause]


def nested_route_of(
    trace: list[dict], syscall: str, nth: int = 0, pid: int | None = None
) -> list[tuple[str, str, str]]:
    """Every (src, dst, op) request the nth such syscall led to, also those a service
    sent on its behalf (their cause is a request of the syscall's), in order."""
    r = _expected_route(trace, syscall, nth, pid)
    return [(e["src"], e["dst"], e["op"]) for e in r.requests if e["type"] == "request"]


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
