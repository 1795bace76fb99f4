"""Services in other processes: MessagePack-RPC over TCP or Unix sockets.

A connection is a stream of msgpack objects, one per message (no length
prefix: msgpack objects delimit themselves). It starts with a handshake:

    server -> client  {"proto": "ukernel-rpc", "version": 1, "nonce": <32 bytes>,
                       "node": "<the server's name>", "instance": "<random, new each start>",
                       "services": {"sched": {"cpus": 1, "sched": "rr", ...}, "vfs": {}, ...}}
    client -> server  {"version": 1, "mac": HMAC-SHA256(secret, b"ukernel-rpc/1" + nonce),
                       "trace": true}     ("trace" optional: relay trace events, see node.py)
    server -> client  {"ok": true}            (or {"ok": false, "error": "..."} and close)

The secret is shared: read from a file or the UKERNEL_SECRET environment
variable, never from the command line (where ``ps`` would show it). A peer
that fails the handshake is logged and disconnected before any request of
it is read. After it, the client sends requests and notifications, the
server answers with responses, matched by msgid; many can be in flight.

``services`` names what the server hosts, each with the settings it was
built with (services.settings_of: the Config fields it takes, as ``cpus``
or ``memory``; nil if the server was not told). A kernel compares them with
its own before it uses the service, so a remote sched with 1 CPU is not used
by a run that asks for 2.

This module is the wire: the secret, the framing, addresses and both sides
of the handshake. node.py hosts services (``ukernel serve``); endpoint.py
is how a router reaches a service served elsewhere (heartbeats, EIO on loss,
redial).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import trio

from .. import abi
from .protocol import msgid_of

PROTO = "ukernel-rpc"
VERSION = 1
NONCE_SIZE = 32
MAX_FRAME = 16 * 1024 * 1024  # the largest message either side accepts
MAX_IN_FLIGHT = 1024  # requests one connection may have unanswered, each way
MAX_ITEMS = 1 << 18  # the longest array or map a message may declare
HANDSHAKE_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024

T = TypeVar("T")


class HandshakeError(ConnectionError):
    """The peer does not know the secret, or speaks another protocol version."""


# --- the secret -----------------------------------------------------------------------------
def load_secret(path: str | os.PathLike | None = None) -> bytes:
    """The shared secret: from ``path`` if given, else $UKERNEL_SECRET."""
    if path is not None:
        secret = Path(path).read_bytes().strip()
    else:
        secret = os.environ.get("UKERNEL_SECRET", "").encode()
    if not secret:
        where = f"file {path}" if path is not None else "UKERNEL_SECRET"
        raise ValueError(f"no shared secret: {where} is empty or unset")
    return secret


def handshake_mac(secret: bytes, nonce: bytes, version: int = VERSION) -> bytes:
    return hmac.new(secret, f"{PROTO}/{version}".encode() + nonce, hashlib.sha256).digest()


# --- framing --------------------------------------------------------------------------------
class FramedStream:
    """A trio stream carrying msgpack objects: whole objects out, whole objects in."""

    def __init__(self, stream: trio.abc.Stream, max_frame: int = MAX_FRAME):
        self.stream = stream
        self._unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=max_frame,
            max_array_len=MAX_ITEMS,  # a 5-byte header must not make us allocate a huge list
            max_map_len=MAX_ITEMS,
        )
        self._send_lock = trio.Lock()
        self._eof = False

    async def send_obj(self, obj: Any) -> None:
        await self.send_frame(msgpack.packb(obj, use_bin_type=True))

    async def send_frame(self, frame: bytes) -> None:
        """Write one already encoded message; writers take turns, frames never interleave.

        When no other writer is mid-frame, the frame is first written at once with a
        non-blocking send: a trip through trio's scheduler (what ``send_all`` takes even
        when the socket has room) costs more than the write itself, on every message.
        Only what the socket did not take waits, holding the lock (taken before any await,
        so no other frame can slip in between the two parts).
        """
        lock = self._send_lock
        if not lock.locked():
            sent = self._send_now(frame)
            if sent == len(frame):
                return
            lock.acquire_nowait()
            try:
                await self.stream.send_all(memoryview(frame)[sent:])
            finally:
                lock.release()
            return
        async with lock:
            await self.stream.send_all(frame)

    def _send_now(self, frame: bytes) -> int:
        """Write what the socket takes without waiting; how many bytes (0 if not a socket)."""
        sock = getattr(self.stream, "socket", None)
        return (_nonblocking(os.write, sock, frame) or 0) if sock is not None else 0

    async def receive_obj(self) -> Any:
        """The next object; EOFError at a clean end, ValueError for a frame too large or bad bytes."""
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
                # TypeError: a map key msgpack cannot hash (an array as a key)
                raise ValueError(f"bad msgpack on the wire: {exc}") from None
            if self._eof:
                raise EOFError
            data = await self._receive()
            if not data:
                self._eof = True
                continue
            try:
                self._unpacker.feed(data)
            except msgpack.BufferFull:
                raise ValueError(f"message larger than {MAX_FRAME} bytes") from None

    async def _receive(self) -> bytes:
        """Wait until the socket is readable, then read: between a request and its reply
        nothing is there yet, and ``receive_some`` would first try (and fail) a read."""
        sock = getattr(self.stream, "socket", None)
        if sock is None:
            return await self.stream.receive_some(READ_CHUNK)
        while True:
            await trio.lowlevel.wait_readable(sock)
            data = _nonblocking(os.read, sock, READ_CHUNK)
            if data is not None:
                return data

    async def aclose(self) -> None:
        await self.stream.aclose()


def _nonblocking(io: Callable[[int, Any], T], sock: Any, arg: Any) -> T | None:
    """``io(fd, arg)`` on a non-blocking socket: None if it would block, else trio's stream errors."""
    fd = sock.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("socket was already closed")
    try:
        return io(fd, arg)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc


