"""The services, and SERVICES: the one list of them (DESIGN.md §1, §3).

Each service is a class in its own module (mm.py, pid.py, signals.py,
namespaces.py) or package (sched/, vfs/). A class declares

- ``name``: what messages are addressed to (``"mm"`` in ``"mm.dup_mm"``);
- ``calls``: the services its handlers call (the router refuses any other;
  tests/test_registry.py checks that the code calls exactly these);
- ``takes``: the Config fields it is built from, each mapped to the keyword of
  ``__init__`` it is passed as (``build`` below is the one place that does it).

Everything that needs the list of services derives it from SERVICES: the
kernel's boot, ``ukernel serve`` (which services exist, how each is built,
the order to start them in), the CLI's choices and help, and the console
trace's colours. May import ukernel.abi and ukernel.ipc only, like every service.
"""

from __future__ import annotations

import graphlib
from typing import TYPE_CHECKING, Any

from ukernel.ipc.service import Service

from .mm import MmService
from .namespaces import NamespacesService
from .pid import PidService
from .sched import SchedService
from .signals import SignalsService
from .vfs import VfsService

if TYPE_CHECKING:
    from ukernel.config import Config

#: name -> class, in the order the kernel boots them (and the trace colours them).
SERVICES: dict[str, type[Service]] = {
    cls.name: cls for cls in (MmService, VfsService, PidService, SchedService, SignalsService, NamespacesService)
}

#: Config fields a service takes that are this run's console, not the machine's settings:
#: only a vfs in the kernel's own process gets them (a served vfs's output is read with
#: console_output), so they are neither given to ``ukernel serve`` nor compared.
RUN_IO = frozenset({"stdin", "console"})

#: ANSI colours of the console trace (``ukernel run -v``), given out in SERVICES' order.
PALETTE = (34, 32, 35, 33, 31, 36)


def build(name: str, config: Config) -> Service:
    """Service ``name`` built from ``config``: how boot and ``ukernel serve`` both make one,
    so a served service runs with the settings an embedded one would."""
    cls = SERVICES[name]
    return cls(**{keyword: getattr(config, field) for field, keyword in cls.takes.items()})


def settings_of(name: str, config: Config) -> dict[str, Any]:
    """The settings service ``name`` runs with under ``config`` (msgpack types): what a node
    sends in its handshake and what a kernel compares with its own before using it."""
    return {field: getattr(config, field) for field in SERVICES[name].takes if field not in RUN_IO}


def serve_order() -> list[str]:
    """The services with every callee before its callers (a topological sort of ``calls``):
    the order to start one ``ukernel serve`` each in, so each can be told where its callees are."""
    graph = {name: sorted(cls.calls) for name, cls in SERVICES.items()}  # sorted: the same order every run
    return list(graphlib.TopologicalSorter(graph).static_order())


def colours() -> dict[str, int]:
    """service -> ANSI colour, for ConsoleSink."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(SERVICES)}
