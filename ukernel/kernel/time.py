"""Time (kernel/time/hrtimer.c, the vDSO): nanosleep, timed sleeps, clock_gettime.

Time is virtual: one tick per kernel entry, ``abi.HZ`` ticks per second.
A sleep arms a timer in sched and blocks; the tick that reaches it (or the
clock jumping there when every CPU is idle) wakes the sleeper.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from .task import TaskStruct, WaitChannel

if TYPE_CHECKING:
    from .core import Kernel


class AnyEvent:
    """Sleep until either event (a futex wake or its timeout); what sleep_on needs."""

    def __init__(self, *events: trio.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    async def wait(self) -> None:
        async with trio.open_nursery() as nursery:
            for event in self.events:
                nursery.start_soon(_set_then_cancel, event, nursery.cancel_scope)


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def seconds_to_ticks(seconds: float) -> int:
    """Round up, as hrtimers do: a sleep never ends early. ``seconds`` is a checked duration
    (uaccess.py's kind: finite, >= 0, at most KTIME_MAX)."""
    return math.ceil(round(seconds * abi.HZ, 9))


async def sleep_timeout(
    k: Kernel, task: TaskStruct, meta: dict, ticks: int, event: Any = None, wchan: WaitChannel | None = None
) -> tuple[bool, int]:
    """schedule_hrtimeout: sleep until ``event`` (what ``wchan`` names) or ``ticks`` from now;
    (timed out, ticks left)."""
    timeout = trio.Event()
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
    from the task (no message, like the vDSO reading its vvar page)."""
    if clk_id not in (abi.CLOCK_REALTIME, *CLOCK_OFFSETS):
        raise abi.kernel_error(abi.EINVAL, f"clock {clk_id!r}: CLOCK_REALTIME, CLOCK_MONOTONIC or CLOCK_BOOTTIME")
    offset = task.time_offsets.get(CLOCK_OFFSETS.get(clk_id, ""), 0)
    return k.ticks / abi.HZ + offset / 10**9
