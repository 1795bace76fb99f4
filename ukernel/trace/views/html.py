"""The html view: one self-contained page to read a run in a browser.

The page's style and script are the package files html.css and html.js, written into
the page (it fetches nothing, so it works offline and as a CI artifact). Python draws
every syscall's route here, as the route view chooses it; the script only swaps them.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from ... import abi
from ...testing import MESSAGE_TYPES, SERVICE_EVENT_TYPES, Route, births
from .. import Event, fault_outcome, fault_text
from .format import NO_RETURN, as_text, call_parts, errno_text, fault_line, jsonable, result_text
from .pstree import process_tree, pstree
from .route import ends, participants, shown_route, tags, title

_SVG_COL, _SVG_ROW, _SVG_TOP, _SVG_BOX = 124, 30, 78, 112
#: The width of a character of the diagram's 12 px monospace font (DejaVu Sans Mono's
#: advance is 0.602 em), a little over, so that a label always fits its arrow.
_CHAR = 7.4
_LOOP = 42  # a self message's loop: where its label starts, right of the lifeline
_WRAP = 60  # characters of a label's line
_LINE = 14  # px between a wrapped label's lines

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
<section id="route">
<h2 id="route-title">Route of {title}</h2>
<p class="hint">Requests solid, replies dashed, page faults a loop on mm. Click (or Tab to and press Enter) \
an arrow for its message, a syscall below for its own route.</p>
<noscript><p class="hint">Without JavaScript the page shows this route only.</p></noscript>
<div class="route">
<div class="diagram" id="diagram-box">
{diagram}
</div>
<aside id="details" aria-live="polite"><h3>Details</h3><div id="detail"><p class="hint">Click a message or a \
syscall.</p></div></aside>
</div>
</section>
<section>
<h2>Output</h2>
{output}
</section>
<section>
<h2>Processes</h2>
<p class="hint">Click a process to show only its syscalls.</p>
<pre class="pstree" id="pstree">{tree}</pre>
</section>
<section>
<h2>Syscalls</h2>
<div class="filters">
<input id="filter" type="search" placeholder="filter: words that must all appear (fork 2 ENOMEM)" \
aria-label="filter syscalls">
<label>task <select id="pid-filter">
{pid_options}
</select></label>
<span id="shown" class="hint"></span>
</div>
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


# --- the routes -------------------------------------------------------------------------------
def syscall_routes(events: list[Event]) -> dict[Any, Route]:
    """Msgid of each syscall -> its route, as ``testing.syscall_route`` makes it, in one pass.

    syscall_route walks the whole trace for each level of each syscall's messages; a page
    draws every syscall's, so here each request is traced up its ``cause`` chain once.
    """
    calls: dict[Any, Event] = {}
    for e in events:
        if e["type"] == "syscall_enter":
            calls.setdefault(e.get("msgid"), e)
    cause_of = {e.get("msgid"): e.get("cause") for e in events if e["type"] in ("request", "notify")}
    root_of: dict[Any, Any] = {}  # msgid of a request -> the syscall it is on the route of (or None)
    for m in cause_of:
        chain, c = [], m
        while c in cause_of and c not in calls and c not in root_of and c not in chain:
            chain.append(c)
            c = cause_of[c]
        root = root_of[c] if c in root_of else c if c in calls else None
        for x in chain:
            root_of[x] = root
    chosen: dict[Any, list[Event]] = {m: [] for m in calls}
    for e in events:
        kind = e["type"]
        if kind == "syscall_enter":
            m = e.get("msgid")
            if calls[m] is e:
                chosen[m].append(e)
            continue
        if kind == "syscall_exit":
            m = e.get("msgid") if e.get("msgid") in calls else None
        elif kind in MESSAGE_TYPES:
            m = root_of.get(e.get("msgid"))
        elif kind in SERVICE_EVENT_TYPES:
            m = root_of.get(e.get("cause"))
        else:
            continue
        if m is not None:
            chosen[m].append(e)
    return {m: _as_route(calls[m], chosen[m]) for m in calls}


def _as_route(enter: Event, chosen: list[Event]) -> Route:
    """A Route of ``chosen`` (trace order), as testing.syscall_route fills one."""
    msgid = enter.get("msgid")
    exits = [e for e in chosen if e["type"] == "syscall_exit" and e.get("msgid") == msgid]
    requests = [e for e in chosen if e["type"] in ("request", "notify")]
    parent_of = {e.get("msgid"): e.get("cause") for e in requests}
    faults = [e for e in chosen if e["type"] == "fault"]
    return Route(enter, exits[0] if exits else None, enter.get("pid"), requests, chosen, parent_of, None, faults)


# --- the diagram ------------------------------------------------------------------------------
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


def label_lines(label: str, limit: int = _WRAP) -> list[str]:
    """A label in lines of at most ``limit`` characters, broken after ``, `` or ``|`` where it
    can be (``clone(flags=CLONE_VM|...`` is long), so a wide call makes a tall arrow, not a
    diagram as wide as the call."""
    lines: list[str] = []
    line = ""
    for piece in re.split(r"(?<=, )|(?<=\|)", label):
        while len(piece) > limit:  # no break in it: cut it
            room = limit - len(line)
            lines.append(line + piece[:room])
            line, piece = "", piece[room:]
        if len(line) + len(piece) > limit:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return [x for x in [*lines, line.rstrip()] if x] or [""]


def _columns(r: Route, names: list[str], labels: list[list[str]]) -> tuple[dict[str, float], float]:
    """x of each lifeline and the diagram's width: each column as far right as the labels of
    the arrows that end at it (and the loops of the one before) need, so no label is cut."""
    col = {name: k for k, name in enumerate(names)}
    need_to: dict[int, list[tuple[int, float]]] = defaultdict(list)  # hi column -> (lo column, room)
    loop_room = [0.0] * len(names)
    for e, lines in zip(r.events, labels, strict=True):
        src, dst = ends(e)
        width = max(map(len, lines)) * _CHAR
        if src == dst:
            loop_room[col[src]] = max(loop_room[col[src]], _LOOP + width + 12)
        else:
            lo, hi = sorted((col[src], col[dst]))
            need_to[hi].append((lo, width + 24))
    xs = [20 + _SVG_BOX / 2]
    for k in range(1, len(names)):
        x = max(xs[-1] + _SVG_COL, xs[-1] + loop_room[k - 1])
        xs.append(max([x] + [xs[lo] + room for lo, room in need_to[k]]))
    width = xs[-1] + max(_SVG_BOX / 2, loop_room[-1]) + 20
    return {name: xs[k] for k, name in enumerate(names)}, width


def _text(x: float, y: float, anchor: str, lines: list[str]) -> str:
    """A label's ``<text>``, a ``<tspan>`` per line when it wraps, the last line at ``y``."""
    if len(lines) == 1:
        return f'<text class="label" x="{x:g}" y="{y}" text-anchor="{anchor}">{escape(lines[0])}</text>'
    top = y - _LINE * (len(lines) - 1)
    spans = "".join(f'<tspan x="{x:g}" y="{top + k * _LINE}">{escape(line)}</tspan>' for k, line in enumerate(lines))
    return f'<text class="label" text-anchor="{anchor}">{spans}</text>'


def _arrow(k: int, y: int, e: Event, r: Route, lines: list[str], x_of: dict[str, float]) -> str:
    """Event ``k`` of the route as an arrow at ``y`` (a focusable ``<g class="msg ...">`` with
    its label), or a loop when the event goes from a participant to itself."""
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
    parts = [f'<g class="msg {kind}" data-ev="{k}" tabindex="0" role="button"><title>{escape(full)}</title>']
    if x1 == x2:
        parts.append(f'<path class="line" d="M{x1:g} {y} h36 v12 h-32"/>')
        parts.append(f'<polygon class="head" points="{x1:g} {y + 12},{x1 + 9:g} {y + 8},{x1 + 9:g} {y + 16}"/>')
        parts.append(_text(x1 + _LOOP, y + 10, "start", lines))
    else:
        d = 1 if x2 > x1 else -1
        parts.append(f'<line class="hit" x1="{x1:g}" y1="{y}" x2="{x2:g}" y2="{y}"/>')
        parts.append(f'<line class="line" x1="{x1:g}" y1="{y}" x2="{x2 - d * 9:g}" y2="{y}"/>')
        parts.append(f'<polygon class="head" points="{x2:g} {y},{x2 - d * 10:g} {y - 5},{x2 - d * 10:g} {y + 5}"/>')
        parts.append(_text((x1 + x2) / 2, y - 6, "middle", lines))
    parts.append("</g>")
    return "".join(parts)


def _svg(r: Route) -> str:
    """The route as an SVG sequence diagram sized to its content: a lifeline per participant,
    an arrow per event, a wrapped label making its row taller."""
    names = participants(r)
    labels = [label_lines(_label(e, r.exit)) for e in r.events]
    x_of, width = _columns(r, names, labels)
    ys, y = [], _SVG_TOP - _SVG_ROW
    for lines in labels:
        y += _SVG_ROW + _LINE * (len(lines) - 1)
        ys.append(y)
    height = y + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="diagram" width="{width:g}" height="{height}" '
        f'viewBox="0 0 {width:g} {height}" role="group" aria-label="{escape(title(r))}">'
    ]
    undo_rows = [k for k, e in enumerate(r.events) if (e.get("step") or "").startswith("undo ")]
    if undo_rows:
        first = undo_rows[0]
        top = ys[first] - 22 - _LINE * (len(labels[first]) - 1)
        bottom = ys[undo_rows[-1]] + 10
        out.append(f'<rect class="unwind" x="10" y="{top}" width="{width - 20:g}" height="{bottom - top}"/>')
        out.append(f'<text class="unwind-label" x="16" y="{top + 13}">alt unwind</text>')
    for name in names:
        x = x_of[name]
        out.append(f'<line class="life" x1="{x:g}" y1="44" x2="{x:g}" y2="{height - 8}"/>')
        out.append(
            f'<g class="participant"><rect x="{x - _SVG_BOX / 2:g}" y="12" width="{_SVG_BOX}" height="30" rx="4"/>'
            f'<text x="{x:g}" y="32">{escape(name)}</text></g>'
        )
    out += [_arrow(k, ys[k], e, r, labels[k], x_of) for k, e in enumerate(r.events)]
    out.append("</svg>")
    return "\n".join(out)


