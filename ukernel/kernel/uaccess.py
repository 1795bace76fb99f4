"""What a program hands the kernel, checked at the door: the argument kinds of every syscall.

Named after Linux's uaccess (arch/x86/include/asm/uaccess.h, lib/strncpy_from_user.c):
the code by which the kernel takes a value from user space — access_ok, get_user,
strncpy_from_user, getname — and answers EFAULT, ENAMETOOLONG or EINVAL instead of
trusting it. In C the compiler has already cut each argument to its type
(include/linux/syscalls.h's SYSCALL_DEFINEn); a Python program can pass anything,
so each argument has a *kind*: the C type it stands for, the Python values it takes,
and the errno for a value of the wrong type or out of the type's range.

``check_args`` runs in Kernel.syscall before any message and before the
syscall_enter event: the handler gets the converted values (a bytes path as the
vfs's str, a read count clamped to MAX_RW_COUNT, a sigset as a sorted list).
The checks a syscall makes on the *meaning* of a value (unknown flag bits, a
whence, a policy) stay in its handler or service, as in Linux.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from services.mm import TASK_SIZE

from .. import abi
from ..abi import E2BIG, EBADF, EFAULT, EINVAL, ENAMETOOLONG, ESRCH

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
UINT_MAX = 2**32 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1  # long and loff_t on x86-64
ULONG_MAX = 2**64 - 1  # unsigned long and size_t
PAGE_MASK = ~(abi.PAGE_SIZE - 1)
MAX_RW_COUNT = INT_MAX & PAGE_MASK  # fs/read_write.c: rw_verify_area cuts every read and write to this
MAX_ARG_STRLEN = 32 * abi.PAGE_SIZE  # include/uapi/linux/binfmts.h: one argv or envp string
ARG_MAX = 2 * 1024 * 1024  # fs/exec.c: a quarter of the default 8 MiB stack for argv + envp
NEW_UTS_LEN = 64  # a host or domain name
KTIME_MAX_SECONDS = LONG_MAX // 10**9  # an hrtimer further away than this is clamped (ktime_set)
NR_CPUS = 8192  # CONFIG_NR_CPUS's largest value: the longest cpu list sched_setaffinity takes


def refuse(errno: int, why: str) -> OSError:
    return abi.kernel_error(errno, why)


def show(value: Any) -> str:
    """A short repr for messages: a 1 MB bytes or a deep list stays one line."""
    return reprlib.repr(value)


@dataclass(frozen=True)
class Integer:
    """An integer C type: a Python int (bool counts, as in Python's os module) within the range."""

    ctype: str
    lo: int
    hi: int
    bad_type: int  # the errno for a value that is not an int
    out_of_range: int  # and for one the C type cannot hold
    clamp: int | None = None  # a larger value is cut to this (rw_verify_area's MAX_RW_COUNT)
    wrap: int | None = None  # the value is taken modulo this (a C int passed as u32)

    def __call__(self, value: Any) -> int:
        if not isinstance(value, int):
            raise refuse(self.bad_type, f"{show(value)} is not an int ({self.ctype})")
        if not self.lo <= value <= self.hi:
            raise refuse(self.out_of_range, f"{show(value)} is outside {self.ctype} ({self.lo}..{self.hi})")
        value = int(value)  # an IntFlag or a bool travels as a plain int
        if self.wrap is not None:
            return value % self.wrap
        return value if self.clamp is None else min(value, self.clamp)


def text(value: Any, what: str, max_bytes: int, too_long: int = EINVAL) -> str:
    """strncpy_from_user: a str or bytes with no NUL, at most ``max_bytes`` bytes of UTF-8, as str.

    Not a string is EFAULT (no string at that address). A NUL is EINVAL: C could not
    even pass it (the string would end there) and Python's os module refuses it with
    ValueError, an invalid argument. A str that has no UTF-8 form (a lone surrogate)
    or bytes that are not UTF-8 are EINVAL for the same reason: ukernel's names travel
    in messages as UTF-8 text, so such a name is one ukernel cannot hold.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise refuse(EINVAL, f"{what} {show(raw)} is not UTF-8") from None
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise refuse(EINVAL, f"{what} {show(value)} has no UTF-8 form (a lone surrogate)") from None
    else:
        raise refuse(EFAULT, f"{what} is a str or bytes, not {type(value).__name__}")
    if b"\0" in raw:
        raise refuse(EINVAL, f"{what} {show(value)} has an embedded NUL")
    if len(raw) > max_bytes:
        raise refuse(too_long, f"{what} of {len(raw)} bytes; at most {max_bytes}")
    return value


@dataclass(frozen=True)
class Text:
    """A C string (const char __user *) of at most ``max_bytes`` bytes; ``too_long`` past it."""

    ctype: str
    max_bytes: int
    too_long: int = EINVAL
    bad_type: int = EFAULT

    def __call__(self, value: Any) -> str:
        return text(value, self.ctype, self.max_bytes, self.too_long)


@dataclass(frozen=True)
class Buffer:
    """A data buffer (const void __user *buf, count): bytes, bytearray, memoryview, or a str
    (as libc's write takes it, UTF-8); cut to MAX_RW_COUNT like rw_verify_area. EFAULT for
    anything else, or a str with no UTF-8 form: no buffer of bytes is there to read."""

    ctype: str = "const char __user *buf"
    bad_type: int = EFAULT

    def __call__(self, value: Any) -> bytes:
        if isinstance(value, str):
            try:
                value = value.encode("utf-8")
            except UnicodeEncodeError:
                raise refuse(EFAULT, f"{show(value)} has no UTF-8 form (a lone surrogate)") from None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise refuse(EFAULT, f"a buffer is bytes, bytearray, memoryview or str, not {type(value).__name__}")
        return bytes(value)[:MAX_RW_COUNT]


@dataclass(frozen=True)
class Strings:
    """execve's argv (const char __user *const __user *): a list or tuple of strings. EFAULT for
    anything else; E2BIG past MAX_ARG_STRLEN for one string or ARG_MAX for all (do_execve adds
    envp's size to argv's, as copy_strings counts both against one limit)."""

    ctype: str = "const char __user *const __user *argv"
    bad_type: int = EFAULT

    def __call__(self, value: Any) -> list[str]:
        if not isinstance(value, list | tuple):
            raise refuse(EFAULT, f"argv is a list of strings, not {type(value).__name__}")
        if len(value) > ARG_MAX // 8:  # each string costs at least its pointer
            raise refuse(E2BIG, f"{len(value)} strings; the whole must fit in {ARG_MAX} bytes")
        strings = [text(s, "an argv string", MAX_ARG_STRLEN, E2BIG) for s in value]
        if arg_size(strings) > ARG_MAX:
            raise refuse(E2BIG, f"argv takes {arg_size(strings)} bytes; at most {ARG_MAX}")
        return strings


@dataclass(frozen=True)
class Environ:
    """execve's envp, as a dict NAME -> value (None is empty); the strings as for argv, and a
    name is not empty and has no '=' (EINVAL), since "NAME=value" is how it is stored."""

    ctype: str = "const char __user *const __user *envp"
    bad_type: int = EFAULT

    def __call__(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise refuse(EFAULT, f"envp is a dict of strings, not {type(value).__name__}")
        if len(value) > ARG_MAX // 8:
            raise refuse(E2BIG, f"{len(value)} variables; the whole must fit in {ARG_MAX} bytes")
        env = {}
        for name, val in value.items():
            name = text(name, "an envp name", MAX_ARG_STRLEN, E2BIG)
            if not name or "=" in name:
                raise refuse(EINVAL, f"envp name {show(name)}: not empty and without '='")
            env[name] = text(val, "an envp value", MAX_ARG_STRLEN - len(name) - 1, E2BIG)
        if arg_size([f"{k}={v}" for k, v in env.items()]) > ARG_MAX:
            raise refuse(E2BIG, f"envp is more than {ARG_MAX} bytes")
        return env


def arg_size(strings: list[str]) -> int:
    """What copy_strings counts: each string's bytes, its NUL, and its pointer."""
    return sum(len(s.encode()) + 1 + 8 for s in strings)


@dataclass(frozen=True)
class Seconds:
    """A duration (struct timespec) in seconds: a finite int or float >= 0, else EINVAL
    (timespec64_valid); a longer one than ktime can hold is clamped to KTIME_MAX, as in Linux."""

    ctype: str = "struct __kernel_timespec __user *"
    bad_type: int = EINVAL

    def __call__(self, value: Any) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise refuse(EINVAL, f"a duration is a number of seconds, not {show(value)}")
        if not value >= 0 or math.isinf(value):
            raise refuse(EINVAL, f"a duration is finite and >= 0, not {show(value)}")
        return min(value, KTIME_MAX_SECONDS)


@dataclass(frozen=True)
class Sequence:
    """A user array (a sigset, a cpu list, set_tid): a list, tuple, set or range of ``item``s,
    at most ``max_len`` of them; ``sort`` for a set (sigset_t, cpumask) that travels as a list."""

    ctype: str
    item: Callable[[Any], Any]
    max_len: int
    too_long: int = EINVAL
    bad_type: int = EFAULT
    sort: bool = False

    def __call__(self, value: Any) -> list:
        if not isinstance(value, list | tuple | set | frozenset | range):
            raise refuse(self.bad_type, f"{self.ctype} is a list, not {type(value).__name__}")
        if len(value) > self.max_len:
            raise refuse(self.too_long, f"{len(value)} entries in {self.ctype}; at most {self.max_len}")
        items = [self.item(v) for v in value]
        return sorted(set(items)) if self.sort else items


def sembuf(value: Any) -> list[int]:
    """struct sembuf: (sem_num, sem_op, sem_flg), an unsigned short and two shorts."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise refuse(EFAULT, f"a semaphore operation is (sem_num, sem_op, sem_flg), not {show(value)}")
    return [USHORT(value[0]), SHORT(value[1]), SHORT(value[2])]


@dataclass(frozen=True)
class Function:
    """clone's fn: what the child runs, a callable (or None: clone returns twice); else EINVAL."""

    ctype: str = "int (*fn)(void *)"
    bad_type: int = EINVAL

    def __call__(self, value: Any) -> Any:
        if value is not None and not callable(value):
            raise refuse(EINVAL, f"fn must be callable, not {type(value).__name__}")
        return value


@dataclass(frozen=True)
class Handler:
    """sigaction's handler as libc sends it: SIG_DFL, SIG_IGN, a handler token (libc turns a
    callable into one), or None to only ask; else EINVAL."""

    ctype: str = "__sighandler_t"
    bad_type: int = EINVAL

    def __call__(self, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value in (abi.SIG_DFL, abi.SIG_IGN)):
            return value
        return HANDLER_TOKEN(value)


@dataclass(frozen=True)
class Optional:
    """None, or a value of ``kind`` (futex's timeout, prlimit's new limit, sigprocmask's set)."""

    kind: Any

    @property
    def ctype(self) -> str:
        return f"{self.kind.ctype} or NULL"

    @property
    def bad_type(self) -> int:
        return self.kind.bad_type

    def __call__(self, value: Any) -> Any:
        return None if value is None else self.kind(value)


@dataclass(frozen=True)
class Rlimit:
    """prlimit's new limit: None (only ask), one rlim_t (the soft limit alone, as ukernel's
    prlimit(resource, n) has always taken), or struct rlimit as [soft, hard]."""

    limit: Integer
    ctype: str = "const struct rlimit64 __user *new_rlim"
    bad_type: int = EINVAL

    def __call__(self, value: Any) -> Any:
        if value is None or isinstance(value, int):
            return None if value is None else self.limit(value)
        if isinstance(value, list | tuple) and len(value) == 2:
            return [self.limit(v) for v in value]
        raise refuse(EINVAL, f"a limit is an int or [soft, hard], not {show(value)}")


@dataclass(frozen=True)
class Anything:
    """clone's arg: handed to the child as it is (a pointer the kernel never reads)."""

    ctype: str = "void *arg"
    bad_type: int = 0

    def __call__(self, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class IoctlArg:
    """ioctl's arg: an unsigned long, or the struct it points to as a list (termios); it goes to
    vfs in a message, so it must be what msgpack carries (no int past 64 bits, no set)."""

    ctype: str = "unsigned long arg"
    bad_type: int = EINVAL

    def __call__(self, value: Any) -> Any:
        try:
            msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise refuse(EINVAL, f"{show(value)} is no unsigned long or struct a message can carry ({exc})") from None
        return value


USHORT = Integer("unsigned short", 0, 2**16 - 1, EINVAL, EINVAL)
SHORT = Integer("short", -(2**15), 2**15 - 1, EINVAL, EINVAL)
HANDLER_TOKEN = Integer("a handler token", 0, LONG_MAX, EINVAL, EINVAL)
SIGNAL = Integer("int sig", 0, abi._NSIG, EINVAL, EINVAL)
PID = Integer("pid_t", INT_MIN, INT_MAX, EINVAL, ESRCH)
SIGSET = Sequence("sigset_t", Integer("a signal in a sigset", 1, abi._NSIG, EINVAL, EINVAL), abi._NSIG, sort=True,
                  bad_type=EINVAL)  # fmt: skip

# fmt: off
#: Every argument kind: the C type it stands for, what it takes, and its errnos.
KINDS: dict[str, Any] = {
    # kind        C type (include/linux/syscalls.h)   min      max          not an int  out of range
    "fd":       Integer("unsigned int fd",             0,       INT_MAX,     EBADF,      EBADF),
    "mmap_fd":  Integer("unsigned long fd (-1: none)", -1,      INT_MAX,     EBADF,      EBADF),
    "uaddr":    Integer("void __user *",               0,       TASK_SIZE,   EFAULT,     EFAULT),
    "int":      Integer("int",                         INT_MIN, INT_MAX,     EINVAL,     EINVAL),
    "uint":     Integer("unsigned int",                0,       UINT_MAX,    EINVAL,     EINVAL),
    "flags":    Integer("int flags (32 bits)",         INT_MIN, UINT_MAX,    EINVAL,     EINVAL, wrap=2**32),
    "u32":      Integer("u32 (a C int is taken too)",  INT_MIN, UINT_MAX,    EINVAL,     EINVAL, wrap=2**32),
    "long":     Integer("long",                        LONG_MIN, LONG_MAX,   EINVAL,     EINVAL),
    "ulong":    Integer("unsigned long",               0,       ULONG_MAX,   EINVAL,     EINVAL),
    "size_t":   Integer("size_t",                      0,       ULONG_MAX,   EINVAL,     EINVAL),
    "count":    Integer("size_t count",                0,       ULONG_MAX,   EINVAL,     EINVAL, clamp=MAX_RW_COUNT),
    "loff_t":   Integer("loff_t",                      LONG_MIN, LONG_MAX,   EINVAL,     EINVAL),
    "mode_t":   Integer("umode_t (libc's mode_t)",     0,       UINT_MAX,    EINVAL,     EINVAL),
    "pid":      PID,
    "signal":   SIGNAL,
    "rlim":     Rlimit(Integer("rlim_t (-1: RLIM_INFINITY)", -1, LONG_MAX, EINVAL,     EINVAL)),
    # kind        what it is                                                  max length              past it
    "path":     Text("const char __user *pathname",                           abi.PATH_MAX - 1,       ENAMETOOLONG),
    "string":   Text("const char __user * (a mount string)",                  abi.PAGE_SIZE - 1),
    "utsname":  Text("char __user *name (a host or domain name)",             NEW_UTS_LEN),
    "buffer":   Buffer(),
    "argv":     Strings(),
    "envp":     Environ(),
    "sigset":   Optional(SIGSET),
    "sigmask":  SIGSET,
    "cpuset":   Sequence("cpu_set_t", Integer("a cpu number", 0, NR_CPUS - 1, EINVAL, EINVAL), NR_CPUS,
                         sort=True, bad_type=EINVAL),
    "set_tid":  Sequence("pid_t set_tid[]", PID, abi.MAX_PID_NS_LEVEL),
    "sembufs":  Sequence("struct sembuf __user *sops", sembuf, abi.SEMOPM, E2BIG),
    "seconds":  Seconds(),
    "timeout":  Optional(Seconds()),
    "fn":       Function(),
    "handler":  Handler(),
    "arg":      Anything(),
    "ioctl_arg": IoctlArg(),
}

#: Every syscall's arguments, in libc's order, with their kinds.
SYSCALL_ARGS: dict[str, dict[str, str]] = {
    "fork":                   {},
    "vfork":                  {},
    "clone":                  {"flags": "ulong", "fn": "fn", "arg": "arg", "parent_tid": "uaddr", "child_tid": "uaddr",
                               "tls": "ulong"},
    "clone3":                 {"flags": "ulong", "exit_signal": "ulong", "fn": "fn", "arg": "arg", "set_tid": "set_tid",
                               "pidfd": "ulong"},
    "execve":                 {"path": "path", "argv": "argv", "envp": "envp"},
    "exit":                   {"code": "int"},
    "exit_group":             {"code": "int"},
    "wait4":                  {"pid": "pid", "options": "flags"},
    "waitid":                 {"idtype": "int", "id": "int", "options": "flags"},
    "getpid":                 {},
    "gettid":                 {},
    "getppid":                {},
    "getpgid":                {"pid": "pid"},
    "setpgid":                {"pid": "pid", "pgid": "pid"},
    "getsid":                 {"pid": "pid"},
    "setsid":                 {},
    "sched_yield":            {},
    "kill":                   {"pid": "pid", "sig": "signal"},
    "tgkill":                 {"tgid": "pid", "tid": "pid", "sig": "signal"},
    "sigaction":              {"sig": "signal", "handler": "handler", "flags": "ulong"},
    "sigprocmask":            {"how": "int", "mask": "sigset"},
    "pause":                  {},
    "sigsuspend":             {"mask": "sigmask"},
    "sigpending":             {},
    "sigtimedwait":           {"mask": "sigmask", "timeout": "timeout"},
    "prlimit":                {"resource": "uint", "new": "rlim"},
    "set_child_subreaper":    {"flag": "ulong"},
    "open":                   {"path": "path", "flags": "flags", "mode": "mode_t"},
    "close":                  {"fd": "fd"},
    "read":                   {"fd": "fd", "n": "count"},
    "write":                  {"fd": "fd", "data": "buffer"},
    "lseek":                  {"fd": "fd", "offset": "loff_t", "whence": "uint"},
    "getdents":               {"fd": "fd"},
    "fstat":                  {"fd": "fd"},
    "dup":                    {"fd": "fd"},
    "dup2":                   {"old": "fd", "new": "fd"},
    "dup3":                   {"old": "fd", "new": "fd", "flags": "flags"},
    "fcntl":                  {"fd": "fd", "cmd": "uint", "arg": "long"},
    "ioctl":                  {"fd": "fd", "cmd": "uint", "arg": "ioctl_arg"},
    "pipe2":                  {"flags": "flags"},
    "chdir":                  {"path": "path"},
    "fchdir":                 {"fd": "fd"},
    "getcwd":                 {},
    "chroot":                 {"path": "path"},
    "umask":                  {"mask": "mode_t"},
    "mkdir":                  {"path": "path", "mode": "mode_t"},
    "mknod":                  {"path": "path", "mode": "mode_t"},
    "rmdir":                  {"path": "path"},
    "unlink":                 {"path": "path"},
    "rename":                 {"old": "path", "new": "path"},
    "link":                   {"old": "path", "new": "path"},
    "symlink":                {"target": "path", "path": "path"},
    "readlink":               {"path": "path"},
    "stat":                   {"path": "path"},
    "lstat":                  {"path": "path"},
    "access":                 {"path": "path", "mode": "flags"},
    "mount":                  {"source": "string", "target": "path", "fstype": "string"},
    "umount":                 {"target": "path"},
    "mmap":                   {"addr": "ulong", "length": "size_t", "prot": "ulong", "flags": "ulong",
                               "fd": "mmap_fd", "offset": "loff_t"},
    "munmap":                 {"addr": "ulong", "length": "size_t"},
    "mprotect":               {"addr": "ulong", "length": "size_t", "prot": "ulong"},
    "brk":                    {"addr": "ulong"},
    "getrusage":              {},
    "peek":                   {"addr": "uaddr", "n": "size_t"},
    "poke":                   {"addr": "uaddr", "data": "buffer"},
    "cmpxchg":                {"addr": "uaddr", "old": "u32", "new": "u32"},
    "futex":                  {"addr": "uaddr", "op": "int", "val": "u32", "timeout": "timeout"},
    "set_tid_address":        {"addr": "uaddr"},
    "uname":                  {},
    "sethostname":            {"name": "utsname"},
    "unshare":                {"flags": "ulong"},
    "setns":                  {"fd": "fd", "nstype": "int"},
    "setdomainname":          {"name": "utsname"},
    "semget":                 {"key": "int", "nsems": "int", "semflg": "flags"},
    "semop":                  {"semid": "int", "sops": "sembufs"},
    "semctl":                 {"semid": "int", "semnum": "int", "cmd": "int", "arg": "int"},
    "clock_gettime":          {"clk_id": "int"},
    "sched_setscheduler":     {"pid": "pid", "policy": "int", "priority": "int"},
    "sched_getscheduler":     {"pid": "pid"},
    "sched_setparam":         {"pid": "pid", "priority": "int"},
    "sched_getparam":         {"pid": "pid"},
    "sched_get_priority_max": {"policy": "int"},
    "sched_get_priority_min": {"policy": "int"},
    "nice":                   {"inc": "int"},
    "getpriority":            {"which": "int", "who": "int"},
    "setpriority":            {"which": "int", "who": "int", "prio": "int"},
    "sched_setaffinity":      {"pid": "pid", "cpus": "cpuset"},
    "sched_getaffinity":      {"pid": "pid"},
    "nanosleep":              {"seconds": "seconds"},
}
# fmt: on


def check_args(syscall: str, args: dict) -> dict:
    """Each argument through its kind, in order: the converted values, or the first
    bad argument's errno (an OSError naming the syscall and the argument)."""
    checked = {}
    for name, kind in SYSCALL_ARGS[syscall].items():
        try:
            checked[name] = KINDS[kind](args[name])
        except OSError as exc:
            raise refuse(exc.errno, f"{syscall}'s {name}: {exc.strerror.partition(': ')[2]}") from None
    return checked
