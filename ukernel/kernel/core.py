"""The kernel core: boots the services, gives CPUs to tasks, enters syscalls.

The kernel owns the task table and nothing a service owns. It reaches the
services only through the router, with the tasks' handles, and it runs a
task's Python code only while sched has given that task a CPU.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import trio
import trio.testing

from services import SERVICES, build, settings_of

from .. import abi
from ..config import Config, mismatch, parse_errno
from ..ipc import tcp
from ..ipc.endpoint import RemoteEndpoint
from ..ipc.local import open_local
from ..ipc.router import BootError, Router
from ..ipc.service import Service
from ..trace import Tracer
from ..user.binfmt import userland_programs
from ..user.process import Runtime
from .fork import CloneArgs, kernel_clone
from .futex import FutexTable
from .signal import do_signal, send_to_process
from .syscalls import SYSCALLS
from .task import ExecImage, TaskExit, TaskStruct, TaskTable

THREAD_SIZE = 16 * 1024  # what one task costs in Linux's threads-max formula
NO_RESTART = frozenset({"nanosleep"})  # ERESTART_RESTARTBLOCK: EINTR once a handler ran, even with SA_RESTART


class Kernel:
    def __init__(self, config: Config, tracer: Tracer):
        self.config, self.tracer = config, tracer
        self.router = Router(tracer)
        self.runtime = Runtime(self)
        self.tasks = TaskTable()
        self.by_id: dict[int, TaskStruct] = {}
        self.nr_threads = 0
        self.futexes = FutexTable()
        self.sleeping: dict[TaskStruct, tuple[trio.Event, bool]] = {}  # in the order they fell asleep
        self.timeouts: dict[int, trio.Event] = {}  # task id -> set when sched says its timer expired
        self.next_timer: int | None = None  # the tick of sched's earliest timer, as its last reply said
        self.ticks = 0
        self.slice = 1
        self.cpu_curr: list[TaskStruct | None] = [None] * config.cpus
        self.fail = {k: parse_errno(v) for k, v in config.fail.items() if not str(k).startswith("msg:")}
        self.router.fail_nth = {int(k[4:]): parse_errno(v) for k, v in config.fail.items() if str(k).startswith("msg:")}
        self.task_ids = itertools.count(1)  # per kernel, so two runs number their tasks alike
        self.idle = TaskStruct(comm="swapper", state="running")
        self.init: TaskStruct | None = None
        self.program: TaskStruct | None = None  # init's first child: what ukernel.run reports on
        self.program_status: int | None = None
        self.exits: dict[int, trio.Event] = {}
        self.statuses: dict[int, int] = {}
        self.baseline: dict[str, dict] = {}
        self.nursery: trio.Nursery | None = None
        self.lost: list[str] = []  # remote services lost during the run, and why
        tracer.clock = lambda: self.ticks

    # --- boot ---------------------------------------------------------------------------
    def services(self) -> list[Service]:
        """The services this process runs, built from the config (config.remote names the others)."""
        return [build(name, self.config) for name in SERVICES if name not in self.config.remote]

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the services, fill /bin, and build the idle task's handles."""
        self.nursery = nursery
        for service in self.services():
            endpoint, inbox = open_local()
            service.router = self.router
            self.router.attach(service.name, endpoint, service.calls)
            nursery.start_soon(service.serve, inbox)
        for name in self.config.remote:  # served by other processes (ipc/endpoint.py)
            await self.attach_remote(name, nursery)
        for name, source in userland_programs():
            await self.call("vfs", "write_file", {"path": f"/bin/{name}", "data": source, "mode": 0o755})
        for path, data in self.config.files.items():
            await self.call(
                "vfs", "write_file", {"path": path, "data": data, "mode": 0o755 if path.startswith("/bin/") else 0o644}
            )
        idle = self.idle
        idle.files = (await self.call("vfs", "init_files", {}))["files"]
        idle.fs = (await self.call("vfs", "init_fs", {}))["fs"]
        idle.sighand = (await self.call("signals", "init_sighand", {}))["sighand"]
        idle.signal = (await self.call("signals", "init_signal", {}))["signal"]
        idle.nsproxy = (await self.call("namespaces", "init_nsproxy", {"pid_ns": 1, "mnt_ns": 1}))["nsproxy"]
        self.baseline = await self.accounting()
        if self.config.terminal is not None:
            await self.call("vfs", "console_input", {"data": b"", "live": True})
        self.router.restart_numbering()
        if self.config.terminal is not None:
            nursery.start_soon(self.terminal, self.config.terminal)

    async def terminal(self, fd: int) -> None:
        """The console's interrupt handler: host input goes to the vfs, and whoever it
        wakes is woken from the idle task, since every CPU may be idle."""
        async with trio.lowlevel.FdStream(os.dup(fd)) as stream:
            while data := await stream.receive_some(4096):
                await self.call("vfs", "console_input", {"data": data, "live": True})
                await self.wake_sleepers(self.idle)
        await self.call("vfs", "console_input", {"data": b"", "live": False})  # ^D: end of input
        await self.wake_sleepers(self.idle)

    async def attach_remote(self, name: str, nursery: trio.Nursery) -> None:
        """Reach service ``name`` where config.remote says it is, once it said it runs with
        this run's settings; the trace names every message's node."""
        c = self.config
        endpoint = RemoteEndpoint(
            name,
            c.remote[name],
            tcp.load_secret(c.secret_file),
            heartbeat=c.heartbeat,
            timeout=c.rpc_timeout,
            tracer=self.tracer,
            new_msgid=self.router.new_msgid,
            on_lost=lambda _service, why: self.lost.append(why),
        )
        await endpoint.start(nursery)
        self.check_remote(name, endpoint.peer)
        self.router.attach(name, endpoint, SERVICES[name].calls)
        self.tracer.nodes[name] = endpoint.node
        for other in SERVICES:
            self.tracer.nodes.setdefault(other, "local")

    def check_remote(self, name: str, peer: tcp.Peer) -> None:
        """BootError unless the node at config.remote[name] hosts ``name`` built with this
        run's settings (its handshake says): a remote sched with 1 CPU cannot run 2."""
        where = self.config.remote[name]
        if name not in peer.services:
            raise BootError(f"remote {name}: {where} serves {' '.join(peer.services) or 'nothing'}, not {name}")
        ours, theirs = settings_of(name, self.config), peer.services[name]
        if theirs is None and ours:
            raise BootError(
                f"remote {name}: {where} does not say which settings it runs with (serve it with ukernel serve)"
            )
        why = mismatch(name, theirs or {}, ours)
        if why:
            raise BootError(why)

    async def call(self, dst: str, op: str, args: dict, meta: dict | None = None, inject: int | None = None) -> Any:
        """kernel -> service; ``inject`` fails it at the router (fault injection)."""
        return await self.router.call("kernel", dst, op, args, meta or {}, inject)

    # --- accounting -----------------------------------------------------------------------
    async def accounting(self) -> dict[str, dict]:
        return {name: await self.call(name, "accounting", {}) for name in sorted(self.router.endpoints)}

    async def check_invariants(self) -> list[str]:
        """What leaked: every service's counts against boot, and the kernel's own."""
        problems = []
        now = await self.accounting()
        for name, counts in now.items():
            for key, value in counts.items():
                before = self.baseline.get(name, {}).get(key)
                if value != before:
                    problems.append(f"{name}.{key}: {before} at boot, {value} now")
        problems += await self.call("mm", "check", {})
        problems += await self.call("vfs", "check", {})
        live = [f"{t.pid}:{t.comm}:{t.state}" for t in self.tasks]
        if live:
            problems.append(f"tasks still in the task table: {live}")
        if self.nr_threads:
            problems.append(f"nr_threads is {self.nr_threads}")
        if len(self.futexes):
            problems.append(f"futex waiters left: {len(self.futexes)}")
        if self.runtime.leftovers():
            problems.append(f"replays left: {self.runtime.leftovers()}")
        return problems

    # --- CPUs -----------------------------------------------------------------------------
    def _dispatch(self, cpu: int, task_id: int, slice_: int | None = None) -> None:
        task = self.by_id[task_id]
        task.cpu, task.slice = cpu, self.slice if slice_ is None else slice_
        self.cpu_curr[cpu] = task
        if self.tracer.on:
            self.tracer.emit("sched", op="pick", cpu=cpu, pid=task.pid, tid=task.pid)
        task.go.set()

    async def wait_cpu(self, task: TaskStruct) -> None:
        while task.cpu is None:
            await task.go.wait()

    async def wake_up_new_task(self, child: TaskStruct, meta: dict) -> None:
        """Start the child's trio task, then let sched queue it."""
        self.by_id[child.id] = child
        status: list[int] = []
        self.nursery.start_soon(self.runtime.task_main, child, status)
        reply = await self.call("sched", "wake_up_new_task", {"task": child.id}, meta)
        self.apply_sched(reply, child)

    async def schedule(self, task: TaskStruct, state: str, meta: dict | None = None) -> None:
        """``task`` gives up its CPU (preempted, yield, blocked, dead); sched picks the next."""
        cpu, ran = task.cpu, task.ran
        task.ran, task.cpu, task.go = 0, None, trio.Event()
        task.utime += ran
        self.cpu_curr[cpu] = None
        meta = meta or {"pid": task.pid, "tid": task.pid}
        if self.tracer.on and state == "blocked":
            self.tracer.emit("sched", op="sleep", cpu=cpu, pid=task.pid, tid=task.pid)
        args = {"cpu": cpu, "prev": task.id, "state": state, "ran": ran, "now": self.ticks}
        reply = await self.call("sched", "schedule", args, meta)
        self.slice = reply["slice"]
        self.ticks = max(self.ticks, reply["now"])  # every CPU idle: the clock jumped to the next timer
        if reply["next"] is not None:
            self._dispatch(cpu, reply["next"], reply["slice"])
        elif self.tracer.on:
            self.tracer.emit("sched", op="idle", cpu=cpu, pid=0, tid=0)
        self.apply_sched(reply)
        if reply.get("expired"):
            self.fire_timers(reply["expired"])
            await self.wake_sleepers(task)
        if state in ("preempted", "yield"):
            await self.wait_cpu(task)

    async def sleep_on(self, task: TaskStruct, event: trio.Event, interruptible: bool = True) -> None:
        """Block until ``event``, leaving the CPU to others; a fatal signal (or any signal,
        when ``interruptible``) ends the sleep early, with ``event`` still unset."""
        if self.sleeping:  # first wake whoever this task woke on its way here
            await self.wake_sleepers(task)
        if event.is_set() or task.killed or (interruptible and task.sigpending):
            return
        self.sleeping[task] = (event, interruptible)  # the waker finds it here (wake_sleepers)
        await self.schedule(task, "blocked")
        with trio.CancelScope() as scope:
            task.sleep_scope, task.sleep_interruptible = scope, interruptible
            if task in self.sleeping:
                await event.wait()
        task.sleep_scope = None
        await self.wait_cpu(task)

    async def call_blocking(self, task: TaskStruct, dst: str, op: str, args: dict, meta: dict) -> Any:
        """A call that may have to wait (an empty pipe, the console): the service answers
        ``{"wait": N}`` rather than block its loop, the task sleeps until N is woken, and
        asks again, as pipe_read loops around wait_event."""
        while True:
            result = await self.call(dst, op, args, meta)
            if not (isinstance(result, dict) and "wait" in result):
                return result
            await self.service_wait(task, dst, result["wait"], meta)

    async def service_wait(self, task: TaskStruct, dst: str, waiter: int, meta: dict) -> None:
        """Sleep on a service's wait-queue entry: send ``wait`` (answered on wake-up) and
        leave the CPU; a signal ends the sleep with ``finish_wait`` and EINTR."""
        sent = await self.router.send("kernel", dst, "wait", {"waiter": waiter}, meta)
        await self.sleep_on(task, sent.event)
        if not sent.event.is_set():  # a signal came first: take the entry off its queue
            await self.call(dst, "finish_wait", {"waiter": waiter}, meta)
        if not await self.router.collect(sent):
            raise abi.kernel_error(abi.EINTR, f"{meta.get('syscall', 'the wait')} interrupted by a signal")

    async def wake_sleepers(self, waker: TaskStruct) -> None:
        """try_to_wake_up, run by the waker: every sleeper whose condition came true,
        in the order they went to sleep, is made runnable by one sched message each."""
        woken = [t for t, (ev, intr) in self.sleeping.items() if ev.is_set() or t.killed or (intr and t.sigpending)]
        for task in woken:
            del self.sleeping[task]
            if task.sleep_scope is not None:
                task.sleep_scope.cancel()
            meta = {"pid": waker.pid, "tid": waker.pid, "step": "try_to_wake_up"}
            if self.tracer.on:
                self.tracer.emit("sched", op="wake", pid=task.pid, tid=task.pid, by=waker.pid)
            reply = await self.call("sched", "wake", {"task": task.id}, meta)
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

    # --- syscalls -------------------------------------------------------------------------
    async def syscall(self, task: TaskStruct, name: str, args: dict) -> Any:
        """A kernel entry: charge a tick, route the call, then return to user mode."""
        entry = SYSCALLS.get(name)
        if entry is None:
            raise abi.kernel_error(abi.ENOSYS, f"no syscall {name!r}")
        msgid = self.router.new_msgid()
        self.ticks += 1
        task.ran += 1
        task.slice -= 1
        if self.next_timer is not None and self.ticks >= self.next_timer:
            await self.run_timers(task)
        tracer = self.tracer
        if tracer.on:
            tracer.emit(
                "syscall_enter",
                src=f"pid:{task.pid}",
                dst=entry[0],
                op=name,
                msgid=msgid,
                pid=task.pid,
                tid=task.pid,
                args=_printable(args),
            )
        meta = {"cause": msgid, "pid": task.pid, "tid": task.pid, "syscall": name}
        started = time.perf_counter()
        while True:
            try:
                result = await entry[1](self, task, meta, **args)
                break
            except OSError as exc:
                if tracer.on:
                    outcome = {"errno": abi.errno_name(exc.errno or 0), "message": exc.strerror}
                    self._trace_exit(task, entry[0], name, msgid, started, **outcome)
                restart = await self.return_to_user(task)
                if not (restart and exc.errno == abi.EINTR) or name in NO_RESTART:
                    raise
                # SA_RESTART: the handler ran, the syscall starts again
            except ExecImage:
                if tracer.on:
                    self._trace_exit(task, entry[0], name, msgid, started, result=0)
                if self.sleeping:  # a vfork parent waits for this exec
                    await self.wake_sleepers(task)
                raise
        if tracer.on:
            self._trace_exit(task, entry[0], name, msgid, started, result=_printable(result))
        await self.return_to_user(task)
        return result

    def _trace_exit(self, task: TaskStruct, src: str, name: str, msgid: int, started: float, **outcome: Any) -> None:
        dur_us = int((time.perf_counter() - started) * 1e6)
        self.tracer.emit(
            "syscall_exit",
            src=src,
            dst=f"pid:{task.pid}",
            op=name,
            msgid=msgid,
            pid=task.pid,
            tid=task.pid,
            dur_us=dur_us,
            **outcome,
        )

    async def return_to_user(self, task: TaskStruct) -> bool:
        """exit_to_user_mode: a fatal signal ends the task, pending signals are delivered,
        a used-up slice preempts. True when handlers ran and all asked for SA_RESTART."""
        if self.sleeping:  # whoever this syscall woke gets a CPU now, in a fixed order
            await self.wake_sleepers(task)
        if task.killed:
            raise TaskExit(abi.W_EXITCODE(0, task.killed))
        restart = await do_signal(self, task) if task.sigpending else False
        if task.slice <= 0:
            await self.schedule(task, "preempted")
        return bool(restart)

    # --- what sched answers: dispatches, preemptions, migrations, timers ---------------------
    def apply_sched(self, reply: dict, woken: TaskStruct | None = None) -> None:
        """Carry out a wake/fork/policy reply: start idle CPUs, mark need_resched."""
        if self.tracer.on:
            if woken is not None and "cpu" in reply:
                self.tracer.emit("sched", op="enqueue", cpu=reply["cpu"], pid=woken.pid, tid=woken.pid)
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
                self.tracer.emit("sched", op="preempt", cpu=cpu, pid=task.pid, tid=task.pid)

    async def run_timers(self, task: TaskStruct) -> None:
        """The tick found sched's earliest timer due: ask which expired (hrtimer_interrupt)."""
        meta = {"pid": task.pid, "tid": task.pid, "step": "hrtimer_interrupt"}
        reply = await self.call("sched", "hrtimer_interrupt", {"now": self.ticks}, meta)
        self.next_timer = reply["timer"]
        self.fire_timers(reply["expired"])

    def fire_timers(self, expired: list[int]) -> None:
        """Mark the sleepers whose timers expired; wake_sleepers wakes them in order."""
        for tid in expired:
            event = self.timeouts.get(tid)
            if event is not None:
                event.set()

    # --- exit -------------------------------------------------------------------------------
    async def task_dead(self, task: TaskStruct, meta: dict) -> None:
        """do_task_dead: leave the CPU for good."""
        if self.sleeping:
            await self.wake_sleepers(task)
        await self.schedule(task, "dead", meta | {"step": "do_task_dead"})
        self.by_id.pop(task.id, None)

    async def release_pid(self, task: TaskStruct) -> None:
        """free_pid, shielded: a reaper being cancelled must not leak the pid."""
        if task.pid_handle is not None:
            handle, task.pid_handle = task.pid_handle, None
            with trio.CancelScope(shield=True):
                meta = {"pid": task.pid, "tid": task.pid, "step": "release_task"}
                await self.call("pid", "free_pid", {"pid": handle}, meta)

    def reaped(self, task: TaskStruct) -> None:
        if task is self.program:
            self.program_status = task.exit_code
        self.statuses[task.pid] = task.exit_code
        event = self.exits.pop(task.pid, None)
        if event is not None:
            event.set()

    async def kill(self, task: TaskStruct, sig: int) -> None:
        """Send sig to task's process from outside any task (a test, a tool), like a
        kill from the idle task: the sleepers it wakes are woken at once."""
        await send_to_process(self, task, sig, {"pid": 0, "tid": 0})
        await self.wake_sleepers(self.idle)

    # --- running programs ---------------------------------------------------------------
    async def spawn(self, path: str, argv: list[str], envp: dict | None = None) -> TaskStruct:
        """A kernel thread that execs ``path`` (kernel_init running /sbin/init)."""
        args = CloneArgs(
            exit_signal=abi.SIGCHLD,
            fn=_kthread_execve,
            arg=(path, list(argv), dict(envp or {})),
            syscall="kernel_thread",
        )
        cause = self.router.new_msgid()
        pid = await kernel_clone(self, self.idle, args, cause)
        self.exits[pid] = trio.Event()
        task = self.tasks.by_pid[pid]
        if self.init is None:
            self.init = task
        return task

    async def wait_exit(self, task: TaskStruct) -> int:
        """Wait for a spawned task to end; the idle task reaps it."""
        event = self.exits.get(task.pid)
        if event is not None:
            await event.wait()
        await self.quiesce()
        return self.statuses.pop(task.pid)

    async def quiesce(self) -> None:
        """Let a task that was just reaped finish leaving its CPU (schedule(dead)) before anyone counts."""
        for _ in range(50):
            await trio.testing.wait_all_tasks_blocked()
            if not self.router.pending:
                return

    async def run(self, program: str, argv: list[str] | None = None) -> int:
        """Run ``program`` as init's child; the raw wait status of the program."""
        argv = list(argv or [program.rsplit("/", 1)[-1].removesuffix(".py")])
        init = await self.spawn("/bin/init", ["init", program, *argv])
        await self.wait_exit(init)
        self.init = None
        status, self.program_status, self.program = self.program_status, None, None
        return status if status is not None else abi.W_EXITCODE(127)


async def _kthread_execve(sys: Any, arg: tuple) -> int:
    path, argv, envp = arg
    await sys.execve(path, argv, envp)
    return 127


def _printable(value: Any) -> Any:
    """Trace args hold msgpack types: a function becomes its name."""
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    if callable(value):
        return getattr(value, "__qualname__", repr(value))
    return value
