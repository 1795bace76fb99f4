"""Values and calls as strace writes them: the formatting the views share.

``strace`` prints its lines with it, and ``route``, ``mermaid``, ``chrome`` and ``html``
name a syscall the same way (``clone(flags=CLONE_VM|..., fn=worker) = 8``).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterable
from typing import Any

from ... import abi
from .. import Event, fault_text

NO_RETURN = ("exit", "exit_group")
#: Argument names that hold user addresses (printed in hex, 0 as NULL).
POINTER_ARGS = ("addr", "parent_tid", "child_tid", "tls")

STRSIZE = 32  # strace -s: how much of a string to show


# --- values, as strace prints them -------------------------------------------------------
def as_text(value: str | bytes) -> str:
    """Bytes as the JSON Lines sink writes them, so a loaded trace prints the same."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\v": "\\v", "\f": "\\f", '"': '\\"', "\\": "\\\\"}


def cstring(value: str | bytes, limit: int = STRSIZE) -> str:
    """``"worker 0\\n"``: a C string literal, cut at ``limit`` characters with ``...`` after."""
    text = as_text(value)
    out = []
    shown = text[:limit]
    for i, ch in enumerate(shown):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0o400:  # strace: short octal unless a digit follows
            nxt = shown[i + 1] if i + 1 < len(shown) else ""
            out.append(f"\\{ord(ch):03o}" if nxt.isdigit() else f"\\{ord(ch):o}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"' + ("..." if len(text) > limit else "")


def value(v: Any) -> str:
    """One argument or result: strings quoted, None as NULL, dicts as ``{k=v}``."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str | bytes):
        return cstring(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={value(x)}" for k, x in v.items()) + "}"
    return str(v)


def pointer(v: Any) -> str:
    if v == 0 or v is None:
        return "NULL"
    return hex(v) if isinstance(v, int) else value(v)


def _bits(v: Any, names: Iterable[tuple[int, str]], zero: str = "0") -> str:
    if not isinstance(v, int):
        return value(v)
    parts, rest = [], v
    for bit, name in names:
        if bit and rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or zero


def clone_flags(flags: Any, exit_signal_in_low_byte: bool = True) -> str:
    """``CLONE_VM|CLONE_FS|SIGCHLD``; clone3 keeps the exit signal apart, so its low byte is flags."""
    if not isinstance(flags, int):
        return value(flags)
    if exit_signal_in_low_byte:
        return "|".join(abi.decode_clone_flags(flags)) or "0"
    low = flags & abi.CSIGNAL
    names = abi.decode_clone_flags(flags & ~abi.CSIGNAL)
    if low & abi.CLONE_NEWTIME:
        names.insert(0, "CLONE_NEWTIME")
        low &= ~abi.CLONE_NEWTIME
    if low:
        names.append(hex(low))
    return "|".join(names) or "0"


def signal_name(sig: Any) -> str:
    return abi.SIGNAL_NAMES.get(sig, str(sig)) if isinstance(sig, int) and sig else value(sig)


def _named(*names: str) -> list[tuple[int, str]]:
    """(value, name) pairs from ukernel.abi, for decoding bit masks by name."""
    return [(getattr(abi, name), name) for name in names]


_PROT = _named("PROT_READ", "PROT_WRITE", "PROT_EXEC")
_MAP = _named("MAP_SHARED", "MAP_PRIVATE", "MAP_FIXED", "MAP_ANONYMOUS")
_WAIT = _named("WNOHANG", "WUNTRACED", "WEXITED", "WCONTINUED", "WNOWAIT", "__WNOTHREAD", "__WALL", "__WCLONE")
_OPEN = _named(
    "O_WRONLY",
    "O_RDWR",
    "O_CREAT",
    "O_EXCL",
    "O_NOCTTY",
    "O_TRUNC",
    "O_APPEND",
    "O_NONBLOCK",
    "O_DIRECTORY",
    "O_NOFOLLOW",
    "O_CLOEXEC",
)


def wait_status(status: Any) -> str:
    """``[{WIFEXITED(s) && WEXITSTATUS(s) == 10}]``, as strace decodes a wait status."""
    if not isinstance(status, int):
        return value(status)
    if abi.WIFEXITED(status):
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {abi.WEXITSTATUS(status)}}}]"
    if abi.WIFSIGNALED(status):
        return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(abi.WTERMSIG(status))}}}]"
    if abi.WIFSTOPPED(status):
        return f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name(abi.WSTOPSIG(status))}}}]"
    if abi.WIFCONTINUED(status):
        return "[{WIFCONTINUED(s)}]"
    return f"[{status:#x}]"


# --- one syscall, as strace prints it ----------------------------------------------------
# A formatter splits the call into what is known at entry (head) and what only the
# exit tells (tail): ``wait4(-1, `` + ``[{WIFEXITED(s) && ...}], 0, NULL)``. A call that
# blocks while others run prints ``head <unfinished ...>``, later ``<... op resumed>tail``.
Formatter = Callable[[dict, Event | None], tuple[str, str]]


def succeeded(exit_: Event | None) -> bool:
    return exit_ is not None and "errno" not in exit_


def _fmt_generic(op: str) -> Formatter:
    def fmt(args: dict, exit_: Event | None) -> tuple[str, str]:
        parts = []
        for name, v in args.items():
            if name in POINTER_ARGS:
                parts.append(pointer(v))
            elif name == "sig":
                parts.append(signal_name(v))
            else:
                parts.append(value(v))
        return f"{op}({', '.join(parts)}", ")"

    return fmt


def _fmt_clone(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [f"flags={clone_flags(args.get('flags'))}"]
    if args.get("fn") is not None:
        parts.append(f"fn={args['fn']}")
        parts.append(f"arg={value(args.get('arg'))}")
    for name in ("parent_tid", "child_tid", "tls"):
        if args.get(name):
            parts.append(f"{name}={pointer(args[name])}")
    return "clone(" + ", ".join(parts), ")"


def _fmt_clone3(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [f"flags={clone_flags(args.get('flags'), exit_signal_in_low_byte=False)}"]
    parts.append(f"exit_signal={signal_name(args.get('exit_signal', 0)) if args.get('exit_signal') else 0}")
    if args.get("set_tid"):
        parts.append(f"set_tid={value(args['set_tid'])}")
    if args.get("pidfd"):
        parts.append("pidfd=true")
    if args.get("fn") is not None:
        parts.append(f"fn={args['fn']}")
        parts.append(f"arg={value(args.get('arg'))}")
    return "clone3({" + ", ".join(parts) + "}", ")"


def _fmt_execve(args: dict, exit_: Event | None) -> tuple[str, str]:
    argv = args.get("argv")
    argv_text = "[" + ", ".join(cstring(a) for a in argv) + "]" if isinstance(argv, list) else value(argv)
    envp = args.get("envp") or {}
    return f"execve({cstring(args.get('path', ''))}, {argv_text}, /* {len(envp)} vars */", ")"


def _fmt_wait4(args: dict, exit_: Event | None) -> tuple[str, str]:
    status = "NULL"
    result = exit_.get("result") if succeeded(exit_) else None
    if isinstance(result, list) and len(result) >= 2 and result[0]:
        status = wait_status(result[1])
    return f"wait4({value(args.get('pid'))}, ", f"{status}, {_bits(args.get('options'), _WAIT)}, NULL)"


def _fmt_write(args: dict, exit_: Event | None) -> tuple[str, str]:
    data = args.get("data", b"")
    size = len(data) if isinstance(data, bytes) else len(as_text(data).encode("utf-8", "surrogateescape"))
    return f"write({value(args.get('fd'))}, {cstring(data)}, {size}", ")"


def _fmt_read(args: dict, exit_: Event | None) -> tuple[str, str]:
    data = exit_.get("result") if succeeded(exit_) else None
    buf = cstring(data) if isinstance(data, str | bytes) else "NULL"
    return f"read({value(args.get('fd'))}, ", f"{buf}, {value(args.get('n'))})"


def _fmt_mmap(args: dict, exit_: Event | None) -> tuple[str, str]:
    parts = [
        pointer(args.get("addr")),
        value(args.get("length")),
        _bits(args.get("prot"), _PROT, "PROT_NONE"),
        _bits(args.get("flags"), _MAP),
        value(args.get("fd")),
        value(args.get("offset")),
    ]
    return "mmap(" + ", ".join(parts), ")"


def _fmt_open(args: dict, exit_: Event | None) -> tuple[str, str]:
    flags = args.get("flags", 0)
    text = _bits(flags, _OPEN, "O_RDONLY")
    if isinstance(flags, int) and not flags & abi.O_ACCMODE and flags:
        text = "O_RDONLY|" + text
    parts = [cstring(args.get("path", "")), text]
    if isinstance(flags, int) and flags & abi.O_CREAT:
        parts.append(f"{args.get('mode', 0):#o}" if isinstance(args.get("mode"), int) else value(args.get("mode")))
    return "open(" + ", ".join(parts), ")"


def _fmt_pipe2(args: dict, exit_: Event | None) -> tuple[str, str]:
    """The fds are written into the caller's array: strace prints them there, ``= 0``."""
    fds = exit_.get("result") if succeeded(exit_) else None
    array = "[" + ", ".join(value(fd) for fd in fds) + "]" if isinstance(fds, list) else "NULL"
    return "pipe2(", f"{array}, {_bits(args.get('flags'), _OPEN)})"


_SA = _named("SA_NOCLDSTOP", "SA_NOCLDWAIT", "SA_SIGINFO", "SA_RESTART", "SA_NODEFER", "SA_RESETHAND")


def sigaction_struct(handler: Any, flags: Any) -> str:
    """``{sa_handler=on_usr1, sa_mask=[], sa_flags=SA_RESTART}`` (ukernel's sigaction takes no mask)."""
    return f"{{sa_handler={handler}, sa_mask=[], sa_flags={_bits(flags, _SA)}}}"


def _fmt_sigaction(args: dict, exit_: Event | None) -> tuple[str, str]:
    """The handler by the name the trace gives it (``handler``: a Python function's, SIG_DFL,
    SIG_IGN); the old action, which ukernel always returns, from the exit's ``old_handler``."""
    act = (
        "NULL"
        if args.get("handler") is None
        else sigaction_struct(args.get("handler_name") or value(args["handler"]), args.get("flags", 0))
    )
    old = "NULL"
    result = exit_.get("result") if succeeded(exit_) else None
    if isinstance(result, list) and len(result) == 2:
        named = exit_.get("old_handler") or result[0]
        old = sigaction_struct(named, result[1])
    return f"sigaction({signal_name(args.get('sig'))}, {act}, ", f"{old})"


FORMATTERS: dict[str, Formatter] = {
    "sigaction": _fmt_sigaction,
    "clone": _fmt_clone,
    "clone3": _fmt_clone3,
    "execve": _fmt_execve,
    "wait4": _fmt_wait4,
    "write": _fmt_write,
    "read": _fmt_read,
    "mmap": _fmt_mmap,
    "open": _fmt_open,
    "pipe2": _fmt_pipe2,
}


def call_parts(enter: Event, exit_: Event | None) -> tuple[str, str]:
    """A call's text by its syscall's formatter; a call refused for its arguments (of any
    type the program gave) falls back to the generic one, which prints any value."""
    args = enter.get("args") or {}
    if not isinstance(args, dict):
        args = {"args": args}
    elif "handler" in enter:  # sigaction: the handler's name, beside libc's token for it
        args = {**args, "handler_name": enter["handler"]}
    generic = _fmt_generic(enter["op"])
    try:
        return FORMATTERS.get(enter["op"], generic)(args, exit_)
    except (TypeError, ValueError, AttributeError, KeyError):
        return generic(args, exit_)


#: The kernel's restart codes, as strace prints a call that returns one: ``= ? ERESTARTNOHAND (...)``
#: (the program never sees them: the call restarts, or returns EINTR, after the signal).
RESTART_TEXT = {
    "ERESTARTSYS": "To be restarted if SA_RESTART is set",
    "ERESTARTNOINTR": "To be restarted",
    "ERESTARTNOHAND": "To be restarted if no handler",
    "ERESTART_RESTARTBLOCK": "Interrupted by signal",
}


def errno_text(event: Event) -> str:
    """``-1 EINVAL (Invalid argument)``; a restart code ``? ERESTARTSYS (To be restarted if SA_RESTART is set)``."""
    name = event.get("errno") or "?"
    if name in RESTART_TEXT:
        return f"? {name} ({RESTART_TEXT[name]})"
    number = getattr(abi, name, None) if name.startswith("E") else None
    if not isinstance(number, int):
        number = getattr(_errno, name, None)
    if isinstance(number, int) and number < 512:
        text = abi.strerror(number)
    else:  # kernel-internal codes (ERESTARTNOINTR): what the kernel said
        text = (event.get("message") or name).split(":")[0]
    return f"-1 {name} ({text})"


def result_text(op: str, exit_: Event | None) -> str:
    """What follows `` = `` in an strace line."""
    if exit_ is None:
        return "?"
    if "errno" in exit_:
        return errno_text(exit_)
    result = exit_.get("result")
    if result is None:
        return "0"
    if isinstance(result, bool):
        return str(int(result))
    if op == "wait4" and isinstance(result, list) and result:
        return value(result[0])
    if op in ("pipe2", "sigaction"):  # the fds, the old action: in the arguments (call_parts)
        return "0"
    if op == "read" and isinstance(result, str | bytes):
        return str(len(result) if isinstance(result, bytes) else len(result.encode("utf-8", "surrogateescape")))
    if op in ("mmap", "brk") and isinstance(result, int) and result > 0:
        return hex(result)
    return value(result)


def call_line(enter: Event, exit_: Event | None) -> str:
    """``clone(flags=CLONE_VM|..., fn=worker) = 8``, or ``exit_group(4) = ?``."""
    head, tail = call_parts(enter, exit_)
    if exit_ is None and enter["op"] not in NO_RETURN:
        return f"{head} <unfinished ...>{tail} = ?"
    return f"{head}{tail} = {result_text(enter['op'], exit_)}"


_SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -6: "SI_TKILL"}
_CLD_CODES = dict(
    enumerate(("CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED"), 1)
)


