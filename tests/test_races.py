"""Races between CPUs (issue 13): tasks on several CPUs interleave at every await.

Each test here reproduced a crash or a hang first; the fuzzer at the end runs
random small programs of forks, exits, waits, pipes, kills and sleeps on 1, 2
and 4 CPUs, with and without parallel_copy, and insists every run finishes
clean: nothing escapes ``run_async``, nothing leaks, no oops.
"""

from __future__ import annotations

import os

import pytest
import trio
from conftest import run_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from services.mm import MmService

FUZZ_EXAMPLES = int(os.environ.get("UKERNEL_FUZZ_EXAMPLES", "40"))
FUZZ_TIMEOUT = 20  # seconds of real time: a guard against a hung kernel, not a measure

#: The fuzzer's program: OPS is a tree of steps. ("fork", ops) runs ops in a child,
#: ("reader", n) forks a child that drops its write end and reads up to n bytes
#: (so readers wait only for writers that finish), ("kill", sig) signals the newest
#: child, ("sleep", ticks) nanosleeps. Every process ends by closing its write end
#: and reaping its children, so no program can deadlock by itself.
FUZZ_PROGRAM = """
from ukernel import abi

OPS = {ops!r}


async def run(sys, ops, r, w, kids):
    for op, arg in ops:
        if op == "fork":
            pid = await sys.fork()
            if pid == 0:
                return await run(sys, arg, r, w, [])
            kids.append(pid)
        elif op == "reader":
            pid = await sys.fork()
            if pid == 0:
                await sys.close(w)
                got = b"x"
                while got and arg > 0:
                    got = await sys.read(r, arg)
                    arg -= len(got)
                return 0
            kids.append(pid)
        elif op == "write":
            await sys.write(w, b"x" * arg)
        elif op == "exit":
            return arg
        elif op == "wait":
            try:
                await sys.waitpid(-1, abi.WNOHANG)
            except OSError:
                pass
        elif op == "kill" and kids:
            try:
                await sys.kill(kids[-1], arg)
            except OSError:
                pass
        elif op == "sleep":
            await sys.nanosleep(arg / 1000)
    await sys.close(w)
    while True:
        try:
            await sys.waitpid(-1, 0)
        except OSError:
            return 0


async def main(sys, argv):
    r, w = await sys.pipe()
    return await run(sys, OPS, r, w, [])
"""

SIGNALS = (9, 15, 18, 17, 10)  # SIGKILL SIGTERM SIGCONT SIGCHLD SIGUSR1


def ops(depth: int) -> st.SearchStrategy:
    leaf = st.one_of(
        st.tuples(st.just("reader"), st.integers(1, 3)),
        st.tuples(st.just("write"), st.integers(1, 3)),
        st.tuples(st.just("exit"), st.integers(0, 3)),
        st.tuples(st.just("wait"), st.none()),
        st.tuples(st.just("kill"), st.sampled_from(SIGNALS)),
        st.tuples(st.just("sleep"), st.integers(0, 3)),
    )
    step = leaf if depth == 0 else st.one_of(leaf, st.tuples(st.just("fork"), ops(depth - 1)))
    return st.lists(step, max_size=5)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=ops(2),
    cpus=st.sampled_from((1, 2, 4)),
    parallel_copy=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_forks_exits_waits_pipes_kills_sleeps(tree, cpus, parallel_copy, seed):
    async def once() -> None:
        with trio.fail_after(FUZZ_TIMEOUT):
            source = FUZZ_PROGRAM.format(ops=tree)
            await run_source(source, cpus=cpus, parallel_copy=parallel_copy, seed=seed, trace=False)

    trio.run(once)


# --- the crashes of issue 13, each as it was first met ------------------------------
CHAINED_SLEEPERS = """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        pid = await sys.fork()
        if pid == 0:
            await sys.nanosleep({t} / 1000)
            return 0
    await sys.nanosleep({t} / 1000)
    if pid:
        await sys.waitpid(pid, 0)
    return 0
"""


async def test_chained_sleepers_waking_on_one_tick():
    for t in range(1, 6):
        await run_source(CHAINED_SLEEPERS.format(t=t))


PIPE_READERS = """
async def main(sys, argv):
    r, w = await sys.pipe()
    kids = []
    for _ in range({n}):
        pid = await sys.fork()
        if pid == 0:
            await sys.close(w)
            await sys.read(r, 1)
            return 0
        kids.append(pid)
    await sys.write(w, b"x" * {n})
    for pid in kids:
        await sys.waitpid(pid, 0)
    return 0
"""


async def test_eight_readers_of_one_pipe_on_two_cpus():
    for seed in range(4):
        await run_source(PIPE_READERS.format(n=8), cpus=2, seed=seed)


CHILDREN_EXIT_WITH_THEIR_PARENT = """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        for _ in range(4):
            if await sys.fork() == 0:
                return 0
        return 0
    await sys.waitpid(pid, 0)
    return 0
"""


async def test_a_parent_exiting_while_its_children_exit():
    for seed in range(4):
        for parallel_copy in (False, True):
            await run_source(CHILDREN_EXIT_WITH_THEIR_PARENT, cpus=2, seed=seed, parallel_copy=parallel_copy)


