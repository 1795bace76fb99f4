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

Nothing a peer sends can stop the node: a frame that is not msgpack, too
large, or not a message at all ends that peer's connection (logged); an
unknown service or op, or bad arguments, get an error reply.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import abi
from ..trace import Event, Tracer
from . import protocol, tcp
from .endpoint import TRACE_METHOD, RemoteEndpoint
from .local import HostedInbox
from .router import BootError, Router
from .service import ReplyFn, Service

log = logging.getLogger("ukernel.tcp")


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
    """One authenticated connection: its writer, its bound on requests, its trace relay."""

    conn: tcp.FramedStream
    name: str
    relay: bool = False
    slots: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(tcp.MAX_IN_FLIGHT))
    events: list[Event] = field(default_factory=list)  # trace events owed, sent before the next reply
    closed: bool = False

    async def send_reply(self, frame: bytes) -> None:
        if self.closed:
            return  # the caller is gone: the reply is dropped
        if self.events:
            events, self.events = self.events, []
            frame = b"".join(protocol.encode_notification(TRACE_METHOD, e, {}) for e in events) + frame
        try:
            await self.conn.send_frame(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class RelayTracer(Tracer):
    """The node's tracer: each event goes to the peer whose request caused it (if it asked)."""

    def __init__(self, peers: dict[int, _Peer]):
        super().__init__()
        self.peers = peers
        self.relay_of: dict[int, int] = {}  # msgid of our request in flight -> peer key
        self._target: int | None = None
        self.add_sink(self._sink)

    def message(self, kind: str, src: str, dst: str, op: str, msgid: int, meta: dict, **fields: Any) -> None:
        target = meta.get("relay")
        if kind == "request":
            self.relay_of[msgid] = target
        else:
            self.relay_of.pop(msgid, None)
        self._target = target
        try:
            super().message(kind, src, dst, op, msgid, meta, **fields)
        finally:
            self._target = None

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
    """The services of one ``ukernel serve``, their router, and the peers talking to them."""

    def __init__(
        self,
        services: list[Service],
        auth: tcp.Auth,
        *,
        mode: str = "secret",
        name: str = "",
        remote: dict[str, str] | None = None,
        settings: dict[str, dict] | None = None,
        heartbeat: float = 1.0,
        timeout: float = 5.0,
    ):
        self.services, self.auth, self.mode, self.name = services, auth, mode, name  # mode: tcp.Auth.mode
        #: what the handshake says each hosted service runs with (None: not told)
        self.settings = {s.name: (settings or {}).get(s.name) for s in services}
        self.remote = dict(remote or {})
        self.heartbeat, self.timeout = heartbeat, timeout
        self.instance = secrets.token_hex(8)
        self.peers: dict[int, _Peer] = {}
        self._peer_keys = itertools.count(1)
        self.tracer = RelayTracer(self.peers)
        self.router = Router(self.tracer)
        self.inboxes: dict[str, HostedInbox] = {}
        check_hosted(services, self.remote)

    async def start(self, nursery: trio.Nursery) -> None:
        """The hosted services' loops, and connections to the callees served elsewhere."""
        hosted = {s.name for s in self.services}
        for service in self.services:
            inbox = HostedInbox(service)
            service.router = self.router
            self.router.attach(service.name, inbox, service.calls)
            self.inboxes[service.name] = inbox
            nursery.start_soon(inbox.serve)
        callees = sorted({c for s in self.services for c in s.calls} - hosted)
        for name in callees:
            endpoint = RemoteEndpoint(
                name,
                self.remote[name],
                self.auth,
                heartbeat=self.heartbeat,
                timeout=self.timeout,
                tracer=self.tracer,
                new_msgid=self.router.new_msgid,
                forwarding=True,
            )
            await endpoint.start(nursery)
            self.router.attach(name, endpoint, frozenset())  # its own node checks its own calls
            self.tracer.nodes[name] = endpoint.node
        for name in hosted:
            self.tracer.nodes[name] = self.name

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
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _requests(self, peer: _Peer, key: int) -> None:
        while True:
            try:
                obj = await peer.conn.receive_obj()
            except EOFError:
                return
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
        endpoint = self.inboxes.get(service)
        if endpoint is None:
            if reply is not None:
                here = " ".join(sorted(self.inboxes))
                error = protocol.error_map(abi.ENOSYS, f"no service {service!r} here (this node serves {here})")
                await reply(protocol.encode_response(obj[1], error, None))
            return
        if request and op == "ping":  # the heartbeat: answered by the connection, so a busy service is not dead
            await reply(protocol.encode_response(obj[1], None, service))
            return
        params = obj[-1]
        if isinstance(params, list) and len(params) == 2 and isinstance(params[1], dict):
            if peer.relay:
                params[1]["relay"] = key  # where the events this request causes go
            else:
                params[1].pop("relay", None)
        await endpoint.post(obj, reply)  # decoded: the service does not decode it again (HostedInbox)


def _kind(obj: Any) -> int | None:
    """REQUEST, RESPONSE or NOTIFY for a well-formed envelope; None for anything else."""
    if not isinstance(obj, list) or not obj:
        return None
    if obj[0] == protocol.REQUEST and len(obj) == 4 and isinstance(obj[1], int) and isinstance(obj[2], str):
        return protocol.REQUEST
    if obj[0] == protocol.NOTIFY and len(obj) == 3 and isinstance(obj[1], str):
        return protocol.NOTIFY
    if obj[0] == protocol.RESPONSE and len(obj) == 4:
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
    services: list[Service],
    listen: str = "tcp://127.0.0.1:0",
    auth: tcp.Auth | None = None,
    *,
    remote: dict[str, str] | None = None,
    settings: dict[str, dict] | None = None,
    name: str | None = None,
    heartbeat: float = 1.0,
    timeout: float = 5.0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``services`` and answer their requests from peers that ``auth`` authenticates (TLS
    or the secret, as auth.mode(listen) says), until cancelled.

    ``settings`` (service name -> services.settings_of) is what the handshake
    says each was built with; a kernel refuses a service that takes settings
    and is not said to run with its own. ``task_status.started`` gets the
    address actually listened on (the port chosen for ``tcp://HOST:0``); it
    is also the node's name unless ``name``.
    """
    if auth is None:
        raise ValueError("serve_services needs credentials (tcp.Auth)")
    mode = auth.mode(listen)  # ValueError: plain TCP without --insecure, or off loopback
    node = Node(services, auth, mode=mode, remote=remote, settings=settings, heartbeat=heartbeat, timeout=timeout)
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
