"""echo [-n] ARGS...: write the arguments, separated by blanks, then a newline (not with -n)."""

from userland.lib.fs import write_all


async def main(sys, argv):
    args = argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    await write_all(sys, 1, " ".join(args) + ("\n" if newline else ""))
    return 0
