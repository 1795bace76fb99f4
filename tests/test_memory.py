"""Memory as programs see it: copy-on-write fork, shared mappings, SIGSEGV, brk, running out.

tests/test_mm.py drives the mm service alone; here everything goes through
``sys`` in a running kernel. Frame counts come from a live kernel: the program
stops itself with SIGSTOP at each checkpoint, the test (a debugger, in
effect) asks the mm service for its ``accounting`` while nothing runs, then
sends SIGCONT. Those counts are exact: they are the page allocator's own.
"""

from __future__ import annotations

import textwrap

import pytest
import trio
import trio.testing

import ukernel
from ukernel import abi

PAGE = abi.PAGE_SIZE


def source(text: str) -> bytes:
    return textwrap.dedent(text).encode()


async def run_stopping(kernel, text: str, argv: list[str] | None = None) -> tuple[int, list[dict]]:
    """Run text as /bin/t; at each self-SIGSTOP record what mm says, then SIGCONT.

    Returns the wait status and one record per stop, in order:
    {"pid", "frames", "frame_refs", "cow", "rss", "min_flt"} (the last three from the
    stopped process's mm_stat).
    """
    await kernel.call("vfs", "write_file", {"path": "/bin/t", "data": source(text), "mode": 0o755})
    status: list[int] = []
    stops: list[dict] = []

    async def go() -> None:
        status.append(await kernel.run("/bin/t", argv or ["t"]))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(go)
            while True:
                # A cushion longer than the kernel's own quiesce(): wake only when all is still.
                await trio.testing.wait_all_tasks_blocked(0.001)
                if status:
                    break
                stopped = [t for t in kernel.tasks if t.leader is t and t.stopped]
                assert stopped, "nothing runs, nothing is stopped, and the program has not exited"
                for task in stopped:
                    counts = await kernel.call("mm", "accounting", {})
                    stat = await kernel.call("mm", "mm_stat", {"mm": task.mm})
                    stops.append(
                        {
                            "pid": task.pid,
                            "frames": counts["frames"],
                            "frame_refs": counts["frame_refs"],
                            **{key: stat[key] for key in ("cow", "rss", "min_flt")},
                        }
                    )
                    await kernel.kill(task, abi.SIGCONT)
    return status[0], stops


# --- the demo programs ------------------------------------------------------------------------
async def test_cow_demo():
    r = await ukernel.run_async("cow")
    assert (r.status, r.problems) == (0, [])
    assert r.stdout.decode().splitlines() == [
        "child : page-0 CHILD! page-2 page-3 (minflt 1)",  # one write, one fault, one copy
        "parent: page-0 page-1 page-2 page-3 (minflt 4)",  # its 4 first touches; reads since fork are free
    ]


async def test_mmapdemo():
    r = await ukernel.run_async("mmapdemo")
    assert (r.status, r.problems) == (0, [])
    assert r.stdout == b"MAP_SHARED:  parent sees child!\nMAP_PRIVATE: parent sees parent\n"


async def test_segv_demo():
    r = await ukernel.run_async("segv")
    assert (r.status, r.problems) == (0, [])
    assert r.stdout.decode().splitlines() == [
        "write to unmapped 0x1000: child killed by signal 11 (SIGSEGV)",
        "write to a PROT_READ page: child killed by signal 11 (SIGSEGV)",
    ]


# --- who sees whose writes ----------------------------------------------------------------------
SYNC = """
from ukernel.abi import *

RW = PROT_READ | PROT_WRITE


async def wait_for(sys, addr, word):
    for _ in range(500):
        if await sys.peek(addr, len(word)) == word:
            return
        await sys.sched_yield()
    raise TimeoutError(f"{word!r} never appeared at {addr:#x}")


async def say(sys, text):
    await sys.write(1, (text + "\\n").encode())
"""


async def test_cow_isolation_both_ways(run):
    r = await run(
        SYNC
        + """
async def main(sys, argv):
    private = await sys.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    flag = await sys.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(private, b"before")
    pid = await sys.fork()
    if pid == 0:
        await wait_for(sys, flag, b"go")  # the parent has written its page by now
        await say(sys, f"child sees {(await sys.peek(private, 6)).decode()}")
        await sys.poke(private, b"child!")
        await say(sys, f"child wrote, sees {(await sys.peek(private, 6)).decode()}")
        return 0
    await sys.poke(private, b"parent")
    await sys.poke(flag, b"go")
    await sys.waitpid(pid, 0)
    await say(sys, f"parent sees {(await sys.peek(private, 6)).decode()}")
    return 0
"""
    )
    assert r.stdout.decode().splitlines() == [
        "child sees before",  # the parent's write after fork is not the child's
        "child wrote, sees child!",
        "parent sees parent",  # nor is the child's the parent's
    ]


