"""A fork child's place in its parent's journal, and what it says when it loses it.

process.py's Runtime answers the child's syscalls from ``Replay.pending`` and runs
the parent's signal handlers where the journal says they ran; this module keeps
the bookkeeping (which syscall, which handler) so a divergence names both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import abi
from .binfmt import HANDLE_SIGNAL, RT_SIGRETURN, ReplayDiverged


@dataclass
class HandlerFrame:
    """A handler being replayed: the signal, and the parent's syscall it ran on the way out of."""

    sig: int
    syscall: str
    call: int  # that syscall's number in call order


@dataclass
class Replay:
    """The journal entries still to answer (the next one last) and where the child is."""

    pending: list[tuple[int, str, Any, Any]]
    calls: int = 0  # syscalls the child has made, in call order (as strace numbers them)
    frames: list[HandlerFrame] = field(default_factory=list)  # handlers being replayed, innermost last

    def diverged(self, what: str, after: bool = False) -> ReplayDiverged:
        """The one line a divergence is: which syscall, inside which handler, what differed."""
        where = f"{'after' if after else 'at'} syscall {self.calls}"
        if self.frames:
            frame = self.frames[-1]
            where += f", inside the {signame(frame.sig)} handler the parent ran on the way out of {frame.syscall} #{frame.call}"
        return ReplayDiverged(f"{where}: {what}")


def signame(sig: int) -> str:
    return abi.SIGNAL_NAMES.get(sig, f"signal {sig}")


def outer_syscall(pending: list) -> str | None:
    """The syscall a handler just entered ran on the way out of: its entry follows the
    handler's block (and any other handler run on the same way out). None when the
    handler raised (then the syscall raised that exception and has no entry of its own)."""
    depth = 1
    for _tid, name, ok, _value in reversed(pending):  # the next entry first
        if name == HANDLE_SIGNAL:
            depth += 1
        elif name == RT_SIGRETURN:
            depth -= 1
            if depth == 0 and not ok:
                return None
        elif depth == 0:
            return name
    return None


def fork_refusal(journal: list, tid: int) -> str | None:
    """Why fork cannot replay this journal, or None. A fork inside a handler would need the
    interrupted syscall's result, which is journaled only after the handler returns."""
    depth = 0
    for who, name, _ok, _value in journal:
        if who != tid:
            return "fork in a multi-threaded program: replaying the other threads is not built yet; use clone(fn)"
        if name == HANDLE_SIGNAL:
            depth += 1
        elif name == RT_SIGRETURN:
            depth -= 1
    if depth:
        return "fork inside a signal handler: the child's replay would return into a syscall not journaled yet; use clone(fn)"
    return None
