"""The uapi headers of ukernel: every number a program or a service uses.

Values are Linux's (include/uapi/linux/sched.h, asm-generic/errno-base.h,
signal.h, fcntl.h, mman.h, wait.h), so a student can look them up in the
man pages and find the same numbers.
"""

from __future__ import annotations

import errno as _errno
import os as _os

# --- clone flags (include/uapi/linux/sched.h) --------------------------------
CSIGNAL = 0x000000FF
CLONE_NEWTIME = 0x00000080
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_DETACHED = 0x00400000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000
CLONE_CLEAR_SIGHAND = 1 << 32
CLONE_INTO_CGROUP = 1 << 33

#: Flag names in bit order, for decoding (``ukernel flags``, strace lines).
CLONE_FLAG_NAMES: dict[int, str] = {
    value: name
    for name, value in sorted(globals().items(), key=lambda kv: kv[1] if isinstance(kv[1], int) else 0)
    if name.startswith("CLONE_") and isinstance(value, int) and value & (value - 1) == 0
}
CLONE_NEW_MASK = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME  # clone3 and unshare only: in clone() this bit is part of the exit signal
)
CLONE_LEGACY_FLAGS = 0xFFFFFFFF
CLONE_ARGS_SIZE_VER2 = 88
#: The flag set glibc's pthread_create passes (nptl/pthread_create.c).
PTHREAD_CLONE_FLAGS = (
    CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
)

# --- signals (asm-generic/signal.h) ------------------------------------------
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = range(1, 9)
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT = range(9, 17)
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU = range(17, 25)
SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS = range(25, 32)
SIGRTMIN, SIGRTMAX = 32, 64
_NSIG = 64
SIGNAL_NAMES: dict[int, str] = {
    v: k
    for k, v in globals().items()
    if k.startswith("SIG")
    and k[3:].isupper()
    and isinstance(v, int)
    and k not in ("SIGRTMIN", "SIGRTMAX", "SIGNAL_NAMES")
}
SIG_DFL = "SIG_DFL"
SIG_IGN = "SIG_IGN"
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SA_NOCLDSTOP = 0x00000001
SA_NOCLDWAIT = 0x00000002
SA_SIGINFO = 0x00000004
SA_RESTART = 0x10000000
SA_NODEFER = 0x40000000
SA_RESETHAND = 0x80000000
#: siginfo's si_code (include/uapi/asm-generic/siginfo.h): who sent it, or what a child did.
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_TRAPPED, CLD_STOPPED, CLD_CONTINUED = range(1, 7)


#: Default actions (kernel/signal.c's sig_kernel_* sets); the rest terminate.
SIG_KERNEL_IGNORE = frozenset({SIGCHLD, SIGCONT, SIGURG, SIGWINCH})
SIG_KERNEL_STOP = frozenset({SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU})
SIG_KERNEL_ONLY = frozenset({SIGKILL, SIGSTOP})


def valid_signal(sig: int) -> bool:
    """Linux's valid_signal(): 0 (no signal) up to _NSIG."""
    return 0 <= sig <= _NSIG


# --- errno --------------------------------------------------------------------
EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, ENOEXEC = 1, 2, 3, 4, 5, 6, 7, 8
EBADF, ECHILD, EAGAIN, ENOMEM, EACCES, EFAULT, EBUSY, EEXIST = 9, 10, 11, 12, 13, 14, 16, 17
ENOTDIR, EISDIR, EINVAL, ENFILE, EMFILE, ESPIPE, EPIPE, ERANGE = 20, 21, 22, 23, 24, 29, 32, 34
ENOSYS, ENOTEMPTY, ELOOP, EBADMSG, EUSERS, ENOSPC, ENAMETOOLONG = 38, 39, 40, 74, 87, 28, 36
EXDEV, ENODEV, EROFS, EMLINK = 18, 19, 30, 31
ETIMEDOUT = 110
ENOTTY = 25
#: The kernel's own codes (include/linux/errno.h): a syscall interrupted by a signal says how
#: it may be restarted; no program ever sees them (entry.py turns them into a restart or EINTR).
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTART_NAMES = {
    ERESTARTSYS: "ERESTARTSYS",
    ERESTARTNOINTR: "ERESTARTNOINTR",
    ERESTARTNOHAND: "ERESTARTNOHAND",
    ERESTART_RESTARTBLOCK: "ERESTART_RESTARTBLOCK",
}


def errno_name(err: int) -> str:
    """'EINVAL' for 22: the symbolic name students know."""
    if err in RESTART_NAMES:
        return RESTART_NAMES[err]
    return _errno.errorcode.get(err, f"E{err}")


