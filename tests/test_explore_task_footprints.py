"""explore's kernel-side footprints (issue 17): the task table per thread group, futex words
one by one, and futex choice points kept under stateful DPOR. Each reduced search must find
exactly what a search that does not use footprints finds (caching alone, or every path)."""

from __future__ import annotations

import pytest
from conftest import found, program_file

import ukernel
from ukernel.explore.por import GLOBAL, Footprint, dependent

#: Two waiters on one futex word and a FUTEX_WAKE of 1: which waiter wakes is a ``futex``
#: choice point (futex(2) leaves it open); the other one waits for ever (a deadlock).
WAKE_ONE = """
from ukernel.abi import CLONE_VM, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD


async def waiter(sys, page):
    await sys.futex(page, FUTEX_WAIT, 0)
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    tids = [await sys.clone(CLONE_VM | SIGCHLD, waiter, page) for _ in range(2)]
    await sys.futex(page, FUTEX_WAKE, 1)
    for tid in tids:
        await sys.waitpid(tid, 0)
    return 0
"""

#: kill(pid) touches its target only: a bystander's steps are no race with it.
KILL_RACE = """
from ukernel.abi import SIG_BLOCK, SIGKILL, SIGUSR2, WIFSIGNALED


async def main(sys, argv):
    other = await sys.fork()
    if other == 0:
        for _ in range(int(argv[1])):
            await sys.sigprocmask(SIG_BLOCK, {SIGUSR2})
        return 0
    victim = await sys.fork()
    if victim == 0:
        await sys.write(1, b"alive\\n")
        return 0
    await sys.kill(victim, SIGKILL)
    _, status = await sys.waitpid(victim, 0)
    await sys.waitpid(other, 0)
    await sys.write(1, b"killed\\n" if WIFSIGNALED(status) else b"exited\\n")
    return 0
"""

#: An orphan asks getppid while its parent exits.
ORPHAN = """
async def main(sys, argv):
    if await sys.fork() == 0:
        if await sys.fork() == 0:
            ppid = await sys.getppid()
            await sys.write(1, b"orphan" if ppid == 1 else b"child")
        return 0
    return 0
"""


def test_a_futex_choice_point_keeps_the_stateful_search(tmp_path):
    """A FUTEX_WAKE of one of two waiters no longer gives DPOR up: the point takes every
    option, and the search finds what caching alone finds (the three deadlocks: either
    waiter left, or both when the wake came first)."""
    prog = program_file(tmp_path, "wakeone", WAKE_ONE)
    both, cached = ukernel.explore(prog, ["wakeone"]), ukernel.explore(prog, ["wakeone"], reduction=False)
    assert both.method == "source-DPOR, sleep sets and state caching"  # not "(DPOR met ...)"
    assert both.complete and cached.complete and found(both) == found(cached)
    assert len(both.deadlocks) == 3 and all("futex" in repr(d["waits"]) for d in both.deadlocks)


def test_a_kill_race_is_found_as_without_footprints(tmp_path):
    """kill(pid) touches its target only: the outcomes caching alone finds (every path's too,
    checked once by hand: 2,766 runs), in fewer runs."""
    prog = program_file(tmp_path, "killrace", KILL_RACE)
    both, cached = ukernel.explore(prog, ["killrace", "0"]), ukernel.explore(prog, ["killrace", "0"], reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached)
    assert [o for o, _ in found(both)[0]] == ["alive\nexited\n", "alive\nkilled\n"]
    assert both.runs < cached.runs


def test_a_bystander_does_not_multiply_a_kill_race(tmp_path):
    """A third process doing syscalls on its own objects adds no order to explore: its
    steps are independent of the kill (it was GLOBAL), of the forks and of the exits."""
    prog = program_file(tmp_path, "killrace", KILL_RACE)
    one, four = (ukernel.explore(prog, ["killrace", n], cache=False) for n in ("1", "4"))
    assert one.complete and four.complete and found(one) == found(four)
    assert four.runs <= one.runs + 12  # a few more steps to place against the victim's, not binomial


def test_an_orphans_getppid_races_its_parents_exit_only(tmp_path):
    """The orphan's getppid against its parent's exit (which touches every child it
    reparents) is the race: both answers, as caching alone (and every path) finds them."""
    prog = program_file(tmp_path, "orphan", ORPHAN)
    both, cached = ukernel.explore(prog, ["orphan"]), ukernel.explore(prog, ["orphan"], reduction=False)
    assert both.complete and cached.complete
    assert found(both) == found(cached) == ([("child", 0), ("orphan", 0)], [], [])
    assert both.runs < cached.runs


@pytest.mark.parametrize("argv", [["lostupdate", "1"], ["forkbuf", "1"]])
def test_refined_task_footprints_find_what_caching_alone_finds(argv):
    """The shared counter and fork's buffer (waitrace: tests/test_explore_por.py)."""
    both, dpor = ukernel.explore(argv[0], argv), ukernel.explore(argv[0], argv, cache=False)
    cached = ukernel.explore(argv[0], argv, reduction=False)
    assert both.complete and dpor.complete and cached.complete
    assert found(both) == found(dpor) == found(cached)


def test_task_and_futex_objects_conflict_one_by_one_and_with_the_whole_table():
    a, b = frozenset({("task", 3)}), frozenset({("task", 4)})
    assert not dependent(a, b) and dependent(a, frozenset({("task", 3), ("vfs", "*")}))
    assert dependent(a, frozenset({("task", "*")})) and dependent(frozenset({("task", "pgrp", (2,))}), {("task", "*")})
    word, other = frozenset({("futex", 1, 0x1000)}), frozenset({("futex", 1, 0x1004)})
    assert not dependent(word, other) and dependent(word, word)


def test_a_hooked_syscall_adds_only_what_the_kernel_touched():
    """fork, exit, wait4, getppid, kill and futex name their objects through the hooks;
    setpgid is the whole task table; a syscall in no table is GLOBAL."""
    fp = Footprint()
    fp.begin(3, resuming=False)
    fp.syscall(3, "wait4")
    fp.touch(("task", 3))
    fp.switch(4)
    fp.syscall(4, "setpgid")
    fp.switch(5)
    fp.syscall(5, "tgkill")
    steps = fp.take([], False)
    # (each step also reads that its task was made runnable: ("woken", pid), por.py ``woken``)
    assert steps == [
        (3, frozenset({("task", 3), ("r", ("woken", 3))})),
        (4, frozenset({("task", "*"), ("r", ("woken", 4))})),
        (5, frozenset({GLOBAL, ("r", ("woken", 5))})),
    ]
