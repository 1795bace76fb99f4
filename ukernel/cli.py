"""The ``ukernel`` command: run a program, or decode clone flags into a route."""

from __future__ import annotations

import argparse
import sys

import trio

from . import abi, clone, run_async
from .trace import ConsoleSink, JsonlSink


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
    sinks = []
    trace_file = open(ns.trace, "w") if ns.trace else None  # noqa: SIM115 (closed below)
    if trace_file:
        sinks.append(JsonlSink(trace_file))
    if ns.verbose:
        sinks.append(ConsoleSink(sys.stderr, colour=sys.stderr.isatty()))

    def console(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    settings = {
        "cpus": ns.cpus,
        "seed": ns.seed,
        "memory": ns.memory,
        "fail": _parse_fail(ns.fail),
        "console": console,
        "sinks": tuple(sinks),
        "trace": False,
    }
    if not sys.stdin.isatty():
        settings["stdin"] = sys.stdin.buffer.read()
    try:
        result = trio.run(
            lambda: run_async(ns.program, [ns.program.rsplit("/", 1)[-1].removesuffix(".py"), *ns.args], **settings)
        )
    except ValueError as exc:
        print(f"ukernel: {exc}", file=sys.stderr)
        return 2
    finally:
        if trace_file:
            trace_file.close()
    for problem in result.problems:
        print(f"ukernel: leak: {problem}", file=sys.stderr)
    if result.exit_code is None:
        sig = abi.WTERMSIG(result.status)
        print(f"ukernel: program killed by {abi.SIGNAL_NAMES.get(sig, sig)}", file=sys.stderr)
        return 128 + sig
    return result.exit_code


def cmd_flags(ns: argparse.Namespace) -> int:
    flags = int(ns.flags, 0)
    print(f"flags {flags:#x} = {'|'.join(abi.decode_clone_flags(flags)) or '0'}")
    try:
        clone.validate_flags(flags & ~abi.CSIGNAL)
    except OSError as exc:
        print(f"clone would fail before any message: {abi.errno_name(exc.errno)} ({exc.strerror})")
        return 1
    print("route of copy_process:")
    for service, op, why in clone.route(flags & ~abi.CSIGNAL):
        print(f"  kernel -> {service:<10} {op:<16} {why or ''}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ukernel", description="A teaching microkernel: Linux's fork path as messages."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run PROGRAM (a host .py file or a name under /bin) as init's child")
    p_run.add_argument("program")
    p_run.add_argument("args", nargs="*", help="the program's arguments (after -- if they start with -)")
    p_run.add_argument("-v", "--verbose", action="store_true", help="print every message, one line each, on stderr")
    p_run.add_argument("--trace", metavar="FILE", help="write the trace as JSON Lines")
    p_run.add_argument(
        "--fail", action="append", default=[], metavar="STEP=ERRNO", help="fail a clone step, e.g. copy_mm=ENOMEM"
    )
    p_run.add_argument("--cpus", type=int, default=1)
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--memory", default="64M")
    p_run.set_defaults(func=cmd_run)
    p_flags = sub.add_parser("flags", help="decode clone flags and print the route they take")
    p_flags.add_argument("flags", help="e.g. 0x3d0f00")
    p_flags.set_defaults(func=cmd_flags)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # options may follow the program's arguments: ukernel run nginx 4 -v
        return cmd_run(p_run.parse_intermixed_args(argv[1:]))
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
