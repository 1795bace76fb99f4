"""Running userland: program images, the ``sys`` object, and fork by replay.

A program is Python source in the vfs defining ``async def main(sys, argv)``.
The Python side of an address space is an ``Image``: the program's module
namespace, where it started, and the *journal* of every syscall result since
that start. A fork child gets a fresh image that re-runs the program from its
start, answering each syscall from the journal without effect (so nothing is
written twice), until the journal's last entry, the fork itself, returns 0.
A clone(fn) without CLONE_VM gets a copy of what the program can reach,
made by a pickle round trip, like dup_mm copies memory.
"""

from __future__ import annotations

import contextvars
import io
import linecache
import os
import pickle
import stat as st
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import abi

if TYPE_CHECKING:
    from .kernel import Kernel
    from .task import TaskStruct

current: contextvars.ContextVar[TaskStruct] = contextvars.ContextVar("current")


class TaskExit(BaseException):
    """Unwinds a task's Python stack to do_exit (BaseException: programs can't catch it)."""

    def __init__(self, status: int, group: bool = True):
        super().__init__(status)
        self.status, self.group = status, group


class ExecImage(BaseException):
    """Unwinds the old program after a successful execve; the new one starts."""

    def __init__(self, image: Image):
        super().__init__(image.path)
        self.image = image


class ReplayDiverged(Exception):
    """The replaying child asked for a different syscall than its parent made."""


@dataclass
class Image:
    """The Python side of an address space: namespace, start and journal."""

    path: str
    code: types.CodeType | None
    argv: list[str]
    envp: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)
    journal: list[tuple[int, str, bool, Any]] = field(default_factory=list)  # (task id, syscall, ok, value)
    snapshot: bytes | None = None  # set when the image started as a clone(fn) copy
    snapshot_keep: list | None = None  # what the snapshot shares rather than copies (modules, code, sys)
    handlers: dict[int, Any] = field(default_factory=dict)  # sigaction tokens -> Python handlers (libc's table)

    def register_handler(self, handler: Any) -> int:
        """Tokens are given in call order, so a replaying child gets the same ones."""
        for token, known in self.handlers.items():
            if known is handler:
                return token
        token = len(self.handlers) + 1
        self.handlers[token] = handler
        return token

    @classmethod
    def load(cls, path: str, source: bytes, argv: list[str], envp: dict[str, str]) -> Image:
        """Compile and run the module body (the loader); ENOEXEC if there is no main."""
        try:
            code = compile(source, path, "exec")
        except (SyntaxError, ValueError) as exc:
            raise abi.kernel_error(abi.ENOEXEC, f"{path}: not a program: {exc}") from None
        text = source.decode("utf-8", "replace")
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # tracebacks show the lines
        image = cls(path, code, list(argv), dict(envp))
        image.namespace = image.fresh_namespace()
        if not callable(image.namespace.get("main")):
            raise abi.kernel_error(abi.ENOEXEC, f"{path} defines no main(sys, argv)")
        return image

    def fresh_namespace(self) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "__main__", "__file__": self.path}
        exec(self.code, namespace)
        return namespace

    def fork_copy(self, forker: int, child: int, syscall: str) -> Image:
        """A child image: same start, the forking thread's journal as the child's, then fork returning 0."""
        journal = [(child if who == forker else who, name, ok, value) for who, name, ok, value in self.journal]
        journal.append((child, syscall, True, 0))
        return Image(self.path, self.code, self.argv, self.envp, {}, journal, self.snapshot, self.snapshot_keep)


# --- the pickle round trip that copies an address space ------------------------------
def _make_function(code, globals_, name, defaults, closure, kwdefaults, attrs):
    fn = types.FunctionType(code, globals_, name, defaults, closure)
    fn.__kwdefaults__ = kwdefaults
    fn.__dict__.update(attrs)
    return fn


def _make_cell():
    return types.CellType()


def _fill_cell(cell, contents):
    cell.cell_contents = contents


def _make_class(name, bases, namespace):
    return type(name, bases, {"__module__": "__main__"})


def _fill_class(cls, state):
    for key, value in state.items():
        if key not in ("__dict__", "__weakref__"):
            setattr(cls, key, value)


