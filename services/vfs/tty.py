"""The terminal (drivers/tty/n_tty.c, tty_io.c, tty_ioctl.c, tty_jobctrl.c): the console's line discipline.

/dev/console is a character device whose driver is this line discipline, under
the vfs as n_tty is under Linux's VFS: the vfs already owns the device node,
its open files, its wait queue and its sleeping readers. Typed bytes come in
with ``console_input`` (the kernel's terminal task, the interrupt handler);
the discipline edits lines (VERASE, VKILL), echoes, maps CR to NL, and turns
VINTR/VQUIT/VSUSP into signals for the foreground process group. The vfs
sends no signals: its reply names them and the kernel sends them.

Job control needs what only the kernel knows (the caller's blocked mask, its
handlers, whether its group is orphaned): a read (or a TOSTOP write, a
tcsetattr, a tcsetpgrp) from a background group is answered ``{"jobctl": sig}``
and the kernel finishes tty_check_change. Process groups and sessions are named
by their leaders' global pids, as the kernel's task_structs hold them.

Input that is not typed at a terminal (Config.stdin, a pipe into ``ukernel
run``) skips the discipline: its bytes are delivered as they are, no echo, no
signals, and its end is an end of file that stays, as a pipe's does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ukernel import abi
from ukernel.ipc.service import Call, op, touches

from . import footprint as fp
from .inode import File, FilesStruct

#: The window size TIOCGWINSZ answers until TIOCSWINSZ sets one: [rows, cols, xpixel, ypixel].
DEFAULT_WINSIZE = [24, 80, 0, 0]

#: VTIME counts tenths of a second: this many ticks each (n_tty_read's ``(HZ / 10) * TIME_CHAR``).
VTIME_TICKS = abi.HZ // 10


@dataclass
class Termios:
    """struct termios (asm-generic/termbits.h), as Python's termios.tcgetattr lists it."""

    iflag: int = abi.TTY_STD_IFLAG
    oflag: int = abi.TTY_STD_OFLAG
    cflag: int = abi.TTY_STD_CFLAG
    lflag: int = abi.TTY_STD_LFLAG
    ispeed: int = abi.B38400
    ospeed: int = abi.B38400
    cc: list[int] = field(default_factory=lambda: list(abi.INIT_C_CC))

    def as_list(self) -> list:
        return [self.iflag, self.oflag, self.cflag, self.lflag, self.ispeed, self.ospeed, list(self.cc)]

    @classmethod
    def from_list(cls, value: object) -> Termios:
        """set_termios's copy from user space: seven fields, flags ints, cc NCCS bytes."""
        if not isinstance(value, list | tuple) or len(value) != 7:
            raise abi.kernel_error(abi.EFAULT, "a termios is [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]")
        *flags, cc = value
        if not all(isinstance(f, int) and 0 <= f < 2**32 for f in flags):
            raise abi.kernel_error(abi.EFAULT, f"termios flags {flags!r}: unsigned 32-bit ints")
        if not isinstance(cc, list | tuple) or len(cc) != abi.NCCS or not all(_cc_ok(c) for c in cc):
            raise abi.kernel_error(abi.EFAULT, f"termios cc: {abi.NCCS} bytes (ints 0..255 or 1-byte bytes)")
        return cls(*flags, cc=[c if isinstance(c, int) else c[0] for c in cc])

    def on(self, lflag: int) -> bool:
        return bool(self.lflag & lflag)

    def char(self, index: int, c: int) -> bool:
        """c is the control character at ``index``, and that one is not disabled (0)."""
        return self.cc[index] != 0 and c == self.cc[index]


def _cc_ok(c: object) -> bool:
    return (isinstance(c, int) and 0 <= c <= 255) or (isinstance(c, bytes) and len(c) == 1)


