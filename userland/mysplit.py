"""mysplit N: fork a child that sleeps N seconds, wait for it (15-213 shell lab's helper).

A job of two processes in one process group: a ^C or ^Z the shell forwards
to the group must reach both (traces 11 to 13).
"""

from userland.lib.fs import write_all


async def main(sys, argv):
    if len(argv) != 2:
        await write_all(sys, 2, f"Usage: {argv[0]} <n>\n")
        return 0
    if await sys.fork() == 0:
        for _ in range(int(argv[1])):
            await sys.sleep(1)
        return 0
    await sys.waitpid(-1, 0)
    return 0
