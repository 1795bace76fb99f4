"""deadns: unshare(CLONE_NEWPID), then fork the new namespace's init (1), which exits;
a namespace whose init is gone takes no one new, so the next fork is ENOMEM."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def main(sys, argv):
    await sys.unshare(abi.CLONE_NEWPID)
    pid = await sys.fork()
    if pid == 0:
        await say(sys, f"init getpid {await sys.getpid()}")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"fork {pid}")
    try:
        await sys.fork()
    except OSError as exc:
        await say(sys, f"fork again: {abi.errno_name(exc.errno)}")
    return 0
