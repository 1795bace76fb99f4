"""Step rows and the one walker: copy_process, do_exit and unshare are tables of Steps.

A row names the service that does one step and the op it sends, which may
depend on one flag (set: share; clear: copy), and the undo op that gives the
step back (kernel/fork.c's bad_fork_cleanup_* labels). ``StepWalk`` walks a
table for one task: row by row, or the rows that need nothing from each
other sent at once; when a row fails, the undo ops of the rows already done
are sent newest first and the failure goes on up. Each table's walker
subclass says what its rows carry (args), keep (store) and give back (handle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from ..ipc.router import Sent

if TYPE_CHECKING:
    from .core import Kernel


@dataclass(frozen=True)
class Step:
    """One row: who does the step, and which op the flag picks."""

    name: str
    service: str  # "kernel": a step the kernel does itself, by the walker's method named op_clear
    flag: int = 0  # 0: the same op every time
    op_set: str | None = None  # the op when a flag bit is set (share)
    op_clear: str | None = None  # the op when it is clear (copy); None: nothing to send
    undo: str | None = None  # what gives the step back when a later one fails
    attr: str | None = None  # the TaskStruct field that holds the handle
    param: str | None = None  # the handle's name in the message

    def op_for(self, flags: int) -> str | None:
        return self.op_set if self.flag and flags & self.flag and self.op_set else self.op_clear


def step_groups(table: tuple[Step, ...], at_once: frozenset[str]) -> tuple[tuple[Step, ...], ...]:
    """The table as the walk takes it: a row alone, or a run of rows named in ``at_once`` together.
    Worked out once per table and ``at_once`` (every fork and exit walks one)."""
    key = (id(table), at_once)
    known = _GROUPS.get(key)
    if known is not None and known[0] is table:  # (the table itself, not one that reused its id)
        return known[1]
    groups: list[tuple[Step, ...]] = []
    for step in table:
        if step.name in at_once and groups and groups[-1][0].name in at_once:
            groups[-1] += (step,)
        else:
            groups.append((step,))
    _GROUPS[key] = (table, tuple(groups))
    return _GROUPS[key][1]


_GROUPS: dict[tuple[int, frozenset[str]], tuple[tuple[Step, ...], tuple[tuple[Step, ...], ...]]] = {}


def flag_note(step: Step, flags: int) -> str | None:
    """What decided the op, for the trace: 'CLONE_FILES' or 'no CLONE_FILES'."""
    if not step.flag:
        return None
    key = (step.flag, flags & step.flag)
    note = _NOTES.get(key)
    if note is None:
        _NOTES[key] = note = _flag_note(step.flag, flags)
    return note


def _flag_note(flag: int, flags: int) -> str:
    if flag == abi.CLONE_NEW_MASK:
        names = [abi.CLONE_FLAG_NAMES[b] for b in abi.CLONE_FLAG_NAMES if b & flags & abi.CLONE_NEW_MASK]
        return "|".join(names) if names else "no CLONE_NEW*"
    name = abi.CLONE_FLAG_NAMES[flag]
    return name if flags & flag else f"no {name}"


_NOTES: dict[tuple[int, int], str] = {}  # (a row's flag, the bits of it set) -> its note: a few dozen


class StepWalk(ABC):
    """One walk of ``table`` for one task; subclasses fill in what the rows carry."""

    table: tuple[Step, ...] = ()

    def __init__(self, kernel: Kernel, flags: int = 0, at_once: frozenset[str] = frozenset()):
        self.k, self.flags, self.at_once = kernel, flags, at_once
        self.done: list[Step] = []  # in table order: the unwind is its reverse

    async def run(self) -> None:
        """Walk the rows; on a failure, unwind what was done and let the failure go on.

        The unwind is not shielded: a walk is cancelled only when the run ends (a crash,
        Ctrl-C, a timeout), and then the services go too, so an undo would wait for a
        reply that never comes; nobody counts the handles of a run that is over."""
        try:
            for group in step_groups(self.table, self.at_once):
                if len(group) == 1:
                    await self.do_step(group[0])
                else:
                    await self.do_steps_at_once(group)
        except trio.Cancelled:
            raise
        except BaseException:
            await self.unwind()
            raise

    async def do_step(self, step: Step) -> None:
        """One row: the kernel's own step, or the service's message and its reply kept."""
        if step.service == "kernel":
            self.raise_injected(step)
            getattr(self, step.op_clear)()
            self.done.append(step)
            return
        request = self.request(step)
        if request is not None:  # (one call, not send and collect: the same messages, a coroutine less)
            reply = await self.k.router.call("kernel", step.service, *request)
            self.done.append(step)  # (finish_step, inline: a call less per row)
            self.store(step, reply)

    async def send_step(self, step: Step) -> Sent | None:
        """Send a service's step without waiting for its reply; None if it has nothing to do."""
        request = self.request(step)
        return None if request is None else await self.k.router.send("kernel", step.service, *request)

    def request(self, step: Step) -> tuple[str, dict, dict, int | None] | None:
        """A service's step as (op, args, meta, inject), or None if it has nothing to send."""
        if self.skip(step):
            return None
        op = step.op_for(self.flags)
        if op is None:  # nothing to send (e.g. no CLONE_SYSVSEM: the child's undo list is empty)
            self.raise_injected(step)
            return None
        return op, self.step_args(step, op), self.meta(step.name, self.note(step)), self.injected(step)

    def finish_step(self, step: Step, reply: Any) -> None:
        self.done.append(step)
        self.store(step, reply)

    async def do_steps_at_once(self, group: tuple[Step, ...]) -> None:
        """Independent rows sent together, then their replies taken in table order.

        No task per service: every request goes out at once, and each service
        still gets its own rows in table order (its inbox or connection is first
        in, first out). Every row sent is collected even after a failure (a reply
        in flight is a handle given out: dropping it would leak it); ``done`` stays
        in table order, so the unwind is the reverse table order, and the first
        failure in table order is the one raised. A row that ``waits_for_others``
        goes alone after them, as in the serial walk.
        """
        later = [step for step in group if self.waits_for_others(step)]
        sends = [(step, partial(self.send_step, step)) for step in group if step not in later]
        await self.k.router.call_at_once(sends, self.finish_step)
        for step in later:
            await self.do_step(step)

    async def unwind(self) -> None:
        """Give back what was done, newest first."""
        for step in reversed(self.done):
            if step.service != "kernel" and step.undo is not None:
                args = {step.param: self.handle(step)}
                await self.k.call(step.service, step.undo, args, self.meta(f"undo {step.name}"))
        self.done.clear()

    def raise_injected(self, step: Step) -> None:
        inject = self.injected(step)
        if inject:
            raise abi.kernel_error(inject, f"fault injected at {step.name}")

    # --- what each table says -------------------------------------------------------------
    @abstractmethod
    def meta(self, label: str, flag: str | None = None) -> dict:
        """The message's meta: who acts, and ``step`` (the row's name, or 'undo NAME')."""

    @abstractmethod
    def step_args(self, step: Step, op: str) -> dict:
        """A row's message: the handles and values the op takes."""

    @abstractmethod
    def store(self, step: Step, reply: Any) -> None:
        """Keep what a row's reply gave (a new handle), or note the handle given back."""

    def handle(self, step: Step) -> Any:
        """The handle a row's undo gives back."""
        return None

    def skip(self, step: Step) -> bool:
        """True when a row has nothing to do for this task (a kernel thread has no mm)."""
        return False

    def injected(self, step: Step) -> int | None:
        """The errno fault injection asks this row to fail with, if any."""
        return None

    def note(self, step: Step) -> str | None:
        """What decided the row's op, for the trace (``flag_note``); None: nothing said."""
        return None

    def waits_for_others(self, step: Step) -> bool:
        """True when a row sent at once must still wait for the others' replies."""
        return False
