"""SysV semaphores (ipc/sem.c): semget, semop, semctl and exit_sem, served by namespaces.

The semaphore sets live in the caller's ipc namespace, which the namespaces
service owns, so each syscall is one message carrying the task's nsproxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import abi
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel


async def exit_sem(k: Kernel, task: TaskStruct, meta: dict) -> None:
    """Let go of the task's SysV undo list (applied by its last holder)."""
    if task.undo_list is not None:
        undo, task.undo_list = task.undo_list, None
        await k.call("namespaces", "exit_sem", {"undo_list": undo}, meta | {"step": "exit_sem"})


async def sys_semget(k: Kernel, task: TaskStruct, meta: dict, key: int, nsems: int, semflg: int) -> int:
    args = {"nsproxy": task.nsproxy, "key": key, "nsems": nsems, "semflg": semflg}
    return await k.call("namespaces", "semget", args, meta)


async def sys_semop(k: Kernel, task: TaskStruct, meta: dict, semid: int, sops: list) -> int:
    """semop may sleep until the set changes; SEM_UNDO may make the task's undo list."""
    args = {"nsproxy": task.nsproxy, "semid": semid, "sops": sops, "undo_list": task.undo_list}
    what = f"semop on sem {semid}"  # EINTR: semop is never restarted (signal(7))
    reply = await k.call_blocking(task, "namespaces", "semop", args, meta, lambda _k, _reply: what, abi.EINTR)
    task.undo_list = reply["undo_list"]
    return 0


async def sys_semctl(k: Kernel, task: TaskStruct, meta: dict, semid: int, semnum: int, cmd: int, arg: int) -> int:
    args = {"nsproxy": task.nsproxy, "semid": semid, "semnum": semnum, "cmd": cmd, "arg": arg}
    return await k.call("namespaces", "semctl", args, meta)