async def test_clone_vm_children_see_each_others_pokes(run):
    r = await run(
        SYNC
        + """
async def child(sys, page):
    await wait_for(sys, page, b"ping")
    await sys.poke(page, b"pong")
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    pid = await sys.clone(CLONE_VM | SIGCHLD, child, page)
    await sys.poke(page, b"ping")
    await sys.waitpid(pid, 0)
    await say(sys, f"parent sees {(await sys.peek(page, 4)).decode()}")
    return 0
"""
    )
    assert r.stdout == b"parent sees pong\n"  # the child saw ping, or it would have timed out


async def test_map_shared_stays_shared_across_fork_both_ways(run):
    r = await run(
        SYNC
        + """
async def main(sys, argv):
    page = await sys.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(page, b"start")
    pid = await sys.fork()
    if pid == 0:
        await wait_for(sys, page, b"ping!")  # written by the parent after the fork
        await say(sys, f"child sees {(await sys.peek(page, 5)).decode()}")
        await sys.poke(page, b"pong!")
        await sys.poke(page + PAGE_SIZE, b"late")  # a page nobody had touched at fork
        return 0
    await sys.poke(page, b"ping!")
    await sys.waitpid(pid, 0)
    await say(sys, f"parent sees {(await sys.peek(page, 5)).decode()} {(await sys.peek(page + PAGE_SIZE, 4)).decode()}")
    return 0
"""
    )
    assert r.stdout == b"child sees ping!\nparent sees pong! late\n"


# --- frames: one copy per COW break, reuse by the last holder, back to boot ------------------------
COW_STOPS = """
from ukernel.abi import *

P = PAGE_SIZE


async def stop(sys):
    await sys.kill(await sys.getpid(), SIGSTOP)


async def main(sys, argv):
    buf = await sys.mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(4):
        await sys.poke(buf + i * P, b"page%d" % i)
    await stop(sys)  # 1: parent, before fork
    pid = await sys.fork()
    if pid == 0:
        await stop(sys)  # 2: child, after fork
        await sys.poke(buf + P, b"child")
        await stop(sys)  # 3: child, after its write
        return 0
    await sys.waitpid(pid, 0)
    await sys.poke(buf + P, b"parent")  # the child is gone: the parent alone maps page 1
    await stop(sys)  # 4: parent, after its write
    return 0
"""


async def test_cow_break_copies_one_page_and_the_last_holder_reuses_its_frame():
    async with ukernel.boot() as k:
        boot = await k.call("mm", "accounting", {})
        status, stops = await run_stopping(k, COW_STOPS)
        assert status == 0
        before, forked, written, reused = stops
        assert [s["pid"] for s in stops] == [2, 3, 3, 2]
        # init's page table + the program's page table + its 4 pages
        assert (before["frames"], before["frame_refs"], before["rss"], before["min_flt"]) == (6, 6, 4, 4)
        # fork copies no page: one frame more (the child's page-table root), each page now mapped twice
        assert (forked["frames"], forked["frame_refs"]) == (7, 7 + 4)
        assert (forked["rss"], forked["cow"], forked["min_flt"]) == (4, 0, 0)
        # the child's write copies exactly one page; the old frame loses the child's reference
        assert (written["frames"], written["frame_refs"]) == (8, 11)
        assert (written["rss"], written["cow"], written["min_flt"]) == (4, 1, 1)
        # the child's exit frees its pgd and its copy; the parent's write faults but copies nothing
        assert (reused["frames"], reused["frame_refs"]) == (6, 6)
        assert (reused["rss"], reused["cow"], reused["min_flt"]) == (4, 0, 4 + 1)
        assert await k.call("mm", "accounting", {}) == boot
        assert await k.check_invariants() == []


async def test_frames_and_refcounts_return_to_boot_values():
    async with ukernel.boot() as k:
        boot = await k.call("mm", "accounting", {})
        for program in ("/bin/cow", "/bin/mmapdemo", "/bin/segv", "/bin/forkdemo"):
            assert await k.run(program) == 0
            assert await k.call("mm", "accounting", {}) == boot, program
        assert await k.check_invariants() == []


# --- running out of memory --------------------------------------------------------------------------
# memory="1M" is 256 frames. When /bin/t starts, 2 are in use: init's page-table
# root and t's own (init never touches a page). So t can touch 254 pages; with
# all 254 touched, the child's dup_mm cannot get its page-table root.
FRAMES_1M = 256
FREE_AT_START = FRAMES_1M - 2

