"""wrap N: N children one after the other (clone with a function, each reaped at once);
prints their pids as runs ("3-309 300-312"), so a wrap shows where it restarted."""

from ukernel import abi


async def child(sys, arg):
    return 0


def runs(pids: list[int]) -> str:
    """[3, 4, 5, 300, 301] -> '3-5 300-301': consecutive pids as one run."""
    out: list[list[int]] = []
    for pid in pids:
        if out and pid == out[-1][1] + 1:
            out[-1][1] = pid
        else:
            out.append([pid, pid])
    return " ".join(f"{a}-{b}" for a, b in out)


async def main(sys, argv):
    pids = []
    for _ in range(int(argv[1])):
        pid = await sys.clone(abi.SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
        pids.append(pid)
    await sys.write(1, f"{runs(pids)}\n".encode())
    return 0
