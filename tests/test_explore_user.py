"""explore's footprints on user memory (user/watch.py): which globals each step of a thread
read and wrote, and that the search with them finds what caching alone finds."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from ukernel.explore.por import READ, Footprint, dependent
from ukernel.user import watch
from ukernel.user.watch import EVERY, Walk, WatchedGlobals, walk_globals

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)

#: Two threads, each adding to its own global: their steps commute.
DIFFERENT = """
from ukernel.abi import CLONE_VM, SIGCHLD

a = 0
b = 0


async def bump_a(sys, _):
    global a
    tmp = a
    await sys.sched_yield()
    a = tmp + 1
    return 0


async def bump_b(sys, _):
    global b
    tmp = b
    await sys.sched_yield()
    b = tmp + 1
    return 0


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, bump_a, None), await sys.clone(CLONE_VM | SIGCHLD, bump_b, None)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"{a} {b}\\n".encode())
    return 0
"""

#: A global list changed in place through a local alias, and read through a clone argument.
ALIAS = """
from ukernel.abi import CLONE_VM, SIGCHLD

log = []


async def writer(sys, item):
    mine = log  # the only load of the global
    await sys.sched_yield()
    mine.append(item)  # in place, through the alias
    await sys.sched_yield()
    return 0


async def reader(sys, items):
    await sys.sched_yield()
    seen = len(items)  # the global's list, never named
    await sys.write(1, f"saw {seen}\\n".encode())
    return 0


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, writer, "x"), await sys.clone(CLONE_VM | SIGCHLD, reader, log)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    return 0
"""

#: Two threads append to a list no global holds (main's local, passed to both).
SHARED = """
from ukernel.abi import CLONE_VM, SIGCHLD


async def adder(sys, box):
    await sys.sched_yield()
    box.append(await sys.gettid())
    await sys.sched_yield()
    return 0


async def main(sys, argv):
    box = []
    tids = [await sys.clone(CLONE_VM | SIGCHLD, adder, box) for _ in range(2)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"{box}\\n".encode())
    return 0
"""

#: A for loop over a global list (its iterator on the stack, the global loaded once).
ITERATE = """
from ukernel.abi import CLONE_VM, SIGCHLD

items = [1, 2]


async def walker(sys, _):
    total = 0
    for x in items:
        total += x
        await sys.sched_yield()
    await sys.write(1, f"sum {total}\\n".encode())
    return 0


async def grower(sys, _):
    await sys.sched_yield()
    items.append(10)
    return 0


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, walker, None), await sys.clone(CLONE_VM | SIGCHLD, grower, None)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    return 0
"""

#: A global's list held on the value stack only (an argument being built) across an await:
#: ``reader`` loads ``items`` in one step and reads it in the next, with no local holding it.
STACK = """
from ukernel.abi import CLONE_VM, SIGCHLD

items = []


async def show(sys, before, seen, _):
    await sys.write(1, f"{before} {len(seen)}\\n".encode())


async def reader(sys, _):
    await show(sys, len(items), items, await sys.getppid())
    return 0


async def writer(sys, _):
    await sys.getppid()
    items.append(1)
    return 0


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, reader, None), await sys.clone(CLONE_VM | SIGCHLD, writer, None)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    return 0
"""

#: A global dict changed in one step (cond-var's ``state``): no frame holds it after.
DICT = """
from ukernel.abi import CLONE_VM, SIGCHLD

state = {"n": 0}


async def bump(sys, _):
    state["n"] += 1
    await sys.getppid()
    await sys.getppid()
    return 0


async def main(sys, argv):
    tid = await sys.clone(CLONE_VM | SIGCHLD, bump, None)
    await sys.waitpid(tid, 0)
    await sys.write(1, f"{state['n']}\\n".encode())
    return 0
