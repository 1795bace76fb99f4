"""A forgotten ``await``: ``sys.write(1, b"x")`` without it makes a coroutine and no syscall.

Python only warns when such a coroutine is collected, pointing into ukernel (and
collection is late or never: gc is disabled during runs). So every ``sys``
method returns a ``SyscallCall`` that remembers the program's file and line and
is listed on its task until awaited; the process runtime looks at the list at
each syscall entry (process.py) and says where the call was made. A fork child
replaying a parent that held no call across the fork lists nothing (process.py's
``called`` says why), and its call of a method replay.py's ``plain`` marks is the
replay's answer itself (``replay.answering``), not the method's coroutine.
"""

from __future__ import annotations

import functools
import inspect
import sys as _sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from .replay import answering, replaying


class SyscallCall:
    """A ``sys`` method's call, not yet awaited: where it was made, and its coroutine."""

    __slots__ = ("name", "coro", "filename", "lineno", "pending")

    def __init__(self, name: str, coro: Coroutine, filename: str, lineno: int, pending: list[SyscallCall]):
        self.name, self.coro, self.filename, self.lineno, self.pending = name, coro, filename, lineno, pending
        pending.append(self)

    def __await__(self) -> Generator[Any, None, Any]:
        self._unlist()
        return self.coro.__await__()

    def drop(self) -> None:
        """Never to be awaited: off the list, and closed (so Python does not warn about it too)."""
        self._unlist()
        self.coro.close()

    def _unlist(self) -> None:
        for i, call in enumerate(self.pending):
            if call is self:
                del self.pending[i]
                return

    def advice(self, where: str) -> str:
        """The line the student reads: where, what, and what to write instead."""
        return f'{where}:{self.lineno}: sys.{self.name}(...) was never awaited: write "await sys.{self.name}(...)"'


def _refcounts(calls: list[SyscallCall]) -> list[int]:
    return [_sys.getrefcount(call) for call in calls]


#: What a call's reference count is in _refcounts when only its task's list holds it.
_ONLY_LISTED = _refcounts([object()])[0]


def dropped(calls: list[SyscallCall]) -> list[SyscallCall]:
    """The calls the program let go of without awaiting (only the task's list holds them):
    one kept in a variable to be awaited later is not forgotten yet."""
    return [call for call, refs in zip(calls, _refcounts(calls), strict=True) if refs <= _ONLY_LISTED]


def tracked(method: Callable[..., Coroutine]) -> Callable[..., Any]:
    """A ``Sys`` method that lists its call on the calling task until it is awaited."""
    name = method.__name__
    plain = getattr(method, "plain", None)
    if plain is not None:
        return _tracked_plain(method, answering(method, *plain))

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if replaying.get() is not None:  # a replay whose journal proves each call awaited
            return method(self, *args, **kwargs)
        return self._kernel.runtime.called(name, method(self, *args, **kwargs), _sys._getframe(1))

    return call


def _tracked_plain(method: Callable[..., Coroutine], answer: Callable[..., Coroutine]) -> Callable[..., Any]:
    """``tracked`` for a method replay.py's ``plain`` marks: a replay answers it by ``answer``."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        replay = replaying.get()
        if replay is not None:
            return answer(replay, self, args, kwargs)
        return self._kernel.runtime.called(name, method(self, *args, **kwargs), _sys._getframe(1))

    return call


def track_awaits(cls: type) -> type:
    """Every public async method of ``cls`` (the syscalls of ``Sys``) wrapped by ``tracked``."""
    for name, method in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(method):
            setattr(cls, name, tracked(method))
    return cls
