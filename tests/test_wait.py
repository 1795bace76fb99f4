"""wait4 through the reportable queue: the child it takes is the one Linux's walk of the
children list takes, whatever order the children changed state in."""

from __future__ import annotations

from ukernel import abi

#: Forks three children that each exit once told (a byte on their own pipe), tells them in
#: the order argv says and waits (WNOWAIT) until each is a zombie, then reaps with wait(-1).
EXIT_ORDER = """
from ukernel import abi


async def child(sys, r):
    await sys.read(r, 1)
    return 0


async def main(sys, argv):
    kids = []
    for _ in range(3):
        r, w = await sys.pipe()
        kids.append((await sys.clone(abi.SIGCHLD, child, r), w))
    for i in map(int, argv[1]):
        pid, w = kids[i]
        await sys.write(w, b"x")
        await sys.waitid(abi.P_PID, pid, abi.WEXITED | abi.WNOWAIT)  # a zombie now, not reaped
    order = [kids.index(next(k for k in kids if k[0] == pid)) for pid, _ in [await sys.waitpid(-1, 0) for _ in range(3)]]
    await sys.write(1, " ".join(map(str, order)).encode())
    return 0
"""


async def test_wait_takes_the_earliest_forked_zombie_not_the_first_to_die(run):
    for died in ("210", "120", "012"):
        r = await run(EXIT_ORDER, ["t", died])
        assert r.stdout == b"0 1 2", died


async def test_wnohang_finds_the_one_zombie_among_running_children(run):
    r = await run(
        """
        from ukernel import abi


        async def blocked(sys, fds):
            await sys.close(fds[1])
            await sys.read(fds[0], 1)  # until the parent closes its write end
            return 0


        async def main(sys, argv):
            r, w = await sys.pipe()
            live = [await sys.clone(abi.SIGCHLD, blocked, (r, w)) for _ in range(20)]
            quick = await sys.clone(abi.SIGCHLD, lambda sys, arg: 7)
            live += [await sys.clone(abi.SIGCHLD, blocked, (r, w)) for _ in range(20)]
            await sys.waitid(abi.P_PID, quick, abi.WEXITED | abi.WNOWAIT)
            got, status = await sys.waitpid(-1, abi.WNOHANG)
            none = await sys.waitpid(-1, abi.WNOHANG)
            await sys.write(1, f"{got == quick} {status >> 8} {none}\\n".encode())
            await sys.close(w)
            for _ in live:
                await sys.waitpid(-1, 0)
            try:
                await sys.waitpid(-1, abi.WNOHANG)
            except OSError as exc:
                await sys.write(1, f"then {exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout == f"True 7 (0, 0)\nthen {abi.ECHILD}\n".encode()


async def test_clone_children_are_counted_apart(run):
    """A child with exit signal 0 is only for __WCLONE / __WALL: a plain wait with only such
    children is ECHILD at once, a __WCLONE wait does not see the SIGCHLD child."""
    r = await run(
        """
        from ukernel import abi


        async def main(sys, argv):
            r, w = await sys.pipe()
            clone = await sys.clone(0, lambda sys, arg: 3)
            try:
                await sys.waitpid(-1, 0)
            except OSError as exc:
                await sys.write(1, f"plain: {exc.errno}\\n".encode())
            plain = await sys.clone(abi.SIGCHLD, lambda sys, arg: 4)
            got = [await sys.waitpid(-1, abi.__WCLONE), await sys.waitpid(-1, 0)]
            await sys.write(1, f"{[(p == want, s >> 8) for (p, s), want in zip(got, (clone, plain))]}\\n".encode())
            try:
                await sys.waitpid(-1, abi.__WALL)
            except OSError as exc:
                await sys.write(1, f"__WALL: {exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout == f"plain: {abi.ECHILD}\n[(True, 3), (True, 4)]\n__WALL: {abi.ECHILD}\n".encode()


async def test_wait_for_a_pid_that_is_not_a_child(run):
    """wait4(pid) finds its child by number: a grandchild, the caller itself, a number no
    one has: ECHILD; the caller's child: reaped."""
    r = await run(
        """
        from ukernel import abi


        async def grandchild(sys, arg):
            return 0


        async def child(sys, fds):
            r, w = fds
            gc = await sys.clone(abi.SIGCHLD, grandchild)
            await sys.write(w, str(gc).encode())
            await sys.read(r, 1)
            await sys.waitpid(gc, 0)
            return 5


        async def main(sys, argv):
            down_r, down_w = await sys.pipe()
            up_r, up_w = await sys.pipe()
            pid = await sys.clone(abi.SIGCHLD, child, (down_r, up_w))
            gc = int(await sys.read(up_r, 16))
            for nr in (gc, await sys.getpid(), 999):
                try:
                    await sys.waitpid(nr, abi.WNOHANG)
                except OSError as exc:
                    await sys.write(1, f"{exc.errno} ".encode())
            await sys.write(down_w, b"x")
            got, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"{got == pid} {status >> 8}".encode())
            return 0
        """
    )
    assert r.stdout == f"{abi.ECHILD} {abi.ECHILD} {abi.ECHILD} True 5".encode()


async def test_a_thread_that_execs_can_wait_for_the_leaders_children(run):
    """de_thread: the exec'ing thread takes the leader's place, and its children with it
    (the child is still alive then: it exits when the new program writes to its pipe)."""
    reaper = b"""
async def main(sys, argv):
    await sys.write(int(argv[2]), b"x")
    got, status = await sys.waitpid(-1, 0)
    await sys.write(1, f"reaped {got == int(argv[1])} {status >> 8}\\n".encode())
    return 0
"""
    r = await run(
        """
        from ukernel import abi
        from userland.lib.pthread import pthread_create


        async def child(sys, fds):
            await sys.close(fds[1])
            await sys.read(fds[0], 1)
            return 9


        async def worker(sys, arg):
            pid, w = arg
            await sys.execve("/bin/reaper", ["reaper", str(pid), str(w)])


        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.clone(abi.SIGCHLD, child, (r, w))
            await pthread_create(sys, worker, (pid, w))
            for _ in range(200):  # until the worker's execve kills this thread
                await sys.sched_yield()
            return 0
        """,
        files={"/bin/reaper": reaper},
    )
    assert r.stdout == b"reaped True 9\n"
