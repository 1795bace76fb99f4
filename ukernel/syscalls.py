"""The syscall table: each syscall's name and where it is routed.

A handler is ``async def sys_x(k, task, meta, **args)``; ``meta`` carries the
syscall's msgid as ``cause`` for every message it sends. Calls answered from
the task_struct (getpid, gettid, getppid) send no message at all, as in
Linux where they never leave the core kernel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import abi, procfs
from .clone import CloneArgs, kernel_clone
from .exec import do_execve
from .exit import do_wait
from .futex import sys_futex, sys_set_tid_address
from .nsproxy import NS_SYSCALLS
from .pgrp import sys_getpgid, sys_getsid, sys_setpgid, sys_setsid
from .runtime import TaskExit
from .sched_syscalls import SCHED_SYSCALLS
from .signal import k_kill, send_to_thread, sys_kill, sys_pause, sys_sigaction, sys_sigprocmask, sys_tgkill
from .task import TaskStruct

if TYPE_CHECKING:
    from .kernel import Kernel

Handler = Callable[..., Awaitable[Any]]


# --- process life (kernel, with the clone router) ------------------------------------------
async def sys_fork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return await kernel_clone(k, task, CloneArgs(exit_signal=abi.SIGCHLD, syscall="fork"), meta["cause"])


async def sys_vfork(k: Kernel, task: TaskStruct, meta: dict) -> int:
    args = CloneArgs(flags=abi.CLONE_VFORK | abi.CLONE_VM, exit_signal=abi.SIGCHLD, syscall="vfork")
    return await kernel_clone(k, task, args, meta["cause"])


async def sys_clone(
    k: Kernel, task: TaskStruct, meta: dict, flags: int, fn: Any, arg: Any, parent_tid: int, child_tid: int, tls: int
) -> int:
    """clone(): the low byte is the exit signal; bits above 32 are dropped (lower_32_bits)."""
    if not isinstance(flags, int):
        raise abi.kernel_error(abi.EINVAL, "clone flags must be an int")
    flags &= 0xFFFFFFFF
    if fn is not None and not callable(fn):
        raise abi.kernel_error(abi.EINVAL, "clone's fn must be callable")
    args = CloneArgs(flags & ~abi.CSIGNAL, flags & abi.CSIGNAL, fn, arg, parent_tid, child_tid, tls)
    return await kernel_clone(k, task, args, meta["cause"])


def clone3_args_valid(flags: int, exit_signal: int, set_tid: list) -> None:
    """copy_clone_args_from_user and clone3_args_valid (clone-semantics.md §2a-§2b): EINVAL."""
    checks = (
        (len(set_tid) > abi.MAX_PID_NS_LEVEL, f"set_tid has {len(set_tid)} entries; at most {abi.MAX_PID_NS_LEVEL}"),
        (exit_signal & ~abi.CSIGNAL or not abi.valid_signal(exit_signal), f"bad exit_signal {exit_signal}"),
        (
            flags & ~(abi.CLONE_LEGACY_FLAGS | abi.CLONE_CLEAR_SIGHAND | abi.CLONE_INTO_CGROUP),
            f"unknown flag bits in {flags:#x}",
        ),
        (
            flags & (abi.CLONE_DETACHED | (abi.CSIGNAL & ~abi.CLONE_NEWTIME)),
            "CLONE_DETACHED or exit-signal bits in clone3 flags",
        ),
        (flags & abi.CLONE_SIGHAND and flags & abi.CLONE_CLEAR_SIGHAND, "CLONE_SIGHAND with CLONE_CLEAR_SIGHAND"),
        (
            flags & (abi.CLONE_THREAD | abi.CLONE_PARENT) and exit_signal,
            "CLONE_THREAD or CLONE_PARENT with an exit_signal",
        ),
    )
    for failed, why in checks:
        if failed:
            raise abi.kernel_error(abi.EINVAL, why)


async def sys_clone3(
    k: Kernel, task: TaskStruct, meta: dict, flags: int, exit_signal: int, fn: Any, arg: Any, set_tid: list, pidfd: bool
) -> int:
    """clone3(): flags and exit_signal apart, checked; set_tid picks the numbers."""
    if not isinstance(flags, int) or not isinstance(exit_signal, int) or not all(isinstance(t, int) for t in set_tid):
        raise abi.kernel_error(abi.EINVAL, "clone3 takes int flags, exit_signal and set_tid")
    clone3_args_valid(flags, exit_signal, list(set_tid))
    if flags & abi.CLONE_INTO_CGROUP:
        raise abi.kernel_error(abi.ENOSYS, "CLONE_INTO_CGROUP needs cgroup v2 (not built yet)")
    if pidfd:
        flags |= abi.CLONE_PIDFD
    if fn is not None and not callable(fn):
        raise abi.kernel_error(abi.EINVAL, "clone3's fn must be callable")
    args = CloneArgs(flags, exit_signal, fn, arg, set_tid=list(set_tid), syscall="clone3")
    return await kernel_clone(k, task, args, meta["cause"])


async def sys_execve(k: Kernel, task: TaskStruct, meta: dict, path: str, argv: list, envp: dict) -> None:
    await do_execve(k, task, meta, path, argv, envp)


async def sys_exit(k: Kernel, task: TaskStruct, meta: dict, code: int) -> None:
    raise TaskExit(abi.W_EXITCODE(code), group=False)


async def sys_exit_group(k: Kernel, task: TaskStruct, meta: dict, code: int) -> None:
    raise TaskExit(abi.W_EXITCODE(code), group=True)


async def sys_wait4(k: Kernel, task: TaskStruct, meta: dict, pid: int, options: int) -> list:
    return await do_wait(k, task, pid, options)


async def sys_getpid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.leader.nr_in(task.level)


async def sys_gettid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.nr_in(task.level)


async def sys_getppid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    return task.ppid_vnr(task)


async def sys_sched_yield(k: Kernel, task: TaskStruct, meta: dict) -> None:
    await k.schedule(task, "yield")


async def sys_set_child_subreaper(k: Kernel, task: TaskStruct, meta: dict, flag: bool) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants come to us, not to init."""
    task.leader.child_subreaper = bool(flag)


