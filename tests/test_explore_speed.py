"""explore's cheaper states, and the digest's value stack (issue 17).

A program frame's locals do not say where it is: a ``for`` loop's iterator is on the value
stack only, so two states that differ in its position had one digest, and state caching
merged them and lost outcomes (LOOPS below: caching alone found 5 of its 6 before).
user/framestack.py reads the stack; these tests check it against CPython's own saved
stack pointer, on running frames, and on the outcome sets against every path."""

from __future__ import annotations

import ctypes
import os

import pytest
from conftest import found, program_file

import ukernel
from ukernel.ipc.canonical import canonical
from ukernel.kernel import choice
from ukernel.user import framestack

#: Two processes each write "p" twice in a loop, then their name: the states after one "p"
#: (the parent's or the child's) have the same output, locals and lines, and differ only in
#: where each loop's iterator is; ``ppQppP`` and ``ppPppQ`` each come from one of them.
LOOPS = """
async def main(sys, argv):
    pid = await sys.fork()
    name = b"Q" if pid == 0 else b"P"
    for x in (1, 1):
        await sys.write(1, b"p")
    await sys.write(1, name)
    if pid:
        await sys.waitpid(pid, 0)
    return 0
"""
LOOPS_OUTPUTS = ["ppPppQ", "ppQppP", "pppPpQ", "pppQpP", "ppppPQ", "ppppQP"]
#: The same over a generator of the program's: where it is is its own frame's place.
GENERATOR = "def ones():\n    yield 1\n    yield 1\n" + LOOPS.replace("(1, 1)", "ones()")


LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)


@LONG
def test_long_every_path_of_the_loops_gives_its_six_outcomes(tmp_path):
    """The reference the outcome sets below are checked against (126 runs: make explore-check)."""
    every = ukernel.explore(program_file(tmp_path, "loops", LOOPS), ["loops"], reduction=False, cache=False)
    assert every.complete and found(every) == ([(out, 0) for out in LOOPS_OUTPUTS], [], [])


@pytest.mark.parametrize("source", [LOOPS, GENERATOR], ids=["tuple", "generator"])
@pytest.mark.parametrize("mode", [{}, {"reduction": False}], ids=["default", "caching"])
def test_a_loops_position_is_state_so_caching_keeps_every_outcome(tmp_path, mode, source):
    result = ukernel.explore(program_file(tmp_path, "loops", source), ["loops"], **mode)
    assert result.complete and found(result) == ([(out, 0) for out in LOOPS_OUTPUTS], [], [])


class _Yield:
    def __await__(self):
        yield "suspended"


class _Look:
    """Awaited by a running coroutine: reads its caller's stack while the caller runs."""

    def __init__(self, seen: list):
        self.seen = seen

    def __await__(self):
        self.seen.append(framestack.value_stack(self.seen[0].cr_frame))
        yield "looked"


def _positions(stack: list) -> list:
    return [s.__reduce__() for s in stack if type(s).__name__.endswith("iterator")]


def test_the_stack_of_a_running_and_of_a_suspended_frame_shows_the_loops_iterator():
    seen: list = []

    async def loop():
        for _ in (1, 1, 1):
            await _Look(seen)
            await _Yield()

    coro = loop()
    seen.append(coro)
    positions = []
    for _ in range(3):
        assert coro.send(None) == "looked"  # read while running, at its SEND
        running = seen.pop()
        assert coro.send(None) == "suspended"
        positions.append((_positions(running), _positions(framestack.value_stack(coro.cr_frame))))
    assert positions == [([(iter, ((1, 1, 1),), i)], [(iter, ((1, 1, 1),), i)]) for i in (1, 2, 3)]
    coro.close()


async def _shapes(sink: list) -> int:
    """Stacks of many shapes at an await: loops, with, try, comprehensions, partial sums."""
    total = 0
    for a in range(2):
        for b in [10, 20]:
            with open(__file__) as fh:
                try:
                    total += a + b + ((await _Yield()) is None)
                    parts = [await _Yield() for _ in range(2)]
                    sink.append((fh.name, parts, {k: await _Yield() for k in "ab"}))
                except ZeroDivisionError:
                    pass
    return total + len(str(await _Yield()))


def test_the_depth_walked_from_the_bytecode_is_the_depth_cpython_saved():
    coro, frames = _shapes([]), 0
    while True:
        try:
            coro.send(None)
        except StopIteration:
            break
        frame = coro.cr_frame
        base = ctypes.c_void_p.from_address(id(frame) + framestack._F_FRAME).value
        top = ctypes.c_int.from_address(base + framestack._STACKTOP).value
        assert top >= 0
        saved = top - framestack.nlocalsplus(frame.f_code)
        assert framestack.stack_depths(frame.f_code)[frame.f_lasti] - 1 == saved
        frames += 1
    assert frames > 10


def test_canonical_tells_iterators_and_ranges_by_their_position():
    first, second = iter((1, 1, 1)), iter((1, 1, 1))
    next(second)
    assert canonical(first) != canonical(second)
    next(first)
    assert canonical(first) == canonical(second)
    assert canonical(range(3)) != canonical(range(4))
    assert canonical(iter(range(3))) != canonical(iter(range(1, 3)))


class _Asking:
    """A chooser that wants every point's state digest and takes option 0 (a plain run)."""

    wants_state = True

    def __init__(self) -> None:
        self.points = 0

    def choose(self, point: dict) -> int:
        self.points += 1
        return 0


@pytest.mark.parametrize("argv", [["forkbuf", "1"], ["tocttou"], ["waitrace"], ["pthreads"], ["condvar", "1", "1"]])
def test_a_service_answer_reused_at_a_point_is_what_asking_again_gives(argv, monkeypatch):
    """choice.py asks a service again only after a message it took part in (Router.moved):
    at every point of these runs, each answer it would reuse is compared with a fresh one."""
    reused: list[str] = []
    service_digest = choice._service_digest

    async def checked(k, name):
        known = choice._answers.get(k, {}).get(name)
        answer = await service_digest(k, name)
        if known is not None and known[0] == k.router.moved.get(name, 0):  # it was reused
            fresh = await k.call(name, "state_digest", {}, {"pid": 0, "tid": 0, "step": "state_digest"})
            assert fresh == answer, f"{name}: reused a digest its state no longer has"
            choice._answers[k][name] = (k.router.moved.get(name, 0), answer)  # (the ask was a message too)
            reused.append(name)
        return answer

    monkeypatch.setattr(choice, "_service_digest", checked)
    chooser = _Asking()
    result = ukernel.run(argv[0], argv, schedule=chooser)
    assert result.error == "" and result.problems == [], (result.error, result.problems)
    assert chooser.points > 0 and reused
