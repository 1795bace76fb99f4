"""myint N: sleep N seconds, then send SIGINT to itself (15-213 shell lab's helper).

The shell must report ``Job [N] (PID) terminated by signal 2`` though it
never forwarded a SIGINT (trace16).
"""

from ukernel.abi import SIGINT
from userland.lib.fs import write_all


async def main(sys, argv):
    if len(argv) != 2:
        await write_all(sys, 2, f"Usage: {argv[0]} <n>\n")
        return 0
    for _ in range(int(argv[1])):
        await sys.sleep(1)
    try:
        await sys.kill(await sys.getpid(), SIGINT)
    except OSError:
        await write_all(sys, 2, "kill (int) error")
    return 0
