"""libc: the ``sys`` object a program calls, one async method per Linux syscall.

``sys`` acts for ``current`` (like libc, the kernel knows who calls), so a
closure that captured it works in a thread; results follow Python's ``os``
module where it has the call. Arguments go to the kernel as the program gave
them: the kernel's argument kinds (kernel/uaccess.py) check and convert them,
so a wrong one is an OSError with Linux's errno, never a TypeError from here.
"""

from __future__ import annotations

import os
import signal
import stat as st
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .. import abi
from ..kernel.task import current
from .awaited import track_awaits
from .replay import MISS, nothing, plain, replaying

if TYPE_CHECKING:
    from ..kernel.core import Kernel


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


#: waitpid's answer: wait4's (pid, status) without its rusage (no Python frame: replayed often).
_pid_status = itemgetter(0, 1)


def _fd_pair(result: list) -> tuple[int, int]:
    """pipe2's answer: (read end, write end), as Python's os.pipe."""
    read_end, write_end = result
    return read_end, write_end


@track_awaits
class Sys:
    """What a program calls: the Linux syscalls, acting for ``current`` (like libc); each
    call is an awaitable that knows where it was made (awaited.py: a forgotten await)."""

    def __init__(self, kernel: Kernel):
        self._kernel = kernel

    def __reduce__(self):
        raise TypeError("sys is never copied")

    async def _call(self, syscall: str, /, **args: Any) -> Any:
        """The syscall, through the kernel; a replaying child's answered here from its
        journal when the entry is a plain result (no kernel entry: replay.py). A method
        marked ``plain`` is answered before it runs at all (replay.answering)."""
        replay = replaying.get()
        if replay is not None:
            value = replay.answer(syscall)
            if value is not MISS:
                return value
        return await self._kernel.runtime.syscall(syscall, args)

    # process life
    @plain("fork")
    async def fork(self) -> int:
        return await self._call("fork")

    @plain("vfork")
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

    @plain("clone3")
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
            "clone3", flags=flags, exit_signal=exit_signal, fn=fn, arg=arg, set_tid=set_tid, pidfd=pidfd
        )

    @plain("execve")
    async def execve(self, path: str, argv: list[str], envp: dict[str, str] | None = None) -> None:
        return await self._call("execve", path=path, argv=argv, envp=envp)

    @plain("exit", nothing)
    async def exit(self, code: int = 0) -> None:
        await self._call("exit", code=code)

    @plain("exit_group", nothing)
    async def exit_group(self, code: int = 0) -> None:
        await self._call("exit_group", code=code)

    @plain("wait4", tuple)
    async def wait4(self, pid: int = -1, options: int = 0) -> tuple[int, int, dict]:
        return tuple(await self._call("wait4", pid=pid, options=options))

    async def waitid(self, idtype: int, id: int, options: int) -> os.waitid_result | None:
        """As Python's os.waitid: the child's siginfo, None under WNOHANG when no child changed state."""
        info = await self._call("waitid", idtype=idtype, id=id, options=options)
        if info is None:
            return None
        return os.waitid_result((info["pid"], info["uid"], info["signo"], info["status"], info["code"]))

    @plain("wait4", _pid_status)
    async def waitpid(self, pid: int = -1, options: int = 0) -> tuple[int, int]:
        return _pid_status(await self._call("wait4", pid=pid, options=options))

    @plain("getpid")
    async def getpid(self) -> int:
        return await self._call("getpid")

    @plain("gettid")
    async def gettid(self) -> int:
        return await self._call("gettid")

    @plain("getppid")
    async def getppid(self) -> int:
        return await self._call("getppid")

    # signals
    @plain("kill", nothing)
    async def kill(self, pid: int, sig: int) -> None:
        await self._call("kill", pid=pid, sig=sig)

    @plain("tgkill", nothing)
    async def tgkill(self, tgid: int, tid: int, sig: int) -> None:
        await self._call("tgkill", tgid=tgid, tid=tid, sig=sig)

    async def sigaction(self, sig: int, handler: Any = None, flags: int = 0) -> tuple[Any, int]:
        """handler: SIG_DFL, SIG_IGN or handler(sys, signum) (sync or async); None only queries.
        With SA_SIGINFO it is called handler(sys, signum, siginfo, context): siginfo a
        signal.struct_siginfo, context a dict whose "uc_sigmask" is the mask restored after it."""
        image = current.get().image
        if callable(handler) and flags & abi.SA_SIGINFO:
            known = (h for h in image.handlers.values() if isinstance(h, SigInfoHandler) and h.handler is handler)
            handler = next(known, None) or SigInfoHandler(handler)
        token = image.register_handler(handler) if callable(handler) else handler
        old, old_flags = await self._call("sigaction", sig=sig, handler=token, flags=flags)
        old = image.handlers.get(old, old) if isinstance(old, int) else old
        return getattr(old, "handler", old) if isinstance(old, SigInfoHandler) else old, old_flags

    @plain("sigprocmask", set)
    async def sigprocmask(self, how: int, mask: Any = None) -> set:
        return set(await self._call("sigprocmask", how=how, mask=mask))

    @plain("pause", nothing)
    async def pause(self) -> None:
        await self._call("pause")

    @plain("sigsuspend", nothing)
    async def sigsuspend(self, mask: Any) -> None:
        """Wait with ``mask`` for a signal whose handler runs; always EINTR (as Linux's)."""
        await self._call("sigsuspend", mask=mask)

    @plain("sigpending", set)
    async def sigpending(self) -> set:
        return set(await self._call("sigpending"))

    async def sigwaitinfo(self, sigset: Any) -> signal.struct_siginfo:
        return await self.sigtimedwait(sigset, None)

    async def sigtimedwait(self, sigset: Any, timeout: float | None) -> signal.struct_siginfo | None:
        """A pending signal of ``sigset`` taken without its action, as Python's
        signal.sigtimedwait: None when ``timeout`` seconds pass first."""
        try:
            return siginfo_result(await self._call("sigtimedwait", mask=sigset, timeout=timeout))
        except OSError as exc:
            if timeout is not None and exc.errno == abi.EAGAIN:
                return None
            raise

    async def sigwait(self, sigset: Any) -> int:
        return (await self.sigwaitinfo(sigset)).si_signo

    @plain("getpgid")
    async def getpgid(self, pid: int = 0) -> int:
        return await self._call("getpgid", pid=pid)

    @plain("setpgid", nothing)
    async def setpgid(self, pid: int, pgid: int) -> None:
        await self._call("setpgid", pid=pid, pgid=pgid)

    @plain("getsid")
    async def getsid(self, pid: int = 0) -> int:
        return await self._call("getsid", pid=pid)

    @plain("setsid")
    async def setsid(self) -> int:
        return await self._call("setsid")

    @plain("sched_yield", nothing)
    async def sched_yield(self) -> None:
        await self._call("sched_yield")

    @plain("set_child_subreaper", nothing)
    async def set_child_subreaper(self, flag: bool = True) -> None:
        await self._call("set_child_subreaper", flag=flag)

    @plain("prlimit")
    async def prlimit(self, resource: int, new: int | None = None) -> int:
        return await self._call("prlimit", resource=resource, new=new)

    # files
    @plain("open")
    async def open(self, path: str, flags: int = abi.O_RDONLY, mode: int = 0o666) -> int:
        return await self._call("open", path=path, flags=flags, mode=mode)

    @plain("close", nothing)
    async def close(self, fd: int) -> None:
        await self._call("close", fd=fd)

    @plain("read")
    async def read(self, fd: int, n: int) -> bytes:
        return await self._call("read", fd=fd, n=n)

    @plain("write")
    async def write(self, fd: int, data: bytes | str) -> int:
        return await self._call("write", fd=fd, data=data)

    @plain("lseek")
    async def lseek(self, fd: int, offset: int, whence: int) -> int:
        return await self._call("lseek", fd=fd, offset=offset, whence=whence)

    @plain("dup")
    async def dup(self, fd: int) -> int:
        return await self._call("dup", fd=fd)

    @plain("dup2")
    async def dup2(self, old: int, new: int) -> int:
        return await self._call("dup2", old=old, new=new)

    @plain("dup3")
    async def dup3(self, old: int, new: int, flags: int = 0) -> int:
        return await self._call("dup3", old=old, new=new, flags=flags)

    @plain("fcntl")
    async def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        return await self._call("fcntl", fd=fd, cmd=cmd, arg=arg)

    # terminals (termios(3), tcgetpgrp(3), isatty(3): ioctls on the tty, as glibc makes them)
    @plain("ioctl")
    async def ioctl(self, fd: int, cmd: int, arg: Any = None) -> Any:
        return await self._call("ioctl", fd=fd, cmd=cmd, arg=arg)

    async def tcgetattr(self, fd: int) -> list:
        """As Python's termios.tcgetattr: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc], cc's
        entries 1-byte bytes, but VMIN and VTIME ints when ICANON is off."""
        attrs = await self.ioctl(fd, abi.TCGETS)
        raw = not attrs[3] & abi.ICANON
        attrs[6] = [c if raw and i in (abi.VMIN, abi.VTIME) else bytes([c]) for i, c in enumerate(attrs[6])]
        return attrs

    async def tcsetattr(self, fd: int, when: int, attrs: list) -> None:
        """TCSANOW, TCSADRAIN or TCSAFLUSH (TCSETS, TCSETSW, TCSETSF); another ``when`` is EINVAL."""
        cmd = {abi.TCSANOW: abi.TCSETS, abi.TCSADRAIN: abi.TCSETSW, abi.TCSAFLUSH: abi.TCSETSF}.get(when)
        if cmd is None:
            raise abi.kernel_error(abi.EINVAL, f"tcsetattr: when {when!r} is not TCSANOW, TCSADRAIN or TCSAFLUSH")
        await self.ioctl(fd, cmd, list(attrs))

    async def tcgetpgrp(self, fd: int) -> int:
        return await self.ioctl(fd, abi.TIOCGPGRP)

    async def tcsetpgrp(self, fd: int, pgrp: int) -> None:
        await self.ioctl(fd, abi.TIOCSPGRP, pgrp)

    async def isatty(self, fd: int) -> bool:
        """isatty(3): TCGETS works (any error, ENOTTY or EBADF, is False)."""
        try:
            await self.ioctl(fd, abi.TCGETS)
        except OSError:
            return False
        return True

    async def pipe(self) -> tuple[int, int]:
        return await self.pipe2(0)

    @plain("pipe2", _fd_pair)
    async def pipe2(self, flags: int) -> tuple[int, int]:
        return _fd_pair(await self._call("pipe2", flags=flags))

    @plain("getdents")
    async def getdents(self, fd: int) -> list[str]:
        return await self._call("getdents", fd=fd)

    @plain("stat", _stat_result)
    async def stat(self, path: str) -> os.stat_result:
        return _stat_result(await self._call("stat", path=path))

    @plain("lstat", _stat_result)
    async def lstat(self, path: str) -> os.stat_result:
        return _stat_result(await self._call("lstat", path=path))

    @plain("fstat", _stat_result)
    async def fstat(self, fd: int) -> os.stat_result:
        return _stat_result(await self._call("fstat", fd=fd))

    @plain("access", nothing)
    async def access(self, path: str, mode: int = abi.F_OK) -> None:
        await self._call("access", path=path, mode=mode)

    # names and directories
    @plain("chdir", nothing)
    async def chdir(self, path: str) -> None:
        await self._call("chdir", path=path)

    @plain("fchdir", nothing)
    async def fchdir(self, fd: int) -> None:
        await self._call("fchdir", fd=fd)

    @plain("getcwd")
    async def getcwd(self) -> str:
        return await self._call("getcwd")

    @plain("chroot", nothing)
    async def chroot(self, path: str) -> None:
        await self._call("chroot", path=path)

    @plain("umask")
    async def umask(self, mask: int) -> int:
        return await self._call("umask", mask=mask)

    @plain("mkdir", nothing)
    async def mkdir(self, path: str, mode: int = 0o777) -> None:
        await self._call("mkdir", path=path, mode=mode)

    @plain("mknod", nothing)
    async def mknod(self, path: str, mode: int = 0o600 | st.S_IFREG) -> None:
        await self._call("mknod", path=path, mode=mode)

    async def mkfifo(self, path: str, mode: int = 0o666) -> None:
        """libc's mkfifo: mknod with S_IFIFO."""
        await self.mknod(path, st.S_IFIFO | (mode & 0o7777))

    @plain("rmdir", nothing)
    async def rmdir(self, path: str) -> None:
        await self._call("rmdir", path=path)

    @plain("unlink", nothing)
    async def unlink(self, path: str) -> None:
        await self._call("unlink", path=path)

    @plain("rename", nothing)
    async def rename(self, old: str, new: str) -> None:
        await self._call("rename", old=old, new=new)

    @plain("link", nothing)
    async def link(self, old: str, new: str) -> None:
        await self._call("link", old=old, new=new)

    @plain("symlink", nothing)
    async def symlink(self, target: str, path: str) -> None:
        await self._call("symlink", target=target, path=path)

    @plain("readlink")
    async def readlink(self, path: str) -> str:
        return await self._call("readlink", path=path)

    @plain("mount", nothing)
    async def mount(self, source: str, target: str, fstype: str) -> None:
        await self._call("mount", source=source, target=target, fstype=fstype)

    @plain("umount", nothing)
    async def umount(self, target: str) -> None:
        await self._call("umount", target=target)

    # memory
    @plain("mmap")
    async def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
        return await self._call("mmap", addr=addr, length=length, prot=prot, flags=flags, fd=fd, offset=offset)

    @plain("munmap", nothing)
    async def munmap(self, addr: int, length: int) -> None:
        await self._call("munmap", addr=addr, length=length)

    @plain("mprotect", nothing)
    async def mprotect(self, addr: int, length: int, prot: int) -> None:
        await self._call("mprotect", addr=addr, length=length, prot=prot)

    @plain("brk")
    async def brk(self, addr: int = 0) -> int:
        return await self._call("brk", addr=addr)

    @plain("getrusage")
    async def getrusage(self) -> dict:
        """utime in ticks, minflt/majflt of the process's mm, maxrss in KiB."""
        return await self._call("getrusage")

    @plain("peek")
    async def peek(self, addr: int, n: int) -> bytes:
        return await self._call("peek", addr=addr, n=n)

    @plain("poke")
    async def poke(self, addr: int, data: bytes) -> int:
        return await self._call("poke", addr=addr, data=data)

    @plain("futex")
    async def futex(self, addr: int, op: int, val: int, timeout: float | None = None) -> int:
        return await self._call("futex", addr=addr, op=op, val=val, timeout=timeout)

    @plain("set_tid_address")
    async def set_tid_address(self, addr: int) -> int:
        return await self._call("set_tid_address", addr=addr)

    @plain("cmpxchg")
    async def cmpxchg(self, addr: int, old: int, new: int) -> int:
        """The CPU's lock cmpxchg on a 4-byte word: returns the old value, stores ``new`` if it was ``old``."""
        return await self._call("cmpxchg", addr=addr, old=old, new=new)

    # namespaces
    @plain("uname")
    async def uname(self) -> dict:
        return await self._call("uname")

    @plain("sethostname", nothing)
    async def sethostname(self, name: str) -> None:
        await self._call("sethostname", name=name)

    # scheduling (pid 0 is the calling thread; every task may do what root may)
    async def sched_setscheduler(self, pid: int, policy: int, param: Any = 0) -> None:
        """policy may be OR-ed with SCHED_RESET_ON_FORK; param is an int or os.sched_param."""
        await self._call("sched_setscheduler", pid=pid, policy=policy, priority=_sched_priority(param))

    @plain("sched_getscheduler")
    async def sched_getscheduler(self, pid: int = 0) -> int:
        return await self._call("sched_getscheduler", pid=pid)

    async def sched_setparam(self, pid: int, param: Any) -> None:
        await self._call("sched_setparam", pid=pid, priority=_sched_priority(param))

    @plain("sched_getparam", os.sched_param)
    async def sched_getparam(self, pid: int = 0) -> os.sched_param:
        return os.sched_param(await self._call("sched_getparam", pid=pid))

    @plain("sched_get_priority_max")
    async def sched_get_priority_max(self, policy: int) -> int:
        return await self._call("sched_get_priority_max", policy=policy)

    @plain("sched_get_priority_min")
    async def sched_get_priority_min(self, policy: int) -> int:
        return await self._call("sched_get_priority_min", policy=policy)

    @plain("nice")
    async def nice(self, inc: int) -> int:
        """The new nice value, as Python's os.nice."""
        return await self._call("nice", inc=inc)

    @plain("getpriority")
    async def getpriority(self, which: int, who: int = 0) -> int:
        """The nice value (as Python's os.getpriority), the lowest among the targets."""
        return await self._call("getpriority", which=which, who=who)

    @plain("setpriority", nothing)
    async def setpriority(self, which: int, who: int, prio: int) -> None:
        await self._call("setpriority", which=which, who=who, prio=prio)

    @plain("sched_setaffinity", nothing)
    async def sched_setaffinity(self, pid: int, mask: Any) -> None:
        await self._call("sched_setaffinity", pid=pid, cpus=mask)

    @plain("sched_getaffinity", set)
    async def sched_getaffinity(self, pid: int = 0) -> set[int]:
        return set(await self._call("sched_getaffinity", pid=pid))

    # time (virtual: abi.HZ ticks a second, one tick per kernel entry)
    @plain("nanosleep", nothing)
    async def nanosleep(self, seconds: float) -> None:
        """Sleep; a caught signal ends it with EINTR (never restarted, as in Linux)."""
        await self._call("nanosleep", seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        await self.nanosleep(seconds)

    @plain("setdomainname", nothing)
    async def setdomainname(self, name: str) -> None:
        await self._call("setdomainname", name=name)

    @plain("unshare", nothing)
    async def unshare(self, flags: int) -> None:
        await self._call("unshare", flags=flags)

    @plain("setns", nothing)
    async def setns(self, fd: int, nstype: int = 0) -> None:
        await self._call("setns", fd=fd, nstype=nstype)

    @plain("semget")
    async def semget(self, key: int, nsems: int, semflg: int = 0) -> int:
        return await self._call("semget", key=key, nsems=nsems, semflg=semflg)

    @plain("semop")
    async def semop(self, semid: int, sops: list[tuple[int, int, int]]) -> int:
        """sops: (sem_num, sem_op, sem_flg) triples, applied all at once or not at all."""
        return await self._call("semop", semid=semid, sops=sops)

    @plain("semctl")
    async def semctl(self, semid: int, semnum: int, cmd: int, arg: int = 0) -> int:
        return await self._call("semctl", semid=semid, semnum=semnum, cmd=cmd, arg=arg)

    @plain("clock_gettime")
    async def clock_gettime(self, clk_id: int = abi.CLOCK_MONOTONIC) -> float:
        return await self._call("clock_gettime", clk_id=clk_id)


def siginfo_result(info: dict) -> signal.struct_siginfo:
    """The kernel's siginfo as Python's signal.struct_siginfo."""
    fields = ("signo", "code", "errno", "pid", "uid", "status", "band")
    return signal.struct_siginfo(tuple(info.get(f, 0) for f in fields))


class SigInfoHandler:
    """An SA_SIGINFO handler: called with the delivered signal's siginfo, which the kernel
    keeps on the task while the handler runs (last_siginfo), and the ucontext's uc_sigmask:
    the mask sigreturn restores (sigsuspend's saved one, else the mask without this signal)."""

    def __init__(self, handler: Any):
        self.handler = handler

    def __call__(self, sys: Sys, sig: int) -> Any:
        task = current.get()
        info = siginfo_result(task.last_siginfo or {"signo": sig})
        restored = task.saved_sigmask if task.saved_sigmask is not None else task.blocked - {sig}
        return self.handler(sys, sig, info, {"uc_sigmask": set(restored)})


def _sched_priority(param: Any) -> Any:
    """os.sched_param(n) or n: the sched_priority that travels in the message."""
    return getattr(param, "sched_priority", param)
