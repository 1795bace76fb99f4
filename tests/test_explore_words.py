"""explore's footprints on memory words (services/mm_footprint.py): a load or store touches the
4-byte words it reaches, by physical address, so accesses to different words of one page
commute; a fault or a whole-page access conflicts with every word of the page; a failed
cmpxchg is a load. Each search here is checked against caching alone (no footprints)."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file

import ukernel
from services.mm import MmService
from ukernel import abi
from ukernel.explore.por import COUNT, READ, dependent, touched_objects
from ukernel.testing import service_client
from ukernel.user import watch

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)
RW, SHARED = abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED | abi.MAP_ANONYMOUS


def objects(service: MmService, op: str, **args) -> frozenset:
    """What ``op`` would touch now, as footprint objects."""
    return frozenset(touched_objects("mm", [list(t) for t in service.touched(op, args)]))


async def test_words_of_one_page_commute_and_a_whole_page_or_a_fault_conflicts_with_them():
    async with service_client(MmService()) as c:
        m = (await c.call("mm_init"))["mm"]
        page = await c.call("mmap", mm=m, addr=0, length=4096, prot=RW, flags=SHARED)
        mm = c.router.endpoints["mm"].service
        first = objects(mm, "write_mem", mm=m, addr=page, data=b"x")
        # not present: the store faults it in, making the object's page from a never-used frame
        assert first == {("mm", "mm", m), ("mm", "shmem", 1), ("mm", "next", 0)}
        await c.call("write_mem", mm=m, addr=page, data=bytes(8))
        store0, store4 = (objects(mm, "write_mem", mm=m, addr=page + a, data=b"1234") for a in (0, 4))
        load0, load4 = (objects(mm, "read_mem", mm=m, addr=page + a, n=4) for a in (0, 4))
        assert not dependent(store0, store4) and not dependent(store0, load4) and not dependent(load0, load4)
        assert dependent(store0, load0) and dependent(store0, store0) and not dependent(load0, load0)
        assert dependent(first, store0) and dependent(first, load4)  # the fault writes the page table
        straddle = objects(mm, "read_mem", mm=m, addr=page + 2, n=4)  # bytes 2..5: both words
        assert dependent(straddle, store0) and dependent(straddle, store4)
        whole = objects(mm, "read_mem", mm=m, addr=page, n=4096)  # more than WORDS words: the page
        assert dependent(whole, store4) and not dependent(whole, load4) and not dependent(whole, whole)
        big = objects(mm, "write_mem", mm=m, addr=page + 64, data=bytes(128))
        assert dependent(big, load0) and dependent(big, whole)
        await c.call("mmput", mm=m)


async def test_a_failed_cmpxchg_is_a_load_and_a_shared_first_touch_names_its_frame():
    async with service_client(MmService()) as c:
        parent = (await c.call("mm_init"))["mm"]
        page = await c.call("mmap", mm=parent, addr=0, length=4096, prot=RW, flags=SHARED)
        child = (await c.call("dup_mm", mm=parent))["mm"]  # before any touch: no PTE in either
        mm = c.router.endpoints["mm"].service
        await c.call("write_mem", mm=parent, addr=page, data=(1).to_bytes(4, "little"))
        fails = objects(mm, "cmpxchg", mm=parent, addr=page, old=0, new=7)
        wins = objects(mm, "cmpxchg", mm=parent, addr=page, old=1, new=7)
        load = objects(mm, "read_mem", mm=parent, addr=page, n=4)
        assert not dependent(fails, fails) and not dependent(fails, load) and dependent(wins, load)
        assert await c.call("cmpxchg", mm=parent, addr=page, old=0, new=7) == 1  # it did fail
        # the child's first touch maps the parent's frame: it conflicts with the parent's store
        pfn = mm.mms[parent].pfn_of[page // 4096]
        touch = objects(mm, "read_mem", mm=child, addr=page, n=4)
        assert ("mm", "page", pfn) in touch and dependent(
            touch, objects(mm, "write_mem", mm=parent, addr=page, data=b"2")
        )
        users = objects(mm, "share_mm", mm=parent)
        assert not dependent(users, load) and not dependent(users, users)  # mm_users is not the page table
        for m in (child, parent):
            await c.call("mmput", mm=m)


#: Two threads each add 1 to a word of one shared page, peek and poke apart: argv[1] "same"
#: for one word (a lost update), else each its own word.
TWO_WORDS = """
from ukernel.abi import CLONE_VM, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD


