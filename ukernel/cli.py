"""The ``ukernel`` command: run a program, decode clone flags into a route, or show a trace file."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial

import trio

from . import __version__, abi, run_async
from .kernel import fork
from .trace import ConsoleSink, JsonlSink, MemorySink, ProgressSink, load


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
    sinks: list = []
    collected = MemorySink()
    trace_file = open(ns.trace, "w") if ns.trace else None  # noqa: SIM115 (closed below)
    if ns.trace_format != "jsonl":
        sinks.append(collected)  # rendered as the chosen view once the run is over
    elif trace_file:
        sinks.append(JsonlSink(trace_file))
    if ns.verbose:
        sinks.append(ConsoleSink(sys.stderr, colour=sys.stderr.isatty()))
    elif sys.stderr.isatty():
        sinks.append(ProgressSink(sys.stderr))

    def console(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    settings = _settings_from_file(ns.config)
    if settings is None:
        return 2
    given = {
        "cpus": ns.cpus,
        "seed": ns.seed,
        "memory": ns.memory,
        "fail": _parse_fail(ns.fail),
        "remote": _parse_remote(ns.remote),
        "sched": ns.sched,
        "sched_settings": _parse_sched_settings(ns.sched_set),
        "cpu_limit": ns.cpu_limit,
    }
    settings |= {k: v for k, v in given.items() if v not in (None, {}, [])}  # the command line wins
    settings["remote"] = settings.get("remote", {}) | given["remote"]
    settings |= {"console": console, "sinks": tuple(sinks), "trace": False}
    if settings["remote"]:
        from .ipc import tcp

        try:
            tcp.load_secret(settings.get("secret_file"))
        except (OSError, ValueError) as exc:
            print(f"ukernel: --remote: {exc}", file=sys.stderr)
            return 2
    if sys.stdin.isatty():
        settings["terminal"] = sys.stdin.fileno()  # console reads wait for typed lines
    else:
        settings["stdin"] = sys.stdin.buffer.read()
    try:
        result = trio.run(
            lambda: run_async(ns.program, [ns.program.rsplit("/", 1)[-1].removesuffix(".py"), *ns.args], **settings)
        )
    except ValueError as exc:
        print(f"ukernel: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # Ctrl-C: the run was ended cleanly; the trace file is kept
        if not _interrupted(exc):
            raise
        print("ukernel: interrupted", file=sys.stderr)
        return 130
    finally:
        if ns.trace_format != "jsonl" and collected:
            text = render_view(ns.trace_format, list(collected), ns)
            (trace_file or sys.stderr).write(text if text.endswith("\n") else text + "\n")
        if trace_file:
            trace_file.close()
    for problem in result.problems if not result.error else ():  # after a loss, the error says it all
        print(f"ukernel: leak: {problem}", file=sys.stderr)
    if result.exit_code is None:
        sig = abi.WTERMSIG(result.status)
        print(f"ukernel: program killed by {abi.SIGNAL_NAMES.get(sig, sig)}", file=sys.stderr)
        return 128 + sig
    return result.exit_code


def _interrupted(exc: BaseException) -> bool:
    """KeyboardInterrupt, alone or in trio's exception group: the person pressed Ctrl-C."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return isinstance(exc, KeyboardInterrupt)


def _parse_sched_settings(items: list[str]) -> dict[str, int]:
    settings = {}
    for item in items:
        name, sep, ticks = item.partition("=")
        if not sep or not ticks.isdigit():
            raise SystemExit(f"ukernel: --sched-set takes NAME=TICKS, e.g. sched_latency=12, got {item!r}")
        settings[name] = int(ticks)
    return settings


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
    remote = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or name not in SERVICE_NAMES:
            raise SystemExit(
                f"ukernel: --remote takes NAME=URL with NAME one of {' '.join(SERVICE_NAMES)}, got {item!r}"
            )
        remote[name] = url
    return remote


SERVICE_NAMES = ("mm", "vfs", "pid", "sched", "signals", "namespaces")