def _args(e: Event) -> dict:
    """An event's arguments; a trace from a file may hold anything there."""
    args = e.get("args")
    return args if isinstance(args, dict) else {}


# --- who is who -------------------------------------------------------------------------------
def thread_groups(events: list[Event]) -> list[int | None]:
    """For each event, the tgid of the task acting (``pid`` in the trace is the task's own
    number, the tid): a CLONE_THREAD child joins its caller's group, any other is a leader."""
    made = births(events)
    tgid: dict[Any, Any] = {}
    out: list[int | None] = []
    for i, e in enumerate(events):
        if i in made:
            enter, child = made[i]
            flags = _args(enter).get("flags", 0) if enter["op"] in ("clone", "clone3") else 0
            caller = enter.get("tid", enter.get("pid"))
            thread = isinstance(flags, int) and flags & abi.CLONE_THREAD
            tgid[child] = tgid.get(caller, caller) if thread else child
        tid = e.get("tid", e.get("pid"))
        out.append(tgid.get(tid, tid))
    return out


def _pid_options(events: list[Event], groups: list[int | None]) -> str:
    """The task filter's choices: every process (tgid) by its comm, its other threads under it."""
    comm = {}
    todo = list(process_tree(events))
    while todo:
        task = todo.pop()
        comm.setdefault(task.pid, (task.group or task).comm)
        todo.extend(task.children)
    threads: dict[Any, set] = defaultdict(set)
    for e, tgid in zip(events, groups, strict=True):
        if e["type"] == "syscall_enter":
            threads[tgid].add(e.get("tid", e.get("pid")))
    options = ['<option value="">all</option>']
    for tgid in sorted(threads, key=_number):
        name = f" {comm[tgid]}" if tgid in comm else ""
        options.append(f'<option value="p{escape(str(tgid))}">pid {escape(str(tgid))}{escape(name)}</option>')
        for tid in sorted(threads[tgid] - {tgid}, key=_number):
            options.append(f'<option value="t{escape(str(tid))}">\u2003tid {escape(str(tid))} (thread)</option>')
    return "\n".join(options)


