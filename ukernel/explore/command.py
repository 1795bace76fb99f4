"""``ukernel explore [OPTION...] PROGRAM [ARG...] [EXPLORE-OPTION...]``: every interleaving of a
program, from the shell; ukernel/cli.py adds this parser to its own. Settings end at the program,
as run's do; explore's own options may also follow the program's arguments (the issue's usage,
``ukernel explore forkbuf 2 --jobs 2``): from the first of them on, the words are explore's. A
``--`` after the program gives it every later word, option-like or not.

A progress line on a terminal while it runs; at the end a summary table of the
outcomes, deadlocks (with who waits for what) and violations, each with the
choice list that replays it (``ukernel run --schedule LIST PROGRAM``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import TextIO

from .outcome import Exploration
from .search import STRATEGIES

PROGRESS_EVERY = 0.2  # seconds between redraws of the progress line


def add_explore_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``explore`` subcommand (cli.py parses its argv with parse_run: options end at PROGRAM)."""
    from ..cli import _add_settings

    p = sub.add_parser(
        "explore",
        help="run PROGRAM under every schedule: its distinct outcomes, deadlocks and their wait-for graph",
        usage="ukernel explore [OPTION...] PROGRAM [ARG...] [EXPLORE-OPTION...]",
        allow_abbrev=False,
        description="Walk the choice tree of PROGRAM (which task runs at each syscall entry and each CPU "
        "hand-over, docs/explore.md) with state caching; every outcome comes with a choice list that "
        "`ukernel run --schedule LIST PROGRAM` replays.",
    )
    p.add_argument("program", nargs="?", help="ends ukernel's options: the words after it are the program's")
    p.add_argument("args", nargs="*", help="the program's arguments (after a --, every word is one)")
    _add_own_options(p)
    _add_settings(p)
    p.set_defaults(func=cmd_explore, remote=[])
    return p


def _add_own_options(p: argparse.ArgumentParser) -> None:
    """explore's own options: before the program, or after its arguments."""
    p.add_argument("--max-runs", type=int, metavar="N", help="stop after N runs (default: no bound)")
    p.add_argument("--max-depth", type=int, metavar="D", help="branch only at the first D choice points of a run")
    p.add_argument("--time-limit", type=float, metavar="S", help="stop after S seconds (default: no bound)")
    p.add_argument("--strategy", choices=STRATEGIES, default="dfs", help="dfs (default), bfs, random or pct")
    p.add_argument("--jobs", type=int, default=1, metavar="J", help="runs in J processes at once (default 1)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE (- for stdout)")
    p.add_argument("--no-reduction", action="store_true", help="no partial-order reduction (DPOR): state caching alone")
    p.add_argument("--no-cache", action="store_true", help="no state caching (with --no-reduction: every path)")
    p.add_argument("--graph", metavar="FILE", help="write the state graph as a page to FILE (docs/explore.md)")


def take_trailing_options(ns: argparse.Namespace) -> None:
    """Move explore's options written after the program's arguments from ``ns.args`` into ``ns``;
    a leading ``--`` in ``ns.args`` keeps every word the program's."""
    if ns.args[:1] == ["--"]:
        ns.args = ns.args[1:]
        return
    own = argparse.ArgumentParser(add_help=False)
    _add_own_options(own)
    names = own._option_string_actions
    at = next((i for i, w in enumerate(ns.args) if w.split("=", 1)[0] in names), len(ns.args))
    if at == len(ns.args):
        return
    from ..mistakes import OneLineParser

    trailing = OneLineParser(prog="ukernel explore", add_help=False, allow_abbrev=False)
    _add_own_options(trailing)
    words, ns.args = ns.args[at:], ns.args[:at]
    trailing.parse_args(words, namespace=ns)


