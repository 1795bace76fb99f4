"""The route view: the messages one syscall caused, as a call tree.

The routes asked for are chosen by ``ukernel.testing.select_route``, as a test's
``route_of`` chooses them; by default the program's first clone (``shown_route``).
``mermaid`` and ``html`` draw the same routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...testing import CLONE_FAMILY, Route, select_route, syscall_route
from .. import Event
from .format import call_line, errno_text, fault_line


def title(r: Route) -> str:
    """``#12 [pid 2] fork() = 3``; ``#14 kernel -> vfs dup_files``; ``[pid 3] exit (do_exit)``."""
    if r.root is not None:
        return f"#{r.root.get('msgid')} [pid {r.root.get('pid')}] {call_line(r.root, r.exit)}"
    if r.request is not None:
        e = r.request
        return f"#{e.get('msgid')} {e.get('src')} -> {e.get('dst')} {e['op']}"
    return f"[pid {r.pid}] exit (do_exit)"


#: The one CLONE_NEW* flag each request namespaces sends while serving copy_namespaces is
#: about (the request carries every flag of the clone, from the step that caused it).
NESTED_FLAGS = {
    "copy_mnt_ns": "CLONE_NEWNS",
    "get_mnt_ns": "CLONE_NEWNS",
    "put_mnt_ns": "CLONE_NEWNS",
    "create_pid_ns": "CLONE_NEWPID",
    "get_pid_ns": "CLONE_NEWPID",
    "put_pid_ns": "CLONE_NEWPID",
    "pidns_install": "CLONE_NEWPID",
}


def step_flag(event: Event) -> str | None:
    """The flag that chose this op: a nested namespace step's own (``create_pid_ns
    [CLONE_NEWPID]``, ``get_mnt_ns [no CLONE_NEWNS]``), not every flag of the clone."""
    flag = event.get("flag")
    own = NESTED_FLAGS.get(event.get("op", "")) if event.get("src") != "kernel" else None
    if not flag or own is None:
        return flag
    return own if own in flag.split("|") else f"no {own}"


def tags(event: Event) -> str:
    """`` [no CLONE_FILES]``, `` [undo copy_fs]``: the flag and unwind step beside a request's op."""
    flag = step_flag(event)
    found = [flag] if flag else []
    step = event.get("step") or ""
    if step.startswith("undo "):
        found.append(step)
    return " [" + ", ".join(found) + "]" if found else ""


def ends(e: Event) -> tuple[str, str]:
    """(src, dst) as the trace names them (``pid:2``); a syscall event without them is
    between its pid and the kernel; a fault stays in the service that took it (mm)."""
    if e["type"] == "fault":
        return str(e.get("src")), str(e.get("src"))
    caller = f"pid:{e.get('pid')}"
    default = (caller, "kernel") if e["type"] == "syscall_enter" else ("kernel", caller)
    return str(e.get("src") or default[0]), str(e.get("dst") or default[1])


def participants(r: Route) -> list[str]:
    """Who takes part in a route, in order: the caller, the kernel, then as they appear."""
    names = [f"pid:{r.pid}", "kernel"] + [name for e in r.events for name in ends(e)]
    return list(dict.fromkeys(names))


def _depths(r: Route) -> dict[Any, int]:
    """Msgid of each request -> how deep it sits: 1 for the syscall's own, 2 for one a
    service sent while serving one of those, and so on."""
    ids = set(r.parent_of)

    def depth(m: Any) -> int:
        d, seen = 1, set()
        while r.parent_of.get(m) in ids and m not in seen:
            seen.add(m)
            m = r.parent_of[m]
            d += 1
        return d

    return {m: depth(m) for m in ids}


def default_route(events: list[Event]) -> Route | None:
    """The route worth seeing first: the program's first clone-family call (init, pid 1,
    forks every program alike), else its first syscall that sent a message; then the same
    over every pid; None when no syscall sent one."""
    enters = [e for e in events if e["type"] == "syscall_enter"]
    causes = {e.get("cause") for e in events if e["type"] in ("request", "notify")}
    for calls in ([e for e in enters if e.get("pid") != 1], enters):
        for wanted in (lambda e: e["op"] in CLONE_FAMILY, lambda e: e.get("msgid") in causes):
            for e in calls:
                if wanted(e):
                    return syscall_route(events, e)
    return None


def shown_route(
    events: Iterable[Event], msgid: int | None, syscall: str | None, nth: int, pid: int | None
) -> Route | None:
    """The route a view draws: as ``select_route`` when one is asked for, else ``default_route``."""
    events = list(events)
    if msgid is not None or syscall is not None or pid is not None or nth:
        return select_route(events, msgid, syscall, nth, pid)
    return default_route(events)


def required_route(r: Route | None) -> Route:
    """A text view has nothing to show without a route: say why."""
    if r is None:
        raise ValueError("no syscall in this trace sent a message")
    return r


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
    while serving another is indented under it, and so is a page fault taken
    while serving one (``--- page fault: ... ---``). Selection as ``shown_route``.
    """
    r = required_route(shown_route(events, msgid, syscall, nth, pid))
    replies = {e.get("msgid"): e for e in r.events if e["type"] == "reply"}
    depths = _depths(r)
    lines = [title(r)]
    for e in r.events:
        if e["type"] == "fault":
            lines.append("  " * (depths.get(e.get("cause"), 0) + 1) + fault_line(e))
            continue
        if e["type"] not in ("request", "notify"):
            continue
        arrow = "~>" if e["type"] == "notify" else "->"
        indent = "  " * depths[e.get("msgid")]
        line = f"{indent}#{e.get('msgid')} {e.get('src')} {arrow} {e.get('dst', ''):<10} {e['op']:<17}" + tags(e)
        reply = replies.get(e.get("msgid"))
        if reply is not None and "errno" in reply:
            line += f" = {errno_text(reply)}"
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"
