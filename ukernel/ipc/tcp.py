"""Services in other processes: MessagePack-RPC over TCP or Unix sockets, authenticated both ways.

A connection is a stream of msgpack objects, one per message (no length
prefix: msgpack objects delimit themselves), under one of two protections
(docs/distributed.md "Security" says what each stops):

- **TLS 1.3** (TCP with ``--tls DIR``; tls.py): both ends show a certificate
  from the ukernel CA, the client checks the server's name; the stream
  below is encrypted and integrity-checked by TLS.
- **the shared secret** (Unix sockets; TCP on loopback with ``--insecure``):
  a mutual HMAC challenge binds the session; after it every write is a
  *record* ``[length u32][payload][HMAC-SHA256 tag]`` whose tag covers a
  per-direction counter, so a changed, replayed, reordered, dropped or
  injected record fails the connection. Not encrypted.

Then the ukernel-rpc handshake, the same in both (``nonce``s and ``mac``s
only with the secret; H(x) is SHA-256, ``packb`` msgpack's encoding of the
object as sent):

    server -> client  hello   {"proto": "ukernel-rpc", "version": 2, "auth": "tls" | "secret",
                               "nonce": <32 bytes>, "node": "<the server's name>",
                               "instance": "<random, new each start>",
                               "services": {"sched": {"cpus": 1, "sched": "rr", ...}, "vfs": {}, ...}}
    client -> server  answer  {"version": 2, "nonce": <32 bytes>,
                               "mac": HMAC(secret, "ukernel-rpc/2 client" + H(packb(hello)) + nonce),
                               "trace": true}     ("trace" optional: relay trace events, see node.py)
    server -> client  verdict {"ok": true, "mac": HMAC(secret, "ukernel-rpc/2 server" + T)}
                              (or {"ok": false, "error": "..."} and close)

where T = H(packb(hello) + packb(answer)). The client checks the server's
mac: a server that does not know the secret is refused too. From the next
byte on each direction is records, keyed HMAC(secret, "ukernel-rpc/2 c2s" + T)
client to server and HMAC(secret, "ukernel-rpc/2 s2c" + T) back, the counter
starting at 0; a client sends nothing after its answer until the verdict.

The secret is read from a file or the UKERNEL_SECRET environment variable,
never from the command line (where ``ps`` would show it). A peer that fails
either handshake is logged and disconnected before any request of it is
read. After it, the client sends requests and notifications, the server
answers with responses, matched by msgid; many can be in flight.

``services`` names what the server hosts, each with the settings it was
built with (services.settings_of: the Config fields it takes, as ``cpus``
or ``memory``; nil if the server was not told). A kernel compares them with
its own before it uses the service, so a remote sched with 1 CPU is not used
by a run that asks for 2.

This module is the wire: credentials (Auth), the framing, addresses and both
sides of the handshake. node.py hosts services (``ukernel serve``); endpoint.py
is how a router reaches a service served elsewhere (heartbeats, EIO on loss,
redial).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import trio

from .. import abi
from . import tls
from .protocol import msgid_of

PROTO = "ukernel-rpc"
VERSION = 2
NONCE_SIZE = 32
MAX_FRAME = 16 * 1024 * 1024  # the largest message either side accepts
MAX_IN_FLIGHT = 1024  # requests one connection may have unanswered, each way
MAX_ITEMS = 1 << 18  # the longest array or map a message may declare
HANDSHAKE_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024
RECORD_MAX = 1 << 20  # the longest payload of one MAC'd record (a longer write is several records)
TAG_SIZE = 32

T = TypeVar("T")


class HandshakeError(ConnectionError):
    """The peer could not prove who it is (secret, certificate), or speaks another protocol version."""


# --- credentials ----------------------------------------------------------------------------
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


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where plain TCP never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Auth:
    """How this end proves who it is and checks the other, for every address it dials or serves."""

    secret: bytes | None = field(default=None, repr=False)  # the shared secret: Unix sockets, TCP with ``insecure``
    keys: tls.TlsKeys | None = None  # the CA and our certificate: TLS on TCP
    insecure: bool = False  # plain TCP (the secret's handshake and records, no TLS), loopback only

    @classmethod
    def load(
        cls,
        urls: Mapping[str, str],
        *,
        secret_file: str | os.PathLike | None = None,
        tls_dir: str | os.PathLike | None = None,
        tls_name: str = "kernel",
        insecure: bool = False,
    ) -> Auth:
        """What ``urls`` (label -> address) need, loaded and checked now: ValueError, one line,
        starting with the label of an address that may not be used, or saying which file is
        missing. An address that does not parse is left to the dial, which names it."""
        modes = set()
        for label, url in urls.items():
            try:
                parse_url(url)
            except ValueError:
                continue
            try:
                modes.add(protection(url, tls_dir is not None, insecure))
            except ValueError as exc:
                raise ValueError(f"{label}: {exc}") from None
        keys = tls.load(tls_dir, tls_name) if tls_dir is not None and "tls" in modes else None
        secret = load_secret(secret_file) if "secret" in modes else None
        return cls(secret, keys, insecure)

    def mode(self, url: str) -> str:
        """'tls' or 'secret': how a connection to or from ``url`` is protected; ValueError if it may not be made."""
        mode = protection(url, self.keys is not None, self.insecure)
        if mode == "secret" and self.secret is None:
            raise ValueError(f"{url}: no shared secret (set UKERNEL_SECRET or --secret-file)")
        return mode


def protection(url: str, tls: bool, insecure: bool) -> str:
    """The rule: TCP is TLS when we have keys, else only ``insecure`` on loopback (the secret's
    records); a Unix socket is the secret's. ValueError, one line, for TCP that may not be plain."""
    kind, where = parse_url(url)
    if kind == "unix":
        return "secret"
    if tls:
        return "tls"
    if not insecure:
        raise ValueError("plain TCP is refused: give --tls DIR (keys from `ukernel keys`), or --insecure on loopback")
    if not is_loopback(where[0]):
        raise ValueError(f"--insecure: plain TCP only on loopback, not {where[0]}: use --tls DIR")
    return "secret"


