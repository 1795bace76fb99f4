"""offset: parent and child share one open file description after fork, so they share
its offset: the child writes, and the parent's next write goes after the child's bytes."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def main(sys, argv):
    fd = await sys.open("/tmp/log", abi.O_WRONLY | abi.O_CREAT | abi.O_TRUNC)
    pid = await sys.fork()
    if pid == 0:
        await sys.write(fd, b"child\n")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"offset after the child wrote: {await sys.lseek(fd, 0, abi.SEEK_CUR)}")
    await sys.write(fd, b"parent\n")
    await sys.close(fd)
    fd = await sys.open("/tmp/log")
    await say(sys, f"/tmp/log holds {await sys.read(fd, 100)!r}")
    return 0