@dataclass
class Tty:
    """struct tty_struct with n_tty's data: the termios, the lines typed, who owns it."""

    termios: Termios = field(default_factory=Termios)
    lines: list[list] = field(default_factory=list)  # completed lines: [bytes so far unread, ended by VEOF]
    edit: bytearray = field(default_factory=bytearray)  # the line being typed (canonical), or raw input
    session: int | None = None  # the session it is the controlling terminal of (ctrl.session)
    pgrp: int | None = None  # the foreground process group (ctrl.pgrp)
    winsize: list[int] = field(default_factory=lambda: list(DEFAULT_WINSIZE))
    hung_up: bool = False  # input ended (the host closed the terminal): reads see EOF from now on

    # --- input: n_tty_receive_buf ---------------------------------------------------
    def receive(self, data: bytes) -> tuple[bytes, list[int]]:
        """Typed bytes through the discipline: what to echo and which signals (in order)."""
        echo, signals = bytearray(), []
        for c in data:
            self._receive_char(c, echo, signals)
        return bytes(echo), signals

    def _receive_char(self, c: int, echo: bytearray, signals: list[int]) -> None:
        t = self.termios
        if t.iflag & abi.IGNCR and c == 0o15:
            return
        if c == 0o15 and t.iflag & abi.ICRNL:
            c = 0o12
        elif c == 0o12 and t.iflag & abi.INLCR:
            c = 0o15
        if t.on(abi.ISIG):
            sig = next((s for index, s in ISIG_CHARS if t.char(index, c)), 0)
            if sig:  # isig: flush what was typed (unless NOFLSH), echo ^C, signal the group
                if not t.on(abi.NOFLSH):
                    self.lines.clear()
                    self.edit.clear()
                if t.on(abi.ECHO):
                    echo += _echo_form(c, t)
                signals.append(sig)
                return
        if not t.on(abi.ICANON):
            self.edit.append(c)
            if t.on(abi.ECHO):
                echo += _echo_form(c, t)
            return
        if t.char(abi.VERASE, c):
            if self.edit:
                erased = self.edit.pop()
                if t.on(abi.ECHO) and t.on(abi.ECHOE):
                    echo += b"\b \b" * len(_echo_form(erased, t))
            return
        if t.char(abi.VKILL, c):
            if t.on(abi.ECHO) and t.on(abi.ECHOKE):
                echo += b"".join(b"\b \b" * len(_echo_form(x, t)) for x in self.edit)
            elif t.on(abi.ECHO) and t.on(abi.ECHOK):
                echo += _echo_form(c, t) + b"\n"
            self.edit.clear()
            return
        if t.char(abi.VEOF, c):  # the line ends without the ^D; an empty one is EOF for one read
            self.lines.append([bytes(self.edit), True])
            self.edit.clear()
            return
        self.edit.append(c)
        if t.on(abi.ECHO) or (c == 0o12 and t.on(abi.ECHONL)):
            echo += _echo_form(c, t)
        if c == 0o12 or t.char(abi.VEOL, c):
            self.lines.append([bytes(self.edit), False])
            self.edit.clear()

    def flush_input(self) -> None:
        """TCSETSF, TCFLSH: what was typed and not read is thrown away."""
        self.lines.clear()
        self.edit.clear()

    # --- reading: n_tty_read ------------------------------------------------------------
    def readable(self, n: int) -> bool:
        """Is there something a read of n bytes returns now (canonical: a line; else VMIN bytes)?"""
        if self.termios.on(abi.ICANON):
            return bool(self.lines)
        self._flatten()
        return len(self.edit) >= min(n, self.termios.cc[abi.VMIN]) and (self.edit or self.termios.cc[abi.VMIN] == 0)

    def take(self, n: int) -> bytes:
        """Canonical: at most one line (the rest stays); an empty VEOF line is b"" once."""
        if self.termios.on(abi.ICANON):
            line = self.lines[0]
            data, line[0] = line[0][:n], line[0][n:]
            if not line[0]:
                self.lines.pop(0)
            return data
        data = bytes(self.edit[:n])
        del self.edit[:n]
        return data

    def _flatten(self) -> None:
        """Lines typed in canonical mode are plain bytes once ICANON is off."""
        if self.lines:
            self.edit[:0] = b"".join(text for text, _ in self.lines)
            self.lines.clear()

    # --- output: process_output (OPOST) ------------------------------------------------
    def output(self, data: bytes) -> bytes:
        """ONLCR: NL goes out as CR NL to a real terminal."""
        t = self.termios
        if t.oflag & abi.OPOST and t.oflag & abi.ONLCR:
            return data.replace(b"\n", b"\r\n")
        return data


#: The ISIG keys and what each sends to the foreground process group (n_tty_receive_signal_char).
ISIG_CHARS = ((abi.VINTR, abi.SIGINT), (abi.VQUIT, abi.SIGQUIT), (abi.VSUSP, abi.SIGTSTP))


def _echo_form(c: int, t: Termios) -> bytes:
    """echo_char: ECHOCTL shows a control character as ^X (not TAB and NL)."""
    if t.on(abi.ECHOCTL) and (c < 0o40 or c == 0o177) and c not in (0o11, 0o12):
        return b"^" + bytes([c ^ 0o100])
    return bytes([c])


