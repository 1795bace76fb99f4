"""Messages larger than a frame: sent as ``ukernel.chunk`` notifications, joined on arrival.

A connection refuses any one msgpack object over ``tcp.MAX_FRAME`` (16 MiB: a
defence against a peer that declares a huge string). A message the embedded
kernel takes can be larger (a 64 MiB ``write``), so a sender splits the
encoded message into pieces of ``CHUNK_SIZE`` bytes, each a notification

    [2, "ukernel.chunk", [{"id": N, "data": <bytes>, "end": false}, {}]]

with the last one ``"end": true``. The receiver appends the pieces of each id
and, at the end, decodes the joined bytes as the message it would have read
whole. Chunks of different messages may interleave (a heartbeat or a small
reply is not held up behind 64 MiB); a connection holds at most
``MAX_MESSAGE`` bytes of unfinished messages, past which it is dropped, as a
frame over the cap is.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import msgpack

from . import protocol, tcp

METHOD = "ukernel.chunk"
CHUNK_SIZE = 1 << 20  # a message longer than this goes in pieces of this size
#: The most a connection buffers of messages still arriving: a write of MAX_RW_COUNT
#: (2 GiB - 4 KiB, what one write() may carry) and its envelope fit.
MAX_MESSAGE = (1 << 31) + (1 << 20)


class Splitter:
    """The sending side: the frames to write for one encoded message."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def frames(self, frame: bytes) -> Iterator[bytes]:
        """``frame`` itself when it is small, else its chunk notifications, in order."""
        if len(frame) <= CHUNK_SIZE:
            yield frame
            return
        chunk_id, view = next(self._ids), memoryview(frame)
        for start in range(0, len(frame), CHUNK_SIZE):
            piece = view[start : start + CHUNK_SIZE]
            end = start + CHUNK_SIZE >= len(frame)
            yield protocol.encode_notification(METHOD, {"id": chunk_id, "data": piece, "end": end}, {})


def is_chunk(obj: Any) -> bool:
    """Whether a decoded object is a chunk notification (of any shape: Joiner checks it)."""
    return type(obj) is list and len(obj) == 3 and obj[0] == protocol.NOTIFY and obj[1] == METHOD


class Joiner:
    """The receiving side: pieces by id until their message is whole."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_MESSAGE if limit is None else limit
        self.parts: dict[int, bytearray] = {}
        self.buffered = 0

    def feed(self, obj: list) -> Any | None:
        """Take one chunk notification; the decoded message when it was the last piece,
        else None. ValueError for a malformed chunk or past ``limit``: drop the peer."""
        args = obj[2][0] if isinstance(obj[2], list) and obj[2] and isinstance(obj[2][0], dict) else None
        if args is None or type(args.get("id")) is not int or type(args.get("data")) is not bytes:
            raise ValueError("malformed ukernel.chunk: want [{id: int, data: bytes, end: bool}, {}]")
        data = args["data"]
        self.buffered += len(data)
        if self.buffered > self.limit:
            raise ValueError(f"a message larger than {self.limit} bytes (in chunks)")
        part = self.parts.setdefault(args["id"], bytearray())
        part += data
        if args.get("end") is not True:
            return None
        del self.parts[args["id"]]
        self.buffered -= len(part)
        try:
            return msgpack.unpackb(
                part, raw=False, strict_map_key=False, max_array_len=tcp.MAX_ITEMS, max_map_len=tcp.MAX_ITEMS
            )
        except Exception as exc:  # msgpack raises several unrelated types
            raise ValueError(f"bad msgpack in chunks: {exc}") from None