class _SpacePickler(pickle.Pickler):
    """Copies what a program reaches; shares what is read-only (modules, code, sys)."""

    def __init__(self, file, namespace: dict, shared: tuple):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.namespace, self.shared = namespace, shared
        self.keep: list[Any] = []

    def persistent_id(self, obj):
        if isinstance(obj, types.ModuleType | types.CodeType) or any(obj is s for s in self.shared):
            self.keep.append(obj)
            return len(self.keep) - 1
        return None

    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self.namespace:
            args = (
                obj.__code__,
                obj.__globals__,
                obj.__name__,
                obj.__defaults__,
                obj.__closure__,
                obj.__kwdefaults__,
                obj.__dict__,
            )
            return _make_function, args
        if isinstance(obj, types.CellType):
            try:
                contents = obj.cell_contents
            except ValueError:
                return _make_cell, ()
            return _make_cell, (), contents, None, None, _fill_cell
        if isinstance(obj, type) and obj.__module__ == "__main__":
            state = {k: v for k, v in vars(obj).items() if k not in ("__dict__", "__weakref__")}
            return _make_class, (obj.__name__, obj.__bases__, None), state, None, None, _fill_class
        return NotImplemented


class _SpaceUnpickler(pickle.Unpickler):
    def __init__(self, file, keep: list):
        super().__init__(file)
        self.keep = keep

    def persistent_load(self, pid):
        return self.keep[pid]


def copy_space(namespace: dict, roots: tuple, shared: tuple) -> tuple[bytes, list, tuple]:
    """Snapshot (namespace, *roots) as bytes; returns (bytes, shared refs, the copy)."""
    buf = io.BytesIO()
    pickler = _SpacePickler(buf, namespace, shared)
    try:
        pickler.dump((namespace, *roots))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise abi.kernel_error(abi.EINVAL, f"clone without CLONE_VM cannot copy the program's state: {exc}") from None
    data = buf.getvalue()
    return data, pickler.keep, restore_space(data, pickler.keep)


def restore_space(data: bytes, keep: list) -> tuple:
    return _SpaceUnpickler(io.BytesIO(data), keep).load()


# --- the sys object -----------------------------------------------------------------------
def _stat_result(fields: dict) -> os.stat_result:
    """stat's reply as Python's os.stat_result (st_mode, st_ino, ... st_ctime)."""
    order = (
        "st_mode",
        "st_ino",
        "st_dev",
        "st_nlink",
        "st_uid",
        "st_gid",
        "st_size",
        "st_atime",
        "st_mtime",
        "st_ctime",
    )
    return os.stat_result(tuple(fields[key] for key in order))


