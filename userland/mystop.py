"""mystop N: sleep N seconds, then send SIGTSTP to its own process group (15-213 shell lab).

The stop comes from a process, not the terminal (trace16): the shell learns
of it only through SIGCHLD and waitpid(WUNTRACED).
"""

from ukernel.abi import SIGTSTP
from userland.lib.fs import write_all


async def main(sys, argv):
    if len(argv) != 2:
        await write_all(sys, 2, f"Usage: {argv[0]} <n>\n")
        return 0
    for _ in range(int(argv[1])):
        await sys.sleep(1)
    try:
        await sys.kill(-(await sys.getpid()), SIGTSTP)
    except OSError:
        await write_all(sys, 2, "kill (tstp) error")
    return 0
