"""What services tell explore's reduction of each op (``@touches``, the reply's meta): the
modes' relation, the round trip on both of the router's paths, and searches that use them
finding exactly what the full search finds."""

from __future__ import annotations

import pytest
from conftest import found, program_file

import ukernel
from services.mm import MmService
from services.pid import PidService
from services.vfs import VfsService
from ukernel import abi
from ukernel.explore.por import GLOBAL, Footprint, dependent, touched_objects
from ukernel.testing import service_client


def fs(*objects) -> frozenset:
    return frozenset(objects)


W = ("vfs", "inode", 7)
R = ("r", W)
C = ("c", ("vfs", "fcount", 2))


def test_reads_commute_counts_commute_and_everything_else_of_one_object_conflicts():
    assert not dependent(fs(R), fs(R)) and dependent(fs(R), fs(W)) and dependent(fs(W), fs(R))
    assert not dependent(fs(C), fs(C)) and dependent(fs(C), fs(C[1])) and dependent(fs(C[1]), fs(C))
    assert dependent(fs(("r", C[1])), fs(C)) and dependent(fs(C), fs(("r", C[1])))  # a read sees the count
    assert not dependent(fs(R), fs(("r", ("vfs", "inode", 8)), ("vfs", "inode", 8)))  # another inode
    assert dependent(fs(R), fs(("vfs", "*"))) and dependent(fs(("vfs", "*")), fs(C))  # the whole service
    assert not dependent(fs(R), fs(("mm", "*"))) and dependent(fs(R), fs(GLOBAL))


def test_a_reply_that_is_not_triples_leaves_the_whole_service():
    assert touched_objects("vfs", [["inode", 7, "r"], ["fcount", 2, "c"], ["console", 0, "w"]]) == {
        R,
        C,
        ("vfs", "console", 0),
    }
    for bad in (None, {"inode": 7}, [["inode", 7]], [["inode", [7], "r"]], [["inode", 7, "x"]]):
        assert touched_objects("vfs", bad) is None


def test_a_request_is_its_whole_service_until_the_reply_names_fewer():
    footprint = Footprint()
    footprint.begin(3)
    calls = {"kernel": frozenset({"vfs", "mm"})}
    assert footprint.message(calls, "vfs", "write", {}, {"pid": 3}, 10)
    assert footprint.message(calls, "mm", "mmap", {}, {"pid": 3}, 11)
    footprint.refine(10, [["console", 0, "w"]])
    footprint.refine(12, [["page", 1, "w"]])  # no such request in this step: nothing
    [(pid, objects)] = footprint.take([{}], False)
    # mmap's reply never came (and each step reads that its task was made runnable: por.py woken)
    assert pid == 3 and objects == {("vfs", "console", 0), ("mm", "*"), ("r", ("woken", 3))}
    assert footprint.message(calls, "vfs", "wait", {"waiter": 4}, {"pid": 3}, 13) is False  # named by its handle
    assert footprint.take([{}], False) == [(0, frozenset({("vfs", "waiter", 4), ("r", ("woken", 0))}))]


@pytest.mark.parametrize("inbox", [False, True])
async def test_a_service_answers_what_its_op_touched_on_either_path(inbox):
    """The fast path and the inbox (post, then the reply's frame through ReplyTo) both carry
    the reply's meta; without a footprint the request asks nothing and the reply has none."""
    async with service_client(VfsService()) as c:
        files = (await c.call("init_files"))["files"]
        footprint = c.router.footprint = Footprint()
        footprint.begin(1)
        args = {"files": files, "fd": 1, "data": b"hi"}
        if inbox:
            await c.router.collect(await c.router.post("kernel", "vfs", "write", args, {}))
        else:
            assert await c.call("write", **args) == 2
        await c.call("dup_files", files=files)
        steps = footprint.take([{}], False)
        console = c.router.endpoints["vfs"].service.files_structs[files].fds[1][0]
        assert steps == [
            (
                1,
                fs(
                    ("r", ("vfs", "files", files)),
                    ("r", ("vfs", "file", console)),
                    ("vfs", "console", 0),
                    ("c", ("vfs", "fcount", console)),
                    ("vfs", "handles", 0),
                    ("r", ("woken", 1)),
                ),
            )
        ]
        c.router.footprint = None
        reply = await c.router.post("kernel", "vfs", "write", args, {})
        assert "fp" not in reply.meta and await c.router.collect(reply) == 2


async def test_the_last_put_of_a_pipe_end_releases_it_and_wakes_its_readers():
    """A put that leaves references is a count; the last one writes the file and its pipe."""
    async with service_client(VfsService()) as c:
        files = (await c.call("init_files"))["files"]
        r, w = await c.call("pipe2", files=files)
        child = (await c.call("dup_files", files=files))["files"]
        vfs = c.router.endpoints["vfs"].service
        wend = vfs.files_structs[files].fds[w][0]
        ino = vfs.files[wend].inode.ino
        assert vfs.touched("put_files", {"files": child}) == [
            ("files", child, "w"),
            *sorted(vfs.touched("put_files", {"files": child})[1:]),
        ]
        assert ("fcount", wend, "c") in vfs.touched("put_files", {"files": child})
        await c.call("put_files", files=child)
        last = vfs.touched("close", {"files": files, "fd": w})
        assert ("fcount", wend, "w") in last and ("inode", ino, "w") in last
        await c.call("close", files=files, fd=w)
        assert await c.call("read", files=files, fd=r, n=10) == b""  # EOF: the release was real
        await c.call("put_files", files=files)


