"""``ukernel explore ... --graph out.html``: the state graph of an exploration, as one page.

States are nodes: the start, the state at each choice point (its digest: two paths that
reach one state meet there), and each run's end, one node per distinct outcome, deadlock
or violation. Choices are edges, labelled with the task (pid, comm) that ran and its
syscall. A click on a state shows what its digest stands for: each task's syscall, wait
channel and program frames (kernel/statedump.py), each service's digested fields (its
``state_digest`` op with ``fields``), and the schedule that reaches it. MOSAIC's ``vis``
is the anchor; this draws a layered layout computed here, with no library and nothing
fetched (the page's script and style are graph.js and graph.css, written into it).

The search hands each run's ``Notes`` records over (search.py); a large graph is cut to
its first ``MAX_NODES`` states, and the page says so, rather than hang a browser.
"""

from __future__ import annotations

import json
import os
import shlex
from collections import defaultdict
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any

from .outcome import _freeze

if TYPE_CHECKING:
    from .outcome import Exploration
    from .search import RunReport

MAX_NODES = 250  # states drawn (and spelled out by the kernel); the rest are counted
MAX_ENDINGS = 60  # outcome, deadlock and violation nodes drawn
X_GAP, Y_GAP, MARGIN = 110, 96, 48  # px between nodes of a layer, between layers, around
LABEL_CHARS = 16  # characters of an edge's label drawn (its title has it all)
PALETTE = ("#2f6fd0", "#2e8b57", "#8e44ad", "#b8860b", "#138d90", "#c2185b", "#5d6d7e", "#6b8e23")
DEADLOCK, VIOLATION = "#c62828", "#e67e22"


class Notes:
    """One run's record of its choice points past its prefix; ``described``: the states this
    process already had the kernel spell out (shared by its runs), at most MAX_NODES."""

    def __init__(self, described: set) -> None:
        self.described, self.records = described, []

    def wants_detail(self, state: int) -> bool:
        if state in self.described or len(self.described) >= MAX_NODES:
            return False
        self.described.add(state)
        return True

    def add(self, index: int, point: dict, chosen: int | None) -> None:
        """Point ``index`` of the run; ``chosen`` None: a state met before, where the run stopped."""
        record = {k: point[k] for k in ("state", "kind", "pid", "syscall", "options")}
        record |= {"index": index, "chosen": chosen}
        if "detail" in point:
            record["detail"] = point["detail"]
        self.records.append(record)


