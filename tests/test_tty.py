"""The console's line discipline and job control (services/vfs/tty.py, ukernel/kernel/tty.py; docs/tty.md).

Keys are typed with ``Kernel.tty_input``, the route the kernel's terminal task
takes for a real terminal: each chunk once every task is asleep, so the
program is waiting in its read when the key comes.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import trio
import trio.testing

import ukernel
from ukernel import abi


async def typed(source: str, *chunks: bytes) -> tuple[int, bytes]:
    """Run ``source`` as /bin/t on a terminal console, typing each chunk in turn."""
    files = {"/bin/t": textwrap.dedent(source).encode()}
    with trio.fail_after(60):
        async with ukernel.boot(files=files) as kernel:
            await kernel.tty_input(b"")  # the console is a terminal (as at boot with one attached)

            async def typist() -> None:
                for chunk in chunks:
                    await trio.testing.wait_all_tasks_blocked()
                    await kernel.tty_input(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(typist)
                status = await kernel.run("/bin/t")
            output = await kernel.call("vfs", "console_output", {})
            assert await kernel.check_invariants() == []
    return status, output


READ_LINES = """
    async def main(sys, argv):
        for _ in range(int(argv[1])):
            await sys.write(1, b"got %r\\n" % await sys.read(0, 100))
        return 0
"""


async def test_canonical_read_gets_a_line_after_nl_with_erase_kill_and_echo():
    status, out = await typed(
        READ_LINES.replace("int(argv[1])", "2"), b"ab", b"\x7fc\r", b"junk\x15ok\n"
    )  # DEL erases b, CR is NL (ICRNL), ^U kills "junk"
    assert status == 0
    # the echo (ECHOE: "\b \b" per erased char, ECHOKE for the killed line), then each line; ONLCR: NL -> CR NL
    assert out == b"ab\b \bc\r\ngot b'ac\\n'\r\njunk" + b"\b \b" * 4 + b"ok\r\ngot b'ok\\n'\r\n"


async def test_eof_at_line_start_ends_only_the_read_in_progress():
    status, out = await typed(READ_LINES.replace("int(argv[1])", "3"), b"\x04", b"after\n", b"x\x04")
    assert status == 0
    assert out == b"got b''\r\nafter\r\ngot b'after\\n'\r\nxgot b'x'\r\n"  # ^D is not echoed; "x^D" is "x"


FG_BG = """
    from ukernel import abi

    async def main(sys, argv):
        await sys.sigaction(abi.SIGINT, abi.SIG_IGN)   # the parent, like a shell, survives its own ^C
        await sys.sigaction(abi.SIGTSTP, abi.SIG_IGN)
        bg = await sys.fork()
        if bg == 0:
            await sys.setpgid(0, 0)
            await sys.sigaction(abi.SIGINT, abi.SIG_DFL)
            await sys.read(0, 10)                       # from the background: SIGTTIN stops it
            return 9
        await sys.setpgid(bg, bg)
        fg = await sys.fork()
        if fg == 0:
            await sys.sigaction(abi.SIGINT, abi.SIG_DFL)
            await sys.sigaction(abi.SIGTSTP, abi.SIG_DFL)
            await sys.read(0, 10)                       # the foreground: the key's signal ends it
            return 0
        for pid, who in ((bg, "bg"), (fg, "fg")):
            _, status = await sys.waitpid(pid, abi.WUNTRACED)
            await sys.write(1, f"{who} {status:#x}\\n".encode())
            if status & 0xFF == 0x7F:  # stopped: end it
                await sys.kill(pid, abi.SIGKILL)
                await sys.waitpid(pid, 0)
        return 0