async def test_mm_names_the_frames_of_shared_pages_and_pid_the_namespaces_of_a_number():
    async with service_client(MmService(), PidService()) as c:
        parent = (await c.call("mm_init"))["mm"]
        addr = await c.call("mmap", mm=parent, addr=0, length=4096, prot=3, flags=abi.MAP_SHARED | abi.MAP_ANONYMOUS)
        mm = c.router.endpoints["mm"].service
        assert mm.touched("write_mem", {"mm": parent, "addr": addr, "data": b"x"}) == [
            ("shmem", 1, "w"),
            ("mm", parent, "w"),
            ("next", 0, "w"),
        ]  # not present yet: the store faults it in (the object's page, a never-used frame)
        await c.call("write_mem", mm=parent, addr=addr, data=b"x")
        child = (await c.call("dup_mm", mm=parent))["mm"]
        pfn = mm.mms[parent].pfn_of[addr // 4096]
        word = pfn * 4096  # the word's physical address: the same in every mm mapping the frame
        for m in (parent, child):  # one shared frame, writable in both: no fault
            assert mm.touched("write_mem", {"mm": m, "addr": addr, "data": b"y"}) == [
                ("word", word, "w"),
                ("page", pfn, "r"),
                ("stores", pfn, "c"),
                ("mm", m, "r"),
            ]
        assert mm.touched("read_mem", {"mm": child, "addr": addr, "n": 1}) == [
            ("word", word, "r"),
            ("page", pfn, "r"),
            ("mm", child, "r"),
        ]
        pid = c.router.endpoints["pid"].service
        last = pid.namespaces[1].last  # the cursor; the scan takes the next number
        assert pid.touched("alloc_pid", {"ns": 1}) == [
            ("handles", 0, "w"),
            ("ns", 1, "w"),
            ("nr", f"1:{last + 1}", "w"),
        ]
        for m in (child, parent):
            await c.call("mmput", mm=m)


#: Two writers and a reader on one pipe: the reader sees the writers' order, and EOF only when
#: the last write end is gone (the child's, at its exit, or the parent's close).
PIPE = """
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.write(w, b"c")
        return 0
    await sys.write(w, b"p")
    await sys.close(w)
    got = b""
    while chunk := await sys.read(r, 10):
        got += chunk
    await sys.waitpid(pid, 0)
    await sys.write(1, got + b"\\n")
    return 0
"""

#: Two processes store into one MAP_SHARED page and each into its own private page.
SHARED = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE


async def main(sys, argv):
    rw = PROT_READ | PROT_WRITE
    shared = await sys.mmap(0, 4096, rw, MAP_SHARED | MAP_ANONYMOUS)
    own = await sys.mmap(0, 4096, rw, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.poke(own, b"-")
    pid = await sys.fork()
    me = b"c" if pid == 0 else b"p"
    await sys.poke(own, me)
    await sys.poke(shared, me)
    if pid == 0:
        return 0
    await sys.waitpid(pid, 0)
    await sys.write(1, await sys.peek(shared, 1) + await sys.peek(own, 1) + b"\\n")
    return 0
"""

#: Two processes, each writing N times into a pipe of its own: independent (the vfs names the
#: pipe each write reaches). (A regular file would not do: every write ticks the vfs's inode clock.)
OWN_PIPES = """
async def main(sys, argv):
    n = int(argv[1])
    pipes = [await sys.pipe(), await sys.pipe()]
    kids = []
    for _, w in pipes:
        pid = await sys.fork()
        if pid == 0:
            for _ in range(n):
                await sys.write(w, b"x")
            return 0
        kids.append(pid)
    for pid in kids:
        await sys.waitpid(pid, 0)
    return 0
"""


@pytest.mark.parametrize("name", ["PIPE", "SHARED"])
def test_refined_footprints_find_what_the_full_search_finds(tmp_path, name):
    """Soundness on what the services refine: pipe ends, their release, the console, shared
    and private pages: the default, DPOR alone and caching alone against every path."""
    prog = program_file(tmp_path, name.lower(), globals()[name])
    full = ukernel.explore(prog, [name], reduction=False, cache=False)
    both, dpor = ukernel.explore(prog, [name]), ukernel.explore(prog, [name], cache=False)
    cached = ukernel.explore(prog, [name], reduction=False)
    want = {"PIPE": ["cp\n", "pc\n"], "SHARED": ["cp\n", "pp\n"]}[name]
    assert full.complete and both.complete and dpor.complete and cached.complete
    assert sorted(o["stdout"] for o in full.outcomes) == want
    assert found(both) == found(dpor) == found(full) == found(cached)
    assert dpor.runs < full.runs


def test_processes_writing_their_own_pipes_explore_a_constant_number_of_runs(tmp_path):
    """N=1 and N=4 writes each take as many runs: each write touches its own pipe (with the
    vfs a whole service, every pair of writes was a race: binomial(2N, N) orders)."""
    prog = program_file(tmp_path, "own", OWN_PIPES)
    one, four = ukernel.explore(prog, ["own", "1"], cache=False), ukernel.explore(prog, ["own", "4"], cache=False)
    assert one.complete and four.complete and found(one) == found(four) == ([("", 0)], [], [])
    assert four.runs == one.runs
