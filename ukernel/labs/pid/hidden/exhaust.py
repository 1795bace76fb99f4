"""exhaust [newpid]: children that wait on a pipe until fork fails, so every pid is taken;
then they are let go and reaped, and one more fork shows which pid came back. With
``newpid`` the last fork goes into a new pid namespace made after the space was full."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def hold(sys, ends):
    r, w = ends
    await sys.close(w)
    await sys.read(r, 1)  # EOF once the parent closes its write end
    return 0


async def main(sys, argv):
    newpid = argv[1:] == ["newpid"]
    r, w = await sys.pipe()
    held = []
    while True:
        try:
            held.append(await sys.clone(abi.SIGCHLD, hold, (r, w)))
        except OSError as exc:
            await say(sys, f"held {len(held)}, then fork: {abi.errno_name(exc.errno)}")
            break
    if newpid:
        await sys.unshare(abi.CLONE_NEWPID)  # its first fork must be its init, 1
        try:
            await sys.fork()
        except OSError as exc:
            await say(sys, f"fork into the new namespace: {abi.errno_name(exc.errno)}")
    await sys.close(w)
    await sys.close(r)
    for pid in held:
        await sys.waitpid(pid, 0)
    pid = await sys.fork()
    if pid == 0:
        await say(sys, f"child getpid {await sys.getpid()}")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, f"fork {pid}")
    return 0
