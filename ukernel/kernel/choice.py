"""Choice points (issue 17): where a run depends on an order, a chooser may decide it.

With ``Config.schedule`` unset there is no chooser and sched's policy decides
everything, as before. With a choice list (``ukernel run --schedule 0,1,1``)
or a chooser object (``ukernel explore``), the kernel asks it, at every point
where more than one task could run next:

- ``entry``: a task is about to run a syscall; option 0 lets it, option i > 0
  preempts it *before* the call, and the i-th other runnable task runs
  (preemption at every kernel entry). A task put back this way runs that
  same syscall when it gets the CPU again, without a second choice there.
- ``schedule``: a task gives up its CPU (it blocks, yields, or dies); the
  option is which runnable task gets the CPU.
- ``turn`` (several CPUs): the CPUs take turns (``Turn``); a task leaving its
  CPU passes the turn to the chosen task waiting on another CPU. At ``entry``
  the other CPUs' waiting tasks, and the tasks queued behind them, are options too.
- ``cpu`` (several CPUs): which of the CPUs that tie in select_task_rq a woken
  or new task goes to (options are CPU numbers).
- ``futex``: which waiters a FUTEX_WAKE of fewer than all of them wakes.
- ``timer``: which of the timers that expired at one instant fires first.

Options are task pids, the current task first at ``entry``, then the tasks
queued on that CPU in sched's own order (asked with ``sched.runqueue``). With
a chooser, a used-up slice no longer preempts: the chooser is the only
preemption. Syscalls in ``LOCAL_SYSCALLS`` touch nothing another task can see,
so their entry is no choice point (running them now or later ends in the same
state): a reduction that costs nothing. Nor is init's (pid 1, the harness that
starts the program and reaps): it runs to its next sleep; it is still an option
when another task leaves the CPU.

A chooser is any object with ``choose(point: dict) -> int`` (``point``: kind,
pid, syscall, options, and with ``wants_state`` the point's ``state`` digest; with
``wants_detail(state)`` true, its ``detail`` too: kernel/statedump.py).
``Replay`` follows a list and records what was taken; the trace gets one
``choice`` event per point.
"""

from __future__ import annotations

import functools
import gc
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, GeneratorType
from typing import TYPE_CHECKING, Any

import trio

from ..ipc.canonical import canonical
from ..user.framestack import value_stack
from .wait import awake

if TYPE_CHECKING:
    from .core import Kernel
    from .task import TaskStruct

#: Syscalls that read only what never changes (the caller's own ids): no other task can observe
#: their order (getppid is not one: the parent may exit and the answer become 1).
#: sched_yield is here because its own schedule() is the choice point.
LOCAL_SYSCALLS = frozenset({"getpid", "gettid", "sched_yield"})


class Replay:
    """Follow a choice list; past its end take option 0 (let the current task go on).
    ``taken`` is every choice made, ``problem`` says why the list did not fit, if it did not."""

    def __init__(self, choices: list[int]):
        self.choices, self.taken, self.problem = list(choices), [], ""

    def choose(self, point: dict) -> int:
        n = len(self.taken)
        want = self.choices[n] if n < len(self.choices) else 0
        if not 0 <= want < len(point["options"]):
            if not self.problem:
                self.problem = (
                    f"schedule: choice {n + 1} is {want}, but only {len(point['options'])} tasks could run there"
                    f" (pids {', '.join(map(str, point['options']))}): the list is for another program or settings"
                )
            want = 0
        self.taken.append(want)
        return want


def parse_schedule(value: Any) -> Any:
    """Config.schedule as the kernel uses it: None, a list of ints, or a chooser object.
    A string is a file holding the list, or the list itself ("0,1,1" or "0 1 1")."""
    if value is None or hasattr(value, "choose"):
        return value
    if isinstance(value, str):
        path = Path(value)
        text = path.read_text() if path.is_file() else value
        words = text.replace(",", " ").split()
        if not all(w.isdigit() for w in words):
            raise ValueError(f"schedule: {value!r} is neither a file nor a list of choices like 0,1,1")
        return [int(w) for w in words]
    if isinstance(value, list | tuple) and all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        if any(c < 0 for c in value):
            raise ValueError(f"schedule: choices are 0 or more, not {list(value)!r}")
        return list(value)
    raise ValueError(f"schedule: a list of choices (0,1,1), a file of them or a chooser, not {value!r}")


