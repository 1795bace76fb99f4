"""/proc/PID/status and /proc/PID/stat (fs/proc/array.c), for procfs.py.

``stat`` has do_task_stat's 52 fields in its order and formats: what ukernel
has is real (ids, state, faults, times, priority, sizes, the mm's layout,
signal masks, exit code), and what it has no such thing for is 0 as a kernel
without it would print (kstkesp, nswap, delay accounting, the argv/envp
addresses: the Image keeps argv and envp, not the stack). Times are clock
ticks of ``abi.USER_HZ``; the virtual clock's ticks are ``abi.HZ``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import abi
from .task import TaskStruct, nr_in
from .tty import pgrp_vnr

if TYPE_CHECKING:
    from .core import Kernel

STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "T": "T (stopped)", "Z": "Z (zombie)"}
PF_EXITING, PF_FORKNOEXEC = 0x4, 0x40  # include/linux/sched.h
RLIM_INFINITY_ULONG = 2**64 - 1  # RLIM_INFINITY as an unsigned long, as stat's rsslim shows it
LEGACY_SIGMASK = 0x7FFFFFFF  # stat's signal fields show only the first 31 signals (use status)
NO_MM = {"vm_size": 0, "rss": 0, "min_flt": 0, "maj_flt": 0, "start_code": 0, "end_code": 0, "start_stack": 0}
NO_SCHED = {"cpu": 0, "nice": 0, "prio": abi.DEFAULT_PRIO, "policy": abi.SCHED_OTHER, "rt_priority": 0}


def task_state(k: Kernel, task: TaskStruct) -> str:
    """The one-letter state ps shows: R, S (interruptible sleep), D, T or Z."""
    if task.state == "zombie":
        return "Z"
    if task.task_stopped:
        return "T"
    if task in k.sleeping:
        return "S" if task.sleep_interruptible else "D"
    return "R"


def sigmask(signals: set[int] | list[int]) -> str:
    """SigPnd-style hex: bit sig-1 for each signal."""
    return f"{sigbits(signals):016x}"


def sigbits(signals: set[int] | list[int]) -> int:
    return sum(1 << (s - 1) for s in signals)


def clock_t(ticks: int) -> int:
    """nsec_to_clock_t for a count of virtual ticks."""
    return ticks * abi.USER_HZ // abi.HZ


def _meta(meta: dict) -> dict:
    return meta | {"step": "proc"}


async def _ign_cgt(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    """The signals the group ignores and catches (collect_sigign_sigcatch)."""
    if task.state == "zombie" or task.leader.signal is None:
        return {"ignored": [], "caught": []}
    return await k.call("signals", "collect_sigign_sigcatch", {"sighand": task.leader.sighand}, _meta(meta))


async def _shared_pending(k: Kernel, task: TaskStruct, meta: dict) -> list:
    if task.state == "zombie" or task.leader.signal is None:
        return []
    return await k.call("signals", "shared_pending", {"signal": task.leader.signal}, _meta(meta))


async def proc_status(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """proc_pid_status: NSpgid and NSsid give the group and session at each level the reader sees."""
    leader, level = task.leader, viewer.level
    levels = range(level, len(task.numbers))
    lines = [
        f"Name:\t{task.comm[:15]}",
        f"State:\t{STATE_NAMES[task_state(k, task)]}",
        f"Tgid:\t{leader.nr_in(level)}",
        f"Pid:\t{task.nr_in(level)}",
        f"PPid:\t{task.ppid_vnr(viewer)}",
        "Uid:\t0\t0\t0\t0",
        "Gid:\t0\t0\t0\t0",
        "NStgid:\t" + "\t".join(map(str, leader.numbers[level:])),
        "NSpid:\t" + "\t".join(map(str, task.numbers[level:])),
        "NSpgid:\t" + "\t".join(str(nr_in(leader.pgrp, lv)) for lv in levels),
        "NSsid:\t" + "\t".join(str(nr_in(leader.session, lv)) for lv in levels),
    ]
    if task.state != "zombie" and task.mm is not None:
        vm = await k.call("mm", "status", {"mm": task.mm}, _meta(meta))
        lines += [f"{key}:\t{value:8d} kB" for key, value in vm.items()]
    shared, ign_cgt = await _shared_pending(k, task, meta), await _ign_cgt(k, task, meta)
    lines += [
        f"Threads:\t{max(1, len(leader.thread_group))}",
        f"SigPnd:\t{sigmask(task.pending)}",
        f"ShdPnd:\t{sigmask(shared)}",
        f"SigBlk:\t{sigmask(task.blocked)}",
        f"SigIgn:\t{sigmask(ign_cgt['ignored'])}",
        f"SigCgt:\t{sigmask(ign_cgt['caught'])}",
    ]
    return ("\n".join(lines) + "\n").encode()


async def _mm_stat(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    if task.state == "zombie" or task.mm is None:
        return NO_MM
    return await k.call("mm", "mm_stat", {"mm": task.mm}, _meta(meta))


async def _sched_stat(k: Kernel, task: TaskStruct, meta: dict) -> dict:
    if task.state == "zombie":  # the entity went at the last schedule
        return NO_SCHED
    return await k.call("sched", "sched_stat", {"task": task.id}, _meta(meta))


async def _tpgid(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> int:
    """The terminal's foreground group, -1 without a controlling terminal."""
    if not task.leader.tty:
        return -1
    state = await k.call("vfs", "tty_state", {}, _meta(meta))
    return pgrp_vnr(k, viewer, state["pgrp"])