async def bump(sys, addr):
    value = int.from_bytes(await sys.peek(addr, 4), "little")
    await sys.poke(addr, (value + 1).to_bytes(4, "little"))
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(page, bytes(8))  # faulted in before the threads
    other = page if argv[1] == "same" else page + 4
    tids = [await sys.clone(CLONE_VM | SIGCHLD, bump, page), await sys.clone(CLONE_VM | SIGCHLD, bump, other)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    words = await sys.peek(page, 8)
    await sys.write(1, f"{words[0]} {words[4]}\\n".encode())
    return 0
"""

#: Two threads race a cmpxchg on one word: the winner stores its number in the next word.
CMPXCHG = """
from ukernel.abi import CLONE_VM, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD


async def grab(sys, arg):
    addr, me = arg
    if await sys.cmpxchg(addr, 0, me) == 0:
        await sys.poke(addr + 4, bytes([me]))
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(page, bytes(8))
    tids = [await sys.clone(CLONE_VM | SIGCHLD, grab, (page, me)) for me in (1, 2)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    got = await sys.peek(page, 8)
    await sys.write(1, f"{got[0]} {got[4]}\\n".encode())
    return 0
"""

#: The parent's first touch of a MAP_SHARED page its child stores into three times: the parent
#: maps the child's frame (a "shared" fault) and sees 0, 1, 2 or 3. (The child waits on a pipe
#: before it exits: its exit's SIGCHLD would conflict with every step of the parent.)
FIRST_TOUCH = """
from ukernel.abi import MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        for value in (1, 2, 3):
            await sys.poke(page, bytes([value]))
        await sys.read(r, 1)  # until the parent has looked
        return 0
    seen = (await sys.peek(page, 1))[0]
    await sys.write(w, b"x")
    await sys.waitpid(pid, 0)
    await sys.write(1, f"parent saw {seen}\\n".encode())
    return 0
"""

#: Two threads update a dict a global holds, load and store apart: keys "a" and "b" (disjoint),
#: or both "a". A dict's items are not watched one by one: the whole global is written.
DICT = """
from ukernel.abi import CLONE_VM, SIGCHLD

state = {"a": 0, "b": 0}


async def bump(sys, key):
    tmp = state[key]
    await sys.sched_yield()
    state[key] = tmp + 1
    return 0


async def main(sys, argv):
    keys = ["a", "b"] if argv[1] == "disjoint" else ["a", "a"]
    tids = [await sys.clone(CLONE_VM | SIGCHLD, bump, key) for key in keys]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"{state['a']} {state['b']}\\n".encode())
    return 0
"""


#: name, argv[1], the outcomes (each program's exact set, worked out by hand)
PROGRAMS = [
    ("TWO_WORDS", "apart", ["1 1\n"]),
    ("TWO_WORDS", "same", ["1 0\n", "2 0\n"]),
    ("CMPXCHG", "-", ["1 1\n", "2 2\n"]),
    ("FIRST_TOUCH", "-", ["parent saw 0\n", "parent saw 1\n", "parent saw 2\n", "parent saw 3\n"]),
    ("DICT", "disjoint", ["1 1\n"]),
    ("DICT", "overlapping", ["1 0\n", "2 0\n"]),
]


def test_a_shared_first_touch_races_with_the_stores_it_maps_in(tmp_path):
    """The parent's first touch maps the frame its child stores into: DPOR alone (the old page
    footprint named no frame for it, and found 0 and 3 only), the default and caching alone."""
    prog = program_file(tmp_path, "first_touch", FIRST_TOUCH)
    searches = [ukernel.explore(prog, ["t"], **how) for how in ({"cache": False}, {}, {"reduction": False})]
    assert all(s.complete for s in searches) and all(found(s) == found(searches[0]) for s in searches)
    assert [o for o, _ in found(searches[0])[0]] == PROGRAMS[3][2]


def test_threads_on_two_words_of_a_page_commute_and_on_one_word_lose_an_update(tmp_path):
    prog = program_file(tmp_path, "two_words", TWO_WORDS)
    apart, same = (ukernel.explore(prog, ["w", arg]) for arg in ("apart", "same"))
    assert apart.complete and found(apart) == ([("1 1\n", 0)], [], [])
    assert same.complete and found(same) == ([("1 0\n", 0), ("2 0\n", 0)], [], [])
    assert apart.runs < same.runs


def test_a_cmpxchg_race_has_one_winner_either_way(tmp_path):
    result = ukernel.explore(program_file(tmp_path, "cmpxchg", CMPXCHG), ["c", "-"])
    assert result.complete and found(result) == ([("1 1\n", 0), ("2 2\n", 0)], [], [])


@LONG
@pytest.mark.parametrize(("name", "arg", "outcomes"), PROGRAMS)
def test_long_word_footprints_find_what_caching_alone_finds(tmp_path, name, arg, outcomes):
    prog = program_file(tmp_path, name.lower(), globals()[name])
    searches = [ukernel.explore(prog, [name, arg], **how) for how in ({}, {"cache": False}, {"reduction": False})]
    assert all(s.complete for s in searches) and all(found(s) == found(searches[0]) for s in searches)
    assert [o for o, _ in found(searches[0])[0]] == outcomes


#: A thread loads a global int and a global list, then yields twice beside another thread: a
#: plain value held on is a snapshot.
PLAIN = """
from ukernel.abi import CLONE_VM, SIGCHLD

total = 0
log = []


async def worker(sys, _):
    tmp = total + len(log)  # loads both
    await sys.sched_yield()
    await sys.sched_yield()
    return tmp


async def main(sys, argv):
    tids = [await sys.clone(CLONE_VM | SIGCHLD, worker, None) for _ in range(2)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    return 0
"""


def test_what_no_frame_holds_is_no_read_later(tmp_path):
    """worker's frame holds an int after its first step: neither global is read again (stop 28:
    its stack is read); where stacks cannot be read, the list stays read (held), the int not."""
    from test_explore_user import steps_of

    worker = steps_of(tmp_path, "plain", PLAIN).user(3)
    assert {(READ, "total"), (READ, "log")} <= worker[0]
    assert not any(n[1] in ("log", "total") for s in worker[1:] for n in s)


def test_a_plain_value_held_is_no_read_where_stacks_are_not_read_and_a_list_is(tmp_path, monkeypatch):
    from test_explore_user import steps_of

    monkeypatch.setattr(watch, "frame_objects", lambda frame: None)
    worker = steps_of(tmp_path, "plain", PLAIN).user(3)
    assert {(READ, "total"), (READ, "log")} <= worker[0]
    assert all((READ, "log") in s and (READ, "total") not in s for s in worker[1:])


def test_futex_waits_commute_with_each_other_not_with_a_wake_and_an_empty_wake_only_reads():
    word = ("futex", 3, 0x1000)
    wait, wake, empty = frozenset({(COUNT, word)}), frozenset({word}), frozenset({(READ, word)})
    assert not dependent(wait, wait) and not dependent(empty, empty)
    assert dependent(wait, wake) and dependent(wait, empty) and dependent(wake, empty)
