"""What links cond-var's steps, cut soundly (por.py): a fork or a wake is a happens-before edge
and never a race (``woken``); a race none of whose initials can run where it starts is not
reversible; a cached state's summary race takes one initial of the run after its step, and a
summary keeps what comes before each step below it (``Below``). Each search here is checked
against DPOR alone and, under ``make explore-check``, caching alone (which uses no footprint)."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file

import ukernel
from ukernel.explore.por import READ, Footprint, race_choices, races, wakes

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)

#: A waiter sleeps on a futex word a waker sets and wakes (CLONE_VM processes); each prints.
HANDOFF = """
from ukernel.abi import CLONE_VM, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD


async def waiter(sys, page):
    while await sys.peek(page, 1) == b"\\0":
        try:
            await sys.futex(page, FUTEX_WAIT, 0)
        except BlockingIOError:
            pass
    await sys.write(1, b"w")
    return 0


async def waker(sys, page):
    await sys.poke(page, b"\\1")
    await sys.futex(page, FUTEX_WAKE, 1)
    await sys.write(1, b"k")
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(page, bytes(4))
    tids = [await sys.clone(CLONE_VM | SIGCHLD, fn, page) for fn in (waiter, waker)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, b"\\n")
    return 0
"""

#: One child exits at once, the other prints; the parent prints, then reaps both: each exit
#: against a wait4 that sleeps for it or finds the zombie.
REAP = """
async def main(sys, argv):
    first = await sys.fork()
    if first == 0:
        return 3
    second = await sys.fork()
    if second == 0:
        await sys.write(1, b"b")
        return 0
    await sys.write(1, b"m")
    _, status = await sys.waitpid(first, 0)
    await sys.waitpid(second, 0)
    await sys.write(1, f" {status >> 8}\\n".encode())
    return 0
"""

#: A child that exits at once and one that runs on; the parent reaps the first, then prints.
REAPED = """
async def main(sys, argv):
    first = await sys.fork()
    if first == 0:
        return 0
    second = await sys.fork()
    if second == 0:
        await sys.getppid()
        return 0
    await sys.waitpid(first, 0)
    await sys.write(1, b"reaped\\n")
    await sys.waitpid(second, 0)
    return 0
"""

#: name -> the outcomes (worked out by hand: the two prints in either order)
PROGRAMS = {"HANDOFF": ["kw\n", "wk\n"], "REAP": ["bm 3\n", "mb 3\n"]}


def test_a_wake_is_an_edge_and_never_a_race():
    """The waker's step writes ("woken", q), each of q's steps reads it: they are ordered, and the
    pair is no race (q could not run before it), though they touch the same futex word."""
    word = ("futex", 1, 0x1000)
    fp = Footprint()
    fp.begin(3, resuming=False)
    fp.syscall(3, "futex")
    fp.touch(word, ("woken", 4))  # FUTEX_WAKE of pid 4 (cpu.py's wake_sleepers)
    fp.switch(4)
    fp.syscall(4, "futex")
    fp.touch(word)  # say its resume touched the word too
    (p, waker), (q, woken) = fp.take([], False)
    assert (READ, ("woken", 4)) in woken and wakes(waker, 4) and not wakes(woken, 3)
    assert races([p, q], [waker, woken]) == []
    # the same pair without the wake is a race, reversed by pid 4 first
    assert races([p, q], [waker - {("woken", 4)}, woken]) == [(0, {4})]


def test_a_race_whose_initials_cannot_run_there_adds_nothing():
    assert race_choices([1, 2, 3], {1}, {2, 5}) == [2]  # one initial that can run
    assert race_choices([1, 2, 3], {1, 5}, {2, 5}) == []  # one is there already
    assert race_choices([1, 3], {1}, {5}) == []  # 5 sleeps at that point: not reversible


def against(tmp_path, name: str, **reference) -> tuple:
    """The default search of PROGRAMS' ``name`` and the reference search, both complete with
    the same outcomes, which are the expected ones."""
    prog = program_file(tmp_path, name.lower(), globals()[name])
    both, ref = ukernel.explore(prog, [name.lower()]), ukernel.explore(prog, [name.lower()], **reference)
    assert both.complete and ref.complete and found(both) == found(ref)
    assert [o for o, _ in found(both)[0]] == PROGRAMS[name]
    return both, ref


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_default_finds_what_dpor_alone_finds(tmp_path, name):
    against(tmp_path, name, cache=False)


@LONG
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_long_the_default_finds_what_caching_alone_finds(tmp_path, name):
    both, cached = against(tmp_path, name, reduction=False)
    assert both.runs < cached.runs


class Plan:
    """A chooser that gives the CPU to the listed pids, one per point, then lets the current
    task go on; it keeps each point's (kind, pid, syscall) and state digest."""

    wants_state = True

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.points = list(pids), []

    def choose(self, point: dict) -> int:
        self.points.append(((point["kind"], point["pid"], point["syscall"]), point["state"]))
        return point["options"].index(self.pids.pop(0)) if self.pids else 0


