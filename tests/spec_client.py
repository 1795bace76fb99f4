"""The client's side of ukernel-rpc/2 with the shared secret, written from ukernel/ipc/tcp.py's
docstring alone (hashlib, hmac, struct and msgpack; none of ukernel's transport code), so the
tests that use it check the spec, not the implementation against itself. No I/O here: bytes in
(``feed``), objects out (``next``), bytes to send (``answer``, ``seal``)."""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

import msgpack

VERSION = 2
RECORD_MAX = 1 << 20  # the longest payload of one record: a longer write is several


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def digest(*objs: Any) -> bytes:
    return hashlib.sha256(b"".join(packb(o) for o in objs)).digest()


def mac(secret: bytes, label: str, *parts: bytes) -> bytes:
    return hmac.new(secret, f"ukernel-rpc/2 {label}".encode() + b"".join(parts), hashlib.sha256).digest()


def tag(key: bytes, counter: int, header: bytes, payload: bytes) -> bytes:
    return hmac.new(key, struct.pack(">Q", counter) + header + payload, hashlib.sha256).digest()


class SpecSession:
    """One connection's handshake state and records, client side."""

    def __init__(self, secret: bytes):
        self.secret = secret
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.records = bytearray()
        self.hello: dict | None = None
        self.transcript = b""
        self.send_key = self.receive_key = b""
        self.sent = self.received = 0

    def answer(self, hello: dict, *, secret: bytes | None = None, trace: bool = False) -> bytes:
        """The answer to ``hello`` (proved with ``secret``, default ours), encoded."""
        assert hello["proto"] == "ukernel-rpc" and hello["version"] == VERSION and hello["auth"] == "secret"
        assert len(hello["nonce"]) == 32
        nonce = b"\x07" * 32
        answer = {"version": VERSION, "nonce": nonce, "mac": mac(secret or self.secret, "client", digest(hello), nonce)}
        if trace:
            answer["trace"] = True
        self.transcript = digest(hello, answer)
        return packb(answer)

    def accept(self, verdict: dict) -> bool:
        """Check the server's proof in an ok verdict and start the records; False for a refusal."""
        if verdict.get("ok") is not True:
            return False
        assert verdict["mac"] == mac(self.secret, "server", self.transcript), "the server does not know the secret"
        self.send_key = mac(self.secret, "c2s", self.transcript)
        self.receive_key = mac(self.secret, "s2c", self.transcript)
        return True

    def seal(self, payload: bytes) -> bytes:
        """``payload`` as one record (the next counter)."""
        header = struct.pack(">I", len(payload))
        record = header + payload + tag(self.send_key, self.sent, header, payload)
        self.sent += 1
        return record

    def seal_all(self, payload: bytes) -> bytes:
        """``payload`` as records of at most RECORD_MAX bytes each."""
        return b"".join(self.seal(payload[i : i + RECORD_MAX]) for i in range(0, len(payload), RECORD_MAX))

    def feed(self, data: bytes) -> None:
        if not self.receive_key:
            self.unpacker.feed(data)
            return
        self.records += data
        while len(self.records) >= 4:
            (length,) = struct.unpack_from(">I", self.records)
            end = 4 + length + 32
            if len(self.records) < end:
                return
            header, payload = bytes(self.records[:4]), bytes(self.records[4 : 4 + length])
            assert bytes(self.records[4 + length : end]) == tag(self.receive_key, self.received, header, payload)
            self.received += 1
            del self.records[:end]
            self.unpacker.feed(payload)

    def next(self) -> Any:
        """The next whole object received, or None."""
        return next(self.unpacker, None)
