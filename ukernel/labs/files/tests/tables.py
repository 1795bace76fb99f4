"""tables fork|clone_files: whose fd table does a child use? After fork it has its own
(a copy): what it opens or closes is not the parent's. With CLONE_FILES it has the
parent's very table: what it opens the parent has, what it closes the parent lost."""

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


async def child(sys, log: int):
    fd = await sys.open("/tmp/mine", abi.O_WRONLY | abi.O_CREAT)
    await say(sys, f"child opened fd {fd}")
    await sys.close(log)
    await say(sys, f"child closed fd {log}: {await state(sys, log)}")
    return 0


async def main(sys, argv):
    flags = {"fork": 0, "clone_files": abi.CLONE_FILES}[argv[1]]
    log = await sys.open("/tmp/log", abi.O_WRONLY | abi.O_CREAT)
    pid = await sys.clone(flags | abi.SIGCHLD, child, log)
    await sys.waitpid(pid, 0)
    await say(sys, f"parent: fd {log + 1} {await state(sys, log + 1)}, fd {log} {await state(sys, log)}")
    return 0
