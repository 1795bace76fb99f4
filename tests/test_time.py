"""Virtual time: nanosleep, timed futex waits, clock_gettime, and the clock jumping when every CPU is idle."""

from __future__ import annotations

import ukernel
from ukernel import abi


def enters(trace: list[dict], op: str | None = None) -> list[dict]:
    return [e for e in trace if e["type"] == "syscall_enter" and (op is None or e["op"] == op)]


async def test_sleepers_wake_in_deadline_order_and_the_clock_jumps():
    r = await ukernel.run_async("sleepers", ["sleepers", "300", "100", "200", "50"])
    assert r.problems == []
    lines = r.stdout.decode().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == [
        "slept 50 ms",
        "slept 100 ms",
        "slept 200 ms",
        "slept 300 ms",
    ]
    for line in lines[:4]:  # woke no earlier than asked; the two ticks are nanosleep's and clock_gettime's entries
        asked = int(line.split()[1])
        assert line.endswith(f"(slept {asked + 2})")
    # 300 ms of virtual time passed with a few dozen kernel entries: the clock jumped while all slept.
    assert r.trace[-1]["ts"] >= 300
    assert len(enters(r.trace)) < 60


async def test_nanosleep_advances_virtual_time_only(run):
    r = await run(
        """
        async def main(sys, argv):
            before = await sys.clock_gettime()
            await sys.nanosleep(5)
            after = await sys.clock_gettime()
            await sys.write(1, f"{before} {after}\\n".encode())
            return 0
        """
    )
    before, after = map(float, r.stdout.split())
    assert round((after - before) * abi.HZ) == 5002  # nanosleep's entry, 5000 ticks asleep, clock_gettime's entry
    sleep = enters(r.trace, "nanosleep")[0]
    assert [e["op"] for e in r.trace if e["type"] == "request" and e.get("cause") == sleep["msgid"]] == [
        "hrtimer_start"  # then the task blocks (schedule), and the clock jumps in that schedule's reply
    ]
    jumps = [e for e in r.trace if e["type"] == "reply" and e["op"] == "schedule" and e["result"].get("expired")]
    assert [(j["result"]["now"], j["result"]["expired"]) for j in jumps] == [(sleep["ts"] + 5000, [2])]


async def test_nanosleep_zero_returns_at_once_and_bad_durations_are_einval(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.nanosleep(0)
            for bad in (-1, float("nan"), float("inf"), "1"):
                try:
                    await sys.nanosleep(bad)
                except OSError as exc:
                    await sys.write(1, f"{exc.errno} ".encode())
            try:
                await sys.clock_gettime(99)  # CLOCK_MONOTONIC (1), REALTIME (0) and BOOTTIME (7) exist
            except OSError as exc:
                await sys.write(1, f"clock {exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout == f"{abi.EINVAL} {abi.EINVAL} {abi.EINVAL} {abi.EINVAL} clock {abi.EINVAL}\n".encode()


async def test_a_signal_ends_nanosleep_with_eintr_and_the_time_left_even_with_sa_restart(run):
    r = await run(
        """
        from ukernel.abi import SA_RESTART, SIGCHLD, SIGUSR1

        async def child(sys, arg):
            await sys.sigaction(SIGUSR1, lambda sys, sig: None, SA_RESTART)
            start = await sys.clock_gettime()
            try:
                await sys.nanosleep(10)
            except OSError as exc:
                now = await sys.clock_gettime()
                await sys.write(1, f"errno {exc.errno} after {now - start:.3f}: {exc.strerror}\\n".encode())
            return 0

        async def main(sys, argv):
            pid = await sys.clone(SIGCHLD, child)
            await sys.nanosleep(0.1)
            await sys.kill(pid, SIGUSR1)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    out = r.stdout.decode()
    assert out.startswith(f"errno {abi.EINTR} after 0.1")
    assert "s left" in out and "nanosleep interrupted with 9.9" in out


async def test_sigkill_in_nanosleep_leaves_no_timer(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD, SIGKILL, WTERMSIG

        async def child(sys, arg):
            await sys.nanosleep(100)
            return 0

        async def main(sys, argv):
            pid = await sys.clone(SIGCHLD, child)
            await sys.nanosleep(0.01)
            await sys.kill(pid, SIGKILL)
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"killed by {WTERMSIG(status)} at {await sys.clock_gettime():.2f}\\n".encode())
            return 0
        """
    )
    assert r.stdout.startswith(b"killed by 9 at 0.0")  # not 100 s: the child's timer went with it (no timers left)


async def test_timed_futex_wait_times_out_or_is_woken(run):
    r = await run(
        """
        from ukernel.abi import ETIMEDOUT, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
        from userland.lib.pthread import pthread_create, pthread_join

        async def main(sys, argv):
            word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            start = await sys.clock_gettime()
            try:
                await sys.futex(word, FUTEX_WAIT, 0, timeout=0.05)
            except OSError as exc:
                waited = await sys.clock_gettime() - start
                await sys.write(1, f"timeout: {exc.errno == ETIMEDOUT} after {waited:.3f}\\n".encode())

            async def waker(sys, arg):
                await sys.nanosleep(0.02)
                await sys.futex(word, FUTEX_WAKE, 1)
                return 0

            thread = await pthread_create(sys, waker, None)
            start = await sys.clock_gettime()
            got = await sys.futex(word, FUTEX_WAIT, 0, timeout=10)
            waited = await sys.clock_gettime() - start
            await sys.write(1, f"woken: {got} after {waited:.2f}\\n".encode())
            await pthread_join(sys, thread)
            return 0
        """
    )
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "timeout: True after 0.052"  # futex's entry, 50 ticks asleep, clock_gettime's entry
    assert lines[1].startswith("woken: 0 after 0.02")


async def test_a_sleeper_wakes_on_the_tick_while_another_task_runs(run):
    """No idle CPU, so no jump: the timer fires on the kernel entry that reaches it."""
    r = await run(
        """
        from ukernel.abi import SIGCHLD, SIGKILL

        async def spin(sys, arg):
            while True:
                await sys.getppid()

        async def main(sys, argv):
            pid = await sys.clone(SIGCHLD, spin)
            start = await sys.clock_gettime()
            await sys.nanosleep(0.05)
            late = (await sys.clock_gettime() - start) * 1000
            await sys.kill(pid, SIGKILL)
            await sys.waitpid(pid, 0)
            await sys.write(1, f"{late:.0f}\\n".encode())
            return 0
        """
    )
    late = int(r.stdout)
    assert 51 <= late <= 51 + 10  # at most one round-robin slice late
    spins = [e for e in enters(r.trace, "getppid")]
    assert len(spins) >= 40  # the spinner had the CPU meanwhile: time was spent, not jumped
