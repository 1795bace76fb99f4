"""How a router reaches a service served elsewhere: one connection, heartbeats, EIO, redial.

A RemoteEndpoint is what ``Router.attach`` gets for a service in another
process. Requests go out as they come (many in flight, replies matched by
msgid). The connection is watched: every ``heartbeat`` seconds it sends the
service a ``ping`` (answered by the server's connection, so a busy service
does not look dead) and an ``accounting`` (answered by the service, so we
know what it held). If nothing at all arrives for ``timeout`` seconds, or the
connection breaks, the service is *lost*: every call in flight and every call
until it comes back is answered EIO at once, so no syscall waits forever.
Meanwhile the endpoint redials with backoff; when it gets through it logs one
line saying whether the state there survived (the same server instance) or
is gone (a new one), naming what the old one held at its last heartbeat.

Calls are never timed out one by one: a deferred reply (a pipe read, a
wait) may legitimately take forever; only silence of the whole peer counts.

Sessions (session.py): given a ``session`` id (the kernel's, the same for all
its endpoints), every connection binds it first (``ukernel.session``, saying
our ``timeout``), so the node keeps this kernel's state apart from other
kernels' and a redial within the node's grace period finds it again; the log
line after a redial says whether it did. A kernel that ends says
``ukernel.end`` so its state goes at once (a node forwarding for a kernel does
not: the kernel's own connections decide). A message larger than a frame goes
and comes in chunks (chunks.py).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import msgpack
import trio

from .. import abi
from ..trace import Tracer
from . import chunks, protocol, tcp
from .router import BootError
from .service import ReplyFn

log = logging.getLogger("ukernel.remote")

BACKOFF_MIN = 0.05  # seconds before the first redial; doubled up to BACKOFF_MAX
BACKOFF_MAX = 2.0
TRACE_METHOD = "ukernel.trace"  # the notification a server relays trace events with


class RemoteEndpoint:
    """A router endpoint for one service in another process or on another host."""

    def __init__(
        self,
        service: str,
        url: str,
        auth: tcp.Auth,
        *,
        heartbeat: float = 1.0,
        timeout: float = 5.0,
        tracer: Tracer | None = None,
        new_msgid: Callable[[], int] | None = None,
        forwarding: bool = False,
        on_lost: Callable[[str, str], bool] | None = None,
        on_back: Callable[[str, bool], None] | None = None,
        session: str | None = None,
    ):
        if not 0 < heartbeat < timeout:
            raise ValueError(f"heartbeat ({heartbeat} s) must be positive and below rpc_timeout ({timeout} s)")
        self.service, self.url, self.auth = service, url, auth
        self.heartbeat, self.timeout = heartbeat, timeout
        self.tracer, self.new_msgid, self.forwarding = tracer, new_msgid, forwarding
        self.on_lost, self.session = on_lost, session
        self.on_back = on_back  # (service, a new instance?) once redialled: RS restores it (kernel/reincarnation.py)
        self.resumed: bool | None = None  # the node found our session at the last bind (None: not told)
        self._splitter, self._joiner = chunks.Splitter(), chunks.Joiner()
        self.conn: tcp.FramedStream | None = None
        self.peer: tcp.Peer | None = None
        self.lost: str | None = "not connected yet"  # why calls fail, while they do
        self.connected = trio.Event()  # set while connected; a new one after each loss
        self.last_accounting: dict | None = None  # what the service held at the last heartbeat
        self.replies: dict[int, ReplyFn | None] = {}
        self._slots = trio.Semaphore(tcp.MAX_IN_FLIGHT)
        self._beats = itertools.count(-1, -1)  # heartbeat msgids: negative, never the router's
        self._accounting_id: int | None = None
        self._ids: dict[int, int] = {}  # the peer's msgid of a relayed request -> ours
        self._heard = 0.0  # trio time of the last message from the peer

    @property
    def node(self) -> str:
        return self.peer.node if self.peer is not None else self.url

    def _where(self) -> str:
        return self.url if self.node == self.url else f"{self.url} ({self.node})"

    # --- life ---------------------------------------------------------------------------------
    async def start(self, nursery: trio.Nursery) -> None:
        """Dial once (a failure here is a boot error, one line: tcp.dial_failure), then keep
        the connection in ``nursery``."""
        try:
            await self._connect()
        except (OSError, ValueError) as exc:
            raise BootError(
                f"remote: {self.service} at {self.url}: {tcp.dial_failure(self.url, self.service, exc)}"
            ) from exc
        nursery.start_soon(self._supervise)

    async def _connect(self) -> None:
        conn, peer = await tcp.dial(self.url, self.auth, trace=self.tracer is not None)
        try:
            resumed = await self._bind(conn) if self.session is not None else None
        except BaseException:
            with trio.CancelScope(shield=True):
                await conn.aclose()
            raise
        self._joiner = chunks.Joiner()
        self.conn, self.peer, self.lost, self.resumed = conn, peer, None, resumed
        self.connected.set()

    async def _bind(self, conn: tcp.FramedStream) -> bool | None:
        """Name our session on a new connection, before any other request; whether the node
        had it (None: a node without sessions). HandshakeError if the node refuses it."""
        msgid = next(self._beats)
        args = {"id": self.session, "timeout": self.timeout}
        try:
            with trio.fail_after(tcp.HANDSHAKE_TIMEOUT):
                await conn.send_frame(protocol.encode_request(msgid, "ukernel.session", args, {}))
                while True:
                    obj = await conn.receive_obj()
                    if isinstance(obj, list) and len(obj) == 4 and obj[0] == protocol.RESPONSE and obj[1] == msgid:
                        break
        except (EOFError, ValueError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise tcp.HandshakeError(f"{self.url}: session not bound: {exc or type(exc).__name__}") from None
        error, result = obj[2], obj[3]
        if isinstance(error, dict):
            if error.get("errno") == abi.ENOSYS:
                return None
            raise tcp.HandshakeError(f"{self.url}: session refused: {error.get('message')}")
        return result.get("resumed") is True if isinstance(result, dict) else None

    async def _end(self, conn: tcp.FramedStream) -> None:
        """Tell the node this kernel is done with its session (best effort: it may be gone)."""
        if self.session is None or self.forwarding:
            return
        with trio.move_on_after(1):
            try:
                await conn.send_frame(protocol.encode_notification("ukernel.end", {"id": self.session}, {}))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _supervise(self) -> None:
        """Serve the connection until it is lost, fail what was waiting, redial; forever."""
        try:
            while True:
                reason = await self._watch()
                await self._lose(reason)
                await self._redial()
        finally:
            if self.conn is not None:
                with trio.CancelScope(shield=True):
                    await self._end(self.conn)
                    await self.conn.aclose()

    async def _watch(self) -> str:
        """The reader and the heartbeat of one connection; returns why it ended."""
        conn = self.conn
        outcome: list[str] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                outcome.append(await self._read(conn))
                nursery.cancel_scope.cancel()

            nursery.start_soon(read)
            nursery.start_soon(self._beat, conn)
        return outcome[0] if outcome else "connection closed"

    async def _read(self, conn: tcp.FramedStream) -> str:
        """Dispatch what arrives until the connection ends or falls silent for ``timeout``.

        Silence is watched by one deadline, moved on only when it passes while messages
        still came: a fresh ``move_on_after`` around every receive costs more than the
        message's own handling. The reader only waits in ``receive_obj``, so that is
        where the deadline lands (replies to the router never wait).
        """
        self._heard = trio.current_time()
        while True:
            with trio.CancelScope(deadline=self._heard + self.timeout):
                try:
                    while True:
                        obj = await conn.receive_obj()
                        self._heard = trio.current_time()
                        await self._dispatch(obj)
                except EOFError:
                    return "connection closed by the server"
                except (ValueError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    return tcp.why(exc)
            if trio.current_time() - self._heard >= self.timeout:
                return f"no answer to heartbeats for {self.timeout:g} s"

    async def _beat(self, conn: tcp.FramedStream) -> None:
        """ping every heartbeat, so silence means death; accounting, so a loss can say what went."""
        while True:
            await trio.sleep(self.heartbeat)
            frames = [protocol.encode_request(next(self._beats), f"{self.service}.ping", {}, {})]
            if self._accounting_id is None:
                self._accounting_id = next(self._beats)
                frames.append(protocol.encode_request(self._accounting_id, f"{self.service}.accounting", {}, {}))
            try:
                await conn.send_frame(b"".join(frames))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the reader sees the end

    async def _dispatch(self, obj: Any) -> None:
        if not isinstance(obj, list) or not obj:
            return
        if chunks.is_chunk(obj):
            obj = self._joiner.feed(obj)  # a ValueError ends the connection (_read)
            if not isinstance(obj, list) or not obj:
                return
        if obj[0] == protocol.NOTIFY and len(obj) == 3 and obj[1] == TRACE_METHOD:
            self._relay(obj[2])
            return
        if obj[0] != protocol.RESPONSE or len(obj) not in (4, 5) or not isinstance(obj[1], int):
            return
        msgid = obj[1]
        if msgid < 0:
            if msgid == self._accounting_id:
                self._accounting_id = None
                if obj[2] is None and isinstance(obj[3], dict):
                    self.last_accounting = obj[3]
            return
        if msgid not in self.replies:
            return
        reply = self.replies.pop(msgid)
        self._slots.release()
        deliver = getattr(reply, "deliver", None)
        if deliver is not None:  # the router's: takes the decoded response (no re-encode, no decode)
            if len(obj) == 5 and hasattr(reply, "reply_meta"):  # the reply meta explore asked for
                reply.reply_meta(msgid, obj[4])
            deliver(msgid, obj[2], obj[3])
        elif reply is not None:
            with trio.CancelScope(shield=True):  # a reply function that waits: not cut by the silence deadline
                await reply(msgpack.packb(obj, use_bin_type=True))

    async def _lose(self, reason: str) -> None:
        """The connection is gone: every call waiting for it is answered EIO now."""
        self.lost = f"{self.service} at {self._where()}: {reason}"
        # at once: a call sent from now on fails with EIO (or is held for RS) before the close is done
        held = self.on_lost is not None and self.on_lost(self.service, self.lost)
        self.connected = trio.Event()
        conn, self.conn = self.conn, None
        self._accounting_id = None
        self._ids.clear()
        with trio.CancelScope(shield=True):
            if conn is not None:
                await conn.aclose()
            pending, self.replies = self.replies, {}
            fate = "held for its restart" if held else "fail with EIO"
            log.warning("ukernel: lost %s; %d calls in flight %s", self.lost, len(pending), fate)
            for msgid, reply in pending.items():
                self._slots.release()
                if not held:  # else RS sends them again once the service is back (kernel/reincarnation.py)
                    await self._fail(msgid, reply)

    async def _redial(self) -> None:
        """Dial with backoff until the server is back; then say what state survived."""
        old, delay = self.peer, BACKOFF_MIN
        while True:
            await trio.sleep(delay)
            try:
                await self._connect()
            except (OSError, tcp.HandshakeError) as exc:
                log.debug("ukernel: redial %s failed: %s", self.url, exc)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            # a new instance, or the same one that reclaimed our session: what it held is gone
            new = not (old is not None and old.instance and old.instance == self.peer.instance) or self.resumed is False
            log.warning("ukernel: reconnected to %s at %s; %s", self.service, self._where(), self._what_was_lost(old))
            if self.on_back is not None:
                self.on_back(self.service, new)
            return

    def _what_was_lost(self, old: tcp.Peer | None) -> str:
        """One sentence: did the state on the other side survive the outage?"""
        same = old is not None and self.peer is not None and old.instance and old.instance == self.peer.instance
        if same and self.resumed is not False:
            return (
                "the same server instance and session: no state lost"
                if self.resumed
                else "the same server instance: no state lost"
            )
        held = {k: v for k, v in (self.last_accounting or {}).items() if v and k != "faults"}
        if self.last_accounting is None:
            what = "what it held is unknown (no heartbeat had answered)"
        elif held:
            what = "its handles are gone: " + ", ".join(f"{v} {k}" for k, v in sorted(held.items()))
        else:
            what = "it held nothing beyond its boot state"
        self.last_accounting = None
        if same:
            return f"the same server instance, but it had reclaimed our session (away past its grace period): all state was lost; {what}"
        return f"a new {self.service} instance: all state of the old one was lost; {what}"

    # --- the router's side ----------------------------------------------------------------------
    async def send(self, frame: bytes, reply: ReplyFn | None) -> None:
        msgid = tcp.request_msgid(frame)
        if msgid is not None:
            if self.conn is None:
                await self._fail(msgid, reply)
                return
            try:
                self._slots.acquire_nowait()  # no scheduler trip while slots are free
            except trio.WouldBlock:
                await self._slots.acquire()
            if self.conn is None:
                self._slots.release()
                await self._fail(msgid, reply)
                return
            self.replies[msgid] = reply
        conn = self.conn
        if conn is None:
            return  # a notification to a lost service: dropped, as on a broken link
        try:
            if len(frame) <= chunks.CHUNK_SIZE:
                await conn.send_frame(frame)
            else:
                for piece in self._splitter.frames(frame):
                    await conn.send_frame(piece)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # the connection broke under this send: the reader sees it too, and _lose answers the
            # call with the others in flight (EIO, or held for RS), never before (self.lost unset)
            pass

    async def _fail(self, msgid: int, reply: ReplyFn | None) -> None:
        if reply is not None:
            error = protocol.error_map(abi.EIO, f"service connection lost ({self.lost})")
            await reply(protocol.encode_response(msgid, error, None))

    async def aclose(self) -> None:
        if self.conn is not None:
            await self.conn.aclose()

    # --- trace events from the other side -------------------------------------------------------
    def _relay(self, params: Any) -> None:
        """A message the served service sent while handling ours (or an event of its own, a
        page fault): into our trace, renumbered.

        The server numbers its own messages; here each gets a msgid of ours, in
        the order they arrive, so a distributed run numbers its messages as an
        embedded one does. ``cause_local`` marks a cause in the server's numbering.
        """
        tracer = self.tracer
        event = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else None
        if tracer is None or not tracer.on or event is None or self.new_msgid is None:
            return
        event = dict(event)
        event.pop("seq", None)
        event.pop("ts", None)
        kind = event.pop("type", "request")
        theirs = event.get("msgid")
        if kind == "request":
            event["msgid"] = self._ids[theirs] = self.new_msgid()
        elif "msgid" in event:  # a service's own event (a fault) has none
            event["msgid"] = self._ids.pop(theirs, theirs)
        if event.pop("cause_local", False):
            event["cause"] = self._ids.get(event.get("cause"), event.get("cause"))
        if self.forwarding:  # a node passing it on: the cause is now in its numbering
            event["cause_local"] = True
        event.setdefault("node", self.node)
        tracer.emit(kind, **event)
