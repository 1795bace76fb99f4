"""explore's footprints of mm's frames (services/mm_footprint.py): each frame's reference count
is its own object, and the allocator is two (never-used frames, freed ones), so one process's
exit commutes with another's fork or fault while frames are left. Checked two ways: every
pair of steps of two processes that the footprints call independent must commute on the
service itself (same state, same answers, same footprints in either order), and the default
search must find what caching alone (which uses no footprint) finds on programs where an exit,
a copy-on-write and a fault race for the last frames."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ukernel
from services.mm import MmService
from ukernel import abi
from ukernel.explore.por import dependent, touched_objects
from ukernel.testing import service_client

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)
PAGE = abi.PAGE_SIZE
RW = abi.PROT_READ | abi.PROT_WRITE
BASE = 0x10000000  # where the processes map their pages (MAP_FIXED)
PAGES = 3  # pages of the mapped area

#: A step of one process: (kind, args). The kinds are the mm messages one syscall (or fork,
#: exit, execve) sends for a task.
step = st.one_of(
    st.tuples(st.just("fork")),
    st.tuples(st.just("thread")),
    st.tuples(st.just("exit")),
    st.tuples(st.just("exec")),
    st.tuples(st.just("map"), st.integers(0, PAGES - 1), st.integers(1, 2), st.booleans()),
    st.tuples(st.just("touch"), st.integers(0, PAGES - 1), st.booleans()),
    st.tuples(st.just("unmap"), st.integers(0, PAGES - 1)),
    st.tuples(st.just("brk"), st.integers(0, 2)),
    st.tuples(st.just("protect"), st.integers(0, PAGES - 1), st.booleans()),
    st.tuples(st.just("cas"), st.integers(0, PAGES - 1), st.integers(0, 1)),
)
#: The history before the pair: (process index, step); the pair: two steps of two processes.
history = st.lists(st.tuples(st.integers(0, 7), step), max_size=14)


def messages(kind: str, mm: int, m: MmService, args: tuple) -> list[tuple[str, dict]]:
    """The messages of one step of a process whose mm is ``mm`` (execve's are two)."""
    at = BASE + args[0] * PAGE if args else 0
    if kind == "fork":
        return [("dup_mm", {"mm": mm})]
    if kind == "thread":
        return [("share_mm", {"mm": mm})]
    if kind == "exit":
        return [("mmput", {"mm": mm})]
    if kind == "exec":
        return [("mm_init", {}), ("mmput", {"mm": mm})]
    if kind == "map":
        flags = (abi.MAP_SHARED if args[2] else abi.MAP_PRIVATE) | abi.MAP_ANONYMOUS | abi.MAP_FIXED
        return [("mmap", {"mm": mm, "addr": at, "length": args[1] * PAGE, "prot": RW, "flags": flags})]
    if kind == "touch":
        return [
            ("write_mem", {"mm": mm, "addr": at, "data": b"w"})
            if args[1]
            else ("read_mem", {"mm": mm, "addr": at, "n": 1})
        ]
    if kind == "unmap":
        return [("munmap", {"mm": mm, "addr": at, "length": PAGE})]
    if kind == "cas":
        return [("cmpxchg", {"mm": mm, "addr": at, "old": args[1], "new": 7})]
    if kind == "brk":
        start = m.mms[mm].start_brk
        return [("brk", {"mm": mm, "addr": start + args[0] * PAGE})]
    return [("mprotect", {"mm": mm, "addr": at, "length": PAGE, "prot": RW if args[1] else abi.PROT_READ})]


class Machine:
    """An mm service and the processes using it (each an mm handle): the kernel's discipline,
    which the footprints rely on (only a user of an mm touches it; the last put is its last
    user's own step)."""

    def __init__(self, client) -> None:
        self.c = client
        self.mm: MmService = client.router.endpoints["mm"].service
        self.procs: list[int] = []

    async def boot(self) -> None:
        self.procs.append((await self.c.call("mm_init"))["mm"])

    def plan(self, who: int, kind: str, args: tuple) -> list[tuple[str, dict]]:
        return messages(kind, self.procs[who], self.mm, args)

    async def run(self, who: int, kind: str, plan: list[tuple[str, dict]]) -> tuple[list, frozenset]:
        """The step's answers (an errno for an error) and its footprint: each message's
        declaration as the service evaluates it when the message comes."""
        answers, touched = [], set()
        for op, args in plan:
            said = self.mm.touched(op, args)
            objects = touched_objects("mm", [list(t) for t in said]) if said is not None else None
            touched |= objects if objects is not None else {("mm", "*")}
            try:
                answers.append(await self.c.call(op, **args))
            except OSError as exc:
                answers.append(exc.errno)
                break  # the kernel sends no more (an execve whose mm_init failed keeps its mm)
        self._after(who, kind, answers)
        return answers, frozenset(touched)

    def _after(self, who: int, kind: str, answers: list) -> None:
        first = answers[0]
        if kind in ("fork", "thread") and isinstance(first, dict):
            self.procs.append(first["mm"])
        elif kind == "exit":
            self.procs[who] = 0
        elif kind == "exec" and isinstance(first, dict):
            self.procs[who] = first["mm"]


#: Where every history starts: a process with private and shared pages in use forks twice,
#: so that three processes share frames (copy-on-write, MAP_SHARED).
START = [(0, ("map", 0, 2, False)), (0, ("map", 2, 1, True))] + [(0, ("touch", i, True)) for i in range(3)]
START += [(0, ("fork",)), (0, ("fork",))]


async def replay(machine: Machine, steps: list[tuple[int, tuple]]) -> None:
    """The start and the history, each step by a live process (index modulo the live ones)."""
    await machine.boot()
    for who, (kind, *args) in START + steps:
        alive = [i for i, mm in enumerate(machine.procs) if mm]
        if not alive:
            return
        p = alive[who % len(alive)]
        await machine.run(p, kind, machine.plan(p, kind, tuple(args)))


async def commutes(frames: int, prefix: list, first: tuple, second: tuple) -> bool | None:
    """Run the history, then ``first`` and ``second`` (each ``(process, step)``: a process index
    among the live ones) on one service and, if their footprints as they ran are independent,
    the other way round on another: then the answers, footprints and states must be the same
    (the condition source-DPOR needs). True when they commute so, False when dependent, None
    when the pair is no pair (one process; two threads of one mm where one leaves it)."""
    async with (
        service_client(MmService(memory=frames * PAGE)) as c1,
        service_client(MmService(memory=frames * PAGE)) as c2,
    ):
        one, two = Machine(c1), Machine(c2)
        for m in (one, two):
            await replay(m, prefix)
        alive = [i for i, mm in enumerate(one.procs) if mm] or [0]
        a, b = alive[first[0] % len(alive)], alive[second[0] % len(alive)]
        if a == b or one.procs[a] == one.procs[b] and "exit" in (first[1][0], second[1][0]):
            return None
        (ka, *xa), (kb, *xb) = first[1], second[1]
        plan_a, plan_b = one.plan(a, ka, tuple(xa)), one.plan(b, kb, tuple(xb))
        ran_a = await one.run(a, ka, plan_a)
        ran_b = await one.run(b, kb, plan_b)
        if dependent(ran_a[1], ran_b[1]):
            return False
        swapped_b = await two.run(b, kb, plan_b)
        swapped_a = await two.run(a, ka, plan_a)
        assert (_seen(swapped_a), _seen(swapped_b)) == (_seen(ran_a), _seen(ran_b))
        assert await c1.call("state_digest") == await c2.call("state_digest")
        assert one.mm._check() == [] and two.mm._check() == []
        return True


def _seen(ran: tuple[list, frozenset]) -> tuple[list, frozenset]:
    """A step's answers as its task sees them: share_mm's and mmput's echo of mm_users is for the
    kernel's contract check only (counts commute, their running values differ)."""
    answers = [{k: v for k, v in a.items() if k != "users"} if isinstance(a, dict) else a for a in ran[0]]
    return answers, ran[1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, st.tuples(st.integers(0, 7), step), st.tuples(st.integers(0, 7), step), st.integers(7, 14))
async def test_steps_the_footprints_call_independent_commute(prefix, first, second, frames):
    """Any two steps of two processes after a random history. Few frames, so that allocations
    meet the end of the never-used ones, and ENOMEM."""
    verdict = await commutes(frames, prefix, first, second)
    event({None: "no pair", False: "dependent", True: f"commute: {first[1][0]}, {second[1][0]}"}[verdict])


#: START leaves processes 0, 1 and 2 sharing pages 0 and 1 (copy-on-write, 3 references
#: each) and page 2 (MAP_SHARED), in 6 frames: (frames, history, first, second, commute?).
PAIRS = {
    "an exit and a fork, frames left": (9, [], (1, ("exit",)), (0, ("fork",)), True),
    "an exit and a fork that needs its freed frames": (6, [], (1, ("exit",)), (0, ("fork",)), False),
    "an exit and a first touch, frames left": (
        9,
        [(0, ("map", 0, 1, False))],
        (1, ("exit",)),
        (0, ("touch", 0, True)),
        True,
    ),
    "a copy-on-write and the other holder's exit": (
        9,
        [(2, ("touch", 0, True))],
        (1, ("exit",)),
        (0, ("touch", 0, True)),
        False,
    ),
    "the last two holders' exits": (9, [(2, ("exit",))], (1, ("exit",)), (0, ("exit",)), False),
    "two exits, a holder left": (9, [], (1, ("exit",)), (2, ("exit",)), True),
    # the handler loads before it stores: the load faults the page in, then the store EFAULTs
    "a cmpxchg on a read-only page it faults in, and a fork": (
        9,
        [(0, ("map", 0, 1, False)), (0, ("protect", 0, False))],
        (0, ("cas", 0, 0)),
        (1, ("fork",)),
        False,
    ),
}


@pytest.mark.parametrize("name", list(PAIRS))
async def test_pairs_that_commute_and_pairs_that_do_not(name):
    frames, prefix, first, second, commute = PAIRS[name]
    assert await commutes(frames, prefix, first, second) is commute
    assert await commutes(frames, prefix, second, first) is commute


@pytest.mark.parametrize(("frames", "commute"), [(3, True), (2, False)])
async def test_an_exit_and_a_fork_commute_while_never_used_frames_are_left(frames, commute):
    """The link fork-buf had: every fork's dup_mm and every last mmput wrote one allocator.
    The fork's page-table frame is a never-used one while there is one (3 frames: two page
    tables, one left); with none left it takes a freed one, which the exit gives back."""
    async with service_client(MmService(memory=frames * PAGE)) as c:
        mm = c.router.endpoints["mm"].service
        parent, leaving = [(await c.call("mm_init"))["mm"] for _ in range(2)]
        fork, leave = (_objects(mm, op, mm=h) for op, h in (("dup_mm", parent), ("mmput", leaving)))
        assert dependent(fork, leave) is not commute
        assert (("mm", "next", 0) in fork) and (("mm", "free", 0) in fork) is not commute


def _objects(service: MmService, op: str, **args) -> frozenset:
    return frozenset(touched_objects("mm", [list(t) for t in service.touched(op, args)]))


#: Two children each take a frame (a first touch) and exit, with one frame left once both
#: exist (argv[1] frames taken first): the second to fault is killed, unless the first's exit
#: gave its frames back before: a free and an allocation in either order.
OOM_RACE = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, WIFSIGNALED


async def child(sys):
    page = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.peek(page, 1)
    return 0


async def main(sys, argv):
    eat = int(argv[1])
    region = await sys.mmap(0, eat * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.peek(region, eat * PAGE_SIZE)  # a first touch of each page: a frame each
    kids = []
    for _ in range(2):
        pid = await sys.fork()
        if pid == 0:
            return await child(sys)
        kids.append(pid)
    for name, pid in zip("AB", kids):
        _, status = await sys.waitpid(pid, 0)
        await sys.write(1, f"{name} {'killed' if WIFSIGNALED(status) else 'exited'}\\n".encode())
    return 0
"""

#: A copy-on-write with no frame left (argv[1] frames taken first): the parent's store copies
#: the page while the child still maps it (no frame: the OOM killer), or reuses it in place
#: once the child has gone: the fault reads the frame's count, which the child's exit lowers.
COW_RACE = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE


async def main(sys, argv):
    eat = int(argv[1])
    region = await sys.mmap(0, eat * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.peek(region, eat * PAGE_SIZE)  # a first touch of each page: a frame each
    page = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.poke(page, b"p")
    pid = await sys.fork()
    if pid == 0:
        await sys.write(1, b"child " + await sys.peek(page, 1) + b"\\n")
        return 0
    await sys.poke(page, b"q")
    await sys.write(1, b"parent " + await sys.peek(page, 1) + b"\\n")
    await sys.waitpid(pid, 0)
    return 0
"""

#: A MAP_SHARED page the child keeps after its parent's exit (argv[1] "touched": the page
#: exists before the fork; else the first to touch it makes it): the child sees the parent's
#: store or not, and its own store lands in the object the parent's exit left.
SHARED_KEPT = """
from ukernel.abi import MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE


async def main(sys, argv):
    page = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    if argv[1] == "touched":
        await sys.poke(page, b"a")
    if await sys.fork() == 0:
        seen = await sys.peek(page, 1)
        await sys.poke(page + 1, b"c")
        await sys.write(1, b"saw " + seen + await sys.peek(page, 2) + b"\\n")
        return 0
    await sys.poke(page, b"b")
    return 0
"""

#: 1M is 256 frames, 2 in use when the program starts (init's and its own page tables).
OOM_EAT, COW_EAT = "251", "252"
CASES: dict[str, tuple[str, list[str], dict, set[tuple[str, int]]]] = {
    "oom": (
        OOM_RACE,
        [OOM_EAT],
        {"memory": "1M"},
        {("A exited\nB exited\n", 0), ("A exited\nB killed\n", 0), ("A killed\nB exited\n", 0)},
    ),
    "cow": (COW_RACE, [COW_EAT], {"memory": "1M"}, {("child p\n", 137), ("child p\nparent q\n", 0)}),
    "shared touched": (SHARED_KEPT, ["touched"], {}, {("saw aac\n", 0), ("saw abc\n", 0), ("saw bbc\n", 0)}),
    "shared fresh": (SHARED_KEPT, ["fresh"], {}, {("saw \0\0c\n", 0), ("saw \0bc\n", 0), ("saw bbc\n", 0)}),
}


def search(tmp_path, case: str, **how) -> tuple[ukernel.explore, set]:
    source, argv, run_settings, outcomes = CASES[case]
    prog = program_file(tmp_path, case.split()[0], source)
    return ukernel.explore(prog, ["t", *argv], **run_settings, **how), outcomes


@pytest.mark.parametrize("case", list(CASES))
def test_the_default_search_finds_every_outcome_of_the_frame_races(tmp_path, case):
    """Each program's outcomes, worked out by hand and found by caching alone (the long test):
    with a whole allocator every fork, fault and exit conflicted; now they conflict where a
    frame's count or the freed frames make the difference."""
    result, outcomes = search(tmp_path, case)
    assert result.complete and set(found(result)[0]) == outcomes
    assert found(result)[1:] == ([], [])  # no deadlock, no leak


@LONG
@pytest.mark.parametrize("case", list(CASES))
def test_long_the_frame_races_find_what_caching_alone_finds(tmp_path, case):
    both, outcomes = search(tmp_path, case)
    cached, _ = search(tmp_path, case, reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached)
    assert set(found(cached)[0]) == outcomes and both.runs < cached.runs
