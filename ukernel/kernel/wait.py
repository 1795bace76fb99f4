"""Wait events and the sleepers index (kernel/sched/wait.c's half that is the kernel's own).

A sleeping task waits on an event; try_to_wake_up (cpu.py ``wake_sleepers``) makes
it runnable once the event is set, or a fatal signal, or (interruptible) any signal
came. Linux's waker knows whom it wakes (the wait queue holds the sleepers); here
``WaitEvent.set`` and the task's ``killed`` / ``sigpending`` setters *note* the
sleeper in ``Sleepers``, so the waker looks at the tasks it woke, not at every
sleeper: a kernel exit costs the same with 10 sleepers or 10,000. An event that
cannot tell (a plain trio.Event from outside the kernel) puts its sleeper on the
``polled`` list, looked at on every wake as all sleepers once were.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

if TYPE_CHECKING:
    from .task import TaskStruct


class WaitChannel(NamedTuple):
    """What a sleeping task waits for (ps -l's WCHAN, in words): the syscall it sleeps in
    and what would wake it, e.g. ("read", "read end of pipe inode 5")."""

    syscall: str
    what: str


class WaitEvent:
    """A trio.Event (same methods) that notes its sleepers when set.

    It parks the trio tasks that await it itself, in the order they came (trio.Event
    keeps them in a set): 56 bytes and a list made only when one waits, where a
    trio.Event is 272, and each task holds several (issue 18's memory per process)."""

    __slots__ = ("_flag", "_waiting", "watchers")

    def __init__(self) -> None:
        self._flag = False
        self._waiting: list[trio.lowlevel.Task] | None = None  # trio tasks parked in wait()
        self.watchers: list[TaskStruct] | None = None  # the sleepers to note when it is set

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiting, self._waiting = self._waiting, None
        for trio_task in waiting or ():
            trio.lowlevel.reschedule(trio_task)
        for task in self.watchers or ():
            if task.asleep_in is not None:
                task.asleep_in.note(task)

    async def wait(self) -> None:
        if self._flag:
            await trio.lowlevel.checkpoint()
            return
        trio_task = trio.lowlevel.current_task()
        if self._waiting is None:
            self._waiting = []
        self._waiting.append(trio_task)

        def abort(_: object) -> trio.lowlevel.Abort:
            if self._waiting is not None:
                self._waiting.remove(trio_task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


def unparked(task: TaskStruct, _: object) -> trio.lowlevel.Abort:
    """The abort of a parked sleep (sleep_on parks ``task.parked`` until ``unpark``: no
    cancel scope, no event awaited; the waker's wake_sleepers unparks it)."""
    task.parked = None  # the run is ending (its nursery cancelled): nobody will unpark it
    return trio.lowlevel.Abort.SUCCEEDED


def unpark(task: TaskStruct) -> None:
    """Let a parked sleeper's trio task go on (it then waits for a CPU); a no-op if not parked."""
    parked, task.parked = task.parked, None
    if parked is not None:
        trio.lowlevel.reschedule(parked)


class AnyEvent:
    """Sleep until either event (a futex wake or its timeout); what sleep_on needs."""

    __slots__ = ("events",)

    def __init__(self, *events: Any):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    async def wait(self) -> None:
        async with trio.open_nursery() as nursery:
            for event in self.events:
                nursery.start_soon(_set_then_cancel, event, nursery.cancel_scope)


async def _set_then_cancel(event: Any, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _parts(event: Any) -> tuple:
    return event.events if isinstance(event, AnyEvent) else (event,)


def awake(task: TaskStruct, event: Any, interruptible: bool) -> bool:
    """The sleeper's condition: its event, a fatal signal, or (interruptible) any signal."""
    return event.is_set() or bool(task.killed) or (interruptible and task.sigpending)


class Sleepers:
    """Who sleeps on what, in the order they fell asleep, and who may be awake now.

    ``sleeping`` maps each sleeper to its event, in sleep order (ps and the hang dump read
    it; whether a signal ends the sleep is the task's ``sleep_interruptible``); ``noted`` holds the sleepers whose condition may have come true
    since (a false note is harmless: ``take_woken`` checks the condition)."""

    __slots__ = ("sleeping", "noted", "polled", "_order", "_channel")

    def __init__(self) -> None:
        self.sleeping: dict[TaskStruct, Any] = {}
        self.noted: dict[TaskStruct, None] = {}
        self.polled: dict[TaskStruct, None] = {}  # asleep on an event that does not note
        self._order = itertools.count()
        self._channel = WaitChannel("", "")

    def channel(self, syscall: str, what: str) -> WaitChannel:
        """The wait channel (syscall, what): the last one made if equal, so the readers of
        one pipe share one rather than hold one each."""
        if self._channel.syscall != syscall or self._channel.what != what:
            self._channel = WaitChannel(syscall, what)
        return self._channel

    def add(self, task: TaskStruct, event: Any, interruptible: bool) -> None:
        self.sleeping[task], task.sleep_interruptible = event, interruptible
        task.sleep_order, task.asleep_in = next(self._order), self
        for part in _parts(event):
            if isinstance(part, WaitEvent):
                if part.watchers is None:
                    part.watchers = []
                part.watchers.append(task)
            else:
                self.polled[task] = None

    def requeue(self, task: TaskStruct) -> None:
        """Move ``task`` to the end of the sleep order (a chooser's timer tie: fired last, woken last)."""
        self.sleeping[task] = self.sleeping.pop(task)
        task.sleep_order = next(self._order)

    def note(self, task: TaskStruct) -> None:
        """``task``'s event was set or a signal came: look at it at the next wake."""
        self.noted[task] = None

    def take_woken(self) -> list[TaskStruct]:
        """Every sleeper whose condition holds, in the order they fell asleep, taken off."""
        if not self.noted and not self.polled:
            return []
        candidates, self.noted = self.noted, {}
        candidates.update(self.polled)
        sleeping = self.sleeping
        woken = [t for t in candidates if t in sleeping and awake(t, sleeping[t], t.sleep_interruptible)]
        woken.sort(key=_sleep_order)
        for task in woken:
            self._remove(task)
        return woken

    def _remove(self, task: TaskStruct) -> None:
        event = self.sleeping.pop(task)
        self.polled.pop(task, None)
        task.asleep_in = None
        for part in _parts(event):
            if isinstance(part, WaitEvent) and part.watchers:
                part.watchers.remove(task)

    def __contains__(self, task: object) -> bool:
        return task in self.sleeping

    def __len__(self) -> int:
        return len(self.sleeping)


def _sleep_order(task: TaskStruct) -> int:
    return task.sleep_order
