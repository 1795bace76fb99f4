"""The host's terminal under ``ukernel run`` (issue 15, item 2): raw mode while the run has it,
put back on every way out; ssh's ``~`` escapes; stdin streamed from a pipe as it comes; the
progress line never drawn over the program's output.

The terminal cases drive ``ukernel run`` on a pty it has as its controlling terminal, as a
shell would start it, and compare the pty's termios (what ``stty -g`` prints) before and after.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import ukernel
from ukernel.api import HUNG_EXIT
from ukernel.kernel.console import HELP, Escapes
from ukernel.kernel.hung import CONSOLE_INPUT, deadlocked
from ukernel.terminal import raw, raw_mode
from ukernel.trace import ProgressSink

WAIT = 90  # seconds before a step that never comes fails the test (a hang guard, not a timing)
LFLAG, OFLAG, IFLAG = 3, 1, 0

READY_THEN_ECHO = """
async def main(sys, argv):
    await sys.write(1, b"ready\\n")
    while data := await sys.read(0, 100):
        await sys.write(1, b"got %r\\n" % data)
    return 0
"""

BOOM = """
async def main(sys, argv):
    await sys.write(1, b"ready\\n")
    raise ValueError("boom")
"""

FORGOTTEN_CLOSE = """
async def main(sys, argv):
    r, w = await sys.pipe()
    await sys.write(1, b"ready\\n")
    await sys.read(r, 1)  # its own write end is open: no one can ever write
"""

CHATTY = """
async def main(sys, argv):
    for i in range(40):
        pid = await sys.fork()
        if pid == 0:
            return 0
        await sys.waitpid(pid, 0)
        await sys.write(1, b"line %d\\n" % i)
    return 0
"""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ukernel.cli", "run", *args]


def source(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prog.py"
    path.write_text(text)
    return str(path)


def _take_terminal() -> None:
    """In the child: the pty on fd 0 becomes its controlling terminal (login_tty's TIOCSCTTY)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Pty:
    """``ukernel run`` with a pty as its terminal (stdout and stderr on it; stdin too unless told)."""

    def __init__(self, argv: list[str], stdin_tty: bool = True):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.out = b""
        self.proc = subprocess.Popen(
            argv,
            stdin=self.slave if stdin_tty else subprocess.DEVNULL,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=_take_terminal if stdin_tty else None,
        )

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            self.out += os.read(self.master, 65536)
        return bool(ready)

    def expect(self, marker: bytes, count: int = 1) -> None:
        """Read until ``marker`` has appeared ``count`` times; a bounded number of looks
        (WAIT seconds of 0.1 s each), so a hang fails the test instead of stopping the suite."""
        for _ in range(round(WAIT / 0.1)):
            if self.out.count(marker) >= count:
                return
            assert self.proc.poll() is None or self._read(0), f"ended without {marker!r}: {self.out!r}"
            self._read(0.1)
        raise AssertionError(f"no {marker!r} in {self.out!r}")

    def raw_now(self) -> list:
        """Once the run has put the terminal in raw mode: that mode (looked for as expect does)."""
        for _ in range(round(WAIT / 0.05)):
            mode = termios.tcgetattr(self.slave)
            if not mode[LFLAG] & termios.ICANON:
                return mode
            assert self.proc.poll() is None, self.out
            self._read(0.05)
        raise AssertionError(f"the terminal never went raw: {self.out!r}")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self) -> int:
        """Its exit status, once all it wrote is read; the fds closed."""
        status = self.proc.wait(timeout=WAIT)
        while self._read(0):
            pass
        self.after, self.blocking = termios.tcgetattr(self.slave), os.get_blocking(self.slave)
        os.close(self.master)
        os.close(self.slave)
        return status

    def restored(self) -> bool:
        return self.after == self.before and self.blocking


# --- raw mode and its restore on every exit path -------------------------------------------------