def test_a_wait4_asleep_first_and_one_that_finds_the_zombie_reach_one_state(tmp_path):
    """The parent's wait4 sleeps, then the child's exit wakes it; or the child exits first and
    the wait4 finds the zombie: two orders (their steps do not commute), one state once the
    parent has reaped, so caching merges them at its next point (docs/explore.md, stop 28)."""
    prog = program_file(tmp_path, "reaped", REAPED)
    asleep, found_it = Plan([2, 2, 3, 3, 2]), Plan([2, 3, 3, 2])
    for plan in (asleep, found_it):
        assert ukernel.run(prog, ["reaped"], schedule=plan).stdout == b"reaped\n"
    write = ("entry", 2, "write")
    assert [k for k, _ in asleep.points][:6] == [
        ("entry", 2, "fork"), ("entry", 2, "wait4"), ("schedule", 2, "blocked"),
        ("entry", 3, "exit_group"), ("schedule", 3, "dead"), write,
    ]  # fmt: skip
    assert [k for k, _ in found_it.points][:4] == [
        ("entry", 2, "fork"), ("entry", 2, "wait4"), ("entry", 3, "exit_group"), ("schedule", 3, "dead"),
    ]  # fmt: skip
    assert found_it.points[4][0] == write and found_it.points[4][1] == asleep.points[5][1]
    assert asleep.points[4][1] != found_it.points[3][1]  # (asleep and woken, or at its entry: two states before)


#: Two children block reading a pipe no one will write, the parent in wait4: a deadlock of
#: three tasks, whose teardown (three kills, three exits, init's reaps) would have choices.
STUCK = """
async def main(sys, argv):
    r, w = await sys.pipe()
    for _ in range(2):
        if await sys.fork() == 0:
            await sys.read(r, 1)
            return 0
    await sys.waitpid(-1, 0)
    return 0
"""


def test_a_deadlocks_teardown_asks_no_choice(tmp_path):
    """Once the deadlock is found its outcome is known: the kills and exits after it are no
    choice point (choice.py ``ask``; before, this run had two there), and the default search
    finds the one deadlock DPOR alone finds."""
    prog = program_file(tmp_path, "stuck", STUCK)
    result = ukernel.run(prog, ["stuck"], schedule=[0], trace=True)
    assert [(row["pid"], row["wchan"] is not None) for row in result.hung if row["comm"] != "init"] == [
        (2, True), (3, True), (4, True),
    ]  # fmt: skip
    kinds = [e["type"] for e in result.trace]
    hung = kinds.index("hung")
    assert kinds[:hung].count("choice") == len(result.schedule) == 4 and "choice" not in kinds[hung:]
    default, alone = ukernel.explore(prog, ["stuck"]), ukernel.explore(prog, ["stuck"], cache=False)
    assert default.complete and alone.complete and found(default) == found(alone)
    assert len(default.deadlocks) == 1 and not default.outcomes
