"""clone3: its own validity checks, set_tid in nested pid namespaces, CLONE_NEWTIME."""

from __future__ import annotations

import pytest

from ukernel import abi
from ukernel.testing import route_of

CHECK = """
from ukernel import abi

async def main(sys, argv):
    try:
        pid = await sys.clone3(**eval(argv[1]), fn=lambda sys, arg: 0)
        await sys.waitpid(pid, abi.__WALL)
        await sys.write(1, b"ok")
    except OSError as exc:
        await sys.write(1, abi.errno_name(exc.errno).encode())
    return 0
"""

CASES = [
    ({"flags": 0, "exit_signal": abi.SIGCHLD}, "ok"),
    ({"flags": abi.CLONE_NEWTIME, "exit_signal": abi.SIGCHLD}, "ok"),
    ({"flags": abi.SIGCHLD}, "EINVAL"),  # exit-signal bits in flags
    ({"flags": abi.CLONE_DETACHED}, "EINVAL"),
    ({"flags": 1 << 40}, "EINVAL"),
    ({"exit_signal": 65}, "EINVAL"),
    ({"exit_signal": 0x100}, "EINVAL"),
    ({"flags": abi.CLONE_VM | abi.CLONE_SIGHAND | abi.CLONE_CLEAR_SIGHAND}, "EINVAL"),
    ({"flags": abi.CLONE_VM | abi.CLONE_SIGHAND | abi.CLONE_THREAD, "exit_signal": abi.SIGCHLD}, "EINVAL"),
    ({"flags": abi.CLONE_PARENT, "exit_signal": abi.SIGCHLD}, "EINVAL"),
    ({"set_tid": list(range(1, 34))}, "EINVAL"),
    ({"set_tid": [2]}, "EEXIST"),  # pid 2 is the caller
    ({"set_tid": [77], "exit_signal": abi.SIGCHLD}, "ok"),
    ({"set_tid": [1, 2], "exit_signal": abi.SIGCHLD}, "EINVAL"),  # two levels without CLONE_NEWPID
    ({"flags": abi.CLONE_INTO_CGROUP}, "ENOSYS"),
    ({"pidfd": True, "exit_signal": abi.SIGCHLD}, "ENOSYS"),
]


@pytest.mark.parametrize(("args", "outcome"), CASES, ids=[repr(a) for a, _ in CASES])
async def test_clone3_checks(run, args, outcome):
    r = await run(CHECK, ["t", repr(args)])
    assert r.stdout.decode() == outcome
    if outcome == "EINVAL" and "set_tid" not in args:
        assert route_of(r.trace, "clone3") == []


async def test_set_tid_in_nested_pid_namespaces(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWPID, SIGCHLD

        async def inner(sys, arg):
            await sys.write(1, f"inside: {await sys.getpid()}\\n".encode())
            return 0

        async def main(sys, argv):
            pid = await sys.clone3(flags=CLONE_NEWPID, exit_signal=SIGCHLD, set_tid=[1, 500], fn=inner)
            await sys.waitpid(pid, 0)
            await sys.write(1, f"outside: {pid}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"inside: 1\noutside: 500\n"


async def test_fork_style_clone3_returns_twice(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD

        async def main(sys, argv):
            pid = await sys.clone3(exit_signal=SIGCHLD)
            if pid == 0:
                await sys.write(1, b"child\\n")
                return 4
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"parent saw {status >> 8}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"child\nparent saw 4\n"
