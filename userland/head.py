"""head [-n N] [FILE]: the first N lines (10 by default) of FILE, or of stdin.

It reads a block at a time and stops reading as soon as it has N lines, so
``yes | head -n 3`` ends at once: head exits, the pipe's read end closes, and
the next write of ``yes`` gets EPIPE (SIGPIPE).
"""

from userland.lib.fs import BLOCK, complain, strerror, write_all

USAGE = "usage: head [-n N] [FILE]"


def parse(argv):
    """(lines, file or None), or a usage complaint."""
    args, lines = argv[1:], 10
    if args[:1] == ["-n"] and len(args) >= 2 and args[1].isdigit():
        args, lines = args[2:], int(args[1])
    elif args[:1] and args[0].startswith("-n") and args[0][2:].isdigit():
        args, lines = args[1:], int(args[0][2:])
    if len(args) > 1 or (args and args[0].startswith("-") and args[0] != "-"):
        raise ValueError(USAGE)
    return lines, (args[0] if args and args[0] != "-" else None)


async def head(sys, fd, lines):
    """Copy until ``lines`` newlines have gone out (or the input ends)."""
    while lines:
        chunk = await sys.read(fd, BLOCK)
        if not chunk:
            return
        cut = 0
        while lines and (at := chunk.find(b"\n", cut)) >= 0:
            cut, lines = at + 1, lines - 1
        await write_all(sys, 1, chunk[:cut] if not lines else chunk)


async def main(sys, argv):
    try:
        lines, name = parse(argv)
    except ValueError as exc:
        await complain(sys, "head", str(exc))
        return 2
    try:
        fd = 0 if name is None else await sys.open(name)
    except OSError as exc:
        await complain(sys, "head", f"{name}: {strerror(exc)}")
        return 1
    try:
        await head(sys, fd, lines)
    except OSError as exc:
        await complain(sys, "head", f"{name or 'stdin'}: {strerror(exc)}")
        return 1
    return 0
