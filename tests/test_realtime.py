"""Time for people (Config.realtime): while every task sleeps or waits for the terminal, virtual
time follows the wall clock instead of jumping to the next timer (docs/sched.md "Time").

The wall clock is trio's: these tests run under pytest-trio's ``autojump_clock`` (a MockClock
that jumps to the next deadline whenever every trio task is blocked), so a 5 s sleep takes
5 s of mock time and no real time, and no test reads the host's clock.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import trio
import trio.testing
from conftest import run_source
from test_hang import start_and_wait_for, ukernel_cli, write_program

import ukernel
from ukernel import abi
from ukernel.config import Config

SLEEPS_5_S = """
async def main(sys, argv):
    before = await sys.clock_gettime()
    await sys.nanosleep(5)
    after = await sys.clock_gettime()
    await sys.write(1, b"%d\\n" % round((after - before) * 1000))
    return 0
"""


class WallClockSink:
    """A trace sink that notes the (mock) wall time each event was emitted at."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []

    def __call__(self, event: dict) -> None:
        self.events.append((trio.current_time(), event))

    def nanosleep(self) -> tuple[tuple[float, int], tuple[float, int]]:
        """(wall, tick) of nanosleep's entry and of its exit."""
        enter, leave = (
            (wall, e["ts"])
            for wall, e in self.events
            if e["type"] in ("syscall_enter", "syscall_exit") and e["op"] == "nanosleep"
        )
        return enter, leave


@pytest.mark.parametrize("realtime", [True, False])
async def test_a_5000_tick_sleep_waits_5_wall_seconds_only_with_realtime(autojump_clock, realtime):
    sink = WallClockSink()
    r = await run_source(SLEEPS_5_S, realtime=realtime, sinks=(sink,))
    assert (r.exit_code, r.stdout, r.error, r.hung) == (
        0,
        b"5002\n",
        "",
        [],
    )  # + the ticks of nanosleep and clock_gettime
    (wall_in, tick_in), (wall_out, tick_out) = sink.nanosleep()
    assert tick_out - tick_in == 5000  # virtual time is the same either way
    if realtime:
        assert wall_out - wall_in == pytest.approx(5.0)  # the timer fired when the wall reached it
    else:
        assert wall_out == wall_in  # the clock jumped: no wall time passed at all


async def test_the_schedule_messages_say_jump_false_only_with_realtime(autojump_clock):
    runs = [await run_source(SLEEPS_5_S, **settings) for settings in ({}, {"realtime": False}, {"realtime": True})]
    default, off, on = ([e for e in r.trace if e.get("op") == "schedule" and e["type"] == "request"] for r in runs)
    assert [e["args"] for e in default] == [e["args"] for e in off]
    assert all("jump" not in e["args"] for e in off)
    assert on and all(e["args"]["jump"] is False for e in on)
    default_trace, off_trace = ([{k: v for k, v in e.items() if k != "dur_us"} for e in r.trace] for r in runs[:2])
    assert default_trace == off_trace  # ticks and all: the clock jumped as it always did


READS_A_LINE = """
async def main(sys, argv):
    before = await sys.clock_gettime()
    line = await sys.read(0, 100)
    after = await sys.clock_gettime()
    await sys.write(1, b"%s %d\\n" % (line.strip(), round((after - before) * 1000)))
    return 0
"""


async def typed_later(write_end: int, seconds: float, data: bytes, hang_up: bool = True) -> None:
    """Type ``data`` ``seconds`` of (mock) wall time after the reader fell asleep, then hang up
    (unless told not to: a hangup sends SIGHUP to the terminal's foreground group)."""
    await trio.testing.wait_all_tasks_blocked()  # the program sleeps on the console: the idle spell began
    await trio.sleep(seconds)
    os.write(write_end, data)
    await trio.testing.wait_all_tasks_blocked()
    if hang_up:
        os.close(write_end)


@pytest.mark.parametrize("realtime", [None, True, False])
async def test_input_typed_at_wall_2_s_is_read_at_virtual_2000_ticks_with_realtime(autojump_clock, realtime):
    """A terminal turns realtime on by default (None); --no-realtime keeps the clock still while idle."""
    read_end, write_end = os.pipe()
    settings = {} if realtime is None else {"realtime": realtime}
    try:
        async with ukernel.boot(
            terminal=read_end, terminal_isatty=True, files={"/bin/reader": READS_A_LINE.encode()}, **settings
        ) as kernel:
            assert kernel.realtime is (realtime is not False)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(typed_later, write_end, 2.0, b"hi\n")
                assert await kernel.run("/bin/reader") == 0
            elapsed = 2002 if kernel.realtime else 2  # the read's and clock_gettime's ticks
            echo = b"hi\r\n"  # a terminal echoes the line typed, and its output ends lines with CR NL (ONLCR)
            assert await kernel.call("vfs", "console_output", {}) == echo + b"hi %d\r\n" % elapsed
            assert await kernel.check_invariants() == []
    finally:
        os.close(read_end)


def test_realtime_is_on_with_a_terminal_unless_told_and_is_checked():
    assert (Config().follows_wall, Config(terminal=0, terminal_isatty=True).follows_wall) == (False, True)
    assert (
        Config(terminal=0, terminal_isatty=True, realtime=False).follows_wall,
        Config(realtime=True).follows_wall,
    ) == (False, True)
    with pytest.raises(ValueError, match="^realtime: true, false or unset"):
        Config(realtime="yes")


