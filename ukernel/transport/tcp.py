"""Services in other processes: MessagePack-RPC over TCP or Unix sockets.

A connection is a stream of msgpack objects, one per message (no length
prefix: msgpack objects delimit themselves). It starts with a handshake:

    server -> client  {"proto": "ukernel-rpc", "version": 1, "nonce": <32 bytes>}
    client -> server  {"version": 1, "mac": HMAC-SHA256(secret, b"ukernel-rpc/1" + nonce)}
    server -> client  {"ok": true}            (or {"ok": false, "error": "..."} and close)

The secret is shared: read from a file or the UKERNEL_SECRET environment
variable, never from the command line (where ``ps`` would show it). A peer
that fails the handshake is logged and disconnected before any request of
it is read. After it, the client sends requests and notifications, the
server answers with responses, matched by msgid; many can be in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import trio

from .. import abi, protocol
from ..router import BootError, Router
from ..service import ReplyFn, Service
from ..trace import Tracer
from .local import open_local

log = logging.getLogger("ukernel.tcp")

PROTO = "ukernel-rpc"
VERSION = 1
NONCE_SIZE = 32
MAX_FRAME = 16 * 1024 * 1024  # the largest message either side accepts
MAX_IN_FLIGHT = 1024  # requests one connection may have unanswered, each way
HANDSHAKE_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024


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
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=max_frame)
        self._send_lock = trio.Lock()
        self._eof = False

    async def send_obj(self, obj: Any) -> None:
        await self.send_frame(msgpack.packb(obj, use_bin_type=True))

    async def send_frame(self, frame: bytes) -> None:
        """Write one already encoded message; writers take turns, frames never interleave."""
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def receive_obj(self) -> Any:
        """The next object; EOFError at a clean end, ValueError for a frame too large or bad bytes."""
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
                raise ValueError(f"bad msgpack on the wire: {exc}") from None
            if self._eof:
                raise EOFError
            data = await self.stream.receive_some(READ_CHUNK)
            if not data:
                self._eof = True
                continue
            try:
                self._unpacker.feed(data)
            except msgpack.BufferFull:
                raise ValueError(f"message larger than {MAX_FRAME} bytes") from None

    async def aclose(self) -> None:
        await self.stream.aclose()


def _set_nodelay(stream: trio.abc.Stream) -> None:
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


async def open_stream(url: str) -> trio.abc.Stream:
    kind, where = parse_url(url)
    if kind == "tcp":
        stream = await trio.open_tcp_stream(*where)
        _set_nodelay(stream)
        return stream
    return await trio.open_unix_socket(where)


# --- the server -----------------------------------------------------------------------------
async def _server_handshake(conn: FramedStream, secret: bytes) -> None:
    nonce = secrets.token_bytes(NONCE_SIZE)
    await conn.send_obj({"proto": PROTO, "version": VERSION, "nonce": nonce})
    answer = await conn.receive_obj()
    if not isinstance(answer, dict) or answer.get("version") != VERSION:
        got = answer.get("version") if isinstance(answer, dict) else type(answer).__name__
        raise HandshakeError(f"protocol version {got!r}, this server speaks {VERSION}")
    mac = answer.get("mac")
    if not isinstance(mac, bytes) or not hmac.compare_digest(mac, handshake_mac(secret, nonce)):
        raise HandshakeError("wrong secret (bad HMAC)")
    await conn.send_obj({"ok": True})


def check_hosted(services: Iterable[Service]) -> None:
    """A served service reaches its callees only in the same process (for now)."""
    names = {s.name for s in services}
    for service in services:
        missing = sorted(service.calls - names)
        if missing:
            raise BootError(
                f"{service.name} calls {', '.join(missing)}: serve {' '.join(sorted(names | set(missing)))} together"
            )


async def serve_services(
    services: list[Service],
    listen: str = "tcp://127.0.0.1:0",
    secret: bytes | None = None,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``services`` and answer their requests from authenticated peers, until cancelled.

    ``task_status.started`` gets the address actually listened on (the port
    chosen for ``tcp://HOST:0``).
    """
    if not secret:
        raise ValueError("serve_services needs a shared secret")
    check_hosted(services)
    router = Router(Tracer())  # calls between the services hosted here
    inboxes = {}
    async with trio.open_nursery() as nursery:
        for service in services:
            endpoint, inbox = open_local()
            service.router = router
            router.attach(service.name, endpoint, service.calls)
            inboxes[service.name] = endpoint
            nursery.start_soon(service.serve, inbox)
        kind, where = parse_url(listen)
        if kind == "tcp":
            listeners = await trio.open_tcp_listeners(where[1], host=where[0])
            host, port = listeners[0].socket.getsockname()[:2]
            url = f"tcp://{host}:{port}"
        else:
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(where)
            sock.listen()
            listeners = [trio.SocketListener(sock)]
            url = f"unix:{where}"

        async def handler(stream: trio.abc.Stream) -> None:
            await _serve_connection(stream, inboxes, secret)

        try:
            await nursery.start(trio.serve_listeners, handler, listeners)
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            if kind == "unix":
                with trio.CancelScope(shield=True):
                    await trio.Path(where).unlink(missing_ok=True)


