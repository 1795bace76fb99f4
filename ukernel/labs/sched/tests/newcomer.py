"""newcomer MS WORK: a hog runs alone for MS ticks, then a new task does WORK ticks of CPU; print how long that took.

Prints "WORK ELAPSED": the newcomer's ticks of work and the ticks between its
first and last syscall. A scheduler that favours new tasks over a long-running
hog gives ELAPSED close to WORK.
"""

from ukernel.abi import CLOCK_MONOTONIC, HZ, SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD, SIGKILL


async def hog(sys, _):
    while True:
        await sys.getppid()


async def newcomer(sys, work):
    start = await sys.clock_gettime(CLOCK_MONOTONIC)
    for _ in range(work - 2):  # the two clock_gettime calls are ticks of work too
        await sys.getppid()
    end = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.write(1, f"{work} {round((end - start) * HZ) + 1}\n")
    return 0


async def main(sys, argv):
    ms, work = int(argv[1]), int(argv[2])
    await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)
    spinning = await sys.clone(SIGCHLD, hog, None)
    await sys.nanosleep(ms / HZ)
    pid = await sys.clone(SIGCHLD, newcomer, work)
    await sys.waitpid(pid, 0)
    await sys.kill(spinning, SIGKILL)
    await sys.waitpid(spinning, 0)
    return 0
