"""What a blocked process holds (issue 18's memory per live blocked process).

A sleeping task keeps a note in the sleepers index and one parked frame, not a cancel
scope and an awaited event; what children share with their parent (the rlimits, the
fd table's entries, the signal and flag sets) is replaced when it changes, never
changed in place, so a change in one is never seen in the other.
"""

from __future__ import annotations

import gc

from ukernel import abi
from ukernel.kernel import cpu

#: The kernel's side of a read asleep on an empty pipe, from the syscall entry down to trio's trap.
BLOCKED_READ = ["syscall", "sys_read", "call_blocking", "sleep_on", "wait_task_rescheduled"]


def _frame_names(coro: object) -> list[str]:
    """The functions of a suspended coroutine chain, outermost first."""
    names = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:  # a coroutine's __await__ wrapper: the coroutine it wraps is its one referent
            inner = [r for r in gc.get_referents(coro) if hasattr(r, "cr_frame")]
            coro = inner[0] if inner else None
            continue
        names.append(frame.f_code.co_name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return names


async def test_a_blocked_read_keeps_one_frame_per_kernel_function(run, monkeypatch):
    """Each sleeper's stack as its waker finds it: the program's frames, then the entry,
    sys_read, call_blocking and sleep_on parked in trio's trap; nothing between
    (service_wait, an event's wait, a cancel scope's task, a wrapper's partial)."""
    stacks = []
    real = cpu.unpark

    def unpark(task):
        if task.parked is not None:
            stacks.append(_frame_names(task.parked.coro))
        real(task)

    monkeypatch.setattr(cpu, "unpark", unpark)
    r = await run(
        """
        from ukernel.abi import SIGCHLD

        async def reader(sys, fds):
            await sys.close(fds[1])
            await sys.read(fds[0], 1)
            return 0

        async def main(sys, argv):
            r, w = await sys.pipe()
            for _ in range(3):
                await sys.clone(SIGCHLD, reader, (r, w))
            await sys.sched_yield()
            await sys.close(w)
            for _ in range(3):
                await sys.waitpid(-1, 0)
            return 0
        """
    )
    assert r.exit_code == 0
    reads = [s for s in stacks if "sys_read" in s]
    assert len(reads) == 3
    for names in reads:
        assert names[:3] == ["task_main", "_start", "reader"], names
        kernel = names[names.index("sys_read") - 1 : names.index("wait_task_rescheduled") + 1]  # (then trio's yield)
        assert kernel == BLOCKED_READ, names


async def test_a_childs_rlimit_change_leaves_the_parents(run):
    """The child shares its parent's rlimits until one changes: prlimit replaces them."""
    r = await run(
        f"""
        from ukernel.abi import SIGCHLD

        def child(sys, arg):
            return 0

        async def limited(sys, arg):
            await sys.prlimit({abi.RLIMIT_NPROC}, 7)
            await sys.write(1, b"child %d\\n" % await sys.prlimit({abi.RLIMIT_NPROC}))
            return 0

        async def main(sys, argv):
            await sys.prlimit({abi.RLIMIT_NPROC}, 50)
            await sys.waitpid(await sys.clone(SIGCHLD, limited, None), 0)
            await sys.write(1, b"parent %d\\n" % await sys.prlimit({abi.RLIMIT_NPROC}))
            return 0
        """
    )
    assert r.stdout == b"child 7\nparent 50\n"


async def test_a_childs_close_on_exec_bit_leaves_the_parents(run):
    """dup_files copies the table, not its entries; F_SETFD in the child replaces its own."""
    r = await run(
        f"""
        from ukernel.abi import SIGCHLD

        async def child(sys, fd):
            await sys.fcntl(fd, {abi.F_SETFD}, {abi.FD_CLOEXEC})
            await sys.write(1, b"child %d\\n" % await sys.fcntl(fd, {abi.F_GETFD}))
            return 0

        async def main(sys, argv):
            r, w = await sys.pipe()
            await sys.waitpid(await sys.clone(SIGCHLD, child, r), 0)
            await sys.write(1, b"parent %d\\n" % await sys.fcntl(r, {abi.F_GETFD}))
            return 0
        """
    )
    assert r.stdout == f"child {abi.FD_CLOEXEC}\nparent 0\n".encode()


async def test_signals_pending_in_one_child_are_not_anothers(run):
    """pending and pending_info start as one shared empty set and map: a signal queued for
    one task replaces its own, and its sibling still has none pending."""
    r = await run(
        f"""
        from ukernel.abi import SIGCHLD

        async def child(sys, arg):
            await sys.sigprocmask({abi.SIG_BLOCK}, [{abi.SIGUSR1}])
            await sys.kill(await sys.getpid(), {abi.SIGUSR1})
            await sys.write(1, b"%s: %r\\n" % (arg.encode(), sorted(await sys.sigpending())))
            return 0

        async def main(sys, argv):
            await sys.waitpid(await sys.clone(SIGCHLD, child, "first"), 0)
            await sys.write(1, b"parent: %r\\n" % sorted(await sys.sigpending()))
            return 0
        """
    )
    assert r.stdout == f"first: [{abi.SIGUSR1}]\nparent: []\n".encode()