async def sys_prlimit(k: Kernel, task: TaskStruct, meta: dict, resource: int, new: int | None) -> int:
    """prlimit on the calling process; only RLIMIT_NPROC is modelled."""
    if resource != abi.RLIMIT_NPROC:
        raise abi.kernel_error(abi.ENOSYS, f"resource {resource} is not modelled (only RLIMIT_NPROC)")
    old = task.leader.rlim.get(resource, k.config.nproc)
    if new is not None:
        if not isinstance(new, int) or new < abi.RLIM_INFINITY:
            raise abi.kernel_error(abi.EINVAL, f"bad limit {new!r}")
        task.leader.rlim[resource] = new
    return old


# --- files (vfs) --------------------------------------------------------------------------
def _vfs(op: str, *handles: str) -> Handler:
    """A syscall that is one vfs message carrying the task's handles (files, fs); a path
    that enters /proc comes back as ``{"proc": rel}`` and the kernel finishes it."""

    async def handler(k: Kernel, task: TaskStruct, meta: dict, **args: Any) -> Any:
        reply = await k.call("vfs", op, {h: getattr(task, h) for h in handles} | args, meta)
        if isinstance(reply, dict) and "proc" in reply:
            return await procfs.finish_path(k, task, meta, op, reply, args, handler)
        return reply

    handler.__name__ = f"sys_{op}"
    return handler


_vfs_open = _vfs("open", "files", "fs")


async def sys_open(k: Kernel, task: TaskStruct, meta: dict, **args: Any) -> int:
    """open; on a FIFO with no partner yet the task sleeps until one opens the other
    end (fifo_open's wait_for_partner); a signal closes the new fd and says EINTR."""
    reply = await _vfs_open(k, task, meta, **args)
    if not isinstance(reply, dict):
        return reply
    try:
        await k.service_wait(task, "vfs", reply["wait"], meta)
    except OSError:
        await k.call("vfs", "close", {"files": task.files, "fd": reply["fd"]}, meta)
        raise
    return reply["fd"]


async def sys_read(k: Kernel, task: TaskStruct, meta: dict, fd: int, n: int) -> bytes:
    """read may sleep (an empty pipe, the terminal) until the vfs wakes the task."""
    return await k.call_blocking(task, "vfs", "read", {"files": task.files, "fd": fd, "n": n}, meta)


