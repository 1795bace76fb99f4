"""Helpers for tests and course work: talk to one service through real messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .router import Router
from .service import Service
from .trace import MemorySink, Tracer
from .transport.local import open_local


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
