"""The in-process transport: a trio memory channel per service inbox, and the fast path.

Frames are msgpack bytes even here, so a service never sees a caller's
Python objects, as if it were in another address space. When the service
is idle (nothing queued, no handler running) the frame does not go through
the inbox at all: the router's call runs the handler in the caller's task
(Router.call, the one fast path), as L4's IPC fastpath switches straight to
a receiver that waits. docs/ipc.md says why and when it falls back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .service import Delivery, Fatal, ReplyFn, Service

if TYPE_CHECKING:
    from .router import Endpoint

INBOX_DEPTH = 256


class LocalEndpoint:
    """The sending side of one service's inbox; the router's fast path reaches the service
    itself (``service``) when it is idle."""

    #: The fast path on (bench/ipc.py and tests/test_fastpath.py turn it off to compare).
    fastpath: bool = True

    def __init__(self, send: trio.MemorySendChannel, service: Service):
        self._send, self.service = send, service
        #: Once the service died: who takes its requests (the reincarnation server's Holding),
        #: for a caller that got this endpoint before and reaches it after (its inbox is not read).
        self.moved: Endpoint | None = None

    async def send(self, frame: bytes, reply: ReplyFn | None) -> None:
        """A frame that comes without its call (RS's holding passes on what waited through a
        restart): handled in the caller's task when the service is idle, as Router.call's fast
        path handles a call (cond_resched, busy meanwhile, a fatal exception to its loop)."""
        service = self.service
        if self.fastpath and not service.busy and not service.queued:
            if service.router.resched_due():  # cond_resched: let the others run, now and then
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller starts no handler
            if self.moved is None and not service.busy and not service.queued:  # (others ran meanwhile)
                service.busy, service.task = True, trio.lowlevel.current_task()
                try:
                    await service.handle(frame, reply)  # as the inbox loop would: a subclass's handle too
                except trio.Cancelled:
                    raise
                except BaseException as exc:  # not the caller's: the service dies of it, in its loop
                    service.busy = False
                    await self.fatal(exc)
                finally:
                    service.busy, service.task = False, service._loop_task
                    if service.queued:
                        service._idle.unpark()
                return
        await self.queue(frame, reply)

    async def queue(self, frame: bytes, reply: ReplyFn | None) -> None:
        """Into the inbox, behind what is queued, for the service's loop (or, once the
        service died, to who takes its requests)."""
        if self.moved is not None:
            await self.moved.send(frame, reply)
            return
        service = self.service
        service.queued += 1
        try:
            await self._send.send((frame, reply))
        except BaseException:
            service.queued -= 1
            raise

    async def fatal(self, exc: BaseException) -> None:
        """A handler run on the fast path died of ``exc`` (no Exception: a KeyboardInterrupt):
        hand it to the service's loop to die of, as if the message had come through the inbox."""
        self.service.queued += 1
        with trio.CancelScope(shield=True):
            await self._send.send((Fatal(exc), None))

    async def aclose(self) -> None:
        await self._send.aclose()


def open_local(service: Service) -> tuple[LocalEndpoint, trio.MemoryReceiveChannel[Delivery]]:
    """An inbox for ``service``: the endpoint the router sends to, the channel its loop reads."""
    send, receive = trio.open_memory_channel[Delivery](INBOX_DEPTH)
    return LocalEndpoint(send, service), receive


class HostedInbox:
    """A service hosted by a node: its inbox, and a short cut for its peers' requests.

    The router's messages (from services of the same node) queue as in the
    kernel. A peer's request, already decoded, is posted without a scheduler
    trip; and for a service whose handlers never wait (``Service.never_waits``:
    mm, pid, sched) the connection's reader runs the request itself when
    nothing is queued for it, one task switch less per message. Still one
    message at a time, in arrival order (DESIGN §3): the reader does so only
    when nothing is queued or running, and the inbox loop holds ``lock`` for
    each message it handles.
    """

    def __init__(self, service: Service):
        self.service = service
        self.inline = service.never_waits and not service.calls
        self.lock = trio.Lock()
        self.queued = 0  # messages put in the inbox and not yet handled
        self._send, self._inbox = trio.open_memory_channel[Delivery](INBOX_DEPTH)

    async def send(self, frame: bytes, reply: ReplyFn | None) -> None:
        """The router's endpoint: a message from a service of this node."""
        self.queued += 1
        await self._send.send((frame, reply))

    async def post(self, obj: list, reply: ReplyFn | None) -> None:
        """A decoded request or notification from a peer."""
        if self.inline and not self.queued and not self.lock.locked():
            self.lock.acquire_nowait()
            try:
                await self.service.handle_request(obj, reply)
            finally:
                self.lock.release()
            return
        self.queued += 1
        try:
            self._send.send_nowait((obj, reply))
        except trio.WouldBlock:
            await self._send.send((obj, reply))

    async def serve(self) -> None:
        """The service's loop: what was queued, one at a time."""
        async for item, reply in self._inbox:
            if self.lock.locked():
                await self.lock.acquire()
            else:
                self.lock.acquire_nowait()
            try:
                await self.service.handle(item, reply)
            finally:
                self.lock.release()
                self.queued -= 1

    async def aclose(self) -> None:
        await self._send.aclose()