def chooser_for(value: Any) -> Any:
    """The kernel's chooser for a parsed Config.schedule (None: sched decides alone)."""
    if value is None or hasattr(value, "choose"):
        return value
    return Replay(value)


async def runqueue(k: Kernel, task: TaskStruct, cpu: int, meta: dict) -> list[int]:
    """The tasks queued on ``cpu``, sched's best first (task numbers)."""
    return await k.call("sched", "runqueue", {"cpu": cpu}, meta | {"step": "choice"})


async def ask(k: Kernel, task: TaskStruct, kind: str, what: str, ids: list[int], labels: list | None = None) -> int:
    """One choice point: the chooser's index into ``ids``, traced. A chooser
    with ``wants_state`` gets the point's state digest too (``state_digest``).
    ``labels`` name the options when they are not tasks (a ``cpu`` point's CPUs)."""
    if k.hung:  # a deadlock's teardown (api.py): every task killed, the outcome known; its order is sched's
        return 0
    pids = labels if labels is not None else [k.by_id[i].pid if i in k.by_id else 0 for i in ids]
    point = {"kind": kind, "pid": task.pid, "syscall": what, "options": pids}
    if k.footprint is not None:
        footprint_point(k, point)
    if getattr(k.chooser, "wants_state", False):
        point["state"] = await state_digest(k, point)
        wants_detail = getattr(k.chooser, "wants_detail", None)
        if wants_detail is not None and wants_detail(point["state"]):  # explore --graph: the state spelled out
            from .statedump import state_detail  # it imports entry, which imports this module

            point["detail"] = await state_detail(k)
    chosen = k.chooser.choose(point)
    if k.tracer.on:
        k.tracer.emit("choice", op=kind, pid=task.pid, tid=task.pid, syscall=what, options=pids, chosen=chosen)
    return chosen


async def at_entry(k: Kernel, task: TaskStruct, name: str) -> None:
    """Before ``name`` runs: ``task`` goes on, or gives its CPU to the chosen runnable task
    (with several CPUs, or the turn to another CPU's task: ``entry_turn``)."""
    task.host = trio.lowlevel.current_task()  # whose frames are the task's Python state (state_digest)
    if not (name in LOCAL_SYSCALLS or task.cpu is None or task is k.init):  # init: the harness, run to its sleep
        meta = {"pid": task.pid, "tid": task.pid, "syscall": name}
        queued = await runqueue(k, task, task.cpu, meta)
        if k.turn is not None:
            pick = await entry_turn(k, task, name, meta, queued)
        elif queued:
            chosen = await ask(k, task, "entry", name, [task.id, *queued])
            pick = queued[chosen - 1] if chosen > 0 else None
        else:
            pick = None
        if pick is not None:
            task.resume_entry = True  # while it waits: a digest tells it from a task yet to ask (state_digest)
            await k.schedule(task, "preempted", meta | {"step": "choice"}, pick=pick)
            task.resume_entry = False  # it runs the call it was stopped at; its next call is a point again
    if k.footprint is not None:  # the call runs now: it is this step's (explore's POR)
        k.footprint.syscall(task.pid, name)


async def pick_next(k: Kernel, task: TaskStruct, state: str, meta: dict) -> int | None:
    """Which runnable task gets the CPU ``task`` leaves as ``state`` (None: sched's own pick)."""
    queued = await runqueue(k, task, task.cpu, meta)
    options = [*queued, task.id] if state == "yield" else queued
    if len(options) < 2:
        return None
    chosen = await ask(k, task, "schedule", state, options)
    return options[chosen]


# --- wake order and timer ties -----------------------------------------------------------------


