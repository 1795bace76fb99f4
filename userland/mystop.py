"""mystop N: sleep N seconds, then send SIGTSTP to its own process group (15-213 shell lab).

The stop comes from a process, not the terminal (trace16): the shell learns
of it only through SIGCHLD and waitpid(WUNTRACED).
"""

from ukernel.abi import SIGTSTP
from userland.lib.shlab import signal_after


async def main(sys, argv):
    return await signal_after(sys, argv, SIGTSTP, group=True, what="tstp")
