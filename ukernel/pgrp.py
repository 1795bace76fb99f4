"""Process groups and sessions: setpgid, getpgid, setsid, getsid.

A group and a session are named by the struct pid of their leader; here the
leader's numbers at every pid-namespace level, so each caller sees them in
its own namespace. They live on the thread-group leader (signal_struct in
Linux) and are inherited by fork.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import abi
from .task import TaskStruct, nr_in

if TYPE_CHECKING:
    from .kernel import Kernel


def _find(k: Kernel, task: TaskStruct, pid: int) -> TaskStruct:
    """pid 0 is the caller; otherwise the process numbered pid in the caller's namespace."""
    if pid == 0:
        return task.leader
    if pid < 0:
        raise abi.kernel_error(abi.EINVAL, f"bad pid {pid}")
    target = k.tasks.find(pid, task)
    if target is None or target.state != "running":
        raise abi.kernel_error(abi.ESRCH, f"no process {pid}")
    return target.leader


async def sys_getpgid(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    return nr_in(_find(k, task, pid).pgrp, task.level)


async def sys_getsid(k: Kernel, task: TaskStruct, meta: dict, pid: int) -> int:
    return nr_in(_find(k, task, pid).session, task.level)


async def sys_setpgid(k: Kernel, task: TaskStruct, meta: dict, pid: int, pgid: int) -> None:
    """The rules of setpgid(2): self or a child not yet exec'd, same session, no session leader."""
    if pgid < 0:
        raise abi.kernel_error(abi.EINVAL, f"negative pgid {pgid}")
    me = task.leader
    target = _find(k, task, pid)
    if target is not me:
        if target.real_parent is None or target.real_parent.leader is not me:
            raise abi.kernel_error(abi.ESRCH, f"{pid} is neither the caller nor its child")
        if target.did_exec:
            raise abi.kernel_error(abi.EACCES, f"child {pid} has already called execve")
        if target.session != me.session:
            raise abi.kernel_error(abi.EPERM, f"child {pid} is in another session")
    if target.session == target.numbers:
        raise abi.kernel_error(abi.EPERM, "a session leader cannot change its process group")
    if pgid == 0 or pgid == target.nr_in(task.level):
        target.pgrp = target.numbers
        return
    members = [
        t for t in k.tasks if t.leader is t and nr_in(t.pgrp, task.level) == pgid and t.session == target.session
    ]
    if not members:
        raise abi.kernel_error(abi.EPERM, f"no process group {pgid} in the caller's session")
    target.pgrp = members[0].pgrp


async def sys_setsid(k: Kernel, task: TaskStruct, meta: dict) -> int:
    """A new session and group, led by the caller; EPERM for a group leader."""
    me = task.leader
    if any(t.leader is t and t.pgrp == me.numbers for t in k.tasks):
        raise abi.kernel_error(abi.EPERM, "the caller leads a process group")
    me.session = me.pgrp = me.numbers
    return me.nr_in(task.level)
