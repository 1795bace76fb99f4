"""run / run_async / boot and the Result they give, with the watch for a lost remote service.

r = ukernel.run("userland/nginx.py", argv=["nginx", "4"])
r.exit_code, r.status, r.stdout, r.trace

async with ukernel.boot() as kernel:
    status = await kernel.run("/bin/hello")
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import trio
from trio._core import wait_all_tasks_blocked  # trio.testing's own; that package imports pytest (~0.1 s at start-up)

from . import abi
from .determinism import freeze_boot, outside, replay_schedule
from .ipc.router import BootError
from .kernel.hung import deadlocked, dump, format_dump, report_tasks, summary
from .kernel.signal import k_kill
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
    error: str = ""  # why the run could not finish normally (a remote service lost, a hang), else empty
    hung: list[dict] = field(default_factory=list)  # a deadlock's tasks: pid, comm, state, syscall, wchan
    bugs: list[str] = field(default_factory=list)  # service bug reports (kernel/bug.py), also in problems
    schedule: list[int] = field(default_factory=list)  # the choices made, with a choice list (kernel/choice.py)


@asynccontextmanager
async def boot(*, sinks: tuple = (), **settings: Any) -> AsyncIterator[Kernel]:
    """A live kernel for tests: services up, /bin filled, idle task ready."""
    from .config import Config  # here, so that importing a service alone needs no kernel
    from .kernel.core import Kernel

    config = Config(**settings)
    if config.remote:  # no secret, keys or --insecure: a ValueError here, not one from inside the nursery
        config.auth(config.remote_labels())
    tracer = Tracer()
    kernel_trace = MemorySink()
    with replay_schedule(config.seed):
        try:
            async with trio.open_nursery() as nursery:
                kernel = Kernel(config, tracer)
                kernel.trace = kernel_trace
                with kernel.watchdog.armed():
                    await _start(kernel, nursery)
                    for sink in ((kernel_trace,) if config.trace else ()) + tuple(sinks):
                        tracer.add_sink(sink)  # after boot: the trace starts with the first task
                    if tracer.on or config.student_code:  # the last events, for a bug's report (kernel/bug.py)
                        tracer.add_sink(kernel.recent)
                    kernel.watchdog.flush = tracer.flush  # the console's lines, while something spins
                    try:
                        yield kernel
                    finally:
                        tracer.flush()  # the console's last lines
                nursery.cancel_scope.cancel()
        except* BootError as group:  # the services cannot run as configured: that one error, not a group
            error = group.exceptions[0]
            raise error from error.__cause__  # (what --debug shows)


async def _start(kernel: Kernel, nursery: trio.Nursery) -> None:
    """Kernel.start; a service's bug met at boot (its report says whose) is a BootError."""
    from .kernel.contracts import ServiceBug

    try:
        await kernel.start(nursery)
        freeze_boot()
    except (OSError, ServiceBug):
        if not kernel.bugs:
            raise
        raise BootError("\n".join(bug.text for bug in kernel.bugs)) from None


def program_path(program: str, files: dict[str, bytes], host_paths: dict[str, str]) -> str:
    """A host .py file is copied into the vfs as /bin/NAME (config.guest_path, as for
    ``host_files``; host_paths remembers where from); a bare name means /bin/NAME."""
    from .config import guest_path, read_host

    host = Path(program)
    if host.suffix == ".py" and host.is_file():
        target = guest_path(host)
        files[target] = read_host(host)
        host_paths[target] = program
        return target
    return program if program.startswith("/") else f"/bin/{program}"