class Sys:
    """What a program calls: the Linux syscalls, acting for ``current`` (like libc)."""

    def __init__(self, kernel: Kernel):
        self._kernel = kernel

    def __reduce__(self):
        raise TypeError("sys is never copied")

    async def _call(self, syscall: str, /, **args: Any) -> Any:
        return await self._kernel.runtime.syscall(syscall, args)

    # process life
    async def fork(self) -> int:
        return await self._call("fork")

    async def vfork(self) -> int:
        return await self._call("vfork")

    async def clone(
        self,
        flags: int,
        fn: Any = None,
        arg: Any = None,
        *,
        parent_tid: int | None = None,
        child_tid: int | None = None,
        tls: int | None = None,
    ) -> int:
        return await self._call(
            "clone", flags=flags, fn=fn, arg=arg, parent_tid=parent_tid or 0, child_tid=child_tid or 0, tls=tls or 0
        )

    async def clone3(
        self,
        *,
        flags: int = 0,
        exit_signal: int = 0,
        fn: Any = None,
        arg: Any = None,
        set_tid: tuple = (),
        pidfd: bool = False,
    ) -> int:
        return await self._call(
            "clone3", flags=flags, exit_signal=exit_signal, fn=fn, arg=arg, set_tid=list(set_tid), pidfd=pidfd
        )

    async def execve(self, path: str, argv: list[str], envp: dict[str, str] | None = None) -> None:
        return await self._call("execve", path=path, argv=list(argv), envp=dict(envp or {}))

    async def exit(self, code: int = 0) -> None:
        await self._call("exit", code=code)

    async def exit_group(self, code: int = 0) -> None:
        await self._call("exit_group", code=code)

    async def wait4(self, pid: int = -1, options: int = 0) -> tuple[int, int, dict]:
        return tuple(await self._call("wait4", pid=pid, options=options))

    async def waitpid(self, pid: int = -1, options: int = 0) -> tuple[int, int]:
        got, status, _ = await self.wait4(pid, options)
        return got, status

    async def getpid(self) -> int:
        return await self._call("getpid")

    async def gettid(self) -> int:
        return await self._call("gettid")

    async def getppid(self) -> int:
        return await self._call("getppid")

    # signals
    async def kill(self, pid: int, sig: int) -> None:
        await self._call("kill", pid=pid, sig=sig)

    async def tgkill(self, tgid: int, tid: int, sig: int) -> None:
        await self._call("tgkill", tgid=tgid, tid=tid, sig=sig)

    async def sigaction(self, sig: int, handler: Any = None, flags: int = 0) -> tuple[Any, int]:
        """handler: SIG_DFL, SIG_IGN or handler(sys, signum) (sync or async); None only queries."""
        image = current.get().image
        token = image.register_handler(handler) if callable(handler) else handler
        old, old_flags = await self._call("sigaction", sig=sig, handler=token, flags=flags)
        return image.handlers.get(old, old) if isinstance(old, int) else old, old_flags

    async def sigprocmask(self, how: int, mask: Any = None) -> set:
        return set(await self._call("sigprocmask", how=how, mask=None if mask is None else sorted(mask)))

    async def pause(self) -> None:
        await self._call("pause")

    async def getpgid(self, pid: int = 0) -> int:
        return await self._call("getpgid", pid=pid)

    async def setpgid(self, pid: int, pgid: int) -> None:
        await self._call("setpgid", pid=pid, pgid=pgid)

    async def getsid(self, pid: int = 0) -> int:
        return await self._call("getsid", pid=pid)

    async def setsid(self) -> int:
        return await self._call("setsid")

    async def sched_yield(self) -> None:
        await self._call("sched_yield")

    async def set_child_subreaper(self, flag: bool = True) -> None:
        await self._call("set_child_subreaper", flag=flag)

    async def prlimit(self, resource: int, new: int | None = None) -> int:
        return await self._call("prlimit", resource=resource, new=new)

    # files
    async def open(self, path: str, flags: int = abi.O_RDONLY, mode: int = 0o666) -> int:
        return await self._call("open", path=path, flags=flags, mode=mode)

    async def close(self, fd: int) -> None:
        await self._call("close", fd=fd)

    async def read(self, fd: int, n: int) -> bytes:
        return await self._call("read", fd=fd, n=n)

    async def write(self, fd: int, data: bytes | str) -> int:
        return await self._call("write", fd=fd, data=data.encode() if isinstance(data, str) else data)

    async def lseek(self, fd: int, offset: int, whence: int) -> int:
        return await self._call("lseek", fd=fd, offset=offset, whence=whence)

    async def dup(self, fd: int) -> int:
        return await self._call("dup", fd=fd)

    async def dup2(self, old: int, new: int) -> int:
        return await self._call("dup2", old=old, new=new)

    async def dup3(self, old: int, new: int, flags: int = 0) -> int:
        return await self._call("dup3", old=old, new=new, flags=flags)

    async def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        return await self._call("fcntl", fd=fd, cmd=cmd, arg=arg)

    async def pipe(self) -> tuple[int, int]:
        return await self.pipe2(0)

    async def pipe2(self, flags: int) -> tuple[int, int]:
        read_end, write_end = await self._call("pipe2", flags=flags)
        return read_end, write_end

    async def getdents(self, fd: int) -> list[str]:
        return await self._call("getdents", fd=fd)

    async def stat(self, path: str) -> os.stat_result:
        return _stat_result(await self._call("stat", path=path))

    async def lstat(self, path: str) -> os.stat_result:
        return _stat_result(await self._call("lstat", path=path))

    async def fstat(self, fd: int) -> os.stat_result:
        return _stat_result(await self._call("fstat", fd=fd))

    async def access(self, path: str, mode: int = abi.F_OK) -> None:
        await self._call("access", path=path, mode=mode)

    # names and directories
    async def chdir(self, path: str) -> None:
        await self._call("chdir", path=path)

    async def fchdir(self, fd: int) -> None:
        await self._call("fchdir", fd=fd)

    async def getcwd(self) -> str:
        return await self._call("getcwd")

    async def chroot(self, path: str) -> None:
        await self._call("chroot", path=path)

    async def umask(self, mask: int) -> int:
        return await self._call("umask", mask=mask)

    async def mkdir(self, path: str, mode: int = 0o777) -> None:
        await self._call("mkdir", path=path, mode=mode)

    async def mknod(self, path: str, mode: int = 0o600 | st.S_IFREG) -> None:
        await self._call("mknod", path=path, mode=mode)

    async def mkfifo(self, path: str, mode: int = 0o666) -> None:
        """libc's mkfifo: mknod with S_IFIFO."""
        await self.mknod(path, st.S_IFIFO | (mode & 0o7777))

    async def rmdir(self, path: str) -> None:
        await self._call("rmdir", path=path)

    async def unlink(self, path: str) -> None:
        await self._call("unlink", path=path)

    async def rename(self, old: str, new: str) -> None:
        await self._call("rename", old=old, new=new)

    async def link(self, old: str, new: str) -> None:
        await self._call("link", old=old, new=new)

    async def symlink(self, target: str, path: str) -> None:
        await self._call("symlink", target=target, path=path)

    async def readlink(self, path: str) -> str:
        return await self._call("readlink", path=path)

    async def mount(self, source: str, target: str, fstype: str) -> None:
        await self._call("mount", source=source, target=target, fstype=fstype)

    async def umount(self, target: str) -> None:
        await self._call("umount", target=target)

    # memory
    async def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
        return await self._call("mmap", addr=addr, length=length, prot=prot, flags=flags, fd=fd, offset=offset)

    async def munmap(self, addr: int, length: int) -> None:
        await self._call("munmap", addr=addr, length=length)

    async def mprotect(self, addr: int, length: int, prot: int) -> None:
        await self._call("mprotect", addr=addr, length=length, prot=prot)

    async def brk(self, addr: int = 0) -> int:
        return await self._call("brk", addr=addr)

    async def getrusage(self) -> dict:
        """utime in ticks, minflt/majflt of the process's mm, maxrss in KiB."""
        return await self._call("getrusage")

    async def peek(self, addr: int, n: int) -> bytes:
        return await self._call("peek", addr=addr, n=n)

    async def poke(self, addr: int, data: bytes) -> int:
        return await self._call("poke", addr=addr, data=data)

    async def futex(self, addr: int, op: int, val: int, timeout: float | None = None) -> int:
        return await self._call("futex", addr=addr, op=op, val=val, timeout=timeout)

    async def set_tid_address(self, addr: int) -> int:
        return await self._call("set_tid_address", addr=addr)

    async def cmpxchg(self, addr: int, old: int, new: int) -> int:
        """The CPU's lock cmpxchg on a 4-byte word: returns the old value, stores ``new`` if it was ``old``."""
        return await self._call("cmpxchg", addr=addr, old=old, new=new)

    # namespaces
    async def uname(self) -> dict:
        return await self._call("uname")

    async def sethostname(self, name: str) -> None:
        await self._call("sethostname", name=name)

    # scheduling (pid 0 is the calling thread; every task may do what root may)
    async def sched_setscheduler(self, pid: int, policy: int, param: Any = 0) -> None:
        """policy may be OR-ed with SCHED_RESET_ON_FORK; param is an int or os.sched_param."""
        await self._call("sched_setscheduler", pid=pid, policy=policy, priority=_sched_priority(param))

    async def sched_getscheduler(self, pid: int = 0) -> int:
        return await self._call("sched_getscheduler", pid=pid)

    async def sched_setparam(self, pid: int, param: Any) -> None:
        await self._call("sched_setparam", pid=pid, priority=_sched_priority(param))

    async def sched_getparam(self, pid: int = 0) -> os.sched_param:
        return os.sched_param(await self._call("sched_getparam", pid=pid))

    async def sched_get_priority_max(self, policy: int) -> int:
        return await self._call("sched_get_priority_max", policy=policy)

    async def sched_get_priority_min(self, policy: int) -> int:
        return await self._call("sched_get_priority_min", policy=policy)

    async def nice(self, inc: int) -> int:
        """The new nice value, as Python's os.nice."""
        return await self._call("nice", inc=inc)

    async def getpriority(self, which: int, who: int = 0) -> int:
        """The nice value (as Python's os.getpriority), the lowest among the targets."""
        return await self._call("getpriority", which=which, who=who)

    async def setpriority(self, which: int, who: int, prio: int) -> None:
        await self._call("setpriority", which=which, who=who, prio=prio)

    async def sched_setaffinity(self, pid: int, mask: Any) -> None:
        await self._call("sched_setaffinity", pid=pid, cpus=sorted(mask))

    async def sched_getaffinity(self, pid: int = 0) -> set[int]:
        return set(await self._call("sched_getaffinity", pid=pid))

    # time (virtual: abi.HZ ticks a second, one tick per kernel entry)
    async def nanosleep(self, seconds: float) -> None:
        """Sleep; a caught signal ends it with EINTR (never restarted, as in Linux)."""
        await self._call("nanosleep", seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        await self.nanosleep(seconds)

    async def setdomainname(self, name: str) -> None:
        await self._call("setdomainname", name=name)

    async def unshare(self, flags: int) -> None:
        await self._call("unshare", flags=flags)

    async def setns(self, fd: int, nstype: int = 0) -> None:
        await self._call("setns", fd=fd, nstype=nstype)

    async def semget(self, key: int, nsems: int, semflg: int = 0) -> int:
        return await self._call("semget", key=key, nsems=nsems, semflg=semflg)

    async def semop(self, semid: int, sops: list[tuple[int, int, int]]) -> int:
        """sops: (sem_num, sem_op, sem_flg) triples, applied all at once or not at all."""
        return await self._call("semop", semid=semid, sops=[list(op) for op in sops])

    async def semctl(self, semid: int, semnum: int, cmd: int, arg: int = 0) -> int:
        return await self._call("semctl", semid=semid, semnum=semnum, cmd=cmd, arg=arg)

    async def clock_gettime(self, clk_id: int = abi.CLOCK_MONOTONIC) -> float:
        return await self._call("clock_gettime", clk_id=clk_id)


# --- the runtime ---------------------------------------------------------------------------
class Runtime:
    """Starts tasks' Python code, records and replays syscalls, copies images."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.sys = Sys(kernel)
        self.replays: dict[int, list] = {}  # task id -> journal entries still to replay

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
        """The kernel entry every ``sys`` method goes through."""
        task = current.get()
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
            await _call_maybe_async(handler, self.sys, sig)
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
            if task.set_child_tid:
                await k.schedule_tail(task)
            code = await self._run_entry(task, task.entry)
            code = abi.W_EXITCODE(code if isinstance(code, int) else 0)
            group = task.entry[0] != "call" or task.image is None
        except TaskExit as exc:
            code, group = exc.status, exc.group
        except BaseException as exc:  # an uncaught exception: traceback to fd 2, status 1
            if not isinstance(exc, Exception):
                raise
            code, group = abi.W_EXITCODE(1), True
            await self._report(task, exc)
        try:
            await k.do_exit(task, code, group)
        except OSError:
            if not k.lost:
                raise
            return  # a service this exit needed is lost: the task cannot finish exiting (ukernel.run says so)
        status.append(code)

    async def _run_entry(self, task: TaskStruct, entry: tuple) -> Any:
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
        text = format_user_traceback(exc).encode()
        self.replays.pop(task.id, None)
        try:
            await self.kernel.syscall(task, "write", {"fd": 2, "data": text})
        except (OSError, TaskExit):
            pass


def format_user_traceback(exc: BaseException) -> str:
    """The traceback a program's author needs: their frames, not the kernel's."""
    here = str(Path(__file__).resolve().parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join(lines + traceback.format_exception_only(exc))


def _sched_priority(param: Any) -> Any:
    """os.sched_param(n) or n: the sched_priority that travels in the message."""
    return getattr(param, "sched_priority", param)


async def _call_maybe_async(fn: Any, sys: Sys, arg: Any) -> Any:
    result = fn(sys, arg)
    if hasattr(result, "__await__"):
        result = await result
    return result