class StateGraph:
    """Nodes and edges as the runs come in (dicts keep the order they were met)."""

    def __init__(self, program: str, argv: list[str] | None) -> None:
        self.program, self.argv = program, list(argv or [])
        self.nodes: dict[str, dict] = {"n0": {"id": "n0", "kind": "start", "schedule": []}}
        self.by_state: dict[Any, str] = {}  # a digest, or an ending's key -> node id
        self.at_path: dict[tuple, tuple[str, dict]] = {}  # choices before a point -> its node, its record
        self.edges: dict[tuple[str, str, int], dict] = {}

    def add(self, report: RunReport) -> None:
        """One run: its points' states, the choices between them, and its end."""
        from .search import trimmed  # search imports this module

        taken, points = report.taken, report.points or []
        if report.prefix:  # from the point the prefix's last choice was made at (an earlier run met it)
            prev = self.at_path.get(tuple(report.prefix[:-1]))
            source = (prev[0], prev[1], report.prefix[-1]) if prev is not None else None
        else:
            source = ("n0", None, None)
        for record in points:
            path = tuple(taken[: record["index"]])
            node = self._state_node(record, len(path), trimmed(list(path)))
            self._edge(source, node)
            if record["chosen"] is None:
                return  # a state met before: the run went on along known paths
            self.at_path[path] = (node, record)
            source = (node, record, record["chosen"])
        if report.ending is not None:
            self._edge(source, self._ending_node(report.ending, trimmed(taken)))

    def _state_node(self, record: dict, choices: int, schedule: list[int]) -> str:
        """The node of a point's state, first met after ``choices`` choices (``schedule``, trimmed)."""
        key = ("state", record["state"])
        found = self.by_state.get(key)
        if found is None:
            found = f"n{len(self.nodes)}"
            self.by_state[key] = found
            choice = {k: record[k] for k in ("kind", "pid", "syscall", "options")}
            self.nodes[found] = {"id": found, "kind": "state", "schedule": schedule, "choice": choice}
            self.nodes[found] |= {"digest": str(record["state"]), "choices": choices, "met": 0}
        node = self.nodes[found]
        node["met"] += 1  # more than once: paths merge here (state caching stops the later ones)
        if "detail" in record and "detail" not in node:
            node["detail"] = record["detail"]
        return found

    def _ending_node(self, ending: dict, schedule: list[int]) -> str:
        key = (ending["kind"], _freeze(ending["key"]))
        found = self.by_state.get(key)
        if found is None:
            found = f"n{len(self.nodes)}"
            self.by_state[key] = found
            number = 1 + sum(n["kind"] == ending["kind"] for n in self.nodes.values())
            shown = {k: v for k, v in ending.items() if k not in ("kind", "key") and v is not None}
            self.nodes[found] = {"id": found, "kind": ending["kind"], "number": number, "schedule": schedule}
            self.nodes[found] |= {"ending": shown, "runs": 0}
        self.nodes[found]["runs"] += 1
        return found

    def _edge(self, source: tuple | None, target: str) -> None:
        if source is None:
            return  # the prefix's point was never recorded (a worker's run was cut before it)
        node, record, chosen = source
        key = (node, target, -1 if chosen is None else chosen)
        if key not in self.edges:
            self.edges[key] = {"from": node, "to": target} | self._label(node, record, chosen)

    def _label(self, node: str, record: dict | None, chosen: int | None) -> dict:
        """Who ran and what it did, from the choice (``record``) made at ``node``."""
        if record is None:
            return {"label": "boot", "title": "init starts the program, which runs to its first choice point"}
        pid = record["options"][chosen]
        rows = {t["pid"]: t for t in self.nodes[node].get("detail", {}).get("tasks", [])}
        comm = f" {rows[pid]['comm']}" if pid in rows else ""
        if record["kind"] == "entry" and chosen == 0:
            what = record["syscall"]
            title = f"pid {pid}{comm} runs {what}"
        else:
            what = rows[pid]["syscall"] if pid in rows and rows[pid]["syscall"] else "runs"
            before = (
                f"pid {record['pid']} is preempted before {record['syscall']}"
                if record["kind"] == "entry"
                else f"pid {record['pid']} leaves the CPU ({record['syscall']})"
            )
            title = f"{before}; pid {pid}{comm} runs" + (f" {what}" if what != "runs" else "")
        return {"label": f"{pid} {what}", "title": f"choice {chosen}: {title}", "chosen": chosen}

    # --- the model the page draws ----------------------------------------------------------------
    def model(self, result: Exploration, settings: dict) -> dict:
        """Drawn nodes with their place, the edges between them, the legend and the counts."""
        states = [n for n in self.nodes.values() if n["kind"] in ("start", "state")]
        endings = [n for n in self.nodes.values() if n["kind"] not in ("start", "state")]
        drawn = {n["id"] for n in states[: MAX_NODES + 1]}
        reached = {e["to"] for e in self.edges.values() if e["from"] in drawn}
        drawn |= set([n["id"] for n in endings if n["id"] in reached][:MAX_ENDINGS])
        edges = [e for e in self.edges.values() if e["from"] in drawn and e["to"] in drawn]
        nodes = [dict(n) for n in self.nodes.values() if n["id"] in drawn]
        place(nodes, edges)
        blobs = intern_fields(nodes)
        for n in nodes:
            n["replay"] = self.replay(n["schedule"], settings)
        return {
            "program": self.program,
            "argv": self.argv,
            "complete": result.complete,
            "why_incomplete": result.why_incomplete,
            "runs": result.runs,
            "states": len(states) - 1,
            "endings": len(endings),
            "drawn": {
                "states": sum(n["kind"] == "state" for n in nodes),
                "endings": sum(n["kind"] not in ("start", "state") for n in nodes),
            },
            "nodes": nodes,
            "edges": edges,
            "blobs": blobs,
        }

    def replay(self, schedule: list[int], settings: dict) -> str:
        """The command that replays a schedule (the same settings: the list is for them)."""
        words = ["ukernel", "run", "--schedule", ",".join(map(str, schedule)) or "0", self.program, *self.argv[1:]]
        line = shlex.join(words)
        return line + (f"  (with the settings explored: {_settings_text(settings)})" if settings else "")

    def write(self, path: str | os.PathLike, result: Exploration, settings: dict) -> dict:
        """The page, written to ``path``; the model it draws."""
        model = self.model(result, settings)
        with open(path, "w", encoding="utf-8") as out:
            out.write(page(model))
        return model


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(settings.items()))