def siginfo_text(info: dict) -> str:
    """``{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=3, si_uid=0, si_status=0, si_utime=0,
    si_stime=0}``, the fields strace prints for the signal and its code."""
    sig, code = info.get("signo"), info.get("code", 0)
    child = sig == abi.SIGCHLD and code in _CLD_CODES
    parts = [f"si_signo={signal_name(sig)}", f"si_code={(_CLD_CODES if child else _SI_CODES).get(code, code)}"]
    if code == 0x80 and not child:  # SI_KERNEL: no sender
        return "{" + ", ".join(parts) + "}"
    parts += [f"si_pid={value(info.get('pid', 0))}", f"si_uid={value(info.get('uid', 0))}"]
    if child:
        status = info.get("status", 0)
        parts.append(f"si_status={status if code == 1 else signal_name(status)}")
        parts += ["si_utime=0", "si_stime=0"]  # ukernel keeps no per-child CPU time in siginfo
    return "{" + ", ".join(parts) + "}"


def signal_line(event: Event) -> str:
    """``--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=2, si_uid=0} ---``: a ``signal`` event."""
    info = event.get("info") or {}
    return f"--- {signal_name(info.get('signo'))} {siginfo_text(info)} ---"


def segv_line(fault: Event) -> str:
    """``--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x1000} ---``: a ``fault``
    the mm could not fix, which the kernel turns into SIGSEGV at once (force_sig_fault)."""
    addr = fault.get("addr")
    where = pointer(addr) if isinstance(addr, int) else value(addr)
    return f"--- SIGSEGV {{si_signo=SIGSEGV, si_code={fault.get('code')}, si_addr={where}}} ---"


def mask_text(mask: Any) -> str:
    """``[USR1 CHLD]``, as strace prints a signal mask."""
    if not isinstance(mask, list):
        return "?"
    return "[" + " ".join(signal_name(s).removeprefix("SIG") for s in mask) + "]"


def fault_line(event: Event) -> str:
    """``--- page fault: write 0x7f0000001000 in [heap] cow-copy frame 12 -> 31 ---``, as
    strace writes a signal (``--- SIGSEGV {...} ---``)."""
    return f"--- page fault: {fault_text(event)} ---"


def jsonable(v: Any) -> Any:
    """A value JSON holds as it is: bytes as the JSON Lines sink writes them, tuples as lists."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        return as_text(v)
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return repr(v)