async def sys_write(k: Kernel, task: TaskStruct, meta: dict, fd: int, data: bytes) -> int:
    """pipe_write: what fits goes in, the writer sleeps for room for the rest; a
    signal after a partial write returns the count; no reader left is EPIPE and
    SIGPIPE to the writing thread."""
    done = 0
    while True:
        try:
            reply = await k.call("vfs", "write", {"files": task.files, "fd": fd, "data": data[done:]}, meta)
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
        done += reply["written"]
        try:
            await k.service_wait(task, "vfs", reply["wait"], meta)
        except OSError:
            if done:
                return done
            raise


# --- memory (mm) --------------------------------------------------------------------------
async def sys_mmap(
    k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int, prot: int, flags: int, fd: int, offset: int
) -> int:
    if fd != -1 and not flags & abi.MAP_ANONYMOUS:
        raise abi.kernel_error(abi.ENOSYS, "file mappings are not built yet; use MAP_ANONYMOUS")
    return await k.call(
        "mm", "mmap", {"mm": task.mm, "addr": addr, "length": length, "prot": prot, "flags": flags}, meta
    )


async def sys_munmap(k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int) -> None:
    await k.call("mm", "munmap", {"mm": task.mm, "addr": addr, "length": length}, meta)


async def sys_mprotect(k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int, prot: int) -> None:
    await k.call("mm", "mprotect", {"mm": task.mm, "addr": addr, "length": length, "prot": prot}, meta)


async def sys_brk(k: Kernel, task: TaskStruct, meta: dict, addr: int) -> int:
    """brk(0) asks; a failed move answers the old break (Linux's brk, not glibc's -1)."""
    return await k.call("mm", "brk", {"mm": task.mm, "addr": addr}, meta)