async def futex_picks(k: Kernel, task: TaskStruct, pids: list[int], n: int) -> list[int] | None:
    """FUTEX_WAKE of fewer than all its waiters: which of them (futex(2): "no guarantee is
    provided about which waiters are awoken"). One ``futex`` point per waiter woken, each
    after the previous pick's position, so each set of woken is one path, not one per
    order. Positions into ``pids`` (oldest first); None: the oldest, as without a chooser."""
    n = min(n, len(pids))
    if k.chooser is None or n <= 0 or n == len(pids):
        return None
    picks: list[int] = []
    for left in range(n, 0, -1):
        start = picks[-1] + 1 if picks else 0
        positions = list(range(start, len(pids) - left + 1))
        chosen = 0
        if len(positions) > 1:
            chosen = await ask(k, task, "futex", "futex_wake", [], labels=[pids[i] for i in positions])
        picks.append(positions[chosen])
    return picks


async def timer_ties(k: Kernel, task: TaskStruct, expired: list[int]) -> list[int]:
    """Timers that expired at one instant: which fires first (``timer`` points, one per place
    but the last). Asked only while a CPU is idle: the first woken takes it, unasked; with
    every CPU busy the woken are queued and the entry and schedule points pick among them.
    The fired move to the end of ``sleeping`` in firing order, which wake_sleepers follows."""
    if k.chooser is None or len(expired) < 2 or None not in k.cpu_curr:
        return expired
    order, rest = [], list(expired)
    while len(rest) > 1:
        order.append(rest.pop(await ask(k, task, "timer", "hrtimer_interrupt", rest)))
    order += rest
    for tid in order:
        sleeper = k.by_id.get(tid)
        if sleeper in k.sleepers:
            k.sleepers.requeue(sleeper)
    return order


async def select_cpu(k: Kernel, meta: dict, task: TaskStruct, why: str) -> dict:
    """select_task_rq where CPUs tie (several idle for a waking task, equally loaded for a new
    one): which CPU ``task`` goes to (a ``cpu`` point, options CPU numbers, asked with
    ``sched.select_task_rq``), unless every CPU is idle: they are alike then but for their
    numbers. The extra arguments of sched's ``wake`` / ``wake_up_new_task``."""
    if k.chooser is None or len(k.cpu_curr) < 2 or not any(k.cpu_curr):  # idle, the CPUs are alike (symmetry)
        return {}
    cpus = await k.call("sched", "select_task_rq", {"task": task.id, "why": why}, meta | {"step": "choice"})
    if len(cpus) < 2:
        return {}
    asker = k.tasks.by_pid.get(meta.get("pid"), task)
    return {"cpu": cpus[await ask(k, asker, "cpu", why, [], labels=cpus)]}


# --- several CPUs: one task runs at a time, the chooser says which -------------------------------------


@dataclass(eq=False)
class Waiter:
    """A task on a CPU waiting for the turn: at a syscall's entry, or in the kernel on its way
    back from a sleep; ``pick``: the queued task it is to give its CPU to (a chooser's)."""

    at_entry: bool
    event: trio.Event = field(default_factory=trio.Event)
    pick: int | None = None


@dataclass(eq=False)
class Turn:
    """With a chooser and several CPUs, the tasks on the CPUs take turns: one runs (its Python
    and its syscalls) while the others wait at their next entry, so which CPU's task goes next
    is a choice like which task a CPU runs, and a run replays from its choice list whatever
    order trio runs its tasks in. The order of the messages of concurrent syscalls is the order
    of the syscalls; within one syscall they go as it sends them (parallel_copy's at once:
    to disjoint objects, they commute). ``arrived`` is set when a task starts to wait."""

    holder: TaskStruct | None = None
    waiting: dict[TaskStruct, Waiter] = field(default_factory=dict)
    arrived: trio.Event = field(default_factory=trio.Event)


def turn_for(cpus: int, chooser: Any) -> Turn | None:
    """The kernel's Turn: only with a chooser and several CPUs (else trio runs the CPUs at once)."""
    return Turn() if chooser is not None and cpus > 1 else None


