"""Replay that survives signal handlers, and handlers inherited across fork and clone(fn).

A fork child re-runs its program answering syscalls from the parent's journal;
deliveries are journal entries too, so the child runs the same handler at the same
point (Linux's child simply has the parent's memory: whatever the handlers did).
Handlers are copied with sighand (copy_sighand), reset by execve (flush_signal_handlers).
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ukernel import abi

# A SIGCHLD handler that reaps and writes; the program forks again after it ran.
REAP_THEN_FORK = """
from ukernel.abi import SIGCHLD, WNOHANG
reaped = []

async def nap(sys):
    try:
        await sys.nanosleep(0.01)
    except InterruptedError:  # SIGCHLD's handler ran
        pass

async def on_chld(sys, sig):
    while True:
        try:
            pid, status = await sys.waitpid(-1, WNOHANG)
        except OSError:
            return
        if pid == 0:
            return
        reaped.append(status >> 8)
        await sys.write(1, f"handler reaped {status >> 8}\\n".encode())

async def main(sys, argv):
    await sys.sigaction(SIGCHLD, on_chld)
    pid = await sys.fork()
    if pid == 0:
        return 7
    while not reaped:
        await nap(sys)
    pid = await sys.fork()
    if pid == 0:
        await sys.write(1, f"second child sees reaped={reaped}\\n".encode())
        return 8
    while len(reaped) < 2:
        await nap(sys)
    await sys.write(1, f"parent reaped={reaped}\\n".encode())
    return 0
