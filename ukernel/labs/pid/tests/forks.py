"""forks [N]: N children (3 by default), one after the other, each reaped before the
next is born. Each child says its pid, the parent says what fork returned, and at the
end what /proc/sys/kernel/ns_last_pid reads."""


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def main(sys, argv):
    await say(sys, f"parent {await sys.getpid()}")
    for _ in range(int(argv[1]) if len(argv) > 1 else 3):
        pid = await sys.fork()
        if pid == 0:
            await say(sys, f"child {await sys.getpid()}")
            return 0
        await sys.waitpid(pid, 0)
        await say(sys, f"fork {pid}")
    fd = await sys.open("/proc/sys/kernel/ns_last_pid")
    await say(sys, f"ns_last_pid {(await sys.read(fd, 32)).decode().strip()}")
    return 0
