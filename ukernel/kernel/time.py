"""Time (kernel/time/hrtimer.c, tick-sched.c's idle half, the vDSO): nanosleep, timed sleeps,
clock_gettime, and the idle clock.

Time is virtual: one tick per kernel entry, ``abi.HZ`` ticks per second.
A sleep arms a timer in sched and blocks; the tick that reaches it (or the
clock jumping there when every CPU is idle) wakes the sleeper.

With ``Config.realtime`` (on when a person is at a terminal) the clock does not
jump: while every CPU is idle it follows the wall clock (trio's clock), a tick
per millisecond gone by, like a NO_HZ idle CPU whose clock-event device fires
at the next timer. Input that arrives meanwhile is seen at the tick it arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from .bug import KernelPanic
from .task import TaskStruct, WaitChannel
from .wait import AnyEvent, WaitEvent

if TYPE_CHECKING:
    from .core import Kernel


def seconds_to_ticks(seconds: float) -> int:
    """Round up, as hrtimers do: a sleep never ends early. ``seconds`` is a checked duration
    (uaccess.py's kind: finite, >= 0, at most KTIME_MAX)."""
    return math.ceil(round(seconds * abi.HZ, 9))


async def sleep_timeout(
    k: Kernel, task: TaskStruct, meta: dict, ticks: int, event: Any = None, wchan: WaitChannel | None = None
) -> tuple[bool, int]:
    """schedule_hrtimeout: sleep until ``event`` (what ``wchan`` names) or ``ticks`` from now;
    (timed out, ticks left)."""
    timeout = WaitEvent()
    k.timeouts[task.id] = timeout
    try:
        reply = await k.call("sched", "hrtimer_start", {"task": task.id, "ticks": ticks, "now": k.ticks}, meta)
        k.next_timer = reply["timer"]
        if not reply["armed"]:
            return True, 0
        what = f"{wchan.what}, " if wchan else ""
        wchan = WaitChannel(meta.get("syscall", ""), f"{what}timer at tick {reply['expires']}")
        await k.sleep_on(task, timeout if event is None else AnyEvent(event, timeout), wchan=wchan)
        if timeout.is_set():
            return True, 0
        reply = await k.call("sched", "hrtimer_cancel", {"task": task.id, "now": k.ticks}, meta)
        k.next_timer = reply["timer"]
        return False, reply["remaining"]
    finally:
        k.timeouts.pop(task.id, None)


async def service_wait_timeout(
    k: Kernel, task: TaskStruct, dst: str, waiter: int, meta: dict, what: str, ticks: int
) -> bool:
    """service_wait with a timer (wait_woken with a timeout, as n_tty_read's VTIME): True when
    the service woke the waiter, False when ``ticks`` went by first; a signal is ERESTARTSYS."""
    sent = await k.send_wait(task, dst, waiter, meta)
    wchan = WaitChannel(meta.get("syscall", ""), what)
    timed_out, _ = await sleep_timeout(k, task, meta, ticks, sent.event, wchan)
    if not sent.event.is_set():  # the timer or a signal came first: off the queue
        await k.call(dst, "finish_wait", {"waiter": waiter}, meta)
    if await k.router.collect(sent):
        return True
    if timed_out:
        return False
    raise abi.kernel_error(abi.ERESTARTSYS, f"{meta.get('syscall', 'the wait')} interrupted by a signal")


async def sys_nanosleep(k: Kernel, task: TaskStruct, meta: dict, seconds: float) -> int:
    """Sleep ``seconds`` of virtual time. A signal ends it with ERESTART_RESTARTBLOCK: after a
    handler that is EINTR naming the time left (even with SA_RESTART); with none (a stop and
    SIGCONT, an ignored signal) the sleep goes on until the tick first asked for."""
    return await hrtimer_nanosleep(k, task, meta, seconds_to_ticks(seconds))


async def hrtimer_nanosleep(k: Kernel, task: TaskStruct, meta: dict, ticks: int) -> int:
    timed_out, left = await sleep_timeout(k, task, meta, ticks)
    if timed_out:
        return 0
    task.restart_block = partial(nanosleep_restart, k, task, meta, k.ticks + left)
    raise abi.kernel_error(abi.ERESTART_RESTARTBLOCK, f"nanosleep interrupted with {left / abi.HZ:g} s left")


async def nanosleep_restart(k: Kernel, task: TaskStruct, meta: dict, expires: int) -> int:
    """restart_block.fn (hrtimer_nanosleep_restart): sleep on to the same expiry; the time
    spent stopped counts, as the clock went on."""
    return await hrtimer_nanosleep(k, task, meta, max(0, expires - k.ticks))


CLOCK_OFFSETS = {abi.CLOCK_MONOTONIC: "monotonic", abi.CLOCK_BOOTTIME: "boottime"}


async def sys_clock_gettime(k: Kernel, task: TaskStruct, meta: dict, clk_id: int) -> float:
    """Virtual seconds since boot plus the time namespace's offset for that clock, read
    from the task (no message, like the vDSO reading its vvar page). CLOCK_REALTIME adds
    the host's time of day at boot when the clock follows the wall (``k.boot_epoch``;
    0 otherwise, so a run stays the same for every seed)."""
    if clk_id not in (abi.CLOCK_REALTIME, *CLOCK_OFFSETS):
        raise abi.kernel_error(abi.EINVAL, f"clock {clk_id!r}: CLOCK_REALTIME, CLOCK_MONOTONIC or CLOCK_BOOTTIME")
    if clk_id == abi.CLOCK_REALTIME:
        return k.boot_epoch + k.ticks / abi.HZ
    return k.ticks / abi.HZ + task.time_offsets.get(CLOCK_OFFSETS[clk_id], 0) / 10**9


# --- the idle clock under Config.realtime (tick_nohz_idle_enter / _exit) ------------------------------------
@dataclass(eq=False)
class IdleSpell:
    """A stretch with every CPU idle: when it began, on the wall (trio's clock) and in ticks."""

    wall: float
    tick: int
    busy: trio.Event = field(default_factory=trio.Event)  # set when a CPU gets a task again

    def ticks_at(self, wall: float) -> int:
        """The virtual time at wall time ``wall``: a tick per millisecond since the spell began."""
        return self.tick + math.floor(round((wall - self.wall) * abi.HZ, 9))

    def wall_at(self, tick: int) -> float:
        return self.wall + (tick - self.tick) / abi.HZ


def idle_enter(k: Kernel) -> None:
    """Every CPU went idle with the clock following the wall: from now on ticks are the
    wall's milliseconds, and the next timer fires when the wall reaches it (idle_timers)."""
    if k.idle_spell is None:
        k.idle_spell = IdleSpell(trio.current_time(), k.ticks)
        k.nursery.start_soon(idle_timers, k, k.idle_spell)


def idle_catch_up(k: Kernel) -> None:
    """Bring the clock up to the wall during an idle spell (input arriving, a CPU woken)."""
    if k.idle_spell is not None:
        k.ticks = max(k.ticks, k.idle_spell.ticks_at(trio.current_time()))


def idle_exit(k: Kernel) -> None:
    """A CPU got a task: the clock is caught up, and ticks count kernel entries again."""
    spell = k.idle_spell
    idle_catch_up(k)
    k.idle_spell = None
    spell.busy.set()


async def idle_timers(k: Kernel, spell: IdleSpell) -> None:
    """The idle CPU's clock-event device: sleep until the wall reaches sched's next timer,
    then fire it as the tick would (hrtimer_interrupt) and wake its sleepers. Ends when a
    CPU gets a task (ticks count entries again) or no timer is left."""
    try:
        while k.idle_spell is spell and k.next_timer is not None:
            with trio.move_on_at(spell.wall_at(k.next_timer)):
                await spell.busy.wait()
            if k.idle_spell is not spell:
                return
            k.ticks = max(k.ticks, spell.ticks_at(trio.current_time()), k.next_timer)
            await k.run_timers(k.idle)
            await k.wake_sleepers(k.idle)
    except KernelPanic:
        pass  # the run is over (kernel/bug.py): its report says why
    except OSError:
        if not k.lost:
            raise  # a remote sched is gone: ukernel.run's watcher stops the run and says so
