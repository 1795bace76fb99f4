"""Typing into ``ukernel run sh`` at a terminal (a pty): the prompt, ^C, ^Z, jobs, bg, fg, ^D.

The host side is a pseudo-terminal (the ``pty`` module): what the test writes
to its master is what a person types, and ukernel (in raw mode) hands each
key to the guest's line discipline. The jobs are ``cat``, which waits for the
terminal and never for time, so nothing here depends on how fast the host is:
every step waits for the text it expects (a deadline only turns a hang into a
failure). The terminal's mode must be the same after the run as before (what
``stty -g`` would show).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import sys
import termios
import time

import pytest

DEADLINE = 30.0  # seconds for one expected text: a hang fails instead of stopping the suite
INTR, SUSP, EOF = b"\x03", b"\x1a", b"\x04"

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


class Terminal:
    """``ukernel run sh`` on the slave side of a pty; the test types on the master side."""

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        self.mode = termios.tcgetattr(slave)
        self.slave = slave
        self.pid = os.fork()
        if self.pid == 0:  # the child: a session of its own with the pty as its terminal, as a login has
            os.close(self.master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # the pty becomes its controlling terminal
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.execv(sys.executable, [sys.executable, "-m", "ukernel.cli", "run", "sh"])
        self.seen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, text: bytes) -> bytes:
        """Read until ``text`` has appeared; what came before it (and it), consumed."""
        end = time.monotonic() + DEADLINE
        while text not in self.seen:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no {text!r} on the terminal; it shows {self.seen[-400:]!r}")
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                raise AssertionError(f"the run ended before {text!r}; it showed {self.seen[-400:]!r}") from None
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def wait(self) -> int:
        """The run's exit status (after draining what it still writes)."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            got, status = os.waitpid(self.pid, os.WNOHANG)
            if got:
                return os.waitstatus_to_exitcode(status)
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    pass
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the run did not end; the terminal shows {self.seen[-400:]!r}")

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def term():
    t = Terminal()
    yield t
    try:
        os.kill(t.pid, 9)
        os.waitpid(t.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    t.close()


def test_prompt_ctrl_c_ctrl_z_jobs_bg_fg_and_ctrl_d(term):
    term.expect(b"$ ")  # a prompt: stdin is a terminal, no -i needed
    term.type(b"cat\n")
    term.type(b"one\n")
    term.expect(b"one\r\none\r\n")  # the line discipline's echo, then cat's copy (ONLCR)
    term.type(INTR)  # ^C: SIGINT to the foreground group (cat's), not to the shell
    term.expect(b"$ ")
    term.type(b"cat\n")
    term.type(b"ready\n")  # once cat copies a line it runs and owns the terminal: a ^Z typed
    term.expect(b"ready\r\nready\r\n")  # earlier would go to the shell, which ignores it
    term.type(SUSP)  # ^Z: cat stops, the shell takes the terminal back
    term.expect(b"[1]+  Stopped                 cat\r\n$ ")
    term.type(b"jobs\n")
    term.expect(b"[1]+  Stopped                 cat\r\n$ ")
    term.type(b"bg\n")
    term.expect(b"[1]+ cat &\r\n$ ")
    for _ in range(50):  # cat reads from the terminal in the background: SIGTTIN stops it
        term.type(b"jobs\n")
        shown = term.expect(b"$ ")
        if b"[1]+  Stopped (tty input)     cat\r\n" in shown:
            break
        assert b"[1]+  Running                 cat &\r\n" in shown  # not at its read yet
    else:
        raise AssertionError("cat in the background never stopped at its read with SIGTTIN")
    term.type(b"fg\n")
    term.expect(b"cat\r\n")
    term.type(b"two\n")
    term.expect(b"two\r\ntwo\r\n")
    term.type(EOF)  # ^D ends cat's read only: the shell prompts again
    term.expect(b"$ ")
    term.type(EOF)  # ^D at the prompt: the shell exits, and so does the run
    assert term.wait() == 0
    assert termios.tcgetattr(term.slave) == term.mode  # the host terminal's mode is restored