def test_a_run_has_the_terminal_raw_with_output_processing_and_gives_it_back_after_a_normal_end():
    pty = Pty(cli("head", "-n", "1"))
    mode = pty.raw_now()
    assert not mode[LFLAG] & (termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    assert not mode[IFLAG] & (termios.ICRNL | termios.IXON)
    assert mode[OFLAG] == pty.before[OFLAG]  # OPOST, ONLCR as they were: \n shows as a new line
    assert mode[6][termios.VMIN] == 1 and mode[6][termios.VTIME] == 0
    pty.type(b"hi\n")
    assert pty.finish() == 0
    assert b"hi\r\n" in pty.out  # the host's ONLCR at work
    assert pty.restored()


def test_the_escapes_reach_ukernel_and_tilde_dot_ends_the_run_with_130(tmp_path):
    pty = Pty(cli(source(tmp_path, READY_THEN_ECHO)))
    pty.raw_now()
    pty.expect(b"ready")
    for dumps in range(1, 50):  # at the very start of the input; again until prog's read waits
        pty.type(b"~t")
        pty.expect(b"ukernel: ~t: the tasks and what they wait for:\r\n", dumps)
        pty.expect(b"      2 prog ", dumps)
        if pty.out.rsplit(b"      2 prog ", 1)[1].startswith(b"S read      " + CONSOLE_INPUT.encode()):
            break
    else:
        raise AssertionError(f"prog never waited for console input: {pty.out!r}")
    pty.type(b"~?")  # still at the start of a line
    pty.expect(HELP.encode().replace(b"\n", b"\r\n"))
    pty.type(b"~~x\n")
    pty.expect(b"got b'~x\\n'")  # ~~ is one ~
    pty.type(b"a~.b~t\n")
    pty.expect(b"got b'a~.b~t\\n'")  # not at the start of a line: the program's bytes
    pty.type(b"~z\n")
    pty.expect(b"got b'~z\\n'")  # not an escape: the ~ goes through with it
    pty.type(b"~.")
    assert pty.finish() == 130
    assert pty.out.endswith(b"ukernel: interrupted by ~.\r\n")
    assert b"Traceback" not in pty.out
    assert pty.restored()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_the_run_cleanly_and_give_the_terminal_back(tmp_path, sig):
    pty = Pty(cli(source(tmp_path, READY_THEN_ECHO)))
    pty.raw_now()
    pty.expect(b"ready")
    pty.proc.send_signal(sig)
    assert pty.finish() == 128 + sig
    assert pty.out.endswith(f"ukernel: interrupted by {signal.Signals(sig).name}\r\n".encode())
    assert pty.restored()


WALKER = Path(__file__).parent / "plugs" / "raising_walker.py"  # a kernel path's bug: a panic


@pytest.mark.parametrize(
    ("program", "options", "status", "says"),
    [
        (BOOM, [], 1, b"ValueError: boom"),
        (FORGOTTEN_CLOSE, [], HUNG_EXIT, b"ukernel: deadlock:"),
        (None, ["--copy-process", f"{WALKER}:Walk"], 1, b"the walker lost its way"),
    ],
    ids=["exception", "deadlock", "panic"],
)
def test_an_exception_a_deadlock_and_a_panic_give_the_terminal_back(tmp_path, program, options, status, says):
    pty = Pty(cli(*options, source(tmp_path, program) if program else "hello"))
    assert pty.finish() == status
    assert says in pty.out and (program is None or b"ready" in pty.out)
    assert pty.restored()


def test_the_host_s_ctrl_c_is_a_key_for_the_guest_not_a_signal_to_ukernel():
    pty = Pty(cli("head", "-n", "1"))
    pty.raw_now()
    pty.type(b"\x03\n")  # the guest's line discipline echoes ^C and sends SIGINT to the foreground group
    status = pty.finish()
    assert b"ukernel: interrupted" not in pty.out and pty.out.startswith(b"^C\r\n")
    # head in the foreground by then: killed by it; typed ahead of its start: init's group had the terminal
    assert (status, b"ukernel: program killed by SIGINT" in pty.out) in {(130, True), (0, False)}
    assert pty.restored()


def test_raw_mode_is_given_back_after_an_exception_and_before_a_fatal_signal_kills():
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError), raw_mode(slave):
        assert termios.tcgetattr(slave) == raw(before)
        raise RuntimeError
    assert termios.tcgetattr(slave) == before
    guarded = "import os, signal, time; from ukernel.terminal import raw_mode\nwith raw_mode(0):\n"
    guarded += "    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(60)\n"
    dies = subprocess.run([sys.executable, "-c", guarded], stdin=slave, timeout=WAIT)
    assert dies.returncode == -signal.SIGTERM  # still killed by it, as the default action does
    assert termios.tcgetattr(slave) == before
    os.close(master)
    os.close(slave)


# --- the progress line ----------------------------------------------------------------------------

DRAW = rb"\r\[ukernel\] \d+ tasks, \d+ messages "


