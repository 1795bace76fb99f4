"""Shared helpers: run a program from source and insist nothing leaked."""

from __future__ import annotations

import textwrap

import pytest
import trio

import ukernel

RUN_TIMEOUT = 60  # seconds of real time; runs take well under one


def program(source: str) -> bytes:
    return textwrap.dedent(source).encode()


def program_file(tmp_path, name: str, source: str) -> str:
    """``source`` as a program file for ukernel.explore (the explore tests' programs)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def found(result) -> tuple:
    """What a search found, less how often: outcomes, deadlocks' wait-for graphs, violations."""
    outcomes = sorted((o["stdout"], o["exit_status"]) for o in result.outcomes)
    deadlocks = sorted(repr(d["waits"]) for d in result.deadlocks)
    return outcomes, deadlocks, sorted(repr(v["problems"]) for v in result.violations)


async def run_source(source: str, argv: list[str] | None = None, **settings) -> ukernel.Result:
    """Run source as /bin/t under init; every run must leave the kernel clean."""
    files = dict(settings.pop("files", {}))
    files["/bin/t"] = program(source)
    with trio.fail_after(RUN_TIMEOUT):  # a hung kernel fails the test instead of the suite
        result = await ukernel.run_async("/bin/t", argv or ["t"], files=files, **settings)
    assert result.problems == [], result.problems
    return result


@pytest.fixture
def run():
    return run_source


#: Writes KILL_POINT (where tests kill a remote service), then forks three times, printing each errno.
KILL_POINT = b"go\n"
FORKS_AFTER_A_LOSS = program(
    """
    async def main(sys, argv):
        await sys.write(1, b"go\\n")
        for _ in range(3):
            try:
                await sys.fork()
            except OSError as exc:
                await sys.write(1, b"fork: errno %d\\n" % exc.errno)
        return 3
    """
)


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    """One line from a subprocess's pipe (a ``ukernel serve`` saying where it listens)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


@pytest.fixture(scope="session")
def tls_keys(tmp_path_factory) -> str:
    """A keys directory as `ukernel keys` makes it: a CA, and certificates for 127.0.0.1 (the nodes,
    as dialled on loopback) and kernel (what a run shows by default)."""
    from ukernel import keys

    directory = tmp_path_factory.mktemp("keys")
    keys.init_ca(directory)
    for name in ("127.0.0.1", "kernel"):
        keys.issue(name, directory)
    return str(directory)
