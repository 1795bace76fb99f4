"""execve: a new program in the same task, routed like clone.

The steps follow fs/exec.c: read the file (kernel_read_file), check it is a
program, then past the point of no return: kill the other threads
(de_thread), a new mm (exec_mmap, which also ends a vfork parent's wait),
an unshared fd table with close-on-exec fds closed, the new comm and exit
signal, and the new program's main.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from .. import abi
from ..user.binfmt import Image
from .exit import mm_release, release_task, zap_other_threads
from .task import Children, ExecImage, TaskStruct
from .uaccess import ARG_MAX, arg_size

if TYPE_CHECKING:
    from .core import Kernel


async def de_thread(k: Kernel, task: TaskStruct) -> None:
    """Kill the other threads and wait for them; a non-leader takes over the leader's pid."""
    leader = task.leader
    leader.group_exec_task = task
    zap_other_threads(task)
    while any(t is not task and _exiting(k, t) for t in leader.thread_group):
        if k.sleeping:  # zap's signal_wake_up: a killed sleeper (a pthread_join) is queued only by a wake
            await k.wake_sleepers(task)
        await k.schedule(task, "yield")  # the killed threads need a CPU to run do_exit
    leader.group_exec_task = None
    if leader is task:
        return
    # the exec'ing thread becomes the leader: it swaps pids with the (zombie) old leader
    k.tasks.remove(leader)
    k.tasks.remove(task)
    for attr in ("pid", "numbers", "pid_handle"):
        mine, theirs = getattr(task, attr), getattr(leader, attr)
        setattr(task, attr, theirs)
        setattr(leader, attr, mine)
    for attr in (
        "real_parent",
        "exit_signal",
        "pgrp",
        "session",
        "tty",
        "rlim",
        "child_subreaper",
        "did_exec",
        "start_time",
    ):
        setattr(task, attr, getattr(leader, attr))
    parent = leader.real_parent
    if parent is not None and leader in parent.children:
        parent.children.replace(leader, task)
    leader.real_parent = None
    task.group_leader, task.thread_group = None, [task]
    leader.group_leader = task
    adopted, leader.children = list(leader.children), Children()
    for child in adopted:  # the old leader's children are the thread's now (what it had to report too)
        child.real_parent = task
        if child not in task.children:
            task.children.append(child)
            task.children.note(child)
    k.tasks.add(task)
    k.tasks.add(leader)
    if k.program is leader:
        k.program = task
    await release_task(k, leader)  # the old leader's struct pid (now the thread's old one) goes back


def _exiting(k: Kernel, thread: TaskStruct) -> bool:
    """Still to wait for: a live thread, or the leader until it is through exit_notify (a
    zombie from its start here, but Linux's de_thread waits for leader->exit_state, set at
    its end): on another CPU it may still be reparenting when the thread takes its pid."""
    return thread.state == "running" or (thread is thread.leader and thread.id in k.by_id)


async def do_execve(k: Kernel, task: TaskStruct, meta: dict, path: str, argv: list, envp: dict) -> None:
    """argv and envp are checked strings (uaccess.py); here their sum meets ARG_MAX, as
    copy_strings counts both against one limit, before the file is read."""
    size = arg_size(argv) + arg_size([f"{name}={value}" for name, value in envp.items()])
    if size > ARG_MAX:
        raise abi.kernel_error(abi.E2BIG, f"argv and envp take {size} bytes; at most {ARG_MAX}")
    found = await k.call("vfs", "kernel_read_file", {"fs": task.fs, "path": path}, meta | {"step": "kernel_read_file"})
    host = k.config.host_paths.get(found["path"])
    image = Image.load(found["path"], found["data"], argv, envp, host, watched=k.footprint is not None)
    # the point of no return
    if len(task.leader.thread_group) > 1:
        await de_thread(k, task)
    exe = {
        "code_size": len(found["data"]),
        "exe": found["path"],
        "dev": found.get("dev", 0),
        "ino": found.get("ino", 0),
    }
    new = await k.call("mm", "mm_init", exe, meta | {"step": "exec_mmap"})
    old_mm, task.mm = task.mm, new["mm"]
    if old_mm is not None:
        saved, task.mm = task.mm, old_mm
        await mm_release(k, task, meta)
        task.mm = saved
        await k.call_cannot_fail(task, "mm", "mmput", {"mm": old_mm}, meta | {"step": "exec_mmap"})
    task.files = (await k.call("vfs", "exec_files", {"files": task.files}, meta | {"step": "unshare_files"}))["files"]
    await k.call(
        "signals", "flush_signal_handlers", {"sighand": task.sighand}, meta | {"step": "flush_signal_handlers"}
    )
    task.leader.did_exec = True
    task.comm = posixpath.basename(found["path"])[:15]
    task.leader.exit_signal = abi.SIGCHLD
    task.image = image
    k.runtime.forget(task)
    raise ExecImage(image)


async def sys_execve(k: Kernel, task: TaskStruct, meta: dict, path: str, argv: list, envp: dict) -> None:
    await do_execve(k, task, meta, path, argv, envp)
