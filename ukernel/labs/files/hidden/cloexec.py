"""cloexec: close-on-exec is a bit of the fd (per table), status flags are the open
file's (shared). The child sets FD_CLOEXEC on one fd and O_APPEND on the file, then
execs /bin/probe: the fd opened with O_CLOEXEC and the one marked are gone, the other
stays; in the parent only O_APPEND changed."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def main(sys, argv):
    a = await sys.open("/tmp/a", abi.O_WRONLY | abi.O_CREAT | abi.O_CLOEXEC)
    b = await sys.open("/tmp/b", abi.O_WRONLY | abi.O_CREAT)
    c = await sys.open("/tmp/c", abi.O_WRONLY | abi.O_CREAT)
    pid = await sys.fork()
    if pid == 0:
        await sys.fcntl(c, abi.F_SETFD, abi.FD_CLOEXEC)
        await sys.fcntl(b, abi.F_SETFL, abi.O_APPEND)
        await sys.execve("/bin/probe", ["probe", str(a), str(b), str(c)])
    await sys.waitpid(pid, 0)
    flags = [await sys.fcntl(fd, abi.F_GETFD) for fd in (a, b, c)]
    await say(sys, f"parent: FD_CLOEXEC {flags}, O_APPEND on b {bool(await sys.fcntl(b, abi.F_GETFL) & abi.O_APPEND)}")
    return 0
