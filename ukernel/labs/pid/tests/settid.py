"""settid: clone3's set_tid asks for an exact pid (checkpoint/restore does). 50 is free;
then the numbers that must be refused, each with its errno; then a plain fork, whose pid
shows that an exact pid did not move the cyclic allocator's cursor."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def clone3(sys, set_tid: tuple[int, ...]) -> str:
    """What clone3 with this set_tid gives: the child's pid, or the errno's name."""
    try:
        pid = await sys.clone3(exit_signal=abi.SIGCHLD, set_tid=set_tid, fn=child)
    except OSError as exc:
        return abi.errno_name(exc.errno)
    await sys.waitpid(pid, 0)
    return str(pid)


async def child(sys, arg):
    await say(sys, f"child {await sys.getpid()}")
    return 0


async def main(sys, argv):
    pid_max = int(argv[1])
    for set_tid in [(50,), (await sys.getpid(),), (0,), (pid_max,), (7, 8)]:
        await say(sys, f"set_tid {list(set_tid)}: {await clone3(sys, set_tid)}")
    pid = await sys.fork()
    if pid == 0:
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"fork {pid}")
    return 0
