"""Property: any sequence of clones (valid flags or not) and file calls leaks nothing."""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from ukernel import abi

FLAG_BITS = [
    abi.CLONE_VM,
    abi.CLONE_FS,
    abi.CLONE_FILES,
    abi.CLONE_SIGHAND,
    abi.CLONE_THREAD,
    abi.CLONE_NEWNS,
    abi.CLONE_NEWUTS,
    abi.CLONE_NEWIPC,
    abi.CLONE_NEWPID,
    abi.CLONE_NEWNET,
    abi.CLONE_SYSVSEM,
    abi.CLONE_PARENT,
    abi.CLONE_VFORK,
]

PROGRAM = b"""
from ukernel import abi

async def child(sys, arg):
    await sys.getpid()
    return arg

async def main(sys, argv):
    ops = eval(argv[1])
    results = []
    for kind, value in ops:
        try:
            if kind == "clone":
                results.append(("clone", await sys.clone(value, child, 3) > 0))
            elif kind == "fork":
                pid = await sys.fork()
                if pid == 0:
                    return 5
                results.append(("fork", pid > 0))
            elif kind == "dup":
                results.append(("dup", await sys.dup(value)))
            elif kind == "close":
                await sys.close(value)
                results.append(("close", value))
        except OSError as exc:
            results.append((kind, abi.errno_name(exc.errno)))
    while True:
        try:
            await sys.waitpid(-1, abi.__WALL)
        except OSError:
            break
    await sys.write(1, repr(results).encode())
    return 0
"""

flags = st.lists(st.sampled_from(FLAG_BITS), max_size=5).map(lambda bits: sum(set(bits)) | abi.SIGCHLD)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("clone"), flags),
        st.tuples(st.just("fork"), st.just(0)),
        st.tuples(st.just("dup"), st.integers(0, 5)),
        st.tuples(st.just("close"), st.integers(3, 8)),  # fd 1 stays open for the report
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops)
def test_random_clones_leave_every_count_where_it_was(ops):
    result = trio.run(lambda: ukernel.run_async("/bin/t", ["t", repr(ops)], files={"/bin/t": PROGRAM}, trace=False))
    assert result.problems == []
    assert result.exit_code == 0, result.stdout
    outcomes = eval(result.stdout.decode())
    for (kind, value), (_, outcome) in zip(ops, outcomes, strict=True):
        if kind == "clone":
            einval = (
                (value & abi.CLONE_NEWNS and value & abi.CLONE_FS)
                or (value & abi.CLONE_THREAD and not value & abi.CLONE_SIGHAND)
                or (value & abi.CLONE_SIGHAND and not value & abi.CLONE_VM)
                or (value & abi.CLONE_THREAD and value & abi.CLONE_NEWPID)
                or (value & abi.CLONE_NEWIPC and value & abi.CLONE_SYSVSEM)
            )
            assert (outcome == "EINVAL") == bool(einval), (hex(value), outcome)
