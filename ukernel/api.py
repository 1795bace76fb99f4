"""run / run_async / boot and the Result they give, with the watch for a lost remote service.

r = ukernel.run("userland/nginx.py", argv=["nginx", "4"])
r.exit_code, r.status, r.stdout, r.trace

async with ukernel.boot() as kernel:
    status = await kernel.run("/bin/hello")
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from . import abi
from .determinism import replay_schedule
from .ipc.router import BootError
from .trace import MemorySink, Tracer

if TYPE_CHECKING:
    from .kernel.core import Kernel

log = logging.getLogger("ukernel")


@dataclass
class Result:
    exit_code: int | None  # None when the program was killed by a signal
    status: int  # the raw wait status
    stdout: bytes  # everything written to the console, in order
    trace: list[dict]
    problems: list[str]  # what check_invariants found after the run (empty: nothing leaked)
    error: str = ""  # why the run could not finish normally (a remote service lost), else empty


@asynccontextmanager
async def boot(*, sinks: tuple = (), **settings: Any) -> AsyncIterator[Kernel]:
    """A live kernel for tests: services up, /bin filled, idle task ready."""
    from .config import Config  # here, so that importing a service alone needs no kernel
    from .kernel.core import Kernel

    config = Config(**settings)
    tracer = Tracer()
    kernel_trace = MemorySink()
    with replay_schedule(config.seed):
        try:
            async with trio.open_nursery() as nursery:
                kernel = Kernel(config, tracer)
                kernel.trace = kernel_trace
                await kernel.start(nursery)
                for sink in ((kernel_trace,) if config.trace else ()) + tuple(sinks):
                    tracer.add_sink(sink)  # after boot: the trace starts with the first task
                yield kernel
                nursery.cancel_scope.cancel()
        except* BootError as group:  # the services cannot run as configured: that one error, not a group
            raise group.exceptions[0] from None


def program_path(program: str, files: dict[str, bytes]) -> str:
    """A host file is copied into the vfs as /bin/NAME; a bare name means /bin/NAME."""
    host = Path(program)
    if host.suffix == ".py" and host.is_file():
        target = f"/bin/{host.stem}"
        files[target] = host.read_bytes()
        return target
    return program if program.startswith("/") else f"/bin/{program}"


async def run_async(program: str, argv: list[str] | None = None, **settings: Any) -> Result:
    if "config" in settings:  # a TOML file; keywords given here win over it
        from .config import load_config

        settings = load_config(settings.pop("config")) | settings
    files = dict(settings.pop("files", {}))
    path = program_path(program, files)
    async with boot(files=files, **settings) as kernel:
        status, error = await _run_watched(kernel, path, argv)
        if error:
            log.error("ukernel: %s", error)
        stdout = await _or_lost(kernel, kernel.call("vfs", "console_output", {}), b"")
        problems = await _or_lost(kernel, kernel.check_invariants(), None)
        if problems is None:
            problems = [f"not checked: {'; '.join(kernel.lost)}"]
        trace = list(kernel.trace)
    exit_code = abi.WEXITSTATUS(status) if abi.WIFEXITED(status) else None
    return Result(exit_code, status, stdout, trace, problems, error)


async def _run_watched(kernel: Kernel, path: str, argv: list[str] | None) -> tuple[int, str]:
    """kernel.run, unless a remote service is lost and the run can make no more progress.

    After a loss the run goes on (the syscalls that need the lost service get
    EIO, the program may cope), but a task whose exit needs that service can
    never finish, so its parent would wait forever: once nothing moves and no
    message is in flight, the run is stopped, with status 1 and a message.
    """
    if not kernel.config.remote:
        return await kernel.run(path, argv), ""
    outcome: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            try:
                outcome.append(await kernel.run(path, argv))
            except OSError:
                if not kernel.lost:
                    raise
            nursery.cancel_scope.cancel()

        nursery.start_soon(run)
        while not outcome:
            await trio.sleep(STALL_CHECK)
            if kernel.lost and await _stalled(kernel):
                nursery.cancel_scope.cancel()
    if outcome and not kernel.lost:
        return outcome[0], ""
    why = "; ".join(dict.fromkeys(kernel.lost))
    if outcome:
        return outcome[0], f"lost {why} (the program finished)"
    return abi.W_EXITCODE(1), f"run stopped: lost {why}; {len(kernel.tasks)} tasks could not finish"


STALL_CHECK = 0.05  # seconds between looks at a run that lost a remote service


async def _stalled(kernel: Kernel) -> bool:
    """Nothing runnable and no message in flight: the run cannot go on by itself."""
    await trio.testing.wait_all_tasks_blocked(STALL_CHECK)
    return not kernel.router.pending


async def _or_lost(kernel: Kernel, call: Any, default: Any) -> Any:
    """An after-run call, or ``default`` if it needs a service that is lost."""
    try:
        return await call
    except OSError:
        if not kernel.lost:
            raise
        return default


def run(program: str, argv: list[str] | None = None, **settings: Any) -> Result:
    """Boot an embedded kernel, run ``program`` as init's child, shut down."""
    return trio.run(lambda: run_async(program, argv, **settings))
