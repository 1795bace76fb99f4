"""futex: sleep on a word in an address space until someone wakes that word.

The wait queues are keyed by (mm handle, address), like Linux's futex hash
keyed by (mm, address) for private futexes. The waiter is queued *before* the
word is read, so a wake that comes between the read and the sleep is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import abi
from .choice import COUNT, READ, futex_picks, touch
from .task import TaskStruct, WaitChannel
from .time import seconds_to_ticks, sleep_timeout
from .wait import WaitEvent

if TYPE_CHECKING:
    from .core import Kernel

Key = tuple[int, int]


@dataclass(eq=False)
class FutexQ:
    """One waiter (Linux's struct futex_q): whose it is, so a chooser can name it."""

    pid: int
    event: WaitEvent = field(default_factory=WaitEvent)  # its set() notes the sleeper for the waker (wait.py)


class FutexTable:
    def __init__(self) -> None:
        self.queues: dict[Key, list[FutexQ]] = {}

    def enqueue(self, key: Key, pid: int = 0) -> WaitEvent:
        waiter = FutexQ(pid)
        self.queues.setdefault(key, []).append(waiter)
        return waiter.event

    def dequeue(self, key: Key, event: WaitEvent) -> None:
        queue = self.queues.get(key, [])
        self.queues[key] = queue = [q for q in queue if q.event is not event]
        if not queue:
            self.queues.pop(key, None)

    def waiters(self, key: Key) -> list[int]:
        """The pids waiting on ``key``, oldest first."""
        return [q.pid for q in self.queues.get(key, [])]

    def wake(self, key: Key, n: int, picks: list[int] | None = None) -> int:
        """Wake up to n waiters, oldest first, or those at positions ``picks`` (a chooser's,
        choice.py ``futex_picks``); how many were woken."""
        queue = self.queues.get(key, [])
        chosen = set(range(len(queue))[:n] if picks is None else picks)
        woken = [q for i, q in enumerate(queue) if i in chosen]
        rest = [q for i, q in enumerate(queue) if i not in chosen]
        for q in woken:
            q.event.set()
        if rest:
            self.queues[key] = rest
        else:
            self.queues.pop(key, None)
        return len(woken)

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())


async def read_word(k: Kernel, task: TaskStruct, addr: int, meta: dict) -> int:
    data = await k.call("mm", "read_mem", {"mm": task.mm, "addr": addr, "n": 4}, meta)
    return int.from_bytes(data, "little")


async def futex_wait(k: Kernel, task: TaskStruct, meta: dict, addr: int, val: int, ticks: int | None = None) -> int:
    """FUTEX_WAIT: sleep if the word still holds ``val``, else EAGAIN; with ``ticks``,
    at most that long (ETIMEDOUT), on sched's timer queue."""
    if addr % 4:
        raise abi.kernel_error(abi.EINVAL, f"futex address {addr:#x} is not 4-byte aligned")
    key = (task.mm, addr)
    obj = ("futex", *key)  # explore's POR: this word's queue, not the others'
    event = k.futexes.enqueue(key, task.pid)
    timed_out, left, queued = False, 0, False
    try:
        if await read_word(k, task, addr, meta) != val & 0xFFFFFFFF:
            # queued and taken off again in one step, which no other task sees: the queue is
            # neither changed nor read (its waiters decide nothing here), so nothing is touched
            raise abi.kernel_error(abi.EAGAIN, "the futex word changed before the wait")
        # one more waiter: a count's change (two waits commute: the queue's order decides
        # nothing a wake does under explore, whose futex point takes each set of waiters)
        touch(k, (COUNT, obj))
        queued = True
        wchan = WaitChannel("futex", f"futex at {addr:#x}")
        if ticks is None:
            await k.sleep_on(task, event, wchan=wchan)
        else:
            timed_out, left = await sleep_timeout(k, task, meta, ticks, event, wchan)
    finally:
        if queued and not event.is_set():
            touch(k, obj)  # a signal or the timeout: the step that resumes it takes it off the queue
        k.futexes.dequeue(key, event)  # (a FUTEX_WAKE took it off already: the waker's step)
    if event.is_set():
        return 0
    if timed_out:
        raise abi.kernel_error(abi.ETIMEDOUT, f"no FUTEX_WAKE within {ticks} ticks")
    if ticks is None:  # restarted from the start if no handler ran, or under SA_RESTART
        raise abi.kernel_error(abi.ERESTARTSYS, f"FUTEX_WAIT at {addr:#x} interrupted by a signal")
    expires = k.ticks + left  # futex_wait_restart: the same expiry, and EINTR after any handler
    task.restart_block = lambda: futex_wait(k, task, meta, addr, val, max(0, expires - k.ticks))
    raise abi.kernel_error(abi.ERESTART_RESTARTBLOCK, f"FUTEX_WAIT at {addr:#x} interrupted by a signal")


async def sys_futex(
    k: Kernel, task: TaskStruct, meta: dict, addr: int, op: int, val: int, timeout: float | None
) -> int:
    """timeout: seconds of virtual time (FUTEX_WAIT only), None to wait for ever."""
    if op == abi.FUTEX_WAIT:
        ticks = None if timeout is None else seconds_to_ticks(timeout)
        return await futex_wait(k, task, meta, addr, val, ticks)
    if op == abi.FUTEX_WAKE:
        key = (task.mm, addr)
        waiters = k.futexes.waiters(key)
        touch(k, ("futex", *key) if waiters else (READ, ("futex", *key)))  # no waiter: it changes nothing
        return k.futexes.wake(key, val, await futex_picks(k, task, waiters, val))
    raise abi.kernel_error(abi.ENOSYS, f"futex op {op} is not modelled (FUTEX_WAIT and FUTEX_WAKE are)")


async def sys_set_tid_address(k: Kernel, task: TaskStruct, meta: dict, addr: int) -> int:
    """Where CLONE_CHILD_CLEARTID's zero goes at exit; returns the caller's tid."""
    task.clear_child_tid = addr
    return task.nr_in(task.level)
