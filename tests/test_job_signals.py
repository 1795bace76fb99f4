"""Job-control signals as Linux does them, each rule run twice: a host Python program on the
real kernel, and its ukernel twin line for line, and both must print the same events.
Rules a host program cannot show cite POSIX (IEEE Std 1003.1-2017) in their docstring."""

from __future__ import annotations

import subprocess
import sys as host_sys
import textwrap

HOST = """
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)

def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(") ")[2][0]

def blocked(pid, want="S"):
    while state(pid) != want:
        time.sleep(0.001)

def say(*words):
    print(*words, flush=True)
"""

TWIN = """
from ukernel import abi as os
import signal

async def state(sys, pid):
    fd = await sys.open(f"/proc/{pid}/stat")
    data = await sys.read(fd, 4096)
    await sys.close(fd)
    return data.decode().rpartition(") ")[2][0]

async def blocked(sys, pid, want="S"):
    while await state(sys, pid) != want:
        await sys.sched_yield()

async def say(sys, *words):
    await sys.write(1, " ".join(map(str, words)) + "\\n")
"""


def on_host(source: str) -> list[str]:
    """The program run by the host's Python on the real kernel: its lines."""
    done = subprocess.run(
        [host_sys.executable, "-c", HOST + textwrap.dedent(source)], capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def on_ukernel(run, source: str) -> list[str]:
    r = await run(TWIN + textwrap.dedent(source))
    assert r.status == 0, r.stderr
    return r.stdout.decode().splitlines()


STOP_CONTINUE = ["CLD_STOPPED", "stopped 19", "nothing", "CLD_CONTINUED", "continued", "nothing", "CLD_KILLED",
                 "killed 15"]  # fmt: skip


async def test_a_stop_and_a_continue_send_sigchld_and_wait_reports_each_once(run):
    host = on_host(
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        pid = os.fork()
        if pid == 0:
            while True:
                signal.pause()
        def chld(why):
            info = signal.sigwaitinfo([signal.SIGCHLD])
            assert (info.si_pid, info.si_code) == (pid, why), info
            return info
        os.kill(pid, signal.SIGSTOP)
        info = chld(os.CLD_STOPPED)
        say("CLD_STOPPED" if info.si_status == signal.SIGSTOP else info)
        _, status = os.waitpid(pid, os.WUNTRACED)
        say("stopped", os.WSTOPSIG(status))
        say("nothing" if os.waitpid(pid, os.WUNTRACED | os.WNOHANG) == (0, 0) else "again")
        os.kill(pid, signal.SIGCONT)
        info = chld(os.CLD_CONTINUED)
        say("CLD_CONTINUED" if info.si_status == signal.SIGCONT else info)
        _, status = os.waitpid(pid, os.WCONTINUED)
        say("continued" if os.WIFCONTINUED(status) else status)
        say("nothing" if os.waitpid(pid, os.WCONTINUED | os.WNOHANG) == (0, 0) else "again")
        os.kill(pid, signal.SIGTERM)
        info = chld(os.CLD_KILLED)
        say("CLD_KILLED" if info.si_status == signal.SIGTERM else info)
        _, status = os.waitpid(pid, 0)
        say("killed", os.WTERMSIG(status))
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            await sys.sigprocmask(os.SIG_BLOCK, [os.SIGCHLD])
            pid = await sys.fork()
            if pid == 0:
                while True:
                    await sys.pause()
            async def chld(why):
                info = await sys.sigwaitinfo([os.SIGCHLD])
                assert (info.si_pid, info.si_code) == (pid, why), info
                return info
            await sys.kill(pid, os.SIGSTOP)
            info = await chld(os.CLD_STOPPED)
            await say(sys, "CLD_STOPPED" if info.si_status == os.SIGSTOP else info)
            _, status = await sys.waitpid(pid, os.WUNTRACED)
            await say(sys, "stopped", os.WSTOPSIG(status))
            again = await sys.waitpid(pid, os.WUNTRACED | os.WNOHANG)
            await say(sys, "nothing" if again == (0, 0) else "again")
            await sys.kill(pid, os.SIGCONT)
            info = await chld(os.CLD_CONTINUED)
            await say(sys, "CLD_CONTINUED" if info.si_status == os.SIGCONT else info)
            _, status = await sys.waitpid(pid, os.WCONTINUED)
            await say(sys, "continued" if os.WIFCONTINUED(status) else status)
            again = await sys.waitpid(pid, os.WCONTINUED | os.WNOHANG)
            await say(sys, "nothing" if again == (0, 0) else "again")
            await sys.kill(pid, os.SIGTERM)
            info = await chld(os.CLD_KILLED)
            await say(sys, "CLD_KILLED" if info.si_status == os.SIGTERM else info)
            _, status = await sys.waitpid(pid, 0)
            await say(sys, "killed", os.WTERMSIG(status))
            return 0
        """,
    )
    assert host == twin == STOP_CONTINUE