"""


async def test_fork_after_a_handler_made_syscalls_replays_the_handler(run):
    result = await run(REAP_THEN_FORK)
    assert result.stdout.decode().splitlines() == [
        "handler reaped 7",
        "second child sees reaped=[7]",  # the handler ran in the replay too: its global is the parent's
        "handler reaped 8",
        "parent reaped=[7, 8]",
    ]
    assert result.exit_code == 0


async def test_the_replay_runs_nested_handlers_and_deliveries_in_a_row(run):
    result = await run(
        """
        from ukernel.abi import SIGUSR1, SIGUSR2, SIG_BLOCK, SIG_UNBLOCK
        log = []
        nest = False

        async def on_usr2(sys, sig):
            log.append(("usr2", await sys.getpid()))

        async def on_usr1(sys, sig):
            if nest:  # delivered on the way out of this kill: a handler inside a handler
                await sys.kill(await sys.getpid(), SIGUSR2)
            log.append("usr1")

        async def main(sys, argv):
            global nest
            await sys.sigaction(SIGUSR1, on_usr1)
            await sys.sigaction(SIGUSR2, on_usr2)
            me = await sys.getpid()
            await sys.sigprocmask(SIG_BLOCK, [SIGUSR1, SIGUSR2])
            await sys.kill(me, SIGUSR1)
            await sys.kill(me, SIGUSR2)
            await sys.sigprocmask(SIG_UNBLOCK, [SIGUSR1, SIGUSR2])  # two deliveries on one way out
            nest = True
            await sys.kill(me, SIGUSR1)
            pid = await sys.fork()
            if pid == 0:
                await sys.write(1, f"child {log}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            await sys.write(1, f"parent {log}\\n".encode())
            return 0
        """
    )
    assert result.stdout.decode().splitlines() == [
        "child ['usr1', ('usr2', 2), ('usr2', 2), 'usr1']",
        "parent ['usr1', ('usr2', 2), ('usr2', 2), 'usr1']",
    ]


async def test_a_handler_that_raises_is_replayed_as_raising(run):
    result = await run(
        """
        from ukernel.abi import SIGUSR1

        class Interrupted(Exception):
            pass

        raises = [Interrupted("usr1"), KeyboardInterrupt("a BaseException"), OSError(5, "EIO from the handler")]

        async def on_usr1(sys, sig):
            await sys.write(1, b"")
            raise raises.pop(0)

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, on_usr1)
            caught = []
            for _ in range(3):
                try:
                    await sys.kill(await sys.getpid(), SIGUSR1)
                except (Interrupted, KeyboardInterrupt, OSError) as exc:
                    caught.append(type(exc).__name__)
            pid = await sys.fork()
            if pid == 0:
                await sys.write(1, f"child caught {caught}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"child caught ['Interrupted', 'KeyboardInterrupt', 'OSError']\n"


async def test_fork_inside_a_handler_is_enosys(run):
    result = await run(
        """
        from ukernel.abi import SIGUSR1

        async def on_usr1(sys, sig):
            try:
                await sys.fork()
            except OSError as exc:
                await sys.write(1, f"{exc.errno} {exc.strerror}\\n".encode())

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, on_usr1)
            await sys.kill(await sys.getpid(), SIGUSR1)
            return 0
        """
    )
    errno, message = result.stdout.decode().rstrip("\n").split(" ", 1)
    assert int(errno) == abi.ENOSYS
    assert message.startswith("ENOSYS: fork inside a signal handler")


async def test_clone_fn_child_catches_a_signal_with_the_parents_handler(run):
    result = await run(
        """
        from ukernel.abi import SIGCHLD, SIGUSR1, SIG_IGN, SIGUSR2
        hits = []

        async def on_usr1(sys, sig):
            hits.append(sig)

        async def child(sys, arg):
            me = await sys.getpid()
            await sys.kill(me, SIGUSR2)  # SIG_IGN is inherited too
            await sys.kill(me, SIGUSR1)
            await sys.write(1, f"child hits={hits} handler is its own copy: {(await sys.sigaction(SIGUSR1))[0] is on_usr1}\\n".encode())
            return 5

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, on_usr1)
            await sys.sigaction(SIGUSR2, SIG_IGN)
            pid = await sys.clone(SIGCHLD, child, None)
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"parent hits={hits} child status={status:#x}\\n".encode())
            return 0
        """
    )
    assert result.stdout.decode().splitlines() == [
        f"child hits=[{abi.SIGUSR1}] handler is its own copy: True",
        "parent hits=[] child status=0x500",  # the copy's list, not the parent's
    ]


async def test_a_fork_inside_a_clone_fn_child_keeps_the_copied_handlers(run):
    result = await run(
        """
        from ukernel.abi import SIGCHLD, SIGUSR1
        hits = []

        async def on_usr1(sys, sig):
            hits.append(await sys.getpid())

        async def child(sys, arg):
            pid = await sys.fork()
            if pid == 0:
                await sys.kill(await sys.getpid(), SIGUSR1)
                await sys.write(1, f"grandchild hits={len(hits)}\\n".encode())
                return 0
            await sys.waitpid(pid, 0)
            return 0

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, on_usr1)
            pid = await sys.clone(SIGCHLD, child, None)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert result.stdout == b"grandchild hits=1\n"


async def test_fork_child_keeps_sig_ign_and_handlers_and_exec_resets_the_handlers(run):
    shown = """
        from ukernel.abi import SIGUSR1, SIGUSR2
        async def main(sys, argv):
            await sys.write(1, f"{argv[1]}: {[(await sys.sigaction(s))[0] for s in (SIGUSR1, SIGUSR2)]}\\n".encode())
            await sys.kill(await sys.getpid(), SIGUSR2)  # ignored: survives
            await sys.kill(await sys.getpid(), SIGUSR1)  # SIG_DFL after exec: terminates
            await sys.write(1, b"not reached\\n")
            return 0
    """
    result = await run(
        """
        from ukernel.abi import SIGUSR1, SIGUSR2, SIG_IGN
        hits = []

        def on_usr1(sys, sig):
            hits.append(sig)

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, on_usr1)
            await sys.sigaction(SIGUSR2, SIG_IGN)
            pid = await sys.fork()
            if pid == 0:
                await sys.kill(await sys.getpid(), SIGUSR2)
                await sys.kill(await sys.getpid(), SIGUSR1)
                old = (await sys.sigaction(SIGUSR1))[0]
                await sys.write(1, f"fork child: hits={hits} handler={old.__name__}\\n".encode())
                await sys.execve("/bin/shown", ["shown", "after exec"])
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"parent: hits={hits} child killed by {status & 0x7f}\\n".encode())
            return 0
        """,
        files={"/bin/shown": textwrap.dedent(shown).encode()},
    )
    assert result.stdout.decode().splitlines() == [
        f"fork child: hits=[{abi.SIGUSR1}] handler=on_usr1",
        f"after exec: {[abi.SIG_DFL, abi.SIG_IGN]}",
        f"parent: hits=[] child killed by {abi.SIGUSR1}",
    ]


# The parent's image and the child's replay of it tell themselves apart by host state the
# journal does not hold (a shared module's attribute): each case makes them differ once.
DIFFERS = """
import string
from ukernel.abi import SIGCHLD, SIG_IGN
runs = 0

def original():
    return string.__dict__.setdefault("{key}", globals()) is globals()

async def on_chld(sys, sig):
    global runs
    runs += 1
    if runs != 1:
        return
    if original():
        {parent}
    else:
        {child}