"""


class Steps:
    """A chooser that lets the current task go on everywhere and keeps each step's footprint
    (explore's Tree does the same at every point)."""

    def __init__(self) -> None:
        self.footprint = Footprint()
        self.steps: list[tuple[int, frozenset]] = []
        self.mms: dict = {}

    def choose(self, point: dict) -> int:
        self.steps += self.footprint.take([self.mms, point["owners"]], False)
        self.mms = point["owners"]
        self.footprint.begin(point["options"][0], resuming=point["kind"] != "entry")
        return 0

    def user(self, pid: int) -> list[set]:
        """Each step of ``pid``: its user-memory objects, as ("r" or "w", name), or "*"."""
        out = []
        for p, fp in self.steps:
            if p == pid:
                names = {(READ, o[1][1]) for o in fp if o[0] == READ and o[1][0][0] == "user"}
                names |= {"*" if o[1] == "*" else ("w", o[1]) for o in fp if type(o[0]) is tuple}
                out.append(names)
        return out


def steps_of(tmp_path, name: str, source: str) -> Steps:
    """One run's steps (main is pid 2, its first thread 3, the second 4)."""
    steps = Steps()
    result = ukernel.run(program_file(tmp_path, name, source), [name], schedule=steps)
    assert result.exit_code == 0 and not result.problems
    steps.steps += steps.footprint.take([steps.mms], False)  # the steps after the last point
    return steps


# --- the namespace --------------------------------------------------------------------------
def test_a_watched_namespace_notes_loads_and_whole_reads():
    ns = WatchedGlobals({"__name__": "__main__"})
    exec("x = 1\ndef f():\n    return x + len([])\n", ns)
    ns.reads.clear()
    assert ns["f"]() == 1
    assert ns.reads == {"f", "x", "len"}  # len: looked for in the globals first, then in builtins
    ns.reads.clear()
    exec("def g():\n    return sorted(globals().items())\n", ns)
    ns["g"]()
    assert EVERY in ns.reads
    held = Walk(ns)
    held.form([ns])  # globals() in a local: every name, whatever the step loads
    assert held.whole


def test_a_write_is_a_change_of_form_in_place_or_by_rebinding():
    ns = WatchedGlobals({"__name__": "__main__", "box": [1], "n": 1})
    exec("class C:\n    count = 0\n", ns)
    before = walk_globals(ns)
    ns["box"].append(2)
    ns["C"].count += 1
    again = walk_globals(ns)
    assert {n for n in before if before[n].form != again[n].form} == {"box", "C"}
    dict.__setitem__(ns, "box", [1, 2])  # an equal copy: another object, still a write
    dict.__setitem__(ns, "n", 1)
    third = walk_globals(ns)
    assert {n for n in again if again[n].form != third[n].form} == {"box"}
    assert id(ns["box"]) in third["box"].ids and not third["n"].ids


def test_read_modes_commute_and_a_write_or_the_whole_conflicts():
    space = ("user", 3)
    read_a, read_b = frozenset({(READ, (space, "a"))}), frozenset({(READ, (space, "b"))})
    write_a = frozenset({(space, "a")})
    assert not dependent(read_a, read_a) and not dependent(read_a, read_b) and not dependent(write_a, read_b)
    assert dependent(read_a, write_a) and dependent(write_a, read_a) and dependent(write_a, write_a)
    whole = frozenset({(space, "*")})
    assert dependent(whole, read_b) and dependent(read_b, whole)
    assert not dependent(frozenset({(("user", 4), "*")}), read_a)  # another address space


# --- what each step touched -----------------------------------------------------------------
def test_threads_touch_only_the_globals_they_use(tmp_path):
    steps = steps_of(tmp_path, "different", DIFFERENT)
    a, b = steps.user(3), steps.user(4)
    assert {(READ, "a")} <= a[0] and any(("w", "a") in s for s in a)
    assert any(("w", "b") in s for s in b)
    assert not any(n[1] == "b" for s in a for n in s if n != "*") and not any(
        n[1] == "a" for s in b for n in s if n != "*"
    )


def test_an_alias_reads_the_global_it_shares_an_object_with(tmp_path):
    """reader never names ``log``: its clone argument is log's list, so each of its steps
    reads log while its frame holds it (the last one, its exit, does not); writer's append
    through its local is a write of log."""
    steps = steps_of(tmp_path, "alias", ALIAS)
    writer, reader = steps.user(3), steps.user(4)
    assert [("w", "log") in s for s in writer] == [False, True, False]
    assert [(READ, "log") in s for s in reader] == [True, True, True, False]
    assert not any(n[1] == "log" for n in reader[-1])


def test_a_for_loops_iterator_on_the_stack_reads_its_global(tmp_path):
    """walker's loop loads ``items`` once; its iterator (on the value stack, no local holds it)
    reads it at every step of the loop."""
    steps = steps_of(tmp_path, "iterate", ITERATE)
    walker = steps.user(3)
    assert len(walker) >= 3 and all((READ, "items") in s for s in walker[1:])
    assert any(("w", "items") in s for s in steps.user(4))


def test_what_a_value_stack_holds_is_read_and_nothing_else_stays_read(tmp_path):
    """reader's second step holds items' list on its stack only (an argument being built): it
    reads items. bump's steps after its change hold nothing of state: they do not read it."""
    reader = steps_of(tmp_path, "stack", STACK).user(3)
    assert [(READ, "items") in s for s in reader[:2]] == [True, True]
    bump = steps_of(tmp_path, "dict", DICT).user(3)
    assert ("w", "state") in bump[0] and not any(n[1] == "state" for s in bump[1:] for n in s)


def test_a_stack_that_cannot_be_read_keeps_every_loaded_global_read(tmp_path, monkeypatch):
    """Where a frame's stack cannot be read (another Python), a name once loaded stays read."""
    monkeypatch.setattr(watch, "frame_objects", lambda frame: None)
    bump = steps_of(tmp_path, "dict", DICT).user(3)
    assert ("w", "state") in bump[0] and all((READ, "state") in s for s in bump[1:])


def test_the_default_finds_the_use_of_a_stack_held_global_after_another_threads_change(tmp_path):
    """``0 1``: writer's append between reader's load and its use (missed when only locals are
    walked: reader's second step then touches nothing of items)."""
    result = ukernel.explore(program_file(tmp_path, "stack", STACK), ["stack"])
    assert result.complete and found(result) == ([("0 0\n", 0), ("0 1\n", 0), ("1 1\n", 0)], [], [])


def test_an_object_two_threads_share_without_a_global_is_all_of_user_memory(tmp_path):
    steps = steps_of(tmp_path, "shared", SHARED)
    # each thread's three steps while its frame holds box (its exit step does not: not seen here)
    assert [["*" in s for s in steps.user(pid)[:3]] for pid in (3, 4)] == [[True] * 3] * 2


# --- the search with them -------------------------------------------------------------------
def test_threads_on_different_globals_reduce_to_what_caching_alone_finds(tmp_path):
    prog = program_file(tmp_path, "different", DIFFERENT)
    both, cached = ukernel.explore(prog, ["different"]), ukernel.explore(prog, ["different"], reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached) == ([("1 1\n", 0)], [], [])
    assert both.runs < cached.runs


@LONG
@pytest.mark.parametrize(
    ("name", "outcomes"),
    [
        ("ALIAS", ["saw 0\n", "saw 1\n"]),
        ("SHARED", ["[3, 4]\n", "[4, 3]\n"]),
        ("ITERATE", ["sum 13\n", "sum 3\n"]),
        ("STACK", ["0 0\n", "0 1\n", "1 1\n"]),
        ("DICT", ["1\n"]),
    ],
)
def test_long_aliased_objects_reduce_to_what_caching_alone_finds(tmp_path, name, outcomes):
    prog = program_file(tmp_path, name.lower(), globals()[name])
    both, cached = ukernel.explore(prog, [name.lower()]), ukernel.explore(prog, [name.lower()], reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached)
    assert [o for o, _ in found(both)[0]] == outcomes


@LONG
@pytest.mark.parametrize(
    ("argv", "outcomes"),
    [
        (["parinc", "2", "2"], ["total 2\n", "total 3\n", "total 4\n"]),
        (["condvar", "1", "1"], ["done, count 0\n"]),
    ],
)
def test_long_the_default_finds_what_caching_alone_finds(argv, outcomes):
    both, cached = ukernel.explore(argv[0], argv), ukernel.explore(argv[0], argv, reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached)
    assert [o for o, _ in found(both)[0]] == outcomes


#: A thread's step on the globals: each ends at an await; what it holds across one is on its
#: value stack, in a loop's iterator or in a local.
OPS = {
    "hold": "await show(sys, len(items), items, await sys.getppid())",
    "append": "items.append(1)\n    await sys.getppid()",
    "bump": "state['n'] += 1\n    await sys.getppid()",
    "loop": "for x in items:\n        await sys.getppid()",
    "local": "mine = state\n    await sys.getppid()\n    mine['n'] += 10",
    "print": "await sys.write(1, f\"{state['n']} {len(items)};\".encode())",
}


def threads(first: list[str], second: list[str]) -> str:
    """Two threads doing the given steps on ``items`` and ``state``; main prints both at the end."""

    def body(ops: list[str]) -> str:
        return "".join(f"\n    {OPS[o]}" for o in ops) + "\n    return 0"

    return f"""
from ukernel.abi import CLONE_VM, SIGCHLD

items = []
state = {{"n": 0}}


async def show(sys, before, seen, _):
    await sys.write(1, f"{{before}} {{len(seen)}};".encode())


async def one(sys, _):{body(first)}


async def two(sys, _):{body(second)}


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, fn, None) for fn in (one, two)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"| {{state['n']}} {{len(items)}}\\n".encode())
    return 0
"""


THREAD = st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=2)


@LONG
@given(THREAD, THREAD)
@settings(
    max_examples=6, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None
)
def test_long_generated_threads_on_held_globals_find_what_caching_alone_finds(tmp_path, first, second):
    prog = program_file(tmp_path, "gen", threads(first, second))
    both, cached = ukernel.explore(prog, ["gen"]), ukernel.explore(prog, ["gen"], reduction=False)
    assert both.complete and cached.complete and found(both) == found(cached)
