"""Views of a trace: pure functions from a list of events to text, one module each.

Every view reads the events ``ukernel.run(...).trace`` returns, or the same
events read back with ``ukernel.trace.load(path)`` from ``ukernel run --trace``
(the schema is docs/trace.md). None of them prints ``ts``-independent wall
time except ``stats``: ``dur_us`` is real time, so the other views leave it out
and are the same on every run of a deterministic program (``chrome`` and
``html`` keep it, with args and results, in the details a click shows; their
timeline and layout do not depend on it).

``VIEWS`` names them all, with their line of help and the options they take;
``ukernel trace`` and ``ukernel run --trace-format`` are made from it. The
strace-style formatting they share is in format.py, and the routes that route,
mermaid and html draw are chosen by ``ukernel.testing.select_route``, as tests
choose them, or by default ``default_route`` (the program's first clone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...testing import CLONE_FAMILY, Route, assert_route, select_route
from .chrome import CHROME_PID, chrome, chrome_json
from .gantt import cpu_segments, gantt
from .html import html
from .mermaid import MERMAID_KEYWORDS, mermaid, mermaid_id, mermaid_text
from .pstree import process_tree, pstree
from .route import default_route, route
from .stats import stats
from .strace import program_pid, strace, strace_command, strace_summary

__all__ = [
    "CHROME_PID",
    "CLONE_FAMILY",
    "MERMAID_KEYWORDS",
    "VIEWS",
    "Route",
    "View",
    "assert_route",
    "chrome",
    "cpu_segments",
    "default_route",
    "gantt",
    "html",
    "mermaid",
    "mermaid_id",
    "mermaid_text",
    "process_tree",
    "pstree",
    "route",
    "select_route",
    "stats",
    "strace",
    "strace_command",
    "strace_summary",
    "program_pid",
]


@dataclass(frozen=True)
class View:
    """A view as ``ukernel trace`` offers it.

    ``options`` are the keyword arguments of ``render`` that ``ukernel trace VIEW`` fills
    (ukernel/trace/command.py's ARGUMENTS gives each its flags): ``pid`` (-p), ``ops`` (-e
    trace=..., a list), ``syscall`` (-e NAME), ``nth``, ``msgid``, ``values``, strace's
    ``follow`` (-f), ``timestamps`` (-t, a count), ``relative`` (-r), ``syscall_times`` (-T),
    ``summary`` (-c), ``align`` (-a) and ``pid_column`` (-f with -o), pstree's ``pids`` (-p), ``ascii`` (-A)
    and ``root`` (PID).
    """

    render: Callable[..., str]
    help: str
    options: tuple[str, ...] = ()


#: The options of the views that draw one syscall's route.
ROUTE_OPTIONS = ("msgid", "syscall", "nth", "pid")

#: strace's options (strace_command): strace without -p traces the program's first process.
STRACE_OPTIONS = ("pid", "ops", "follow", "timestamps", "relative", "syscall_times", "summary", "align", "pid_column")

#: Every view, by name, in the order the help lists them.
VIEWS: dict[str, View] = {
    "strace": View(strace_command, "one line per syscall, as strace prints them", STRACE_OPTIONS),
    "pstree": View(pstree, "the processes and threads the run created", ("pids", "ascii", "root")),
    "route": View(route, "the messages one syscall caused, as a call tree", ROUTE_OPTIONS),
    "mermaid": View(mermaid, "one syscall's route as a Mermaid sequenceDiagram", (*ROUTE_OPTIONS, "values")),
    "stats": View(stats, "messages per service and op, page faults by kind, syscalls per pid"),
    "chrome": View(chrome_json, "the whole run as Chrome Trace Event JSON, for ui.perfetto.dev"),
    "html": View(
        html,
        "one self-contained page: every syscall clickable to draw its route, the pstree, the output",
        ROUTE_OPTIONS,
    ),
    "gantt": View(gantt, "an SVG chart of the task each CPU ran, over virtual time"),
}
