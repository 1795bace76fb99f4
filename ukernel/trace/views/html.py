"""The html view: one self-contained page to read a run in a browser.

The page's style and script are the package files html.css and html.js, written into
the page (it fetches nothing, so it works offline and as a CI artifact).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from ...testing import MESSAGE_TYPES, Route, faults_by_syscall
from .. import Event, fault_outcome, fault_text
from .format import NO_RETURN, call_parts, errno_text, fault_line, jsonable, result_text
from .pstree import pstree
from .route import ends, participants, shown_route, tags, title

_SVG_COL, _SVG_ROW, _SVG_TOP, _SVG_BOX = 124, 30, 78, 112

#: The page; ``css`` and ``js`` are the text of html.css and html.js.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ukernel trace: {title}</title>
<style>
{css}</style>
</head>
<body>
<header>
<h1>ukernel trace</h1>
<p class="summary">{summary}</p>
</header>
<section>
<h2 id="route-title">Route of {title}</h2>
<p class="hint">Requests solid, replies dashed, page faults a loop on mm; click an arrow for its message.</p>
<div class="route">
<div class="diagram">
{diagram}
</div>
<aside id="details"><h3>Details</h3><pre id="detail">Click a message or a syscall.</pre></aside>
</div>
</section>
<section>
<h2>Processes</h2>
<pre class="pstree">{tree}</pre>
</section>
<section>
<h2>Syscalls</h2>
<input id="filter" type="search" placeholder="filter: words that must all appear (fork 2 ENOMEM)" aria-label="filter syscalls">
<span id="shown" class="hint"></span>
<table id="syscalls">
<thead><tr><th>seq</th><th>pid</th><th>tid</th><th>call</th><th>result</th><th>messages</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</section>
<script type="application/json" id="trace-data">{data}</script>
<script>
{js}</script>
</body>
</html>
"""


@cache
def _asset(name: str) -> str:
    """The text of a file that ships beside this module (html.css, html.js)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


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
    if kind == "fault":
        return f"page fault: {fault_outcome(e)}"
    return e["op"] + tags(e)


def _arrow(k: int, e: Event, r: Route, x_of: dict[str, int]) -> str:
    """Event ``k`` of the route as an arrow (a ``<g class="msg ...">`` with its label), or a
    loop when the event goes from a participant to itself."""
    y = _SVG_TOP + k * _SVG_ROW
    src, dst = ends(e)
    kind = {"syscall_enter": "request syscall", "syscall_exit": "reply syscall"}.get(e["type"], e["type"])
    if e["type"] in ("reply", "syscall_exit") and "errno" in e:
        kind += " error"
    label = _label(e, r.exit)
    full = (
        f"{src}: page fault: {fault_text(e)}"
        if e["type"] == "fault"
        else f"#{e.get('msgid')} {src} \u2192 {dst}: {label}"
    )
    x1, x2 = x_of[src], x_of[dst]
    parts = [f'<g class="msg {kind}" data-ev="{k}" tabindex="0"><title>{escape(full)}</title>']
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
    parts.append(f"{escape(shown)}</text></g>")
    return "".join(parts)


def _svg(r: Route) -> str:
    """The route as an SVG sequence diagram: a lifeline per participant, an arrow per event."""
    names = participants(r)
    x_of = {name: 20 + _SVG_COL // 2 + k * _SVG_COL for k, name in enumerate(names)}
    width = 40 + _SVG_COL * len(names) + 120  # room for a self message's loop and label
    height = _SVG_TOP + _SVG_ROW * len(r.events) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="diagram" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title(r))}">'
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
            f'<text x="{x}" y="32">{escape(name)}</text></g>'
        )
    out += [_arrow(k, e, r, x_of) for k, e in enumerate(r.events)]
    out.append("</svg>")
    return "\n".join(out)


def _sent_counter(events: list[Event]) -> Callable[[Any], int]:
    """A function: msgid -> how many messages it led to (its requests, theirs, and so on)."""
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

    return sent


def _fault_row(k: int, e: Event) -> str:
    """A page fault's row, under the row of the syscall that took it."""
    return (
        f'<tr class="fault" data-fault="{k}"><td class="num">{e.get("seq", "")}</td>'
        f'<td class="num">{escape(str(e.get("pid")))}</td><td class="num">{escape(str(e.get("tid", e.get("pid"))))}</td>'
        f'<td class="fault" colspan="3">{escape(fault_line(e))}</td></tr>'
    )


def _syscall_table(events: list[Event], enters: list[Event]) -> tuple[list[str], dict[str, list[Event]], list[Event]]:
    """A table row per syscall, each followed by a row per page fault it took; msgid -> the
    syscall's enter, exits and faults (what a click on the row shows); and the faults in row order."""
    exits: dict[Any, list[Event]] = defaultdict(list)
    for e in events:
        if e["type"] == "syscall_exit":
            exits[e.get("msgid")].append(e)
    faults_of = faults_by_syscall(events)
    sent = _sent_counter(events)
    rows, calls, faults = [], {}, []
    for e in enters:
        done = exits.get(e.get("msgid"), [])
        exit_ = done[-1] if done else None
        head, tail = call_parts(e, exit_)
        result = result_text(e["op"], exit_) if exit_ is not None or e["op"] in NO_RETURN else "?"
        failed = " failed" if exit_ is not None and "errno" in exit_ else ""
        took = faults_of.get(e.get("msgid"), [])
        calls[str(e.get("msgid"))] = [e, *done, *took]
        rows.append(
            f'<tr class="call{failed}" data-msgid="{escape(str(e.get("msgid")))}">'
            f'<td class="num">{e.get("seq", "")}</td><td class="num">{escape(str(e.get("pid")))}</td>'
            f'<td class="num">{escape(str(e.get("tid", e.get("pid"))))}</td>'
            f'<td class="call">{escape(head + tail)}</td><td class="result">{escape(result)}</td>'
            f'<td class="num">{sent(e.get("msgid"))}</td></tr>'
        )
        for fault in took:
            rows.append(_fault_row(len(faults), fault))
            faults.append(fault)
    return rows, calls, faults


def _script_json(v: Any) -> str:
    """JSON safe inside a <script> element: no ``<`` that could end it."""
    return json.dumps(jsonable(v), sort_keys=False).replace("<", "\\u003c")


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
    - every syscall in a table with a text filter, the page faults it took in rows under
      it (``--- page fault: ... ---``); a click shows its enter, exit and faults.

    The route: as ``shown_route`` (``select_route`` when one is asked for, else the
    program's first clone, else its first syscall that sent a message).
    """
    events = list(events)
    r = shown_route(events, msgid, syscall, nth, pid)
    enters = [e for e in events if e["type"] == "syscall_enter"]
    rows, calls, faults = _syscall_table(events, enters)
    n_messages = sum(1 for e in events if e["type"] in MESSAGE_TYPES)
    n_tasks = len({e.get("tid", e.get("pid")) for e in enters})
    if r is None:
        heading, diagram = "no syscall in this trace sent a message", "<p class=hint>Nothing to draw.</p>"
    else:
        heading, diagram = title(r), _svg(r)
    return _PAGE.format(
        title=escape(heading),
        css=_asset("html.css"),
        js=_asset("html.js"),
        summary=f"{len(events)} events, {len(enters)} syscalls by {n_tasks} tasks, {n_messages} messages",
        diagram=diagram,
        tree=escape(pstree(events, pids=True) or "(no process)\n"),
        rows="\n".join(rows),
        data=_script_json({"route": r.events if r else [], "calls": calls, "faults": faults}),
    )