def test_the_progress_line_is_cleared_before_program_output_and_at_the_end(tmp_path):
    pty = Pty(cli(source(tmp_path, CHATTY)), stdin_tty=False)
    assert pty.finish() == 0
    assert re.search(DRAW, pty.out), "drawn at least once, or this test shows nothing"
    assert re.findall(DRAW + rb"(?!\r\x1b\[K|\r\[ukernel\])", pty.out) == []
    cleaned = re.sub(DRAW + rb"\r\x1b\[K", b"", pty.out)
    assert cleaned == b"".join(b"line %d\r\n" % i for i in range(40))


def test_no_progress_line_when_the_program_has_the_terminal(tmp_path):
    pty = Pty(cli(source(tmp_path, CHATTY)))
    assert pty.finish() == 0
    assert b"[ukernel]" not in pty.out
    assert b"line 39\r\n" in pty.out
    assert pty.restored()


def test_progress_clear_erases_only_a_drawn_line():
    class Stream(list):
        write = list.append

        def flush(self) -> None:
            pass

    stream = Stream()
    progress = ProgressSink(stream, every=2)
    progress.clear()
    assert stream == []
    for _ in range(2):
        progress({"type": "request", "op": "read"})
    progress.clear()
    progress.clear()
    assert stream == ["\r[ukernel] 0 tasks, 2 messages ", "\r\x1b[K"]


# --- stdin streamed from a pipe -------------------------------------------------------------------


def test_yes_into_head_ends_once_head_has_its_lines():
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:  # yes never ends: the run ending at all shows stdin is not read whole first
        done = subprocess.run(cli("head", "-n", "3"), stdin=yes.stdout, capture_output=True, timeout=WAIT)
    finally:
        yes.kill()
        yes.wait()
    assert (done.returncode, done.stdout, done.stderr) == (0, b"y\ny\ny\n", b"")


def test_a_program_that_does_not_read_ends_while_its_stdin_pipe_is_still_open():
    r, w = os.pipe()
    try:
        done = subprocess.run(cli("hello"), stdin=r, capture_output=True, timeout=WAIT)
        assert (done.returncode, done.stdout) == (0, b"hello from pid 2 (parent 1)\n")
    finally:
        os.close(r)
        os.close(w)


def test_piped_input_reaches_the_program_as_it_comes_and_its_end_is_eof():
    r, w = os.pipe()
    proc = subprocess.Popen(cli("cat"), stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(r)
    os.write(w, b"one\n")
    assert proc.stdout.readline() == b"one\n"  # while the pipe is open: streamed, not read whole
    os.write(w, b"two\n")
    assert proc.stdout.readline() == b"two\n"
    os.close(w)
    out, err = proc.communicate(timeout=WAIT)
    assert (proc.returncode, out, err) == (0, b"", b"")


async def test_a_reader_of_an_open_pipe_is_not_a_deadlock_and_eof_ends_it():
    r, w = os.pipe()
    async with ukernel.boot(terminal=r) as kernel:
        cat = await kernel.spawn("/bin/cat", ["cat"])
        while cat.wchan is None or cat.wchan.what != CONSOLE_INPUT:
            await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
        assert not deadlocked(kernel)  # its writer may still write
        os.close(w)
        assert await kernel.wait_exit(cat) == 0
        assert not kernel.input_open
        assert await kernel.check_invariants() == []
    os.close(r)


# --- the escapes' state machine -------------------------------------------------------------------


def feed_all(chunks: list[bytes]) -> tuple[bytes, list[str]]:
    escapes, out, commands = Escapes(), b"", []
    for chunk in chunks:
        data, more = escapes.feed(chunk)
        out, commands = out + data, commands + more
    return out, commands


@pytest.mark.parametrize(
    ("typed", "guest", "commands"),
    [
        (b"~.", b"", ["end"]),
        (b"ls\r~t~?~.", b"ls\r", ["tasks", "help", "end"]),
        (b"ls\n~~.", b"ls\n~.", []),
        (b"a~.", b"a~.", []),
        (b"~x~.", b"~x~.", []),
        (b"~\r~.", b"~\r", ["end"]),
    ],
)
def test_escapes_are_ssh_s(typed, guest, commands):
    assert Escapes().feed(typed) == (guest, commands)


@given(st.binary(max_size=60), st.lists(st.integers(0, 60), max_size=6))
def test_escapes_do_not_depend_on_how_the_input_is_split(data, cuts):
    edges = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    assert feed_all([data[a:b] for a, b in zip(edges, edges[1:], strict=False)]) == feed_all([data])


@given(st.binary(max_size=60).filter(lambda b: b"~" not in b))
def test_input_without_a_tilde_passes_unchanged(data):
    assert Escapes().feed(data) == (data, [])
