"""The ``ukernel`` command: run a program, decode clone flags into a route, or show a trace file."""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TextIO

import trio

import services
from services import SERVICES

from . import __version__, abi, run_async
from .api import RunInterrupted
from .explore.command import add_explore_parser
from .ipc.router import BootError
from .kernel import fork
from .lab.command import add_lab_parser
from .terminal import owns, raw_mode
from .trace import ConsoleSink, JsonlSink, MemorySink, ProgressSink, load
from .trace.views import VIEWS
from .user.binfmt import userland_programs


def _parse_fail(items: list[str]) -> dict[str, str]:
    fail = {}
    for item in items:
        step, sep, err = item.partition("=")
        if not sep:
            step, sep, err = item.partition(":")
        if not sep:
            raise SystemExit(f"ukernel: --fail takes STEP=ERRNO, got {item!r}")
        fail[step] = err
    return fail


def cmd_run(ns: argparse.Namespace) -> int:
    if ns.list:
        return list_programs()
    if ns.program is None:
        print("ukernel: run: which program? (ukernel run --list shows them)", file=sys.stderr)
        return 2
    stdin = _stdin_fd()
    keys = stdin is not None and os.isatty(stdin)  # a person types: the program has the terminal
    sinks: list = []
    collected = MemorySink()
    try:
        trace_file = _open_trace(ns.trace)
    except OSError as exc:
        print(f"ukernel: --trace: {ns.trace}: {abi.errno_name(exc.errno)}: {exc.strerror}", file=sys.stderr)
        return 2
    if ns.trace_format != "jsonl":
        sinks.append(collected)  # rendered as the chosen view once the run is over
    elif trace_file:
        sinks.append(JsonlSink(trace_file))
    progress = None
    if ns.verbose:
        sinks.append(ConsoleSink(sys.stderr, colours=services.colours() if sys.stderr.isatty() else None))
    elif sys.stderr.isatty() and not keys:  # never drawn over what a person types or reads
        progress = ProgressSink(sys.stderr)
        sinks.append(progress)

    on_terminal = keys and sys.stdout.isatty()

    def console(data: bytes) -> None:
        if progress is not None:
            progress.clear()
        if on_terminal:  # the guest's ONLCR made NL into CR NL; the host terminal's own ONLCR
            data = data.replace(b"\r\n", b"\n")  # (kept on: ukernel/terminal.py) makes it again
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    settings = _settings(
        ns,
        fail=_parse_fail(ns.fail),
        cpu_limit=ns.cpu_limit,
        copy_process=ns.copy_process,
        service_timeout=ns.service_timeout,
        realtime=ns.realtime,
        schedule=ns.schedule,
    )
    if settings is None:
        return 2
    for key, given in (("bin_dirs", ns.bin), ("host_files", ns.file)):  # the file's, then these
        settings[key] = [*settings.get(key, []), *given]
    settings |= {"console": console, "sinks": tuple(sinks), "trace": False}
    if settings["remote"]:
        from .ipc import tcp

        try:
            tcp.load_secret(settings.get("secret_file"))
        except (OSError, ValueError) as exc:
            print(f"ukernel: --remote: {exc}", file=sys.stderr)
            return 2
    if stdin is not None:  # streamed as it comes (kernel/console.py), never read whole before boot
        settings |= {"terminal": stdin, "terminal_isatty": keys}
    missing = program_missing(ns.program, settings)
    if missing:
        print(f"ukernel: {missing}", file=sys.stderr)
        return 127  # as a shell says for a command it cannot find
    argv = [ns.program.rsplit("/", 1)[-1].removesuffix(".py"), *ns.args]
    with raw_mode(stdin) if keys and owns(stdin) else nullcontext(), _cleared(progress):
        try:
            result = trio.run(lambda: run_async(ns.program, argv, **settings))
        except (ValueError, BootError) as exc:
            print(f"ukernel: {as_option(str(exc), ns)}", file=sys.stderr)
            return 2
        except BaseException as exc:  # Ctrl-C, SIGTERM, ~.: the run was ended cleanly; the trace file is kept
            if _broken_pipe(exc):  # stdout's reader left (--trace - | head): as a process killed by SIGPIPE
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
                return 128 + abi.SIGPIPE
            stop = _interruption(exc)
            if stop is None:
                raise
            print(f"ukernel: interrupted{f' by {stop.by}' if stop.by != 'SIGINT' else ''}", file=sys.stderr)
            return stop.status
        finally:
            if ns.trace_format != "jsonl" and collected:
                text = render_view(ns.trace_format, list(collected), ns)
                (trace_file or sys.stderr).write(text if text.endswith("\n") else text + "\n")
            if trace_file not in (None, sys.stdout):
                trace_file.close()
    for bug in result.bugs:  # a service's bug, once, as its report (kernel/bug.py)
        print(f"ukernel: {bug}", file=sys.stderr)
    for problem in result.problems if not result.error else ():  # after a loss, the error says it all
        if problem not in result.bugs:  # an oops names itself; anything else is what the run left behind
            print(f"ukernel: {'' if problem.startswith('oops') else 'leak: '}{problem}", file=sys.stderr)
    if result.exit_code is None:
        sig = abi.WTERMSIG(result.status)
        print(f"ukernel: program killed by {abi.SIGNAL_NAMES.get(sig, sig)}", file=sys.stderr)
        return 128 + sig
    return result.exit_code


