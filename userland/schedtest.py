"""schedtest: CPU-bound tasks at different nice values, and one SCHED_FIFO task.

The parent makes itself SCHED_FIFO 99 with SCHED_RESET_ON_FORK (so its
children start as plain SCHED_OTHER at nice 0), starts one spinning child per
nice value and one SCHED_FIFO 10 child that spins for a fixed number of ticks,
then sleeps. While the FIFO child runs, the others get nothing (real-time
always beats CFS); after it, CFS shares the CPU in proportion to the weights
of sched_prio_to_weight (nice 0: 1024, nice 5: 335, nice 10: 110). When the
parent wakes it preempts everyone, kills the spinners and prints each one's
CPU ticks (utime from wait4) and share.

Run: ukernel run --sched cfs schedtest        (under rr, nice changes nothing)
     ukernel run --sched cfs schedtest 3000 0 5 10
"""

from ukernel.abi import SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD, SIGKILL

FIFO_TICKS = 200


async def spinner(sys, nice):
    """CPU-bound: every syscall is a kernel entry, i.e. one tick of CPU."""
    await sys.nice(nice)
    while True:
        await sys.getppid()


async def fifo_burst(sys, ticks):
    await sys.sched_setscheduler(0, SCHED_FIFO, 10)
    for _ in range(ticks):
        await sys.getppid()
    return 0


async def main(sys, argv):
    duration = int(argv[1]) if len(argv) > 1 else 2000  # ms of virtual time
    nices = [int(a) for a in argv[2:]] or [0, 5, 10]
    await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)
    names = {}
    for nice in nices:
        names[await sys.clone(SIGCHLD, spinner, nice)] = f"SCHED_OTHER nice {nice:>3}"
    names[await sys.clone(SIGCHLD, fifo_burst, FIFO_TICKS)] = "SCHED_FIFO  prio  10"
    await sys.nanosleep(duration / 1000)
    for pid, name in names.items():
        if name.startswith("SCHED_OTHER"):
            await sys.kill(pid, SIGKILL)
    ticks = {}
    for _ in names:
        pid, _status, rusage = await sys.wait4(-1, 0)
        ticks[pid] = rusage["utime"]
    total = sum(ticks.values())
    await sys.write(1, f"{'task':<22}{'ticks':>7}{'share':>8}\n".encode())
    for pid, name in names.items():
        await sys.write(1, f"{name:<22}{ticks[pid]:>7}{100 * ticks[pid] / total:>7.1f}%\n".encode())
    return 0
