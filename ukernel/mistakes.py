"""A user's mistakes, as ``ukernel`` tells them: one line each (``ukernel: --cpus: must be at
least 1 ...``), the traceback behind it only with --debug, and the exit statuses a shell
would give (docs/cli.md). What cli.py checks before a run boots lives here."""

from __future__ import annotations

import argparse
import difflib
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from .config import split_host_file
from .user.binfmt import userland_programs

#: ``ukernel``'s exit statuses (docs/cli.md; ``run --help`` prints them): a shell's where it has one.
EXIT_CODES = (
    ("0", "the program exited 0"),
    ("N", "the program's own exit status (exit(N), return N from main, sys.exit(N))"),
    ("1", "kernel trouble: a service's bug stopped the run, or a remote service was lost"),
    ("2", "usage: a bad option, setting, config file or --remote (one line says which)"),
    ("124", "the run hung: no task could ever run again (a deadlock; the tasks are listed)"),
    ("126", "the program was found but does not load (a syntax error, no async def main)"),
    ("127", "no such program"),
    ("128+N", "the program was killed by signal N (159: SIGSYS, a syscall never awaited)"),
    ("130", "interrupted: Ctrl-C (143: SIGTERM, 129: SIGHUP)"),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors (``--cpus two``, an unknown option) as one line too, and exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("ukernel").strip()
        Say.error(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """Remember the innermost (sub)command that parsed, so an unknown argument is its error."""
        ns, extras = super().parse_known_args(args, namespace)
        if getattr(ns, "_parser", None) is None:
            ns._parser = self
        return ns, extras

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            ns._parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


#: Views that are documents for another program (a browser, Perfetto): they need a file.
FILE_VIEWS = ("html", "chrome", "gantt")


class Say:
    """ukernel's own one-line errors on stderr; with --debug, the traceback behind each first."""

    debug = False

    @classmethod
    def error(cls, line: str, exc: BaseException | None = None) -> None:
        if cls.debug and exc is not None:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"ukernel: {line}", file=sys.stderr)


def program_missing(program: str, settings: dict) -> str | None:
    """Why ``program`` cannot be run, before booting for it: a host .py file (or a relative path)
    that is not there, or a bare name that no program under /bin has, with the names near it."""
    if program.endswith(".py") or ("/" in program and not program.startswith("/")):
        host = Path(program)
        return None if host.is_file() else f"{program}: no such file on the host (looked for {host.resolve()})"
    on_bin = {name for name, _ in userland_programs()}
    on_bin |= {p.stem for d in settings.get("bin_dirs", []) for p in Path(d).glob("*.py")}
    guests = [split_host_file(spec)[1] for spec in settings.get("host_files", [])]
    on_bin |= {path.removeprefix("/bin/") for path in [*guests, *settings.get("files", {})] if path.startswith("/bin/")}
    name = program.removeprefix("/bin/")  # boot fills /bin from these alone
    if "/" in name:
        return None  # another guest path: the kernel's ENOENT says it, if need be
    if name in on_bin:
        return None
    near = difflib.get_close_matches(name, sorted(on_bin), n=1)
    hint = f"did you mean {near[0]}?" if near else "ukernel run --list shows them"
    return f"{program}: program not found ({hint})"


#: Config's names for what the command line calls otherwise (--bin DIR is bin_dirs, ...).
OPTION_OF = {"bin_dirs": "bin", "host_files": "file", "sched_settings": "sched_set"}


def as_option(message: str, ns: argparse.Namespace) -> str:
    """'cpus: must be at least 1 ...' as '--cpus: must be ...' when the setting came from the
    command line, so the line names what the user typed (a file's own errors name the file)."""
    if message.startswith("service ") and ns.service:  # 'service pid=x.py:C: ...' (services.replacement)
        return f"--service: {message.removeprefix('service ')}"
    name, sep, rest = message.partition(": ")
    option = OPTION_OF.get(name, name)
    given = getattr(ns, option, None)
    return f"--{option.replace('_', '-')}: {rest}" if sep and given not in (None, [], {}) else message