def cmd_serve(ns: argparse.Namespace) -> int:
    """Host services for a kernel in another process (ukernel run --remote NAME=URL)."""
    import logging

    from services.mm import MmService
    from services.namespaces import NamespacesService
    from services.pid import PidService
    from services.sched import SchedService
    from services.signals import SignalsService
    from services.vfs import VfsService

    from .ipc import node as server
    from .ipc import tcp
    from .ipc.router import BootError

    classes = {
        "mm": MmService,
        "vfs": VfsService,
        "pid": PidService,
        "sched": SchedService,
        "signals": SignalsService,
        "namespaces": NamespacesService,
    }
    unknown = [name for name in ns.services if name not in classes]
    if unknown:
        print(f"ukernel: no service {', '.join(unknown)}; services are {' '.join(SERVICE_NAMES)}", file=sys.stderr)
        return 2
    services = [classes[name]() for name in dict.fromkeys(ns.services)]
    try:
        remote = _parse_remote(ns.remote)
        secret = tcp.load_secret(ns.secret_file)
        tcp.parse_url(ns.listen)
        for url in remote.values():
            tcp.parse_url(url)
        server.check_hosted(services, remote)
    except (OSError, ValueError, BootError) as exc:
        print(f"ukernel: serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(
                    server.serve_services,
                    services,
                    ns.listen,
                    secret,
                    remote=remote,
                    name=ns.name,
                    heartbeat=ns.heartbeat,
                    timeout=ns.rpc_timeout,
                )
            )
            print(f"ukernel: serving {' '.join(s.name for s in services)} on {url}", file=sys.stderr, flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print("ukernel: interrupted", file=sys.stderr)
        return 130
    return 0


def cmd_flags(ns: argparse.Namespace) -> int:
    flags = int(ns.flags, 0)
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
    except OSError as exc:
        print(f"ukernel: {ns.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        text = render_view(ns.view, events, ns)
    except ValueError as exc:
        print(f"ukernel: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def render_view(view: str, events: list, ns: argparse.Namespace) -> str:
    """One view of a trace, with the options of ``ukernel trace`` (or their defaults)."""
    from .trace import views

    pid, nth, msgid = getattr(ns, "pid", None), getattr(ns, "nth", 0), getattr(ns, "msgid", None)
    ops = [op for op in (getattr(ns, "ops", None) or "").split(",") if op] or None
    if view == "strace":
        return views.strace(events, pid=pid, ops=ops)
    if view == "pstree":
        return views.pstree(events, pids=getattr(ns, "pids", False), ascii=getattr(ns, "ascii", False))
    if view == "stats":
        return views.stats(events)
    if view == "gantt":
        return views.gantt(events)
    if view == "chrome":  # one trace event per line
        lines = [json.dumps(e) for e in views.chrome(events)["traceEvents"]]
        return '{"traceEvents": [\n' + ",\n".join(lines) + "\n]}\n"
    # route, mermaid, html: -e names the syscall whose route to show
    pick = {"msgid": msgid, "syscall": ops[0] if ops else None, "nth": nth, "pid": pid}
    if view == "route":
        return views.route(events, **pick)
    if view == "html":
        return views.html(events, **pick)
    return views.mermaid(events, **pick, values=getattr(ns, "values", False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ukernel", description="A teaching microkernel: Linux's fork path as messages."
    )
    parser.add_argument("--version", action="version", version=f"ukernel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run PROGRAM (a host .py file or a name under /bin) as init's child")
    p_run.add_argument("program")
    p_run.add_argument("args", nargs="*", help="the program's arguments (after -- if they start with -)")
    p_run.add_argument("-v", "--verbose", action="store_true", help="print every message, one line each, on stderr")
    p_run.add_argument("--trace", metavar="FILE", help="write the trace (JSON Lines unless --trace-format says)")
    p_run.add_argument(
        "--trace-format",
        default="jsonl",
        choices=["jsonl", "strace", "pstree", "route", "mermaid", "stats", "chrome", "html", "gantt"],
        help="write this view of the trace instead (to FILE, or stderr without --trace)",
    )
    p_run.add_argument(
        "--fail", action="append", default=[], metavar="STEP=ERRNO", help="fail a clone step, e.g. copy_mm=ENOMEM"
    )
    p_run.add_argument("--cpus", type=int, help="CPUs (default 1)")
    p_run.add_argument("--seed", type=int, help="the seed (default 0)")
    p_run.add_argument("--memory", help="RAM, e.g. 64M (the default)")
    p_run.add_argument(
        "--cpu-limit",
        type=float,
        metavar="SECONDS",
        help="host CPU seconds a task may run Python without a syscall before SIGXCPU (default 10; 0: no limit)",
    )
    p_run.add_argument(
        "--config", metavar="FILE.toml", help="settings from a TOML file ([remote], cpus, ...); options here win"
    )
    p_run.add_argument(
        "--sched", metavar="CLASS", help="class of SCHED_OTHER tasks: rr (default), cfs, or package.module:Class"
    )
    p_run.add_argument(
        "--sched-set",
        action="append",
        default=[],
        metavar="NAME=TICKS",
        help="a scheduler setting: sched_latency, sched_min_granularity, sched_wakeup_granularity, "
        "sched_rr_timeslice, rr_slice",
    )
    p_run.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="use service NAME served elsewhere (ukernel serve), e.g. mm=tcp://127.0.0.1:7001; secret: $UKERNEL_SECRET",
    )
    p_run.set_defaults(func=cmd_run)
    p_serve = sub.add_parser(
        "serve",
        help="serve services to kernels in other processes (MessagePack-RPC over TCP or a Unix socket)",
        description="Host SERVICE... (constructed with defaults) for `ukernel run --remote NAME=URL`. A service's "
        "callees (vfs: mm; namespaces: pid and vfs; signals: sched) must be served by the same process or "
        "named with --remote NAME=URL. Listens on loopback unless told otherwise. "
        "The shared secret is read from --secret-file or $UKERNEL_SECRET, never from the command line.",
    )
    p_serve.add_argument("services", nargs="+", metavar="SERVICE", help=" ".join(SERVICE_NAMES))
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
    p_serve.add_argument("--heartbeat", type=float, default=1.0, help="seconds between pings to --remote callees")
    p_serve.add_argument(
        "--rpc-timeout", type=float, default=5.0, help="seconds of silence after which a --remote callee is lost"
    )
    p_serve.set_defaults(func=cmd_serve)
    p_flags = sub.add_parser("flags", help="decode clone flags and print the route they take")
    p_flags.add_argument("flags", help="e.g. 0x3d0f00")
    p_flags.set_defaults(func=cmd_flags)
    p_trace = sub.add_parser(
        "trace",
        help="show a trace file (from run --trace) as strace, pstree, route, mermaid, stats, chrome, html or gantt",
        description="Views of a JSON Lines trace (docs/trace.md). route, mermaid and html show one syscall's "
        "messages: by --msgid, else the --nth call of the syscall named by -e (default: the clone family; html: "
        "the program's first clone), of -p PID. chrome writes Chrome Trace Event JSON for ui.perfetto.dev; html "
        "a self-contained page (route diagram, pstree, syscall table).",
    )
    p_trace.add_argument("view", choices=["strace", "pstree", "route", "mermaid", "stats", "chrome", "html", "gantt"])
    p_trace.add_argument("file", help="a JSON Lines trace, or - for stdin")
    p_trace.add_argument("-p", "--pid", type=int, help="only this pid (strace), or the caller (route, mermaid, html)")
    p_trace.add_argument(
        "-e",
        "--ops",
        metavar="OP,OP",
        help="strace: only these syscalls; route, mermaid, html: the syscall (exit: do_exit)",
    )
    p_trace.add_argument("--nth", type=int, default=0, help="route, mermaid, html: which call of the syscall (from 0)")
    p_trace.add_argument(
        "--msgid", type=int, help="route, mermaid, html: the syscall (or request) with this message id"
    )
    p_trace.add_argument("--values", action="store_true", help="mermaid: show message args and results")
    p_trace.add_argument("--pids", action="store_true", help="pstree: label tasks name(pid), fold nothing")
    p_trace.add_argument("--ascii", action="store_true", help="pstree: draw with ASCII, like pstree -A")
    p_trace.set_defaults(func=cmd_trace)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # options may follow the program's arguments: ukernel run nginx 4 -v
        return cmd_run(p_run.parse_intermixed_args(argv[1:]))
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