def intern_fields(nodes: list[dict]) -> list[Any]:
    """Each service field's value once on the page (``blobs``), the states referring to it by
    number: most states share most of every service's state (the tmpfs tree, the mounts)."""
    blobs: list[Any] = []
    index: dict[str, int] = {}

    def ref(value: Any) -> int:
        text = json.dumps(value, sort_keys=True, default=str)
        if text not in index:
            index[text] = len(blobs)
            blobs.append(value)
        return index[text]

    for n in nodes:
        services = n.get("detail", {}).get("services")
        if services:
            refs = {name: {k: ref(v) for k, v in fields.items()} for name, fields in services.items()}
            n["detail"] = n["detail"] | {"services": refs}
    return blobs


# --- layout: layers by depth, ordered by their parents' places --------------------------------
def place(nodes: list[dict], edges: list[dict]) -> None:
    """Sets each node's ``x``, ``y`` and ``depth``: the start on top, every state one layer
    below the nearest state before it (breadth first), the endings on the last layer; in a
    layer, nodes in the order of their parents' mean place (one barycentre sweep down)."""
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for e in edges:
        parents[e["to"]].append(e["from"])
        children[e["from"]].append(e["to"])
    kinds = {n["id"]: n["kind"] for n in nodes}
    depth = {"n0": 0}
    frontier = ["n0"]
    while frontier:
        later = []
        for node in frontier:
            for child in children[node]:
                if child not in depth and kinds[child] == "state":
                    depth[child] = depth[node] + 1
                    later.append(child)
        frontier = later
    last = max(depth.values()) + 1
    layers: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        n["depth"] = depth.get(n["id"], last) if n["kind"] in ("start", "state") else last
        layers[n["depth"]].append(n["id"])
    order: dict[str, float] = {}
    for d in sorted(layers):
        layer = layers[d]
        rank = {node: i for i, node in enumerate(layer)}
        layer.sort(key=lambda node: (_mean([order[p] for p in parents[node] if p in order], rank[node]), rank[node]))
        for i, node in enumerate(layer):
            order[node] = i
    width = max(len(layer) for layer in layers.values())
    for n in nodes:
        layer = layers[n["depth"]]
        n["x"] = MARGIN + (width - len(layer)) * X_GAP / 2 + layer.index(n["id"]) * X_GAP + X_GAP / 2
        n["y"] = MARGIN + n["depth"] * Y_GAP


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


# --- the page -------------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ukernel explore: {title}</title>
<style>
{css}</style>
</head>
<body>
<header>
<h1>ukernel explore: {title}</h1>
<p class="summary" id="summary">{summary}</p>
{capped}
</header>
<section class="legend" aria-label="legend">
<h2>Legend</h2>
<ul id="legend">
{legend}
</ul>
</section>
<section>
<h2>State graph</h2>
<p class="hint">A node is a state at a choice point (two paths that reach one state meet there); an edge is \
a choice, labelled with the task that ran and its syscall. Click (or Tab to and press Enter) a node for \
its tasks, its services' fields and the schedule that reaches it.</p>
<div class="graph">
<div class="canvas" id="canvas">
{svg}
</div>
<aside id="details" aria-live="polite"><h3>Details</h3><div id="detail"><p class="hint">Click a state.</p>\
</div></aside>
</div>
</section>
<script type="application/json" id="graph-data">{data}</script>
<script>
{js}</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def colour(node: dict) -> str:
    if node["kind"] == "deadlock":
        return DEADLOCK
    if node["kind"] == "violation":
        return VIOLATION
    return PALETTE[(node["number"] - 1) % len(PALETTE)]


def ending_name(node: dict) -> str:
    return f"{node['kind']} {node['number']}"


def _legend(model: dict) -> str:
    items = [
        '<li><span class="swatch start"></span>start: the program booted, before its first choice</li>',
        '<li><span class="swatch state"></span>a state at a choice point (the number is the order the search '
        "met it in)</li>",
    ]
    for n in model["nodes"]:
        if n["kind"] in ("start", "state"):
            continue
        ending = n["ending"]
        if n["kind"] == "outcome":
            what = ending.get("assertion") or repr(ending["stdout"])
            text = f"{ending_name(n)}: stdout {what}, exit status {ending['exit_status']}"
        elif n["kind"] == "deadlock":
            asleep = "; ".join(
                f"pid {w['pid']} {w['comm']} in {w['syscall'] or '-'}: {w['waits_for']}" for w in ending["waits"]
            )
            text = f"{ending_name(n)}: every task asleep, nothing can wake one ({asleep})"
        else:
            text = f"{ending_name(n)}: {ending['problems'][0]}"
        text += f" ({n['runs']} runs)"
        items.append(
            f'<li><button type="button" data-node="{n["id"]}"><span class="swatch" style="background:{colour(n)}">'
            f"</span>{escape(text)}</button></li>"
        )
    return "\n".join(items)