def cmd_explore(ns: argparse.Namespace) -> int:
    from ..cli import _settings

    if ns.program is None:
        print("ukernel: explore: which program? (ukernel run --list shows them)", file=sys.stderr)
        return 2
    take_trailing_options(ns)
    settings = _settings(ns)
    if settings is None:
        return 2
    if not settings["remote"]:
        del settings["remote"]
    if not settings["services"]:
        del settings["services"]
    argv = [ns.program.rsplit("/", 1)[-1].removesuffix(".py"), *ns.args]
    if ns.graph is not None and not _writable(ns.graph):
        return 2
    progress = Progress(sys.stderr) if sys.stderr.isatty() else None
    from .search import explore

    try:
        result = explore(
            ns.program,
            argv,
            max_runs=ns.max_runs,
            max_depth=ns.max_depth,
            time_limit=ns.time_limit,
            strategy=ns.strategy,
            jobs=ns.jobs,
            cache=not ns.no_cache,
            reduction=not ns.no_reduction,
            progress=progress,
            graph=ns.graph,
            **settings,
        )
    except (OSError, ValueError) as exc:
        print(f"ukernel: explore: {exc.strerror if isinstance(exc, OSError) else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ukernel: explore: interrupted", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.clear()
    print(summary(result, shlex.join([ns.program, *ns.args]), replay_options(settings)))
    if ns.json:
        text = json.dumps(result.as_json(), indent=2, ensure_ascii=False)
        if ns.json == "-":
            print(text)
        else:
            with open(ns.json, "w") as out:
                out.write(text + "\n")
    return 0


class Progress:
    """The line redrawn on a terminal: runs, states, outcomes, deadlocks, runs/s."""

    def __init__(self, stream: TextIO):
        self.stream, self.last, self.drawn = stream, 0.0, False

    def __call__(self, now: Exploration) -> None:
        tick = time.perf_counter()
        if tick - self.last < PROGRESS_EVERY:
            return
        self.last, self.drawn = tick, True
        rate = now.runs / now.seconds if now.seconds else 0.0
        line = (
            f"explore: {now.runs} runs, {now.states} states, {len(now.outcomes)} outcomes, "
            f"{len(now.deadlocks)} deadlocks, {rate:.0f} runs/s"
        )
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _writable(path: str) -> bool:
    """Whether the page can be written, said before the search rather than after it."""
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        print(f"ukernel: explore: --graph {path}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def schedule_text(schedule: list[int]) -> str:
    return ",".join(map(str, schedule)) or "-"


#: The run settings a choice list depends on, with their defaults: the replay hint names those that differ.
REPLAY_SETTINGS = {"cpus": 1, "seed": 0}


def replay_options(settings: dict) -> str:
    """The ``ukernel run`` options a schedule replays under, besides the program."""
    return "".join(
        f"--{name} {settings[name]} "
        for name, default in REPLAY_SETTINGS.items()
        if settings.get(name, default) != default
    )


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary(result: Exploration, program: str, options: str = "") -> str:
    """The table printed at the end; ``program``: the command line as the shell takes it (with
    its arguments, which the schedule is for); ``options``: what ``ukernel run`` needs to replay a row."""
    state = "complete: every outcome was seen" if result.complete else f"NOT complete: {result.why_incomplete}"
    how = f" ({result.method})" if result.method else ""
    forks = f", {_n(result.forks, 'fork')} ({_n(result.replays, 'replay')} of {_n(result.replayed, 'step')})"
    forks = forks if result.forks else ""
    lines = [
        f"explore {program}: {result.runs} runs, {result.states} states{forks} in {result.seconds:.1f} s{how}; {state}"
    ]
    lines.append(f"{len(result.outcomes)} outcomes:")
    lines.append(f"  {'#':>3} {'RUNS':>6} {'EXIT':>4}  OUTPUT -> SCHEDULE")
    for n, row in enumerate(result.outcomes, 1):
        shown = row.get("assertion") or repr(row["stdout"])
        lines.append(f"  {n:>3} {row['count']:>6} {row['exit_status']:>4}  {shown} -> {schedule_text(row['schedule'])}")
    if result.deadlocks:
        lines.append(f"{len(result.deadlocks)} deadlocks (every task asleep, nothing can wake one):")
        for n, row in enumerate(result.deadlocks, 1):
            lines.append(f"  {n:>3} {row['count']:>6} runs -> {schedule_text(row['schedule'])}")
            for wait in row["waits"]:
                lines.append(
                    f"        pid {wait['pid']} ({wait['comm']}) in {wait['syscall'] or '-'}: {wait['waits_for']}"
                )
    if result.violations:
        lines.append(f"{len(result.violations)} invariant violations:")
        for n, row in enumerate(result.violations, 1):
            lines.append(f"  {n:>3} {row['count']:>6} runs -> {schedule_text(row['schedule'])}: {row['problems'][0]}")
    found = result.outcomes[-1:] or result.deadlocks[-1:]
    if found:
        choices = ",".join(map(str, found[0]["schedule"])) or "0"
        lines.append(f"replay one: ukernel run {options}--schedule {choices} {program}")
    return "\n".join(lines)
