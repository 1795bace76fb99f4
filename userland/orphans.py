"""orphans: children outlive their parent and are adopted by init.

The parent forks 3 children and exits at once. At its exit the kernel
reparents its children to the child reaper (init, pid 1), so when each child
later asks getppid() the answer is 1, and init's wait loop reaps them.

Run: ukernel run orphans
"""


async def main(sys, argv):
    for i in range(3):
        pid = await sys.fork()
        if pid == 0:
            for _ in range(30 + 10 * i):  # long enough for the parent to be gone
                await sys.sched_yield()
            me, parent = await sys.getpid(), await sys.getppid()
            await sys.write(1, f"orphan {i}: pid {me}, parent {parent}\n".encode())
            return 0
    return 0
