"""The example files shipped in examples/ are real: they parse with ukernel's own loader
and a run with them works (with the services served on loopback, as they say)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

import services
import ukernel
from ukernel.config import Config, load_config
from ukernel.ipc import node as node_server
from ukernel.ipc import tcp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECRET = b"example-secret"


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", SECRET.decode())


def test_cluster_toml_parses_with_the_config_loader():
    settings = load_config(EXAMPLES / "cluster.toml")
    assert settings == {
        "cpus": 2,
        "heartbeat": 1.0,
        "rpc_timeout": 5.0,
        "insecure": True,
        "remote": {"mm": "tcp://127.0.0.1:7001", "vfs": "tcp://127.0.0.1:7002", "pid": "unix:/tmp/ukernel-pid.sock"},
    }
    Config(**settings)  # and every value is one Config takes


async def test_a_run_with_cluster_toml_uses_the_services_it_names(tmp_path):
    """The example's services, each served by a node in this process: on a fresh loopback
    port, or a socket in tmp_path, in place of its fixed addresses (other runs may hold those)."""
    settings = load_config(EXAMPLES / "cluster.toml")
    config = Config(**{k: v for k, v in settings.items() if k != "remote"})
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            remote = {}
            for name, url in settings["remote"].items():
                listen = f"unix:{tmp_path / (name + '.sock')}" if url.startswith("unix:") else "tcp://127.0.0.1:0"
                hosted = [services.build(name, config)]
                serve = partial(
                    node_server.serve_services,
                    hosted,
                    listen,
                    tcp.Auth(SECRET, insecure=True),
                    settings={name: services.settings_of(name, config)},
                )
                remote[name] = await nursery.start(serve)
            result = await ukernel.run_async("nginx", ["nginx", "2"], **(settings | {"remote": remote}))
            nursery.cancel_scope.cancel()
    assert (result.exit_code, result.problems) == (0, [])
    assert result.stdout.decode().splitlines()[0] == "master 2: starting 2 workers"
    nodes = {e["dst"]: e["node"] for e in result.trace if e["type"] == "request" and e["src"] == "kernel"}
    assert {nodes["mm"], nodes["vfs"], nodes["pid"]} == set(remote.values())
    assert nodes["sched"] == "local"
