"""sleepers: tasks sleep for different times and wake in the order of their deadlines.

Each child sleeps its own number of milliseconds of *virtual* time and says
when it woke (clock_gettime(CLOCK_MONOTONIC): ticks since boot, 1 tick = 1 ms).
While everyone sleeps every CPU is idle, so the clock jumps straight to the
next timer: the run takes no real time however long the sleeps are. With
``--realtime`` (the default at a terminal) idle time follows the wall clock
instead, and the sleeps take as long as they say (docs/sched.md "Time").

Run: ukernel run sleepers 300 100 200
"""

from ukernel.abi import CLOCK_MONOTONIC, SIGCHLD


async def sleeper(sys, ms):
    start = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.nanosleep(ms / 1000)
    woke = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.write(1, f"slept {ms} ms: woke at {woke * 1000:.0f} ms (slept {(woke - start) * 1000:.0f})\n".encode())
    return 0


async def main(sys, argv):
    durations = [int(a) for a in argv[1:]] or [300, 100, 200, 50]
    for ms in durations:
        await sys.clone(SIGCHLD, sleeper, ms)
    for _ in durations:
        await sys.waitpid(-1, 0)
    now = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.write(1, f"all {len(durations)} sleepers done at {now * 1000:.0f} ms\n".encode())
    return 0