def set_nodelay(stream: trio.abc.Stream) -> None:
    sock = getattr(stream, "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- addresses ------------------------------------------------------------------------------
def parse_url(url: str) -> tuple[str, Any]:
    """'tcp://HOST:PORT' -> ('tcp', (host, port)); 'unix:/path' -> ('unix', '/path')."""
    if url.startswith("tcp://"):
        host, sep, port = url[len("tcp://") :].rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bad address {url!r}: want tcp://HOST:PORT")
        return "tcp", (host.strip("[]") or "127.0.0.1", int(port))
    if url.startswith("unix:"):
        path = url[len("unix:") :].removeprefix("//")
        if not path:
            raise ValueError(f"bad address {url!r}: want unix:/PATH")
        return "unix", path
    raise ValueError(f"bad address {url!r}: want tcp://HOST:PORT or unix:/PATH")


def dial_failure(url: str, service: str, exc: BaseException) -> str:
    """Why ``dial`` could not reach ``service`` at ``url``, as one line a user can act on."""
    serve = f"is `ukernel serve {service} --listen {url}` running?"
    if isinstance(exc, HandshakeError):
        why = str(exc).removeprefix(f"{url}: ")
        hint = " (the secrets differ: UKERNEL_SECRET or --secret-file)" if "secret" in why else ""
        return f"{why}{hint}"
    if isinstance(exc, socket.gaierror):
        return f"no such host: {parse_url(url)[1][0]} ({exc.strerror})"
    if not isinstance(exc, OSError):
        return str(exc)  # a bad address (parse_url)
    errors = [exc, *(getattr(exc.__cause__, "exceptions", None) or ())]  # open_tcp_stream's, per address
    err = next((e.errno for e in errors if isinstance(e, OSError) and e.errno), None)
    if err in (errno.ECONNREFUSED, errno.ENOENT):
        return f"{abi.errno_name(err)}: nobody listens there ({serve})"
    return abi.named(err, str(exc)) if err else f"{exc} ({serve})"


async def open_stream(url: str) -> trio.abc.Stream:
    kind, where = parse_url(url)
    if kind == "tcp":
        stream = await trio.open_tcp_stream(*where)
        set_nodelay(stream)
        return stream
    return await trio.open_unix_socket(where)


# --- the handshake ----------------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    """What the other side said in the handshake."""

    node: str  # the server's name (``ukernel serve --name``), or its address
    instance: str  # random per server start: a new one means the old state is gone
    trace: bool = False  # the client asked for the trace events its requests cause
    services: dict[str, dict | None] = field(default_factory=dict)  # hosted there -> its settings (or None)


async def server_handshake(
    conn: FramedStream, secret: bytes, node: str, instance: str, services: dict[str, dict | None] | None = None
) -> Peer:
    """Challenge, check the HMAC, accept; HandshakeError (or ValueError, EOFError) otherwise."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    await conn.send_obj(
        {
            "proto": PROTO,
            "version": VERSION,
            "nonce": nonce,
            "node": node,
            "instance": instance,
            "services": services or {},
        }
    )
    answer = await conn.receive_obj()
    if not isinstance(answer, dict) or answer.get("version") != VERSION:
        got = answer.get("version") if isinstance(answer, dict) else type(answer).__name__
        raise HandshakeError(f"protocol version {got!r}, this server speaks {VERSION}")
    mac = answer.get("mac")
    if not isinstance(mac, bytes) or not hmac.compare_digest(mac, handshake_mac(secret, nonce)):
        raise HandshakeError("wrong secret (bad HMAC)")
    await conn.send_obj({"ok": True})
    return Peer(node, instance, answer.get("trace") is True)


async def dial(url: str, secret: bytes, *, trace: bool = False) -> tuple[FramedStream, Peer]:
    """Connect to ``url`` and prove we hold the secret; HandshakeError or OSError if not."""
    stream = await open_stream(url)
    conn = FramedStream(stream)
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            hello = await conn.receive_obj()
            if not isinstance(hello, dict) or hello.get("proto") != PROTO or hello.get("version") != VERSION:
                raise HandshakeError(f"{url}: not a ukernel-rpc/{VERSION} server: {hello!r}")
            nonce = hello.get("nonce")
            if not isinstance(nonce, bytes):
                raise HandshakeError(f"{url}: no nonce in the server's hello")
            answer = {"version": VERSION, "mac": handshake_mac(secret, nonce)}
            if trace:
                answer["trace"] = True
            await conn.send_obj(answer)
            verdict = await conn.receive_obj()
            if not (isinstance(verdict, dict) and verdict.get("ok") is True):
                why = verdict.get("error") if isinstance(verdict, dict) else verdict
                raise HandshakeError(f"{url}: refused: {why}")
    except (EOFError, ValueError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        await conn.aclose()
        raise HandshakeError(f"{url}: handshake failed: {exc or type(exc).__name__}") from None
    except BaseException:
        await conn.aclose()
        raise
    node, instance, services = hello.get("node"), hello.get("instance"), hello.get("services")
    return conn, Peer(
        node if isinstance(node, str) else url,
        instance if isinstance(instance, str) else "",
        services=services if isinstance(services, dict) else {},
    )


def request_msgid(frame: bytes) -> int | None:
    """The msgid of an encoded request, read from its first bytes (no full decode)."""
    if len(frame) > 2 and frame[0] == 0x94 and frame[1] == 0x00:
        first = frame[2]
        if first < 0x80:
            return first
        width = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}.get(first)
        if width is not None:
            return int.from_bytes(frame[3 : 3 + width], "big")
    return msgid_of(frame)  # negative ids, odd encoders