async def run_async(program: str, argv: list[str] | None = None, **settings: Any) -> Result:
    """``run`` inside a trio run. Ctrl-C (SIGINT), SIGTERM, SIGHUP and the ``~.`` escape end
    the run cleanly: every task is cancelled, the services stop, and RunInterrupted (a
    KeyboardInterrupt) is raised from here."""
    if "config" in settings:  # a TOML file; keywords given here win over it
        from .config import load_config

        settings = load_config(settings.pop("config")) | settings
    files = dict(settings.pop("files", {}))
    host_paths = dict(settings.pop("host_paths", {}))
    path = program_path(program, files, host_paths)
    async with boot(files=files, host_paths=host_paths, **settings) as kernel:
        with _signals_stop(kernel):
            status, error = await _run_watched(kernel, path, argv)
            error = error or getattr(kernel.chooser, "problem", "")  # a --schedule that did not fit the run
            if error and not kernel.hung and not kernel.panicked:  # a hang has printed its dump, a panic its report
                log.error("ukernel: %s", error)
            stdout = b""
            if "vfs" not in kernel.stuck:  # a vfs that never answered would not answer this either
                stdout = await _or_lost(kernel, kernel.call("vfs", "console_output", {}), b"")
            problems = await _or_lost(kernel, kernel.check_invariants(), None)
            if problems is None:
                problems = [f"not checked: {'; '.join(kernel.lost)}"]
            trace = list(kernel.trace)
            finished = getattr(kernel.chooser, "run_finished", None)
            if finished is not None and not kernel.interrupted:  # explore's fork tree: no teardown
                finished(_result(kernel, status, stdout, trace, problems, error))
    if kernel.interrupted:
        if kernel.watchdog.stopped:  # a service's handler spun: say whose and where
            log.error("ukernel: %s", kernel.watchdog.stopped)
        raise RunInterrupted(kernel.interrupted)
    return _result(kernel, status, stdout, trace, problems, error)


def _result(kernel: Kernel, status: int, stdout: bytes, trace: list, problems: list, error: str) -> Result:
    exit_code = abi.WEXITSTATUS(status) if abi.WIFEXITED(status) else None
    bugs = [bug.text for bug in kernel.bugs]
    taken = list(getattr(kernel.chooser, "taken", []))
    return Result(exit_code, status, stdout, trace, problems, error, kernel.hung, bugs, taken)


HUNG_EXIT = 124  # the exit status of a deadlocked run (as timeout(1)'s); README "When a run hangs"


async def _run_watched(kernel: Kernel, path: str, argv: list[str] | None) -> tuple[int, str]:
    """kernel.run, watched for a deadlock (kernel/hung.py), a lost remote service, and SIGQUIT.

    After a loss the run goes on (the syscalls that need the lost service get
    EIO, the program may cope), but a task whose exit needs that service can
    never finish, so its parent would wait forever: once nothing moves and no
    message is in flight, the run is stopped, with status 1 and a message.
    Without a loss, the same stillness with no timer armed is a deadlock: the
    tasks and their wait channels are printed and traced, every task is killed
    and the run ends with status HUNG_EXIT (``kernel.hung`` holds the dump).
    """
    status: int | None = None
    watchers = trio.CancelScope()
    with trio.CancelScope() as run_scope:
        kernel.nursery.start_soon(_watch, kernel, watchers, run_scope)
        try:
            status = await kernel.run(path, argv)
        except OSError:
            if not kernel.lost:
                raise
        finally:
            watchers.cancel()
    if kernel.panicked:
        return status if status is not None else abi.W_EXITCODE(1), f"run stopped: {kernel.panicked.headline}"
    if kernel.hung:
        return abi.W_EXITCODE(HUNG_EXIT), summary(kernel.hung)
    if status is not None and not kernel.lost:
        return status, ""
    why = "; ".join(dict.fromkeys(kernel.lost))
    if status is not None:
        return status, f"lost {why} (the program finished)"
    return abi.W_EXITCODE(1), f"run stopped: lost {why}; {len(kernel.tasks)} tasks could not finish"


STALL_CHECK = 0.05  # seconds between looks at a still run that may yet move (a remote reply, typing)


async def _watch(kernel: Kernel, scope: trio.CancelScope, run_scope: trio.CancelScope) -> None:
    """The watchers of one run, until ``scope`` is cancelled: deadlock and loss, SIGQUIT.
    They wake at wall-clock moments, so they are ``outside`` the kernel's schedule."""
    with scope, outside():
        async with trio.open_nursery() as nursery:
            if threading.current_thread() is threading.main_thread():  # signals reach only that one
                nursery.start_soon(_dump_on_sigquit, kernel)
            if kernel.config.service_timeout:
                nursery.start_soon(_watch_replies, kernel)
            seen = None  # how a still run looked when a runnable task was left without a CPU
            while True:
                await wait_all_tasks_blocked()  # trio is idle: nothing runs, nothing is due
                if kernel.panicked:
                    return
                if kernel.lost and not kernel.router.pending:
                    run_scope.cancel()
                    return
                if not kernel.lost and deadlocked(kernel):
                    now = _stillness(kernel)
                    if now is None or now == seen:  # all asleep; or no one ran since the last look
                        await _end_hung_run(kernel)
                        return
                    seen = now
                await trio.sleep(STALL_CHECK)  # not stuck for good: look again once it may have moved