async def take_turn(k: Kernel, task: TaskStruct, at_entry: bool = False) -> int | None:
    """Wait for the turn (the last step of wait_cpu); the task to give the CPU to, if the
    chooser that granted it said so."""
    turn = k.turn
    if turn.holder is None:
        turn.holder = task
    if turn.holder is task:
        return None
    waiter = turn.waiting[task] = Waiter(at_entry)
    turn.arrived.set()
    await waiter.event.wait()
    return waiter.pick


def _grant(turn: Turn, task: TaskStruct, pick: int | None = None) -> None:
    waiter = turn.waiting.pop(task)
    turn.holder, waiter.pick = task, pick
    waiter.event.set()


async def _quiesce(k: Kernel, me: TaskStruct) -> None:
    """Until every other task on a CPU waits for the turn: then every option is there."""
    turn = k.turn
    while any(t is not None and t is not me and t not in turn.waiting for t in k.cpu_curr):
        turn.arrived = trio.Event()
        await turn.arrived.wait()


async def _others(k: Kernel, me: TaskStruct, meta: dict) -> list[tuple[TaskStruct, int | None]]:
    """Who else may run next: each waiting CPU's task, or (if it waits at an entry, where it
    can be preempted) a task queued on its CPU; by CPU, then sched's queue order."""
    out: list[tuple[TaskStruct, int | None]] = []
    for t in sorted(k.turn.waiting, key=lambda t: t.cpu):
        out.append((t, None))
        if k.turn.waiting[t].at_entry:
            out.extend((t, q) for q in await runqueue(k, me, t.cpu, meta))
    return out


async def entry_turn(k: Kernel, task: TaskStruct, name: str, meta: dict, queued: list[int]) -> int | None:
    """The ``entry`` point with several CPUs: go on, give this CPU to a queued task (returned),
    or give the turn to another CPU's task (or to a task queued there) and wait for it back."""
    await _quiesce(k, task)
    others = await _others(k, task, meta)
    ids = [task.id, *queued, *(t.id if q is None else q for t, q in others)]
    if len(ids) < 2:
        return None
    chosen = await ask(k, task, "entry", name, ids)
    if chosen <= len(queued):
        return queued[chosen - 1] if chosen else None
    _grant(k.turn, *others[chosen - 1 - len(queued)])
    return await take_turn(k, task, at_entry=True)


async def pass_turn(k: Kernel, task: TaskStruct, state: str, pick: int | None) -> None:
    """``task`` left its CPU (schedule): the turn goes to ``pick`` if an entry chose it, else
    to the chosen waiting task (a ``turn`` point; ``task`` itself is the last option if it got
    its CPU back, a yield)."""
    turn = k.turn
    if turn.holder is not task:
        return
    await _quiesce(k, task)
    if pick is not None and k.by_id.get(pick) in turn.waiting:
        return _grant(turn, k.by_id[pick])
    meta = {"pid": task.pid, "tid": task.pid, "step": "choice"}
    options = await _others(k, task, meta)
    if task.cpu is not None:  # a yield that got its CPU back: last, as at a schedule point
        options.append((task, None))
    if not options:
        turn.holder = None
        return
    chosen = 0
    if len(options) > 1:
        chosen = await ask(k, task, "turn", state, [t.id if q is None else q for t, q in options])
    if options[chosen][0] is not task:
        _grant(turn, *options[chosen])


#: The whole task table (explore's POR): a step that reads or changes tasks it does not name.
ALL_TASKS = ("task", "*")
#: explore's modes (por.py's algebra): ``(READ, obj)`` only reads ``obj`` (two reads commute, a
#: read and a change do not); ``(COUNT, obj)`` makes a change that commutes with every other
#: COUNT of it (a count's +1 or -1, an entry added to or taken from an index); the object
#: itself is a write.
READ, COUNT = "r", "c"
#: Everything (por.py's GLOBAL): /proc, made from every task, the clock and each service.
EVERYTHING = ("*",)


def children_of(task: TaskStruct) -> tuple:
    """explore's POR: a thread group's children lists (every thread's) and the wait4 queue
    woken when one of them changes state: apart from the group's own struct, so that a
    fork's append and a child's exit (note, wake) commute with what reads the struct."""
    return ("task", task.leader.pid, "children")