class TtyOps:
    """The vfs's terminal ops (mixed into VfsService): input, read, write, ioctl."""

    tty: Tty

    def _is_tty(self, file: File) -> bool:
        """The console is a terminal when its input is typed at one (a pipe or a file
        on the host's stdin is no terminal: isatty(0) is false, as on Linux)."""
        return file.inode.device == "console" and self.console_tty

    def _tty_open(self, fst: FilesStruct, file: File, job: dict, cloexec: bool) -> object:
        """tty_open: /dev/tty is the caller's controlling terminal (ENXIO without one); a
        session leader without one that opens the console for reading, not O_NOCTTY,
        while no session has it, acquires it (tty_open_proc_set_tty)."""
        if file.inode.device == "tty":
            if not job.get("ctty"):
                raise abi.kernel_error(abi.ENXIO, "/dev/tty: the caller has no controlling terminal")
            file.inode = self.root.children["dev"].children["console"]
            return self._install_new(fst, file, cloexec)
        fd = self._install_new(fst, file, cloexec)
        acquire = job.get("leader") and not job.get("ctty") and self.tty.session is None
        if acquire and file.readable and not file.flags & abi.O_NOCTTY:
            self._set_ctty(job)
            return {"fd": fd, "ctty": abi.CONSOLE_DEV}
        return fd

    def _tty_write_out(self, data: bytes) -> None:
        """What reaches the screen: Result.stdout, and the host's terminal as it comes."""
        if self.console_tty:
            data = self.tty.output(data)
        self.output += data
        if self.console_sink is not None:
            self.console_sink(data)

    def _tty_input(self, data: bytes, live: bool, tty: bool) -> dict:
        """console_input's work: through the discipline when typed at a terminal; the signals
        (to the foreground group) and a hangup (to the session) for the kernel to send."""
        self.console_tty = self.console_tty or tty
        reply: dict = {}
        if not self.console_tty:
            self.stdin += data
            self.stdin_live = live
            return reply
        echo, signals = self.tty.receive(data)
        if echo:
            self._tty_write_out(echo)
        if signals and self.tty.pgrp is not None:
            reply["signals"] = [[sig, self.tty.pgrp] for sig in signals]
        if not live and not self.tty.hung_up:  # tty_hangup: the session leader hears of it
            self.tty.hung_up = True
            if self.tty.session is not None:
                reply["hangup"] = [self.tty.session, self.tty.pgrp]
        return reply

    def _tty_read(self, file: File, n: int, pgrp: int | None) -> object:
        """n_tty_read: job control first, then a line (or VMIN bytes), else wait."""
        if not self.console_tty:  # input not typed: its bytes as they came, EOF at their end
            if not self.stdin and self.stdin_live and n:
                return self._wait_or_again(file)
            data = bytes(self.stdin[:n])
            del self.stdin[:n]
            return data
        if self._background(pgrp):
            return {"jobctl": abi.SIGTTIN}
        tty = self.tty
        if not n:
            return b""
        if not tty.termios.on(abi.ICANON) and tty.termios.cc[abi.VTIME]:
            return self._n_tty_read_timed(file, n, 0)
        if tty.readable(n):
            return tty.take(n)
        if tty.hung_up:
            return tty.take(n) if not tty.termios.on(abi.ICANON) else b""
        return self._wait_or_again(file)

    def _n_tty_read_timed(self, file: File, n: int, got: int) -> object:
        """n_tty_read with VTIME (termios(3) "Noncanonical mode"): bytes are taken as they come.
        With VMIN the read ends at VMIN bytes, or VTIME after the last byte (no timer before the
        first); without, at the first byte or VTIME after the read began. The kernel sleeps
        with the timer (``timeout`` ticks, None: none) and adds up the steps (``got`` bytes so far)."""
        tty = self.tty
        tty._flatten()
        data, vmin = tty.take(n), tty.termios.cc[abi.VMIN]
        if len(data) == n or got + len(data) >= max(vmin, 1) or tty.hung_up:
            return data
        if file.flags & abi.O_NONBLOCK:
            if data:
                return data
            raise abi.kernel_error(abi.EAGAIN, "no input yet")
        timeout = None if vmin and not got + len(data) else tty.termios.cc[abi.VTIME] * VTIME_TICKS
        return {"vtime": self._prepare_to_wait(self.console_wait)["wait"], "data": data, "timeout": timeout}

    @op
    async def n_tty_read(self, req: Call, files: int, fd: int, n: int, got: int) -> object:
        """The next step of a VTIME read, after the kernel's timed sleep was woken: ``n`` bytes
        still wanted, ``got`` taken already (job control was checked at the first step)."""
        file = self._file(self._fst(files), fd)
        if file.inode.device != "console":
            raise abi.kernel_error(abi.EBADF, f"fd {fd} is no longer the terminal the read began on")
        if self.tty.termios.on(abi.ICANON) or not self.tty.termios.cc[abi.VTIME]:
            return self._tty_read(file, n, None)  # the termios changed under the read: read as it is now
        return self._n_tty_read_timed(file, n, got)

    def _wait_or_again(self, file: File) -> object:
        if file.flags & abi.O_NONBLOCK:
            raise abi.kernel_error(abi.EAGAIN, "no input yet")
        return self._prepare_to_wait(self.console_wait)

    def _tty_write(self, data: bytes, pgrp: int | None) -> object:
        """n_tty_write: with TOSTOP a background group's write is SIGTTOU first."""
        if self.tty.termios.on(abi.TOSTOP) and self._background(pgrp):
            return {"jobctl": abi.SIGTTOU}
        self._tty_write_out(data)
        return len(data)

    def _background(self, pgrp: int | None) -> bool:
        """__tty_check_change's test: the caller (its controlling tty this one; the kernel
        passes its group only then) is not in the foreground group."""
        return pgrp is not None and self.tty.pgrp is not None and pgrp != self.tty.pgrp

    # --- ioctl ---------------------------------------------------------------------------
    @op
    @touches(fp.ioctl)
    async def ioctl(self, req: Call, files: int, fd: int, cmd: int, arg: Any = None, job: dict | None = None) -> object:
        """tty_ioctl. ``job`` is what the kernel knows of the caller: its session and group
        (global numbers), whether it leads its session, whether this is its controlling tty,
        and ``checked`` once it has finished a SIGTTOU check (tty_check_change)."""
        file = self._file(self._fst(files), fd)
        if not self._is_tty(file):
            raise abi.kernel_error(abi.ENOTTY, f"fd {fd} is not a terminal (ioctl {cmd:#x})")
        job = job or {}
        handler = TTY_IOCTLS.get(cmd)
        if handler is None:
            raise abi.kernel_error(abi.ENOTTY, f"ioctl {cmd:#x} is not a terminal ioctl ukernel knows")
        reply = handler(self, file, arg, job)
        if cmd in (abi.TCSETS, abi.TCSETSW, abi.TCSETSF):  # a reader may have what it waits for now
            await self._wake(self.console_wait)
        return reply

    def _tcgets(self, file: File, arg: object, job: dict) -> list:
        return self.tty.termios.as_list()

    def _tcsets(self, file: File, arg: object, job: dict, flush: bool = False) -> object:
        """set_termios: a background group gets SIGTTOU first (unless it ignores it)."""
        new = Termios.from_list(arg)
        if self._checks_change(job):
            return {"jobctl": abi.SIGTTOU}
        if flush:
            self.tty.flush_input()
        self.tty.termios = new
        return 0

    def _tcsetsf(self, file: File, arg: object, job: dict) -> object:
        return self._tcsets(file, arg, job, flush=True)

    def _checks_change(self, job: dict) -> bool:
        return job.get("ctty", False) and not job.get("checked") and self._background(job.get("pgrp"))

    def _tiocgpgrp(self, file: File, arg: object, job: dict) -> object:
        """tiocgpgrp: only of the caller's controlling terminal; the kernel turns the global
        number into the caller's view."""
        if not job.get("ctty"):
            raise abi.kernel_error(abi.ENOTTY, "tcgetpgrp: not the caller's controlling terminal")
        return {"pgrp": self.tty.pgrp}

    def _tiocspgrp(self, file: File, arg: object, job: dict) -> object:
        """tiocspgrp: the kernel looked the group up (``arg``: [its global number, its session],
        or None);
        here the terminal must be the caller's, of the caller's session."""
        if self._checks_change(job):
            return {"jobctl": abi.SIGTTOU}
        if not job.get("ctty") or self.tty.session != job.get("sid"):
            raise abi.kernel_error(abi.ENOTTY, "tcsetpgrp: not the caller's controlling terminal")
        if arg is None:
            raise abi.kernel_error(abi.ESRCH, "tcsetpgrp: no such process group")
        pgrp, sid = arg
        if sid != job["sid"]:
            raise abi.kernel_error(abi.EPERM, "tcsetpgrp: the group is in another session")
        self.tty.pgrp = pgrp
        return 0

    def _tiocsctty(self, file: File, arg: object, job: dict) -> object:
        """tiocsctty: a session leader without a terminal takes this one; one owned by
        another session only with arg 1 (stolen: the kernel clears that session's)."""
        reply = {"ctty": abi.CONSOLE_DEV}
        if job.get("leader") and self.tty.session == job.get("sid"):
            return 0
        if not job.get("leader") or job.get("ctty"):
            raise abi.kernel_error(abi.EPERM, "TIOCSCTTY: only a session leader without a controlling tty")
        if self.tty.session is not None:
            if arg != 1:
                raise abi.kernel_error(abi.EPERM, "TIOCSCTTY: the terminal belongs to another session")
            reply["stolen"] = self.tty.session
        if not file.readable:
            raise abi.kernel_error(abi.EPERM, "TIOCSCTTY: the fd is not open for reading")
        self._set_ctty(job)
        return reply

    def _set_ctty(self, job: dict) -> None:
        """__proc_set_tty: the caller's session owns the terminal, its group in the foreground."""
        self.tty.session, self.tty.pgrp = job["sid"], job["pgrp"]
        self.tty.hung_up = False

    def _tiocnotty(self, file: File, arg: object, job: dict) -> object:
        """tiocnotty: the caller lets go; a session leader lets go for its whole session
        (disassociate_ctty(0): the foreground group gets SIGHUP and SIGCONT)."""
        if not job.get("ctty"):
            raise abi.kernel_error(abi.ENOTTY, "TIOCNOTTY: not the caller's controlling terminal")
        if not job.get("leader"):
            return {"dropped": "self"}
        return {"dropped": "session", **self._disassociate(job["sid"], on_exit=False)}

    def _disassociate(self, sid: int, on_exit: bool) -> dict:
        """disassociate_ctty: SIGHUP (and, unless the leader exits, SIGCONT) to the foreground group."""
        tty, reply = self.tty, {}
        if tty.session != sid:
            return reply
        if tty.pgrp is not None:
            sigs = [abi.SIGHUP] if on_exit else [abi.SIGHUP, abi.SIGCONT]
            reply["signals"] = [[sig, tty.pgrp] for sig in sigs]
        tty.session = tty.pgrp = None
        return reply

    def _tiocgwinsz(self, file: File, arg: object, job: dict) -> list[int]:
        return list(self.tty.winsize)

    def _tiocswinsz(self, file: File, arg: object, job: dict) -> object:
        """A new size; the foreground group hears of it (SIGWINCH), as tiocswinsz does."""
        if not isinstance(arg, list | tuple) or len(arg) != 4 or not all(isinstance(x, int) for x in arg):
            raise abi.kernel_error(abi.EFAULT, "a winsize is [rows, cols, xpixel, ypixel]")
        changed, self.tty.winsize = list(arg) != self.tty.winsize, list(arg)
        if changed and self.tty.pgrp is not None:
            return {"signals": [[abi.SIGWINCH, self.tty.pgrp]]}
        return 0

    @op
    async def tty_exit_session(self, req: Call, sid: int) -> dict:
        """The session leader exits (do_exit's disassociate_ctty(1)): SIGHUP to the foreground group."""
        return self._disassociate(sid, on_exit=True)

    @op
    async def tty_state(self, req: Call) -> dict:
        """/proc/PID/stat's tpgid: the console's foreground group and session (global numbers)."""
        return {"pgrp": self.tty.pgrp, "session": self.tty.session}


TTY_IOCTLS = {
    abi.TCGETS: TtyOps._tcgets,
    abi.TCSETS: TtyOps._tcsets,
    abi.TCSETSW: TtyOps._tcsets,  # output is never queued here: draining it waits for nothing
    abi.TCSETSF: TtyOps._tcsetsf,
    abi.TIOCGPGRP: TtyOps._tiocgpgrp,
    abi.TIOCSPGRP: TtyOps._tiocspgrp,
    abi.TIOCSCTTY: TtyOps._tiocsctty,
    abi.TIOCNOTTY: TtyOps._tiocnotty,
    abi.TIOCGWINSZ: TtyOps._tiocgwinsz,
    abi.TIOCSWINSZ: TtyOps._tiocswinsz,
}
