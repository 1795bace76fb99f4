"""THE syscall table: each syscall's name, the service it is routed to, and its handler.

A handler is ``async def sys_x(k, task, meta, **args)`` and lives in the file
of its Linux counterpart (fork.py, fs.py, signal.py, ...); ``meta`` carries
the syscall's msgid as ``cause`` for every message it sends. Calls answered
from the task_struct (getpid, gettid, getppid) send no message at all, as in
Linux where they never leave the core kernel. "routed to" is where the
syscall's work is done, as the trace's syscall events show it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .exec import sys_execve
from .exit import sys_exit, sys_exit_group, sys_wait4, sys_waitid
from .fork import sys_clone, sys_clone3, sys_fork, sys_vfork
from .fs import sys_open, sys_read, sys_write, vfs_syscall
from .futex import sys_futex, sys_set_tid_address
from .ipc import sys_semctl, sys_semget, sys_semop
from .mm import sys_brk, sys_cmpxchg, sys_mmap, sys_mprotect, sys_munmap, sys_peek, sys_poke
from .nsproxy import sys_setns, sys_unshare
from .sched import (
    sys_getpriority,
    sys_nice,
    sys_sched_get_priority_max,
    sys_sched_get_priority_min,
    sys_sched_getaffinity,
    sys_sched_getparam,
    sys_sched_getscheduler,
    sys_sched_setaffinity,
    sys_sched_setparam,
    sys_sched_setscheduler,
    sys_sched_yield,
    sys_setpriority,
)
from .signal import (
    sys_kill,
    sys_pause,
    sys_sigaction,
    sys_sigpending,
    sys_sigprocmask,
    sys_sigsuspend,
    sys_sigtimedwait,
    sys_tgkill,
)
from .sys import (
    sys_getpgid,
    sys_getpid,
    sys_getppid,
    sys_getrusage,
    sys_getsid,
    sys_gettid,
    sys_prlimit,
    sys_set_child_subreaper,
    sys_setdomainname,
    sys_sethostname,
    sys_setpgid,
    sys_setsid,
    sys_uname,
)
from .time import sys_clock_gettime, sys_nanosleep
from .tty import sys_ioctl

Handler = Callable[..., Awaitable[Any]]

# fmt: off
SYSCALLS: dict[str, tuple[str, Handler]] = {
    # name                      routed to     handler
    "fork":                   ("kernel",     sys_fork),
    "vfork":                  ("kernel",     sys_vfork),
    "clone":                  ("kernel",     sys_clone),
    "clone3":                 ("kernel",     sys_clone3),
    "execve":                 ("kernel",     sys_execve),
    "exit":                   ("kernel",     sys_exit),
    "exit_group":             ("kernel",     sys_exit_group),
    "wait4":                  ("kernel",     sys_wait4),
    "waitid":                 ("kernel",     sys_waitid),
    "getpid":                 ("kernel",     sys_getpid),
    "gettid":                 ("kernel",     sys_gettid),
    "getppid":                ("kernel",     sys_getppid),
    "getpgid":                ("kernel",     sys_getpgid),
    "setpgid":                ("kernel",     sys_setpgid),
    "getsid":                 ("kernel",     sys_getsid),
    "setsid":                 ("kernel",     sys_setsid),
    "sched_yield":            ("sched",      sys_sched_yield),
    "kill":                   ("signals",    sys_kill),
    "tgkill":                 ("signals",    sys_tgkill),
    "sigaction":              ("signals",    sys_sigaction),
    "sigprocmask":            ("kernel",     sys_sigprocmask),
    "pause":                  ("kernel",     sys_pause),
    "sigsuspend":             ("kernel",     sys_sigsuspend),
    "sigpending":             ("signals",    sys_sigpending),
    "sigtimedwait":           ("signals",    sys_sigtimedwait),
    "prlimit":                ("kernel",     sys_prlimit),
    "set_child_subreaper":    ("kernel",     sys_set_child_subreaper),
    "open":                   ("vfs",        sys_open),
    "close":                  ("vfs",        vfs_syscall("close", "files")),
    "read":                   ("vfs",        sys_read),
    "write":                  ("vfs",        sys_write),
    "lseek":                  ("vfs",        vfs_syscall("lseek", "files")),
    "getdents":               ("vfs",        vfs_syscall("getdents", "files")),
    "fstat":                  ("vfs",        vfs_syscall("fstat", "files")),
    "dup":                    ("vfs",        vfs_syscall("dup", "files")),
    "dup2":                   ("vfs",        vfs_syscall("dup2", "files")),
    "dup3":                   ("vfs",        vfs_syscall("dup3", "files")),
    "fcntl":                  ("vfs",        vfs_syscall("fcntl", "files")),
    "ioctl":                  ("vfs",        sys_ioctl),
    "pipe2":                  ("vfs",        vfs_syscall("pipe2", "files")),
    "chdir":                  ("vfs",        vfs_syscall("chdir", "fs")),
    "fchdir":                 ("vfs",        vfs_syscall("fchdir", "files", "fs")),
    "getcwd":                 ("vfs",        vfs_syscall("getcwd", "fs")),
    "chroot":                 ("vfs",        vfs_syscall("chroot", "fs")),
    "umask":                  ("vfs",        vfs_syscall("umask", "fs")),
    "mkdir":                  ("vfs",        vfs_syscall("mkdir", "fs")),
    "mknod":                  ("vfs",        vfs_syscall("mknod", "fs")),
    "rmdir":                  ("vfs",        vfs_syscall("rmdir", "fs")),
    "unlink":                 ("vfs",        vfs_syscall("unlink", "fs")),
    "rename":                 ("vfs",        vfs_syscall("rename", "fs")),
    "link":                   ("vfs",        vfs_syscall("link", "fs")),
    "symlink":                ("vfs",        vfs_syscall("symlink", "fs")),
    "readlink":               ("vfs",        vfs_syscall("readlink", "fs")),
    "stat":                   ("vfs",        vfs_syscall("stat", "fs")),
    "lstat":                  ("vfs",        vfs_syscall("lstat", "fs")),
    "access":                 ("vfs",        vfs_syscall("access", "fs")),
    "mount":                  ("vfs",        vfs_syscall("mount", "fs")),
    "umount":                 ("vfs",        vfs_syscall("umount", "fs")),
    "mmap":                   ("mm",         sys_mmap),
    "munmap":                 ("mm",         sys_munmap),
    "mprotect":               ("mm",         sys_mprotect),
    "brk":                    ("mm",         sys_brk),
    "getrusage":              ("mm",         sys_getrusage),
    "peek":                   ("mm",         sys_peek),
    "poke":                   ("mm",         sys_poke),
    "cmpxchg":                ("mm",         sys_cmpxchg),
    "futex":                  ("kernel",     sys_futex),
    "set_tid_address":        ("kernel",     sys_set_tid_address),
    "uname":                  ("namespaces", sys_uname),
    "sethostname":            ("namespaces", sys_sethostname),
    "unshare":                ("kernel",     sys_unshare),
    "setns":                  ("namespaces", sys_setns),
    "setdomainname":          ("namespaces", sys_setdomainname),
    "semget":                 ("namespaces", sys_semget),
    "semop":                  ("namespaces", sys_semop),
    "semctl":                 ("namespaces", sys_semctl),
    "clock_gettime":          ("kernel",     sys_clock_gettime),
    "sched_setscheduler":     ("sched",      sys_sched_setscheduler),
    "sched_getscheduler":     ("sched",      sys_sched_getscheduler),
    "sched_setparam":         ("sched",      sys_sched_setparam),
    "sched_getparam":         ("sched",      sys_sched_getparam),
    "sched_get_priority_max": ("kernel",     sys_sched_get_priority_max),
    "sched_get_priority_min": ("kernel",     sys_sched_get_priority_min),
    "nice":                   ("sched",      sys_nice),
    "getpriority":            ("sched",      sys_getpriority),
    "setpriority":            ("sched",      sys_setpriority),
    "sched_setaffinity":      ("sched",      sys_sched_setaffinity),
    "sched_getaffinity":      ("sched",      sys_sched_getaffinity),
    "nanosleep":              ("sched",      sys_nanosleep),
}
# fmt: on
