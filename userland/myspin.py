"""myspin N: sleep one second N times, then exit 0 (15-213 shell lab's helper).

The shell-lab traces run it as a foreground or background job for the shell
under test to stop, continue and kill.
"""

from userland.lib.shlab import seconds_arg, sleep_seconds


async def main(sys, argv):
    n = await seconds_arg(sys, argv)
    if n is not None:
        await sleep_seconds(sys, n)
    return 0
