"""A fork child's place in its parent's journal, and what it says when it loses it.

process.py's Runtime answers the child's syscalls from a ``Replay`` (a cursor over the
segments of the journal, journal.py: nothing is copied) and runs the parent's signal
handlers where the journal says they ran; this module keeps the bookkeeping (which
syscall, which handler) so a divergence names both. Most entries are a syscall returning
normally: libc answers those itself (``replaying``, ``Replay.answer``), with no kernel
entry, since a replay is mostly that and a fork in a loop replays ~i entries per fork.
A ``sys`` method that is one syscall and a conversion of its result (``plain``) is
answered without even its own coroutine (``answering``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import abi
from .binfmt import ReplayDiverged
from .journal import HANDLE_SIGNAL, RT_SIGRETURN, Entry

if TYPE_CHECKING:
    from ..kernel.watchdog import Watchdog


@dataclass
class HandlerFrame:
    """A handler being replayed: the signal, and the parent's syscall it ran on the way out of."""

    sig: int
    syscall: str
    call: int  # that syscall's number in call order


#: What Replay.answer returns when the next entry is not a plain result.
MISS = object()

#: The replay of the task running here whose calls need no bookkeeping (its parent held no
#: call across the fork, awaited.py), else None: trio runs each task in a context of its
#: own, so libc finds it in one look, as the kernel finds ``current``.
replaying: ContextVar[Replay | None] = ContextVar("replaying", default=None)

#: What a closed cursor's next entry is: no syscall's (a stale cursor answers nothing).
_CLOSED: list[Entry] = [(0, "", None, None)]


class Replay:
    """Where the child is in the journal it replays: the next entry, and what is left."""

    __slots__ = ("entries", "pos", "end", "rest", "calls", "frames", "watch_calls", "watchdog", "over")

    def __init__(
        self,
        segments: list[tuple[list[Entry], int]],
        watchdog: Watchdog,
        over: Callable[[], None],
        watch_calls: bool = False,
    ):
        self.rest = [segment for segment in reversed(segments) if segment[1]]  # the next one last
        self.entries: list[Entry] = []
        self.pos = self.end = 0
        self.calls = 0  # syscalls the child has made, in call order (as strace numbers them)
        self.frames: list[HandlerFrame] = []  # handlers being replayed, innermost last
        self.watch_calls = watch_calls  # the parent held a call across the fork: list the child's too
        self.watchdog = watchdog  # the CPU limit's: each answer ends a stretch of user code
        self.over = over  # called once the last entry is taken: the child is live from there
        self._next_segment()

    def _next_segment(self) -> None:
        if self.rest:
            self.entries, self.end = self.rest.pop()
            self.pos = 0

    def peek(self) -> Entry:
        return self.entries[self.pos]

    def take(self) -> Entry:
        """The next entry; after the last one the replay is over (closed, ``over`` called)."""
        entry = self.entries[self.pos]
        self.pos += 1
        if self.pos == self.end:
            self.segment_done()
        return entry

    def answer(self, syscall: str) -> Any:
        """The next entry's result when it is ``syscall`` returning normally (most entries:
        one call, counted as a syscall made), else MISS with nothing taken (a handler, an
        error, a divergence: the runtime's slow path says which). The watchdog's stretch
        moves on as at a kernel entry and exit, so only a child that spins between two
        answers is charged; the task never left user mode, so nothing else changes."""
        pos = self.pos
        _tid, name, ok, value = self.entries[pos]
        if name != syscall or ok is not True:
            return MISS
        self.calls += 1
        self.watchdog.stretch += 1
        self.pos = pos = pos + 1
        if pos == self.end:
            self.segment_done()
        return value

    def segment_done(self) -> None:
        """The last entry of a segment was taken: the next segment, or the replay is over."""
        self._next_segment()
        if self.pos == self.end:
            self.close()
            self.over()

    def close(self) -> None:
        """Answer nothing more (the task's image is gone): a cursor still in ``replaying``
        sends every call to the runtime, which finds no replay and runs it live."""
        self.entries, self.pos, self.end, self.rest = _CLOSED, 0, 1, []

    def ahead(self) -> Iterator[Entry]:
        """The entries still to answer, the next one first."""
        entries = self.entries
        for i in range(self.pos, self.end):  # (by index: a slice would copy the segment)
            yield entries[i]
        for entries, count in reversed(self.rest):
            for i in range(count):
                yield entries[i]

    def diverged(self, what: str, after: bool = False) -> ReplayDiverged:
        """The one line a divergence is: which syscall, inside which handler, what differed."""
        where = f"{'after' if after else 'at'} syscall {self.calls}"
        if self.frames:
            frame = self.frames[-1]
            where += f", inside the {signame(frame.sig)} handler the parent ran on the way out of {frame.syscall} #{frame.call}"
        return ReplayDiverged(f"{where}: {what}")


def plain(syscall: str, convert: Callable[[Any], Any] | None = None) -> Callable[[Callable], Callable]:
    """Mark a ``sys`` method whose body is ``return convert(await self._call(syscall, ...))``
    (``convert`` None: the result as it is), so a replay answers it from that alone
    (awaited.py, ``answering``). tests/test_libc_plain.py holds each mark to its body."""

    def mark(method: Callable) -> Callable:
        method.plain = (syscall, convert)
        return method

    return mark


def nothing(_value: Any) -> None:
    """``plain``'s conversion for a method with no ``return``: None, whatever the kernel said."""


def answering(method: Callable[..., Coroutine], syscall: str, convert: Callable[[Any], Any] | None) -> Callable:
    """What a ``plain`` method's call is while its task replays: a coroutine that, when
    awaited (not when made: the journal is in the order calls were awaited), takes the
    next entry if it is ``syscall`` returning normally, else runs the method itself (its
    ``_call`` goes down the runtime's path, which says what else the entry is)."""
    as_is, drop = convert is None, convert is nothing  # (no call for the common conversions)

    async def answer(replay: Replay, sys: Any, args: tuple, kwargs: dict) -> Any:
        # Replay.answer written out (a call less per replayed entry: the hottest path of a fork loop)
        pos = replay.pos
        _tid, name, ok, value = replay.entries[pos]
        if name != syscall or ok is not True:
            return await method(sys, *args, **kwargs)
        replay.calls += 1
        replay.watchdog.stretch += 1
        replay.pos = pos = pos + 1
        if pos == replay.end:
            replay.segment_done()
        if as_is:
            return value
        return None if drop else convert(value)

    answer.__name__, answer.__qualname__ = method.__name__, method.__qualname__  # (its coroutine's name)
    return answer


def signame(sig: int) -> str:
    return abi.SIGNAL_NAMES.get(sig, f"signal {sig}")


def outer_syscall(ahead: Iterable[Entry]) -> str | None:
    """The syscall a handler just entered ran on the way out of: its entry follows the
    handler's block (and any other handler run on the same way out). None when the
    handler raised (then the syscall raised that exception and has no entry of its own)."""
    depth = 1
    for _tid, name, ok, _value in ahead:  # the next entry first
        if name == HANDLE_SIGNAL:
            depth += 1
        elif name == RT_SIGRETURN:
            depth -= 1
            if depth == 0 and not ok:
                return None
        elif depth == 0:
            return name
    return None
