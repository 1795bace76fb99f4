"""The kernel core (init/main.c's part): boots the services, keeps the task table, runs programs.

The kernel owns the task table and nothing a service owns. It reaches the
services only through the router, with the tasks' handles, and it runs a
task's Python code only while sched has given that task a CPU (cpu.py);
programs enter it through entry.py.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from functools import partial
from typing import Any

import trio
from trio._core import wait_all_tasks_blocked  # trio.testing's own; that package imports pytest (~0.1 s at start-up)

from services import SERVICES, build, class_for, settings_of

from .. import abi
from ..config import Config, mismatch, parse_fail, parse_kill, parse_restart
from ..determinism import Collector
from ..ipc import tcp
from ..ipc.endpoint import RemoteEndpoint
from ..ipc.router import BootError, Router
from ..ipc.service import Service
from ..reprs import bounded
from ..trace import Tracer
from ..user.process import Runtime
from ..user.watch import UserSteps
from .bug import Bugs, KernelPanic
from .choice import chooser_for, turn_for
from .console import HostInput
from .contracts import ServiceBug
from .cpu import Cpus
from .entry import Entry
from .fork import CloneArgs, kernel_clone
from .futex import FutexTable
from .reincarnation import Reincarnation
from .restore import fill_bin, idle_handles
from .signal import send_to_process
from .task import TaskStruct, TaskTable
from .time import IdleSpell, idle_catch_up
from .tty import send_tty_signals
from .wait import Sleepers
from .watchdog import Watchdog


class Kernel(Cpus, Entry, Bugs):
    """The kernel. What the subsystem files (kernel/*.py) use of it, and nothing else:

    - ``call(dst, op, args, meta)``, ``router`` (send / collect / new_msgid): messages;
    - ``tasks`` (the task table), ``idle``, ``init``, ``program``, ``nr_threads``, ``task_ids``,
      ``futexes``, ``config``, ``fail`` (the steps fault injection fails), ``lost``, ``ticks``;
    - time.py: ``realtime``, ``idle_spell`` (idle time following the wall), ``boot_epoch``;
    - ``console_wanted`` (fs.py sets it when a console read waits; console.py then reads the host),
      ``interrupt`` (console.py's ``~.``, api.py's signals), ``input_open`` (hung.py);
    - cpu.py: ``schedule``, ``sleep_on``, ``wake_sleepers``, ``call_blocking``, ``service_wait``,
      ``wake_up_new_task``, ``task_dead``, ``apply_sched``, and ``timeouts`` / ``next_timer`` for time.py;
    - bug.py: ``bugs`` (service bug reports), ``panic``, ``cannot_go_on``, ``task_nursery``;
    - ``release_pid``, ``reaped`` (exit.py); ``runtime``: the user side (``copy_thread``,
      ``run_handler``, ``forget``), the only way the kernel touches a program's Python state.
    """

    def __init__(self, config: Config, tracer: Tracer):
        self.config, self.tracer = config, tracer
        self.router = Router(tracer, config.cpus)
        self.runtime = Runtime(self)
        self.tasks = TaskTable()
        self.by_id: dict[int, TaskStruct] = {}
        self.nr_threads = 0
        self.total_forks = 0  # tasks ever linked (kernel/fork.c total_forks): nr_threads had no task been reaped
        self.futexes = FutexTable()
        self.collector = Collector()  # gc at a kernel point, every so many tasks released (determinism.py)
        self.sleepers = Sleepers()  # who sleeps on what, and who was woken since (wait.py)
        self.sleeping = self.sleepers.sleeping  # task -> its event, in the order they fell asleep
        self.timeouts: dict[int, trio.Event] = {}  # task id -> set when sched says its timer expired
        self.next_timer: int | None = None  # the tick of sched's earliest timer, as its last reply said
        self.ticks = 0
        self.realtime = config.follows_wall  # idle time follows the wall clock (time.py)
        self.idle_spell: IdleSpell | None = None  # with realtime: since when every CPU is idle
        self.boot_epoch = time.time() if self.realtime else 0.0  # CLOCK_REALTIME at tick 0
        self.slice = 1
        self.cpu_curr: list[TaskStruct | None] = [None] * config.cpus
        self.idle_ticks = [0] * config.cpus  # each CPU's ticks without a task so far (/proc/uptime's idle)
        self.idle_since = [0] * config.cpus  # the tick an idle CPU went idle at
        self.fail, self.router.fail_nth = parse_fail(config.fail)
        self.router.count_from_now(on=False)  # msg:N counts from the program's start (program_starts)
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
        self.session_id = secrets.token_hex(8)  # names this kernel's state on every node it uses (ipc/session.py)
        self.oopses: list[str] = []  # kernel bugs met on a task's behalf (entry.py oops): each killed its task
        self.hung: list[dict] = []  # the tasks of a deadlock that ended the run (kernel/hung.py)
        self.input_open = config.terminal is not None  # input may still come (hung.py: not a deadlock)
        self.console_wanted = trio.Event()  # a console read waits: read a pipe or file behind it (console.py)
        self.interrupted = ""  # what ended the run from outside: SIGINT, SIGTERM, SIGHUP or ~. (api.py)
        self.chooser = chooser_for(config.schedule)  # None: sched alone decides who runs (choice.py)
        self.turn = turn_for(config.cpus, self.chooser)  # several CPUs under a chooser take turns (choice.py)
        self.footprint = getattr(self.chooser, "footprint", None)  # explore's POR: what each step touched
        self.router.footprint = self.footprint
        if self.footprint is not None:  # and which globals a step read and wrote (user/watch.py)
            self.footprint.user = UserSteps(self)
        self.watchdog = Watchdog(config.cpu_limit, config.service_timeout)  # stops spinning Python (watchdog.py)
        self.init_bugs()
        self.router.on_collect = self.on_collect  # every reply: its contract, the faults it reports (bug.py)
        tracer.clock = partial(getattr, self, "ticks")  # (no Python frame per event, as a lambda would be)

    # --- boot ---------------------------------------------------------------------------
    def services(self) -> list[Service]:
        """The services this process runs, built from the config (config.remote names the others)."""
        return [build(name, self.config) for name in SERVICES if name not in self.config.remote]

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the services, fill /bin, and build the idle task's handles."""
        self.nursery = nursery
        self.task_nursery = await nursery.start(_hold_tasks)
        self.rs = Reincarnation(self, parse_restart(self.config.restart), parse_kill(self.config.kill_service))
        for service in self.services():  # each served under RS (reincarnation.py): restarted if it dies
            self.local[service.name] = service
            service.router = self.router
            await nursery.start(self.rs.supervise, service)
        self.watchdog.services = list(self.local.values())
        auth = self.config.auth(self.config.remote_labels()) if self.config.remote else None
        for name in self.config.remote:  # served by other processes (ipc/endpoint.py)
            await self.attach_remote(name, nursery, auth)
        await fill_bin(self)  # vfs's boot state and the idle task's handles: RS makes them again (restore.py)
        await idle_handles(self, self.idle)
        self.baseline = await self.accounting()
        if self.config.terminal is not None:
            tty = self.config.terminal_isatty  # typed at a terminal: through the line discipline
            await self.call("vfs", "console_input", {"data": b"", "live": True, "tty": tty})
        self.router.restart_numbering()
        if self.config.terminal is not None:
            nursery.start_soon(self.terminal, self.config.terminal)

    async def terminal(self, fd: int) -> None:
        """The console's interrupt handler: host input goes to the vfs (``tty_input``). A
        terminal is read as keys come, a pipe or a file as readers wait (console.py)."""
        tty = self.config.terminal_isatty
        try:
            async with trio.lowlevel.FdStream(_own_description(fd, tty)) as stream:
                host = HostInput(self, stream)
                while data := await host.receive():
                    await self.tty_input(data, tty=tty)
            self.input_open = False
            await self.tty_input(b"", live=False, tty=tty)  # the end of input: a hangup, or EOF for good
        except KernelPanic:
            pass  # the run is over (kernel/bug.py): no one is left to read

    async def tty_input(self, data: bytes, live: bool = True, tty: bool = True) -> None:
        """Input for the console, as the terminal's interrupt delivers it: the vfs's line
        discipline takes it and names the signals its keys send (^C: SIGINT to the foreground
        group), which are sent from here; whoever it wakes is woken from the idle task,
        since every CPU may be idle."""
        idle_catch_up(self)  # with realtime: typed at this tick of an idle spell
        reply = await self.call("vfs", "console_input", {"data": data, "live": live, "tty": tty})
        await send_tty_signals(self, reply, {"pid": 0, "tid": 0, "step": "n_tty_receive_char"})
        await self.wake_sleepers(self.idle)

    def interrupt(self, why: str) -> None:
        """End the run from outside (Ctrl-C, SIGTERM, ``~.``): every task and service is
        cancelled, cleanly, and ``ukernel.run`` raises RunInterrupted saying ``why``."""
        self.interrupted = self.interrupted or why  # the first one ended it
        self.nursery.cancel_scope.cancel()

    async def attach_remote(self, name: str, nursery: trio.Nursery, auth: tcp.Auth) -> None:
        """Reach service ``name`` where config.remote says it is, authenticated by ``auth``, once
        it said it runs with this run's settings; the trace names every message's node."""
        c = self.config
        endpoint = RemoteEndpoint(
            name,
            c.remote[name],
            auth,
            heartbeat=c.heartbeat,
            timeout=c.rpc_timeout,
            tracer=self.tracer,
            new_msgid=self.router.new_msgid,
            on_lost=self.rs.remote_lost,  # RS holds its calls if it restarts it, else the run ends
            on_back=self.rs.remote_back,
            session=self.session_id,
        )
        await endpoint.start(nursery)
        self.check_remote(name, endpoint.peer)
        self.router.attach(name, endpoint, class_for(name, self.config).calls)
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
        """The service bugs reported and the oopses, then what leaked: every service's counts
        against boot, the services' own checks and the kernel's, only what differs, at most
        MAX_LEAKS lines. After a panic nothing is counted: the tasks were stopped mid-way."""
        problems = [bug.text for bug in self.bugs] + self.oopses
        if self.panicked is not None:
            return [*problems, "leaks not counted: the run was stopped (the report above says why)"]
        leaks = []
        reported = {bug.service for bug in self.bugs}
        now = await self.accounting()
        for name, counts in now.items():
            for key, value in counts.items():
                before = self.baseline.get(name, {}).get(key)
                if value != before and not (key == "faults" and name in reported):
                    leaks.append(f"{name}.{key}: {before} at boot, {value} now")
        leaks += await self.call("mm", "check", {})
        leaks += await self.call("vfs", "check", {})
        live = [f"{t.pid}:{t.comm}:{t.state}" for t in self.tasks]
        if live:
            leaks.append(f"tasks still in the task table: {', '.join(live[:MAX_LEAKS])}{_more(live, MAX_LEAKS)}")
        if self.nr_threads:
            leaks.append(f"nr_threads is {self.nr_threads}")
        if len(self.futexes):
            leaks.append(f"futex waiters left: {len(self.futexes)}")
        if self.runtime.leftovers():
            leaks.append(f"replays left: {bounded(self.runtime.leftovers())}")
        return (
            problems
            + [bounded(line, 300) if len(line) > 300 else line for line in leaks[:MAX_LEAKS]]
            + ([f"and {len(leaks) - MAX_LEAKS} more"] if len(leaks) > MAX_LEAKS else [])
        )

    # --- exit -------------------------------------------------------------------------------
    async def release_pid(self, task: TaskStruct) -> None:
        """free_pid, which Linux cannot fail (call_cannot_fail), shielded: a reaper being
        cancelled must not leak the pid."""
        if task.pid_handle is not None:
            handle, task.pid_handle = task.pid_handle, None
            with trio.CancelScope(shield=True):
                meta = {"pid": task.pid, "tid": task.pid, "step": "release_task"}
                await self.call_cannot_fail(task, "pid", "free_pid", {"pid": handle}, meta)

    def reaped(self, task: TaskStruct) -> None:
        if task is self.program:
            self.program_status = task.exit_code
            self.router.count_from_now(on=False)  # msg:N faults belong to the program's run, not the checks after
        self.statuses[task.pid] = task.exit_code
        event = self.exits.pop(task.pid, None)
        if event is not None:
            event.set()

    async def kill(self, task: TaskStruct, sig: int) -> None:
        """Send sig to task's process from outside any task (a test, a tool), like a
        kill from the idle task: the sleepers it wakes are woken at once."""
        idle_catch_up(self)
        await send_to_process(self, task, sig, {"pid": 0, "tid": 0})
        await self.wake_sleepers(self.idle)

    # --- running programs ---------------------------------------------------------------
    def program_starts(self, task: TaskStruct) -> None:
        """The program ukernel.run reports on gets its first CPU: ``msg:N`` faults count from here."""
        if task is self.program:
            self.router.count_from_now()

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
            await self.rs.settle()  # a service being restarted holds requests: they are not done yet
            await wait_all_tasks_blocked()
            if not self.router.pending:
                return

    async def run(self, program: str, argv: list[str] | None = None) -> int:
        """Run ``program`` as init's child; the raw wait status of the program. A panic ends
        it with status 1 (``panicked`` says why): so does a service bug that leaves no init."""
        argv = list(argv or [program.rsplit("/", 1)[-1].removesuffix(".py")])
        with trio.CancelScope() as self.run_scope:
            try:
                init = await self.spawn("/bin/init", ["init", program, *argv])
                await self.wait_exit(init)
            except (OSError, ServiceBug) as exc:
                if not self.bugs:
                    raise  # not a service's bug (a lost remote service): the caller's to say
                self.cannot_go_on("the boot of init", exc)
            except Exception as exc:  # a kernel path's bug (a student's copy_process walker) with no task to oops
                self.panic(self.oops_report("making init", exc))
            except KernelPanic:
                pass  # the run is over; the report says why
        self.run_scope, self.init = None, None
        status, self.program_status, self.program = self.program_status, None, None
        if self.panicked is not None:
            return abi.W_EXITCODE(1)
        return status if status is not None else abi.W_EXITCODE(127)


MAX_LEAKS = 20  # lines of differences check_invariants lists, then "and N more"


def _more(items: list, shown: int) -> str:
    return f" and {len(items) - shown} more" if len(items) > shown else ""


async def _hold_tasks(task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    """The nursery every task's trio task runs in: a panic cancels them all, not the services
    (and what a panic unwinds out of a task ends here)."""
    try:
        async with trio.open_nursery() as tasks:
            task_status.started(tasks)
            await trio.sleep_forever()
    except* KernelPanic:
        pass


async def _kthread_execve(sys: Any, arg: tuple) -> int:
    path, argv, envp = arg
    await sys.execve(path, argv, envp)
    return 127


def _own_description(fd: int, tty: bool) -> int:
    """An fd to read the host's input from that trio may make non-blocking: a terminal is
    opened again by name (O_NONBLOCK belongs to an open file description, and the one on
    the host's stdin is also its stdout and stderr, whose writes must not fail with EAGAIN
    when the terminal is slow to take them); a pipe's or a file's description is stdin's own."""
    return os.open(os.ttyname(fd), os.O_RDONLY | os.O_NOCTTY) if tty and os.isatty(fd) else os.dup(fd)