async def test_input_wakes_a_reader_while_another_task_sleeps_and_the_sleep_keeps_its_deadline(autojump_clock):
    """The sleeper's timer is the wall's: input at 1 s does not move it; the run is no deadlock."""
    source = b"""
async def main(sys, argv):
    if await sys.fork() == 0:
        await sys.nanosleep(3)
        await sys.write(1, b"woke %d\\n" % round(await sys.clock_gettime() * 1000))
        return 0
    line = await sys.read(0, 100)
    await sys.write(1, b"read %s at %d\\n" % (line.strip(), round(await sys.clock_gettime() * 1000)))
    await sys.waitpid(-1, 0)
    return 0
"""
    read_end, write_end = os.pipe()
    try:
        async with ukernel.boot(terminal=read_end, terminal_isatty=True, files={"/bin/both": source}) as kernel:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(typed_later, write_end, 1.0, b"x\n", False)  # the sleeper would get SIGHUP
                start = trio.current_time()
                assert await kernel.run("/bin/both") == 0
                assert trio.current_time() - start == pytest.approx(3.0, abs=0.1)
            echo, read, woke = (await kernel.call("vfs", "console_output", {})).decode().splitlines()
            assert echo == "x"  # the terminal echoes what is typed
            read_at, woke_at = int(read.split()[-1]), int(woke.split()[-1])
            assert read.startswith("read x at ") and woke.startswith("woke ")
            assert 1000 < read_at < 1100 and 3000 < woke_at < 3100  # each near the wall time it happened at
            assert kernel.hung == [] and await kernel.check_invariants() == []
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("cpus", [1, 2])
async def test_a_sleeping_child_can_be_killed_before_its_sleep_ends(autojump_clock, cpus):
    """What the setting is for: ``sleepers 5000 &`` then ``kill`` at the keyboard."""
    start = trio.current_time()
    r = await run_source(
        """
        from ukernel.abi import SIGKILL, WTERMSIG

        async def main(sys, argv):
            child = await sys.fork()
            if child == 0:
                await sys.nanosleep(10)
                return 0
            await sys.nanosleep(1)
            await sys.kill(child, SIGKILL)
            _, status = await sys.waitpid(child, 0)
            await sys.write(1, b"signal %d at %d\\n" % (WTERMSIG(status), round(await sys.clock_gettime() * 1000)))
            return 0
        """,
        realtime=True,
        cpus=cpus,
    )
    signal_, at = r.stdout.split()[1::2]
    assert (int(signal_), r.hung) == (abi.SIGKILL, [])
    assert 1000 < int(at) < 1100  # the kill came at wall 1 s, not after the child's 10 s
    assert trio.current_time() - start == pytest.approx(1.0, abs=0.1)


async def test_clock_realtime_reads_the_hosts_time_of_day_only_with_realtime():
    source = """
from ukernel.abi import CLOCK_MONOTONIC, CLOCK_REALTIME

async def main(sys, argv):
    real = await sys.clock_gettime(CLOCK_REALTIME)
    mono = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.write(1, repr(real - mono).encode())
    return 0
"""
    async with ukernel.boot(realtime=True, files={"/bin/t": source.encode()}) as kernel:
        assert await kernel.run("/bin/t") == 0
        on = float(await kernel.call("vfs", "console_output", {}))
        assert on == pytest.approx(kernel.boot_epoch - 0.001) and kernel.boot_epoch > 0  # one tick apart
    off = await run_source(source, realtime=False)
    assert float(off.stdout) == pytest.approx(-0.001)  # seconds since boot, the same every run


async def test_a_timed_futex_wait_times_out_on_the_wall_too(autojump_clock):
    sink = WallClockSink()
    r = await run_source(
        """
        async def main(sys, argv):
            from ukernel.abi import FUTEX_WAIT, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
            addr = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            try:
                await sys.futex(addr, FUTEX_WAIT, 0, timeout=1.5)
            except OSError as exc:
                await sys.write(1, b"errno %d\\n" % exc.errno)
            return 0
        """,
        realtime=True,
        sinks=(sink,),
    )
    assert r.stdout == b"errno %d\n" % abi.ETIMEDOUT
    enter, leave = (
        (w, e["ts"]) for w, e in sink.events if e["type"] in ("syscall_enter", "syscall_exit") and e["op"] == "futex"
    )
    assert (leave[0] - enter[0], leave[1] - enter[1]) == (pytest.approx(1.5), 1500)


SLEEPS_1000_S_AFTER_READY = """
async def main(sys, argv):
    await sys.write(1, b"ready\\n")
    await sys.nanosleep(1000)
    await sys.write(1, b"done\\n")
    return 0
"""


def test_ctrl_c_ends_a_realtime_sleep_with_130(tmp_path):
    proc, out = start_and_wait_for(tmp_path, SLEEPS_1000_S_AFTER_READY, "--realtime")
    assert out.read_bytes() == b"ready\n"  # and asleep: it ends only at the wall's 1000 s
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err, out.read_bytes()) == (130, b"ukernel: interrupted\n", b"ready\n")


def test_no_realtime_ends_the_same_sleep_at_once(tmp_path):
    path = write_program(tmp_path, "prog", SLEEPS_1000_S_AFTER_READY)
    done = subprocess.run(ukernel_cli("run", "--no-realtime", path), capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"ready\ndone\n", b"")
