"""A task's Python life: start its code, record its syscalls, replay them for a fork child.

A fork child gets a fresh image that re-runs the program from its start,
answering each syscall from the journal without effect (so nothing is
written twice), until the journal's last entry, the fork itself, returns 0.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from ..kernel.bug import KernelPanic
from ..kernel.exit import do_exit
from ..kernel.task import ExecImage, TaskExit, current
from .binfmt import Image, ReplayDiverged
from .libc import Sys
from .space import copy_space, restore_space

if TYPE_CHECKING:
    from ..kernel.core import Kernel
    from ..kernel.task import TaskStruct


class Runtime:
    """Starts tasks' Python code, records and replays syscalls, copies images."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.sys = Sys(kernel)
        self.replays: dict[int, list] = {}  # task id -> journal entries still to replay

    def forget(self, task: TaskStruct) -> None:
        """The task's image is gone (exit, exec): nothing of its journal is left to replay."""
        self.replays.pop(task.id, None)

    def leftovers(self) -> list[int]:
        """Tasks with replays unfinished: check_invariants reports them."""
        return sorted(self.replays)

    # called by copy_process's copy_thread step
    def copy_thread(self, current: TaskStruct, child: TaskStruct, args: Any) -> tuple:
        """Decide how the child starts; its clone/fork returns 0 there."""
        image = current.image
        if image is None:  # a kernel thread's child: runs only what the kernel gives it
            child.image = None
            return ("kthread", args.fn, args.arg)
        if args.fn is not None and args.flags & abi.CLONE_VM:
            child.image = image  # a thread: the same program namespace
            return ("call", args.fn, args.arg)
        if args.fn is not None:
            data, keep, (namespace, fn, arg) = copy_space(
                image.namespace, (args.fn, args.arg), (self.sys, image.namespace.get("__builtins__"))
            )
            child.image = Image(image.path, image.code, image.argv, image.envp, namespace, [], data, keep)
            return ("call", fn, arg)
        if len({who for who, *_ in image.journal} | {current.id}) > 1:
            raise abi.kernel_error(
                abi.ENOSYS,
                "fork in a multi-threaded program: replaying the other threads is not built yet; use clone(fn)",
            )
        child.image = image.fork_copy(current.id, child.id, args.syscall)
        return ("replay",)

    async def syscall(self, name: str, args: dict) -> Any:
        """The kernel entry every ``sys`` method goes through (the CPU limit's watchdog
        sees the task leave user mode here, and come back on the way out)."""
        task = current.get()
        watchdog = self.kernel.watchdog
        watchdog.enter_kernel()
        try:
            return await self._syscall(task, name, args)
        finally:
            watchdog.leave_kernel(task)

    async def _syscall(self, task: TaskStruct, name: str, args: dict) -> Any:
        pending = self.replays.get(task.id)
        if pending is not None:
            return self._replay(task, pending, name)
        image = task.image
        try:
            result = await self.kernel.syscall(task, name, args)
        except OSError as exc:
            if image is not None and task.image is image:
                image.journal.append((task.id, name, False, (exc.errno, exc.strerror)))
            raise
        if image is not None and task.image is image:
            image.journal.append((task.id, name, True, result))
        return result

    def _replay(self, task: TaskStruct, pending: list, name: str) -> Any:
        """Answer from the journal: no message, no effect."""
        _tid, expected, ok, value = pending.pop()
        if not pending:
            del self.replays[task.id]
        if expected != name:
            done = len(task.image.journal) - len(pending) - 1
            raise ReplayDiverged(
                f"replay diverged at syscall #{done + 1}: the parent called {expected}(), the child calls {name}()"
            )
        if not ok:
            raise OSError(*value)
        return value

    async def run_handler(self, task: TaskStruct, token: int, sig: int, flags: int) -> None:
        """Run a caught signal's handler in the task, with the signal blocked meanwhile."""
        handler = task.image.handlers.get(token) if task.image is not None else None
        if handler is None:
            raise TaskExit(abi.W_EXITCODE(0, sig))  # no such handler in this image: the default, terminate
        added = sig not in task.blocked and not flags & abi.SA_NODEFER
        if added:
            task.blocked.add(sig)
        try:
            await self._user_mode(task, _call_maybe_async(handler, self.sys, sig))
        finally:
            if added:
                task.blocked.discard(sig)
                task.sigpending = True  # recalc_sigpending after the mask changes back

    async def task_main(self, task: TaskStruct, status: list) -> None:
        """A task's whole life on its trio task: wait for a CPU, run, exit."""
        current.set(task)
        k = self.kernel
        code = 0
        try:
            await k.wait_cpu(task)
            k.program_starts(task)
            if task.set_child_tid:
                await k.schedule_tail(task)
            code = await self._run_entry(task, task.entry)
            code = abi.W_EXITCODE(code if isinstance(code, int) else 0)
            group = task.entry[0] != "call" or task.image is None
        except TaskExit as exc:
            code, group = exc.status, exc.group
        except KernelPanic:
            return  # the run is over: a service bug the kernel cannot go on with (kernel/bug.py)
        except SystemExit as exc:  # Python's sys.exit(n): exit(n), as the interpreter would
            code, group = abi.W_EXITCODE(await self._exit_status(task, exc.code)), True
        except BaseException as exc:  # an uncaught exception: traceback to fd 2, status 1
            if _is_cancelled(exc):
                raise  # the run is shutting down: not the program's doing
            code, group = abi.W_EXITCODE(1), True
            await self._report(task, exc)
        try:
            await do_exit(k, task, code, group)
        except KernelPanic:
            return
        except Exception as exc:  # a bug on the exit path: an oops; the task cannot finish exiting
            if not k.lost:  # (a service this exit needed is lost: ukernel.run says so)
                k.oops(task, "do_exit", exc)
            return
        status.append(code)

    async def _exit_status(self, task: TaskStruct, code: Any) -> int:
        """SystemExit's code as the interpreter reads it: None is 0, an int is itself,
        anything else is printed to stderr and exits 1."""
        if code is None:
            return 0
        if isinstance(code, int) and not isinstance(code, bool):
            return code & 0xFF
        await self._write_stderr(task, f"{code}\n")
        return 1

    async def _user_mode(self, task: TaskStruct, code: Awaitable) -> Any:
        """Run user code (a program, a signal handler) under the CPU limit's watch."""
        self.kernel.watchdog.leave_kernel(task)
        try:
            return await code
        finally:
            self.kernel.watchdog.enter_kernel()

    async def _run_entry(self, task: TaskStruct, entry: tuple) -> Any:
        return await self._user_mode(task, self._start(task, entry))

    async def _start(self, task: TaskStruct, entry: tuple) -> Any:
        kind = entry[0]
        while True:
            try:
                if kind == "call":
                    return await _call_maybe_async(entry[1], self.sys, entry[2])
                if kind == "kthread":
                    return await entry[1](self.sys, entry[2])
                if kind == "replay":
                    return await self._start_replay(task)
                return await task.image.namespace["main"](self.sys, task.image.argv)
            except ExecImage:
                kind = "main"

    async def _start_replay(self, task: TaskStruct) -> Any:
        image = task.image
        self.replays[task.id] = list(reversed(image.journal))
        if image.snapshot is not None:
            namespace, fn, arg = restore_space(image.snapshot, image.snapshot_keep)
            image.namespace = namespace
            return await _call_maybe_async(fn, self.sys, arg)
        image.namespace = image.fresh_namespace()
        return await image.namespace["main"](self.sys, image.argv)

    async def _report(self, task: TaskStruct, exc: BaseException) -> None:
        await self._write_stderr(task, format_user_traceback(exc))

    async def _write_stderr(self, task: TaskStruct, text: str) -> None:
        """Write to the dying program's fd 2, as the interpreter does; whatever fails is dropped."""
        self.replays.pop(task.id, None)
        try:
            await self.kernel.syscall(task, "write", {"fd": 2, "data": text.encode("utf-8", "replace")})
        except (OSError, TaskExit):
            pass


def format_user_traceback(exc: BaseException) -> str:
    """The traceback a program's author needs: their frames, not the kernel's."""
    here = str(Path(__file__).resolve().parent.parent)  # the ukernel package
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join(lines + traceback.format_exception_only(exc))


async def _call_maybe_async(fn: Any, sys: Sys, arg: Any) -> Any:
    result = fn(sys, arg)
    if hasattr(result, "__await__"):
        result = await result
    return result


def _is_cancelled(exc: BaseException) -> bool:
    """trio's Cancelled, alone or in a group: the run is ending, let it through."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(trio.Cancelled) is not None
    return isinstance(exc, trio.Cancelled)
