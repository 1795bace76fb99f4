"""CPUs (kernel/sched/core.c's half that is not a policy): schedule, sleep and wake, timers.

The policy (which task runs next, for how long) is sched's: the kernel asks
it with one message per decision and carries out the reply (dispatch a task,
preempt one, fire timers). A task runs Python only while it holds a CPU
(``task.go`` set); a sleeping task waits on an event (wait.py) that its waker sets,
and ``wake_sleepers`` makes it runnable again, in the order tasks fell asleep
(the sleepers index, wait.py, says which: the waker does not scan them all).

``Cpus`` is a part of ``Kernel`` (core.py): its methods use the kernel's
``sleepers`` (and its ``sleeping``), ``timeouts``, ``next_timer``, ``ticks``, ``slice`` and ``cpu_curr``,
and with ``realtime`` its ``idle_spell`` (time.py: idle time follows the wall).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import abi
from .choice import pass_turn, pick_next, select_cpu, take_turn, timer_ties, touch, woken
from .contracts import ServiceBug
from .task import NO_WCHAN, WaitChannel
from .time import idle_enter, idle_exit
from .wait import WaitEvent, unpark, unparked

if TYPE_CHECKING:
    from ..ipc.router import Sent
    from .task import TaskStruct


class Cpus:
    """Giving CPUs to tasks and taking them back (mixed into Kernel)."""

    def _dispatch(self, cpu: int, task_id: int, slice_: int | None = None) -> None:
        task = self.by_id[task_id]
        if self.idle_spell is not None:  # the first CPU busy again: the clock counts entries
            idle_exit(self)
        task.cpu, task.slice = cpu, self.slice if slice_ is None else slice_
        if self.cpu_curr[cpu] is None:
            self.idle_ticks[cpu] += self.ticks - self.idle_since[cpu]
        self.cpu_curr[cpu] = task
        if self.footprint is not None:  # explore's POR: another task's step begins
            self.footprint.switch(task.pid)
        if self.tracer.on:
            self.tracer.sched("pick", cpu, task.pid)
        task.go.set()

    async def wait_cpu(self, task: TaskStruct) -> None:
        while task.cpu is None:
            await task.go.wait()
        if self.turn is not None:  # several CPUs under a chooser: and the turn (choice.py)
            await take_turn(self, task)

    async def wake_up_new_task(self, child: TaskStruct, meta: dict, inject: int | None = None) -> None:
        """Start the child's trio task, then let sched queue it."""
        self.by_id[child.id] = child
        touch(self, woken(child.pid))  # explore's POR: its steps come after this one
        status: list[int] = []
        self.task_nursery.start_soon(self.runtime.task_main, child, status)
        args = {"task": child.id} | await select_cpu(self, meta, child, "wake_up_new_task")
        reply = await self.call_cannot_fail(child, "sched", "wake_up_new_task", args, meta, inject)
        self.apply_sched(reply, child)
        self.collector.tick(len(self.tasks))  # a kernel point where the run collects garbage (determinism.py)

    async def call_cannot_fail(
        self, task: TaskStruct, dst: str, op: str, args: dict, meta: dict, inject: int | None = None
    ) -> Any:
        """An op Linux cannot fail (schedule, wake_up_new_task, free_pid, the put_* of exit).

        An error reply (or one that breaks its contract) is a kernel bug: an oops for
        ``task``, which is killed (never the idle task: a kill from outside any task). The
        message is sent once more, as the service may never have seen it (fault injection
        fails one message): a CPU, an entity, a signal or a handle must not be lost with it.
        If that fails too, the service cannot do what the kernel cannot do without: a panic."""
        since = len(self.bugs)
        try:
            return await self.call(dst, op, args, meta, inject)
        except (OSError, ServiceBug) as exc:
            self.oops(task, meta.get("step") or op, exc)
            if task is not self.idle:
                task.killed = task.killed or abi.SIGKILL
        try:
            return await self.call(dst, op, args, meta)
        except (OSError, ServiceBug) as exc:
            if self.lost:
                raise  # a remote service is gone: ukernel.run stops the run and says so
            raise self.cannot_go_on(f"{dst}.{op}", exc, since) from None

    async def schedule(self, task: TaskStruct, state: str, meta: dict | None = None, pick: int | None = None) -> None:
        """``task`` gives up its CPU (preempted, yield, blocked, dead); sched picks the next,
        or runs ``pick``, the task a chooser chose (choice.py)."""
        meta = meta or {"pid": task.pid, "tid": task.pid}
        if self.chooser is not None and pick is None and state != "preempted":
            pick = await pick_next(self, task, state, meta)
        cpu, ran = task.cpu, task.ran
        task.ran, task.cpu, task.go = 0, None, WaitEvent()
        task.utime += ran
        self.cpu_curr[cpu], self.idle_since[cpu] = None, self.ticks
        if self.tracer.on and state == "blocked":
            self.tracer.sched("sleep", cpu, task.pid)
        args = {"cpu": cpu, "prev": task.id, "state": state, "ran": ran, "now": self.ticks}
        if pick is not None:
            args["pick"] = pick
        if self.realtime:
            args["jump"] = False  # an idle machine's clock follows the wall: idle_timers fires the timers
        reply = await self.call_cannot_fail(task, "sched", "schedule", args, meta)
        self.slice = reply["slice"]
        self.ticks = max(self.ticks, reply["now"])  # every CPU idle: the clock jumped to the next timer
        if reply["next"] is not None:
            self._dispatch(cpu, reply["next"], reply["slice"])
        elif self.tracer.on:
            self.tracer.sched("idle", cpu, 0)
        self.apply_sched(reply)
        if reply.get("expired"):
            self.fire_timers(await timer_ties(self, task, reply["expired"]))
            await self.wake_sleepers(task)
        if self.realtime and not any(self.cpu_curr):
            idle_enter(self)
        if self.turn is not None:
            await pass_turn(self, task, state, pick if state == "preempted" else None)
        if state in ("preempted", "yield"):
            await self.wait_cpu(task)

    async def sleep_on(
        self, task: TaskStruct, event: trio.Event, interruptible: bool = True, wchan: WaitChannel | None = None
    ) -> None:
        """Block until ``event``, leaving the CPU to others; a fatal signal (or any signal,
        when ``interruptible``) ends the sleep early, with ``event`` still unset. ``wchan``
        says what the task waits for, kept on it while it sleeps: the hang dump shows it.
        The sleep is a note in ``sleepers`` and a parked trio task: its waker's
        ``wake_sleepers`` unparks it (wait.py), so nothing awaits the event itself and a
        blocked task keeps no frames for it (issue 18's memory per blocked process)."""
        if self.sleeping:  # first wake whoever this task woke on its way here
            await self.wake_sleepers(task)
        if event.is_set() or task.killed or (interruptible and task.sigpending):
            return
        self.sleepers.add(task, event, interruptible)  # the waker notes it there (wait.py)
        task.wchan = wchan or NO_WCHAN
        await self.schedule(task, "blocked")
        if task in self.sleeping:  # (not woken while it gave up the CPU): park, in this frame
            task.parked = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(partial(unparked, task))
        task.wchan = None
        await self.wait_cpu(task)

    async def call_blocking(
        self,
        task: TaskStruct,
        dst: str,
        op: str,
        args: dict,
        meta: dict,
        waits_for: Callable[[Any, dict], str],
        interrupted: int = abi.ERESTARTSYS,
    ) -> Any:
        """A call that may have to wait (an empty pipe, the console): the service answers
        ``{"wait": N}`` rather than block its loop, the task sleeps until N is woken, and
        asks again, as pipe_read loops around wait_event. ``waits_for(kernel, reply)`` names what
        the task sleeps on, from the service's reply (its wait channel)."""
        while True:
            result = await self.call(dst, op, args, meta)
            if not (isinstance(result, dict) and "wait" in result):
                return result
            waiter = result["wait"]  # service_wait's three steps, here: a blocked read keeps one frame less
            sent = await self.send_wait(task, dst, waiter, meta)
            await self.sleep_on(
                task, sent.event, wchan=self.sleepers.channel(meta.get("syscall", ""), waits_for(self, result))
            )
            await self.end_service_wait(dst, waiter, meta, sent, interrupted)

    async def service_wait(
        self, task: TaskStruct, dst: str, waiter: int, meta: dict, what: str, interrupted: int = abi.ERESTARTSYS
    ) -> None:
        """Sleep on a service's wait-queue entry: send ``wait`` (answered on wake-up) and
        leave the CPU; a signal ends the sleep with ``finish_wait`` and ``interrupted``
        (ERESTARTSYS, as pipe_read and n_tty_read say; semop's is EINTR, never restarted)."""
        sent = await self.send_wait(task, dst, waiter, meta)
        await self.sleep_on(task, sent.event, wchan=self.sleepers.channel(meta.get("syscall", ""), what))
        await self.end_service_wait(dst, waiter, meta, sent, interrupted)

    async def end_service_wait(self, dst: str, waiter: int, meta: dict, sent: Sent, interrupted: int) -> None:
        """After the sleep: a signal that came first takes the entry off its queue (and the
        call ends with ``interrupted``); a woken one's ``wait`` reply is collected."""
        if not sent.event.is_set():  # a signal came first: take the entry off its queue
            await self.call(dst, "finish_wait", {"waiter": waiter}, meta)
        if not await self.router.collect(sent):
            raise abi.kernel_error(interrupted, f"{meta.get('syscall', 'the wait')} interrupted by a signal")

    async def send_wait(self, task: TaskStruct, dst: str, waiter: int, meta: dict) -> Sent:
        """The ``wait`` request for a service's wait-queue entry, its reply armed to wake
        ``task`` when its waker cannot have found it (``_wake_on_reply``)."""
        sent = await self.router.send("kernel", dst, "wait", {"waiter": waiter}, meta)
        if sent.response is None:  # the reply's set() is what notes the sleeper (wait.py)
            sent.event = WaitEvent()
        several = len(self.cpu_curr) > 1 and self.turn is None  # taking turns, the waker always comes after
        if (several or self.config.terminal is not None) and not sent.event.is_set():
            self.task_nursery.start_soon(self._wake_on_reply, task, sent.event)
        return sent

    async def _wake_on_reply(self, task: TaskStruct, event: trio.Event) -> None:
        """The reply to ``wait`` can land after its waker left the kernel: with several CPUs
        the waker (a write on another CPU) may run between the sleeper's request and its
        sleep, so the waker's own wake_sleepers found no one. So may the terminal's input,
        an interrupt that needs no CPU (core.py ``terminal``): the line a reader waits for
        can arrive between its ``wait`` request and its sleep. This is the wake-up IPI: the
        reply itself wakes the sleeper. (With one CPU and no terminal the waker needs the
        CPU the sleeper holds, so it always comes after and finds it.)"""
        await event.wait()
        if task in self.sleeping:
            await self.wake_sleepers(self.idle)

    async def wake_sleepers(self, waker: TaskStruct) -> None:
        """try_to_wake_up, run by the waker: every sleeper whose condition came true,
        in the order they went to sleep, is made runnable by one sched message each.
        Only the sleepers noted since (wait.py) are looked at, not every sleeper.

        The woken are taken off ``sleeping`` all at once, before the first message:
        Linux's wakers each hold the sleeper's pi_lock, and a second waker here, on
        another CPU while this one awaits sched, must not find them to wake again."""
        for task in self.sleepers.take_woken():
            unpark(task)
            touch(self, woken(task.pid))  # explore's POR: what it does next comes after the waker's step
            meta = {"pid": waker.pid, "tid": waker.pid, "step": "try_to_wake_up"}
            if self.tracer.on:
                self.tracer.emit("sched", op="wake", pid=task.pid, tid=task.pid, by=waker.pid)
            args = {"task": task.id} | await select_cpu(self, meta, task, "wake")
            reply = await self.call_cannot_fail(waker, "sched", "wake", args, meta)
            self.apply_sched(reply, task)

    async def schedule_tail(self, task: TaskStruct) -> None:
        """CLONE_CHILD_SETTID: the child writes its own tid on its first run."""
        nr = task.nr_in(task.level).to_bytes(4, "little")
        try:
            await self.call(
                "mm",
                "write_mem",
                {"mm": task.mm, "addr": task.set_child_tid, "data": nr},
                {"pid": task.pid, "tid": task.pid, "step": "schedule_tail", "flag": "CLONE_CHILD_SETTID"},
            )
        except OSError:
            pass  # unchecked, as in Linux

    def apply_sched(self, reply: dict, woken: TaskStruct | None = None) -> None:
        """Carry out a wake/fork/policy reply: start idle CPUs, mark need_resched."""
        if self.tracer.on:
            if woken is not None and "cpu" in reply:
                self.tracer.sched("enqueue", reply["cpu"], woken.pid)
            for tid, src, dst in reply.get("migrated", ()):
                pid = self.by_id[tid].pid if tid in self.by_id else None
                self.tracer.emit("sched", op="migrate", cpu=dst, pid=pid, tid=pid, src_cpu=src)
        for cpu in reply.get("preempt", ()):
            self.resched(cpu)
        for cpu, tid, *slice_ in reply.get("dispatch", ()):
            self._dispatch(cpu, tid, *slice_)
        if "timer" in reply:
            self.next_timer = reply["timer"]

    def resched(self, cpu: int) -> None:
        """resched_curr: the task on ``cpu`` gives way at its next kernel exit."""
        task = self.cpu_curr[cpu]
        if task is not None:
            task.slice = 0
            if self.tracer.on:
                self.tracer.sched("preempt", cpu, task.pid)

    async def run_timers(self, task: TaskStruct) -> None:
        """The tick found sched's earliest timer due: ask which expired (hrtimer_interrupt).
        From the idle task (time.py's idle clock) there is no task to oops if sched fails."""
        meta = {"pid": task.pid, "tid": task.pid, "step": "hrtimer_interrupt"}
        args = {"now": self.ticks}
        if task is self.idle:
            reply = await self.call_cannot_fail(task, "sched", "hrtimer_interrupt", args, meta)
        else:
            reply = await self.call("sched", "hrtimer_interrupt", args, meta)
        self.next_timer = reply["timer"]
        self.fire_timers(await timer_ties(self, task, reply["expired"]))

    def fire_timers(self, expired: list[int]) -> None:
        """Mark the sleepers whose timers expired; wake_sleepers wakes them in order."""
        for tid in expired:
            event = self.timeouts.get(tid)
            if event is not None:
                event.set()

    async def task_dead(self, task: TaskStruct, meta: dict) -> None:
        """do_task_dead: leave the CPU for good."""
        if self.sleeping:
            await self.wake_sleepers(task)
        await self.schedule(task, "dead", meta | {"step": "do_task_dead"})
        self.by_id.pop(task.id, None)
