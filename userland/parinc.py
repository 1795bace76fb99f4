"""parinc [N] [T]: T threads each add 1 to a shared total N times, loading and storing apart: lost updates (MOSAIC's parallel-inc).

The threads share the program's memory (clone with CLONE_VM); between the
load and the store another thread may run, so increments are lost: with
N=2 T=2 the total is 2, 3 or 4.
"""

from ukernel.abi import CLONE_VM, SIGCHLD

total = 0


async def worker(sys, n):
    global total
    for _ in range(n):
        tmp = total  # load
        await sys.sched_yield()
        total = tmp + 1  # store
        await sys.sched_yield()
    return 0


async def main(sys, argv):
    n = int(argv[1]) if len(argv) > 1 else 2
    t = int(argv[2]) if len(argv) > 2 else 2
    tids = [await sys.clone(CLONE_VM | SIGCHLD, worker, n) for _ in range(t)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"total {total}\n".encode())
    return 0
