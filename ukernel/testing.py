"""Helpers for tests and course work: talk to one service through real messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .ipc.local import open_local
from .ipc.router import Router
from .ipc.service import Service
from .trace import MemorySink, Tracer


class ServiceClient:
    """Sends ``kernel -> service`` requests, as the kernel would."""

    def __init__(self, router: Router, name: str, trace: MemorySink):
        self.router, self.name, self.trace = router, name, trace

    async def call(self, op: str, **args: Any) -> Any:
        return await self.router.call("kernel", self.name, op, args, {})


@asynccontextmanager
async def service_client(*services: Service) -> AsyncIterator[ServiceClient]:
    """Boot the given services alone (the first is the one the client talks to)."""
    tracer = Tracer()
    trace = MemorySink()
    tracer.add_sink(trace)
    router = Router(tracer)
    async with trio.open_nursery() as nursery:
        for service in services:
            endpoint, inbox = open_local()
            service.router = router
            router.attach(service.name, endpoint, service.calls)
            nursery.start_soon(service.serve, inbox)
        yield ServiceClient(router, services[0].name, trace)
        nursery.cancel_scope.cancel()


def syscall_events(trace: list[dict], syscall: str, pid: int | None = None) -> list[dict]:
    """The syscall_enter events of one syscall (optionally of one pid), in order."""
    return [
        e for e in trace if e["type"] == "syscall_enter" and e["op"] == syscall and (pid is None or e["pid"] == pid)
    ]


def route_of(trace: list[dict], syscall: str = "clone", nth: int = 0, pid: int | None = None) -> list[tuple[str, str]]:
    """The (service, op) requests the nth such syscall sent, in order."""
    calls = syscall_events(trace, syscall, pid)
    if nth >= len(calls):
        raise AssertionError(f"the trace has {len(calls)} {syscall} calls, not {nth + 1}")
    cause = calls[nth]["msgid"]
    return [(e["dst"], e["op"]) for e in trace if e["type"] == "request" and e.get("cause") == cause]


def nested_route_of(
    trace: list[dict], syscall: str, nth: int = 0, pid: int | None = None
) -> list[tuple[str, str, str]]:
    """Every (src, dst, op) request the nth such syscall led to, also those a service
    sent on its behalf (their cause is a request of the syscall's), in order."""
    calls = syscall_events(trace, syscall, pid)
    if nth >= len(calls):
        raise AssertionError(f"the trace has {len(calls)} {syscall} calls, not {nth + 1}")
    causes = {calls[nth]["msgid"]}
    route = []
    for e in trace:
        if e["type"] == "request" and e.get("cause") in causes:
            route.append((e["src"], e["dst"], e["op"]))
            causes.add(e["msgid"])
    return route