def task_prio(sched: dict) -> int:
    """task_prio: prio - MAX_RT_PRIO, so 20 + nice for a normal task, -1 - rt_priority for RT."""
    return sched["prio"] - abi.MAX_RT_PRIO


async def proc_stat(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """do_task_stat: the 52 fields. /proc/PID/stat of a group leader counts the whole group
    (faults are the shared mm's), a thread's /proc/PID/task/TID/stat that thread."""
    leader, level = task.leader, viewer.level
    vm, sched = await _mm_stat(k, task, meta), await _sched_stat(k, task, meta)
    tpgid = await _tpgid(k, viewer, task, meta)
    ign_cgt = await _ign_cgt(k, task, meta)
    threads = leader.thread_group if task is leader and leader.thread_group else [task]
    utime = sum(t.utime + t.ran for t in threads)
    state = task_state(k, task)
    flags = (PF_EXITING if "PF_EXITING" in task.flags else 0) | (0 if task.did_exec else PF_FORKNOEXEC)
    boot_offset = viewer.time_offsets.get("boottime", 0) * abi.USER_HZ // 10**9
    mm_on = task.state != "zombie" and task.mm is not None
    fields = [
        task.nr_in(level), f"({task.comm[:15]})", state, task.ppid_vnr(viewer),
        nr_in(leader.pgrp, level), nr_in(leader.session, level), leader.tty, tpgid, flags,
        vm["min_flt"], 0, vm["maj_flt"], 0,                            # minflt cminflt majflt cmajflt
        clock_t(utime), 0, 0, 0,                                       # utime stime cutime cstime
        task_prio(sched), sched["nice"], max(1, len(leader.thread_group)), 0,  # ... itrealvalue
        clock_t(task.start_time) + boot_offset, vm["vm_size"], vm["rss"], RLIM_INFINITY_ULONG,
        vm["start_code"], vm["end_code"], vm["start_stack"], 0, 0,     # ... kstkesp kstkeip
        sigbits(task.pending) & LEGACY_SIGMASK, sigbits(task.blocked) & LEGACY_SIGMASK,
        sigbits(ign_cgt["ignored"]) & LEGACY_SIGMASK, sigbits(ign_cgt["caught"]) & LEGACY_SIGMASK,
        int(state != "R"), 0, 0, task.exit_signal, sched["cpu"] if sched["cpu"] >= 0 else 0,  # wchan nswap cnswap
        sched["rt_priority"], sched["policy"], 0, 0, 0,                # ... blkio guest_time cguest_time
        vm.get("start_data", 0) if mm_on else 0, vm.get("end_data", 0) if mm_on else 0,
        vm.get("start_brk", 0) if mm_on else 0, 0, 0, 0, 0,            # arg_start arg_end env_start env_end
        task.exit_code,
    ]  # fmt: skip
    return (" ".join(map(str, fields)) + "\n").encode()
