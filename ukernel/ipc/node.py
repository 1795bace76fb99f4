"""A node: services hosted for kernels in other processes (``ukernel serve``).

The node runs its services as an embedded kernel does (an inbox each, one
router between them) and answers requests from authenticated peers. A
hosted service's callees are reached wherever they are: hosted here too
(the node's router delivers locally) or served elsewhere (``remote``: a
RemoteEndpoint, as the kernel uses).

Tracing: a peer that asked for it in the handshake (``"trace": true``)
gets, as notifications ``[2, "ukernel.trace", [event, {}]]`` sent just
before the reply they belong to, the events of the messages its request
caused here (a vfs handler calling mm). The kernel puts them in its own
trace, so a distributed run traces what an embedded one does.

Settings: the handshake tells every peer which services the node hosts and
the settings each was built with (``settings``, from services.settings_of),
so a kernel can refuse a service that does not run as it was asked to.

Sessions (session.py): each kernel gets its own instances of the hosted
services, named by the id it binds with ``ukernel.session`` (first request
on a connection; a connection that sends none gets a session of its own),
reclaimed ``grace`` seconds after its last connection went (at once after
``ukernel.end``). A node given service *instances* instead of a factory
shares them between all its peers (one session: a test's own objects).
The node's own ops, under the service name ``ukernel``:

    ukernel.session     {"id": str, "timeout": seconds | nil} -> {"session", "resumed", "grace"}
    ukernel.end         {"id": str}: the kernel is done (notification or request)
    ukernel.accounting  {} -> sessions live, ended, reclaimed, what reclaimed ones held, what live ones hold

A peer that gave a ``timeout`` and is silent that long is dropped, as it would
drop us. Messages over one frame come in ``ukernel.chunk`` pieces (chunks.py).

Nothing a peer sends can stop the node: a frame that is not msgpack, too
large, or not a message at all ends that peer's connection (logged); an
unknown service or op, or bad arguments, get an error reply; a reply or
trace event msgpack cannot carry is EIO to its caller (Service._encode_reply)
or left out (a trace event), never an exception in the node.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import abi
from ..trace import Event, Tracer
from . import chunks, protocol, tcp
from .endpoint import TRACE_METHOD, RemoteEndpoint
from .router import BootError
from .service import ReplyFn, Service
from .session import DEFAULT_GRACE, Session, SessionTable

log = logging.getLogger("ukernel.tcp")

NODE_SERVICE = "ukernel"  # the service name of the node's own ops (session, end, accounting)
MAX_SESSION_ID = 128


def check_hosted(services: Iterable[Service], remote: Iterable[str] = ()) -> None:
    """Every callee of a hosted service must be hosted here or named in ``remote``."""
    services = list(services)
    names = {s.name for s in services} | set(remote)
    for service in services:
        missing = sorted(service.calls - names)
        if missing:
            raise BootError(
                f"{service.name} calls {', '.join(missing)}: serve {' '.join(sorted(names | set(missing)))} "
                f"together, or name where they are (--remote {missing[0]}=URL)"
            )


@dataclass(eq=False)
class _Peer:
    """One authenticated connection: its writer, its bound on requests, its trace relay, its session."""

    conn: tcp.FramedStream
    name: str
    relay: bool = False
    slots: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(tcp.MAX_IN_FLIGHT))
    events: list[Event] = field(default_factory=list)  # trace events owed, sent before the next reply
    closed: bool = False
    session: Session | None = None  # the kernel state its requests reach (bound at its first)
    timeout: float | None = None  # silence after which it is lost (the rpc_timeout it said at bind)
    heard: float = 0.0  # trio time of its last message (watched once it gave a timeout)
    receiving: bool = False  # its reader waits in receive_obj (where silence may cut it)
    reader: trio.CancelScope | None = None  # cancelled when it was silent for timeout
    nursery: trio.Nursery | None = None  # where its silence is watched
    joiner: chunks.Joiner = field(default_factory=chunks.Joiner)  # its messages arriving in chunks
    splitter: chunks.Splitter = field(default_factory=chunks.Splitter)  # our replies too large for a frame

    async def send_reply(self, frame: bytes) -> None:
        if self.closed:
            return  # the caller is gone: the reply is dropped
        head = b""
        if self.events:
            events, self.events = self.events, []
            head = b"".join(_encode_events(events, self.name))
        try:
            if len(frame) <= chunks.CHUNK_SIZE:
                await self.conn.send_frame(head + frame)
                return
            if head:
                await self.conn.send_frame(head)
            for piece in self.splitter.frames(frame):
                await self.conn.send_frame(piece)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _encode_events(events: list[Event], peer: str) -> Iterator[bytes]:
    """The trace notifications owed to a peer; an event msgpack cannot carry (a service's
    own event with a set in it) is left out and logged, never raised into the service."""
    for event in events:
        try:
            yield protocol.encode_notification(TRACE_METHOD, event, {})
        except (TypeError, ValueError, OverflowError) as exc:
            log.warning("ukernel: a trace event for %s msgpack cannot carry was left out: %s", peer, exc)


class RelayTracer(Tracer):
    """The node's tracer: each event goes to the peer whose request caused it (if it asked)."""

    def __init__(self, peers: dict[int, _Peer]):
        super().__init__()
        self.peers = peers
        self.relay_of: dict[int, int] = {}  # msgid of our request in flight -> peer key
        self._target: int | None = None
        self.add_sink(self._sink)

    def request(self, src: str, dst: str, op: str, msgid: int, meta: dict, args: Any, kind: str = "request") -> None:
        self._target = self._relay(kind, msgid, meta)
        try:
            super().request(src, dst, op, msgid, meta, args, kind)
        finally:
            self._target = None

    def reply(
        self,
        src: str,
        dst: str,
        op: str,
        msgid: int,
        meta: dict,
        result: Any,
        error: dict | None,
        dur_us: int | None,
        kind: str = "reply",
    ) -> None:
        self._target = self._relay(kind, msgid, meta)
        try:
            super().reply(src, dst, op, msgid, meta, result, error, dur_us, kind)
        finally:
            self._target = None

    def _relay(self, kind: str, msgid: int, meta: dict) -> int | None:
        """The peer a message's events go to (its meta says); a request of ours in flight
        remembers it for the events it causes further on, until its reply."""
        target = meta.get("relay")
        if kind == "request":
            self.relay_of[msgid] = target
        else:
            self.relay_of.pop(msgid, None)
        return target

    def service_event(self, type_: str, src: str, op: str, cause: int | None, meta: dict, /, **fields: Any) -> None:
        """A service's own event (a page fault) goes where the request it serves came from."""
        self._target = meta.get("relay")
        try:
            super().service_event(type_, src, op, cause, meta, **fields)
        finally:
            self._target = None

    def _sink(self, event: Event) -> None:
        # from message(): the request being served says where; relayed from further on:
        # the cause is one of our requests, which remembers it
        target = self._target if self._target is not None else self.relay_of.get(event.get("cause"))
        peer = self.peers.get(target)
        if peer is not None and peer.relay and not peer.closed:
            peer.events.append(dict(event))