def _number(v: Any) -> tuple[int, str]:
    """Sort key: numbers in order, anything else (None) after them."""
    return (v, "") if isinstance(v, int) else (1 << 62, str(v))


# --- the syscall table ------------------------------------------------------------------------
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


def _ids(tgid: Any, e: Event) -> str:
    """The pid (tgid) and tid cells of a row."""
    pid, tid = escape(str(tgid)), escape(str(e.get("tid", e.get("pid"))))
    return f'<td class="num" data-pid="{pid}">{pid}</td><td class="num" data-tid="{tid}">{tid}</td>'


def _fault_row(k: int, tgid: Any, e: Event) -> str:
    """A page fault's row (``k``: the fault's index among the events), under its syscall's."""
    return (
        f'<tr class="fault" data-fault="{k}"><td class="num">{e.get("seq", "")}</td>{_ids(tgid, e)}'
        f'<td class="fault" colspan="3"><button type="button" class="fault">{escape(fault_line(e))}</button></td></tr>'
    )


def _syscall_table(events: list[Event], routes: dict[Any, Route], groups: list[int | None]) -> list[str]:
    """A table row per syscall (its call a button), each followed by a row per page fault it took."""
    sent = _sent_counter(events)
    rows = []
    index = {id(e): k for k, e in enumerate(events)}
    for e, tgid in zip(events, groups, strict=True):
        if e["type"] != "syscall_enter":
            continue
        r = routes[e.get("msgid")]
        head, tail = call_parts(e, r.exit)
        result = result_text(e["op"], r.exit) if r.exit is not None or e["op"] in NO_RETURN else "?"
        failed = " failed" if r.exit is not None and "errno" in r.exit else ""
        rows.append(
            f'<tr class="call{failed}" data-msgid="{escape(str(e.get("msgid")))}">'
            f'<td class="num">{e.get("seq", "")}</td>{_ids(tgid, e)}'
            f'<td class="call"><button type="button" class="call">{escape(head + tail)}</button></td>'
            f'<td class="result">{escape(result)}</td><td class="num">{sent(e.get("msgid"))}</td></tr>'
        )
        for fault in r.faults if r.root is e else []:
            rows.append(_fault_row(index[id(fault)], tgid, fault))
    return rows


