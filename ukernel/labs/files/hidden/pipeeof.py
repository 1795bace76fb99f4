"""pipeeof: a reader child sees EOF only once every copy of the pipe's write end is
closed: its own, the parent's, and the writer child's (closed by its exit)."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def writer(sys, ends):
    await sys.write(ends[1], b"hello")
    return 0  # exit closes the write end: put_files, then fput


async def reader(sys, ends):
    r, w = ends
    await sys.close(w)
    got = b""
    while chunk := await sys.read(r, 64):
        got += chunk
    await say(sys, f"reader got {got!r}, then EOF")
    return 0


async def main(sys, argv):
    ends = await sys.pipe()
    pids = [await sys.clone(abi.SIGCHLD, fn, ends) for fn in (writer, reader)]
    for fd in ends:
        await sys.close(fd)
    for pid in pids:
        await sys.waitpid(pid, 0)
    await say(sys, "both reaped")
    return 0