def _node_svg(n: dict) -> str:
    x, y = n["x"], n["y"]
    if n["kind"] == "start":
        shape, text, fill = f'<rect x="{x - 26}" y="{y - 14}" width="52" height="28" rx="6"/>', "start", ""
    elif n["kind"] == "state":
        shape, text, fill = f'<circle cx="{x}" cy="{y}" r="15"/>', n["id"][1:], ""
    else:
        shape = f'<rect x="{x - 40}" y="{y - 16}" width="80" height="32" rx="8"/>'
        text, fill = ending_name(n), f' style="fill:{colour(n)}"'
        shape = shape.replace("/>", f"{fill}/>")
    title = {"start": "the start", "state": f"state {n['id'][1:]}"}.get(n["kind"]) or ending_name(n)
    return (
        f'<g class="node {n["kind"]}" data-node="{n["id"]}" tabindex="0" role="button">'
        f"<title>{escape(title)}</title>{shape}"
        f'<text x="{x}" y="{y + 4}">{escape(text)}</text></g>'
    )


def _edge_svg(e: dict, at: dict[str, dict]) -> str:
    a, b = at[e["from"]], at[e["to"]]
    x1, y1, x2, y2 = a["x"], a["y"], b["x"], b["y"]
    if b["depth"] > a["depth"]:
        d = f"M{x1},{y1 + 15} L{x2},{y2 - 17}"
        lx, ly = x1 + (x2 - x1) * 0.3, y1 + 15 + (y2 - y1 - 32) * 0.3 + 4  # near its source: less overlap
    elif b["depth"] == a["depth"]:  # along a layer: an arc under it, clear of the nodes between
        sag = y1 + Y_GAP * 0.45
        d = f"M{x1},{y1 + 15} Q{(x1 + x2) / 2},{sag} {x2},{y2 + 17}"
        lx, ly = (x1 + x2) / 2, y1 + Y_GAP * 0.3
    else:  # back to a layer above: a curve out to the side
        bend = x1 + X_GAP * 0.8
        d = f"M{x1 + 15},{y1} Q{bend},{(y1 + y2) / 2} {x2 + 17},{y2}"
        lx, ly = bend - 6, (y1 + y2) / 2
    label = e["label"] if len(e["label"]) <= LABEL_CHARS else e["label"][: LABEL_CHARS - 1] + "…"
    return (
        f'<g class="edge" data-from="{e["from"]}" data-to="{e["to"]}"><title>{escape(e["title"])}</title>'
        f'<path d="{d}" marker-end="url(#arrow)"/>'
        f'<text x="{lx:.1f}" y="{ly:.1f}">{escape(label)}</text></g>'
    )


def _svg(model: dict) -> str:
    nodes = model["nodes"]
    at = {n["id"]: n for n in nodes}
    width = max(n["x"] for n in nodes) + MARGIN + X_GAP / 2
    height = max(n["y"] for n in nodes) + MARGIN
    parts = [
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="state graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
        '<g class="edges">',
        *(_edge_svg(e, at) for e in model["edges"]),
        '</g><g class="nodes">',
        *(_node_svg(n) for n in nodes),
        "</g></svg>",
    ]
    return "\n".join(parts)


def _summary(model: dict) -> str:
    state = "complete: every outcome was seen" if model["complete"] else f"NOT complete: {model['why_incomplete']}"
    kinds = defaultdict(int)
    for n in model["nodes"]:
        kinds[n["kind"]] += 1
    return (
        f"{model['runs']} runs, {model['states']} states, {kinds['outcome']} outcomes, {kinds['deadlock']} deadlocks, "
        f"{kinds['violation']} violations; {state}"
    )


def _capped(model: dict) -> str:
    drawn = model["drawn"]
    if drawn["states"] >= model["states"] and drawn["endings"] >= model["endings"]:
        return ""
    return (
        f'<p class="capped" id="capped">The search met {model["states"]} states and {model["endings"]} endings; '
        f"this page draws the first {drawn['states']} states and the {drawn['endings']} endings they lead to "
        f"(at most {MAX_NODES} states, so that a large graph does not hang the browser).</p>"
    )


def page(model: dict) -> str:
    """The self-contained page (inline style and script, nothing fetched)."""
    title = " ".join([model["program"].rsplit("/", 1)[-1].removesuffix(".py"), *model["argv"][1:]])
    data = json.dumps(model, default=str).replace("<", "\\u003c")
    return _PAGE.format(
        title=escape(title),
        css=_asset("graph.css"),
        js=_asset("graph.js"),
        summary=escape(_summary(model)),
        capped=_capped(model),
        legend=_legend(model),
        svg=_svg(model),
        data=data,
    )