def program_missing(program: str, settings: dict) -> str | None:
    """Why ``program`` cannot be run, before booting for it: a host .py file (or a relative path)
    that is not there, or a bare name that no program under /bin has, with the names near it."""
    from .config import split_host_file

    if program.endswith(".py") or ("/" in program and not program.startswith("/")):
        host = Path(program)
        return None if host.is_file() else f"{program}: no such file on the host (looked for {host.resolve()})"
    if "/" in program:
        return None  # a guest path: the kernel's ENOENT says it, if need be
    on_bin = {name for name, _ in userland_programs()}
    on_bin |= {p.stem for d in settings.get("bin_dirs", []) for p in Path(d).glob("*.py")}
    guests = [split_host_file(spec)[1] for spec in settings.get("host_files", [])]
    on_bin |= {path.removeprefix("/bin/") for path in [*guests, *settings.get("files", {})] if path.startswith("/bin/")}
    if program in on_bin:
        return None
    near = difflib.get_close_matches(program, sorted(on_bin), n=1)
    hint = f"did you mean {near[0]}?" if near else "ukernel run --list shows them"
    return f"{program}: program not found ({hint})"


def as_option(message: str, ns: argparse.Namespace) -> str:
    """'cpus: must be at least 1 ...' as '--cpus: must be ...' when the setting came from the
    command line, so the line names what the user typed (a file's own errors name the file)."""
    name, sep, rest = message.partition(": ")
    given = getattr(ns, name, None)
    return f"--{name.replace('_', '-')}: {rest}" if sep and given not in (None, [], {}) else message


def list_programs() -> int:
    """``ukernel run --list``: each program under /bin with the first line of its docstring."""
    programs = {name: _summary(code) for name, code in userland_programs()}
    width = max(map(len, programs))
    for name, summary in programs.items():
        print(f"{name:<{width}}  {summary}".rstrip())
    return 0


def _summary(code: bytes) -> str:
    """A program's docstring's first line, without the 'NAME: ' it usually starts with."""
    try:
        doc = ast.get_docstring(ast.parse(code)) or ""
    except SyntaxError:
        return ""
    line = doc.split("\n", 1)[0]
    name, sep, rest = line.partition(": ")
    return rest if sep and " " not in name else line


def _open_trace(path: str | None) -> TextIO | None:
    """--trace FILE opened for writing; ``-`` is stdout, as ``ukernel trace VIEW -`` reads stdin."""
    if path is None:
        return None
    return sys.stdout if path == "-" else open(path, "w")  # noqa: SIM115 (closed by cmd_run)


def _stdin_fd() -> int | None:
    """Our stdin's fd, or None when it is closed (``ukernel run hello <&-``)."""
    if sys.stdin is None:
        return None
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (OSError, ValueError):
        return None
    return fd


@contextmanager
def _cleared(progress: ProgressSink | None) -> Iterator[None]:
    """The progress line is cleared before ukernel's own lines on stderr and at the end."""
    if progress is None:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)  # in place of logging's last resort, to clear first
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: progress.clear() or True)
    logger = logging.getLogger("ukernel")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        progress.clear()


