"""shared: clone with CLONE_FILES shares the fd table itself: what the child opens the
parent has, what the child closes the parent has lost."""

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


async def child(sys, log):
    fd = await sys.open("/tmp/mine", abi.O_WRONLY | abi.O_CREAT)
    await say(sys, f"child opened fd {fd}")
    await sys.close(log)
    return 0


async def main(sys, argv):
    log = await sys.open("/tmp/log", abi.O_WRONLY | abi.O_CREAT)
    pid = await sys.clone(abi.CLONE_FILES | abi.SIGCHLD, child, log)
    await sys.waitpid(pid, 0)
    await say(sys, f"parent: fd {log + 1} {await state(sys, log + 1)}, fd {log} {await state(sys, log)}")
    return 0
