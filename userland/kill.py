"""kill [-SIG | -s SIG] PID... | kill -l: send a signal (TERM by default) with kill(2).

SIG is a name (TERM, SIGTERM, term) or a number (15). A negative PID names a
process group, and 0 the caller's own group, as in kill(2); write such a PID
after ``--`` (``kill -- -5``) so it is not taken for a signal. ``kill -l``
lists the signals.
"""

from ukernel.abi import SIGNAL_NAMES, valid_signal
from userland.lib.fs import complain, strerror, write_all

NUMBERS = {name.removeprefix("SIG"): number for number, name in SIGNAL_NAMES.items()}


def parse_signal(text):
    """'TERM', 'SIGTERM', 'term' or '15' -> 15; None when it is no signal."""
    if text.isdigit():
        return int(text) if valid_signal(int(text)) else None
    return NUMBERS.get(text.upper().removeprefix("SIG"))


async def main(sys, argv):
    args = argv[1:]
    if args[:1] == ["-l"]:
        names = [f"{number:>2}) SIG{name}" for name, number in sorted(NUMBERS.items(), key=lambda kv: kv[1])]
        await write_all(sys, 1, "\n".join(names) + "\n")
        return 0
    spec = "TERM"
    if args[:1] == ["-s"] and len(args) > 1:
        spec, args = args[1], args[2:]
    elif args and args[0].startswith("-") and args[0] != "--" and len(args[0]) > 1:
        spec, args = args[0][1:], args[1:]  # the first '-' word is the signal (-9, -TERM)
    sig = parse_signal(spec)
    if sig is None:
        await complain(sys, "kill", f"{spec}: invalid signal specification")
        return 1
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        await complain(sys, "kill", "usage: kill [-SIG | -s SIG] PID... | kill -l")
        return 1
    status = 0
    for arg in args:
        try:
            pid = int(arg)
        except ValueError:
            await complain(sys, "kill", f"{arg}: arguments must be process ids")
            status = 1
            continue
        try:
            await sys.kill(pid, sig)
        except OSError as exc:
            await complain(sys, "kill", f"({pid}) - {strerror(exc)}")
            status = 1
    return status