AFFINITY = """
async def main(sys, argv):
    await sys.sched_setaffinity(0, [1])
    await sys.getpid()
    await sys.sched_setaffinity(0, [0])
    await sys.getpid()
    await sys.sched_setaffinity(0, [1])
    return 0
"""


async def test_an_affinity_change_moves_a_task_to_an_idle_cpu():
    result = await run_source(AFFINITY, cpus=2)
    assert result.exit_code == 0


STOP_INIT = """
from ukernel import abi

async def main(sys, argv):
    await sys.kill(1, abi.SIGSTOP)
    r, w = await sys.pipe()
    if await sys.fork() == 0:  # out of init's group, then wakes its stopped parent
        await sys.setpgid(0, 0)
        await sys.write(w, b"x")
        await sys.nanosleep(0.005)
        await sys.kill(await sys.getppid(), abi.SIGCONT)
        return 0
    await sys.read(r, 1)
    await sys.kill(0, abi.SIGSTOP)  # init's group: init ignores it, this process stops
    await sys.waitpid(-1, 0)
    return 7
"""


async def test_init_ignores_sigstop_from_inside_its_namespace():
    result = await run_source(STOP_INIT)
    assert result.exit_code == 7


def first_request(trace: list[dict], op: str) -> int:
    """The ``msg:N`` that fails a run's first request ``op`` outside execve (numbered from the program's first)."""
    start = next(i for i, e in enumerate(trace) if e["type"] == "request" and e["pid"] == 2)
    requests = [e for e in trace[start:] if e["type"] == "request"]
    return next(i for i, e in enumerate(requests, 1) if e["op"] == op and e.get("syscall") != "execve")


async def run_failing(source: str, op: str, **settings) -> ukernel.Result:
    """Run ``source`` once to find its first ``op`` request, then again with that message failing EIO;
    the run must complete with the oops reported and nothing else."""
    files = {"/bin/t": source.encode()}
    clean = await ukernel.run_async("/bin/t", ["t"], files=files, **settings)
    n = first_request(clean.trace, op)
    with trio.fail_after(FUZZ_TIMEOUT):
        result = await ukernel.run_async("/bin/t", ["t"], files=files, fail={f"msg:{n}": "EIO"}, **settings)
    assert len(result.problems) == 1 and result.problems[0].startswith("oops"), result.problems
    return result


FORK_AND_EXIT = """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        await sys.nanosleep(0.001)
        return 3
    await sys.waitpid(pid, 0)
    return 0
"""


async def test_a_failing_put_on_exit_is_an_oops_and_leaks_nothing():
    for op in ("put_files", "put_fs", "put_sighand", "put_signal", "mmput"):
        for parallel_copy in (False, True):
            await run_failing(FORK_AND_EXIT, op, parallel_copy=parallel_copy)


async def test_a_failing_schedule_wake_up_or_free_pid_is_an_oops():
    for op in ("schedule", "wake_up_new_task", "free_pid"):
        for cpus in (1, 2):
            await run_failing(FORK_AND_EXIT, op, cpus=cpus)


async def test_a_crash_while_a_fork_waits_ends_the_run(monkeypatch):
    """A service dies (here: Ctrl-C in its handler) while a fork waits for its reply:
    the fork's unwind must not wait for the services that went with the run."""

    async def interrupted(self, req, **args):
        raise KeyboardInterrupt

    monkeypatch.setitem(MmService.OPS, "dup_mm", interrupted)
    with trio.fail_after(FUZZ_TIMEOUT), pytest.raises(BaseExceptionGroup) as info:
        await run_source(FORK_AND_EXIT, cpus=2)
    assert info.value.subgroup(KeyboardInterrupt) is not None


async def test_a_child_notifying_a_parent_whose_exit_puts_its_sighand():
    """Found by `make fuzz`: a child's exit read its parent's sighand, then the parent's
    exit put it before the child's SIGCHLD arrived ("no sighand_struct with handle N").
    Linux holds tasklist_lock over both; here the parent's put waits for a notify in flight."""
    tree = [("reader", 1), ("reader", 1), ("reader", 1), ("fork", [("fork", []), ("write", 1), ("exit", 0)])]
    for seed in range(4):
        with trio.fail_after(FUZZ_TIMEOUT):
            await run_source(FUZZ_PROGRAM.format(ops=tree), cpus=2, seed=seed, trace=False)


async def test_a_pipe_wait_whose_reply_lands_after_its_waker_left():
    """Found by `make fuzz` (and named by the hang dump: a reader "runnable, waiting for a CPU"
    that no CPU took): at 2 CPUs a close on the other CPU woke the pipe between the reader's
    `wait` request and its sleep, so the closer's wake-up found no sleeper. The reply wakes it."""
    tree = [("write", 1), ("reader", 2), ("sleep", 1)]
    for seed in range(6):
        with trio.fail_after(FUZZ_TIMEOUT):
            result = await run_source(FUZZ_PROGRAM.format(ops=tree), cpus=2, seed=seed, trace=False)
        assert result.exit_code == 0
