"""explore's footprints of fork, exit, wait4 and SIGCHLD (issue 17, fork-buf): a reap and a
fork commute, an ignored SIGCHLD changes nothing, a child's exit and its parent's fork
commute. Each refinement is checked the one way that cannot be fooled by the footprints:
the default search must find exactly what caching alone (which uses none) finds."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file

import ukernel
from ukernel.explore.por import COUNT, READ, dependent

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)

#: A reap against another process's fork: with the default limits the grandchild's pid is
#: the same either way (a freed pid is not reused before the cursor wraps); with pid_max 5
#: the fork wraps and takes the reaped pid 3, or finds none (EAGAIN); with RLIMIT_NPROC 4
#: it passes only once the reap made room.
REAP_RACE = """
async def main(sys, argv):
    x = await sys.fork()
    if x == 0:
        return 0
    y = await sys.fork()
    if y == 0:
        try:
            z = await sys.fork()
        except OSError as e:
            await sys.write(1, f"errno {e.errno}\\n".encode())
            return 0
        if z == 0:
            return 0
        await sys.write(1, f"pid {z}\\n".encode())
        await sys.waitpid(z, 0)
        return 0
    await sys.waitpid(x, 0)
    await sys.waitpid(y, 0)
    return 0
"""

#: SIGCHLD with each disposition (argv[1]): the default (ignore, but a wait4 still reaps),
#: SIG_IGN (the child is reaped at its exit: the parent's wait4 finds no child), a handler
#: (it writes where the signal is taken), and the default while blocked (queued, then
#: dropped when unblocked). The parent's steps in between only look at their signals.
SIGCHLD_RACE = """
from ukernel.abi import ECHILD, SIG_BLOCK, SIG_DFL, SIG_IGN, SIG_UNBLOCK, SIGCHLD, SIGUSR1


async def on_chld(sys, sig):
    await sys.write(1, b"handler\\n")


async def main(sys, argv):
    how = argv[1]
    if how != "default":
        await sys.sigaction(SIGCHLD, {"ignore": SIG_IGN, "handler": on_chld, "blocked": SIG_DFL}[how])
    if how == "blocked":
        await sys.sigprocmask(SIG_BLOCK, {SIGCHLD})
    pid = await sys.fork()
    if pid == 0:
        await sys.write(1, b"child\\n")
        return 3
    await sys.sigprocmask(SIG_BLOCK, {SIGUSR1})
    await sys.write(1, b"parent\\n")
    if how == "blocked":
        await sys.sigprocmask(SIG_UNBLOCK, {SIGCHLD})
    try:
        _, status = await sys.waitpid(pid, 0)
    except OSError as e:
        assert e.errno == ECHILD
        status = -1
    await sys.write(1, f"status {status}\\n".encode())
    return 0
"""

#: kill(-g) against a fork into group g: the newcomer is killed, or it was not born yet, or
#: it had not reset SIGTERM (its parent, the group's leader, ignores it to outlive the kill).
PGRP_KILL = """
from ukernel.abi import SIG_DFL, SIG_IGN, SIGTERM, WIFSIGNALED


async def main(sys, argv):
    leader = await sys.fork()
    if leader == 0:
        await sys.setpgid(0, 0)
        await sys.sigaction(SIGTERM, SIG_IGN)
        late = await sys.fork()
        if late == 0:
            await sys.sigaction(SIGTERM, SIG_DFL)
            await sys.getppid()  # a signal is taken at a syscall's kernel exit
            return 0
        _, status = await sys.waitpid(late, 0)
        await sys.write(1, b"late killed\\n" if WIFSIGNALED(status) else b"late exited\\n")
        return 0
    await sys.setpgid(leader, leader)
    await sys.kill(-leader, SIGTERM)
    await sys.waitpid(leader, 0)
    return 0