async def _serve_connection(stream: trio.abc.Stream, inboxes: dict, secret: bytes) -> None:
    _set_nodelay(stream)
    conn = FramedStream(stream)
    peer = _peer_name(stream)
    closed = False
    slots = trio.Semaphore(MAX_IN_FLIGHT)
    try:
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await _server_handshake(conn, secret)
        except (HandshakeError, ValueError, EOFError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            log.warning("ukernel: refused peer %s: %s", peer, exc or type(exc).__name__)
            try:
                with trio.move_on_after(1):
                    await conn.send_obj({"ok": False, "error": str(exc) or type(exc).__name__})
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            return

        def reply_to(msgid: int) -> ReplyFn:
            answered = False

            async def reply(frame: bytes) -> None:
                nonlocal answered
                if answered:
                    return
                answered = True
                slots.release()
                if closed:
                    return  # the caller is gone: the reply is dropped
                try:
                    await conn.send_frame(frame)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            return reply

        while True:
            try:
                obj = await conn.receive_obj()
            except EOFError:
                return
            except ValueError as exc:
                log.warning("ukernel: dropping peer %s: %s", peer, exc)
                return
            msgid, service = _request_target(obj)
            if msgid is not None:
                await slots.acquire()
                reply = reply_to(msgid)
            else:
                reply = None
            endpoint = inboxes.get(service)
            if endpoint is None:
                if reply is not None:
                    error = protocol.error_map(abi.ENOSYS, f"no service {service!r} here")
                    await reply(protocol.encode_response(msgid, error, None))
                continue
            await endpoint.send(msgpack.packb(obj, use_bin_type=True), reply)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        closed = True
        with trio.CancelScope(shield=True):
            await conn.aclose()


def _request_target(obj: Any) -> tuple[int | None, str | None]:
    """The msgid (for a request) and the service a message is for."""
    if isinstance(obj, list) and len(obj) == 4 and obj[0] == protocol.REQUEST and isinstance(obj[1], int):
        method = obj[2]
        return obj[1], method.split(".", 1)[0] if isinstance(method, str) else None
    if isinstance(obj, list) and len(obj) == 3 and obj[0] == protocol.NOTIFY and isinstance(obj[1], str):
        return None, obj[1].split(".", 1)[0]
    return None, None


def _peer_name(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        return str(sock.getpeername()) if sock is not None else "?"
    except OSError:
        return "?"


# --- the client -----------------------------------------------------------------------------
class TcpEndpoint:
    """A router endpoint for services served elsewhere: one connection, replies by msgid."""

    def __init__(self, conn: FramedStream, url: str):
        self.conn, self.url = conn, url
        self.replies: dict[int, ReplyFn | None] = {}
        self.closed: str | None = None  # why, once the connection is gone
        self._slots = trio.Semaphore(MAX_IN_FLIGHT)

    async def send(self, frame: bytes, reply: ReplyFn | None) -> None:
        msgid = protocol.msgid_of(frame)
        if msgid is not None:
            if self.closed is not None:
                await self._fail(msgid, reply)
                return
            await self._slots.acquire()
            if self.closed is not None:
                self._slots.release()
                await self._fail(msgid, reply)
                return
            self.replies[msgid] = reply
        try:
            await self.conn.send_frame(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.closed = self.closed or f"{self.url}: {exc or 'connection lost'}"
            if msgid is not None and msgid in self.replies:
                self._slots.release()
                await self._fail(msgid, self.replies.pop(msgid))

    async def _fail(self, msgid: int, reply: ReplyFn | None) -> None:
        if reply is not None:
            error = protocol.error_map(abi.EIO, f"service connection lost ({self.closed})")
            await reply(protocol.encode_response(msgid, error, None))

    async def run(self) -> None:
        """The reader: hand each response to its caller; at the end, fail the rest with EIO."""
        reason = "connection closed"
        try:
            while True:
                obj = await self.conn.receive_obj()
                if not (isinstance(obj, list) and len(obj) == 4 and obj[0] == protocol.RESPONSE):
                    continue
                if obj[1] not in self.replies:
                    continue
                reply = self.replies.pop(obj[1])
                self._slots.release()
                if reply is not None:
                    await reply(msgpack.packb(obj, use_bin_type=True))
        except EOFError:
            pass
        except (ValueError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            reason = str(exc) or type(exc).__name__
        finally:
            self.closed = self.closed or f"{self.url}: {reason}"
            with trio.CancelScope(shield=True):
                await self.conn.aclose()
                pending, self.replies = self.replies, {}
                for msgid, reply in pending.items():
                    self._slots.release()
                    await self._fail(msgid, reply)

    async def aclose(self) -> None:
        await self.conn.aclose()


async def connect(url: str, secret: bytes, *, nursery: trio.Nursery) -> TcpEndpoint:
    """Connect and authenticate; the reader task runs in ``nursery``."""
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
            await conn.send_obj({"version": VERSION, "mac": handshake_mac(secret, nonce)})
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
    endpoint = TcpEndpoint(conn, url)
    nursery.start_soon(endpoint.run)
    return endpoint
