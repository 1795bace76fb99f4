"""The journal a fork child replays is shared with its parent, not copied (user/journal.py).

A live kernel shows it: a grandchild stops itself, and the test (a debugger, in effect)
looks at the journals of the three images while nothing runs. A property test holds
the shared journal to the copying one it replaced: same entries, same refusals.
"""

from __future__ import annotations

import textwrap

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import ukernel
from ukernel import abi
from ukernel.user.journal import HANDLE_SIGNAL, IN_HANDLER, RT_SIGRETURN, THREADED, Journal

READS = 40  # 4 KiB reads of /dev/zero by each of parent and child

THREE_GENERATIONS = f"""
from ukernel.abi import O_RDONLY, SIGSTOP


async def main(sys, argv):
    fd = await sys.open("/dev/zero", O_RDONLY)
    for _ in range({READS}):
        await sys.read(fd, 4096)
    pid = await sys.fork()
    if pid == 0:
        for _ in range({READS}):
            await sys.read(fd, 4096)
        pid = await sys.fork()
        if pid == 0:
            await sys.kill(await sys.getpid(), SIGSTOP)
            return 7
    _, status = await sys.waitpid(pid, 0)
    return status >> 8
"""


async def test_a_grandchild_shares_its_ancestors_entries_and_their_data():
    async with ukernel.boot(files={"/bin/t": textwrap.dedent(THREE_GENERATIONS).encode()}) as kernel:
        status: list[int] = []
        seen: list[tuple] = []

        async def go() -> None:
            status.append(await kernel.run("/bin/t"))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(go)
                while not status:
                    await trio.testing.wait_all_tasks_blocked(0.001)
                    for task in [t for t in kernel.tasks if t.leader is t and t.stopped]:
                        seen.append((task.id, *journals(task)))
                        await kernel.kill(task, abi.SIGCONT)
        assert status == [abi.W_EXITCODE(7, 0)]
        assert await kernel.check_invariants() == []
    [(tid, grandchild, child, parent)] = seen
    # the grandchild's prefix is its parent's list, whose prefix is the first program's list
    assert grandchild.prefix.entries is child.entries
    assert grandchild.prefix.prev.entries is parent.entries
    assert (grandchild.prefix.count, grandchild.prefix.prev.count) == (READS + 1, READS + 1)
    names = [name for _who, name, _ok, _value in grandchild]
    assert names == ["open", *["read"] * READS, "fork", *["read"] * READS, "fork", "getpid", "kill"]
    # 80 zero pages read, one held: the child's equal reads are its parent's bytes
    pages = [value for _who, name, _ok, value in grandchild if name == "read"]
    assert pages[0] == bytes(4096) and all(page is pages[0] for page in pages)
    assert {who for who, *_ in grandchild} == {tid}  # the forking thread's entries are the child's


def journals(task) -> tuple:
    """The stopped task's journal and its parent's and grandparent's."""
    out, walk = [], task
    for _ in range(3):
        out.append(walk.image.journal)
        walk = walk.real_parent
    return tuple(out)


# --- the shared journal against the copying one --------------------------------------------------
def copying_refusal(journal: list, tid: int) -> str | None:
    """The refusal as it was computed before: a pass over the whole journal."""
    depth = 0
    for who, name, _ok, _value in journal:
        if who != tid:
            return THREADED
        if name == HANDLE_SIGNAL:
            depth += 1
        elif name == RT_SIGRETURN:
            depth -= 1
    return IN_HANDLER if depth else None


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["record", "record", "other_thread", "handler", "sigreturn", "big", "fork"]),
        st.integers(0, 5),  # which live journal acts
    ),
    max_size=60,
)


@given(ACTIONS)
def test_shared_journals_read_as_the_copies_they_replace(actions):
    """Each journal lists what a copy would hold (the forking thread's entries renamed to the
    child's), and refuses a fork exactly when a pass over that copy would."""
    live: list[tuple[Journal, list, int]] = [(Journal(), [], 1)]  # (journal, the copy model, its tid)
    next_tid = 2
    for action, which in actions:
        journal, model, tid = live[which % len(live)]
        if action == "fork":
            refusal = journal.fork_refusal(tid)
            assert refusal == copying_refusal(model, tid)
            if refusal is None:
                child = journal.fork(next_tid, "fork")
                copy = [(next_tid, name, ok, value) for _who, name, ok, value in model]
                live.append((child, [*copy, (next_tid, "fork", True, 0)], next_tid))
                next_tid += 1
            continue
        who, name, ok, value = {
            "record": (tid, "getpid", True, tid),
            "other_thread": (tid + 100, "gettid", True, 0),
            "handler": (tid, HANDLE_SIGNAL, 1, (abi.SIGUSR1,)),
            "sigreturn": (tid, RT_SIGRETURN, True, abi.SIGUSR1),
            "big": (tid, "read", True, bytes(300)),
        }[action]
        journal.record(who, name, ok, value)
        model.append((who, name, ok, value))
    for journal, model, tid in live:
        assert list(journal) == model
        assert len(journal) == len(model)
        assert journal.fork_refusal(tid) == copying_refusal(model, tid)
        big = [value for *_, value in journal if isinstance(value, bytes)]
        assert all(value is big[0] for value in big)  # equal large results: one object


# --- a call held across the fork: the child's replay keeps watching its calls ---------------------
async def test_a_call_held_across_a_fork_and_dropped_by_the_child_is_named(run):
    result = await run(
        """
        async def main(sys, argv):
            held = sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                held = None
                await sys.write(1, b"child never writes this\\n")
                return 0
            await held
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, b"child: signal %d\\n" % (status & 0x7F))
            return 0
        """
    )
    line = 'ukernel: /bin/t:3: sys.getpid(...) was never awaited: write "await sys.getpid(...)"\n'
    assert result.stdout.decode() == line + f"child: signal {abi.SIGSYS}\n"


async def test_a_child_replaying_a_parent_that_held_no_call_runs_as_its_parent_did(run):
    result = await run(
        """
        async def main(sys, argv):
            for i in range(3):
                pid = await sys.fork()
                if pid == 0:
                    pending = sys.getpid()  # made live, after the replay: watched again
                    return 0
                _, status = await sys.waitpid(pid, 0)
                await sys.write(1, b"%d " % (status & 0x7F))
            return 0
        """
    )
    line = 'ukernel: /bin/t:6: sys.getpid(...) was never awaited: write "await sys.getpid(...)"\n'
    assert result.stdout.decode() == f"{line}{abi.SIGSYS} " * 3


def test_what_a_journal_recorded_after_its_last_fork_goes_with_it():
    parent = Journal()
    parent.record(1, "read", True, b"a" * 300)
    child = parent.fork(2, "fork")
    parent.record(1, "read", True, b"b" * 300)  # after the fork: no child's
    segment = child.prefix
    del parent
    assert segment.entries == [(1, "read", True, b"a" * 300)]
    assert list(segment.data) == [b"a" * 300]
    assert list(child) == [(2, "read", True, b"a" * 300), (2, "fork", True, 0)]