class Node:
    """The services of one ``ukernel serve``, the kernels' sessions of them, and the peers talking to them."""

    def __init__(
        self,
        services: list[Service] | Callable[[], list[Service]],
        auth: tcp.Auth,
        *,
        mode: str = "secret",
        name: str = "",
        remote: dict[str, str] | None = None,
        settings: dict[str, dict] | None = None,
        heartbeat: float = 1.0,
        timeout: float = 5.0,
        grace: float = DEFAULT_GRACE,
    ):
        self.auth, self.mode, self.name = auth, mode, name  # mode: tcp.Auth.mode
        self.peers: dict[int, _Peer] = {}
        self._peer_keys = itertools.count(1)
        self.sessions = SessionTable(services, grace, self._tracer, self._callees)
        self.hosted = self.sessions.hosted
        #: what the handshake says each hosted service runs with (None: not told)
        self.settings = {name: (settings or {}).get(name) for name in self.hosted}
        self.remote = dict(remote or {})
        self.heartbeat, self.timeout = heartbeat, timeout
        self.instance = secrets.token_hex(8)
        check_hosted(self.sessions.spare, self.remote)

    async def start(self, nursery: trio.Nursery) -> None:
        """Check the callees served elsewhere answer (a BootError now, not at a kernel's first
        request); a node given instances starts its one shared session."""
        await self.sessions.start(nursery, f"shared-{self.instance}")
        if self.sessions.shared is not None:
            return
        for callee in self._callee_names():
            try:
                conn, _ = await tcp.dial(self.remote[callee], self.auth)
            except (OSError, ValueError) as exc:
                url = self.remote[callee]
                raise BootError(f"remote: {callee} at {url}: {tcp.dial_failure(url, callee, exc)}") from exc
            await conn.aclose()

    def _callee_names(self) -> list[str]:
        return sorted({c for calls in self.hosted.values() for c in calls} - set(self.hosted))

    def _tracer(self) -> RelayTracer:
        """A new session's tracer: its events go to the peer whose request caused them."""
        tracer = RelayTracer(self.peers)
        for name in self.hosted:
            tracer.nodes[name] = self.name
        return tracer

    def _callees(self, session: Session) -> list[RemoteEndpoint]:
        """The connections of one session to the callees served elsewhere: they name the
        kernel's session there too, so what it reaches directly and through us is one state."""
        return [
            RemoteEndpoint(
                name,
                self.remote[name],
                self.auth,
                heartbeat=self.heartbeat,
                timeout=self.timeout,
                tracer=session.tracer,
                new_msgid=session.router.new_msgid,
                forwarding=True,
                session=session.id,
            )
            for name in self._callee_names()
        ]

    # --- connections ----------------------------------------------------------------------------
    async def serve_connection(self, stream: trio.abc.Stream) -> None:
        """One peer, from the handshake to the end: requests in, replies out, never a crash."""
        tcp.set_nodelay(stream)
        name = _peer_name(stream)
        try:
            conn, hello = await tcp.accept(stream, self.auth, self.mode, self.name, self.instance, self.settings)
        except tcp.HandshakeError as exc:
            log.warning("ukernel: refused peer %s: %s", name, exc)
            return
        try:
            peer = _Peer(conn, name, relay=hello.trace)
            key = next(self._peer_keys)
            self.peers[key] = peer
            try:
                await self._requests(peer, key)
            finally:
                peer.closed = True
                del self.peers[key]
                if peer.session is not None:
                    self.sessions.leave(peer.session)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _requests(self, peer: _Peer, key: int) -> None:
        """The peer's messages until it leaves, breaks the protocol, or (if it said its
        rpc_timeout when it bound its session) is silent that long (``_silence``)."""
        async with trio.open_nursery() as nursery:
            peer.nursery = nursery
            with trio.CancelScope() as peer.reader:
                await self._messages(peer, key)
            nursery.cancel_scope.cancel()
        if peer.reader.cancelled_caught:
            log.warning("ukernel: dropping peer %s: silent for %g s (its rpc_timeout)", peer.name, peer.timeout)

    async def _messages(self, peer: _Peer, key: int) -> None:
        conn = peer.conn
        while True:
            try:
                peer.receiving = True
                obj = await conn.receive_obj()
                peer.receiving = False
                if peer.reader.cancel_called:
                    return  # silence was declared as this came: the peer is dropped all the same
                peer.heard = trio.current_time()
                if chunks.is_chunk(obj):
                    obj = peer.joiner.feed(obj)
                    if obj is None:
                        continue
            except (EOFError, trio.ClosedResourceError):
                return  # gone
            except (ValueError, trio.BrokenResourceError) as exc:  # a bad record (MAC, TLS) too
                log.warning("ukernel: dropping peer %s: %s", peer.name, tcp.why(exc))
                return
            kind = _kind(obj)
            if kind is None:
                log.warning("ukernel: dropping peer %s: not a MessagePack-RPC message: %.80r", peer.name, obj)
                return
            if kind == protocol.RESPONSE:
                continue  # we sent this peer no requests
            await self._deliver(peer, key, obj)

    async def _silence(self, peer: _Peer) -> None:
        """Drop ``peer`` once nothing came from it for its timeout: by cancelling its reader,
        and only while the reader waits in receive_obj, so no message is cut mid-delivery
        (a reader busy delivering is not a silent peer). No cost per message but a clock read."""
        deadline = peer.heard + peer.timeout
        while True:
            await trio.sleep_until(deadline)
            now = trio.current_time()
            if now - peer.heard < peer.timeout:
                deadline = peer.heard + peer.timeout  # it spoke meanwhile
            elif not peer.receiving:
                deadline = now + peer.timeout / 2  # we are busy delivering, it is not silent: look again
            else:
                peer.reader.cancel()
                return

    async def _deliver(self, peer: _Peer, key: int, obj: list) -> None:
        """Hand one request or notification to its service's inbox (or answer it here)."""
        request = obj[0] == protocol.REQUEST
        method = obj[2] if request else obj[1]
        service, _, op = method.partition(".")
        reply = None
        if request:
            try:
                peer.slots.acquire_nowait()  # no scheduler trip while slots are free
            except trio.WouldBlock:
                await peer.slots.acquire()
            reply = _reply_once(peer, obj[1])
        if service == NODE_SERVICE:
            await self._node_op(peer, op, obj[-1], obj[1] if request else None, reply)
            return
        if service not in self.hosted:
            if reply is not None:
                here = " ".join(sorted(self.hosted))
                error = protocol.error_map(abi.ENOSYS, f"no service {service!r} here (this node serves {here})")
                await reply(protocol.encode_response(obj[1], error, None))
            return
        if request and op == "ping":  # the heartbeat: answered by the connection, so a busy service is not dead
            await reply(protocol.encode_response(obj[1], None, service))
            return
        if peer.session is None:
            try:
                await self._bind(peer, None)
            except (BootError, OSError) as exc:
                if reply is not None:
                    await reply(protocol.encode_response(obj[1], _error_of(exc), None))
                return
        params = obj[-1]
        if isinstance(params, list) and len(params) == 2 and isinstance(params[1], dict):
            if peer.relay:
                params[1]["relay"] = key  # where the events this request causes go
            else:
                params[1].pop("relay", None)
        await peer.session.inboxes[service].post(obj, reply)  # decoded: not decoded again (HostedInbox)

    async def _bind(self, peer: _Peer, session_id: str | None) -> bool:
        """``peer``'s requests reach session ``session_id`` (a new one for None) from now;
        whether it was there already. BootError if a callee cannot be reached."""
        session, resumed = await self.sessions.get(session_id)
        if peer.session is not session:
            if peer.session is not None:
                self.sessions.leave(peer.session)
            self.sessions.join(session)
            peer.session = session
        return resumed

    async def _node_op(self, peer: _Peer, op: str, params: Any, msgid: int | None, reply: ReplyFn | None) -> None:
        """``ukernel.session``, ``ukernel.end``, ``ukernel.accounting``: the node's own ops."""
        args = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else params
        try:
            if not isinstance(args, dict):
                raise abi.kernel_error(abi.EINVAL, f"ukernel.{op}: params must be [args, meta] with args a map")
            result = await self._node_call(peer, op, args)
        except (OSError, BootError) as exc:
            error, result = _error_of(exc), None
        else:
            error = None
        if reply is not None:
            await reply(protocol.encode_response(msgid, error, result))

    async def _node_call(self, peer: _Peer, op: str, args: dict) -> Any:
        if op == "session":
            session_id, timeout = args.get("id"), args.get("timeout")
            if (
                type(session_id) is not str
                or not 0 < len(session_id) <= MAX_SESSION_ID
                or args.keys() - {"id", "timeout"}
            ):
                raise abi.kernel_error(
                    abi.EINVAL, f"ukernel.session takes id (a str of 1 to {MAX_SESSION_ID}) and timeout"
                )
            if timeout is not None and not (type(timeout) in (int, float) and 0 < timeout < 1e9):
                raise abi.kernel_error(abi.EINVAL, "ukernel.session: timeout must be positive seconds or nil")
            resumed = await self._bind(peer, session_id)
            if timeout is not None and peer.timeout is None:
                peer.heard = trio.current_time()
                peer.nursery.start_soon(self._silence, peer)
            peer.timeout = float(timeout) if timeout is not None else peer.timeout
            return {"session": session_id, "resumed": resumed, "grace": self.sessions.grace}
        if op == "end":
            if peer.session is not None and args.get("id") == peer.session.id:
                peer.session.ending = True
            return None
        if op == "accounting":
            return await self.sessions.accounting()
        if op == "ping":
            return NODE_SERVICE
        raise abi.kernel_error(abi.ENOSYS, f"the node has no op {op!r} (session, end, accounting, ping)")


