"""The mermaid view: one syscall's route as a Mermaid ``sequenceDiagram``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ...testing import Route
from .. import Event, fault_text
from .format import call_parts, cstring, errno_text, result_text
from .pstree import comms
from .route import ends, required_route, shown_route, tags, title

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


def _ends(e: Event) -> tuple[str, str]:
    """(src, dst) of an arrow: a syscall goes from the task to the kernel and back, whichever
    service serves it (the kernel's request to that service is the next arrow)."""
    caller = f"pid:{e.get('pid')}"
    if e["type"] == "syscall_enter":
        return caller, "kernel"
    if e["type"] == "syscall_exit":
        return "kernel", caller
    return ends(e)


def _label(name: str, comms: dict[int, str]) -> tuple[str, str]:
    """(id, label): a task ``P2`` shown as ``sh (pid 2)``, a service as ``pid service``, so
    the pid service and process 2 are never confused."""
    if m := re.fullmatch(r"pid:(\d+)", name):
        pid = int(m[1])
        comm = comms.get(pid, "?")
        return f"P{pid}", f"pid {pid}" if comm == "?" else f"{comm} (pid {pid})"
    if name == "kernel":
        return name, name
    return mermaid_id(name), f"{name} service"


def _message(e: Event, r: Route, values: bool) -> tuple[str, str]:
    """(arrow, text) of one event: requests ``->>`` with the op, replies ``-->>`` with
    ``ok`` or the errno, notifies ``-)``; ``values`` adds args and results."""
    kind = e["type"]
    if kind == "syscall_enter":
        head, tail = call_parts(e, r.exit)
        return "->>", head + tail
    if kind == "syscall_exit":
        return "-->>", f"{e['op']} = {result_text(e['op'], e)}"
    if kind == "reply":
        return "-->>", errno_text(e) if "errno" in e else compact(e.get("result")) if values else "ok"
    text = e["op"]
    if values:
        text += f"({compact(e.get('args')) if e.get('args') else ''})"
    return "-)" if kind == "notify" else "->>", text + tags(e)


def _participant_lines(r: Route, comms: dict[int, str]) -> tuple[list[str], dict[str, str]]:
    """The ``participant`` lines and the id of each participant: the caller, the kernel, then
    the services as they appear."""
    names = [f"pid:{r.pid}", "kernel"] + [name for e in r.events for name in _ends(e)]
    labels = {name: _label(name, comms) for name in dict.fromkeys(names)}
    lines = [
        f"    participant {ident}" if ident == label else f"    participant {ident} as {mermaid_text(label)}"
        for ident, label in labels.values()
    ]
    return lines, {name: ident for name, (ident, _) in labels.items()}


def mermaid(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
    values: bool = False,
) -> str:
    """One syscall's route as a Mermaid ``sequenceDiagram``.

    Participants are the calling task (``P2`` as ``sh (pid 2)``), ``kernel`` and each
    service (``pid`` as ``pid service``) in order of appearance; a syscall goes from the
    task to the kernel and back, the kernel's messages to the services; requests are solid arrows (``->>``) labelled with the op and
    its ``[flag]``, replies dotted (``-->>``) with ``ok`` or the errno, notifies
    open (``-)``); a page fault is a ``Note over mm``. The unwind after a failed
    step (steps named ``undo ...``) sits in an ``alt unwind`` block. Selection as ``shown_route``: by default
    the program's first clone, else its first syscall that sent a message.

    ``values=True`` adds each message's args and result (``dup_files(files=7)``,
    ``files=9``). They are left out by default because some are not the same
    from run to run in one Python process (the kernel numbers tasks globally).
    """
    events = list(events)
    r = required_route(shown_route(events, msgid, syscall, nth, pid))
    participant_lines, ids = _participant_lines(r, comms(events))
    lines = ["sequenceDiagram", *participant_lines]
    if r.root is None:
        lines.append(f"    Note over {ids[f'pid:{r.pid}']}: {mermaid_text(title(r))}")
    in_unwind = False
    for e in r.events:
        undo = (e.get("step") or "").startswith("undo ")
        if undo != in_unwind:
            lines.append("    alt unwind" if undo else "    end")
            in_unwind = undo
        src, dst = (ids[name] for name in _ends(e))
        indent = "        " if in_unwind else "    "
        if e["type"] == "fault":
            lines.append(f"{indent}Note over {src}: {mermaid_text('page fault: ' + fault_text(e))}")
            continue
        arrow, text = _message(e, r, values)
        lines.append(f"{indent}{src}{arrow}{dst}: {mermaid_text(text)}")
    if in_unwind:
        lines.append("    end")
    return "\n".join(lines) + "\n"
