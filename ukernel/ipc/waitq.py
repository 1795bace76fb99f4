"""Wait queues for services: sleeping without blocking the service's loop.

A service handles one message at a time, so a handler that must wait (an
empty pipe, a semaphore at 0) answers ``{"wait": N}``: a wait-queue entry
(prepare_to_wait). The kernel then sends ``wait`` (answered when the queue is
woken) and puts the task to sleep in sched; a signal ends the sleep with
``finish_wait``. Any service that has queues mixes this in and names them in
``wait_queues``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .. import abi
from .service import DEFERRED, Call, Deferred, get, op, touches


@dataclass(slots=True)
class Waiter:
    """A wait-queue entry: the kernel's task sleeps until it is woken."""

    woken: bool = False
    deferred: Deferred | None = None  # the kernel's ``wait`` request, answered on wake
    error: int = 0  # woken with an error (EIDRM: the semaphore set was removed)


class WaitQueues(ABC):
    """prepare_to_wait, wake_up_all, and the ``wait`` / ``finish_wait`` ops."""

    waiters: dict[int, Waiter]

    @abstractmethod
    def wait_queues(self) -> list[list[int]]:
        """Every queue a waiter may be on (for finish_wait to find it)."""

    def _prepare_to_wait(self, queue: list[int]) -> dict:
        handle = self.new_handle(self.waiters, Waiter())
        queue.append(handle)
        return {"wait": handle}

    async def _wake(self, queue: list[int], error: int = 0) -> None:
        """wake_up_interruptible_all: every waiter on the queue is answered."""
        for handle in queue:
            waiter = self.waiters[handle]
            waiter.woken, waiter.error = True, error
            if waiter.deferred is not None:
                await self._finish(handle, True)
        queue.clear()

    async def _finish(self, handle: int, woken: bool) -> None:
        waiter = self.waiters.pop(handle)
        if waiter.deferred is None:
            return
        if waiter.error and woken:
            await self.reply_error(waiter.deferred, waiter.error)
        else:
            await self.reply(waiter.deferred, woken)

    @op
    async def wait(self, req: Call, waiter: int) -> object:
        """Answered when the waiter is woken (at once if it already was)."""
        entry = get(self.waiters, waiter, "waiter")
        if entry.woken:
            del self.waiters[waiter]
            if entry.error:
                raise abi.kernel_error(entry.error)
            return True
        entry.deferred = req.defer()
        return DEFERRED

    def waiter_touches(self, waiter: int) -> list | None:
        """What removing ``waiter`` touches, for explore's reduction (``@touches``): the entry
        and the object whose queue holds it; None (the whole service) unless a service says."""
        return None

    @op
    @touches(lambda service, args: service.waiter_touches(args["waiter"]))
    async def finish_wait(self, req: Call, waiter: int) -> None:
        """The sleeper gave up (a signal): take it off its queue; a pending ``wait`` is
        answered False. A waiter already woken (and answered) is gone: nothing to do."""
        if waiter not in self.waiters:
            return
        for queue in self.wait_queues():
            if waiter in queue:
                queue.remove(waiter)
        await self._finish(waiter, False)
