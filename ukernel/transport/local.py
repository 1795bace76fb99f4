"""The in-process transport: a trio memory channel per service inbox.

Frames are msgpack bytes even here, so a service never sees a caller's
Python objects, as if it were in another address space.
"""

from __future__ import annotations

import trio

from ..service import Delivery, ReplyFn

INBOX_DEPTH = 256


class LocalEndpoint:
    """The sending side of one service's inbox."""

    def __init__(self, send: trio.MemorySendChannel):
        self._send = send

    async def send(self, frame: bytes, reply: ReplyFn | None) -> None:
        await self._send.send((frame, reply))

    async def post(self, obj: list, reply: ReplyFn | None) -> None:
        """A decoded message from a node's peer; waits only when the inbox is full.

        Not ``send``: the embedded kernel's scheduling order (and so its traces) must
        not change, while a node's reader gains from skipping the scheduler trip.
        """
        try:
            self._send.send_nowait((obj, reply))
        except trio.WouldBlock:
            await self._send.send((obj, reply))

    async def aclose(self) -> None:
        await self._send.aclose()


def open_local() -> tuple[LocalEndpoint, trio.MemoryReceiveChannel[Delivery]]:
    send, receive = trio.open_memory_channel[Delivery](INBOX_DEPTH)
    return LocalEndpoint(send), receive
