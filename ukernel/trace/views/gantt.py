"""The gantt view: which task each CPU ran, as an SVG chart over virtual time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from html import escape

from .. import Event

GANTT_WIDTH, GANTT_ROW, GANTT_LEFT = 960, 28, 56


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


def gantt(events: Iterable[Event]) -> str:
    """The run as an SVG Gantt chart: a row per CPU, a bar per stretch a task ran (x: virtual ticks)."""
    rows = cpu_segments(events)
    end = max((s[1] for segs in rows.values() for s in segs), default=1) or 1
    scale = (GANTT_WIDTH - GANTT_LEFT - 8) / end
    height = GANTT_ROW * (len(rows) + 1) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{GANTT_WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f"<title>ukernel: CPU timeline, {end} ticks</title>",
    ]
    for row, (cpu, segs) in enumerate(rows.items()):
        y = 4 + row * GANTT_ROW
        out.append(f'<text x="4" y="{y + 17}">cpu{cpu}</text>')
        for start, stop, pid in segs:
            x, w = GANTT_LEFT + start * scale, max((stop - start) * scale, 0.5)
            hue = (int(pid or 0) * 67) % 360
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{GANTT_ROW - 6}" '
                f'fill="hsl({hue},60%,70%)" stroke="#333" stroke-width="0.3">'
                f"<title>pid {escape(str(pid))}: ticks {start}-{stop}</title></rect>"
            )
            if w > 8 * len(str(pid)) + 4:
                out.append(f'<text x="{x + 2:.1f}" y="{y + 15}">{escape(str(pid))}</text>')
    axis_y = 4 + len(rows) * GANTT_ROW + 12
    for k in range(11):
        tick = round(end * k / 10)
        out.append(f'<text x="{GANTT_LEFT + tick * scale:.1f}" y="{axis_y}" text-anchor="middle">{tick}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