"""


def explored(tmp_path, name: str, source: str, argv: list[str]) -> tuple:
    """The default search and caching alone on one program: both complete, same findings."""
    prog = program_file(tmp_path, name, source)
    both, cached = ukernel.explore(prog, [name, *argv]), ukernel.explore(prog, [name, *argv], reduction=False)
    assert both.complete and cached.complete
    assert found(both) == found(cached)
    return both, cached


#: Each setting of REAP_RACE and the outputs every path has (checked against caching alone:
#: test_long_the_races_find_what_caching_alone_finds).
REAP_OUTPUTS = [
    ({}, {"pid 5\n"}),
    ({"pid_max": 5}, {"pid 3\n", "errno 11\n"}),
    ({"nproc": 4}, {"pid 5\n", "errno 11\n"}),
]


@pytest.mark.parametrize(("settings", "outputs"), REAP_OUTPUTS[1:])
def test_a_fork_that_could_see_a_reap_is_explored_both_ways(tmp_path, settings, outputs):
    """The reap frees a pid and lowers the thread count: a fork elsewhere commutes with it
    while neither the pid allocator nor the limit can tell (the default limits: one output);
    past a wrap or near RLIMIT_NPROC both orders are explored, and both outputs found."""
    prog = program_file(tmp_path, "reaprace", REAP_RACE)
    both = ukernel.explore(prog, ["reaprace"], **settings)
    assert both.complete and {o for o, _ in found(both)[0]} == outputs


@pytest.mark.parametrize("how", ["default", "ignore", "handler", "blocked"])
def test_sigchld_with_each_disposition_finds_what_caching_alone_finds(tmp_path, how):
    both, _ = explored(tmp_path, "sigchld", SIGCHLD_RACE, [how])
    statuses = {o.rpartition("status ")[2] for o, _ in found(both)[0]}
    assert statuses == ({"-1\n"} if how == "ignore" else {"768\n"})  # SIG_IGN: no zombie, ECHILD
    handled = {"handler" in o for o, _ in found(both)[0]}
    assert handled == ({True} if how == "handler" else {False})


def test_a_group_kill_races_a_fork_into_the_group(tmp_path):
    """kill(-g) touches the whole table: the newcomer's fork into g, its reset of SIGTERM."""
    prog = program_file(tmp_path, "pgrpkill", PGRP_KILL)
    both = ukernel.explore(prog, ["pgrpkill"])
    assert both.complete and {o for o, _ in found(both)[0] if "Traceback" not in o} == PGRP_OUTPUTS


#: What every path of PGRP_KILL prints (caching alone finds these, and the parent's setpgid
#: failing with ESRCH once its child is gone).
PGRP_OUTPUTS = {"", "late exited\n", "late killed\n"}


@LONG
@pytest.mark.parametrize("case", ["reap", "reap pid_max", "reap nproc", "pgrp"])
def test_long_the_races_find_what_caching_alone_finds(tmp_path, case):
    """The fast tests' programs, the default search against caching alone (too slow for
    make test: hundreds of runs without reduction)."""
    if case == "pgrp":
        explored(tmp_path, "pgrpkill", PGRP_KILL, [])
        return
    settings, outputs = REAP_OUTPUTS[["reap", "reap pid_max", "reap nproc"].index(case)]
    prog = program_file(tmp_path, "reaprace", REAP_RACE)
    both = ukernel.explore(prog, ["reaprace"], **settings)
    cached = ukernel.explore(prog, ["reaprace"], reduction=False, **settings)
    assert both.complete and cached.complete and found(both) == found(cached)
    assert {o for o, _ in found(both)[0]} == outputs
    assert both.runs < cached.runs


def test_forkbuf_1_finds_what_caching_alone_finds():
    both, cached = (
        ukernel.explore("forkbuf", ["forkbuf", "1"]),
        ukernel.explore("forkbuf", ["forkbuf", "1"], reduction=False),
    )
    assert both.complete and cached.complete and found(both) == found(cached)
    assert len(both.outcomes) == 2


def test_the_modes_of_the_task_counts():
    """A fork that cannot reach the limits and a reap change the thread count (commute); a
    fork near them reads it (conflicts with a reap, which could let it through)."""
    count = (COUNT, ("task", "nr_threads"))
    assert not dependent(frozenset({count}), frozenset({count}))
    assert dependent(frozenset({("task", "nr_threads")}), frozenset({count}))
    assert dependent(frozenset({(READ, ("signals", "signal", 3))}), frozenset({("signals", "signal", 3)}))
    assert not dependent(frozenset({(READ, ("signals", "signal", 3))}), frozenset({(READ, ("signals", "signal", 3))}))
