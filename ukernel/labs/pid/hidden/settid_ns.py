"""settid_ns: clone3 into a new pid namespace with set_tid (1, 60): 1 inside (its init),
60 outside; asking again for 60 while that child lives is EEXIST, and leaves nothing."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def container(sys, ends):
    r, w = ends
    await sys.close(w)
    await say(sys, f"container getpid {await sys.getpid()}")
    await sys.read(r, 1)  # live until the parent closes the pipe
    return 0


async def main(sys, argv):
    r, w = await sys.pipe()
    flags = abi.CLONE_NEWPID
    pid = await sys.clone3(flags=flags, exit_signal=abi.SIGCHLD, set_tid=(1, 60), fn=container, arg=(r, w))
    await say(sys, f"clone3 {pid}")
    try:
        await sys.clone3(flags=flags, exit_signal=abi.SIGCHLD, set_tid=(1, 60), fn=container, arg=(r, w))
    except OSError as exc:
        await say(sys, f"clone3 again: {abi.errno_name(exc.errno)}")
    await sys.close(w)
    await sys.waitpid(pid, 0)
    return 0