"""


def stopped(sig: int) -> str:
    return f"{(sig << 8) | 0x7F:#x}"


async def test_ctrl_c_sends_sigint_to_the_foreground_group_only():
    status, out = await typed(FG_BG, b"abc\x03")
    assert status == 0
    # ^C echoes as ^C and flushes "abc"; the foreground child dies of SIGINT, the background one
    # (stopped by SIGTTIN at its read) is still there for the parent to kill
    assert out == f"bg {stopped(abi.SIGTTIN)}\r\nabc^Cfg {abi.SIGINT:#x}\r\n".encode()


async def test_ctrl_z_stops_the_foreground_group_with_sigtstp():
    status, out = await typed(FG_BG, b"\x1a")
    assert status == 0
    assert out == f"bg {stopped(abi.SIGTTIN)}\r\n^Zfg {stopped(abi.SIGTSTP)}\r\n".encode()


async def test_raw_mode_gets_bytes_one_by_one_without_echo():
    status, out = await typed(
        """
        from ukernel import abi

        async def main(sys, argv):
            attrs = await sys.tcgetattr(0)
            attrs[3] &= ~(abi.ICANON | abi.ECHO)
            attrs[6][abi.VMIN], attrs[6][abi.VTIME] = 1, 0
            await sys.tcsetattr(0, abi.TCSAFLUSH, attrs)
            got = [await sys.read(0, 10) for _ in range(2)]
            await sys.write(1, repr(got).encode())
            attrs = await sys.tcgetattr(0)
            await sys.write(1, repr((attrs[6][abi.VMIN], attrs[6][abi.VINTR])).encode())
            return 0
        """,
        b"a",
        b"b\x7f",
    )
    assert status == 0
    assert out == b"[b'a', b'b\\x7f'](1, b'\\x03')"  # DEL is a byte like any other; VMIN an int once raw


async def test_tcsetpgrp_from_the_background_is_sigttou_unless_ignored():
    status, out = await typed(
        """
        from ukernel import abi

        async def main(sys, argv):
            child = await sys.fork()
            if child == 0:
                await sys.setpgid(0, 0)
                await sys.tcsetpgrp(0, await sys.getpid())   # SIGTTOU: stopped here
                return 0
            _, status = await sys.waitpid(child, abi.WUNTRACED)
            await sys.write(1, f"{status:#x} fg {await sys.tcgetpgrp(0)}\\n".encode())
            await sys.kill(child, abi.SIGKILL)
            await sys.waitpid(child, 0)
            child = await sys.fork()
            if child == 0:
                await sys.setpgid(0, 0)
                await sys.sigaction(abi.SIGTTOU, abi.SIG_IGN)
                await sys.tcsetpgrp(0, await sys.getpid())   # ignored: the terminal is its now
                await sys.write(1, f"fg {await sys.tcgetpgrp(0)}\\n".encode())
                return 0
            await sys.waitpid(child, 0)
            try:
                await sys.tcsetpgrp(0, 999)
            except OSError as exc:
                await sys.write(1, f"{abi.errno_name(exc.errno)}\\n".encode())
            return 0
        """
    )
    assert status == 0
    # 1: the first child stops (SIGTTOU); 2: the second ignores SIGTTOU and takes the terminal;
    # 3: then the parent is the background, and its group is orphaned (init's children do not
    # count): tty_check_change's EIO, which tiocspgrp answers as ENOTTY
    assert out.split(b"\r\n") == [f"{stopped(abi.SIGTTOU)} fg 2".encode(), b"fg 4", b"ENOTTY", b""]


async def test_enotty_on_a_pipe_and_no_tty_after_setsid():
    status, out = await typed(
        """
        from ukernel import abi

        async def main(sys, argv):
            r, w = await sys.pipe()
            for call in ("sys.ioctl(r, abi.TCGETS)", "sys.tcgetpgrp(r)", "sys.tcsetpgrp(w, 2)", "sys.ioctl(0, 1)"):
                try:
                    await eval(call)
                except OSError as exc:
                    await sys.write(1, f"{call}: {abi.errno_name(exc.errno)}\\n".encode())
            await sys.write(1, f"{await sys.isatty(r)} {await sys.isatty(0)} {await sys.isatty(99)}\\n".encode())
            stat = (await sys.read(await sys.open("/proc/self/stat"), 300)).split()
            await sys.write(1, b"stat %s %s\\n" % (stat[6], stat[7]))
            child = await sys.fork()
            if child == 0:
                await sys.setsid()
                stat = (await sys.read(await sys.open("/proc/self/stat"), 300)).split()
                await sys.write(1, b"setsid %s %s\\n" % (stat[6], stat[7]))
                for call in ("sys.tcgetpgrp(0)", "sys.open('/dev/tty')"):
                    try:
                        await eval(call)
                    except OSError as exc:
                        await sys.write(1, f"{call}: {abi.errno_name(exc.errno)}\\n".encode())
                return 0
            await sys.waitpid(child, 0)
            return 0
        """
    )
    assert status == 0
    assert out.decode().split("\r\n") == [
        "sys.ioctl(r, abi.TCGETS): ENOTTY",
        "sys.tcgetpgrp(r): ENOTTY",
        "sys.tcsetpgrp(w, 2): ENOTTY",
        "sys.ioctl(0, 1): ENOTTY",
        "False True False",
        f"stat {abi.CONSOLE_DEV} 2",  # tty_nr 5:1, tpgid: the program's group is in the foreground
        "setsid 0 -1",
        "sys.tcgetpgrp(0): ENOTTY",
        "sys.open('/dev/tty'): ENXIO",
        "",
    ]


async def test_piped_input_skips_the_line_discipline():
    r = await ukernel.run_async(
        "/bin/t",
        ["t"],
        stdin=b"a\x7fb\x03\n",
        files={"/bin/t": textwrap.dedent(READ_LINES.replace("int(argv[1])", "2")).encode()},
    )
    assert r.problems == []
    assert r.stdout == b"got b'a\\x7fb\\x03\\n'\ngot b''\n"  # as typed, no echo, no signal, no CR; EOF stays


# --- VMIN and VTIME (termios(3) "Noncanonical mode") ---------------------------------------------
RAW_READS = """
from ukernel import abi

