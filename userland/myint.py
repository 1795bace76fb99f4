"""myint N: sleep N seconds, then send SIGINT to itself (15-213 shell lab's helper).

The shell must report ``Job [N] (PID) terminated by signal 2`` though it
never forwarded a SIGINT (trace16).
"""

from ukernel.abi import SIGINT
from userland.lib.shlab import signal_after


async def main(sys, argv):
    return await signal_after(sys, argv, SIGINT, group=False, what="int")