def woken(pid: int) -> tuple:
    """explore's POR: what a step that makes ``task`` runnable (its fork's wake_up_new_task, a
    wake) writes and each of its steps reads: the happens-before edge from its waker to what it
    does next, which the objects of both need not say (a futex waiter's resume touches nothing;
    a child's first step need not read what its fork wrote). por.py ``wakes``: never a race."""
    return ("woken", pid)


def touch(k: Kernel, *objects: tuple) -> None:
    """explore's POR: the current step read or changed these kernel objects (por.py
    ``Footprint.touch``); one ``is not None`` test without explore."""
    if k.footprint is not None:
        k.footprint.touch(*objects)


def touch_tasks(k: Kernel, *tasks: TaskStruct | None) -> None:
    """The current step read or changed these tasks: each thread group's struct,
    ``("task", tgid)``, and its children lists with the wait queue, ``children_of`` (its
    threads share its mm, so their steps conflict anyway), both written."""
    if k.footprint is not None:
        k.footprint.touch(*(o for t in tasks if t is not None for o in (("task", t.leader.pid), children_of(t))))


def footprint_point(k: Kernel, point: dict) -> None:
    """What explore's partial-order reduction needs at a point besides the options: each
    task's mm (its user memory: threads share it) and signal_struct (its pending signals),
    and whether a timer is armed."""
    point["owners"] = {t.pid: (t.mm, t.signal) for t in k.tasks}
    point["timers"] = k.next_timer is not None


#: What of a task its future depends on (its Python state is its image's journal).
TASK_FIELDS = (
    "pid", "numbers", "comm", "state", "exit_code", "group_exit_code", "flags", "pgrp", "session",
    "pending", "blocked", "sigpending", "killed", "stopped", "task_stopped", "report", "cld_notify",
    "mm", "files", "fs", "sighand", "signal", "nsproxy", "set_child_tid", "clear_child_tid",
    "resume_entry", "did_exec", "exit_signal", "rlim",
)  # fmt: skip


async def state_digest(k: Kernel, point: dict) -> int:
    """The state at a choice point, as one number: each service's own digest (asked with a
    message: ``state_digest``), the kernel's tasks (their fields, links, wait channels, and
    the journal of their image standing for their Python state), the futexes, and the
    point itself. Two runs that reach one state have the same futures (explore merges them)."""
    services = tuple([await _service_digest(k, name) for name in sorted(k.router.endpoints)])
    spaces: dict[int, dict] = {}  # threads share their program's globals: walked once, then a link
    tasks = canonical([_task_state(k, t, spaces) for t in sorted(k.tasks, key=lambda t: t.pid)])
    # a sleeper whose event came (or a signal) wakes at the next kernel exit: not the same state
    sleeping = tuple(sorted((t.pid, awake(t, k.sleeping[t], t.sleep_interruptible)) for t in k.sleeping))
    futexes = canonical(vars(k.futexes))
    options = point["options"]  # their order is sched's queue order: no outcome depends on it
    where = (point["kind"], point["pid"], point["syscall"], options[0] if point["kind"] == "entry" else 0)
    where += (tuple(sorted(options)),)
    return hash((services, tasks, sleeping, futexes, where))


_answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # kernel -> service -> (moved, digest)


async def _service_digest(k: Kernel, name: str) -> int:
    """A service's ``state_digest``, asked again only if it took part in a message since it
    last answered (``Router.moved``): its state changes only in its handlers."""
    answers = _answers.setdefault(k, {})
    moved = k.router.moved
    known = answers.get(name)
    if known is not None and known[0] == moved.get(name, 0):
        return known[1]
    digest = await k.call(name, "state_digest", {}, {"pid": 0, "tid": 0, "step": "state_digest"})
    answers[name] = (moved.get(name, 0), digest)
    return digest


