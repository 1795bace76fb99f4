"""What the 15-213 shell lab's helper programs share (myspin, mysplit, mystop, myint)."""

from userland.lib.fs import write_all


async def seconds_arg(sys, argv) -> int | None:
    """The N of ``PROG N``; None after the lab's usage line (the helpers then exit 0, as theirs)."""
    if len(argv) != 2:
        await write_all(sys, 2, f"Usage: {argv[0]} <n>\n")
        return None
    return int(argv[1])


async def sleep_seconds(sys, n: int) -> None:
    """One second at a time, as the lab's helpers sleep (a signal lands between two)."""
    for _ in range(n):
        await sys.sleep(1)


async def signal_after(sys, argv, sig: int, group: bool, what: str) -> int:
    """myint and mystop: sleep N seconds, then send ``sig`` to this process (or, with
    ``group``, to its whole process group), as a job's own process would, not the terminal."""
    n = await seconds_arg(sys, argv)
    if n is None:
        return 0
    await sleep_seconds(sys, n)
    pid = await sys.getpid()
    try:
        await sys.kill(-pid if group else pid, sig)
    except OSError:
        await write_all(sys, 2, f"kill ({what}) error")
    return 0
