"""The fork tree's lazy points (issue 17, checkpoint.py): a point's first option runs in the
point's own process, and an option a race adds there later comes by a replay, from the process
waiting above, of the known choices down to it.

TWO_WRITERS's races are between the two processes' writes to one pipe, each after two
writes to a pipe of its own (independent steps): the points where they start are several
levels below the first point with two tasks, and none of them forked, so every second option
is a replay's. Its outcomes are the six orders of ``ab`` and ``cd``, as caching alone finds."""

from __future__ import annotations

import os

import pytest
from conftest import found, program_file

import ukernel
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
ORDERS = [("abcd", 0), ("acbd", 0), ("acdb", 0), ("cabd", 0), ("cadb", 0), ("cdab", 0)]

LONG = pytest.mark.skipif(
    not os.environ.get("UKERNEL_EXPLORE_LONG"), reason="long comparison: make explore-check (UKERNEL_EXPLORE_LONG=1)"
)


@pytest.mark.parametrize("mode", [{}, {"cache": False}], ids=["stateful", "dpor"])
def test_an_option_added_below_unforked_points_comes_by_replay(tmp_path, mode):
    result = ukernel.explore(program_file(tmp_path, "writers", TWO_WRITERS), ["writers"], **mode)
    assert result.complete and found(result) == (ORDERS, [], [])
    assert result.replays >= 1 and result.replayed > result.replays  # a replay ran several steps again
    # no insurance forks: every process but the tree's first makes a run of its own
    assert result.forks <= result.runs
    line = summary(result, "writers").splitlines()[0]
    assert f"{result.forks} forks ({result.replays} replays of {result.replayed} steps)" in line


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


def test_a_replay_that_diverges_stops_the_search_in_one_line(tmp_path):
    flag = tmp_path / "flag"
    source = f"import os\nFLAG = {str(flag)!r}\n" + NOT_DETERMINISTIC
    with pytest.raises(
        ValueError, match=r"^nondet: the same choices gave another run \(a replay diverged at point \d+\)"
    ):
        ukernel.explore(program_file(tmp_path, "nondet", source), ["nondet"])
    assert flag.exists()
