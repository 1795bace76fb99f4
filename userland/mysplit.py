"""mysplit N: fork a child that sleeps N seconds, wait for it (15-213 shell lab's helper).

A job of two processes in one process group: a ^C or ^Z the shell forwards
to the group must reach both (traces 11 to 13).
"""

from userland.lib.shlab import seconds_arg, sleep_seconds


async def main(sys, argv):
    n = await seconds_arg(sys, argv)
    if n is None:
        return 0
    if await sys.fork() == 0:
        await sleep_seconds(sys, n)
        return 0
    await sys.waitpid(-1, 0)
    return 0