# --- the output -------------------------------------------------------------------------------
def console_output(events: list[Event]) -> str | None:
    """What the console showed: the reply to the ``console_output`` the run asks vfs for at
    its end (ukernel.run's stdout, stdout and stderr as they interleaved); None without one."""
    found = None
    for e in events:
        if e["type"] == "reply" and e["op"] == "console_output" and isinstance(e.get("result"), str | bytes):
            found = as_text(e["result"])
    return found


def _output(events: list[Event]) -> str:
    """The Output section's body: the console's text, else the writes to fd 1 and 2, said so."""
    text = console_output(events)
    if text is not None:
        return f'<pre class="output" id="output">{escape(text) or "(nothing was written to the console)"}</pre>'
    writes = [
        (e.get("pid"), as_text(_args(e)["data"]))
        for e in events
        if e["type"] == "syscall_enter"
        and e["op"] == "write"
        and _args(e).get("fd") in (1, 2)
        and isinstance(_args(e).get("data"), str | bytes)
    ]
    lines = "".join(
        f"[pid {escape(str(pid))}] {escape(data)}" + ("" if data.endswith("\n") else "\n") for pid, data in writes
    )
    return (
        '<p class="hint">The trace does not hold the console\'s output (a run asks the console for it at its '
        "end); these are the writes to fd 1 and 2, wherever those pointed:</p>"
        f'<pre class="output" id="output">{lines or "(none)"}</pre>'
    )


