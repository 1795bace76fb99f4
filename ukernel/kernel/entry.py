"""Syscall entry and exit (kernel/entry/common.c): the one door from a program into the kernel.

Each entry charges a tick, may run due timers, traces the call, runs the
syscall's handler (syscalls.py), and on the way out (exit_to_user_mode)
wakes whoever the call woke, ends a task with a fatal signal, delivers
pending signals (restarting the call under SA_RESTART) and preempts a task
whose slice is used up. ``Entry`` is a part of ``Kernel`` (core.py).
"""

from __future__ import annotations

import reprlib
import time
import traceback
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import abi
from ..ipc.service import fault_site
from ..reprs import bounded
from .choice import at_entry
from .contracts import ServiceBug
from .signal import do_signal, handler_name, syscall_restart
from .sys import check_rlimit_cpu
from .syscalls import SYSCALLS
from .task import ExecImage, TaskExit
from .uaccess import check_args

if TYPE_CHECKING:
    from .task import TaskStruct


class Entry:
    """The syscall path (mixed into Kernel)."""

    async def syscall(self, task: TaskStruct, name: str, args: dict) -> Any:
        """A kernel entry: charge a tick, route the call, then return to user mode."""
        entry = SYSCALLS.get(name)
        if entry is None:
            raise abi.kernel_error(abi.ENOSYS, f"no syscall {name!r}")
        if self.chooser is not None:  # a choice point: this call now, or another task first
            await at_entry(self, task, name)
        msgid = self.router.new_msgid()
        self.ticks += 1
        task.ran += 1
        task.slice -= 1
        if self.next_timer is not None and self.ticks >= self.next_timer:
            try:
                await self.run_timers(task)
            except Exception as exc:  # sched's timer reply was wrong: the kernel's timer interrupt oopses
                raise self._oops_kill(task, "hrtimer_interrupt", exc) from None
        try:  # the arguments, before any message: a bad one is the program's mistake, an errno
            args, refused = check_args(name, args), None
        except OSError as exc:
            refused = exc
        tracer = self.tracer
        if tracer.on:
            handler = _handler_name(task, args) if name == "sigaction" else None
            tracer.syscall_enter(task.pid, entry[0], name, msgid, _printable(args), handler)
        meta = {"cause": msgid, "pid": task.pid, "tid": task.pid, "syscall": name}
        started = time.perf_counter()
        if refused is not None:
            await self._refuse(task, entry[0], name, msgid, started, refused)
        call = None  # after a restart: the call again, or its restart_block (a blocked call keeps no partial)
        while True:
            try:
                result = await (entry[1](self, task, meta, **args) if call is None else call())
                break
            except OSError as exc:
                if tracer.on:
                    outcome = {"errno": abi.errno_name(exc.errno or 0), "message": exc.strerror}
                    self._trace_exit(task, entry[0], name, msgid, started, outcome)
                handled = await self.return_to_user(task)
                try:  # ERESTART*: the call again (or its restart_block), or EINTR after a handler
                    call = syscall_restart(task, exc, handled, partial(entry[1], self, task, meta, **args))
                except OSError as final:
                    if tracer.on and final is not exc:  # what the program gets (strace: rt_sigreturn's result)
                        outcome = {"errno": abi.errno_name(final.errno or 0), "message": final.strerror}
                        outcome["mask"] = sorted(task.blocked)  # rt_sigreturn's {mask=[...]}: restored
                        self._trace_exit(task, entry[0], name, msgid, started, outcome)
                    raise
            except ExecImage:
                if tracer.on:
                    self._trace_exit(task, entry[0], name, msgid, started, {"result": 0})
                if self.sleeping:  # a vfork parent waits for this exec
                    await self.wake_sleepers(task)
                raise
            except Exception as exc:  # a bug in the kernel path taken for this task: an oops
                if tracer.on:
                    self._trace_exit(task, entry[0], name, msgid, started, {"result": "?"})
                raise self._oops_kill(task, name, exc) from None
        if tracer.on:
            outcome = {"result": _printable(result)}
            if "child" in meta:  # the clone family's global pid
                outcome["child"] = meta["child"]
            if name == "sigaction" and isinstance(result, list | tuple) and result:
                outcome["old_handler"] = handler_name(task, result[0])
            self._trace_exit(task, entry[0], name, msgid, started, outcome)
        await self.return_to_user(task)
        return result

    async def _refuse(self, task: TaskStruct, src: str, name: str, msgid: int, started: float, exc: OSError) -> None:
        """A syscall refused at the door (a bad argument): its exit event, the return to user mode, the errno."""
        if self.tracer.on:
            self._trace_exit(
                task, src, name, msgid, started, {"errno": abi.errno_name(exc.errno), "message": exc.strerror}
            )
        await self.return_to_user(task)
        raise exc

    def _oops_kill(self, task: TaskStruct, where: str, exc: Exception) -> TaskExit:
        """An oops, and the task dies of it as of SIGKILL: raise what this returns."""
        self.oops(task, where, exc)
        task.killed = abi.SIGKILL
        return TaskExit(abi.W_EXITCODE(0, abi.SIGKILL))

    def oops(self, task: TaskStruct, where: str, exc: BaseException) -> None:
        """Record a kernel bug met on ``task``'s behalf: an ``oops`` event with the traceback,
        kept for check_invariants. The caller kills the task; the kernel goes on (Linux's die()).
        A reply that broke its contract is the service's bug (its report says so): the oops
        names the service, not the kernel line that met it."""
        who = f"pid {task.pid} ({task.comm})"
        if isinstance(exc, ServiceBug):
            line = f"oops in {who} during {where}: {exc.service}.{exc.op} (#{exc.msgid}) broke its reply contract"
        elif isinstance(exc, OSError):  # an error reply: the service's message says where
            line = f"oops in {who} during {where}: {abi.errno_name(exc.errno or 0)}: {bounded(exc.strerror, 300)}"
        else:
            line = f"oops in {who} during {where}: {bounded(exc)} at {fault_site(exc)}"
        self.oopses.append(line)
        if self.tracer.on:
            text = "".join(traceback.format_exception(exc))
            self.tracer.emit("oops", src="kernel", op=where, pid=task.pid, tid=task.pid, message=line, traceback=text)

    def _trace_exit(self, task: TaskStruct, src: str, name: str, msgid: int, started: float, outcome: dict) -> None:
        """The syscall_exit event: ``outcome`` holds ``result`` (and ``child``, ``old_handler``)
        or ``errno`` and ``message`` (and ``mask``)."""
        self.tracer.syscall_exit(src, task.pid, name, msgid, int((time.perf_counter() - started) * 1e6), outcome)

    async def return_to_user(self, task: TaskStruct) -> int | None:
        """exit_to_user_mode: a fatal signal ends the task, pending signals are delivered,
        a used-up slice preempts. The sa_flags of the first handler run, None if none ran."""
        if self.sleeping:  # whoever this syscall woke gets a CPU now, in a fixed order
            await self.wake_sleepers(task)
        if abi.RLIMIT_CPU in task.leader.rlim:
            await check_rlimit_cpu(self, task)
        if task.killed:
            raise TaskExit(abi.W_EXITCODE(0, task.killed))
        handled = await do_signal(self, task) if task.sigpending else None
        if task.slice <= 0 and self.chooser is None:  # with a chooser, it alone preempts (choice.py)
            await self.schedule(task, "preempted")
        return handled


def _handler_name(task: TaskStruct, args: dict) -> str | None:
    """sigaction's handler by name (``on_usr1``, ``SIG_IGN``), as strace prints it: the
    args hold libc's token for it."""
    return handler_name(task, args.get("handler")) if isinstance(args, dict) else None


#: Values _printable keeps as they are (exact types: a subclass may be callable).
_PLAIN = frozenset({int, str, bytes, bool, float, type(None)})


def _printable(value: Any, depth: int = 0) -> Any:
    """Trace args hold msgpack types: a function becomes its name; past 8 levels
    (a program may pass a list that holds itself) a list is its short repr."""
    if depth > 8:
        return reprlib.repr(value)
    if type(value) in _PLAIN:
        return value
    if type(value) is dict and depth < 8:  # most syscalls' args: plain values, copied at once
        for v in value.values():
            if type(v) not in _PLAIN:
                break
        else:
            return dict(value)
    if isinstance(value, dict):
        return {k: _printable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v, depth + 1) for v in value]
    if callable(value):
        return getattr(value, "__qualname__", repr(value))
    return value
