"""CPU limits (issue 13): a task spinning in Python without a syscall is killed by SIGXCPU
(host CPU seconds, ``cpu_limit``; kernel/watchdog.py), and RLIMIT_CPU counts virtual ticks.

0.5 s below is a setting, never an assertion: no test measures time.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import program, run_source
from test_oops import run_child  # runs /bin/child under a parent that prints how it ended

from ukernel import abi

SPIN = """
async def main(sys, argv):
    await sys.getpid()
    n = 0
    while True: n += 1  # one line: the line the limit names
"""


async def test_a_spinning_program_gets_sigxcpu_and_the_run_goes_on(caplog):
    result = await run_child(SPIN, cpu_limit=0.5)
    assert result.stdout == b"child killed by %d\nparent goes on\n" % abi.SIGXCPU
    assert result.exit_code == 0
    (line,) = [r.getMessage() for r in caplog.records if "without a syscall" in r.getMessage()]
    assert line.startswith("ukernel: pid 3 (child) used ")
    assert line.endswith(" s of CPU without a syscall at /bin/child:5; sent SIGXCPU")


async def test_spinning_on_after_catching_it_is_sigkill(caplog):
    child = """
    async def main(sys, argv):
        await sys.getpid()
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
    """
    result = await run_child(child, cpu_limit=0.5)
    assert result.stdout == b"child killed by %d\nparent goes on\n" % abi.SIGKILL
    sent = [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if "without a syscall" in r.getMessage()]
    assert sent == ["SIGXCPU", "SIGKILL"]


async def test_a_spinning_signal_handler_is_stopped_too():
    child = """
    from ukernel.abi import SIGUSR1
    def handler(sys, sig):
        while True:
            pass
    async def main(sys, argv):
        await sys.sigaction(SIGUSR1, handler)
        await sys.kill(await sys.getpid(), SIGUSR1)
        return 0
    """
    result = await run_child(child, cpu_limit=0.5)
    assert result.stdout == b"child killed by %d\nparent goes on\n" % abi.SIGXCPU


async def test_a_program_making_syscalls_is_never_stopped():
    child = """
    async def main(sys, argv):
        for _ in range(300):
            await sys.getpid()
        return 4
    """
    result = await run_child(child, cpu_limit=0.5)
    assert result.stdout == b"child exited 4\nparent goes on\n"


async def test_rlimit_cpu_soft_limit_in_ticks_is_sigxcpu():
    child = """
    from ukernel.abi import RLIMIT_CPU
    async def main(sys, argv):
        await sys.prlimit(RLIMIT_CPU, 50)
        while True:
            await sys.getpid()  # one tick each
    """
    result = await run_child(child)
    assert result.stdout == b"child killed by %d\nparent goes on\n" % abi.SIGXCPU


async def test_rlimit_cpu_hard_limit_is_sigkill_when_sigxcpu_is_ignored():
    child = """
    from ukernel.abi import RLIMIT_CPU, SIGXCPU, SIG_IGN
    async def main(sys, argv):
        await sys.sigaction(SIGXCPU, SIG_IGN)
        old = await sys.prlimit(RLIMIT_CPU, [50, 3000])
        assert old == [-1, -1], old
        assert await sys.prlimit(RLIMIT_CPU) == [50, 3000]
        while True:
            await sys.getpid()
    """
    result = await run_child(child)
    assert result.stdout == b"child killed by %d\nparent goes on\n" % abi.SIGKILL


async def test_rlimit_cpu_soft_above_hard_is_einval():
    source = """
    from ukernel.abi import RLIMIT_CPU
    async def main(sys, argv):
        try:
            await sys.prlimit(RLIMIT_CPU, [100, 10])
        except OSError as exc:
            await sys.write(1, b"errno %d\\n" % exc.errno)
        return 0
    """
    result = await run_source(source)
    assert result.stdout == b"errno %d\n" % abi.EINVAL


def test_a_negative_cpu_limit_is_refused():
    from ukernel.config import Config

    with pytest.raises(ValueError, match="cpu_limit"):
        Config(cpu_limit=-1)


def test_the_cli_takes_cpu_limit(tmp_path):
    path = tmp_path / "spin.py"
    path.write_bytes(program(SPIN))
    cmd = [sys.executable, "-m", "ukernel.cli", "run", "--cpu-limit", "0.5", str(path)]
    done = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 128 + abi.SIGXCPU
    err = done.stderr.decode()
    assert " s of CPU without a syscall at /bin/spin:5; sent SIGXCPU\n" in err
    assert err.endswith("ukernel: program killed by SIGXCPU\n")


def test_a_sigprof_as_the_last_watchdog_disarms_leaves_no_timer_nor_handler(monkeypatch):
    """A SIGPROF that lands in _disarm once no watchdog is armed (here: just before the host
    timer is put back) is ignored, and the timer and handler from before are restored."""
    import signal

    from ukernel.kernel import watchdog

    before = signal.getsignal(signal.SIGPROF), signal.getitimer(signal.ITIMER_PROF)
    setitimer = signal.setitimer

    def late_signal(which: int, *args: float) -> object:
        if not watchdog._armed:  # the last watchdog has left: the window the handler must survive
            signal.raise_signal(signal.SIGPROF)
        return setitimer(which, *args)

    monkeypatch.setattr(signal, "setitimer", late_signal)
    with watchdog.Watchdog(limit=5.0).armed():
        pass
    monkeypatch.undo()
    assert (signal.getsignal(signal.SIGPROF), signal.getitimer(signal.ITIMER_PROF)) == before
