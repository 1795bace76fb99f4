"""latency HOGS ROUNDS SLEEP: how soon an interactive task runs after its sleep ends, while HOGS spin.

The interactive task sleeps SLEEP ticks ROUNDS times; each time, its
latency is the ticks between the end of its sleep and its running again.
Prints one line: the latencies, in ticks, separated by blanks.
"""

from ukernel.abi import CLOCK_MONOTONIC, HZ, SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD, SIGKILL


async def hog(sys, _):
    while True:
        await sys.getppid()


async def interactive(sys, args):
    rounds, sleep = args
    latencies = []
    for _ in range(rounds):
        start = await sys.clock_gettime(CLOCK_MONOTONIC)
        await sys.nanosleep(sleep / HZ)
        woke = await sys.clock_gettime(CLOCK_MONOTONIC)
        latencies.append(round((woke - start) * HZ) - sleep)
    await sys.write(1, " ".join(map(str, latencies)) + "\n")
    return 0


async def main(sys, argv):
    hogs, rounds, sleep = int(argv[1]), int(argv[2]), int(argv[3])
    await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)
    spinning = [await sys.clone(SIGCHLD, hog, None) for _ in range(hogs)]
    await sys.nanosleep(50 / HZ)  # the hogs have run a while: no longer new
    pid = await sys.clone(SIGCHLD, interactive, (rounds, sleep))
    await sys.waitpid(pid, 0)
    for hog_pid in spinning:
        await sys.kill(hog_pid, SIGKILL)
        await sys.waitpid(hog_pid, 0)
    return 0
