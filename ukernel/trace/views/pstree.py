"""The pstree view: the processes and threads a run created, from the clone family."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ... import abi
from ...testing import births
from .. import Event
from .format import succeeded


@dataclass
class Task:
    """A task in the tree of creation, named by its comm."""

    pid: int
    comm: str
    thread: bool = False
    children: list[Task] = field(default_factory=list)
    parent: Task | None = None
    group: Task | None = None  # the thread group leader (itself for a process)


def _comm(path: Any) -> str:
    """Linux's comm: the file name of the path execve ran, at most 15 characters."""
    return str(path).rstrip("/").rsplit("/", 1)[-1][:15] or "?"


def process_tree(events: Iterable[Event]) -> list[Task]:
    """The roots of the creation tree: each task under the process that cloned it."""
    events = list(events)
    at_enter = births(events)
    enters: dict[Any, Event] = {}
    current: dict[int, Task] = {}
    roots: list[Task] = []

    def task_of(pid: int) -> Task:
        if pid not in current:
            root = Task(pid, "?")
            root.group = root
            current[pid] = root
            roots.append(root)
        return current[pid]

    for i, e in enumerate(events):
        if i in at_enter:  # the child exists from copy_process on: create it at the clone's entry
            enter, pid = at_enter[i]
            caller = task_of(enter["pid"])
            group = caller.group or caller
            args = enter.get("args") if isinstance(enter.get("args"), dict) else {}  # a hand-made trace may have any
            flags = args.get("flags", 0) if enter["op"] in ("clone", "clone3") else 0
            flags = flags if isinstance(flags, int) else 0
            child = Task(pid, group.comm)
            if flags & abi.CLONE_THREAD:
                child.thread, child.group, child.parent = True, group, group
            else:
                child.group = child
                child.parent = (group.parent or group) if flags & abi.CLONE_PARENT else group
            child.parent.children.append(child)
            current[child.pid] = child
        if e["type"] == "syscall_enter" and isinstance(e.get("pid"), int):
            task_of(e["pid"])
            if e["op"] == "execve":
                enters[e.get("msgid")] = e
        if e["type"] == "syscall_exit" and e["op"] == "execve" and succeeded(e) and isinstance(e.get("pid"), int):
            enter = enters.pop(e.get("msgid"), None)
            if enter is not None:
                task = task_of(e["pid"])
                (task.group or task).comm = _comm((enter.get("args") or {}).get("path", "?"))
    return roots


_UNICODE = {"one": "───", "first": "─┬─", "mid": " ├─", "last": " └─", "bar": " │ ", "gap": "   "}
_ASCII = {"one": "---", "first": "-+-", "mid": " |-", "last": " `-", "bar": " | ", "gap": "   "}


def _render(task: Task, glyphs: dict[str, str], pids: bool) -> list[str]:
    label = f"{{{task.comm}}}" if task.thread else task.comm
    if pids:
        label += f"({task.pid})"
    by_name = sorted(task.children, key=lambda c: c.comm)  # psmisc: by name, ties in pid order; threads last
    ordered = [c for c in by_name if not c.thread] + [c for c in by_name if c.thread]
    blocks: list[tuple[list[str], int]] = []  # (lines, count), identical siblings folded
    for child in ordered:
        lines = _render(child, glyphs, pids)
        for k, (seen, count) in enumerate(blocks):
            if seen == lines:
                blocks[k] = (seen, count + 1)
                break
        else:
            blocks.append((lines, 1))
    folded = []
    for lines, count in blocks:
        if count > 1:
            head = f"{count}*["
            lines = [head + lines[0]] + [" " * len(head) + line for line in lines[1:]]
            lines[-1] += "]"
        folded.append(lines)
    if not folded:
        return [label]
    pad = " " * len(label)
    if len(folded) == 1:
        only = folded[0]
        return [label + glyphs["one"] + only[0]] + [pad + glyphs["gap"] + line for line in only[1:]]
    out: list[str] = []
    for k, lines in enumerate(folded):
        if k == 0:
            out.append(label + glyphs["first"] + lines[0])
        else:
            out.append(pad + (glyphs["last"] if k == len(folded) - 1 else glyphs["mid"]) + lines[0])
        rest = glyphs["gap"] if k == len(folded) - 1 else glyphs["bar"]
        out.extend(pad + rest + line for line in lines[1:])
    return out


def comms(events: Iterable[Event]) -> dict[int, str]:
    """Each task's comm by pid, as pstree names it (the first found of a reused pid's lives)."""
    found: dict[int, str] = {}
    stack = list(process_tree(events))
    while stack:
        task = stack.pop()
        found.setdefault(task.pid, task.comm)
        stack.extend(task.children)
    return found


def _find(tasks: list[Task], pid: int) -> Task | None:
    """The task ``pid`` in the trees, the last made with that pid (pids are reused)."""
    found = None
    for task in tasks:
        if task.pid == pid:
            found = task
        found = _find(task.children, pid) or found
    return found


def pstree(events: Iterable[Event], pids: bool = False, ascii: bool = False, root: int | None = None) -> str:
    """The processes of the run as ``pstree`` draws them: ``init───nginx───4*[nginx]``.

    Built from the clone family's results (the child's pid) and callers, named
    by execve (comm; a child keeps its parent's until it execs). Threads
    (CLONE_THREAD) are ``{name}``; identical sibling subtrees fold into
    ``N*[...]``. This is the tree of creation over the whole run: a task that
    exited or was reparented still shows where it was made. ``pids=True``
    labels every task ``name(pid)`` (nothing folds), ``ascii=True`` draws with
    ``-+|`` like ``pstree -A``, ``root`` draws the tree from that task down (``pstree PID``).
    """
    glyphs = _ASCII if ascii else _UNICODE
    roots = process_tree(events)
    if root is not None:
        found = _find(roots, root)
        roots = [found] if found is not None else []
    lines = [line for top in roots for line in _render(top, glyphs, pids)]
    return "\n".join(lines) + ("\n" if lines else "")
