"""spinners MS NICE...: CPU-bound tasks at these nice values share the CPU for MS ticks; print each one's ticks.

The parent is SCHED_FIFO 99 with SCHED_RESET_ON_FORK: its children are plain
SCHED_OTHER tasks of the class under test, and the parent, outside that
class, wakes on time to stop them. Each line is "NICE TICKS" (utime from wait4),
in the order of the arguments.
"""

from ukernel.abi import SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD, SIGKILL


async def spin(sys, nice):
    await sys.nice(nice)
    while True:
        await sys.getppid()  # one kernel entry: one tick of CPU


async def main(sys, argv):
    ms, nices = int(argv[1]), [int(a) for a in argv[2:]]
    await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)
    pids = [await sys.clone(SIGCHLD, spin, nice) for nice in nices]
    await sys.nanosleep(ms / 1000)
    for pid in pids:
        await sys.kill(pid, SIGKILL)
    ticks = {}
    for _ in pids:
        pid, _status, rusage = await sys.wait4(-1, 0)
        ticks[pid] = rusage["utime"]
    await sys.write(1, "".join(f"{nice} {ticks[pid]}\n" for nice, pid in zip(nices, pids, strict=True)))
    return 0