# --- the page ---------------------------------------------------------------------------------
def _script_json(v: Any) -> str:
    """JSON safe inside a <script> element: no ``<`` that could end it; and ``:\\/\\/`` for
    ``://`` (the same string to JSON), so a page checked for links finds none in the data."""
    return json.dumps(jsonable(v), sort_keys=False).replace("<", "\\u003c").replace("://", ":\\/\\/")


def _page_data(events: list[Event], routes: dict[Any, Route], shown: Route | None) -> dict[str, Any]:
    """What the script needs: every event once; per syscall its route (event indexes), title
    and drawn diagram; the shown route's events (it may be no syscall's: a request's, an exit's)."""
    index = {id(e): k for k, e in enumerate(events)}
    calls = {}
    for m, r in routes.items():
        calls[str(m)] = {
            "title": title(r),
            "svg": _svg(r),
            "events": [index[id(e)] for e in r.events],
        }
    return {
        "events": events,
        "calls": calls,
        "route": shown.events if shown else [],
        "shown": str(shown.root.get("msgid")) if shown is not None and shown.root is not None else None,
    }


def html(
    events: Iterable[Event],
    msgid: int | None = None,
    syscall: str | None = None,
    nth: int = 0,
    pid: int | None = None,
) -> str:
    """One self-contained HTML page (inline CSS and JS, nothing fetched) to explore a run.

    - a route as an SVG sequence diagram sized to its content: a lifeline per participant,
      an arrow (an element of class ``msg``, focusable) per event of the route, requests
      solid, replies dashed, failed replies red, the unwind shaded; a click (or Enter)
      shows the message, request and reply, as tables beside it;
    - the console's output; the pstree (``pids=True``, global pids), its processes buttons
      that filter the table;
    - every syscall in a table (pid is the tgid, tid the thread) with a text filter and a
      task filter, the page faults it took in rows under it; a click on a syscall draws its
      own route (the messages ``route --msgid`` lists) and shows its details as tables.

    The route shown first: as ``shown_route`` (``select_route`` when one is asked for,
    else the program's first clone, else its first syscall that sent a message).
    """
    events = list(events)
    r = shown_route(events, msgid, syscall, nth, pid)
    routes = syscall_routes(events)
    groups = thread_groups(events)
    n_enters = sum(1 for e in events if e["type"] == "syscall_enter")
    n_messages = sum(1 for e in events if e["type"] in MESSAGE_TYPES)
    n_tasks = len({e.get("tid", e.get("pid")) for e in events if e["type"] == "syscall_enter"})
    if r is None:
        heading = "no syscall in this trace sent a message"
        diagram = '<p class="hint" id="no-route">No syscall in this trace sent a message: there is no route to draw.'
        diagram += " Click a syscall below to see its entry and return.</p>" if n_enters else "</p>"
    else:
        heading, diagram = title(r), _svg(r)
    return _PAGE.format(
        title=escape(heading),
        css=_asset("html.css"),
        js=_asset("html.js"),
        summary=f"{len(events)} events, {n_enters} syscalls by {n_tasks} tasks, {n_messages} messages",
        diagram=diagram,
        output=_output(events),
        tree=escape(pstree(events, pids=True) or "(no process)\n"),
        pid_options=_pid_options(events, groups),
        rows="\n".join(_syscall_table(events, routes, groups)),
        data=_script_json(_page_data(events, routes, r)),
    )
