"""forkbuf [N]: fork N times in a loop, each process buffering what fork returned: the printf-buffer puzzle (MOSAIC's fork-buf).

Every process keeps its own copy of ``buf`` (fork copies the address space),
so 2^N processes each print the pids they saw; the lines' order and the pid
numbers (who forked first) depend on the schedule: N=2 has 48 outcomes.
"""

buf = []


async def main(sys, argv):
    n = int(argv[1]) if len(argv) > 1 else 2
    kids = []
    for _ in range(n):
        pid = await sys.fork()
        await sys.sched_yield()
        buf.append(f"{pid}\n")
        kids = [*kids, pid] if pid else []  # a child waits only for its own children
    await sys.write(1, "".join(buf).encode())  # the buffer flushed at exit, in one write
    for kid in kids:
        await sys.waitpid(kid, 0)
    return 0
