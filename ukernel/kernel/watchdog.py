"""The CPU limit: a task spinning in Python without a syscall is stopped (kernel/watchdog.c's
soft-lockup detector, turned on user code).

A task's Python code runs on trio's thread, and trio gets control back only
when the code awaits a syscall, so ``while True: pass`` would hold the whole
kernel for ever. A host interval timer (``setitimer(ITIMER_PROF)``: it counts
the process's CPU time, so an idle kernel gets no signals) samples what runs
every ``limit / 10`` CPU seconds (at most 0.25 s). The kernel marks entries
and exits (``enter_kernel`` / ``leave_kernel``, called around every syscall
by the user side): a sample that finds the same stretch of user code running
as the one before adds the interval to it. At ``limit`` seconds the Python
signal handler, which runs in that very code, raises ``TaskExit`` there: the
task is killed as by SIGXCPU's default action (a SIGXCPU handler cannot run:
the task never enters the kernel to run it). Code that swallows that and
spins on is killed as by SIGKILL after another ``limit`` seconds, and that
one cannot be caught: a trace function raises it again at the next line of
the program that runs (the except clause that caught it), and the timer does
again at every later sample, until the task is out of the program.

The same timer watches the services' handlers, which run on trio's thread too:
a handler that has run ``service_timeout`` wall seconds without answering is
stopped where it spins (``HandlerStopped`` raised there, with its stack: the
service answers EIO and the kernel reports it and ends the run, kernel/bug.py),
and Ctrl-C unwinds a spinning handler the same way. docs/limits.md says more.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import trio

from .. import abi
from ..ipc.service import HandlerStopped, own_frames, site_of
from .task import TaskExit

if TYPE_CHECKING:
    from ..ipc.service import Service
    from .task import TaskStruct

log = logging.getLogger("ukernel")

SAMPLES_PER_LIMIT = 10  # the timer looks this often within one limit
LONGEST_SAMPLE = 0.25  # seconds of CPU between looks, at most
INTERRUPT_GRACE = 0.2  # wall seconds a handler may have run when Ctrl-C comes before it counts as spinning


class Watchdog:
    """One kernel's CPU limit: which task's user code runs now, and for how long it has."""

    def __init__(self, limit: float, service_timeout: float = 0.0):
        self.limit = limit  # seconds of host CPU a task may run Python without a syscall; 0: no limit
        self.service_timeout = service_timeout  # wall seconds a handler may run without answering; 0: any
        self.services: list[Service] = []  # the services in this process (Kernel.start)
        self.interrupting = False  # Ctrl-C was pressed: a handler found spinning from now on is stopped
        self.stopped = ""  # the handler Ctrl-C stopped, and where
        self.user: TaskStruct | None = None  # whose user code runs now; None: the kernel, a service, trio
        self.host: object = None  # the trio task running that code
        self.stretch = 0  # counts returns to user mode: each starts a new stretch of user code
        self.seen = -1  # the stretch the last sample saw
        self.spun = 0.0  # CPU seconds the seen stretch has run, as sampled
        self.sent = 0  # the signal this stretch was killed with so far (SIGXCPU, then SIGKILL)
        self.tracing = False  # after SIGKILL: a trace function stops the program's every line
        #: Called at every look: the console's batched lines are written (tracer.flush), so
        #: the last message before a handler or a program spins shows while it spins.
        self.flush: Callable[[], None] | None = None

    def leave_kernel(self, task: TaskStruct) -> None:
        """Return to user mode: ``task``'s Python code runs from here on. After Ctrl-C it
        does not: code that would spin next (no timer may be armed to stop it) never starts."""
        if self.interrupting:
            raise TaskExit(abi.W_EXITCODE(0, abi.SIGINT), group=True)
        self.user, self.host = task, trio.lowlevel.current_task()
        self.stretch += 1

    def enter_kernel(self) -> None:
        """A syscall (or the end of the program): the kernel runs, not user code."""
        self.user = None
        if self.tracing:
            sys.settrace(None)
            self.tracing = False

    @property
    def interval(self) -> float:
        """CPU seconds between the timer's looks: a tenth of the shortest limit, at most LONGEST_SAMPLE."""
        return min([x / SAMPLES_PER_LIMIT for x in (self.limit, self.service_timeout) if x] + [LONGEST_SAMPLE])

    def sample(self, interval: float, frame: FrameType | None) -> None:
        """The timer's look: charge the running stretch; past the limit, kill its task here.
        A service handler running past service_timeout is stopped here."""
        if self.flush is not None:
            self.flush()
        if self.interrupting:  # Ctrl-C came before the handler started spinning
            self._stop_handler(frame, "interrupted")
        if self.service_timeout:
            self._stop_handler(frame, "timeout")
        task = self.user
        if not self.limit or task is None or not self._runs_now():
            return
        if self.seen != self.stretch:
            self.seen, self.spun, self.sent = self.stretch, 0.0, 0
            return
        self.spun += interval
        if self.sent == 0 and self.spun >= self.limit:
            self._kill(task, abi.SIGXCPU, frame)
        if self.sent and self.spun >= 2 * self.limit:  # it caught the first and spins on
            self._kill(task, abi.SIGKILL, frame)

    def interrupt(self, frame: FrameType | None = None) -> None:
        """Ctrl-C while user code or a service's handler spins: unwind it here, so that trio
        gets control back (the run is ending: ukernel.api's SIGINT handler has asked trio to cancel it)."""
        self.interrupting = True
        self._stop_handler(frame, "interrupted")
        if self.user is not None and self._runs_now():
            raise TaskExit(abi.W_EXITCODE(0, abi.SIGINT), group=True)

    def _stop_handler(self, frame: FrameType | None, kind: str) -> None:
        """If the code the signal interrupted is a service's handler (past service_timeout,
        for a timeout), raise HandlerStopped in it, with the stack where it ran."""
        try:
            now = trio.lowlevel.current_task()
        except RuntimeError:
            return
        running = [s for s in self.services if s.task is now and s.handling is not None]
        if not running:
            return
        # the last one started: on the fast path (ipc/local.py) a handler's call runs the next in its task
        service = max(running, key=lambda s: s.handling.started)
        req = service.handling
        ran = time.monotonic() - req.started
        if ran < (self.service_timeout if kind == "timeout" else INTERRUPT_GRACE):
            return  # for Ctrl-C: a handler that just started will answer; trio then ends the run
        why = f"did not answer within {self.service_timeout:g} s" if kind == "timeout" else "was stopped by Ctrl-C"
        stack = traceback.extract_stack(frame) if frame is not None else traceback.StackSummary()
        if kind == "interrupted":  # the run ends before any reply is read: ukernel.api says this
            self.stopped = f"{service.name}.{req.op} (#{req.msgid}) {why} at {site_of(own_frames(stack))}"
        raise HandlerStopped(kind, f"{why} (it ran {ran:.1f} s)", stack)

    def _runs_now(self) -> bool:
        """The code the signal interrupted is the user task's (not trio's, between steps)."""
        try:
            return trio.lowlevel.current_task() is self.host
        except RuntimeError:
            return False

    def _kill(self, task: TaskStruct, sig: int, frame: FrameType | None) -> None:
        name = abi.SIGNAL_NAMES.get(sig, sig)
        if self.sent != sig:
            log.warning(
                "ukernel: pid %d (%s) used %g s of CPU without a syscall at %s; sent %s",
                task.pid,
                task.comm,
                self.spun,
                where(frame, task),
                name,
            )
        self.sent = sig
        if sig == abi.SIGKILL:
            self._forbid_user_code(task, frame)
        raise TaskExit(abi.W_EXITCODE(0, sig), group=True)

    def _forbid_user_code(self, task: TaskStruct, frame: FrameType | None) -> None:
        """SIGKILL cannot be caught: the next line of the program that runs raises it again
        (a trace function), and a syscall the program makes ends it (``task.killed``)."""
        task.killed = abi.SIGKILL
        path = task.image.path if task.image is not None else None
        status = abi.W_EXITCODE(0, abi.SIGKILL)

        def again(at: FrameType, event: str, arg: object) -> object:
            if at.f_code.co_filename != path:
                return None
            if event == "line":  # the next line the program runs: an except clause, a finally
                raise TaskExit(status, group=True)  # (and Python unsets the trace function)
            return again

        while frame is not None:
            frame.f_trace, frame = again, frame.f_back
        sys.settrace(again)
        self.tracing = True

    @contextmanager
    def armed(self) -> Iterator[None]:
        """The host timer runs while the kernel does (a signal handler needs the main thread)."""
        if not (self.limit or self.service_timeout) or threading.current_thread() is not threading.main_thread():
            yield
            return
        _arm(self)
        try:
            yield
        finally:
            _disarm(self)


