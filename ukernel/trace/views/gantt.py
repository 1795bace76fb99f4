"""The gantt view: which task each CPU ran, as an SVG chart over virtual time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from html import escape

from ... import abi
from .. import Event
from .pstree import comms

GANTT_WIDTH, GANTT_ROW, GANTT_LEFT, GANTT_RIGHT, LEGEND_ROW = 960, 28, 56, 16, 16


def cpu_segments(events: Iterable[Event]) -> dict[int, list[tuple[int, int, int]]]:
    """(start tick, end tick, pid) per CPU: from each ``pick`` to the CPU's next pick or idle."""
    events = list(events)
    last = max((e.get("ts", 0) for e in events), default=0)
    segments: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    running: dict[int, tuple[int, int]] = {}  # cpu -> (since, pid)
    for e in events:
        if e["type"] != "sched" or e["op"] not in ("pick", "idle"):
            continue
        cpu = e.get("cpu", 0)
        if cpu in running:
            since, pid = running.pop(cpu)
            segments[cpu].append((since, e["ts"], pid))
        if e["op"] == "pick":
            running[cpu] = (e["ts"], e.get("pid"))
    for cpu, (since, pid) in running.items():
        segments[cpu].append((since, last, pid))
    return {cpu: [s for s in segments[cpu] if s[1] > s[0]] for cpu in sorted(segments)}


def _colour(pid: object) -> str:
    """A task's colour, the same in its bars and in the legend."""
    return f"hsl({(int(pid or 0) * 67) % 360},60%,70%)" if isinstance(pid, int) else "hsl(0,0%,80%)"


def _legend(pids: list, names: dict[int, str], y: int) -> tuple[list[str], int]:
    """A swatch and ``pid 2 sh`` per task, in rows that fit the width, and the last row's y
    (swatches are paths: a rect is a bar)."""
    out, x = [f'<text x="4" y="{y + 10}">tasks</text>'], GANTT_LEFT
    for pid in pids:
        label = f"pid {pid} {names.get(pid, '')}".rstrip()
        width = 14 + 7 * len(label) + 12
        if x + width > GANTT_WIDTH - GANTT_RIGHT and x > GANTT_LEFT:
            x, y = GANTT_LEFT, y + LEGEND_ROW
        out.append(f'<path d="M{x} {y + 1}h10v10h-10z" fill="{_colour(pid)}" stroke="#333" stroke-width="0.3"/>')
        out.append(f'<text x="{x + 14}" y="{y + 10}">{escape(label)}</text>')
        x += width
    return out, y


def gantt(events: Iterable[Event]) -> str:
    """The run as an SVG Gantt chart: a row per CPU, a bar per stretch a task ran, an axis in
    virtual ticks (1 tick = 1/HZ s), and a legend of the tasks' colours."""
    events = list(events)
    rows = cpu_segments(events)
    end = max((s[1] for segs in rows.values() for s in segs), default=1) or 1
    scale = (GANTT_WIDTH - GANTT_LEFT - GANTT_RIGHT) / end
    body = []
    for row, (cpu, segs) in enumerate(rows.items()):
        y = 4 + row * GANTT_ROW
        body.append(f'<text x="4" y="{y + 17}">cpu{cpu}</text>')
        for start, stop, pid in segs:
            x, w = GANTT_LEFT + start * scale, max((stop - start) * scale, 0.5)
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{GANTT_ROW - 6}" '
                f'fill="{_colour(pid)}" stroke="#333" stroke-width="0.3">'
                f"<title>pid {escape(str(pid))}: ticks {start}-{stop}</title></rect>"
            )
            if w > 8 * len(str(pid)) + 4:
                body.append(f'<text x="{x + 2:.1f}" y="{y + 15}">{escape(str(pid))}</text>')
    axis_y = 4 + len(rows) * GANTT_ROW + 12
    for k in range(11):
        tick = round(end * k / 10)
        anchor = "start" if k == 0 else "end" if k == 10 else "middle"  # the ends stay inside the chart
        body.append(f'<text x="{GANTT_LEFT + tick * scale:.1f}" y="{axis_y}" text-anchor="{anchor}">{tick}</text>')
    unit = f"virtual time in ticks (1 tick = {1000 // abi.HZ} ms, one per kernel entry)"
    body.append(f'<text x="{GANTT_WIDTH - GANTT_RIGHT}" y="{axis_y + 14}" text-anchor="end">{unit}</text>')
    pids = sorted({s[2] for segs in rows.values() for s in segs}, key=lambda p: (not isinstance(p, int), p or 0))
    legend, last = _legend(pids, comms(events), axis_y + 24)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{GANTT_WIDTH}" height="{last + LEGEND_ROW + 4}" '
        f'font-family="monospace" font-size="11">',
        f"<title>ukernel: CPU timeline, {end} ticks of virtual time</title>",
    ]
    return "\n".join([*head, *body, *legend, "</svg>"]) + "\n"