def strerror(err: int) -> str:
    if err in RESTART_NAMES:  # strace's words for them
        return "To be restarted" + (" if SA_RESTART is set" if err == ERESTARTSYS else "")
    return _os.strerror(err)


def named(err: int, message: str = "") -> str:
    """'EBADF: fd 9 is not open': an OSError's text begins with the errno's name, which is
    what a student looks up (errno(3)), then says why; without a why, strerror's words."""
    name = errno_name(err)
    if message == name or message.startswith(f"{name}: "):
        return message
    return f"{name}: {message or strerror(err)}"


def kernel_error(err: int, message: str = "") -> OSError:
    """The OSError a syscall raises: errno (Python picks the subclass: FileNotFoundError for
    ENOENT) and a strerror naming the errno and what ukernel knows (``named``)."""
    return OSError(err, named(err, message))


# --- open / fcntl (asm-generic/fcntl.h) ---------------------------------------
O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE = 0o0, 0o1, 0o2, 0o3
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC = 0o100, 0o200, 0o400, 0o1000
O_APPEND, O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o2000, 0o4000, 0o200000, 0o400000, 0o2000000
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FD_CLOEXEC = 1
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
F_OK, X_OK, W_OK, R_OK = 0, 1, 2, 4  # access(2)
O_SETFL_MASK = O_APPEND | O_NONBLOCK  # the status flags F_SETFL may change (Linux: SETFL_MASK, less O_DIRECT/O_NOATIME)
PATH_MAX, NAME_MAX, MAXSYMLINKS = 4096, 255, 40
PIPE_BUF, PIPE_DEF_BUFFERS_SIZE = 4096, 65536  # atomic write size; a pipe's capacity (16 pages)

# --- terminals: termios and tty ioctls (asm-generic/termbits.h, ioctls.h) -------
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCGWINSZ, TIOCSWINSZ, TIOCNOTTY = 0x540E, 0x540F, 0x5410, 0x5413, 0x5414, 0x5422
TCSANOW, TCSADRAIN, TCSAFLUSH = 0, 1, 2  # tcsetattr's when: TCSETS, TCSETSW, TCSETSF
# c_iflag, c_oflag, c_cflag, c_lflag bits
IGNCR, ICRNL, IXON = 0o200, 0o400, 0o2000
INLCR = 0o100
OPOST, ONLCR = 0o1, 0o4
B38400, CS8, CREAD, HUPCL = 0o17, 0o60, 0o200, 0o2000
ISIG, ICANON, ECHO, ECHOE, ECHOK, ECHONL = 0o1, 0o2, 0o10, 0o20, 0o40, 0o100
NOFLSH, TOSTOP, ECHOCTL, ECHOKE, IEXTEN = 0o200, 0o400, 0o1000, 0o4000, 0o100000
# c_cc indices
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN, VSUSP, VEOL = 0, 1, 2, 3, 4, 5, 6, 10, 11
NCCS = 32
#: tty_std_termios (drivers/tty/tty_io.c): what a new terminal starts with.
TTY_STD_IFLAG, TTY_STD_OFLAG = ICRNL | IXON, OPOST | ONLCR
TTY_STD_CFLAG = B38400 | CS8 | CREAD | HUPCL
TTY_STD_LFLAG = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN
#: INIT_C_CC (include/linux/tty.h): ^C ^\ DEL ^U ^D, VTIME 0, VMIN 1, ..., ^Z, ...
INIT_C_CC = (3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22) + (0,) * 16
#: The console's device number (TTYAUX_MAJOR 5, minor 1) as /proc/PID/stat's tty_nr encodes it.
CONSOLE_DEV = (5 << 8) | 1

# --- mmap (asm-generic/mman-common.h) -----------------------------------------
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FAILED = -1
PAGE_SIZE = 4096
STACK_SIZE = 8 * PAGE_SIZE  # a process's stack VMA: fixed, it does not grow (/proc/PID/limits' stack row)
NR_OPEN_DEFAULT = 1024  # the fds a process may have open (RLIMIT_NOFILE's usual soft limit)

# --- futex ----------------------------------------------------------------------
FUTEX_WAIT, FUTEX_WAKE = 0, 1

# --- wait (include/uapi/linux/wait.h) -----------------------------------------
WNOHANG, WUNTRACED, WSTOPPED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 2, 4, 8, 0x01000000
__WNOTHREAD, __WALL, __WCLONE = 0x20000000, 0x40000000, 0x80000000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3  # waitid's idtype


def W_EXITCODE(code: int, sig: int = 0) -> int:
    """The wait status of a normal exit (code) or of a death by signal (sig)."""
    return ((code & 0xFF) << 8) | (sig & 0x7F)


