"""pidns: a child in a new pid namespace (clone with CLONE_NEWPID) is 1 there, the init
of its namespace, and an ordinary pid outside; its own child is 2 inside."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def container(sys, arg):
    await say(sys, f"container: getpid {await sys.getpid()} getppid {await sys.getppid()}")
    pid = await sys.fork()
    if pid == 0:
        await say(sys, f"grandchild: getpid {await sys.getpid()} getppid {await sys.getppid()}")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"container: fork {pid}")
    return 0


async def main(sys, argv):
    pid = await sys.clone(abi.CLONE_NEWPID | abi.SIGCHLD, container, None)
    await sys.waitpid(pid, 0)
    await say(sys, f"main: clone {pid}")
    return 0
