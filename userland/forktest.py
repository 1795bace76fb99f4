"""forktest: fork until the kernel says no, then reap every child (after xv6's forktest).

RLIMIT_NPROC caps how many tasks may exist; fork past it fails with EAGAIN,
and nothing is lost on the way: each child that was made is reaped exactly
once, and then wait4 has no child left (ECHILD). Zombies count against the
limit until they are reaped, so the children exiting at once does not let
more through. The children are clone(SIGCHLD, fn) rather than fork(), so
each one starts at fn instead of replaying the parent's whole journal.

Run: ukernel run forktest 20
"""

from ukernel.abi import EAGAIN, ECHILD, RLIMIT_NPROC, SIGCHLD


async def child(sys, arg):
    return 0


async def main(sys, argv):
    limit = int(argv[1]) if len(argv) > 1 else 20
    await sys.prlimit(RLIMIT_NPROC, limit)
    forks = 0
    while True:
        try:
            await sys.clone(SIGCHLD, child)
        except OSError as exc:
            if exc.errno != EAGAIN:
                raise
            break
        forks += 1
        if forks > limit:
            await sys.write(2, f"forktest: {forks} forks, past RLIMIT_NPROC {limit}\n".encode())
            return 1
    reaped = 0
    for _ in range(forks):
        await sys.waitpid(-1, 0)
        reaped += 1
    try:
        extra, _ = await sys.waitpid(-1, 0)
    except OSError as exc:
        if exc.errno != ECHILD:
            raise
    else:
        await sys.write(2, f"forktest: reaped an unexpected child {extra}\n".encode())
        return 1
    ok = "ok" if reaped == forks else "FAILED"
    await sys.write(1, f"forktest: {forks} forks, {reaped} reaped, {ok}\n".encode())
    return 0 if reaped == forks else 1