def WIFEXITED(status: int) -> bool:
    return (status & 0x7F) == 0


def WEXITSTATUS(status: int) -> int:
    return (status >> 8) & 0xFF


def WIFSIGNALED(status: int) -> bool:
    return ((status & 0x7F) + 1) >> 1 > 0 and (status & 0x7F) != 0x7F


def WTERMSIG(status: int) -> int:
    return status & 0x7F


def WIFSTOPPED(status: int) -> bool:
    return (status & 0xFF) == 0x7F


def WSTOPSIG(status: int) -> int:
    return WEXITSTATUS(status)


def WIFCONTINUED(status: int) -> bool:
    return status == 0xFFFF


# --- resource limits ----------------------------------------------------------
RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_NOFILE = 0, 6, 7
RLIM_INFINITY = -1

# --- pid allocation (include/linux/threads.h, kernel/pid.c) -------------------
PID_MAX_DEFAULT = 0x8000
RESERVED_PIDS = 300
MAX_PID_NS_LEVEL = 32

# --- namespaces (include/linux/proc_ns.h, include/uapi/linux/sched.h) ----------
#: setns's nstype for each /proc/PID/ns/ name (0 means any).
NS_TYPES: dict[str, int] = {
    "cgroup": CLONE_NEWCGROUP,
    "ipc": CLONE_NEWIPC,
    "mnt": CLONE_NEWNS,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "time": CLONE_NEWTIME,
    "user": CLONE_NEWUSER,
    "uts": CLONE_NEWUTS,
}
#: The initial namespaces' inode numbers, as on a Linux machine (PROC_*_INIT_INO;
#: net and mnt are the first two proc_alloc_inum gives at boot).
INIT_NS_INUMS: dict[str, int] = {
    "ipc": 0xEFFFFFFF,
    "uts": 0xEFFFFFFE,
    "user": 0xEFFFFFFD,
    "pid": 0xEFFFFFFC,
    "cgroup": 0xEFFFFFFB,
    "time": 0xEFFFFFFA,
    "net": 0xF0000000,
    "mnt": 0xF0000001,
}
FIRST_NS_INUM = 4026532000  # where ukernel's proc_alloc_inum starts for new namespaces
#: What unshare(2) accepts (check_unshare_flags).
UNSHARE_FLAGS = (
    CLONE_THREAD | CLONE_FS | CLONE_NEWNS | CLONE_SIGHAND | CLONE_VM | CLONE_FILES | CLONE_SYSVSEM | CLONE_NEW_MASK
)
MAX_USER_NS_LEVEL = 32  # create_user_ns: a parent deeper than this is EUSERS
EFBIG, EIDRM = 27, 43

# --- System V semaphores (include/uapi/linux/ipc.h, sem.h) ---------------------
IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID = 0
GETVAL, SETVAL = 12, 16
SEM_UNDO = 0x1000
SEMMSL, SEMOPM, SEMVMX, SEMAEM = 32000, 500, 32767, 32767


def decode_clone_flags(flags: int) -> list[str]:
    """'CLONE_VM|CLONE_FS|SIGCHLD' style names; the low byte is the exit signal."""
    names = [name for bit, name in CLONE_FLAG_NAMES.items() if flags & bit and bit > CSIGNAL]
    sig = flags & CSIGNAL
    if sig:
        names.append(SIGNAL_NAMES.get(sig, str(sig)))
    rest = flags & ~(CSIGNAL | sum(b for b in CLONE_FLAG_NAMES if b > CSIGNAL))
    if rest:
        names.append(hex(rest))
    return names


# --- scheduling (include/uapi/linux/sched.h, include/linux/sched/prio.h) --------
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 1, 2, 3, 5, 6
SCHED_RESET_ON_FORK = 0x40000000
SCHED_POLICY_NAMES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE"}
MAX_RT_PRIO = 100  # prio 0..99 is real-time; 100..139 is nice -20..19
DEFAULT_PRIO = 120  # MAX_RT_PRIO + 20: nice 0
MIN_NICE, MAX_NICE = -20, 19
PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2

# --- time: virtual ticks (one per kernel entry) ----------------------------------
HZ = 1000  # ticks per second of virtual time: 1 tick = 1 ms
USER_HZ = 100  # clock ticks per second in /proc/PID/stat's times (sysconf(_SC_CLK_TCK))
FSHIFT = 11  # the load average's fixed point (linux/sched/loadavg.h): sched keeps it, /proc/loadavg shows it
TICK_NSEC = 1_000_000_000 // HZ
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
