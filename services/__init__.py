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
trace's colours. A replacement for a slot (``Config.services``: a student's
class) is checked against the built-in here (``replacement``) and built by ``build``.

May import ukernel.abi, ukernel.ipc and ukernel.plugin only, like every service
(plugin.py is the stdlib-only loader of a student's class: sched loads its classes with it).
"""

from __future__ import annotations

import graphlib
import inspect
from typing import TYPE_CHECKING, Any

from ukernel import plugin
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

#: Colours of the console trace (``ukernel run -v``) as SGR parameters, given out in SERVICES'
#: order: hues that read on light and dark backgrounds (no white, no yellow), the sixth from
#: the 256-colour palette (a mid orange) so no two services share one.
PALETTE = ("34", "32", "35", "36", "31", "38;5;166")


def class_for(name: str, config: Config) -> type[Service]:
    """The class slot ``name`` runs: a replacement named in ``config.services``, else the built-in."""
    return config.services.get(name) or SERVICES[name]


def build(name: str, config: Config) -> Service:
    """Service ``name`` built from ``config``: how boot and ``ukernel serve`` both make one,
    so a served service runs with the settings an embedded one would."""
    cls = class_for(name, config)
    return cls(**{keyword: getattr(config, field) for field, keyword in cls.takes.items()})


def settings_of(name: str, config: Config) -> dict[str, Any]:
    """The settings service ``name`` runs with under ``config`` (msgpack types): what a node
    sends in its handshake and what a kernel compares with its own before using it. A
    replacement adds ``class`` (plugin.identity), so a node serving another class is refused."""
    cls = class_for(name, config)
    settings = {field: getattr(config, field) for field in cls.takes if field not in RUN_IO}
    if cls is not SERVICES[name]:
        settings["class"] = plugin.identity(cls)
    return settings


def replacement(slot: str, spec: Any) -> type[Service]:
    """The class ``spec`` names (a class, 'file.py:Class' or 'module:Class'), checked against
    the built-in it replaces; ValueError, one line naming everything wrong with it."""
    given = spec if isinstance(spec, str) else getattr(spec, "__qualname__", repr(spec))
    where = f"service {slot}={given}"
    try:
        cls = plugin.load(spec)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    problems = contract_problems(slot, cls)
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")
    cls.name = slot  # a subclass of Service that did not set its name
    return cls


def contract_problems(slot: str, cls: Any) -> list[str]:
    """What keeps ``cls`` from standing in for the built-in ``slot``: the built-in's OPS are
    what the kernel and the other services may send it, with the parameters they pass;
    its ``calls`` bound what it may call (DESIGN.md §3: the call graph stays acyclic)."""
    builtin = SERVICES[slot]
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        return [f"{cls!r} is not a class derived from {builtin.__name__} or ukernel.ipc.service.Service"]
    label = cls.__name__
    problems = []
    if cls.name not in (slot, Service.name):
        problems.append(f"{label}.name is {cls.name!r}, not {slot!r}")
    for op_name, wanted in builtin.PARAMS.items():
        if op_name not in cls.OPS:
            problems.append(f"{label} has no op {op_name}")
            continue
        if not inspect.iscoroutinefunction(cls.OPS[op_name]):
            problems.append(f"op {op_name} is not an async def")
        params = cls.PARAMS[op_name]
        problems += [f"op {op_name} does not take {p}" for p in sorted(wanted.allowed - params.allowed)]
        problems += [
            f"op {op_name} requires {p}, which callers may leave out" for p in sorted(params.required - wanted.required)
        ]
    extra = sorted(cls.calls - builtin.calls)
    if extra:
        allowed = ", ".join(sorted(builtin.calls)) or "none"
        problems.append(f"{label} calls {', '.join(extra)}, which {slot} may not call (its calls: {allowed})")
    return problems


def serve_order() -> list[str]:
    """The services with every callee before its callers (a topological sort of ``calls``):
    the order to start one ``ukernel serve`` each in, so each can be told where its callees are."""
    graph = {name: sorted(cls.calls) for name, cls in SERVICES.items()}  # sorted: the same order every run
    return list(graphlib.TopologicalSorter(graph).static_order())


def colours() -> dict[str, str]:
    """service -> SGR colour parameters, for ConsoleSink."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(SERVICES)}