def where(frame: FrameType | None, task: TaskStruct) -> str:
    """file:line of the program's innermost frame (else of whatever ran)."""
    path = task.image.path if task.image is not None else None
    at = frame
    while at is not None and at.f_code.co_filename != path:
        at = at.f_back
    at = at or frame
    return f"{at.f_code.co_filename}:{at.f_lineno}" if at is not None else "?"


# --- the one host timer, shared by every kernel armed in this process ------------------
_armed: list[Watchdog] = []
_saved: tuple = ()  # the SIGPROF handler and ITIMER_PROF setting before the first arming


def _interval() -> float:
    return min(w.interval for w in _armed)


def _on_timer(signum: int, frame: FrameType | None) -> None:
    """The SIGPROF handler. A signal can land in _disarm after the last watchdog has left
    ``_armed`` (before the timer and handler are put back): it has nothing to look at, and
    raising there would leave both installed, firing into whatever code runs next."""
    if not _armed:
        return
    interval = _interval()
    for watchdog in list(_armed):
        watchdog.sample(interval, frame)


def _arm(watchdog: Watchdog) -> None:
    global _saved
    if not _armed:
        _saved = (signal.signal(signal.SIGPROF, _on_timer), signal.getitimer(signal.ITIMER_PROF))
    _armed.append(watchdog)
    signal.setitimer(signal.ITIMER_PROF, _interval(), _interval())


def _disarm(watchdog: Watchdog) -> None:
    _armed.remove(watchdog)
    if _armed:
        signal.setitimer(signal.ITIMER_PROF, _interval(), _interval())
        return
    handler, timer = _saved
    signal.setitimer(signal.ITIMER_PROF, *timer)
    signal.signal(signal.SIGPROF, handler)


def rearm() -> None:
    """In a process just forked (``ukernel explore``'s checkpoints): fork does not copy the
    interval timer, so a child's spinning program would never be stopped without this."""
    if _armed:
        signal.setitimer(signal.ITIMER_PROF, _interval(), _interval())
