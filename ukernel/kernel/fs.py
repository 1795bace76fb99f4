"""The file syscalls (fs/open.c, fs/read_write.c, fs/pipe.c): messages to the vfs.

Most are one vfs message carrying the task's handles (files, fs); open, read
and write may sleep (a FIFO with no partner, an empty pipe, the terminal)
until the vfs wakes the task, and a path that enters /proc is finished by the
kernel (procfs.py), which owns the task table /proc shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import abi
from . import procfs
from .hung import CONSOLE_INPUT
from .signal import send_to_thread
from .task import TaskStruct
from .time import service_wait_timeout
from .tty import fg_args, job_args, tty_check_change

Handler = Callable[..., Awaitable[Any]]

if TYPE_CHECKING:
    from .core import Kernel


def vfs_syscall(op: str, *handles: str) -> Handler:
    """A syscall that is one vfs message carrying the task's handles (files, fs); a path
    that enters /proc comes back as ``{"proc": rel}`` and the kernel finishes it."""

    async def handler(k: Kernel, task: TaskStruct, meta: dict, **args: Any) -> Any:
        reply = await k.call("vfs", op, {h: getattr(task, h) for h in handles} | args, meta)
        if isinstance(reply, dict) and "proc" in reply:
            return await procfs.finish_path(k, task, meta, op, reply, args, handler)
        return reply

    handler.__name__ = f"sys_{op}"
    return handler


_vfs_open = vfs_syscall("open", "files", "fs")


async def sys_open(k: Kernel, task: TaskStruct, meta: dict, **args: Any) -> int:
    """open; on a FIFO with no partner yet the task sleeps until one opens the other
    end (fifo_open's wait_for_partner); a signal closes the new fd and says EINTR. A
    session leader opening the console may acquire it as its controlling terminal."""
    reply = await _vfs_open(k, task, meta, **args, job=job_args(task))
    if not isinstance(reply, dict):
        return reply
    if "ctty" in reply:  # tty_open_proc_set_tty
        task.leader.tty = reply["ctty"]
        return reply["fd"]
    partner = "writer" if args.get("flags", 0) & abi.O_ACCMODE == abi.O_RDONLY else "reader"
    try:
        await k.service_wait(task, "vfs", reply["wait"], meta, f"FIFO inode {reply['ino']}: no {partner} yet")
    except OSError:
        await k.call("vfs", "close", {"files": task.files, "fd": reply["fd"]}, meta)
        raise
    return reply["fd"]


async def sys_read(k: Kernel, task: TaskStruct, meta: dict, fd: int, n: int) -> bytes:
    """read may sleep (an empty pipe, the terminal) until the vfs wakes the task; a read of
    the controlling terminal from a background group is SIGTTIN (tty_check_change)."""
    args = {"files": task.files, "fd": fd, "n": n} | fg_args(task)
    try:
        reply = await k.call_blocking(task, "vfs", "read", args, meta, _read_waits_for)
    except OSError as exc:
        if exc.errno == abi.EAGAIN:  # O_NONBLOCK: perhaps the console, whose host pipe is read on demand
            k.console_wanted.set()
        raise
    if isinstance(reply, dict) and "jobctl" in reply:
        await tty_check_change(k, task, reply["jobctl"], meta)  # SIGTTIN never lets the read go on
    if isinstance(reply, dict) and "vtime" in reply:
        return await n_tty_read_timed(k, task, meta, fd, n, reply)
    return reply


async def n_tty_read_timed(k: Kernel, task: TaskStruct, meta: dict, fd: int, n: int, reply: dict) -> bytes:
    """n_tty_read's loop with VTIME: each step's bytes are the read's, then the task sleeps for
    more with the vfs's timer (none before the first byte when VMIN is set). The timer running
    out ends the read with what it has; so does a signal once a byte came (else ERESTARTSYS)."""
    got = b""
    while isinstance(reply, dict) and "vtime" in reply:
        got += reply["data"]
        k.console_wanted.set()  # the host's input is read now (kernel/console.py)
        try:
            if reply["timeout"] is None:
                await k.service_wait(task, "vfs", reply["vtime"], meta, CONSOLE_INPUT)
            elif not await service_wait_timeout(k, task, "vfs", reply["vtime"], meta, CONSOLE_INPUT, reply["timeout"]):
                return got
        except OSError:
            if got:
                return got
            raise
        args = {"files": task.files, "fd": fd, "n": n - len(got), "got": len(got)}
        reply = await k.call_blocking(task, "vfs", "n_tty_read", args, meta, _read_waits_for)
    return got + reply


def _read_waits_for(k: Kernel, reply: dict) -> str:
    """A read waits on a pipe (the vfs names its inode) or on the console, whose host
    pipe or file is read now (kernel/console.py)."""
    if "ino" in reply:
        return f"read end of pipe inode {reply['ino']}"
    k.console_wanted.set()
    return CONSOLE_INPUT


async def sys_write(k: Kernel, task: TaskStruct, meta: dict, fd: int, data: bytes) -> int:
    """pipe_write: what fits goes in, the writer sleeps for room for the rest; a
    signal after a partial write returns the count; no reader left is EPIPE and
    SIGPIPE to the writing thread. With TOSTOP a background write to the controlling
    terminal is SIGTTOU first (unless SIGTTOU is ignored: then it is written)."""
    done, job = 0, fg_args(task)
    while True:
        try:
            reply = await k.call("vfs", "write", {"files": task.files, "fd": fd, "data": data[done:]} | job, meta)
        except OSError as exc:
            if exc.errno == abi.EPIPE:
                await send_to_thread(k, task, abi.SIGPIPE, meta)
            if done and exc.errno == abi.EPIPE:
                return done
            raise
        if isinstance(reply, int):
            return done + reply
        if "proc" in reply:  # a /proc file the kernel takes writes to
            return done + await procfs.write(k, task, reply["proc"], data[done:], meta)
        if "jobctl" in reply:
            await tty_check_change(k, task, reply["jobctl"], meta)
            job = {}  # SIGTTOU ignored: write after all
            continue
        done += reply["written"]
        try:
            await k.service_wait(task, "vfs", reply["wait"], meta, f"write end of pipe inode {reply['ino']} (full)")
        except OSError:
            if done:
                return done
            raise