async def main(sys, argv):
    await sys.sigaction(SIGCHLD, on_chld if original() else {act})
    if await sys.fork() == 0:
        return 0
    try:
        await (sys.nanosleep(1) if original() else sys.{sleep})  # SIGCHLD's handler runs on its way out
    except InterruptedError:
        pass
    pid = await sys.fork()
    if pid == 0:
        return 0
    _, status = await sys.waitpid(pid, 0)
    await sys.write(1, f"child status {{status >> 8}}\\n".encode())
    return 0
"""
IN_HANDLER = "inside the SIGCHLD handler the parent ran on the way out of nanosleep #3"


@pytest.mark.parametrize(
    ("parent", "child", "act", "sleep", "message"),
    [
        (
            "await sys.wait4(-1, 0)",
            "await sys.nanosleep(0)",
            "on_chld",
            "nanosleep(1)",
            f"at syscall 4, {IN_HANDLER}: the parent called wait4(), the child calls nanosleep()",
        ),
        (
            "await sys.getpid()",
            "pass",
            "on_chld",
            "nanosleep(1)",
            f"after syscall 3, {IN_HANDLER}: the parent's handler called getpid() next, the child's returned",
        ),
        (
            "pass",
            "await sys.getpid()",
            "on_chld",
            "nanosleep(1)",
            f"at syscall 4, {IN_HANDLER}: the parent's handler returned, the child's calls getpid()",
        ),
        (
            "pass",
            "raise ValueError",
            "on_chld",
            "nanosleep(1)",
            f"after syscall 3, {IN_HANDLER}: the parent's handler returned, the child's raised",
        ),
        (
            "pass",
            "pass",
            "on_chld",
            "getppid()",
            "at syscall 3: the parent called nanosleep() and ran its SIGCHLD handler on the way out, the child calls getppid()",
        ),
        (
            "pass",
            "pass",
            "SIG_IGN",
            "nanosleep(1)",
            "at syscall 3: the parent ran a SIGCHLD handler the child never registered",
        ),
    ],
    ids=[
        "handler-calls-another",
        "handler-returns-early",
        "handler-calls-more",
        "handler-raises",
        "other-syscall",
        "never-registered",
    ],
)
async def test_each_divergence_says_what_differed(run, parent, child, act, sleep, message):
    import string

    key = f"_replay_case_{id(message)}"
    try:
        result = await run(DIFFERS.format(key=key, parent=parent, child=child, act=act, sleep=sleep))
    finally:
        string.__dict__.pop(key, None)
    assert result.stdout.decode().splitlines() == [f"ReplayDiverged: {message}", "child status 1"]


STEPS = {
    "getpid": "log.append(('main', await sys.getpid()))",
    "usr1": "await sys.kill(me, SIGUSR1)",
    "usr2": "await sys.kill(me, SIGUSR2)",
    "block": "await sys.sigprocmask(SIG_BLOCK, [SIGUSR1, SIGUSR2])",
    "unblock": "await sys.sigprocmask(SIG_UNBLOCK, [SIGUSR1, SIGUSR2])",
    "nest": "nest.append(1)",
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=8))
async def test_a_fork_child_has_what_the_handlers_did_before_the_fork(run, steps):
    """Whatever handlers ran (nested, in a row, after a mask change), the child's log is the parent's."""
    body = "\n    ".join(STEPS[step] for step in steps)
    result = await run(
        f"""
from ukernel.abi import SIGUSR1, SIGUSR2, SIG_BLOCK, SIG_UNBLOCK
log, nest = [], []

async def on_usr1(sys, sig):
    if nest:
        await sys.kill(await sys.getpid(), SIGUSR2)
    log.append(('usr1', await sys.getpid()))

def on_usr2(sys, sig):
    log.append('usr2')

async def main(sys, argv):
    await sys.sigaction(SIGUSR1, on_usr1)
    await sys.sigaction(SIGUSR2, on_usr2)
    me = await sys.getpid()
    {body}
    await sys.sigprocmask(SIG_UNBLOCK, [SIGUSR1, SIGUSR2])
    if await sys.fork() == 0:
        await sys.write(1, repr(log).encode() + b"\\n")
        return 0
    await sys.wait4(-1, 0)
    await sys.write(1, repr(log).encode() + b"\\n")
    return 0
"""
    )
    child, parent = result.stdout.decode().splitlines()
    assert child == parent
    assert ("usr1" in parent) == ("usr1" in steps) and result.exit_code == 0
