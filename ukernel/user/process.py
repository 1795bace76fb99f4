"""A task's Python life: start its code, record its syscalls, replay them for a fork child.

A fork child gets a fresh image that re-runs the program from its start,
answering each syscall from the journal without effect (so nothing is
written twice), until the journal's last entry, the fork itself, returns 0.
Where the parent ran a signal handler, the child runs its own image's copy of
that handler at the same point, its syscalls answered from the journal too.
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
from ..kernel.task import ExecImage, TaskExit, WaitChannel, current
from . import libc
from .awaited import SyscallCall, dropped
from .binfmt import Image, ReplayDiverged
from .journal import HANDLE_SIGNAL, RT_SIGRETURN, Journal
from .libc import Sys
from .replay import MISS, HandlerFrame, Replay, outer_syscall, replaying, signame
from .space import LastCopy, copy_space, restore_space

if TYPE_CHECKING:
    from ..kernel.core import Kernel
    from ..kernel.task import TaskStruct


_LIBC = vars(libc)  # libc's globals: a call made from there is libc's own

#: Where a task whose do_exit oopsed stays: off every CPU, never a zombie (make_task_dead).
OOPSED_IN_EXIT = WaitChannel("exit", "nothing: do_exit oopsed, it never finishes exiting")


class Runtime:
    """Starts tasks' Python code, records and replays syscalls, copies images."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.sys = Sys(kernel)
        self.replays: dict[int, Replay] = {}  # task id -> its place in the journal it replays
        self.unawaited: dict[int, list[SyscallCall]] = {}  # task id -> its sys calls not yet awaited
        self.last_copy = LastCopy()  # the last clone(fn) snapshot: its children share an equal one

    def forget(self, task: TaskStruct) -> None:
        """The task's image is gone (exit, exec): nothing of its journal is left to replay,
        and what the old program called without awaiting will never run."""
        replay = self.replays.get(task.id)
        if replay is not None:
            self._replay_over(task, replay)
        for call in self.unawaited.pop(task.id, []):
            call.drop()

    def called(self, name: str, coro: Any, frame: Any) -> Any:
        """A ``sys`` method was called (awaited.py): listed on the task until awaited. Not
        listed: libc's own inner calls (it awaits them), and (awaited.py does not call this)
        a fork child's calls while it replays a parent that held no call across the fork:
        the parent's journal says each was awaited (else it would have been killed before
        forking), so the child's are too, and the replay costs no bookkeeping per call."""
        task = current.get(None)
        if task is None or frame.f_globals is _LIBC:
            return coro
        return SyscallCall(name, coro, frame.f_code.co_filename, frame.f_lineno, self.unawaited.setdefault(task.id, []))

    async def _check_awaited(self, task: TaskStruct, name: str) -> None:
        """At a syscall's entry: a call the program made and let go of without ``await`` never
        ran, so what follows is not what the program means; it is said where, and the process
        is killed as Linux kills a bad system call (SIGSYS). At exit every call left counts."""
        pending = self.unawaited.get(task.id)
        forgotten = list(pending) if name in ("exit", "exit_group") else dropped(pending)
        if not forgotten:
            return
        await self._say_forgotten(task, forgotten)
        raise TaskExit(abi.W_EXITCODE(0, abi.SIGSYS))

    async def _say_forgotten(self, task: TaskStruct, calls: list[SyscallCall]) -> None:
        image = task.image
        for call in calls:
            call.drop()
            where = image.shown_path if image is not None and call.filename == image.path else call.filename
            await self._write_stderr(task, f"ukernel: {call.advice(where)}\n")

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
        if args.fn is not None:  # the handlers are in the copy, bound to it (copy_sighand's Python half)
            data, keep, (namespace, fn, arg, handlers) = copy_space(
                image.namespace,
                (args.fn, args.arg, image.handlers),
                (self.sys, dict.get(image.namespace, "__builtins__")),
                self.last_copy,
            )
            child.image = Image(
                image.path,
                image.code,
                image.argv,
                image.envp,
                namespace,
                Journal(),
                data,
                keep,
                handlers,
                image.host,
                image.watched,
            )
            return ("call", fn, arg)
        refusal = image.journal.fork_refusal(current.id)
        if refusal is not None:
            raise abi.kernel_error(abi.ENOSYS, refusal)
        child.image = image.fork_copy(child.id, args.syscall)
        return ("replay", bool(self.unawaited.get(current.id)))  # (calls held across the fork)

    async def syscall(self, name: str, args: dict) -> Any:
        """The kernel entry every ``sys`` method goes through but a replayed plain result's
        (libc answers it, replay.py), so the CPU limit's watchdog sees the task leave user
        mode here, and come back on the way out."""
        task = current.get()
        watchdog = self.kernel.watchdog
        watchdog.enter_kernel()
        try:
            if self.unawaited.get(task.id):
                await self._check_awaited(task, name)
            replay = self.replays.get(task.id)
            if replay is None:  # live: the kernel's answer, journaled for a later fork's child
                if replaying.get() is not None:  # a cursor closed from another task's context
                    replaying.set(None)
                image = task.image  # (here, not in a coroutine of its own: a blocked call's one frame)
                try:
                    result = await self.kernel.syscall(task, name, args)
                except OSError as exc:
                    if image is not None and task.image is image:
                        image.journal.record(task.id, name, False, (exc.errno, exc.strerror))
                    raise
                if image is not None and task.image is image:
                    image.journal.record(task.id, name, True, result)
                return result
            value = replay.answer(name)  # (a child replaying with its calls watched comes here)
            if value is not MISS:
                return value
            replay.calls += 1
            if replay.peek()[1] == HANDLE_SIGNAL:  # (a test, not a coroutine, when no handler ran)
                return self._replay(task, replay, name, await self._replay_handlers(task, replay, name))
            return self._replay(task, replay, name, None)
        finally:
            watchdog.leave_kernel(task)

    async def _replay_handlers(self, task: TaskStruct, replay: Replay, name: str) -> OSError | None:
        """The handlers the parent ran on this syscall's way out run first, as they did
        (their entries come before the syscall's own). Live, a handler's OSError became
        the syscall's: it is returned, and the syscall's entry must say so."""
        try:
            while replay.peek()[1] == HANDLE_SIGNAL:
                await self._replay_handler(task, replay, name)
        except OSError as exc:
            return exc
        return None

    def _replay(self, task: TaskStruct, replay: Replay, name: str, handler_error: OSError | None) -> Any:
        """Answer from the journal: no message, no effect."""
        _tid, expected, ok, value = replay.take()
        if expected == RT_SIGRETURN:
            raise self._diverged(task, replay, f"the parent's handler returned, the child's calls {name}()")
        if expected != name:
            raise self._diverged(task, replay, f"the parent called {expected}(), the child calls {name}()")
        if handler_error is not None and ok:
            raise self._diverged(task, replay, f"the parent's {name}() returned, the child's handler raised")
        if not ok:
            raise OSError(*value)
        return value

    async def _replay_handler(self, task: TaskStruct, replay: Replay, syscall: str) -> None:
        """The parent entered a handler here: run the child's own copy of it (same token)."""
        _tid, _, token, args = replay.take()
        sig = args[0]
        outer = outer_syscall(replay.ahead())
        if outer is not None and outer != syscall:
            what = f"the parent called {outer}() and ran its {signame(sig)} handler on the way out, the child calls {syscall}()"
            raise self._diverged(task, replay, what)
        handler = task.image.handlers.get(token)
        if handler is None:
            raise self._diverged(task, replay, f"the parent ran a {signame(sig)} handler the child never registered")
        replay.frames.append(HandlerFrame(sig, syscall, replay.calls))
        try:
            await self._user_mode(task, _call_maybe_async(handler, self.sys, *args))
        except ReplayDiverged:
            raise
        except BaseException as exc:  # whatever the handler raised, as the parent's journal says (live: finally)
            if not _is_cancelled(exc):
                self._replay_sigreturn(task, replay, returned=False)
            raise
        self._replay_sigreturn(task, replay, returned=True)

    def _replay_sigreturn(self, task: TaskStruct, replay: Replay, returned: bool) -> None:
        """The child's handler is done: the parent's must have ended here, the same way."""
        how = "returned" if returned else "raised"
        _tid, name, ok, _sig = replay.take()
        if name != RT_SIGRETURN:
            raise self._diverged(task, replay, f"the parent's handler called {name}() next, the child's {how}", True)
        if ok != returned:
            other = "returned" if ok else "raised"
            raise self._diverged(task, replay, f"the parent's handler {other}, the child's {how}", True)
        replay.frames.pop()

    def _replay_over(self, task: TaskStruct, replay: Replay) -> None:
        """The replay is over (its last entry taken, a divergence, the image gone): the
        task's calls are live and watched from here."""
        self.replays.pop(task.id, None)
        replay.close()
        if current.get(None) is task:
            replaying.set(None)

    def _diverged(self, task: TaskStruct, replay: Replay, what: str, after: bool = False) -> ReplayDiverged:
        """The replay has lost its place: it ends (task_main prints the line, exit 1)."""
        self._replay_over(task, replay)
        return replay.diverged(what, after)

    async def run_handler(self, task: TaskStruct, token: int, sig: int, flags: int) -> None:
        """Run a caught signal's handler in the task, with the signal blocked meanwhile.
        Entering and leaving it are journal entries, so a fork child replays it here too."""
        image = task.image
        handler = image.handlers.get(token) if image is not None else None
        if handler is None:
            raise TaskExit(abi.W_EXITCODE(0, sig))  # no such handler in this image: the default, terminate
        added = sig not in task.blocked and not flags & abi.SA_NODEFER
        if added:
            task.blocked = task.blocked | {sig}
        args = (sig,)  # what the handler is called with after sys, recorded for the replay
        image.journal.record(task.id, HANDLE_SIGNAL, token, args)
        returned = False
        try:
            await self._user_mode(task, _call_maybe_async(handler, self.sys, *args))
            returned = True
        finally:
            if task.image is image:  # (an execve in the handler left this journal behind)
                image.journal.record(task.id, RT_SIGRETURN, returned, sig)
            if added:
                task.blocked = task.blocked - {sig}
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
            k.watchdog.leave_kernel(task)  # _user_mode's lines: a blocked task keeps one frame less
            try:
                code = await self._start(task, task.entry)
            finally:
                k.watchdog.enter_kernel()
            group = task.entry[0] != "call" or task.image is None
            # libc after main returns: exit_group(code); glibc's clone() after fn returns: exit(code)
            await self.syscall("exit_group" if group else "exit", {"code": code if isinstance(code, int) else 0})
        except TaskExit as exc:
            code, group = exc.status, exc.group
        except KernelPanic:
            return  # the run is over: a service bug the kernel cannot go on with (kernel/bug.py)
        except SystemExit as exc:  # Python's sys.exit(n): exit(n), as the interpreter would
            code, group = abi.W_EXITCODE(await self._exit_status(task, exc.code)), True
        except ReplayDiverged as exc:  # not the program's bug a traceback would show: one line
            code, group = abi.W_EXITCODE(1), True
            await self._write_stderr(task, f"ReplayDiverged: {exc}\n")
        except BaseException as exc:  # an uncaught exception: traceback to fd 2, status 1
            if _is_cancelled(exc):
                raise  # the run is shutting down: not the program's doing
            code, group = abi.W_EXITCODE(1), True
            await self._report(task, exc)
        await self._say_forgotten(task, self.unawaited.pop(task.id, []))  # (exited without a syscall)
        try:
            await do_exit(k, task, code, group)
        except KernelPanic:
            return
        except Exception as exc:  # a bug on the exit path: an oops; the task cannot finish exiting
            if not k.lost:  # (a service this exit needed is lost: ukernel.run says so)
                k.oops(task, "do_exit", exc)
                await self._make_task_dead(task)
            return
        status.append(code)

    async def _make_task_dead(self, task: TaskStruct) -> None:
        """make_task_dead after an oops in do_exit: the task leaves its CPU for good, so the
        others run on; whoever waits for its exit (never notified) is then a hang the
        deadlock watcher names, not a kernel that stopped with a CPU held for ever."""
        k = self.kernel
        if task.cpu is not None:
            try:
                await k.task_dead(task, {"pid": task.pid, "tid": task.pid, "syscall": "exit"})
            except Exception as exc:  # leaving the CPU failed too: the run cannot go on (kernel/bug.py)
                k.panic(k.oops_report("leaving the CPU after an oops in do_exit", exc))
        task.wchan, task.sleep_interruptible = OOPSED_IN_EXIT, False  # as the hang dump shows it: D
        if task.pid in k.exits:  # a task the kernel itself waits for (init): it will not exit now
            task.exit_code = abi.W_EXITCODE(0, abi.SIGKILL)
            k.reaped(task)

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

    async def _start(self, task: TaskStruct, entry: tuple) -> Any:
        kind = entry[0]
        while True:
            try:
                if kind == "call":  # (_call_maybe_async's two lines: a blocked child's frame less)
                    result = entry[1](self.sys, entry[2])
                    return (await result) if hasattr(result, "__await__") else result
                if kind == "kthread":
                    return await entry[1](self.sys, entry[2])
                if kind == "replay":
                    return await self._start_replay(task, entry[1])
                return await task.image.namespace["main"](self.sys, task.image.argv)
            except ExecImage:
                kind = "main"

    async def _start_replay(self, task: TaskStruct, watch_calls: bool) -> Any:
        image = task.image
        replay = Replay(
            image.journal.segments(), self.kernel.watchdog, lambda: self._replay_over(task, replay), watch_calls
        )
        self.replays[task.id] = replay
        if not watch_calls:
            replaying.set(replay)
        if image.snapshot is not None:
            namespace, fn, arg, handlers = restore_space(image.snapshot, image.snapshot_keep)
            image.namespace, image.handlers = namespace, dict(handlers)
            return await _call_maybe_async(fn, self.sys, arg)
        image.namespace = image.fresh_namespace()
        return await image.namespace["main"](self.sys, image.argv)

    async def _report(self, task: TaskStruct, exc: BaseException) -> None:
        await self._write_stderr(task, format_user_traceback(exc))

    async def _write_stderr(self, task: TaskStruct, text: str) -> None:
        """Write to the dying program's fd 2, as the interpreter does; whatever fails is dropped."""
        replay = self.replays.get(task.id)
        if replay is not None:
            self._replay_over(task, replay)
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


async def _call_maybe_async(fn: Any, sys: Sys, *args: Any) -> Any:
    result = fn(sys, *args)
    if hasattr(result, "__await__"):
        result = await result
    return result


def _is_cancelled(exc: BaseException) -> bool:
    """trio's Cancelled, alone or in a group: the run is ending, let it through."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(trio.Cancelled) is not None
    return isinstance(exc, trio.Cancelled)
