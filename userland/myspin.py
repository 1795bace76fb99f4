"""myspin N: sleep one second N times, then exit 0 (15-213 shell lab's helper).

The shell-lab traces run it as a foreground or background job for the shell
under test to stop, continue and kill.
"""

from userland.lib.fs import write_all


async def main(sys, argv):
    if len(argv) != 2:
        await write_all(sys, 2, f"Usage: {argv[0]} <n>\n")
        return 0
    for _ in range(int(argv[1])):
        await sys.sleep(1)
    return 0
