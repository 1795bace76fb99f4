"""fork() returns twice by deterministic replay."""

from __future__ import annotations

from ukernel import abi


async def test_child_sees_state_at_the_fork_point(run):
    result = await run(
        """
        log = []

        async def main(sys, argv):
            total = 0
            for i in range(5):
                total += i
                log.append(i)
                await sys.write(1, f"before {i}\\n".encode())
                if i == 3:
                    pid = await sys.fork()
                    if pid == 0:
                        await sys.write(1, f"child: i={i} total={total} log={log}\\n".encode())
                        return 0
                    await sys.waitpid(pid, 0)
            await sys.write(1, f"parent: total={total}\\n".encode())
            return 0
        """
    )
    out = result.stdout.decode().splitlines()
    # the replayed writes are not repeated: each 'before' line appears once
    assert out == [
        "before 0",
        "before 1",
        "before 2",
        "before 3",
        "child: i=3 total=6 log=[0, 1, 2, 3]",
        "before 4",
        "parent: total=10",
    ]


async def test_replayed_syscalls_return_the_recorded_results(run):
    result = await run(
        """
        async def main(sys, argv):
            me = await sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                # getpid above was replayed: it is the parent's number, recorded
                await sys.write(1, f"child {await sys.getpid()} saw me={me}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"child 3 saw me=2\n"


async def test_nested_forks(run):
    result = await run(
        """
        async def main(sys, argv):
            depth = 0
            for _ in range(3):
                pid = await sys.fork()
                if pid == 0:
                    depth += 1
                    continue
                _, status = await sys.waitpid(pid, 0)
                depth_of_child = (status >> 8) & 0xFF
                await sys.write(1, f"{await sys.getpid()}: child at depth {depth_of_child}\\n".encode())
                return depth
            return depth
        """
    )
    assert result.stdout.decode().splitlines() == ["4: child at depth 3", "3: child at depth 2", "2: child at depth 1"]
    assert result.exit_code == 0


async def test_many_children_from_one_loop(run):
    result = await run(
        """
        async def main(sys, argv):
            pids = []
            for i in range(6):
                pid = await sys.fork()
                if pid == 0:
                    return i
                pids.append(pid)
            codes = []
            for pid in pids:
                _, status = await sys.waitpid(pid, 0)
                codes.append((status >> 8) & 0xFF)
            await sys.write(1, repr(codes).encode())
            return 0
        """
    )
    assert result.stdout == b"[0, 1, 2, 3, 4, 5]"


async def test_divergence_is_a_clear_error(run):
    result = await run(
        """
        import itertools
        calls = itertools.count()   # host state the replay cannot restore: a module imported once

        async def main(sys, argv):
            import ukernel.abi as abi
            abi.__dict__.setdefault("_replay_test", 0)
            abi._replay_test += 1
            if abi._replay_test == 1:
                await sys.getpid()
            else:
                await sys.gettid()
            pid = await sys.fork()
            if pid == 0:
                return 0
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"child status {status >> 8}\\n".encode())
            return 0
        """
    )
    import ukernel.abi as abi_module

    del abi_module._replay_test
    # one line, no traceback: the program's code is not where the fault is
    assert result.stdout == (
        b"ReplayDiverged: at syscall 1: the parent called getpid(), the child calls gettid()\nchild status 1\n"
    )


async def test_errors_are_replayed_too(run):
    result = await run(
        """
        async def main(sys, argv):
            try:
                await sys.close(42)
            except OSError as exc:
                err = exc.errno
            pid = await sys.fork()
            if pid == 0:
                await sys.write(1, f"child saw errno {err}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == f"child saw errno {abi.EBADF}\n".encode()


async def test_clone_fn_without_vm_works_on_a_copy(run):
    result = await run(
        """
        from ukernel.abi import SIGCHLD

        class Box:
            def __init__(self):
                self.items = []
            def add(self, x):
                self.items.append(x)

        box = Box()

        async def child(sys, extra):
            box.add("child")
            extra.append("child")
            await sys.write(1, f"child: {box.items} {extra}\\n".encode())
            return 0

        async def main(sys, argv):
            box.add("parent")
            extra = ["arg"]
            pid = await sys.clone(SIGCHLD, child, extra)
            await sys.waitpid(pid, 0)
            await sys.write(1, f"parent: {box.items} {extra}\\n".encode())
            return 0
        """
    )
    assert result.stdout == b"child: ['parent', 'child'] ['arg', 'child']\nparent: ['parent'] ['arg']\n"


async def test_fork_inside_a_clone_fn_child_replays_from_the_copy(run):
    result = await run(
        """
        from ukernel.abi import SIGCHLD
        state = {"n": 0}

        async def child(sys, arg):
            state["n"] += arg
            pid = await sys.fork()
            if pid == 0:
                await sys.write(1, f"grandchild sees n={state['n']}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            return 0

        async def main(sys, argv):
            state["n"] = 10
            pid = await sys.clone(SIGCHLD, child, 5)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"grandchild sees n=15\n"


# --- the replay's fast path (libc answers a plain result itself, user/replay.py) -----------------
async def test_a_child_that_spins_during_its_replay_is_stopped_by_the_cpu_limit(run):
    result = await run(
        """
        async def main(sys, argv):
            import ukernel.abi as abi
            abi.__dict__.setdefault("_replay_spin_test", 0)
            abi._replay_spin_test += 1   # host state: 1 in the parent, 2 in the child's replay
            for _ in range(50):
                await sys.getpid()
                if abi._replay_spin_test == 2:
                    while True:  # where the parent made its next call, the child spins
                        pass
            pid = await sys.fork()
            if pid == 0:
                return 0
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"child signalled {status & 0x7f}\\n".encode())
            return 0
        """,
        cpu_limit=0.5,
    )
    import ukernel.abi as abi_module

    del abi_module._replay_spin_test
    assert result.stdout == b"child signalled %d\n" % abi.SIGXCPU


def test_each_replayed_answer_ends_a_stretch_of_user_code_and_a_spin_is_charged():
    """What the CPU limit's samples see of a replay answered in libc: every answer is a new
    stretch (never charged), no answer in between is the same stretch (charged)."""
    from ukernel.kernel.watchdog import Watchdog
    from ukernel.user.replay import Replay

    watchdog = Watchdog(limit=1.0)
    ended = []
    entries = [(1, "getpid", True, 2)] * 3 + [(1, "fork", True, 0)]
    replay = Replay([(entries, len(entries))], watchdog, lambda: ended.append(True))
    stretches = [watchdog.stretch]
    for _ in range(3):
        assert replay.answer("getpid") == 2
        stretches.append(watchdog.stretch)
    assert replay.answer("fork") == 0
    assert len(set(stretches)) == 4 and replay.calls == 4 and ended == [True]
    assert replay.answer("getpid") is replay.answer("fork")  # over: MISS, nothing answered
    assert watchdog.stretch == stretches[-1] + 1  # (a MISS moves nothing)


async def test_a_divergence_between_fast_answers_is_caught_with_its_syscall_number(run):
    result = await run(
        """
        async def main(sys, argv):
            import ukernel.abi as abi
            abi.__dict__.setdefault("_replay_fast_test", 0)
            abi._replay_fast_test += 1
            for i in range(20):
                if i == 17 and abi._replay_fast_test == 2:
                    await sys.getppid()
                else:
                    await sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                return 0
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"child status {status >> 8}\\n".encode())
            return 0
        """
    )
    import ukernel.abi as abi_module

    del abi_module._replay_fast_test
    assert result.stdout == (
        b"ReplayDiverged: at syscall 18: the parent called getpid(), the child calls getppid()\nchild status 1\n"
    )