def _error_of(exc: OSError | BootError) -> dict:
    """The error reply when a node op or a session fails: its errno, or EIO for a callee
    out of reach (a BootError: it says where and why)."""
    if isinstance(exc, OSError):
        return protocol.error_from_exception(exc)
    return protocol.error_map(abi.EIO, str(exc))


def _kind(obj: Any) -> int | None:
    """REQUEST, RESPONSE or NOTIFY for a well-formed envelope; None for anything else."""
    if not isinstance(obj, list) or not obj:
        return None
    if obj[0] == protocol.REQUEST and len(obj) == 4 and isinstance(obj[1], int) and isinstance(obj[2], str):
        return protocol.REQUEST
    if obj[0] == protocol.NOTIFY and len(obj) == 3 and isinstance(obj[1], str):
        return protocol.NOTIFY
    if obj[0] == protocol.RESPONSE and len(obj) in (4, 5):  # (a fifth: the reply meta)
        return protocol.RESPONSE
    return None


def _reply_once(peer: _Peer, msgid: int) -> ReplyFn:
    """The reply function of one request: frees its in-flight slot, answers at most once."""
    answered = False

    async def reply(frame: bytes) -> None:
        nonlocal answered
        if answered:
            return
        answered = True
        peer.slots.release()
        await peer.send_reply(frame)

    return reply


