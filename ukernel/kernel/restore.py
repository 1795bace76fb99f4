"""What RS does to a fresh instance before it serves (MINIX's SEF init, done by RS): ``RESTORE``.

Two kinds of restart (docs/distributed.md, "Reincarnation"):

- *stateful* (pid, sched): the fresh instance is given back what the old one
  had, from the kernel's own copy (the task table: who is live, their numbers,
  who runs on which CPU, who sleeps) and, for what only the service knew
  (sched's policies, priorities, affinities and timers), from the dead
  instance's core (its ``state_digest``, read in place as its accounting is);
  the run goes on as if nothing happened;
- *stateless* (mm, vfs, signals, namespaces): the kernel has no copy of an
  address space or an open file, so the fresh instance gets only its boot
  state again (what ``Kernel.start`` made of it: /bin and Config.files, the
  idle task's handles), and every task holding a handle into the dead instance
  is killed with SIGKILL, as Linux kills a task whose mm is gone. Init (the
  harness, pid 1) is given fresh handles instead, so it can reap the killed
  program and the run can report its fate (killed by SIGKILL: exit status 137).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import abi
from ..ipc import protocol
from ..ipc.service import Service
from ..user.binfmt import userland_programs
from .signal import k_kill

if TYPE_CHECKING:
    from .core import Kernel
    from .reincarnation import Holding, Reincarnation
    from .task import TaskStruct

RESTORE_STEP = "rs_restore"  # the meta step of RS's own state-transfer requests

#: The task handles each stateless service owns: a holder of one is killed when it dies.
OWNS: dict[str, tuple[str, ...]] = {
    "mm": ("mm",),
    "vfs": ("files", "fs"),
    "signals": ("sighand", "signal"),
    "namespaces": ("nsproxy", "undo_list"),
}
STATELESS = frozenset(OWNS)
#: The handle arguments a stale handle can come in: the tasks' and another service's (an
#: nsproxy's mount namespace, which namespaces puts into vfs).
HANDLE_ARGS: dict[str, tuple[str, ...]] = OWNS | {"vfs": ("files", "fs", "mnt_ns")}

#: A request into a restarted stateless service that names a handle of the dead instance (sent
#: before the restore, or after from a copy: a fork's undo, a retry): what it would do is done.
#: A put finds no holder left (0); do_notify_parent finds SIGCHLD's default action and queues
#: nothing (the parent's sighand died too); any other op fails EIO.
GONE: dict[str, Any] = {
    "mmput": {"users": 0},
    "mm_release": {"cleared": False},
    "put_files": {"count": 0},
    "put_fs": {"users": 0},
    "put_sighand": {"count": 0},
    "put_signal": {"nr_threads": 0},
    "put_nsproxy": {"count": 0},
    "exit_sem": {"count": 0},
    "sigaction": [abi.SIG_DFL, 0],
    "send_signal": {"queued": False},
    "put_mnt_ns": None,
}

#: How the idle task's handles are made at boot (and again by RS): handle -> service, op, args.
IDLE_HANDLES: dict[str, tuple[str, str, dict]] = {
    "files": ("vfs", "init_files", {}),
    "fs": ("vfs", "init_fs", {}),
    "sighand": ("signals", "init_sighand", {}),
    "signal": ("signals", "init_signal", {}),
    "nsproxy": ("namespaces", "init_nsproxy", {"pid_ns": 1, "mnt_ns": 1}),
}


async def ask(service: Service, op: str, args: dict) -> Any:
    """A dead instance's answer to one read-only op, asked in place (RS reads a dead server's
    core the same way); None when its state is too broken to answer."""
    got: list[Any] = []

    async def reply(frame: bytes) -> None:
        got.append(protocol.decode(frame))

    try:
        await service.handle_request([protocol.REQUEST, 0, f"{service.name}.{op}", [args, {}]], reply)
    except Exception:  # its state is too broken to count: say so
        return None
    return got[0].result if got and got[0].error is None else None


def gone_reply(name: str, msg: protocol.Request, stale: range) -> bytes | None:
    """The answer to a request into a stateless service restarted that names a handle of a
    dead instance (in ``stale``: given after the fresh one's construction made its own, and
    before its first): GONE; None if it names none (the fresh instance serves it)."""
    if not any(msg.args.get(attr) in stale for attr in HANDLE_ARGS[name]):
        return None
    if msg.op in GONE:
        return protocol.encode_response(msg.msgid, None, GONE[msg.op])
    error = protocol.error_map(abi.EIO, f"{name} died: the handle it gave died with it (a fresh instance)")
    return protocol.encode_response(msg.msgid, error, None)


async def fill_bin(k: Kernel, meta: dict | None = None) -> None:
    """vfs's boot state: /bin's programs, then Config.files (Kernel.start, and RS after a vfs restart)."""
    for name, source in userland_programs():
        await k.call("vfs", "write_file", {"path": f"/bin/{name}", "data": source, "mode": 0o755}, meta)
    for path, data in k.config.files.items():
        mode = 0o755 if path.startswith("/bin/") else 0o644
        await k.call("vfs", "write_file", {"path": path, "data": data, "mode": mode}, meta)


async def idle_handles(k: Kernel, task: TaskStruct, service: str | None = None, meta: dict | None = None) -> None:
    """The first task's handles (into ``service`` only, or all): the idle task's at boot."""
    for attr, (dst, op, args) in IDLE_HANDLES.items():
        if service is None or dst == service:
            setattr(task, attr, (await k.call(dst, op, args, meta))[attr])


def _rs_call(k: Kernel, name: str) -> Callable[[str, dict], Awaitable[Any]]:
    return lambda op, args: k.call(name, op, args, {"step": RESTORE_STEP})


async def restore_pid(rs: Reincarnation, holding: Holding) -> tuple[str, list[str]]:
    """Every live task of the initial pid namespace gets its numbers back (set_tid); the
    cursor is put back by taking and giving back the free numbers up to it, in order."""
    k = rs.kernel
    call = _rs_call(k, "pid")
    kept, killed, holders = 0, [], [t for t in k.tasks if t.pid_handle is not None]
    for task in holders:
        if len(task.numbers) == 1:
            old = task.pid_handle
            task.pid_handle = (await call("alloc_pid", {"ns": 1, "set_tid": [task.numbers[0]]}))["pid"]
            holding.handles[old] = task.pid_handle
            kept += 1
        else:
            task.pid_handle = None  # its namespace died with the old instance: nothing to give back
            killed.append(f"{task.pid}:{task.comm}")
    taken = {t.numbers[0] for t in holders if len(t.numbers) == 1}
    spare = [await call("alloc_pid", {"ns": 1}) for nr in range(1, rs.last_pid + 1) if nr not in taken]
    for reply in spare:
        await call("free_pid", {"pid": reply["pid"]})
    for task in holders:
        if task.pid_handle is None:
            await k.kill(task, abi.SIGKILL)
    return f"{kept} pid(s) given back from the task table, ns_last_pid {rs.last_pid}", killed


async def restore_sched(rs: Reincarnation, holding: Holding) -> tuple[str, list[str]]:
    """Every task the kernel still schedules is re-registered (sched_restore): its CPU and
    state (running, runnable, blocked, new), policy, priority, affinity and pending timer,
    from the dead instance's core; without a core, the kernel's view (running where
    cpu_curr says, blocked if asleep, else runnable) with the default policy, no timer.
    The clock goes on from the old one's. Not rebuilt: run-time statistics, the queues' order."""
    k = rs.kernel
    call = _rs_call(k, "sched")
    dead = holding.dead
    core = (await ask(dead, "state_digest", {"fields": True}) or {}) if dead is not None else {}
    clock = (await ask(dead, "now", {}) if dead is not None else None) or k.ticks
    entities, timers = core.get("entities") or {}, core.get("timers_left") or {}
    running = {t.id: cpu for cpu, t in enumerate(k.cpu_curr) if t is not None}
    if entities:
        rows = [(int(tid), seen) for tid, seen in entities.items() if int(tid) in k.by_id]
    else:
        rows = [(t.id, _kernel_view(t, running, k)) for t in k.by_id.values() if t.id and t.state == "running"]
    queued = [t for cpu in range(len(k.cpu_curr)) for t in (await _ask_list(dead, "runqueue", {"cpu": cpu}))]
    place = {tid: n for n, tid in enumerate(queued)}  # each queue in its order: the RR tail stays the tail
    rows.sort(key=lambda row: (row[1]["state"] != "running", place.get(row[0], len(place)), row[0]))
    armed = 0
    for tid, seen in rows:
        args = {"task": tid, "now": clock} | {key: seen[key] for key in _SCHED_FIELDS if key in seen}
        if entities:  # the digest shows affinity for a person to read: the op gives the list
            args["cpus_allowed"] = await ask(dead, "sched_getaffinity", {"task": tid}) or None
            args["stats"] = await ask(dead, "sched_stat", {"task": tid}) or None
        left = timers.get(str(tid))
        if left is not None:
            args["timer_left"], armed = left, armed + 1
        await call("sched_restore", args)
    source = "the old instance's core" if entities else "the kernel's task table (no core)"
    return f"{len(rows)} task(s) re-registered from {source}, {armed} timer(s) re-armed, clock {clock}", []


async def _ask_list(dead: Service | None, op: str, args: dict) -> list:
    got = await ask(dead, op, args) if dead is not None else None
    return got if isinstance(got, list) else []


_SCHED_FIELDS = ("state", "cpu", "policy", "static_prio", "rt_priority", "reset_on_fork", "wake_pending")


def _kernel_view(task: TaskStruct, running: dict[int, int], k: Kernel) -> dict:
    """Where the kernel thinks a task is: on a CPU, asleep, or waiting for a CPU."""
    state = "running" if task.id in running else "blocked" if task in k.sleeping else "runnable"
    return {"state": state, "cpu": running.get(task.id, task.cpu or 0)}


async def restore_stateless(rs: Reincarnation, holding: Holding) -> tuple[str, list[str]]:
    """The fresh instance's boot state again; the holders of the dead one's handles are
    killed (init and the idle task get fresh handles instead)."""
    k, name = rs.kernel, holding.name
    meta = {"step": RESTORE_STEP}
    if holding.dead is None:  # a remote one lost: it cannot be asked; the kernel saw every handle it gave
        holding.first = max(holding.first, rs.seen.get(name, 0) + 1)
        holding.boot = (await k.call(name, "handles_past", {"first": holding.first}, meta))["boot"]
    kept = "its boot state made again"
    if name == "namespaces":
        kept += await _put_foreign(k, meta)
    if name == "vfs":
        await fill_bin(k, meta)
        kept += await _console_kept(k, holding.dead, meta)
        if k.config.terminal is not None:
            tty = {"data": b"", "live": True, "tty": k.config.terminal_isatty}
            await k.call("vfs", "console_input", tty, meta)
    await idle_handles(k, k.idle, name, meta)
    init, renewed = k.init, False
    holders = [t for t in k.tasks if t is not init and t.state in ("new", "running") and _holds(t, name)]
    if init is not None and _holds(init, name):
        for attr in OWNS[name]:
            setattr(init, attr, None)
        if "PF_EXITING" not in init.flags:  # an exiting init has put them (or its puts are answered)
            await _init_handles(k, init, name, meta)
            renewed = True
    for task in holders:
        for attr in OWNS[name]:
            setattr(task, attr, None)  # gone with the dead instance: its exit puts nothing there
        k_kill(task, abi.SIGKILL)
    await k.wake_sleepers(k.idle)
    return kept + (", init given fresh handles" if renewed else ""), [f"{t.pid}:{t.comm}" for t in holders]


async def _console_kept(k: Kernel, dead: Service | None, meta: dict) -> str:
    """What the console showed before vfs died, read from its core and given to the fresh
    instance first (console_restore): Result.stdout is the whole run's. A remote one's
    process is gone with its output: there is no core to read."""
    shown = await ask(dead, "console_output", {}) if dead is not None else None
    if not isinstance(shown, bytes):
        return ", the console's output before it was lost (no core to read)"
    unread = await ask(dead, "console_unread", {})
    await k.call("vfs", "console_restore", {"output": shown, "unread": unread}, meta)
    kept = f", the console's {len(shown)} byte(s) of output"
    if isinstance(unread, dict) and unread["stdin"]:
        kept += f" and {len(unread['stdin'])} byte(s) of unread input"
    return kept + " kept"


#: The references a namespaces' nsproxies hold in another service, and how RS puts one for it.
FOREIGN: dict[str, tuple[str, str]] = {"vfs": ("put_mnt_ns", "mnt_ns"), "pid": ("put_pid_ns", "ns")}


async def _put_foreign(k: Kernel, meta: dict) -> str:
    """What a dead namespaces' nsproxies held in vfs and pid (free_nsproxy's puts, done for
    it): asked of vfs and pid (``nsproxy_refs``), which count them, not of the dead instance,
    so a remote one lost (no core, its calls sent from its node) and a put it had half done
    are given back alike. The fresh instance holds none yet (init_nsproxy takes none)."""
    put = 0
    for name, (op, arg) in FOREIGN.items():
        for handle, n in await k.call(name, "nsproxy_refs", {}, meta):
            for _ in range(n):
                await k.call(name, op, {arg: handle}, meta)
            put += n
    return f", the {put} reference(s) its nsproxies held in vfs and pid put back" if put else ""


def _holds(task: TaskStruct, name: str) -> bool:
    return any(getattr(task, attr) is not None for attr in OWNS[name])


async def _init_handles(k: Kernel, init: TaskStruct, name: str, meta: dict) -> None:
    """Init's fresh handles: the idle task's kind, and an address space of /bin/init for mm."""
    if name != "mm":
        await idle_handles(k, init, name, meta)
        return
    found = await k.call("vfs", "kernel_read_file", {"fs": init.fs, "path": "/bin/init"}, meta)
    exe = {"code_size": len(found["data"]), "exe": found["path"], "dev": found.get("dev", 0), "ino": found["ino"]}
    init.mm = (await k.call("mm", "mm_init", exe, meta))["mm"]


#: State transfer by service: what RS does to a fresh instance before it serves (SEF init).
RESTORE: dict[str, Callable[[Reincarnation, Holding], Awaitable[tuple[str, list[str]]]]] = {
    "pid": restore_pid,
    "sched": restore_sched,
    **dict.fromkeys(OWNS, restore_stateless),
}