FORK_AFTER_TOUCHING = """
from ukernel.abi import *


async def main(sys, argv):
    n = int(argv[1])
    buf = await sys.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(n):
        await sys.poke(buf + i * PAGE_SIZE, b"x")
    assert (await sys.getrusage())["minflt"] == n
    try:
        pid = await sys.fork()
    except OSError as exc:
        await sys.write(1, f"fork: {'ENOMEM' if exc.errno == ENOMEM else exc.errno}\\n".encode())
        return 0
    if pid == 0:
        return 7
    _, status = await sys.waitpid(pid, 0)
    await sys.write(1, f"fork: child exited {WEXITSTATUS(status)}\\n".encode())
    return 0
"""


async def test_fork_takes_the_last_frame(run):
    r = await run(FORK_AFTER_TOUCHING, ["t", str(FREE_AT_START - 1)], memory="1M")
    assert r.stdout == b"fork: child exited 7\n"  # the boundary below is exact


async def test_enomem_in_dup_mm_unwinds_the_whole_clone(run):
    r = await run(FORK_AFTER_TOUCHING, ["t", str(FREE_AT_START)], memory="1M")
    assert (r.status, r.stdout) == (0, b"fork: ENOMEM\n")
    (fork,) = [e for e in r.trace if e["type"] == "syscall_enter" and e["op"] == "fork" and e["pid"] == 2]
    route = [e for e in r.trace if e.get("cause") == fork["msgid"]]
    requests = [(e["dst"], e["op"]) for e in route if e["type"] == "request"]
    assert requests == [
        ("sched", "sched_fork"),
        ("vfs", "dup_files"),
        ("vfs", "copy_fs"),
        ("signals", "copy_sighand"),
        ("signals", "copy_signal"),
        ("mm", "dup_mm"),
        # bad_fork_cleanup_*: the steps done, undone in reverse
        ("signals", "put_signal"),
        ("signals", "put_sighand"),
        ("vfs", "put_fs"),
        ("vfs", "put_files"),
        ("sched", "sched_cancel_fork"),
    ]
    (failed,) = [e for e in route if e["type"] == "reply" and e.get("errno")]
    assert (failed["op"], failed["errno"]) == ("dup_mm", "ENOMEM")
    (done,) = [e for e in r.trace if e["type"] == "syscall_exit" and e["msgid"] == fork["msgid"]]
    assert done["errno"] == "ENOMEM"
    assert not any(e["op"] == "alloc_pid" for e in route)  # no pid was ever given out
    # run() has asserted r.problems == []: nothing leaked


TOUCH_ALL = """
async def main(sys, argv):
    n = int(argv[1])
    buf = await sys.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.write(1, b"mapped\\n")
    for i in range(n):
        await sys.poke(buf + i * PAGE_SIZE, b"x")
    await sys.write(1, b"touched\\n")
    return 0
"""


async def test_touching_more_than_memory_ends_the_process_and_leaks_nothing(run):
    r = await run("from ukernel.abi import *\n" + TOUCH_ALL, ["t", str(FRAMES_1M)], memory="1M")
    assert r.stdout.startswith(b"mapped\n") and b"touched" not in r.stdout
    killed = abi.WIFSIGNALED(r.status) and abi.WTERMSIG(r.status) == abi.SIGKILL
    assert killed or r.exit_code == 1  # today: poke raises ENOMEM, uncaught (see the xfail below)


async def test_touching_more_than_memory_is_an_oom_kill(run):
    r = await run("from ukernel.abi import *\n" + TOUCH_ALL, ["t", str(FRAMES_1M)], memory="1M")
    assert abi.WIFSIGNALED(r.status) and abi.WTERMSIG(r.status) == abi.SIGKILL
    assert r.stdout == b"mapped\n"


async def test_mmap_larger_than_memory_is_enomem(run):
    r = await run(
        """
        from ukernel.abi import *


        async def main(sys, argv):
            try:
                await sys.mmap(0, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            except OSError as exc:
                return exc.errno
            return 0
        """,
        memory="1M",
    )
    assert r.exit_code == abi.ENOMEM


