"""ukernel: Linux's fork path rebuilt as messages between services, on trio.

r = ukernel.run("userland/nginx.py", argv=["nginx", "4"])
r.exit_code, r.status, r.stdout, r.trace

async with ukernel.boot() as kernel:
    status = await kernel.run("/bin/hello")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from . import abi
from .trace import MemorySink, Tracer

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["Result", "abi", "boot", "run", "run_async"]


@dataclass
class Result:
    exit_code: int | None  # None when the program was killed by a signal
    status: int  # the raw wait status
    stdout: bytes  # everything written to the console, in order
    trace: list[dict]
    problems: list[str]  # what check_invariants found after the run (empty: nothing leaked)


@asynccontextmanager
async def boot(*, sinks: tuple = (), **settings: Any) -> AsyncIterator[Kernel]:
    """A live kernel for tests: services up, /bin filled, idle task ready."""
    from .kernel import Config, Kernel  # here, so that importing a service alone needs no kernel

    config = Config(**settings)
    tracer = Tracer()
    kernel_trace = MemorySink()
    async with trio.open_nursery() as nursery:
        kernel = Kernel(config, tracer)
        kernel.trace = kernel_trace
        await kernel.start(nursery)
        for sink in ((kernel_trace,) if config.trace else ()) + tuple(sinks):
            tracer.add_sink(sink)  # after boot: the trace starts with the first task
        yield kernel
        nursery.cancel_scope.cancel()


def program_path(program: str, files: dict[str, bytes]) -> str:
    """A host file is copied into the vfs as /bin/NAME; a bare name means /bin/NAME."""
    host = Path(program)
    if host.suffix == ".py" and host.is_file():
        target = f"/bin/{host.stem}"
        files[target] = host.read_bytes()
        return target
    return program if program.startswith("/") else f"/bin/{program}"


async def run_async(program: str, argv: list[str] | None = None, **settings: Any) -> Result:
    files = dict(settings.pop("files", {}))
    path = program_path(program, files)
    async with boot(files=files, **settings) as kernel:
        status = await kernel.run(path, argv)
        stdout = await kernel.call("vfs", "console_output", {})
        problems = await kernel.check_invariants()
        trace = list(kernel.trace)
    exit_code = abi.WEXITSTATUS(status) if abi.WIFEXITED(status) else None
    return Result(exit_code, status, stdout, trace, problems)


def run(program: str, argv: list[str] | None = None, **settings: Any) -> Result:
    """Boot an embedded kernel, run ``program`` as init's child, shut down."""
    return trio.run(lambda: run_async(program, argv, **settings))