def handshake_mac(secret: bytes, label: str, *parts: bytes) -> bytes:
    """HMAC-SHA256(secret, "ukernel-rpc/2 LABEL" + parts): the handshake's proofs and session keys."""
    return hmac.new(secret, f"{PROTO}/{VERSION} {label}".encode() + b"".join(parts), hashlib.sha256).digest()


class FrameMac:
    """The records of a session bound by the secret: a key per direction and a counter each way.

    The counter is not sent: both ends count, so a record replayed, dropped or
    reordered has the wrong number in its tag and fails as a changed one does.
    """

    def __init__(self, send_key: bytes, receive_key: bytes):
        self.send_key, self.receive_key = send_key, receive_key
        self.sent = self.received = 0

    def seal(self, data: bytes | memoryview) -> bytes:
        out = []
        for at in range(0, max(len(data), 1), RECORD_MAX):
            payload = bytes(data[at : at + RECORD_MAX])
            header = struct.pack(">I", len(payload))
            out += [header, payload, self._tag(self.send_key, self.sent, header, payload)]
            self.sent += 1
        return b"".join(out)

    def open(self, buffer: bytearray) -> bytes:
        """The payloads of the complete records at the front of ``buffer`` (removed from it);
        ValueError for a record too long or whose tag does not match."""
        out = []
        while len(buffer) >= 4:
            (length,) = struct.unpack_from(">I", buffer)
            if length > RECORD_MAX:
                raise ValueError(f"record of {length} bytes, more than {RECORD_MAX}: not a ukernel-rpc session")
            end = 4 + length + TAG_SIZE
            if len(buffer) < end:
                break
            header, payload, tag = bytes(buffer[:4]), bytes(buffer[4 : 4 + length]), bytes(buffer[4 + length : end])
            if not hmac.compare_digest(tag, self._tag(self.receive_key, self.received, header, payload)):
                raise ValueError(f"record {self.received} failed its MAC: changed, replayed or injected on the way")
            self.received += 1
            del buffer[:end]
            out.append(payload)
        return b"".join(out)

    @staticmethod
    def _tag(key: bytes, counter: int, header: bytes, payload: bytes) -> bytes:
        mac = hmac.new(key, struct.pack(">Q", counter) + header, hashlib.sha256)
        mac.update(payload)
        return mac.digest()


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
        self._fed = 0  # bytes given to the unpacker (its tell() says how many it used)
        self.mac: FrameMac | None = None  # the secret's records, once the handshake bound the session
        self._records = bytearray()  # received, not yet a whole record

    def start_records(self, mac: FrameMac) -> None:
        """From here on every write is a record of ``mac`` and every read must be one. Bytes
        already read past the handshake were not under a MAC: ValueError."""
        if self._fed != self._unpacker.tell():
            raise ValueError("the peer sent more before the handshake had ended")
        self.mac = mac

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
            if self.mac is not None:
                frame = self.mac.seal(frame)  # sealed in the order written: the counter is the wire's order
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
            await self.stream.send_all(frame if self.mac is None else self.mac.seal(frame))

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
                if self._records:
                    raise ValueError("the connection ended inside a record")
                continue
            if self.mac is not None:
                self._records += data
                data = self.mac.open(self._records)
            try:
                self._unpacker.feed(data)
            except msgpack.BufferFull:
                raise ValueError(f"message larger than {MAX_FRAME} bytes") from None
            self._fed += len(data)

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
        """Close; TLS's close_notify may wait for room to send, never more than a second (then
        trio.SSLStream closes the socket without it)."""
        with trio.move_on_after(1):
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