async def sys_getrusage(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    """The calling process's fault counts (from its mm) and the ticks it ran."""
    stat = await k.call("mm", "mm_stat", {"mm": task.mm}, meta) if task.mm is not None else {}
    ticks = sum(t.utime + t.ran for t in task.leader.thread_group)
    return {
        "utime": ticks,
        "stime": 0,
        "minflt": stat.get("min_flt", 0),
        "majflt": stat.get("maj_flt", 0),
        "maxrss": stat.get("hiwater_rss", 0) * abi.PAGE_SIZE // 1024,  # the high-water mark
    }


async def _user_access(k: Kernel, task: TaskStruct, meta: dict, op: str, args: dict) -> Any:
    """The CPU's load or store: a fault the mm cannot fix is a signal, not an errno:
    SIGSEGV for a bad address, SIGKILL when no frame is left (the OOM killer, aimed
    at the faulting task)."""
    try:
        return await k.call("mm", op, {"mm": task.mm, **args}, meta)
    except OSError as exc:
        sig = {abi.EFAULT: abi.SIGSEGV, abi.ENOMEM: abi.SIGKILL}.get(exc.errno)
        if sig is None:
            raise
        k_kill(task, sig)
        raise TaskExit(abi.W_EXITCODE(0, sig)) from None


async def sys_peek(k: Kernel, task: TaskStruct, meta: dict, addr: int, n: int) -> bytes:
    return await _user_access(k, task, meta, "read_mem", {"addr": addr, "n": n})


async def sys_cmpxchg(k: Kernel, task: TaskStruct, meta: dict, addr: int, old: int, new: int) -> int:
    return await _user_access(k, task, meta, "cmpxchg", {"addr": addr, "old": old, "new": new})


async def sys_poke(k: Kernel, task: TaskStruct, meta: dict, addr: int, data: bytes) -> int:
    return await _user_access(k, task, meta, "write_mem", {"addr": addr, "data": data})


# --- namespaces ---------------------------------------------------------------------------
async def sys_uname(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    return await k.call("namespaces", "uname", {"nsproxy": task.nsproxy}, meta)


async def sys_sethostname(k: Kernel, task: TaskStruct, meta: dict, name: str) -> None:
    await k.call("namespaces", "sethostname", {"nsproxy": task.nsproxy, "name": name}, meta)


# fmt: off
SYSCALLS: dict[str, tuple[str, Handler]] = {
    # name           routed to     handler
    "fork":          ("kernel",     sys_fork),
    "vfork":         ("kernel",     sys_vfork),
    "clone":         ("kernel",     sys_clone),
    "clone3":        ("kernel",     sys_clone3),
    "execve":        ("kernel",     sys_execve),
    "exit":          ("kernel",     sys_exit),
    "exit_group":    ("kernel",     sys_exit_group),
    "wait4":         ("kernel",     sys_wait4),
    "getpid":        ("kernel",     sys_getpid),
    "gettid":        ("kernel",     sys_gettid),
    "getppid":       ("kernel",     sys_getppid),
    "getpgid":       ("kernel",     sys_getpgid),
    "setpgid":       ("kernel",     sys_setpgid),
    "getsid":        ("kernel",     sys_getsid),
    "setsid":        ("kernel",     sys_setsid),
    "sched_yield":   ("sched",      sys_sched_yield),
    "kill":          ("signals",    sys_kill),
    "tgkill":        ("signals",    sys_tgkill),
    "sigaction":     ("signals",    sys_sigaction),
    "sigprocmask":   ("kernel",     sys_sigprocmask),
    "pause":         ("kernel",     sys_pause),
    "prlimit":       ("kernel",     sys_prlimit),
    "set_child_subreaper": ("kernel", sys_set_child_subreaper),
    "open":          ("vfs",        sys_open),
    "close":         ("vfs",        _vfs("close", "files")),
    "read":          ("vfs",        sys_read),
    "write":         ("vfs",        sys_write),
    "lseek":         ("vfs",        _vfs("lseek", "files")),
    "getdents":      ("vfs",        _vfs("getdents", "files")),
    "fstat":         ("vfs",        _vfs("fstat", "files")),
    "dup":           ("vfs",        _vfs("dup", "files")),
    "dup2":          ("vfs",        _vfs("dup2", "files")),
    "dup3":          ("vfs",        _vfs("dup3", "files")),
    "fcntl":         ("vfs",        _vfs("fcntl", "files")),
    "pipe2":         ("vfs",        _vfs("pipe2", "files")),
    "chdir":         ("vfs",        _vfs("chdir", "fs")),
    "fchdir":        ("vfs",        _vfs("fchdir", "files", "fs")),
    "getcwd":        ("vfs",        _vfs("getcwd", "fs")),
    "chroot":        ("vfs",        _vfs("chroot", "fs")),
    "umask":         ("vfs",        _vfs("umask", "fs")),
    "mkdir":         ("vfs",        _vfs("mkdir", "fs")),
    "mknod":         ("vfs",        _vfs("mknod", "fs")),
    "rmdir":         ("vfs",        _vfs("rmdir", "fs")),
    "unlink":        ("vfs",        _vfs("unlink", "fs")),
    "rename":        ("vfs",        _vfs("rename", "fs")),
    "link":          ("vfs",        _vfs("link", "fs")),
    "symlink":       ("vfs",        _vfs("symlink", "fs")),
    "readlink":      ("vfs",        _vfs("readlink", "fs")),
    "stat":          ("vfs",        _vfs("stat", "fs")),
    "lstat":         ("vfs",        _vfs("lstat", "fs")),
    "access":        ("vfs",        _vfs("access", "fs")),
    "mount":         ("vfs",        _vfs("mount", "fs")),
    "umount":        ("vfs",        _vfs("umount", "fs")),
    "mmap":          ("mm",         sys_mmap),
    "munmap":        ("mm",         sys_munmap),
    "mprotect":      ("mm",         sys_mprotect),
    "brk":           ("mm",         sys_brk),
    "getrusage":     ("mm",         sys_getrusage),
    "peek":          ("mm",         sys_peek),
    "poke":          ("mm",         sys_poke),
    "cmpxchg":       ("mm",         sys_cmpxchg),
    "futex":         ("kernel",     sys_futex),
    "set_tid_address": ("kernel",   sys_set_tid_address),
    "uname":         ("namespaces", sys_uname),
    "sethostname":   ("namespaces", sys_sethostname),
}
# fmt: on
SYSCALLS.update(SCHED_SYSCALLS)  # scheduling and time: ukernel/sched_syscalls.py
SYSCALLS.update(NS_SYSCALLS)  # unshare, setns, SysV semaphores, time: ukernel/nsproxy.py
