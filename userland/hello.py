"""hello: the smallest program; prints its pid and its parent's."""


async def main(sys, argv):
    pid, ppid = await sys.getpid(), await sys.getppid()
    await sys.write(1, f"hello from pid {pid} (parent {ppid})\n".encode())
    return 0
