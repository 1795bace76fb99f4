"""The clone router: exact routes, the EINVAL checks, and the unwind of every step."""

from __future__ import annotations

import pytest

from ukernel import abi
from ukernel.abi import (
    CLONE_FILES,
    CLONE_FS,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    CLONE_PARENT_SETTID,
    CLONE_SIGHAND,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    PTHREAD_CLONE_FLAGS,
)
from ukernel.kernel import fork as clone
from ukernel.testing import route_of

FORK_ROUTE = [
    ("sched", "sched_fork"),
    ("vfs", "dup_files"),
    ("vfs", "copy_fs"),
    ("signals", "copy_sighand"),
    ("signals", "copy_signal"),
    ("mm", "dup_mm"),
    ("namespaces", "share_nsproxy"),
    ("pid", "alloc_pid"),
    ("sched", "wake_up_new_task"),
]

CLONE_PROGRAM = """
from ukernel import abi
from ukernel.abi import *

async def child(sys, arg):
    return 7

async def main(sys, argv):
    flags = int(argv[1], 0)
    word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    tid = await sys.clone(flags, child, None, parent_tid=word, child_tid=word)
    if flags & CLONE_THREAD:
        while int.from_bytes(await sys.peek(word, 4), "little"):
            await sys.sched_yield()
    else:
        pid, status = await sys.waitpid(tid, abi.__WALL)
        assert WEXITSTATUS(status) == 7
    await sys.write(1, b"ok\\n")
    return 0
"""


async def clone_route(run, flags: int) -> list[tuple[str, str]]:
    result = await run(CLONE_PROGRAM, ["t", hex(flags | abi.SIGCHLD * (not flags & CLONE_THREAD))])
    assert result.stdout == b"ok\n"
    return route_of(result.trace, "clone")