def _broken_pipe(exc: BaseException) -> bool:
    """True if exc is, or trio's exception group holds, a BrokenPipeError."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(BrokenPipeError) is not None
    return isinstance(exc, BrokenPipeError)


def _interruption(exc: BaseException) -> RunInterrupted | None:
    """What ended the run from outside (RunInterrupted; a bare KeyboardInterrupt, alone or in
    trio's exception group, as Ctrl-C), or None if exc is something else."""
    if isinstance(exc, BaseExceptionGroup):
        group = exc.subgroup(KeyboardInterrupt)
        return None if group is None else _interruption(group.exceptions[0])
    if isinstance(exc, RunInterrupted):
        return exc
    return RunInterrupted("SIGINT") if isinstance(exc, KeyboardInterrupt) else None


def _parse_sched_settings(items: list[str]) -> dict[str, int]:
    settings = {}
    for item in items:
        name, sep, ticks = item.partition("=")
        if not sep or not ticks.isdigit():
            raise SystemExit(f"ukernel: --sched-set takes NAME=TICKS, e.g. sched_latency=12, got {item!r}")
        settings[name] = int(ticks)
    return settings


def _settings(ns: argparse.Namespace, **given: object) -> dict | None:
    """The settings of ``run`` or ``serve``: --config FILE's, then the options given here,
    which win (None after printing why the file cannot be used)."""
    settings = _settings_from_file(ns.config)
    if settings is None:
        return None
    given |= {
        "cpus": ns.cpus,
        "seed": ns.seed,
        "memory": ns.memory,
        "pid_max": ns.pid_max,
        "sched": ns.sched,
        "sched_settings": _parse_sched_settings(ns.sched_set),
    }
    settings |= {k: v for k, v in given.items() if v not in (None, {}, [])}
    settings["remote"] = settings.get("remote", {}) | _parse_remote(ns.remote)
    settings["services"] = settings.get("services", {}) | _parse_services(ns.service)
    return settings


def _parse_services(items: list[str]) -> dict[str, str]:
    """--service SLOT=SPEC...; Config loads each SPEC and checks it against the built-in."""
    replacements = {}
    for item in items:
        slot, sep, spec = item.partition("=")
        if not sep:
            raise SystemExit(
                f"ukernel: --service takes SLOT=FILE.py:Class or SLOT=module:Class, SLOT one of {' '.join(SERVICES)}, "
                f"got {item!r}"
            )
        replacements[slot] = spec
    return replacements


def _settings_from_file(path: str | None) -> dict | None:
    """--config FILE's settings (None after printing why it cannot be used)."""
    if path is None:
        return {}
    from .config import load_config

    try:
        return load_config(path)
    except (OSError, ValueError) as exc:
        print(f"ukernel: --config: {exc}", file=sys.stderr)
        return None


def _parse_remote(items: list[str]) -> dict[str, str]:
    """--remote NAME=URL...; Config refuses a NAME that is no service."""
    remote = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep:
            raise SystemExit(f"ukernel: --remote takes NAME=URL with NAME one of {' '.join(SERVICES)}, got {item!r}")
        remote[name] = url
    return remote


def cmd_serve(ns: argparse.Namespace) -> int:
    """Host services for a kernel in another process (ukernel run --remote NAME=URL), each
    built from the settings given here as ``run`` builds its own (services.build)."""
    from .config import Config
    from .ipc import node as server
    from .ipc import tcp

    settings = _settings(ns)
    if settings is None:
        return 2
    names = list(dict.fromkeys(ns.services))
    try:
        config = Config(**settings)
        hosted = [services.build(name, config) for name in names]
        secret = tcp.load_secret(ns.secret_file or config.secret_file)
        tcp.parse_url(ns.listen)
        for url in config.remote.values():
            tcp.parse_url(url)
        server.check_hosted(hosted, config.remote)
    except (OSError, ValueError, BootError) as exc:
        print(f"ukernel: serve: {as_option(str(exc), ns)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(
                    server.serve_services,
                    hosted,
                    ns.listen,
                    secret,
                    remote=config.remote,
                    settings={name: services.settings_of(name, config) for name in names},
                    name=ns.name,
                    heartbeat=config.heartbeat if ns.heartbeat is None else ns.heartbeat,
                    timeout=config.rpc_timeout if ns.rpc_timeout is None else ns.rpc_timeout,
                )
            )
            print(f"ukernel: serving {' '.join(names)} on {url}", file=sys.stderr, flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        if _interruption(exc) is None:
            raise
        print("ukernel: interrupted", file=sys.stderr)
        return 130
    return 0


def parse_clone_flags(text: str) -> int:
    """'CLONE_VM|CLONE_FS|SIGCHLD', '0x3d0f00' or a mix: what C's ``|`` of those names gives;
    ValueError naming the word that is neither a flag, a signal nor a number."""
    names = {name: bit for bit, name in abi.CLONE_FLAG_NAMES.items()}
    names |= {name: sig for sig, name in abi.SIGNAL_NAMES.items()}  # the exit signal, in the low byte
    flags = 0
    for word in (part.strip() for part in text.split("|")):
        if word.upper() in names:
            flags |= names[word.upper()]
            continue
        try:
            flags |= int(word, 0)
        except ValueError:
            raise ValueError(f"{word!r} is no clone flag (CLONE_VM, ...), signal (SIGCHLD) or number (0x100)") from None
    return flags


def cmd_flags(ns: argparse.Namespace) -> int:
    try:
        flags = parse_clone_flags(ns.flags)
    except ValueError as exc:
        print(f"ukernel: flags: {exc}", file=sys.stderr)
        return 2
    print(f"flags {flags:#x} = {'|'.join(abi.decode_clone_flags(flags)) or '0'}")
    try:
        fork.validate_flags(flags & ~abi.CSIGNAL)
    except OSError as exc:
        print(f"clone would fail before any message: {abi.errno_name(exc.errno)} ({exc.strerror})")
        return 1
    print("route of copy_process:")
    for service, op, why in fork.route(flags & ~abi.CSIGNAL):
        print(f"  kernel -> {service:<10} {op:<16} {why or ''}".rstrip())
    return 0


def cmd_trace(ns: argparse.Namespace) -> int:
    try:
        events = load(sys.stdin) if ns.file == "-" else load(ns.file)
        text = render_view(ns.view, events, ns)
    except OSError as exc:
        print(f"ukernel: {ns.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # not a trace (load), or a bad option for the view
        print(f"ukernel: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def render_view(view: str, events: list, ns: argparse.Namespace) -> str:
    """One view of a trace, with the options of ``ukernel trace`` it takes (VIEWS says which), or their defaults."""
    ops = [op for op in (getattr(ns, "ops", None) or "").split(",") if op] or None
    given = {
        "pid": getattr(ns, "pid", None),
        "ops": ops,
        "syscall": ops[0] if ops else None,  # route, mermaid, html: -e names the syscall whose route to show
        "nth": getattr(ns, "nth", 0),
        "msgid": getattr(ns, "msgid", None),
        "values": getattr(ns, "values", False),
        "pids": getattr(ns, "pids", False),
        "ascii": getattr(ns, "ascii", False),
    }
    chosen = VIEWS[view]
    return chosen.render(events, **{option: given[option] for option in chosen.options})


def _taking(option: str) -> str:
    """``route, mermaid, html``: the views that take an option, for its help."""
    return ", ".join(name for name, view in VIEWS.items() if option in view.options)


def _add_trace_parser(sub: argparse._SubParsersAction) -> None:
    """``ukernel trace VIEW FILE``: its views, their help and options all come from VIEWS."""
    width = max(map(len, VIEWS))
    listing = "\n".join(f"  {name:<{width}}  {view.help}" for name, view in VIEWS.items())
    routes = _taking("syscall")
    about = (
        f"{routes} show one syscall's messages: by --msgid, else the --nth call of the syscall named by -e "
        "(the clone family when -e is not given), of -p PID; with none of these, the program's first clone, "
        "else its first syscall that sent a message."
    )
    p_trace = sub.add_parser(
        "trace",
        help=f"show a trace file (from run --trace) as {', '.join(VIEWS)}",
        description=f"Views of a JSON Lines trace (docs/trace.md):\n{listing}\n\n{textwrap.fill(about, 79)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_trace.add_argument("view", choices=list(VIEWS), metavar="VIEW", help="one of the views above")
    p_trace.add_argument("file", help="a JSON Lines trace, or - for stdin")
    p_trace.add_argument("-p", "--pid", type=int, help=f"only this pid ({_taking('ops')}), or the caller ({routes})")
    p_trace.add_argument(
        "-e",
        "--ops",
        metavar="OP,OP",
        help=f"{_taking('ops')}: only these syscalls; {routes}: the syscall (exit: do_exit)",
    )
    p_trace.add_argument("--nth", type=int, default=0, help=f"{_taking('nth')}: which call of the syscall (from 0)")
    p_trace.add_argument("--msgid", type=int, help=f"{_taking('msgid')}: the syscall (or request) with this message id")
    p_trace.add_argument("--values", action="store_true", help=f"{_taking('values')}: show message args and results")
    p_trace.add_argument("--pids", action="store_true", help=f"{_taking('pids')}: label tasks name(pid), fold nothing")
    p_trace.add_argument("--ascii", action="store_true", help=f"{_taking('ascii')}: draw with ASCII, like pstree -A")
    p_trace.set_defaults(func=cmd_trace)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """The settings ``run`` and ``serve`` both take: a served service is built from them too."""
    parser.add_argument("--cpus", type=int, help="CPUs (default 1)")
    parser.add_argument("--seed", type=int, help="the seed (default 0)")
    parser.add_argument("--memory", help="RAM, e.g. 64M (the default)")
    parser.add_argument("--pid-max", type=int, help=f"pid_max (default {abi.PID_MAX_DEFAULT})")
    parser.add_argument(
        "--config", metavar="FILE.toml", help="settings from a TOML file ([remote], cpus, ...); options here win"
    )
    parser.add_argument(
        "--sched",
        metavar="CLASS",
        help="class of SCHED_OTHER tasks: rr (default), cfs, path/to/file.py:Class or package.module:Class",
    )
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="SLOT=SPEC",
        help="run your own class for a service: pid=student/pid.py:MyPid (or package.module:Class); "
        "it must take every op of the built-in one",
    )
    parser.add_argument(
        "--sched-set",
        action="append",
        default=[],
        metavar="NAME=TICKS",
        help="a scheduler setting: sched_latency, sched_min_granularity, sched_wakeup_granularity, "
        "sched_rr_timeslice, rr_slice",
    )


def _callees() -> str:
    """'namespaces: pid and vfs': who calls whom, for the help of ``serve``."""
    return "; ".join(f"{name}: {' and '.join(sorted(cls.calls))}" for name, cls in SERVICES.items() if cls.calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ukernel", description="A teaching microkernel: Linux's fork path as messages."
    )
    parser.add_argument("--version", action="version", version=f"ukernel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser(
        "run",
        help="run PROGRAM (a host .py file or a name under /bin) as init's child",
        usage="ukernel run [OPTION...] PROGRAM [ARG...]",
        allow_abbrev=False,  # an option is its whole name: _program_index must know where each one ends
    )
    p_run.add_argument("program", nargs="?", help="ends ukernel's options: the words after it are the program's")
    p_run.add_argument("args", nargs="*", help="the program's arguments, options too: ukernel run head -n 3")
    p_run.add_argument("--list", action="store_true", help="list the programs under /bin, one line each")
    p_run.add_argument("-v", "--verbose", action="store_true", help="print every message, one line each, on stderr")
    p_run.add_argument("--trace", metavar="FILE", help="write the trace (JSON Lines unless --trace-format says)")
    p_run.add_argument(
        "--trace-format",
        default="jsonl",
        choices=["jsonl", *VIEWS],
        help="write this view of the trace instead (to FILE, or stderr without --trace)",
    )
    p_run.add_argument(
        "--fail", action="append", default=[], metavar="STEP=ERRNO", help="fail a clone step, e.g. copy_mm=ENOMEM"
    )
    _add_settings(p_run)
    p_run.add_argument(
        "--cpu-limit",
        type=float,
        metavar="SECONDS",
        help="host CPU seconds a task may run Python without a syscall before SIGXCPU (default 10; 0: no limit)",
    )
    p_run.add_argument(
        "--service-timeout",
        type=float,
        metavar="SECONDS",
        help="wall seconds a service's handler may take to answer before the run stops with its stack "
        "(default 0: no limit; labs set it)",
    )
    p_run.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        help="while every task sleeps or waits for input, virtual time follows the wall clock, so sleep 5 "
        "takes 5 s (default: on at a terminal; off, the clock jumps to the next timer)",
    )
    p_run.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="use service NAME served elsewhere (ukernel serve), e.g. mm=tcp://127.0.0.1:7001; secret: $UKERNEL_SECRET",
    )
    p_run.add_argument(
        "--bin", action="append", default=[], metavar="DIR", help="copy every DIR/*.py into /bin as /bin/NAME"
    )
    p_run.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="HOST[:GUEST]",
        help="copy a host file in, to GUEST (default: /bin/NAME for a .py file, else /NAME)",
    )
    p_run.add_argument(
        "--copy-process", metavar="SPEC", help="walk copy_process with your CopyProcess subclass: file.py:Class"
    )
    p_run.add_argument(
        "--schedule", metavar="FILE|LIST", help="replay a choice list (0,1,1 or a file), as ukernel explore prints"
    )
    p_run.set_defaults(func=cmd_run)
    p_serve = sub.add_parser(
        "serve",
        help="serve services to kernels in other processes (MessagePack-RPC over TCP or a Unix socket)",
        description="Host SERVICE... for `ukernel run --remote NAME=URL`, built with the settings given here "
        "(the options and --config FILE of `ukernel run`); a kernel whose settings differ refuses it. "
        f"A service's callees ({_callees()}) must be served by the same process or named with --remote "
        "NAME=URL. Listens on loopback unless told otherwise. "
        "The shared secret is read from --secret-file or $UKERNEL_SECRET, never from the command line.",
    )
    p_serve.add_argument("services", nargs="+", metavar="SERVICE", choices=SERVICES, help=" ".join(SERVICES))
    _add_settings(p_serve)
    p_serve.add_argument("--listen", default="tcp://127.0.0.1:7001", help="tcp://HOST:PORT or unix:/PATH")
    p_serve.add_argument("--secret-file", metavar="PATH", help="the shared secret (default: $UKERNEL_SECRET)")
    p_serve.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a callee of a served service that another node serves, e.g. mm=tcp://127.0.0.1:7002",
    )
    p_serve.add_argument("--name", help="this node's name in traces (default: the address it listens on)")
    p_serve.add_argument("--heartbeat", type=float, help="seconds between pings to --remote callees (default 1)")
    p_serve.add_argument(
        "--rpc-timeout", type=float, help="seconds of silence after which a --remote callee is lost (default 5)"
    )
    p_serve.set_defaults(func=cmd_serve)
    p_flags = sub.add_parser("flags", help="decode clone flags and print the route they take")
    p_flags.add_argument("flags", help="e.g. 0x3d0f00, CLONE_VM or 'CLONE_VM|CLONE_FS|SIGCHLD'")
    p_flags.set_defaults(func=cmd_flags)
    _add_trace_parser(sub)
    add_lab_parser(sub)
    p_explore = add_explore_parser(sub)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return cmd_run(parse_run(p_run, argv[1:]))
    if argv[:1] == ["explore"]:
        return p_explore.get_default("func")(parse_run(p_explore, argv[1:]))
    ns = parser.parse_args(argv)
    return ns.func(ns)


def parse_run(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``run``'s options end at the program's name, as strace's, ``docker run``'s and env's do:
    ``ukernel run --trace f sh -c "echo hi"`` gives sh ``-c "echo hi"``. A ``--`` ends them too."""
    at = _program_index(parser, argv)
    ns = parser.parse_args(argv[:at])
    ns.program, ns.args = (argv[at], argv[at + 1 :]) if at < len(argv) else (None, [])
    return ns


def _program_index(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Where the program's name is in ``run``'s argv (len(argv) if there is none); a ``--``
    before it is dropped. An option's value (``--trace f``) is never taken for the name."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            del argv[i]
            return i
        if not word.startswith("-") or word == "-":
            return i
        action = parser._option_string_actions.get(word)  # --opt=value and unknown options take no next word
        i += 2 if action is not None and action.nargs != 0 else 1
    return i


if __name__ == "__main__":
    sys.exit(main())