def _peer_name(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    try:
        return (str(sock.getpeername()) or "on the Unix socket") if sock is not None else "?"
    except OSError:
        return "?"


async def open_listeners(listen: str) -> tuple[list[trio.abc.Listener], str]:
    """Listeners for ``tcp://HOST:PORT`` or ``unix:/PATH``, and the address really bound."""
    kind, where = tcp.parse_url(listen)
    if kind == "tcp":
        listeners = await trio.open_tcp_listeners(where[1], host=where[0])
        host, port = listeners[0].socket.getsockname()[:2]
        return listeners, f"tcp://{host}:{port}"
    await _remove_stale_socket(where)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(where)
    sock.listen()
    return [trio.SocketListener(sock)], f"unix:{where}"


async def _remove_stale_socket(path: str) -> None:
    """A socket file left by a killed server (nobody accepts on it) is removed, so a restart can bind."""
    try:
        if not stat.S_ISSOCK((await trio.Path(path).lstat()).st_mode):
            return  # not a socket: bind fails and says so
    except FileNotFoundError:
        return
    probe = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await probe.connect(path)
    except ConnectionRefusedError:
        await trio.Path(path).unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        probe.close()


async def serve_services(
    services: list[Service] | Callable[[], list[Service]],
    listen: str = "tcp://127.0.0.1:0",
    auth: tcp.Auth | None = None,
    *,
    remote: dict[str, str] | None = None,
    settings: dict[str, dict] | None = None,
    name: str | None = None,
    heartbeat: float = 1.0,
    timeout: float = 5.0,
    grace: float = DEFAULT_GRACE,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``services`` and answer their requests from peers that ``auth`` authenticates (TLS
    or the secret, as auth.mode(listen) says), until cancelled.

    ``services`` is a factory (each kernel session gets the services it
    returns, reclaimed ``grace`` seconds after the kernel is lost: what
    ``ukernel serve`` does) or a list of instances every peer shares.

    ``settings`` (service name -> services.settings_of) is what the handshake
    says each was built with; a kernel refuses a service that takes settings
    and is not said to run with its own. ``task_status.started`` gets the
    address actually listened on (the port chosen for ``tcp://HOST:0``); it
    is also the node's name unless ``name``.
    """
    if auth is None:
        raise ValueError("serve_services needs credentials (tcp.Auth)")
    mode = auth.mode(listen)  # ValueError: plain TCP without --insecure, or off loopback
    node = Node(
        services, auth, mode=mode, remote=remote, settings=settings, heartbeat=heartbeat, timeout=timeout, grace=grace
    )
    kind, where = tcp.parse_url(listen)
    async with trio.open_nursery() as nursery:
        listeners, url = await open_listeners(listen)
        node.name = name or url
        try:
            await node.start(nursery)
            await nursery.start(trio.serve_listeners, node.serve_connection, listeners)
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            if kind == "unix":
                with trio.CancelScope(shield=True):
                    await trio.Path(where).unlink(missing_ok=True)
