"""private: after fork each process has its own fd table. An fd the child opens is not
the parent's; the child's close of an inherited fd leaves the parent's open."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def state(sys, fd: int) -> str:
    """'open' or the errno's name: what fcntl(fd, F_GETFD) says about the fd."""
    try:
        await sys.fcntl(fd, abi.F_GETFD)
    except OSError as exc:
        return abi.errno_name(exc.errno)
    return "open"


async def main(sys, argv):
    log = await sys.open("/tmp/log", abi.O_WRONLY | abi.O_CREAT)
    pid = await sys.fork()
    if pid == 0:
        fd = await sys.open("/tmp/mine", abi.O_WRONLY | abi.O_CREAT)
        await say(sys, f"child opened fd {fd}")
        await sys.close(log)
        await say(sys, f"child closed fd {log}: {await state(sys, log)}")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"parent: fd {log + 1} {await state(sys, log + 1)}")
    await say(sys, f"parent: fd {log} {await state(sys, log)}, write {await sys.write(log, b'still mine')}")
    return 0
