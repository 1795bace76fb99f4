"""signals: sighand_struct (the handler table) and signal_struct (the thread group's).

copy_sighand/share_sighand and copy_signal/share_signal are fork's two
signal steps: CLONE_SIGHAND shares the handler table (threads see each
other's sigaction), CLONE_THREAD shares the signal_struct (one shared pending
set, one nr_threads count for the whole group). A handler installed by a
program is a token here (an int); the runtime keeps the Python callable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ukernel import abi
from ukernel.ipc.service import Call, Service, get, op, touches


@dataclass(slots=True)
class SighandStruct:
    """struct sighand_struct: one action per signal, shared under CLONE_SIGHAND."""

    actions: dict[int, list] = field(default_factory=dict)  # sig -> [handler, flags]
    count: int = 1


@dataclass(slots=True)
class SignalStruct:
    """struct signal_struct: what a thread group shares (CLONE_THREAD)."""

    nr_threads: int = 1
    shared_pending: list[int] = field(default_factory=list)
    shared_info: dict[int, dict] = field(default_factory=dict)  # sig -> the siginfo queued with it


def sig_ignored(handler: object, sig: int, blocked: bool) -> bool:
    """kernel/signal.c sig_ignored: SIG_IGN, or a default action of ignore (SIGCHLD, SIGURG,
    SIGWINCH), dropped as it is sent, unless blocked (the handler may change before it is
    unblocked); SIGKILL, SIGSTOP and SIGCONT are never dropped here."""
    ignored = handler == abi.SIG_IGN or (handler == abi.SIG_DFL and sig in abi.SIG_KERNEL_IGNORE)
    return ignored and not blocked and sig not in (abi.SIGKILL, abi.SIGSTOP, abi.SIGCONT)


def send_signal_touches(service: SignalsService, args: dict) -> list:
    """explore's reduction (``@touches``): the action is read; a signal that is queued writes
    the group's pending set (and the kernel then sets TIF_SIGPENDING, which every step of
    the target reads); one that is dropped changes nothing, and only reads the
    signal_struct (an exit's SIGCHLD to a parent that ignores it commutes with the parent's
    steps). A blocked signal is queued: a sigprocmask writes the signal_struct (its step
    dequeues), so the order of a mask change and a send is kept."""
    handler, _ = service.sighands[args["sighand"]].actions.get(args["sig"], [abi.SIG_DFL, 0])
    service.signals[args["signal"]]  # a bad handle: the op fails, the whole service stands
    unkillable = args.get("unkillable", False) and handler == abi.SIG_DFL
    dropped = unkillable or sig_ignored(handler, args["sig"], args.get("blocked", False))
    return [("sighand", args["sighand"], "r"), ("signal", args["signal"], "r" if dropped else "w")]


class SignalsService(Service):
    name = "signals"
    calls = frozenset()
    takes = {}  # Config field -> keyword of __init__ (services.build)

    def __init__(self) -> None:
        super().__init__()
        self.sighands: dict[int, SighandStruct] = {}
        self.signals: dict[int, SignalStruct] = {}

    @op
    async def init_sighand(self, req: Call) -> dict:
        return {"sighand": self.new_handle(self.sighands, SighandStruct())}

    @op
    async def init_signal(self, req: Call) -> dict:
        return {"signal": self.new_handle(self.signals, SignalStruct())}

    # --- copy_sighand ---------------------------------------------------------
    @op
    async def share_sighand(self, req: Call, sighand: int) -> dict:
        """CLONE_SIGHAND: refcount_inc(&current->sighand->count)."""
        get(self.sighands, sighand, "sighand_struct").count += 1
        return {"sighand": sighand}

    @op
    async def copy_sighand(self, req: Call, sighand: int, clear: bool = False) -> dict:
        """A new table with the parent's actions (memcpy); CLONE_CLEAR_SIGHAND resets handlers."""
        old = get(self.sighands, sighand, "sighand_struct")
        actions = {sig: list(act) for sig, act in old.actions.items()}
        if clear:  # flush_signal_handlers: caught handlers back to SIG_DFL, every sa_flags to 0
            actions = {sig: [abi.SIG_IGN, 0] for sig, act in actions.items() if act[0] == abi.SIG_IGN}
        return {"sighand": self.new_handle(self.sighands, SighandStruct(actions))}

    @op
    async def put_sighand(self, req: Call, sighand: int) -> dict:
        sh = get(self.sighands, sighand, "sighand_struct")
        sh.count -= 1
        if sh.count == 0:
            del self.sighands[sighand]
        return {"count": sh.count}

    # --- copy_signal ----------------------------------------------------------
    @op
    async def share_signal(self, req: Call, signal: int) -> dict:
        """CLONE_THREAD: the new thread joins the group (nr_threads++)."""
        get(self.signals, signal, "signal_struct").nr_threads += 1
        return {"signal": signal}

    @op
    async def copy_signal(self, req: Call, signal: int) -> dict:
        """A new thread group: a zeroed signal_struct (no pending, no timers)."""
        get(self.signals, signal, "signal_struct")
        return {"signal": self.new_handle(self.signals, SignalStruct())}

    @op
    async def put_signal(self, req: Call, signal: int) -> dict:
        sig = get(self.signals, signal, "signal_struct")
        sig.nr_threads -= 1
        if sig.nr_threads == 0:
            del self.signals[signal]
        return {"nr_threads": sig.nr_threads}

    # --- actions --------------------------------------------------------------
    @op
    async def sigaction(
        self, req: Call, sighand: int, sig: int, handler: str | int | None = None, flags: int = 0
    ) -> list:
        """Install (handler not None) and return the old [handler, flags]."""
        sh = get(self.sighands, sighand, "sighand_struct")
        if not 1 <= sig <= abi._NSIG:
            raise abi.kernel_error(abi.EINVAL, f"no signal {sig}")
        old = sh.actions.get(sig, [abi.SIG_DFL, 0])
        if handler is not None:
            if sig in (abi.SIGKILL, abi.SIGSTOP):
                raise abi.kernel_error(abi.EINVAL, f"{abi.SIGNAL_NAMES[sig]} cannot be caught or ignored")
            if handler == abi.SIG_DFL and not flags:
                sh.actions.pop(sig, None)
            else:
                sh.actions[sig] = [handler, flags]
        return old

    # --- sending and dequeuing ---------------------------------------------------
    @op
    @touches(send_signal_touches)
    async def send_signal(
        self,
        req: Call,
        sighand: int,
        signal: int,
        sig: int,
        unkillable: bool = False,
        shared: bool = True,
        info: dict | None = None,
        blocked: bool = False,
    ) -> dict:
        """Queue sig, with its siginfo, on the group's shared pending set unless it would be
        ignored (sig_ignored). A blocked signal is never ignored: the handler may change
        before it is unblocked, and sigwaitinfo may take it (sig_ignored's blocked check).

        ``unkillable``: the target is init of a namespace the sender is inside (the kernel
        works that out); it gets only the signals it has handlers for, SIGKILL and SIGSTOP
        not excepted (sig_task_ignored's SIGNAL_UNKILLABLE check, with force false).
        A thread-directed signal (``shared=False``) is queued by the kernel on the thread.
        """
        handler, flags = get(self.sighands, sighand, "sighand_struct").actions.get(sig, [abi.SIG_DFL, 0])
        sigs = get(self.signals, signal, "signal_struct")
        if (unkillable and handler == abi.SIG_DFL) or sig_ignored(handler, sig, blocked):
            return {"queued": False, "handler": handler, "flags": flags}
        if shared and sig not in sigs.shared_pending:  # standard signals do not queue twice
            sigs.shared_pending.append(sig)
            sigs.shared_info[sig] = info or {}
        return {"queued": True, "handler": handler, "flags": flags}

    @op
    async def dequeue_signal(
        self, req: Call, sighand: int, signal: int, pending: list[int], blocked: list[int], deliver: bool = True
    ) -> dict:
        """The next deliverable signal: the thread's own first, then the group's; with its
        action and, from the group's set, its siginfo. ``deliver`` false is sigwaitinfo's
        dequeue: the signal is taken, no action is (SA_RESETHAND waits for a delivery)."""
        sh = get(self.sighands, sighand, "sighand_struct")
        sigs = get(self.signals, signal, "signal_struct")
        own = sorted(s for s in pending if s not in blocked)
        shared = sorted(s for s in sigs.shared_pending if s not in blocked)
        info: dict = {}
        if own:
            sig, from_shared = own[0], False
        elif shared:
            sig, from_shared = shared[0], True
            sigs.shared_pending.remove(sig)
            info = sigs.shared_info.pop(sig, {})
        else:
            return {"sig": 0, "shared": False, "handler": abi.SIG_DFL, "flags": 0, "info": {}}
        handler, flags = sh.actions.get(sig, [abi.SIG_DFL, 0])
        if deliver and flags & abi.SA_RESETHAND and handler not in (abi.SIG_DFL, abi.SIG_IGN):
            sh.actions.pop(sig, None)
        return {"sig": sig, "shared": from_shared, "handler": handler, "flags": flags, "info": info}

    @op
    async def collect_sigign_sigcatch(self, req: Call, sighand: int) -> dict:
        """/proc/PID/status's SigIgn and SigCgt: the signals ignored and caught."""
        actions = get(self.sighands, sighand, "sighand_struct").actions
        ignored = sorted(s for s, (h, _) in actions.items() if h == abi.SIG_IGN)
        caught = sorted(s for s, (h, _) in actions.items() if h not in (abi.SIG_IGN, abi.SIG_DFL))
        return {"ignored": ignored, "caught": caught}

    @op
    async def shared_pending(self, req: Call, signal: int) -> list:
        return sorted(get(self.signals, signal, "signal_struct").shared_pending)

    @op
    async def flush_signal_handlers(self, req: Call, sighand: int) -> None:
        """execve: caught handlers back to SIG_DFL; ignored signals stay ignored."""
        sh = get(self.sighands, sighand, "sighand_struct")
        sh.actions = {sig: [abi.SIG_IGN, 0] for sig, act in sh.actions.items() if act[0] == abi.SIG_IGN}

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "sighands": len(self.sighands),
            "sighand_refs": sum(s.count for s in self.sighands.values()),
            "signals": len(self.signals),
            "threads": sum(s.nr_threads for s in self.signals.values()),
        }
