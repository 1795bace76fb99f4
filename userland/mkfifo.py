"""mkfifo NAME...: make named pipes (mknod with S_IFIFO).

Opening one for reading waits for a writer, and for writing waits for a reader
(try: mkfifo /tmp/p; cat /tmp/p & echo hi > /tmp/p).
"""

from userland.lib.fs import complain, strerror


async def main(sys, argv):
    if len(argv) < 2:
        await complain(sys, "mkfifo", "missing operand")
        return 1
    status = 0
    for path in argv[1:]:
        try:
            await sys.mkfifo(path)
        except OSError as exc:
            await complain(sys, "mkfifo", f"cannot create fifo '{path}': {strerror(exc)}")
            status = 1
    return status
