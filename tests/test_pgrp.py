"""Process groups and sessions, and wait4 by group."""

from __future__ import annotations

from ukernel import abi


async def test_setsid_setpgid_getpgid_getsid(run):
    r = await run(
        """
        from ukernel import abi

        async def main(sys, argv):
            if pid := await sys.fork():  # the program leads its group (init made it a foreground job)
                await sys.waitpid(pid, 0)
                return 0
            out = []
            out.append(("start", await sys.getpgid(), await sys.getsid()))
            out.append(("setsid", await sys.setsid()))
            out.append(("after", await sys.getpgid(), await sys.getsid(0)))
            try:
                await sys.setsid()
            except OSError as exc:
                out.append(("setsid again", exc.errno))
            try:
                await sys.setpgid(0, 0)
            except OSError as exc:
                out.append(("leader setpgid", exc.errno))
            pid = await sys.fork()
            if pid == 0:
                await sys.setpgid(0, 0)
                await sys.write(1, f"child pgid {await sys.getpgid()} sid {await sys.getsid()}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            for call in ("sys.getpgid(999)", "sys.setpgid(999, 0)", "sys.setpgid(0, -1)"):
                try:
                    await eval(call)
                except OSError as exc:
                    out.append((call, exc.errno))
            await sys.write(1, repr(out).encode())
            return 0
        """
    )
    child, report = r.stdout.decode().split("\n")
    assert child == "child pgid 4 sid 3"
    assert eval(report) == [
        ("start", 2, 1),
        ("setsid", 3),
        ("after", 3, 3),
        ("setsid again", abi.EPERM),
        ("leader setpgid", abi.EPERM),
        ("sys.getpgid(999)", abi.ESRCH),
        ("sys.setpgid(999, 0)", abi.ESRCH),
        ("sys.setpgid(0, -1)", abi.EINVAL),
    ]


async def test_wait_by_process_group(run):
    r = await run(
        """
        from ukernel.abi import WNOHANG

        async def main(sys, argv):  # init made it a group leader: setsid would be EPERM
            a = await sys.fork()
            if a == 0:
                await sys.setpgid(0, 0)
                for _ in range(20):
                    await sys.sched_yield()
                return 1
            b = await sys.fork()
            if b == 0:
                return 2
            await sys.setpgid(a, a)
            got = []
            got.append(await sys.waitpid(-a, WNOHANG))   # a's group: a still runs
            pid, status = await sys.waitpid(0, 0)        # our own group: only b
            got.append((pid == b, status >> 8))
            pid, status = await sys.waitpid(-a, 0)
            got.append((pid == a, status >> 8))
            await sys.write(1, repr(got).encode())
            return 0
        """
    )
    assert eval(r.stdout) == [(0, 0), (True, 2), (True, 1)]
