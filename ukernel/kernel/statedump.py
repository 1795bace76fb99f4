"""A state at a choice point, spelled out (``ukernel explore --graph``): what its page shows
when a state is clicked.

choice.py's ``state_digest`` hashes a state; this gives its parts: each task's ps row
(hung.py's), the syscall it is in or about to enter, its program's frames and locals (the
user state the digest stands for, as MOSAIC's vis shows a thread's), and each service's
digested fields, asked with the same message (``state_digest`` with ``fields``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ipc.service import readable
from .choice import KERNEL_SIDE, task_frames
from .contracts import ServiceBug
from .entry import Entry
from .hung import task_state

if TYPE_CHECKING:
    from .core import Kernel
    from .task import TaskStruct

_ENTRY = Entry.syscall.__code__  # the frame of a kernel entry: its ``name`` is the syscall
#: ukernel, services, trio and Python's library: not a program's frames (a program's file is /bin/NAME).


async def state_detail(k: Kernel) -> dict:
    """The tasks, the services' fields and the kernel's futex queues, as plain values."""
    meta = {"pid": 0, "tid": 0, "step": "state_digest"}
    services: dict[str, Any] = {}
    for name in sorted(k.router.endpoints):
        try:
            services[name] = await k.call(name, "state_digest", {"fields": True}, meta)
        except (OSError, ServiceBug) as exc:  # a student's service without fields: say so, go on
            services[name] = {"error": str(exc)}
    futexes = {repr(key): len(waiters) for key, waiters in k.futexes.queues.items()}
    tasks = [task_detail(t, k) for t in sorted(k.tasks, key=lambda t: t.pid)]
    return {"tasks": tasks, "services": services, "kernel": {"futex waiters": futexes}}


def task_detail(task: TaskStruct, k: Kernel) -> dict:
    """One task: its ps row, the syscall it is about to enter (a runnable one stopped at a
    kernel entry), its program's frames (function, line, locals) innermost last, and the
    program's global data."""
    row = task_state(k, task)
    frames, entering = _frames(task)
    if not row["syscall"] and entering:
        row["syscall"] = entering
    image = task.image
    data = {}
    if image is not None:
        data = {
            name: value
            for name, value in dict.items(image.namespace)  # (not a read of the program's: user/watch.py)
            if not name.startswith("__")
            and not name.isupper()
            and not callable(value)
            and type(value).__name__ != "module"  # nor the constants it imported (ECHILD, O_RDONLY)
        }
    return row | {"frames": frames, "globals": readable(data)}


def _frames(task: TaskStruct) -> tuple[list[dict], str]:
    """The program's frames on the task's stack and the syscall its kernel entry is for ("":
    it has not entered the kernel yet, as a child that has not run)."""
    frames: list[dict] = []
    entering = ""
    for frame in task_frames(task):
        if frame.f_code is _ENTRY:
            entering = frame.f_locals.get("name", "")
        elif not frame.f_code.co_filename.startswith(KERNEL_SIDE):
            local = {n: v for n, v in frame.f_locals.items() if n != "sys"}
            frames.append({"function": frame.f_code.co_name, "line": frame.f_lineno, "locals": readable(local)})
    return frames, entering