def why(exc: BaseException) -> str:
    """What broke a connection, in words: trio's BrokenResourceError hides the ssl or OS error as its cause."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None else exc
    return str(cause) or type(cause).__name__


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


HANDSHAKE_FAILURES = (HandshakeError, ValueError, EOFError, trio.TooSlowError, trio.BrokenResourceError)


def _digest(*objs: Any) -> bytes:
    return hashlib.sha256(b"".join(msgpack.packb(o, use_bin_type=True) for o in objs)).digest()


async def accept(
    stream: trio.abc.Stream,
    auth: Auth,
    mode: str,
    node: str,
    instance: str,
    services: dict[str, dict | None] | None = None,
) -> tuple[FramedStream, Peer]:
    """A connection a listener of ``mode`` took, authenticated (TLS, then ukernel-rpc's handshake),
    within HANDSHAKE_TIMEOUT. HandshakeError, after telling the peer if it got that far and
    closing, when it cannot prove itself: then nothing else it sent was read."""
    conn = None
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            if mode == "tls":
                try:
                    stream = await tls.server(stream, auth.keys)
                except trio.BrokenResourceError as exc:
                    raise HandshakeError(auth.keys.explain(exc, "the client")) from None
            conn = FramedStream(stream)
            return conn, await server_handshake(
                conn, auth.secret if mode == "secret" else None, node, instance, services
            )
    except HANDSHAKE_FAILURES as exc:
        why = str(exc) or type(exc).__name__
        if isinstance(exc, trio.TooSlowError):
            tls_hint = " (a client without TLS, --insecure?)" if mode == "tls" and conn is None else ""
            why = f"no handshake in {HANDSHAKE_TIMEOUT:g} s{tls_hint}"
        elif isinstance(exc, EOFError):
            why = "it hung up in the handshake"
        if conn is not None:
            await _refuse(conn, why)
        else:
            await trio.aclose_forcefully(stream)
        raise HandshakeError(why) from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def _refuse(conn: FramedStream, why: str) -> None:
    """Tell a peer that failed the handshake why, and close."""
    with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await conn.send_obj({"ok": False, "error": why})
    with trio.CancelScope(shield=True):
        await conn.aclose()


async def server_handshake(
    conn: FramedStream,
    secret: bytes | None,
    node: str,
    instance: str,
    services: dict[str, dict | None] | None = None,
) -> Peer:
    """Hello, check the answer (with ``secret``: its MAC, then bind the session to records), accept;
    HandshakeError (or ValueError, EOFError) otherwise. Without a secret, TLS below has
    authenticated the client already."""
    hello = {
        "proto": PROTO,
        "version": VERSION,
        "auth": "secret" if secret is not None else "tls",
        "node": node,
        "instance": instance,
        "services": services or {},
    }
    if secret is not None:
        hello["nonce"] = secrets.token_bytes(NONCE_SIZE)
    await conn.send_obj(hello)
    answer = await conn.receive_obj()
    if not isinstance(answer, dict) or answer.get("version") != VERSION:
        got = answer.get("version") if isinstance(answer, dict) else type(answer).__name__
        raise HandshakeError(f"protocol version {got!r}, this server speaks {VERSION}")
    verdict: dict[str, Any] = {"ok": True}
    if secret is not None:
        nonce, mac = answer.get("nonce"), answer.get("mac")
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE or not isinstance(mac, bytes):
            raise HandshakeError("no nonce and mac in the answer: the secret's handshake is wanted here")
        if not hmac.compare_digest(mac, handshake_mac(secret, "client", _digest(hello), nonce)):
            raise HandshakeError("wrong secret (bad HMAC)")
        transcript = _digest(hello, answer)
        verdict["mac"] = handshake_mac(secret, "server", transcript)
    await conn.send_obj(verdict)
    if secret is not None:
        conn.start_records(FrameMac(handshake_mac(secret, "s2c", transcript), handshake_mac(secret, "c2s", transcript)))
    return Peer(node, instance, answer.get("trace") is True)


async def dial(url: str, auth: Auth, *, trace: bool = False) -> tuple[FramedStream, Peer]:
    """Connect to ``url`` and authenticate both ways (auth.mode(url) says how); HandshakeError,
    OSError or ValueError (a connection ``auth`` may not make) if not."""
    mode = auth.mode(url)
    stream = await open_stream(url)
    conn = None
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            if mode == "tls":
                stream = await tls.client(stream, auth.keys, parse_url(url)[1][0])
            conn = FramedStream(stream)
            hello = await conn.receive_obj()
            if not isinstance(hello, dict) or hello.get("proto") != PROTO or hello.get("version") != VERSION:
                raise HandshakeError(f"{url}: not a ukernel-rpc/{VERSION} server: {hello!r:.200}")
            await _answer(conn, url, hello, auth.secret if mode == "secret" else None, trace)
    except trio.BrokenResourceError as exc:  # TLS refused, either way (a TLS 1.3 client learns it on its first read)
        await _abort(conn, stream)
        why = auth.keys.explain(exc, "the server") if mode == "tls" else f"handshake failed: {exc}"
        raise HandshakeError(f"{url}: {why}") from None
    except trio.TooSlowError:
        await _abort(conn, stream)
        hint = " (does it serve TLS? then give --tls DIR)" if mode == "secret" and url.startswith("tcp:") else ""
        raise HandshakeError(f"{url}: handshake failed: no answer in {HANDSHAKE_TIMEOUT:g} s{hint}") from None
    except EOFError:
        await _abort(conn, stream)
        hint = " (does it serve TLS? then give --tls DIR)" if mode == "secret" and url.startswith("tcp:") else ""
        raise HandshakeError(f"{url}: handshake failed: the server hung up{hint}") from None
    except ValueError as exc:
        await _abort(conn, stream)
        raise HandshakeError(f"{url}: handshake failed: {exc}") from None
    except BaseException:
        await _abort(conn, stream)
        raise
    node, instance, services = hello.get("node"), hello.get("instance"), hello.get("services")
    return conn, Peer(
        node if isinstance(node, str) else url,
        instance if isinstance(instance, str) else "",
        services=services if isinstance(services, dict) else {},
    )


async def _answer(conn: FramedStream, url: str, hello: dict, secret: bytes | None, trace: bool) -> None:
    """The client's half after the hello: prove ourselves, check the server's proof, bind the session."""
    answer: dict[str, Any] = {"version": VERSION}
    if secret is not None:
        server_nonce = hello.get("nonce")
        if not isinstance(server_nonce, bytes):
            raise HandshakeError(f"{url}: no nonce in the server's hello")
        nonce = secrets.token_bytes(NONCE_SIZE)
        answer |= {"nonce": nonce, "mac": handshake_mac(secret, "client", _digest(hello), nonce)}
    if trace:
        answer["trace"] = True
    await conn.send_obj(answer)
    verdict = await conn.receive_obj()
    if not (isinstance(verdict, dict) and verdict.get("ok") is True):
        why = verdict.get("error") if isinstance(verdict, dict) else verdict
        raise HandshakeError(f"{url}: refused: {why}")
    if secret is None:
        return
    transcript = _digest(hello, answer)
    mac = verdict.get("mac")
    if not isinstance(mac, bytes) or not hmac.compare_digest(mac, handshake_mac(secret, "server", transcript)):
        raise HandshakeError(f"{url}: the server does not know our secret (bad HMAC in its verdict)")
    conn.start_records(FrameMac(handshake_mac(secret, "c2s", transcript), handshake_mac(secret, "s2c", transcript)))


async def _abort(conn: FramedStream | None, stream: trio.abc.Stream) -> None:
    with trio.CancelScope(shield=True):
        if conn is not None:
            await conn.aclose()
        else:
            await trio.aclose_forcefully(stream)


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
