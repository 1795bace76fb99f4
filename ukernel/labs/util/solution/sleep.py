"""sleep TICKS: pause for TICKS ticks of virtual time (xv6's user/sleep.c).

One tick is 1 ms (ukernel.abi.HZ ticks a second); nanosleep takes seconds.
"""

from ukernel.abi import HZ

USAGE = "usage: sleep TICKS\n"


async def main(sys, argv):
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("sleep: your code here (handout: 1. sleep)")
    if len(argv) != 2 or not argv[1].isdigit():
        await sys.write(2, USAGE)
        return 1
    await sys.nanosleep(int(argv[1]) / HZ)
    return 0
    # END SOLUTION