# --- SIGSEGV ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "access",
    [
        "await sys.poke(0x1000, b'x')",  # nothing mapped (below mmap_min_addr)
        "await sys.peek(0x1000, 1)",
        "await sys.poke(ro, b'x')",  # mapped PROT_READ
        "await sys.peek(none, 1)",  # mapped PROT_NONE
        "await sys.poke(rw + PAGE_SIZE - 2, b'abcd')",  # runs off the end of a mapping
        "await sys.munmap(rw, PAGE_SIZE); await sys.peek(rw, 1)",  # was mapped
        "await sys.mprotect(rw, PAGE_SIZE, PROT_READ); await sys.poke(rw, b'x')",  # was writable
        "await sys.cmpxchg(ro, 0, 1)",  # an atomic is a write
    ],
)
async def test_bad_accesses_are_sigsegv(run, access):
    r = await run(
        f"""
        from ukernel.abi import *


        async def main(sys, argv):
            anon = MAP_PRIVATE | MAP_ANONYMOUS
            ro = await sys.mmap(0, PAGE_SIZE, PROT_READ, anon)
            none = await sys.mmap(0, PAGE_SIZE, PROT_NONE, anon)
            rw = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, anon)
            await sys.poke(rw, b"ok")
            await sys.write(1, b"before\\n")
            {access}
            await sys.write(1, b"after\\n")
            return 0
        """
    )
    assert r.stdout == b"before\n"
    assert r.exit_code is None and abi.WIFSIGNALED(r.status) and abi.WTERMSIG(r.status) == abi.SIGSEGV


async def test_sigsegv_cannot_be_caught_as_an_errno(run):
    r = await run(
        """
        async def main(sys, argv):
            try:
                await sys.poke(0x1000, b"x")
            except OSError as exc:
                await sys.write(1, f"errno {exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"" and abi.WTERMSIG(r.status) == abi.SIGSEGV


# --- brk --------------------------------------------------------------------------------------------
async def test_brk_query_grow_shrink_and_failure(run):
    r = await run(
        """
        from ukernel.abi import *


        async def show(sys, what, value, start):
            await sys.write(1, f"{what}: start+{value - start:#x}\\n".encode())


        async def main(sys, argv):
            start = await sys.brk(0)  # brk(0) asks
            await show(sys, "query", await sys.brk(0), start)
            assert await sys.brk(start - PAGE_SIZE) == start  # below the heap's start: refused
            await show(sys, "grow", await sys.brk(start + 3 * PAGE_SIZE + 100), start)
            await sys.poke(start + 3 * PAGE_SIZE + 99, b"z")  # the last byte of the new heap
            await sys.poke(start + 3 * PAGE_SIZE + 4000, b"z")  # same page: mapped too, as in Linux
            await sys.poke(start + 2 * PAGE_SIZE, b"data")
            await show(sys, "shrink", await sys.brk(start + PAGE_SIZE), start)
            await show(sys, "regrow", await sys.brk(start + 3 * PAGE_SIZE), start)
            await sys.write(1, f"page 2 after regrow: {await sys.peek(start + 2 * PAGE_SIZE, 4)}\\n".encode())
            # a mapping above the heap: brk may not run into it (nor into its guard page)
            wall = await sys.mmap(start + 8 * PAGE_SIZE, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            await show(sys, "into a mapping", await sys.brk(wall + PAGE_SIZE), start)
            await show(sys, "up to its guard page", await sys.brk(wall - PAGE_SIZE), start)
            await show(sys, "past TASK_SIZE", await sys.brk(1 << 48), start)
            await show(sys, "back to start", await sys.brk(start), start)
            pid = await sys.fork()
            if pid == 0:
                await show(sys, "child inherits", await sys.brk(0), start)
                await sys.poke(start, b"x")  # the heap is empty now: SIGSEGV
                return 0
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"child: signal {WTERMSIG(status)}\\n".encode())
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        "query: start+0x0",
        "grow: start+0x3064",
        "shrink: start+0x1000",
        "regrow: start+0x3000",
        "page 2 after regrow: b'\\x00\\x00\\x00\\x00'",  # shrinking freed the page; it comes back zeroed
        "into a mapping: start+0x3000",  # failure answers the old break
        "up to its guard page: start+0x7000",
        "past TASK_SIZE: start+0x7000",
        "back to start: start+0x0",
        "child inherits: start+0x0",
        "child: signal 11",
    ]


# --- getrusage ----------------------------------------------------------------------------------------
async def test_maxrss_is_a_high_water_mark(run):
    r = await run(
        """
        from ukernel.abi import *


        async def main(sys, argv):
            buf = await sys.mmap(0, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            for i in range(64):
                await sys.poke(buf + i * PAGE_SIZE, b"x")
            peak = (await sys.getrusage())["maxrss"]
            await sys.munmap(buf, 64 * PAGE_SIZE)
            after = (await sys.getrusage())["maxrss"]
            await sys.write(1, f"{peak} {after}\\n".encode())
            return 0
        """
    )
    peak, after = map(int, r.stdout.split())
    assert peak >= 64 * PAGE // 1024
    assert after == peak