async def test_fork_route(run):
    result = await run(
        """
        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                return 3
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert route_of(result.trace, "fork") == FORK_ROUTE
    assert route_of(result.trace, "fork") == [(s, o) for s, o, _ in clone.route(0)]


async def test_vfork_route_shares_the_mm(run):
    result = await run(
        """
        async def main(sys, argv):
            pid = await sys.vfork()
            if pid == 0:
                await sys.execve("/bin/hello", ["hello"])
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    expected = [x if x != ("mm", "dup_mm") else ("mm", "share_mm") for x in FORK_ROUTE]
    assert route_of(result.trace, "vfork") == expected
    assert b"hello from pid 3 (parent 2)" in result.stdout


async def test_pthread_route(run):
    route = await clone_route(run, PTHREAD_CLONE_FLAGS)
    assert route == [
        ("sched", "sched_fork"),
        ("namespaces", "copy_semundo"),  # CLONE_SYSVSEM: one undo list for both
        ("vfs", "share_files"),
        ("vfs", "share_fs"),
        ("signals", "share_sighand"),
        ("signals", "share_signal"),
        ("mm", "share_mm"),
        ("namespaces", "share_nsproxy"),
        ("pid", "alloc_pid"),
        ("mm", "write_mem"),  # CLONE_PARENT_SETTID, before the wake-up
        ("sched", "wake_up_new_task"),
    ]
    assert route == [(s, o) for s, o, _ in clone.route(PTHREAD_CLONE_FLAGS)]


async def test_newpid_newuts_route_asks_pid_for_a_namespace(run):
    result = await run(CLONE_PROGRAM, ["t", hex(CLONE_NEWPID | CLONE_NEWUTS | abi.SIGCHLD)])
    cause = [e for e in result.trace if e["type"] == "syscall_enter" and e["op"] == "clone"][0]["msgid"]
    copy_ns = next(
        e for e in result.trace if e["type"] == "request" and e["op"] == "copy_namespaces" and e["cause"] == cause
    )
    nested = [
        (e["dst"], e["op"]) for e in result.trace if e["type"] == "request" and e.get("cause") == copy_ns["msgid"]
    ]
    assert nested == [("vfs", "get_mnt_ns"), ("pid", "create_pid_ns")]
    route = route_of(result.trace, "clone")
    assert route[6] == ("namespaces", "copy_namespaces")
    assert route == [(s, o) for s, o, _ in clone.route(CLONE_NEWPID | CLONE_NEWUTS)]


# each flag with what it needs; the route differs from the base in its own step only
FLAG_STEPS = [
    (CLONE_FILES, 0, "copy_files"),
    (CLONE_FS, 0, "copy_fs"),
    (CLONE_VM, 0, "copy_mm"),
    (CLONE_SIGHAND, CLONE_VM, "copy_sighand"),
    (CLONE_THREAD, CLONE_VM | CLONE_SIGHAND, "copy_signal"),
    (CLONE_NEWUTS, 0, "copy_namespaces"),
    (CLONE_NEWIPC, 0, "copy_namespaces"),
    (CLONE_NEWNS, 0, "copy_namespaces"),
    (CLONE_NEWPID, 0, "copy_namespaces"),
]


@pytest.mark.parametrize(("flag", "base", "step"), FLAG_STEPS, ids=[abi.CLONE_FLAG_NAMES[f[0]] for f in FLAG_STEPS])
async def test_each_flag_changes_only_its_own_step(run, flag, base, step):
    without = await clone_route(run, base)
    with_flag = await clone_route(run, base | flag)
    index = [s.name for s in clone.COPY_STEPS if s.service != "kernel" and s.op_for(base) is not None].index(step)
    changed = [i for i, (a, b) in enumerate(zip(without, with_flag, strict=True)) if a != b]
    assert changed == [index]


EINVAL_FLAGS = [
    CLONE_NEWNS | CLONE_FS,
    abi.CLONE_NEWUSER | CLONE_FS,
    CLONE_THREAD,
    CLONE_THREAD | CLONE_VM,
    CLONE_SIGHAND,
    CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWPID,
    CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | abi.CLONE_NEWUSER,
    abi.CLONE_PIDFD | abi.CLONE_DETACHED,
]


@pytest.mark.parametrize("flags", EINVAL_FLAGS, ids=["|".join(abi.decode_clone_flags(f)) for f in EINVAL_FLAGS])
async def test_invalid_flag_combinations_send_no_message(run, flags):
    result = await run(
        """
        async def main(sys, argv):
            try:
                await sys.clone(int(argv[1], 0), lambda sys, arg: 0)
            except OSError as exc:
                await sys.write(1, f"{exc.errno}\\n".encode())
            return 0
        """,
        ["t", hex(flags)],
    )
    assert result.stdout == b"22\n"
    assert route_of(result.trace, "clone") == []


async def test_clone_parent_from_init_is_einval(run):
    result = await run(
        """
        from ukernel.abi import *
        async def child(sys, arg):
            try:
                await sys.clone(CLONE_PARENT | SIGCHLD, lambda s, a: 0)
            except OSError as exc:
                await sys.write(1, f"{exc.errno}\\n".encode())
            return 0
        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, child)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"22\n"


FAILING_PROGRAM = """
async def main(sys, argv):
    try:
        await sys.fork()
    except OSError as exc:
        await sys.write(1, f"{exc.errno}\\n".encode())
        return 0
    return 1
"""

SERVICE_STEPS = [s for s in clone.COPY_STEPS if s.service != "kernel"]
FORK_STEPS = [s for s in SERVICE_STEPS if s.op_clear is not None]  # what a fork sends


@pytest.mark.parametrize("step", [s.name for s in clone.COPY_STEPS])
async def test_failure_at_each_step_unwinds_in_reverse(run, step):
    result = await run(FAILING_PROGRAM, fail={step: "ENOMEM"})
    assert result.stdout == b"12\n"
    route = route_of(result.trace, "fork", pid=2)
    names = [s.name for s in clone.COPY_STEPS]
    done = [s for s in FORK_STEPS if names.index(s.name) < names.index(step)]
    attempted = [(s.service, s.op_clear) for s in done]
    failing = next((s for s in FORK_STEPS if s.name == step), None)  # a step with no message fails in the kernel
    if failing is not None:
        attempted.append((failing.service, failing.op_clear))
    undo = [(s.service, s.undo) for s in reversed(done)]
    assert route == attempted + undo
    failed = [
        e for e in result.trace if e["type"] == "reply" and e.get("errno") and e["pid"] != 1
    ]  # init's isatty(0): ENOTTY
    assert [e["op"] for e in failed] == ([failing.op_clear] if failing else [])


async def test_rlimit_nproc_gives_eagain(run):
    result = await run(
        """
        from ukernel.abi import RLIMIT_NPROC
        async def main(sys, argv):
            await sys.prlimit(RLIMIT_NPROC, 3)  # init, this process, one child
            pid = await sys.fork()
            if pid == 0:
                return 0
            try:
                await sys.fork()
            except OSError as exc:
                await sys.write(1, f"{exc.errno}\\n".encode())
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"11\n"


async def test_max_threads_gives_eagain(run):
    result = await run(FAILING_PROGRAM, max_threads=2, nproc=100)
    assert result.stdout == b"11\n"


def test_route_is_data():
    assert clone.route(CLONE_PARENT_SETTID)[-2] == ("mm", "write_mem", "CLONE_PARENT_SETTID")
    assert clone.COPY_STEPS[0].name == "dup_task_struct"
    assert abi.decode_clone_flags(CLONE_VFORK | CLONE_VM | abi.SIGCHLD) == ["CLONE_VM", "CLONE_VFORK", "SIGCHLD"]
