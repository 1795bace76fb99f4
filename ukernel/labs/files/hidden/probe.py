"""probe FD...: after an exec, which fds are still open ('open' or the errno's name);
``probe open PATH`` opens PATH and says which fd it got."""

from ukernel import abi


async def main(sys, argv):
    if argv[1:2] == ["open"]:
        fd = await sys.open(argv[2], abi.O_WRONLY | abi.O_CREAT)
        await sys.write(1, f"probe opened fd {fd}\n".encode())
        return 0
    for fd in map(int, argv[1:]):
        try:
            await sys.fcntl(fd, abi.F_GETFD)
            state = "open"
        except OSError as exc:
            state = abi.errno_name(exc.errno)
        await sys.write(1, f"probe: fd {fd} {state}\n".encode())
    return 0