async def main(sys, argv):
    attrs = await sys.tcgetattr(0)
    attrs[3] &= ~(abi.ICANON | abi.ECHO)
    attrs[6][abi.VMIN], attrs[6][abi.VTIME] = int(argv[1]), int(argv[2])
    await sys.tcsetattr(0, abi.TCSANOW, attrs)
    await sys.sigaction(abi.SIGINT, lambda sys, sig: None)  # ^C (ISIG is on) interrupts a read
    start = await sys.clock_gettime()
    for step in argv[3:]:  # "r": read 10 bytes; "s500": sleep 500 ms
        if step == "r":
            data = await sys.read(0, 10)
            now = await sys.clock_gettime()
            await sys.write(1, b"%r at %d\\n" % (data, round((now - start) * 1000)))
        else:
            await sys.nanosleep(int(step[1:]) / 1000)
    return 0
"""

#: name: (VMIN, VTIME, the program's steps, keys typed [(seconds after its first sleep began, bytes)],
#: what each read returns). The same on the host's pty (test_the_host_kernel_agrees_on_vmin_vtime).
VMIN_VTIME = {
    "polling": (0, 0, ["r", "s500", "r"], [(0.2, b"xy")], [b"", b"xy"]),
    "blocking": (3, 0, ["r"], [(0.1, b"a"), (0.3, b"bcd")], [b"abcd"]),
    "read_timeout": (0, 5, ["r", "r"], [(0.2, b"a")], [b"a", b""]),
    "inter_byte": (5, 3, ["r", "r"], [(1.0, b"ab"), (1.1, b"c"), (2.0, b"defgh")], [b"abc", b"defgh"]),
    "interrupted": (5, 3, ["r"], [(1.0, b"a"), (1.1, b"\x03")], [b"a"]),
}


async def raw_reads(vmin: int, vtime: int, steps: list[str], keys: list[tuple[float, bytes]]) -> list[str]:
    """RAW_READS on a terminal console whose clock follows trio's (mock) wall clock (realtime),
    each key typed at its time: what each read returned, at which tick since the first one."""
    async with ukernel.boot(files={"/bin/raw": RAW_READS.encode()}, realtime=True) as kernel:
        await kernel.tty_input(b"")

        async def typist() -> None:
            await trio.testing.wait_all_tasks_blocked()  # the program sleeps: the idle spell began
            start = trio.current_time()
            for at, chunk in keys:
                await trio.sleep_until(start + at)
                await kernel.tty_input(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(typist)
            assert await kernel.run("/bin/raw", ["raw", str(vmin), str(vtime), *steps]) == 0
        output = await kernel.call("vfs", "console_output", {})
        assert await kernel.check_invariants() == []
    return output.decode().split("\r\n")[:-1]


# Times are ticks (ms) of virtual time since the program's clock_gettime after tcsetattr: a key
# typed at 200 ms is read at 202 (the read's and clock_gettime's entries are a tick each), and a
# timer runs from the tick the read sleeps at.
async def test_vmin_0_vtime_0_polls(autojump_clock):
    """MIN == 0, TIME == 0: the read returns at once, with what is there (nothing, then "xy")."""
    assert await raw_reads(*VMIN_VTIME["polling"][:4]) == ["b'' at 2", "b'xy' at 506"]


async def test_vmin_3_vtime_0_blocks_for_3_bytes(autojump_clock):
    """MIN > 0, TIME == 0: no timer; "a" at 100 ms is not enough, "bcd" at 300 ms is (all 4 taken)."""
    assert await raw_reads(*VMIN_VTIME["blocking"][:4]) == ["b'abcd' at 302"]


async def test_vmin_0_vtime_5_times_out_after_half_a_second(autojump_clock):
    """MIN == 0, TIME > 0: the first byte ends the read ("a" at 200 ms); with none, the read
    returns 0 bytes 5 tenths of a second after it began."""
    assert await raw_reads(*VMIN_VTIME["read_timeout"][:4]) == ["b'a' at 202", "b'' at 705"]


async def test_vmin_5_vtime_3_times_between_bytes_after_the_first(autojump_clock):
    """MIN > 0, TIME > 0: no timer until the first byte (1 s of nothing); then 0.3 s after the
    last byte ("c" at 1.1 s) the read ends with 3 bytes; the next gets its 5 at once."""
    assert await raw_reads(*VMIN_VTIME["inter_byte"][:4]) == ["b'abc' at 1402", "b'defgh' at 2005"]


async def test_a_signal_ends_a_vtime_read_with_the_bytes_it_has(autojump_clock):
    """A handler runs (^C's SIGINT) after "a" came and before VTIME ran out: the read returns
    "a" (n_tty_read returns what it copied rather than ERESTARTSYS), at once, not at 1.4 s."""
    assert await raw_reads(*VMIN_VTIME["interrupted"][:4]) == ["b'a' at 1102"]


# --- the same rules on the host's kernel (a real pty) --------------------------------------------
#: The end of each host program below: all the pty's master side shows, until the child is gone.
HOST_DRAIN = """
while True:
    try:
        data = os.read(master, 1000)
    except OSError:
        break
    if not data:
        break
    out += data
os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
"""

HOST_EOF_ONCE = (
    """
import os, pty, sys
pid, master = pty.fork()
if pid == 0:
    for _ in range(3):
        os.write(1, b"got %r\\n" % os.read(0, 100))
    sys.exit(0)
import time
for chunk in (b"\\x04", b"after\\n", b"x\\x04"):
    time.sleep(0.2)
    os.write(master, chunk)
out = b""
"""
    + HOST_DRAIN
)


HOST_RAW_READS = (
    """
import ast, os, pty, signal, sys, termios, time
vmin, vtime, steps, keys = ast.literal_eval(sys.argv[1])
pid, master = pty.fork()
if pid == 0:
    attrs = termios.tcgetattr(0)
    attrs[3] &= ~(termios.ICANON | termios.ECHO)
    attrs[6][termios.VMIN], attrs[6][termios.VTIME] = vmin, vtime
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    signal.signal(signal.SIGINT, lambda sig, frame: None)
    os.write(1, b"ready\\n")
    for step in steps:
        if step == "r":
            os.write(1, b"%r\\n" % os.read(0, 10))
        else:
            time.sleep(int(step[1:]) / 1000)
    sys.exit(0)
out = b""
while b"ready\\r\\n" not in out:  # the child's terminal is raw now; a read may follow at once
    out += os.read(master, 100)
out = out.split(b"ready\\r\\n", 1)[1]
start = time.monotonic()
for at, chunk in keys:
    time.sleep(max(0, start + at - time.monotonic()))
    os.write(master, chunk)
"""
    + HOST_DRAIN
)


def test_the_host_kernel_agrees_on_vmin_vtime():
    """Linux's n_tty on a real pty: each VMIN/VTIME case's reads return what ukernel's do (the
    bytes only: the host's times are wall-clock; the gaps are wide enough not to matter)."""
    for name, (vmin, vtime, steps, keys, reads) in VMIN_VTIME.items():
        case = repr((vmin, vtime, steps, keys))
        done = subprocess.run([sys.executable, "-c", HOST_RAW_READS, case], capture_output=True, timeout=30)
        assert done.stdout.split(b"\r\n")[:-1] == [repr(r).encode() for r in reads], name


async def test_ukernel_reads_the_same_bytes_as_the_host(autojump_clock):
    """The cases' expected reads (checked on the host above) are ukernel's, read for read."""
    for name, (vmin, vtime, steps, keys, reads) in VMIN_VTIME.items():
        got = await raw_reads(vmin, vtime, steps, keys)
        assert [line.rsplit(" at ", 1)[0] for line in got] == [repr(r) for r in reads], name


def test_the_host_kernel_agrees_on_eof_once():
    """Linux's n_tty on a real pty, the same keys as test_eof_at_line_start_ends_only_the_read_in_progress."""
    done = subprocess.run([sys.executable, "-c", HOST_EOF_ONCE], capture_output=True, timeout=30)
    assert done.stdout == b"got b''\r\nafter\r\ngot b'after\\n'\r\nxgot b'x'\r\n"
    assert pty and os  # the modules the host program uses
