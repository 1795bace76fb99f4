"""One kernel's state on a node: its own service instances, router and callees.

A node (node.py) gives every kernel that connects a *session*: the services
it hosts built afresh for that kernel, so two kernels sharing one served vfs
have separate consoles, files and handles, as two machines would. A kernel
names its session at connect (``ukernel.session``, an id it keeps across
redials), so one that reconnects within the node's grace period finds its
state; its connections to several services of one node, and a node forwarding
for it to another node, name the same id and so share one state there, as
the services of an embedded kernel do.

When a session's last connection is gone the node waits ``grace`` seconds
for the kernel to come back, then *reclaims* it: asks each service what it
held (its ``accounting``), logs that, adds it to the node's totals, and
cancels the session's tasks. A kernel that ends cleanly says so
(``ukernel.end``) and its session goes as soon as its connections do.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import trio

from .. import abi
from .endpoint import RemoteEndpoint
from .local import HostedInbox
from .router import BootError, Router
from .service import Service

log = logging.getLogger("ukernel.tcp")

DEFAULT_GRACE = 30.0  # seconds a lost kernel's session waits for it (Config.session_grace)
MAX_SESSIONS = 256  # live sessions a node keeps: a peer naming ids without end cannot fill its memory
ACCOUNTING_TIMEOUT = 1.0  # seconds a service of a session being reclaimed may take to say what it held


class Session:
    """The services of one kernel on a node, from its first connection to its reclaim."""

    def __init__(
        self, session_id: str, services: list[Service], tracer: Any, *, shared: bool = False, anonymous: bool = False
    ):
        self.id, self.services, self.tracer = session_id, services, tracer
        self.shared = shared  # every peer's (a node given instances): never reclaimed
        self.anonymous = anonymous  # made for a peer that named none: nobody can come back to it
        self.router = Router(tracer)
        self.inboxes: dict[str, HostedInbox] = {}
        self.connections = 0  # peers bound to it now
        self.ending = False  # the kernel said ukernel.end: reclaim once its connections are gone
        self.lost_at: float | None = None  # trio time its last connection went (None while it has one)
        self.waiting: trio.CancelScope | None = None  # the grace timer running, if any
        self._scope = trio.CancelScope()

    async def run(
        self,
        callees: Callable[[Session], Iterable[RemoteEndpoint]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The hosted services' loops and the connections to callees served elsewhere
        (``callees`` makes them for this session), until ``close``."""
        failure: BootError | None = None
        with self._scope:
            async with trio.open_nursery() as nursery:
                for service in self.services:
                    inbox = HostedInbox(service)
                    service.router = self.router
                    self.router.attach(service.name, inbox, service.calls)
                    self.inboxes[service.name] = inbox
                    nursery.start_soon(inbox.serve)
                try:
                    for endpoint in callees(self):
                        await endpoint.start(nursery)
                        self.router.attach(endpoint.service, endpoint, frozenset())  # its node checks its calls
                        self.tracer.nodes[endpoint.service] = endpoint.node
                except BootError as exc:  # a callee is unreachable: this session cannot be made
                    failure = exc
                    nursery.cancel_scope.cancel()
                else:
                    task_status.started()
                    await trio.sleep_forever()
        if failure is not None:
            raise failure  # out of the nursery: the caller of start gets it bare

    async def accounting(self) -> dict[str, dict | None]:
        """What each hosted service holds (None: it did not answer within ACCOUNTING_TIMEOUT)."""
        held: dict[str, dict | None] = {}
        for service in self.services:
            held[service.name] = None
            with trio.move_on_after(ACCOUNTING_TIMEOUT):
                try:
                    held[service.name] = await self.router.call("kernel", service.name, "accounting", {}, {})
                except OSError:
                    pass
        return held

    def close(self) -> None:
        """Cancel its services and callee connections (their ``ukernel.end`` is said on the way)."""
        self._scope.cancel()


