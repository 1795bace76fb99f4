"""cat [FILE...]: copy each FILE (or stdin, with no FILE or '-') to stdout.

The loop is read(2) until it returns b"" (end of file), write(2) each chunk.
A pipe's read end blocks until a writer writes, and gives b"" only once every
writer has closed its end: that is how ``ls | cat`` knows when to stop.
"""

from userland.lib.fs import BLOCK, complain, strerror, write_all


async def copy(sys, fd):
    while chunk := await sys.read(fd, BLOCK):
        await write_all(sys, 1, chunk)


async def main(sys, argv):
    status = 0
    for name in argv[1:] or ["-"]:
        if name == "-":
            await copy(sys, 0)
            continue
        try:
            fd = await sys.open(name)
        except OSError as exc:
            await complain(sys, "cat", f"{name}: {strerror(exc)}")
            status = 1
            continue
        try:
            await copy(sys, fd)
        except OSError as exc:  # EISDIR: a directory is opened fine but cannot be read
            await complain(sys, "cat", f"{name}: {strerror(exc)}")
            status = 1
        await sys.close(fd)
    return status
