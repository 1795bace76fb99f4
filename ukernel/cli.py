"""The ``ukernel`` command: run a program, decode clone flags into a route, or show a trace file."""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import TextIO

import trio

import services
from services import SERVICES

from . import __version__, abi, run_async
from .api import RunInterrupted
from .config import NPROC_AT_LEAST_1
from .explore.command import add_explore_parser
from .ipc.router import BootError
from .kernel import fork
from .lab.command import add_lab_parser
from .mistakes import EXIT_CODES, FILE_VIEWS, OneLineParser, Say, as_option, program_missing
from .terminal import owns, raw_mode
from .trace import ConsoleSink, JsonlSink, MemorySink, ProgressSink
from .trace.command import add_trace_parser, render_view
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
    if ns.trace_format in FILE_VIEWS and ns.trace is None:
        Say.error(
            f"--trace-format {ns.trace_format}: a file for another program: add --trace FILE (or --trace - for stdout)"
        )
        return 2
    stdin = _stdin_fd()
    keys = stdin is not None and os.isatty(stdin)  # a person types: the program has the terminal
    sinks: list = []
    collected = MemorySink()
    try:
        trace_file = _open_trace(ns.trace)
    except OSError as exc:
        Say.error(f"--trace: {ns.trace}: {abi.named(exc.errno, exc.strerror)}", exc)
        return 2
    if ns.trace_format != "jsonl":
        sinks.append(collected)  # rendered as the chosen view once the run is over
    elif trace_file:
        sinks.append(JsonlSink(trace_file))
    progress: ProgressSink | ConsoleSink | None = None  # what writes to stderr as the run goes
    if ns.verbose:
        progress = ConsoleSink(sys.stderr, colours=services.colours())  # NO_COLOR, FORCE_COLOR, a tty
        sinks.append(progress)
    elif sys.stderr.isatty() and not keys:  # never drawn over what a person types or reads
        progress = ProgressSink(sys.stderr)
        sinks.append(progress)

    on_terminal = keys and sys.stdout.isatty()

    def console(data: bytes) -> None:
        if progress is not None:  # the progress line erased, the console's lines so far written
            progress.clear()
        if on_terminal:  # the guest's ONLCR made NL into CR NL; the host terminal's own ONLCR
            data = data.replace(b"\r\n", b"\n")  # (kept on: ukernel/terminal.py) makes it again
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    settings = _settings(
        ns,
        fail=_parse_fail(ns.fail),
        restart=dict.fromkeys(ns.restart, True),
        kill_service=ns.kill_service,
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
    if settings["remote"] and not _auth_ok(settings, ns):
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
            Say.error(as_option(str(exc), ns), exc)
            return 2
        except BaseException as exc:  # Ctrl-C, SIGTERM, ~.: the run was ended cleanly; the trace file is kept
            if _broken_pipe(exc):  # stdout's reader left (--trace - | head)
                return _reader_gone()
            stop = _interruption(exc)
            if stop is None:
                raise
            Say.error(f"interrupted{f' by {stop.by}' if stop.by != 'SIGINT' else ''}", exc)
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


def _auth_ok(settings: dict, ns: argparse.Namespace) -> bool:
    """The secret, keys and --insecure that run's --remote addresses need are there (else one line)."""
    from .ipc import tcp

    try:
        tcp.Auth.load(
            {f"{name} at {url}": url for name, url in settings["remote"].items()},
            secret_file=settings.get("secret_file"),
            tls_dir=settings.get("tls"),
            tls_name=settings.get("tls_name") or "kernel",
            insecure=settings.get("insecure", False),
        )
    except (OSError, ValueError) as exc:
        line = str(exc)
        Say.error(as_option(line, ns) if line.startswith("tls: ") else f"--remote: {line}", exc)
        return False
    return True


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
def _cleared(progress: ProgressSink | ConsoleSink | None) -> Iterator[None]:
    """The progress line is cleared (the console's lines written) before ukernel's own lines
    on stderr and at the end."""
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


def _reader_gone() -> int:
    """stdout's reader left (``| head``): end as a process killed by SIGPIPE, with no second
    error when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + abi.SIGPIPE


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
    if ns.nproc is not None and ns.nproc < 1:  # (Config's 0 means its default)
        Say.error(f"--nproc: {NPROC_AT_LEAST_1}, not {ns.nproc}")
        return None
    given |= {
        "cpus": ns.cpus,
        "seed": ns.seed,
        "memory": ns.memory,
        "pid_max": ns.pid_max,
        "nproc": ns.nproc,
        "sched": ns.sched,
        "sched_settings": _parse_sched_settings(ns.sched_set),
        "tls": ns.tls,
        "tls_name": ns.tls_name,
        "insecure": True if ns.insecure else None,  # (a file's true stays)
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
        Say.error(f"--config: {exc}", exc)
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
    if ns.secret_file:
        settings["secret_file"] = ns.secret_file
    if ns.session_grace is not None:
        settings["session_grace"] = ns.session_grace
    try:
        config = Config(**settings)
        hosted = [services.build(name, config) for name in names]
        kind, where = tcp.parse_url(ns.listen)
        for url in config.remote.values():
            tcp.parse_url(url)
        server.check_hosted(hosted, config.remote)
        auth = config.auth(  # our certificate: DIR/HOST.pem for the host we listen on, unless --tls-name
            {f"listen: {ns.listen}": ns.listen} | config.remote_labels(),
            name=where[0] if kind == "tcp" else "localhost",
        )
    except (OSError, ValueError, BootError) as exc:
        Say.error(f"serve: {as_option(str(exc), ns)}", exc)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(
                    server.serve_services,
                    _session_services(hosted, names, config),
                    ns.listen,
                    auth,
                    remote=config.remote,
                    settings={name: services.settings_of(name, config) for name in names},
                    name=ns.name,
                    heartbeat=config.heartbeat if ns.heartbeat is None else ns.heartbeat,
                    timeout=config.rpc_timeout if ns.rpc_timeout is None else ns.rpc_timeout,
                    grace=config.session_grace,
                )
            )
            print(f"ukernel: serving {' '.join(names)} on {url}", file=sys.stderr, flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        refused = _serve_failure(exc)
        if refused is not None:  # the address in use, a callee down: one line, as before serving
            why = f"--listen {ns.listen}: {refused.strerror}" if isinstance(refused, OSError) else str(refused)
            Say.error(f"serve: {as_option(why, ns)}", exc)
            return 2
        if _interruption(exc) is None:
            raise
        Say.error("interrupted", exc)
        return 130
    return 0


def _serve_failure(exc: BaseException) -> BaseException | None:
    """Why ``serve`` could not start serving (alone or in trio's exception group): the listen
    address (EADDRINUSE...) or a callee's BootError; None if exc is something else."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError | BootError) else None


def _session_services(first: list, names: list[str], config: object) -> Callable[[], list]:
    """The factory of a kernel session's services for ``serve``: the ones built to check the
    settings first, then new ones built the same way (services.build)."""
    spare = [first]

    def build() -> list:
        return spare.pop() if spare else [services.build(name, config) for name in names]

    return build


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


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """The settings ``run`` and ``serve`` both take: a served service is built from them too."""
    parser.add_argument("--cpus", type=int, help="CPUs (default 1)")
    parser.add_argument("--seed", type=int, help="the seed (default 0)")
    parser.add_argument("--memory", help="RAM, e.g. 64M (the default)")
    parser.add_argument("--pid-max", type=int, help=f"pid_max (default {abi.PID_MAX_DEFAULT})")
    parser.add_argument(
        "--nproc", type=int, metavar="N", help="RLIMIT_NPROC: at most N tasks (default max_threads / 2)"
    )
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
        "--tls",
        metavar="DIR",
        help="TLS 1.3 for tcp:// with keys from `ukernel keys`: DIR/ca.pem and this end's DIR/NAME.{pem,key}",
    )
    parser.add_argument(
        "--tls-name",
        metavar="NAME",
        help="whose certificate in DIR this end shows (default: kernel for run, the --listen host for serve)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain TCP (the shared secret's handshake and MACs, not encrypted) on loopback only",
    )
    parser.add_argument(
        "--sched-set",
        action="append",
        default=[],
        metavar="NAME=TICKS",
        help="a scheduler setting: sched_latency, sched_min_granularity, sched_wakeup_granularity, "
        "sched_rr_timeslice, rr_slice",
    )


def _add_keys_parser(sub: argparse._SubParsersAction) -> None:
    """``ukernel keys init DIR`` / ``issue NAME DIR`` (ukernel/keys.py; imported only when run)."""
    p_keys = sub.add_parser(
        "keys",
        help="make a CA (init DIR) and certificates (issue NAME DIR) for --tls DIR",
        description="Keys for `serve --tls DIR` and `run --tls DIR` (docs/distributed.md): DIR/ca.pem is the CA "
        "every peer's certificate must come from, DIR/NAME.{pem,key} NAME's certificate and key. Copy ca.pem and a "
        "host's own two files to it; ca.key stays where certificates are issued.",
    )
    actions = p_keys.add_subparsers(dest="action", required=True)
    actions.add_parser("init", help="make the CA: DIR/ca.pem and DIR/ca.key").add_argument("dir", metavar="DIR")
    p_issue = actions.add_parser("issue", help="NAME's key and certificate: DIR/NAME.pem and DIR/NAME.key")
    p_issue.add_argument("name", metavar="NAME", help="a host name or address the peers dial, or kernel")
    p_issue.add_argument("dir", metavar="DIR")
    p_keys.set_defaults(func=_cmd_keys)


def _cmd_keys(ns: argparse.Namespace) -> int:
    from .keys import cmd_keys  # (cryptography loads only for this command)

    return cmd_keys(ns)


def _callees() -> str:
    """'namespaces: pid and vfs': who calls whom, for the help of ``serve``."""
    return "; ".join(f"{name}: {' and '.join(sorted(cls.calls))}" for name, cls in SERVICES.items() if cls.calls)


def main(argv: list[str] | None = None) -> int:
    """The ``ukernel`` command; any command's output may go to a reader that leaves early."""
    try:
        return _main(argv)
    except BrokenPipeError:
        return _reader_gone()


def _main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="ukernel", description="A teaching microkernel: Linux's fork path as messages.")
    parser.add_argument("--version", action="version", version=f"ukernel {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind a one-line error")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser(
        "run",
        help="run PROGRAM (a host .py file or a name under /bin) as init's child",
        usage="ukernel run [OPTION...] PROGRAM [ARG...]",
        allow_abbrev=False,  # an option is its whole name: _program_index must know where each one ends
        epilog="exit status:\n" + "\n".join(f"  {code:<6} {why}" for code, why in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_run.add_argument("program", nargs="?", help="ends ukernel's options: the words after it are the program's")
    p_run.add_argument("args", nargs="*", help="the program's arguments, options too: ukernel run head -n 3")
    p_run.add_argument("--list", action="store_true", help="list the programs under /bin, one line each")
    p_run.add_argument("--debug", action="store_true", help="show the traceback behind a one-line error")
    p_run.add_argument("-v", "--verbose", action="store_true", help="print every message, one line each, on stderr")
    p_run.add_argument("--trace", metavar="FILE", help="write the trace (JSON Lines unless --trace-format says)")
    p_run.add_argument(
        "--trace-format",
        default="jsonl",
        choices=["jsonl", *VIEWS],
        help=f"write this view of the trace instead (to FILE, or stderr without --trace; {', '.join(FILE_VIEWS)} need FILE)",
    )
    p_run.add_argument(
        "--fail", action="append", default=[], metavar="STEP=ERRNO", help="fail a clone step, e.g. copy_mm=ENOMEM"
    )
    p_run.add_argument(
        "--restart",
        action="append",
        default=[],
        metavar="SERVICE|all",
        help="restart this service if it dies, with backoff (kernel/reincarnation.py; today: pid)",
    )
    p_run.add_argument(
        "--kill-service", metavar="SERVICE@N", help="the service dies after answering its Nth request (a fault)"
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
        "TCP is TLS 1.3 with both ends authenticated (--tls DIR, keys from `ukernel keys`), or plain on "
        "loopback with --insecure; a Unix socket (and --insecure TCP) is authenticated by the shared secret, read "
        "from --secret-file or $UKERNEL_SECRET, never from the command line.",
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
    p_serve.add_argument(
        "--session-grace",
        type=float,
        metavar="SECONDS",
        help="how long a lost kernel's state (its session) waits for it to reconnect before it is reclaimed "
        "(default 30)",
    )
    p_serve.set_defaults(func=cmd_serve)
    p_flags = sub.add_parser("flags", help="decode clone flags and print the route they take")
    p_flags.add_argument("flags", help="e.g. 0x3d0f00, CLONE_VM or 'CLONE_VM|CLONE_FS|SIGCHLD'")
    p_flags.set_defaults(func=cmd_flags)
    add_trace_parser(sub)
    add_lab_parser(sub)
    _add_keys_parser(sub)
    p_explore = add_explore_parser(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    Say.debug = argv[:1] == ["--debug"]  # before the command; run takes it among its options too
    del argv[: Say.debug]
    if argv[:1] in (["run"], ["explore"]):  # their options end at the program's name
        ns = parse_run(p_run if argv[0] == "run" else p_explore, argv[1:])
        Say.debug |= getattr(ns, "debug", False)
        return ns.func(ns)
    ns = parser.parse_args(argv)
    Say.debug |= ns.debug
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
