"""services.SERVICES: the one list of services, and its ``calls`` edges as the code really uses them.

A service's ``calls`` decides what the router lets it call, which services
``ukernel serve`` insists are reachable, and the order nodes are started in.
So it must say exactly what the code does: each declared edge is called
somewhere in the service's code (read statically, with ``ast``), and no run
calls along an undeclared one (seen dynamically, by a recording router).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import trio

import services
import ukernel
from services import SERVICES
from ukernel.ipc.router import Router

SERVICES_DIR = Path(services.__file__).parent
RUN_TIMEOUT = 60


# --- statically: what the code of each service calls ---------------------------------------
def modules_of(cls: type) -> set[Path]:
    """The files a service's code is in: its class's module and every module of the
    ``services`` package that module imports, transitively (vfs/*.py, sched/classes.py, sem.py)."""
    seen: set[Path] = set()
    todo = [Path(inspect.getfile(cls))]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imported(path)
    return seen


def _imported(path: Path) -> list[Path]:
    """The modules of the services package that ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # from .inode import X, from . import sem
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
        elif (node.module or "").split(".")[0] == "services":
            base = SERVICES_DIR.parent
        else:
            continue
        names = [node.module] if node.module else [alias.name for alias in node.names]
        for name in names:
            target = base.joinpath(*name.split("."))
            found += [p for p in (target.with_suffix(".py"), target / "__init__.py") if p.is_file()]
    return found


def called_by_code(cls: type) -> set[str]:
    """Every service named by a ``self.call("NAME", ...)`` in the service's modules; a call
    whose destination is not written out fails the test (it could not be checked)."""
    called = set()
    for path in modules_of(cls):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call":
                dst = node.args[0] if node.args else None
                assert isinstance(dst, ast.Constant) and isinstance(dst.value, str), (
                    f"{path.name}:{node.lineno}: a call whose destination is not a literal service name"
                )
                called.add(dst.value)
    return called


def test_the_scan_follows_a_service_into_its_package_and_helpers():
    names = {p.relative_to(SERVICES_DIR).as_posix() for p in modules_of(SERVICES["vfs"])}
    assert {"vfs/vfs.py", "vfs/namei.py", "vfs/pipe.py", "vfs/proc.py", "vfs/mount.py", "vfs/inode.py"} <= names
    assert "sem.py" in {p.name for p in modules_of(SERVICES["namespaces"])}
    assert "classes.py" in {p.name for p in modules_of(SERVICES["sched"])}


@pytest.mark.parametrize("name", list(SERVICES))
def test_a_service_declares_exactly_the_services_its_code_calls(name):
    assert set(SERVICES[name].calls) == called_by_code(SERVICES[name])


# --- dynamically: what runs call -------------------------------------------------------------
@pytest.fixture
def edges(monkeypatch) -> set[tuple[str, str]]:
    """Every (src, dst) a router is asked to send along, allowed or not (Router.send
    goes through Router.call too)."""
    seen: set[tuple[str, str]] = set()
    call = Router.call

    async def recording(self, src, dst, *args, **kwargs):
        seen.add((src, dst))
        return await call(self, src, dst, *args, **kwargs)

    monkeypatch.setattr(Router, "call", recording)
    return seen


PROGRAMS = [
    ("nginx", ["nginx", "3"], b""),
    ("sh", ["sh"], b"echo one two | cat\nls /bin | cat\n"),
    ("container", ["container", "sh"], b"ps\nhostname\n"),
]


async def test_runs_call_only_along_declared_edges_and_use_every_one(edges):
    with trio.fail_after(RUN_TIMEOUT):
        for program, argv, stdin in PROGRAMS:
            result = await ukernel.run_async(program, argv, stdin=stdin)
            assert (result.exit_code, result.problems) == (0, []), (program, result.stdout)
    used = {(src, dst) for src, dst in edges if src != "kernel"}
    declared = {(name, dst) for name, cls in SERVICES.items() for dst in cls.calls}
    assert used == declared  # nothing undeclared is called; every declared edge is used
    assert {dst for src, dst in edges if src == "kernel"} == set(SERVICES)


# --- everything else derives from the registry -----------------------------------------------
def test_the_serve_order_puts_every_callee_before_its_callers():
    order = services.serve_order()
    assert sorted(order) == sorted(SERVICES)
    for name, cls in SERVICES.items():
        assert all(order.index(callee) < order.index(name) for callee in cls.calls)


def test_a_service_is_built_from_the_config_fields_it_takes():
    from ukernel.config import Config

    config = Config(cpus=3, memory="8M", pid_max=50, sched="cfs", seed=4, sched_settings={"sched_latency": 12})
    sched = services.build("sched", config)
    assert (len(sched.curr), sched.fair_name, sched.seed, sched.settings["sched_latency"]) == (3, "cfs", 4, 12)
    assert services.build("mm", config).nframes * 4096 == 8 << 20
    assert services.build("pid", config).pid_max == 50
    assert services.settings_of("sched", config) == {
        "cpus": 3,
        "sched": "cfs",
        "seed": 4,
        "sched_settings": {"sched_latency": 12},
    }
    assert services.settings_of("vfs", config) == {"tmpfs_size": 4 << 20}  # stdin and console are the run's


def test_the_cli_offers_exactly_the_registered_services(capsys):
    from ukernel.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "nosuch"])
    choices = capsys.readouterr().err.split("choose from", 1)[1]
    assert all(name in choices for name in SERVICES)
    assert set(services.colours()) == set(SERVICES)