def _task_state(k: Kernel, task: TaskStruct, spaces: dict[int, dict]) -> tuple:
    """A task as the digest takes it (canonical walks every task at once: what tasks share,
    their globals first, is a link there)."""
    own = {name: getattr(task, name) for name in TASK_FIELDS}
    links = tuple(t.pid if t is not None else 0 for t in (task.real_parent, task.group_leader)) + (
        tuple(sorted(c.pid for c in task.children)),
    )
    replay = k.runtime.replays.get(task.id)
    user = user_state(task, spaces)
    return (own, links, task.wchan, task.cpu is not None, user, replay.calls if replay is not None else -1)


KERNEL_SIDE = (str(Path(__file__).resolve().parents[2]), sys.base_prefix, sys.prefix)  # ukernel, services, trio


def task_frames(task: TaskStruct) -> Iterator[FrameType]:
    """The frames of the task's trio task, outermost first: the running one's from the
    interpreter's stack (what it awaits is not set while it runs), a suspended one's along
    what each coroutine awaits (through a coroutine's ``__await__`` wrapper too)."""
    if task.host is None:
        return
    if task.host is trio.lowlevel.current_task():  # up to its coroutine's frame: trio's loop is below
        top, running = task.host.coro.cr_frame, []
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame is not top:
            running.append(frame)
            frame = frame.f_back
        yield from reversed(running)
        return
    coro = task.host.coro
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:  # a coroutine's __await__ wrapper: the coroutine it wraps is its one referent
            inner = [r for r in gc.get_referents(coro) if hasattr(r, "cr_frame")]
            coro = inner[0] if inner else None
            continue
        yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def user_state(task: TaskStruct, spaces: dict[int, dict]) -> Any:
    """A task's Python state, for canonical: its program's globals (one copy per namespace in
    ``spaces``) and the frames of its stack that are the program's own (function, instruction,
    locals, value stack), as MOSAIC digests a generator's frame; the running task's too (the
    one at the point: its locals are what its future depends on). A task that never entered
    the kernel yet is where its image's journal puts it."""
    image = task.image
    if image is None:
        return None
    space = spaces.get(id(image.namespace))
    if space is None:  # (dict.items: not a read, user/watch.py)
        space = spaces[id(image.namespace)] = {k: v for k, v in dict.items(image.namespace) if k != "__builtins__"}
    if task.host is None and isinstance(task.entry, tuple) and task.entry[0] == "call":
        # a thread (or clone(fn) child) yet to start: its function and argument, not the journal
        # its image shares with the other threads (their entries' order is no state of its own)
        fn, arg = task.entry[1:]
        return (getattr(fn, "__qualname__", type(fn).__name__), space, arg)
    if task.host is None:  # a fork child yet to start: where its image's journal puts it
        return (space, list(image.journal))
    entry = entry_code()
    frames = []
    for frame in task_frames(task):
        if frame.f_code is entry:  # the call it is in: its arguments were on the program's stack
            frames.append(("syscall", frame.f_locals.get("name"), frame.f_locals.get("args")))
        elif not frame.f_code.co_filename.startswith(KERNEL_SIDE):
            frames.append(_program_frame(frame))
    return (space, frames)


def _program_frame(frame: FrameType) -> tuple:
    """A program's frame as the digest takes it: function, instruction (two awaits on one line),
    locals, and the value stack (a ``for`` loop's iterator, an expression's partial results:
    user/framestack.py), a generator there or in a local by its own frame."""
    local = {k: _own(v) for k, v in frame.f_locals.items() if k != "sys"}
    return (frame.f_code.co_name, frame.f_lasti, local, [_own(v) for v in value_stack(frame)])


def _own(value: Any) -> Any:
    """A generator of the program's (``for x in produce():``) as where its frame is; the rest as is."""
    if type(value) is not GeneratorType:
        return value
    frame = value.gi_frame
    return ("generator", value.__qualname__) + (() if frame is None else _program_frame(frame))


@functools.cache
def entry_code() -> Any:
    """Entry.syscall's code: a frame of it is a kernel entry."""
    from .entry import Entry  # entry imports this module

    return Entry.syscall.__code__