class SessionTable:
    """A node's sessions by id: made on a kernel's first bind, reclaimed after the grace period."""

    def __init__(
        self,
        services: list[Service] | Callable[[], list[Service]],
        grace: float,
        tracer: Callable[[], Any],
        callees: Callable[[Session], Iterable[RemoteEndpoint]],
    ):
        if grace < 0:
            raise ValueError(f"session_grace: must be 0 or more seconds, not {grace}")
        #: a factory: each session gets its own services; None: ``spare`` is every peer's
        self.build = services if callable(services) else None
        self.spare: list[Service] | None = services() if callable(services) else list(services)
        self.hosted = {s.name: s.calls for s in self.spare}  # name -> its calls
        self.grace, self.tracer, self.callees = grace, tracer, callees
        self.live: dict[str, Session] = {}
        self.shared: Session | None = None  # the one session of a node given instances
        self.counts = {"ended": 0, "reclaimed": 0}  # sessions gone: said ukernel.end / lost past the grace
        self.reclaimed: dict[str, dict[str, int]] = {}  # service -> count -> what lost sessions held, summed
        self.nursery: trio.Nursery | None = None
        self._opening = trio.Lock()  # one session made at a time: two connections naming one id get one

    async def start(self, nursery: trio.Nursery, shared_id: str) -> None:
        """Sessions run in ``nursery``; a table given instances starts its one shared session."""
        self.nursery = nursery
        if self.build is None:
            self.shared = await self._open(shared_id, shared=True)

    async def _open(self, session_id: str, *, shared: bool = False, anonymous: bool = False) -> Session:
        """A new session: fresh services (the spare first), their loops, their callees."""
        services, self.spare = (self.spare, None) if self.spare is not None else (self.build(), None)
        session = Session(session_id, services, self.tracer(), shared=shared, anonymous=anonymous)
        await self.nursery.start(partial(session.run, self.callees))
        self.live[session_id] = session
        return session

    async def get(self, session_id: str | None) -> tuple[Session, bool]:
        """Session ``session_id`` (made if it is not live; a new anonymous one for None), and
        whether it was live. BootError if a callee of a new one cannot be reached, EAGAIN
        past MAX_SESSIONS."""
        if self.shared is not None:
            return self.shared, True
        async with self._opening:
            session = self.live.get(session_id) if session_id is not None else None
            if session is not None:
                return session, True
            if len(self.live) >= MAX_SESSIONS:
                raise abi.kernel_error(
                    abi.EAGAIN, f"this node has {MAX_SESSIONS} sessions already (kernels lost, or ids without end)"
                )
            if session_id is None:
                return await self._open(secrets.token_hex(8), anonymous=True), False
            return await self._open(session_id), False

    def join(self, session: Session) -> None:
        """One more connection of ``session``: back within the grace period, it stays."""
        session.connections += 1
        session.lost_at = None
        if session.waiting is not None:
            session.waiting.cancel()
            session.waiting = None

    def leave(self, session: Session) -> None:
        """One connection of ``session`` gone; the last one gone starts the grace period."""
        session.connections -= 1
        if session.connections or session.shared:
            return
        session.lost_at = trio.current_time()
        try:
            self.nursery.start_soon(self._expire, session)
        except RuntimeError:
            pass  # the node is shutting down: its sessions go with it

    async def _expire(self, session: Session) -> None:
        """Reclaim ``session`` unless a connection binds it again within the grace period (at
        once if its kernel said ukernel.end, or if nobody can name it again)."""
        delay = 0 if session.ending or session.anonymous else self.grace
        with trio.CancelScope() as waiting:
            session.waiting = waiting
            await trio.sleep(delay)
        if waiting.cancelled_caught or session.connections:
            return
        session.waiting = None
        await self._reclaim(session)

    async def _reclaim(self, session: Session) -> None:
        """Drop a session's state: say what it held, in the log and in the node's accounting."""
        if self.live.get(session.id) is session:
            del self.live[session.id]  # a kernel binding it from now gets a new one
        held = await session.accounting()
        session.close()
        what = describe(held)
        if session.ending:
            self.counts["ended"] += 1
            log.info("ukernel: session %s ended; freed %s", session.id, what)
            return
        self.counts["reclaimed"] += 1
        add_totals(self.reclaimed, held)
        away = trio.current_time() - session.lost_at if session.lost_at is not None else 0.0
        why = "its peer cannot name it again" if session.anonymous else f"grace {self.grace:g} s"
        log.warning("ukernel: reclaimed session %s, lost %.3g s ago (%s): %s", session.id, away, why, what)

    async def accounting(self) -> dict:
        """The node's own: live sessions, sessions gone, what the reclaimed ones held, and
        what the live ones hold now (service -> count -> sum)."""
        held: dict[str, dict[str, int]] = {}
        for session in list(self.live.values()):
            add_totals(held, await session.accounting())
        return {"sessions": len(self.live), **self.counts, "reclaimed_held": self.reclaimed, "held": held}


def describe(held: dict[str, dict | None]) -> str:
    """'mm: 2 mms, 5 frames; vfs: 3 open_files': what a reclaimed session held, nonzero counts only."""
    parts = []
    for name, counts in sorted(held.items()):
        if counts is None:
            parts.append(f"{name}: unknown (no answer)")
            continue
        nonzero = [f"{v} {k}" for k, v in sorted(counts.items()) if isinstance(v, int) and v and k != "faults"]
        if nonzero:
            parts.append(f"{name}: {', '.join(nonzero)}")
    return "; ".join(parts) or "nothing"


def add_totals(totals: dict[str, dict[str, int]], held: dict[str, dict | None]) -> None:
    """Sum what a reclaimed session held into the node's totals (service -> count -> sum)."""
    for name, counts in held.items():
        mine = totals.setdefault(name, {})
        for key, value in (counts or {}).items():
            if type(value) is int:
                mine[key] = mine.get(key, 0) + value
