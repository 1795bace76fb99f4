"""``ukernel trace VIEW [OPTION...] FILE``: each view a subcommand with the options of the tool it
imitates (strace's ``-f -e trace= -p -tt -T -r -c -o``, pstree's ``-p -A PID``); ukernel/cli.py
adds this parser to its own. The views, their help and their options all come from VIEWS.

The one place in the trace package that reads the kernel's syscall table: to refuse a
misspelt ``-e trace=NAME`` with a suggestion, as strace refuses it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from .. import abi
from .events import load
from .views import VIEWS
from .views.strace import TRACE_CLASSES, tasks_in


class UsageError(ValueError):
    """A mistake in the command line a trace shows (a pid not in it, a syscall that does not exist)."""


# --- each option the views' ``options`` can name: its flags, argparse keywords and check ------------
def _pid(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pid") from None


#: option -> (flags, argparse keywords); the help says which views take it.
ARGUMENTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "pid": (("-p", "--pid"), {"type": _pid, "metavar": "PID", "help": "only this task"}),
    "ops": (("-e",), {"metavar": "trace=NAME,...", "help": "only these syscalls or %%classes (%%process, ...)"}),
    "syscall": (("-e",), {"metavar": "NAME", "help": "the syscall whose route to draw (exit: do_exit)"}),
    "nth": (("--nth",), {"type": int, "default": 0, "help": "which call of the syscall, from 0"}),
    "msgid": (("--msgid",), {"type": int, "help": "the syscall (or request) with this message id"}),
    "values": (("--values",), {"action": "store_true", "help": "show message args and results"}),
    "follow": (("-f",), {"action": "store_true", "help": "follow the children (and threads) it creates"}),
    "timestamps": (
        ("-t",),
        {"action": "count", "default": 0, "help": "virtual time of day: -t seconds, -tt microseconds, -ttt since boot"},
    ),
    "relative": (("-r",), {"action": "store_true", "help": "the time since the previous line"}),
    "syscall_times": (("-T",), {"action": "store_true", "help": "the time in each call, <0.001000>"}),
    "summary": (("-c",), {"action": "store_true", "help": "a table of time, calls and errors per syscall"}),
    "align": (("-a",), {"type": int, "default": 40, "metavar": "COLUMN", "help": "results at this column (0: none)"}),
    "pids": (("-p", "--show-pids", "--pids"), {"action": "store_true", "help": "label tasks name(pid), fold nothing"}),
    "ascii": (("-A", "--ascii"), {"action": "store_true", "help": "draw with ASCII characters"}),
    "root": (("root",), {"nargs": "?", "type": _pid, "metavar": "PID", "help": "the tree from this task down"}),
}

#: An option's help where a view means more by it than ARGUMENTS says: (view, option) -> help.
VIEW_HELP = {
    ("strace", "pid"): "trace this task (default: the program's first process, the task init made)",
    **{(name, "pid"): "the syscall's caller" for name in ("route", "mermaid", "html")},
}

#: What each view's own help says its options mean, beyond ARGUMENTS' help.
ABOUT = {
    "strace": "Without -p, the program's first process (the task init made), as `strace PROG` traces PROG; "
    "-f adds every task it creates. Times (-t, -tt, -ttt, -r, -T, -c) are virtual: a kernel entry "
    "charges one tick of 1/HZ s (HZ=1000), and a call lasts from its tick to its return.",
    "pstree": "The tree of creation over the whole run; PID: from that task down.",
}
ROUTES_ABOUT = (
    "Shows one syscall's messages: by --msgid, else the --nth call of the syscall named by -e (the clone "
    "family when -e is not given), of -p PID; with none of these, the program's first clone, else its "
    "first syscall that sent a message."
)


def _taking(option: str) -> str:
    """``route, mermaid, html``: the views that take an option."""
    return ", ".join(name for name, view in VIEWS.items() if option in view.options)


def add_trace_parser(sub: argparse._SubParsersAction) -> None:
    """``ukernel trace VIEW [OPTION...] FILE``: a subcommand per view of VIEWS, with its options."""
    width = max(map(len, VIEWS))
    listing = "\n".join(f"  {name:<{width}}  {view.help}" for name, view in VIEWS.items())
    p_trace = sub.add_parser(
        "trace",
        help=f"show a trace file (from run --trace) as {', '.join(VIEWS)}",
        description=f"Views of a JSON Lines trace (docs/trace.md):\n{listing}\n\n"
        "`ukernel trace VIEW --help` lists a view's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    views = p_trace.add_subparsers(dest="view", metavar="VIEW", required=True, help="one of the views above")
    for name, view in VIEWS.items():
        about = ABOUT.get(name) or (ROUTES_ABOUT if "syscall" in view.options else "")
        p_view = views.add_parser(  # no help=: the description above lists the views, unwrapped
            name,
            description=f"{view.help}.\n\n{textwrap.fill(about, 79)}".rstrip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for option in view.options:
            if option in ARGUMENTS:
                flags, keywords = ARGUMENTS[option]
                dest = {} if not flags[0].startswith("-") else {"dest": option}
                keywords = keywords | ({"help": VIEW_HELP[name, option]} if (name, option) in VIEW_HELP else {})
                p_view.add_argument(*flags, **dest, **keywords)
        p_view.add_argument("-o", metavar="FILE", dest="output", help="write to FILE instead of standard output")
        p_view.add_argument("file", metavar="FILE", help="a JSON Lines trace (ukernel run --trace), or - for stdin")
        p_view.set_defaults(func=cmd_trace)


# --- running it ----------------------------------------------------------------------------------
def cmd_trace(ns: argparse.Namespace) -> int:
    """Load, check the options against the trace, render; every mistake one line, exit 2."""
    try:
        events = load(sys.stdin) if ns.file == "-" else load(ns.file)
    except OSError as exc:
        return _fail(f"{ns.file}: {abi.errno_name(exc.errno or 0)}: {exc.strerror or exc}")
    except ValueError as exc:  # not a trace
        return _fail(str(exc))
    try:
        text = render_view(ns.view, events, ns)
    except ValueError as exc:  # a pid or syscall the trace does not have, a route that is not there
        return _fail(str(exc))
    if not getattr(ns, "output", None):
        sys.stdout.write(text)
        return 0
    try:
        with open(ns.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        return _fail(f"trace {ns.view}: -o {ns.output}: {abi.errno_name(exc.errno or 0)}: {exc.strerror}")
    return 0


def _fail(message: str) -> int:
    print(f"ukernel: {message}", file=sys.stderr)
    return 2


def render_view(view: str, events: list, ns: argparse.Namespace) -> str:
    """One view of a trace with the options it declares (VIEWS), from ``ns`` or their defaults
    (``ukernel run --trace-format`` passes run's options, which have none of them)."""
    chosen = VIEWS[view]
    given = {option: getattr(ns, option, DEFAULTS.get(option)) for option in chosen.options}
    for option, check in CHECKS.items():
        if option in given:
            given[option] = check(view, given[option], events)
    if "pid_column" in chosen.options:  # strace -f -o FILE: each line begins with its pid
        given["pid_column"] = bool(getattr(ns, "output", None) and given.get("follow"))
    return chosen.render(events, **given)


#: The value an option has when the command line did not give it.
DEFAULTS: dict[str, Any] = {"nth": 0, "timestamps": 0, "follow": False, "relative": False, "align": 40}


def _check_pid(view: str, pid: int | None, events: list) -> int | None:
    if pid is not None and pid not in tasks_in(events):
        raise UsageError(f"trace: -p {pid}: no process {pid} in this trace")
    return pid


def _check_root(view: str, pid: int | None, events: list) -> int | None:
    if pid is not None and pid not in tasks_in(events):
        raise UsageError(f"trace {view}: PID {pid}: no process {pid} in this trace")
    return pid


def syscall_names() -> set[str]:
    """Every syscall ukernel has (its table), and ``exit`` for do_exit's route."""
    from ..kernel.syscalls import SYSCALLS

    return set(SYSCALLS) | {"exit"}


def _unknown(view: str, option: str, name: str) -> UsageError:
    near = difflib.get_close_matches(name, sorted(syscall_names()), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return UsageError(f"trace {view}: {option}: no such syscall{hint}")


def _check_ops(view: str, text: str | None, events: list) -> list[str] | None:
    """strace's ``-e trace=NAME,%class,...`` (or ``-e NAME,...``): the syscalls it names, None for all."""
    if text is None:
        return None
    qualifier, _, names = text.rpartition("=")
    if qualifier not in ("", "trace", "t"):
        raise UsageError(f"trace {view}: -e {text}: ENOSYS: only -e trace=... is built (not {qualifier}=)")
    if names in ("all", "%all"):
        return None
    ops: list[str] = []
    known = syscall_names()
    for name in filter(None, names.split(",")):
        if name.startswith("%"):
            if name not in TRACE_CLASSES:
                classes = ", ".join(TRACE_CLASSES)
                raise UsageError(f"trace {view}: -e trace={name}: no such class (there are {classes})")
            ops.extend(TRACE_CLASSES[name])
        elif name in known:
            ops.append(name)
        else:
            raise _unknown(view, f"-e trace={name}", name)
    return ops


def _check_syscall(view: str, name: str | None, events: list) -> str | None:
    """-e NAME of the views that draw a route: one syscall, checked as strace checks -e."""
    if name is not None and name not in syscall_names():
        raise _unknown(view, f"-e {name}", name)
    return name


CHECKS: dict[str, Callable[[str, Any, list], Any]] = {
    "pid": _check_pid,
    "root": _check_root,
    "ops": _check_ops,
    "syscall": _check_syscall,
}
