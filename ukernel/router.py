"""The router: delivers every message to its service and matches the replies.

It is the only path between the kernel and a service, or between two
services, so it is where the call order of DESIGN.md §3 is enforced, where
every message is traced, and where message-level faults are injected.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Protocol

import trio

from . import abi, protocol
from .trace import Tracer


class Endpoint(Protocol):
    async def send(self, frame: bytes, reply: Any) -> None: ...


class BootError(Exception):
    """The services cannot be started as configured (for example a call cycle)."""


def check_call_order(calls: dict[str, frozenset[str]]) -> None:
    """Refuse a call graph with a cycle: a cycle could deadlock two services."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node) :] + [node]
            raise BootError("service call order has a cycle: " + " -> ".join(cycle))
        state[node] = 1
        for nxt in sorted(calls.get(node, ())):
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(calls):
        visit(node, [])


class _Pending:
    __slots__ = ("event", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: protocol.Response | None = None


class Router:
    """Endpoints by service name, the allowed call edges, and replies in flight."""

    def __init__(self, tracer: Tracer):
        self.tracer = tracer
        self.endpoints: dict[str, Endpoint] = {}
        self.calls: dict[str, frozenset[str]] = {"kernel": frozenset()}
        self.pending: dict[int, _Pending] = {}
        self._msgids = itertools.count(1)
        self.fail_nth: dict[int, int] = {}  # nth request -> errno (fault injection)
        self.sent = 0

    def new_msgid(self) -> int:
        """Message ids are shared with syscalls, so ``cause`` links them all."""
        return next(self._msgids)

    def attach(self, name: str, endpoint: Endpoint, calls: frozenset[str]) -> None:
        self.endpoints[name] = endpoint
        self.calls[name] = calls
        self.calls["kernel"] = self.calls["kernel"] | {name}
        check_call_order(self.calls)

    async def call(self, src: str, dst: str, op: str, args: dict, meta: dict, inject: int | None = None) -> Any:
        """Send a request and wait for its reply; an error reply raises OSError.

        ``inject`` (or a ``fail_nth`` entry) answers with that errno instead of
        delivering: fault injection that still shows in the trace.
        """
        if dst not in self.calls.get(src, ()):
            allowed = ", ".join(sorted(self.calls.get(src, ()))) or "nobody"
            raise abi.kernel_error(abi.EPERM, f"{src} may not call {dst} (it may call: {allowed})")
        endpoint = self.endpoints[dst]
        msgid = self.new_msgid()
        self.sent += 1
        tracer = self.tracer
        if tracer.on:
            tracer.message("request", src, dst, op, msgid, meta, args=args)
        started = time.perf_counter()
        injected = inject or self.fail_nth.pop(self.sent, None)
        if injected is not None:
            where = meta.get("step") or f"message {self.sent}"
            error = protocol.error_map(injected, f"{abi.strerror(injected)} (fault injected at {where})")
            response = protocol.Response(msgid, error, None)
        else:
            response = await self._roundtrip(endpoint, msgid, protocol.encode_request(msgid, f"{dst}.{op}", args, meta))
        if tracer.on:
            dur_us = int((time.perf_counter() - started) * 1e6)
            tracer.message(
                "reply", dst, src, op, msgid, meta, result=response.result, error=response.error, dur_us=dur_us
            )
        if response.error is not None:
            raise protocol.oserror_from_map(response.error)
        return response.result

    async def _roundtrip(self, endpoint: Endpoint, msgid: int, frame: bytes) -> protocol.Response:
        slot = _Pending()
        self.pending[msgid] = slot
        try:
            await endpoint.send(frame, self._on_reply)
            await slot.event.wait()
        finally:
            del self.pending[msgid]
        assert slot.response is not None
        return slot.response

    async def _on_reply(self, frame: bytes) -> None:
        msg = protocol.decode(frame)
        if not isinstance(msg, protocol.Response):
            return
        slot = self.pending.get(msg.msgid)
        if slot is not None:  # else the caller was cancelled: the reply is dropped
            slot.response = msg
            slot.event.set()
