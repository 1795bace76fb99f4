"""The fork tree's lazy points (issue 17, checkpoint.py): a point's first option runs in the
point's own process, and an option a race adds there later comes by a replay, from the process
waiting above, of the known choices down to it.

TWO_WRITERS's races are between the two processes' writes to one pipe, each after two
writes to a pipe of its own (independent steps): the points where they start are several
levels below the first point with two tasks. ``LAZY_REACH`` says how far below its process's
origin a point may be lazy: 0 is the eager tree (every point with two awake options forks),
a large one makes every point lazy, so every second option is a replay's, of several steps.
All three find the six orders of ``ab`` and ``cd`` in the same runs and states."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file

import ukernel
from ukernel.explore import checkpoint
from ukernel.explore.command import summary

TWO_WRITERS = """
async def main(sys, argv):
    r, w = await sys.pipe()
    mine = [await sys.pipe(), await sys.pipe()]
    pid = await sys.fork()
    own = mine[pid == 0][1]
    for _ in range(2):
        await sys.write(own, b".")
    for byte in b"cd" if pid == 0 else b"ab":
        await sys.write(w, bytes([byte]))
    if pid == 0:
        return 0
    await sys.waitpid(pid, 0)
    await sys.write(1, await sys.read(r, 4))
    return 0
"""
DEFAULT_REACH = checkpoint.LAZY_REACH
ORDERS = [("abcd", 0), ("acbd", 0), ("acdb", 0), ("cabd", 0), ("cadb", 0), ("cdab", 0)]

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)


def _writers(tmp_path, monkeypatch, reach: int, **mode) -> ukernel.Exploration:
    monkeypatch.setattr(checkpoint, "LAZY_REACH", reach)  # the tree is forked from here: it inherits it
    result = ukernel.explore(program_file(tmp_path, "writers", TWO_WRITERS), ["writers"], **mode)
    assert result.complete and found(result) == (ORDERS, [], [])
    return result


def test_options_added_below_lazy_points_come_by_replay_as_the_eager_tree_finds_them(tmp_path, monkeypatch):
    eager = _writers(tmp_path, monkeypatch, 0)
    default = _writers(tmp_path, monkeypatch, DEFAULT_REACH)
    every = _writers(tmp_path, monkeypatch, 1000)
    assert (default.runs, default.states) == (every.runs, every.states) == (eager.runs, eager.states)
    assert eager.replays == 0 and eager.forks > eager.runs  # insurance forks, never used
    # every process but the tree's first makes a run of its own, and replays ran several steps
    assert every.forks <= every.runs and every.replays >= 1 and every.replayed > every.replays
    assert default.forks < eager.forks and default.replays >= 1
    line = summary(every, "writers").splitlines()[0]
    assert f", {every.forks} forks ({every.replays} replays of {every.replayed} steps) in " in line


def test_lazy_points_without_state_caching(tmp_path, monkeypatch):
    every = _writers(tmp_path, monkeypatch, 1000, cache=False)
    assert every.replays >= 1 and every.forks <= every.runs


@LONG
def test_long_lazy_points_find_what_caching_alone_finds(tmp_path):
    path = program_file(tmp_path, "writers", TWO_WRITERS)
    reference = ukernel.explore(path, ["writers"], reduction=False)
    assert reference.complete and reference.replays == 0 and found(reference) == (ORDERS, [], [])


#: TWO_WRITERS whose parent writes once more on its own pipe in the search's first run only
#: (a host file it makes says whether one came before): a replay of that run diverges.
NOT_DETERMINISTIC = TWO_WRITERS.replace(
    "    for _ in range(2):\n",
    "    await sys.write(own, b'.')\n"
    "    if pid:\n"
    "        first = not os.path.exists(FLAG)\n"
    "        open(FLAG, 'a').close()\n"
    "        if first:\n"
    "            await sys.write(own, b'.')\n"
    "    for _ in range(2):\n",
)


def test_a_replay_that_diverges_stops_the_search_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "LAZY_REACH", 1000)
    flag = tmp_path / "flag"
    source = f"import os\nFLAG = {str(flag)!r}\n" + NOT_DETERMINISTIC
    with pytest.raises(
        ValueError, match=r"^nondet: the same choices gave another run \(a replay diverged at point \d+\)"
    ):
        ukernel.explore(program_file(tmp_path, "nondet", source), ["nondet"])
    assert flag.exists()
