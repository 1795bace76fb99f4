"""The stats view: messages per service and op, page faults by kind, syscalls per pid."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from .. import Event


def _message_lines(events: list[Event]) -> list[str]:
    """Count, errors, mean and max ``dur_us`` of the replies, per (service, op)."""
    count: Counter = Counter()
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    errors: Counter = Counter()
    for e in events:
        if e["type"] in ("request", "notify"):
            count[(e.get("dst"), e["op"])] += 1
        elif e["type"] == "reply":
            key = (e.get("src"), e["op"])
            if isinstance(e.get("dur_us"), int | float):
                durations[key].append(e["dur_us"])
            if "errno" in e:
                errors[key] += 1
    lines = [
        "messages by service and op:",
        f"  {'service':<11}{'op':<24}{'count':>6}{'errors':>7}{'mean_us':>9}{'max_us':>8}",
    ]
    for (service, op), n in sorted(count.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        d = durations.get((service, op), [])
        mean = f"{sum(d) / len(d):.0f}" if d else "-"
        top = f"{max(d)}" if d else "-"
        lines.append(f"  {service!s:<11}{op:<24}{n:>6}{errors[(service, op)]:>7}{mean:>9}{top:>8}")
    lines.append(f"  {'total':<35}{sum(count.values()):>6}{sum(errors.values()):>7}")
    return lines


def _fault_lines(events: list[Event]) -> list[str]:
    """Page faults per kind (zero-fill, cow-copy, ...), and how many each pid took."""
    count: Counter = Counter()
    by_pid: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        if e["type"] == "fault":
            count[str(e.get("kind"))] += 1
            by_pid[str(e.get("kind"))][e.get("pid")] += 1
    lines = ["page faults by kind:", f"  {'kind':<11}{'count':>6}  by pid"]
    for kind, n in sorted(count.items(), key=lambda kv: (-kv[1], kv[0])):
        pids = ", ".join(f"{p}: {k}" for p, k in sorted(by_pid[kind].items(), key=lambda kv: str(kv[0])))
        lines.append(f"  {kind:<11}{n:>6}  {pids}")
    lines.append(f"  {'total':<11}{sum(count.values()):>6}")
    return lines


def _syscall_lines(events: list[Event]) -> list[str]:
    """Calls, errors and the ops by count, per pid."""
    calls: dict[Any, Counter] = defaultdict(Counter)
    failed: Counter = Counter()
    for e in events:
        if e["type"] == "syscall_enter":
            calls[e.get("pid")][e["op"]] += 1
        elif e["type"] == "syscall_exit" and "errno" in e:
            failed[e.get("pid")] += 1
    lines = ["syscalls by pid:", f"  {'pid':>5}{'calls':>7}{'errors':>7}  ops"]
    for p in sorted(calls, key=lambda x: (not isinstance(x, int), x if isinstance(x, int) else str(x))):
        ops = ", ".join(f"{op} {n}" for op, n in sorted(calls[p].items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  {p!s:>5}{sum(calls[p].values()):>7}{failed[p]:>7}  {ops}")
    return lines


def stats(events: Iterable[Event]) -> str:
    """Messages per service and op (count, mean and max ``dur_us`` of the replies), page
    faults by kind (and by pid), and syscalls per pid (calls, errors, the ops by count).
    ``dur_us`` is wall time."""
    events = list(events)
    sections = [*_message_lines(events), "", *_fault_lines(events), "", *_syscall_lines(events)]
    return "\n".join(sections) + "\n"