def _stillness(kernel: Kernel) -> tuple | None:
    """None when every task sleeps (one look is enough); else what must stay the same over
    two looks for a runnable task without a CPU to count as stuck (a wake-up in flight
    between trio's tasks is not a deadlock)."""
    runnable = [t.pid for t in kernel.tasks if t.wchan is None and t.state != "zombie"]
    return (kernel.ticks, len(kernel.router.pending), tuple(runnable)) if runnable else None


async def _watch_replies(kernel: Kernel) -> None:
    """service_timeout: a request without a reply for that long (its handler waits for ever,
    or deferred its reply and never gave it) is reported and ends the run (kernel/bug.py).
    A handler that spins never lets this run: the host timer stops it (kernel/watchdog.py)."""
    while kernel.panicked is None:
        await trio.sleep(kernel.config.service_timeout / 4)
        sent = kernel.overdue()
        if sent is not None:
            kernel.panic(kernel.report_overdue(sent))


async def _end_hung_run(kernel: Kernel) -> None:
    """Print and trace who waits for what (``kernel.hung``), then SIGKILL every task so the run
    ends cleanly. From here the run's outcome is known: its teardown asks no chooser (choice.py
    ``ask``), and explore's tree takes no step of it (``deadlocked`` on the chooser)."""
    kernel.hung = rows = dump(kernel)
    told = getattr(kernel.chooser, "deadlocked", None)
    if told is not None:
        told()
    log.error(
        "ukernel: deadlock: no task can run, no timer is armed, no message is in flight, no input is awaited;"
        " the tasks and what they wait for:\n%s\nukernel: every task killed; exit status %d",
        "\n".join(format_dump(rows)),
        HUNG_EXIT,
    )
    if kernel.tracer.on:
        kernel.tracer.emit("hung", src="kernel", op="deadlock", pid=None, tid=None, tasks=rows, message=summary(rows))
    for task in kernel.tasks:
        k_kill(task, abi.SIGKILL)
    await kernel.wake_sleepers(kernel.idle)


async def _dump_on_sigquit(kernel: Kernel) -> None:
    """SIGQUIT (kill -QUIT; ``~t`` at a raw terminal): the same dump as a hang's, and the run goes on (SysRq-T)."""
    with trio.open_signal_receiver(signal.SIGQUIT) as signals:
        async for _ in signals:
            report_tasks(kernel, "SIGQUIT")


STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each ends a run cleanly, as Ctrl-C does


class RunInterrupted(KeyboardInterrupt):
    """The run was ended from outside, cleanly: ``by`` says how (SIGINT, SIGTERM, SIGHUP,
    or ``~.`` typed at the terminal); ``status`` is what ``ukernel run`` exits with."""

    def __init__(self, by: str):
        super().__init__(by)
        self.by = by

    @property
    def status(self) -> int:
        """128 + the signal, as a shell reports a job it killed; ``~.`` as Ctrl-C (130)."""
        return 128 + (signal.Signals[self.by] if self.by.startswith("SIG") else signal.SIGINT)


@contextmanager
def _signals_stop(kernel: Kernel) -> Iterator[None]:
    """While the run lasts, SIGINT, SIGTERM and SIGHUP cancel the kernel's nursery (tasks
    and services end, their cancellation is clean) and say which ended it. A task or a
    service's handler spinning in Python is first unwound where it runs (the watchdog),
    so that trio gets control back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    token = trio.lowlevel.current_trio_token()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        token.run_sync_soon(kernel.interrupt, signal.Signals(signum).name)
        kernel.watchdog.interrupt(frame)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOPPING}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
