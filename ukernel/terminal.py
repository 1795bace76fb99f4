"""The host's terminal while ``ukernel run`` has it: raw mode, put back on every way out.

Raw as cfmakeraw makes it (no ICANON, ECHO, ISIG, IEXTEN, ICRNL, IXON; 8-bit
characters; VMIN 1, VTIME 0), so ^C, ^Z, ^D and ^\\ reach the guest's line
discipline as bytes, with one difference: output processing (OPOST, ONLCR) is
left as it was. What ukernel writes itself (a hang's dump, ``~?``, a log line,
a traceback) ends its lines in ``\\n`` only, and a program's output reaches the
host terminal as the program wrote it; with ONLCR both show as lines instead of
a staircase, and output that already says ``\\r\\n`` is unchanged by it.

The mode (and the fd's O_NONBLOCK, which trio's FdStream sets on the shared file
description) is restored when the block ends, whatever ends it; SIGTERM, SIGHUP
and SIGQUIT outside a run's own handlers (api.py ends the run cleanly on the
first two) restore it and then end the process by that signal, as its default
would have.
"""

from __future__ import annotations

import os
import signal
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

FATAL = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)  # default action: end the process


def raw(mode: list) -> list:
    """cfmakeraw's mode without touching the output flags (the module docstring says why)."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = mode
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP)
    iflag &= ~(termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


def owns(fd: int) -> bool:
    """fd is a terminal whose foreground process group is ours: changing the mode of one
    we run in the background of would stop us with SIGTTOU."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on fd in raw mode for the block; its mode and blocking flag as they were after."""
    saved, blocking = termios.tcgetattr(fd), os.get_blocking(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)  # keys typed for the guest never reach the host's shell
        os.set_blocking(fd, blocking)

    def restore_and_die(signum: int, frame: FrameType | None) -> None:
        restore()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {sig: signal.signal(sig, restore_and_die) for sig in FATAL}
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, raw(saved))  # keys typed ahead are the guest's
        yield
    finally:
        restore()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
