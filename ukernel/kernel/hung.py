"""Hang diagnosis (kernel/hung_task.c, SysRq-T, xv6's ^P): who waits for what.

A sleeping task keeps its wait channel (``task.wchan``, set by sleep_on). The
run is *deadlocked* when nothing can ever wake anyone: every trio task is
blocked (the caller checks that), no CPU has a task, no message is in flight
(a sleeper's own ``wait`` request to a service does not count),
sched has no timer armed, and no task waits for console input that may still
come (a terminal, or a host pipe whose writer has not closed it). ``ukernel.run`` then prints ``dump``'s lines, traces a
``hung`` event and ends the run; SIGQUIT prints the same lines at any time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import Kernel
    from .task import TaskStruct

log = logging.getLogger("ukernel")

CONSOLE_INPUT = "console input"  # the wait channel of a read of the terminal (fs.py)


def deadlocked(k: Kernel) -> bool:
    """Nothing is running and nothing can wake a sleeper: the rule above, once trio is idle.
    A service's ``wait`` request held for a sleeper (cpu.py's service_wait) is not in flight:
    it is the sleep itself, answered only when another message wakes its queue."""
    in_flight = [sent for sent in k.router.pending.values() if sent.op != "wait"]
    if any(k.cpu_curr) or in_flight or k.next_timer is not None:
        return False
    if k.init is not None and k.init.pid in k.statuses:  # init is reaped: the run is ending, not stuck
        return False
    input_may_help = k.input_open and any(t.wchan and t.wchan.what == CONSOLE_INPUT for t in k.tasks)
    return bool(len(k.tasks)) and not input_may_help


def dump(k: Kernel) -> list[dict]:
    """Every task's state and wait channel, in pid order (what ``Result.hung`` holds)."""
    return [task_state(k, t) for t in sorted(k.tasks, key=lambda t: t.pid)]


def task_state(k: Kernel, task: TaskStruct) -> dict:
    """One row: pid, comm, ps's state letter, the syscall it sleeps in and what it waits for."""
    if task.state == "zombie":
        return _row(task, "Z", "", "exited, not yet reaped by its parent")
    if task.wchan is not None:
        letter = "S" if task.sleep_interruptible else "D"
        return _row(task, letter, task.wchan.syscall, task.wchan.what)
    if task.cpu is not None:
        return _row(task, "R", "", f"running on cpu {task.cpu}")
    return _row(task, "R", "", "runnable, waiting for a CPU")


def _row(task: TaskStruct, state: str, syscall: str, wchan: str) -> dict:
    return {"pid": task.pid, "comm": task.comm, "state": state, "syscall": syscall, "wchan": wchan}


def format_dump(rows: list[dict]) -> list[str]:
    """The rows as a table, like ``ps -l``'s PID, S, CMD and WCHAN columns."""
    width = max([len(r["comm"]) for r in rows] + [4])
    lines = [f"  {'PID':>5} {'COMM':<{width}} S {'SYSCALL':<9} WAITS FOR"]
    for r in rows:
        lines.append(f"  {r['pid']:>5} {r['comm']:<{width}} {r['state']} {r['syscall'] or '-':<9} {r['wchan']}")
    return lines


def report_tasks(k: Kernel, why: str) -> None:
    """The dump on stderr while the run goes on (SysRq-T): for SIGQUIT and the ``~t`` escape."""
    log.warning("ukernel: %s: the tasks and what they wait for:\n%s", why, "\n".join(format_dump(dump(k))))


def summary(rows: list[dict]) -> str:
    """The one line ``Result.error`` holds for a deadlocked run."""
    asleep = ", ".join(f"pid {r['pid']} ({r['comm']}) {r['wchan']}" for r in rows)
    return f"hung: no task can run and nothing can wake one: {asleep}"
