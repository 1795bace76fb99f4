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
from collections.abc import Callable, Iterable
from typing import Any

import trio

from .endpoint import RemoteEndpoint
from .local import HostedInbox
from .router import BootError, Router
from .service import Service

log = logging.getLogger("ukernel.tcp")

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
