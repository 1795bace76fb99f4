"""/proc, generated on demand by the kernel (fs/proc/).

The vfs walks a path until it enters the proc mount and then answers
``{"proc": rel}``: the task table is the kernel's, so the kernel resolves the
rest here and asks each owning service for its part (mm for Vm* and maps,
signals for SigIgn/SigCgt, vfs for fd links, cwd and mounts). Numbers are
the viewer's: a task in a new pid namespace sees its own pid 1, and only the
tasks its namespace can see.
"""

from __future__ import annotations

import stat as st
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import abi
from .choice import EVERYTHING, touch
from .proc_array import proc_stat, proc_status
from .proc_misc import proc_loadavg, proc_meminfo, proc_uptime
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel


@dataclass
class Node:
    """A /proc entry: a directory (entries), a file (data) or a symlink (target).
    ``magic`` links point into the real tree (fd/N, cwd, root, exe); the others
    (self, thread-self) point inside /proc."""

    kind: str
    entries: list[str] = field(default_factory=list)
    data: bytes = b""
    target: str = ""
    magic: bool = False
    fds_of: int | None = None  # /proc/PID/fd: the vfs lists this fd table when it is read
    nsfs: bool = False  # a /proc/PID/ns/ link: following it opens the namespace itself
    writable: bool = False  # a file the kernel takes writes to (timens_offsets)


@dataclass
class Escape:
    """The path left /proc through a magic link: the syscall goes on with ``path``."""

    path: str


def _meta(viewer: TaskStruct, meta: dict) -> dict:
    return meta | {"step": "proc"}


# --- the per-task files ---------------------------------------------------------------------
async def proc_cmdline(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    image = task.leader.image
    if task.state == "zombie" or image is None:
        return b""
    return b"".join(arg.encode() + b"\0" for arg in image.argv)


async def proc_environ(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """The envp the process's execve was given, NUL-terminated NAME=value strings."""
    image = task.leader.image
    if task.state == "zombie" or image is None:
        return b""
    return b"".join(f"{name}={value}".encode() + b"\0" for name, value in image.envp.items())


#: /proc/PID/limits: Linux's rows (lnames in fs/proc/base.c, RLIMIT_* order) with their
#: units, and where ukernel's value comes from: an RLIMIT_* number for a limit the task
#: keeps (prlimit sets it), or a fixed (soft, hard) pair, a property of ukernel itself.
#: RLIMIT_CPU is counted in virtual ticks (1 ms), so its unit says so.
UNLIMITED = (abi.RLIM_INFINITY, abi.RLIM_INFINITY)  # nothing in ukernel enforces one
LIMITS: tuple[tuple[str, str, int | tuple[int, int]], ...] = (
    ("Max cpu time", "ticks", abi.RLIMIT_CPU),
    ("Max file size", "bytes", UNLIMITED),
    ("Max data size", "bytes", UNLIMITED),
    ("Max stack size", "bytes", (abi.STACK_SIZE, abi.STACK_SIZE)),  # a fixed stack VMA that never grows
    ("Max core file size", "bytes", (0, 0)),  # no core dumps
    ("Max resident set", "bytes", UNLIMITED),
    ("Max processes", "processes", abi.RLIMIT_NPROC),
    ("Max open files", "files", (abi.NR_OPEN_DEFAULT, abi.NR_OPEN_DEFAULT)),
    ("Max locked memory", "bytes", UNLIMITED),
    ("Max address space", "bytes", UNLIMITED),
    ("Max file locks", "locks", UNLIMITED),
    ("Max pending signals", "signals", UNLIMITED),
    ("Max msgqueue size", "bytes", (0, 0)),  # no POSIX message queues
    ("Max nice priority", "", (0, 0)),  # Linux's defaults; everyone is root, whom they do not bind
    ("Max realtime priority", "", (0, 0)),
    ("Max realtime timeout", "us", UNLIMITED),
)


def _rlimit(k: Kernel, leader: TaskStruct, resource: int) -> tuple[int, int]:
    """(soft, hard) of a limit the task keeps: RLIMIT_CPU a pair, RLIMIT_NPROC one number."""
    if resource == abi.RLIMIT_CPU:
        soft, hard = leader.rlim.get(resource, (abi.RLIM_INFINITY, abi.RLIM_INFINITY))
        return soft, hard
    value = leader.rlim.get(resource, k.config.nproc)
    return value, value


async def proc_limits(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """proc_pid_limits: ``%-25s %-20s %-20s %-10s`` per row, "unlimited" for RLIM_INFINITY."""

    def shown(value: int) -> str:
        return "unlimited" if value == abi.RLIM_INFINITY else str(value)

    lines = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}"]
    for name, unit, source in LIMITS:
        soft, hard = source if isinstance(source, tuple) else _rlimit(k, task.leader, source)
        lines.append(f"{name:<25} {shown(soft):<20} {shown(hard):<20} " + (f"{unit:<10}" if unit else ""))
    return ("\n".join(lines) + "\n").encode()


async def proc_comm(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    return task.comm[:15].encode() + b"\n"


async def proc_maps(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    if task.state == "zombie" or task.mm is None:
        return b""
    lines = await k.call("mm", "maps", {"mm": task.mm}, _meta(viewer, meta))
    return "".join(line + "\n" for line in lines).encode()


async def proc_mounts(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    if task.fs is None:
        return b""
    lines = await k.call("vfs", "mounts", {"fs": task.fs}, _meta(viewer, meta))
    return "".join(line + "\n" for line in lines).encode()


SCHED_FIELDS = {  # proc_sched_show_task's names for sched_stat's fields
    "se.vruntime": "vruntime",
    "se.sum_exec_runtime": "runtime",
    "se.nr_migrations": "nr_migrations",
    "nr_switches": "nr_switches",
    "nr_voluntary_switches": "nvcsw",
    "nr_involuntary_switches": "nivcsw",
    "policy": "policy",
    "prio": "prio",
    "static_prio": "static_prio",
    "normal_prio": "normal_prio",
    "rt_priority": "rt_priority",
}


async def proc_sched(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """/proc/PID/sched (proc_sched_show_task), from sched's entity for the task."""
    if task.state == "zombie":
        return b""
    stat = await k.call("sched", "sched_stat", {"task": task.id}, _meta(viewer, meta))
    head = f"{task.comm} ({task.nr_in(viewer.level)}, #threads: {max(1, len(task.leader.thread_group))})"
    lines = [head, "-" * len(head)] + [f"{name:<40}: {stat[key]:>12}" for name, key in SCHED_FIELDS.items()]
    return ("\n".join(lines) + "\n").encode()


async def proc_cgroup(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """proc_cgroup_show: the cgroup v2 line, the path relative to the *reader's* cgroup
    namespace root. Every task is in the root cgroup (there is no cgroupfs to move one)."""
    root = await k.call("namespaces", "cgroup_root", {"nsproxy": viewer.nsproxy}, _meta(viewer, meta))
    path = "/" + CGROUP_OF_EVERY_TASK.removeprefix(root).lstrip("/")
    return f"0::{path}\n".encode()


CGROUP_OF_EVERY_TASK = "/"


async def proc_uid_map(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """The user namespace's uid_map, in Linux's "%10u %10u %10u" layout."""
    if task.nsproxy is None:
        return b""
    first, lower, count = await k.call("namespaces", "uid_map", {"nsproxy": task.nsproxy}, _meta(viewer, meta))
    return f"{first:10d} {lower:10d} {count:10d}\n".encode()


async def proc_timens_offsets(k: Kernel, viewer: TaskStruct, task: TaskStruct, meta: dict) -> bytes:
    """The offsets of the task's time_for_children namespace: "monotonic SECS NSECS"."""
    if task.nsproxy is None:
        return b""
    offsets = await k.call("namespaces", "timens_offsets", {"nsproxy": task.nsproxy}, _meta(viewer, meta))
    return "".join(f"{clock:<10} {sec:>10} {nsec:>9}\n" for clock, (sec, nsec) in offsets.items()).encode()


async def write_timens_offsets(k: Kernel, writer: TaskStruct, task: TaskStruct, data: bytes, meta: dict) -> int:
    """proc_timens_set_offset: lines "CLOCK SECS NSECS" (CLOCK a name or 1/7), each
    set on the task's time_for_children namespace; EACCES once a task is in it."""
    for line in data.decode(errors="replace").splitlines():
        words = line.split()
        if not words:
            continue
        clock = {str(abi.CLOCK_MONOTONIC): "monotonic", str(abi.CLOCK_BOOTTIME): "boottime"}.get(words[0], words[0])
        if len(words) != 3 or not all(w.lstrip("-").isdigit() for w in words[1:]):
            raise abi.kernel_error(abi.EINVAL, f"timens_offsets: {line!r} is not 'CLOCK SECS NSECS'")
        args = {"nsproxy": task.nsproxy, "clock": clock, "sec": int(words[1]), "nsec": int(words[2])}
        await k.call("namespaces", "set_timens_offset", args, _meta(writer, meta))
    return len(data)


TaskFile = Callable[["Kernel", TaskStruct, TaskStruct, dict], Awaitable[bytes]]
TaskWriter = Callable[["Kernel", TaskStruct, TaskStruct, bytes, dict], Awaitable[int]]
# fmt: off
TASK_FILES: dict[str, TaskFile] = {
    "cgroup":         proc_cgroup,
    "cmdline":        proc_cmdline,
    "comm":           proc_comm,
    "environ":        proc_environ,
    "limits":         proc_limits,
    "maps":           proc_maps,
    "mounts":         proc_mounts,
    "sched":          proc_sched,
    "stat":           proc_stat,
    "status":         proc_status,
    "timens_offsets": proc_timens_offsets,
    "uid_map":        proc_uid_map,
}
TASK_WRITERS: dict[str, TaskWriter] = {
    "timens_offsets": write_timens_offsets,
}
# fmt: on
TASK_LINKS = ("cwd", "exe", "root")
TASK_DIRS = ("fd", "ns", "task")
#: /proc/PID/ns/: the namespaces' names, pid and time also "for children" (nsproxy).
NS_LINKS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts")


async def write(k: Kernel, writer: TaskStruct, rel: str, data: bytes, meta: dict) -> int:
    """A write to a /proc file opened for writing: ``rel`` is what the open resolved
    ("42/timens_offsets"), so the task is found again by its number."""
    touch(k, EVERYTHING)
    where, _, name = rel.rpartition("/")
    task = _find(k, writer, where.rpartition("/")[2], leaders=False)
    if task is None or name not in TASK_WRITERS:
        raise abi.kernel_error(abi.ESRCH if task is None else abi.EACCES, f"/proc/{rel}")
    return await TASK_WRITERS[name](k, writer, task, data, meta)


# --- files outside the task directories -------------------------------------------------
async def proc_ns_last_pid(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """/proc/sys/kernel/ns_last_pid: the last pid handed out in the reader's pid namespace."""
    last = await k.call("pid", "ns_last_pid", {"ns": viewer.pid_ns}, _meta(viewer, meta))
    return f"{last}\n".encode()


async def proc_net_dev(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """/proc/net/dev: the reader's net namespace's interfaces (counters all 0: no traffic)."""
    links = await k.call("namespaces", "net_links", {"nsproxy": viewer.nsproxy}, _meta(viewer, meta))
    head = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|"
        "bytes    packets errs drop fifo colls carrier compressed\n"
    )
    return (head + "".join(f"{name:>6}:" + " 0" * 16 + "\n" for name in links)).encode()


async def proc_root_mounts(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """/proc/mounts: the reader's own (a link to self/mounts in Linux)."""
    return await proc_mounts(k, viewer, viewer, meta)


GlobalFile = Callable[["Kernel", TaskStruct, dict], Awaitable[bytes]]
#: The files at the top of /proc that are not per task.
ROOT_FILES: dict[str, GlobalFile] = {
    "loadavg": proc_loadavg,
    "meminfo": proc_meminfo,
    "mounts": proc_root_mounts,
    "uptime": proc_uptime,
}
#: The directories of /proc that are not per task: path -> its files.
PROC_TREE: dict[str, dict[str, GlobalFile] | tuple[str, ...]] = {
    "net": {"dev": proc_net_dev},
    "sys": ("kernel",),
    "sys/kernel": {"ns_last_pid": proc_ns_last_pid},
}
TOP_DIRS = tuple(path for path in PROC_TREE if "/" not in path)


# --- the walk -----------------------------------------------------------------------------
async def lookup(k: Kernel, viewer: TaskStruct, rel: str, follow: bool, meta: dict) -> tuple[Node, str] | Escape:
    """Resolve ``rel`` below /proc as ``viewer`` sees it: the node and its path with
    /proc's own symlinks (self, thread-self) followed; a magic link on the way ends in
    Escape, since the walk must go on in the real tree."""
    parts = [p for p in rel.split("/") if p]
    node, ctx, i, hops = await root(k, viewer), None, 0, 0
    while i < len(parts):
        if node.kind != "dir":
            raise abi.kernel_error(abi.ENOTDIR, f"/proc/{'/'.join(parts[:i])} is not a directory")
        node, ctx = await child(k, viewer, ctx, parts[i], meta)
        last = i == len(parts) - 1
        if node.nsfs and (follow or not last):  # ns_get_path: the namespace, not a path
            node = Node("nsfs", target=node.target)
        elif node.kind == "link" and (follow or not last):
            rest = "/".join(parts[i + 1 :])
            if node.magic:
                return Escape(node.target.rstrip("/") + ("/" + rest if rest else ""))
            hops += 1
            if hops > abi.MAXSYMLINKS:
                raise abi.kernel_error(abi.ELOOP, f"/proc/{rel}")
            parts, i = [p for p in node.target.split("/") if p] + parts[i + 1 :], 0
            node, ctx = await root(k, viewer), None
            continue
        i += 1
    return node, "/".join(parts)


def visible_leaders(k: Kernel, viewer: TaskStruct) -> list[TaskStruct]:
    tasks = [t for t in k.tasks if t.leader is t and t.state in ("running", "zombie") and t.is_visible_from(viewer)]
    return sorted(tasks, key=lambda t: t.nr_in(viewer.level))


async def root(k: Kernel, viewer: TaskStruct) -> Node:
    pids = [str(t.nr_in(viewer.level)) for t in visible_leaders(k, viewer)]
    return Node("dir", [".", "..", *pids, *sorted([*ROOT_FILES, *TOP_DIRS, "self", "thread-self"])])


async def child(k: Kernel, viewer: TaskStruct, ctx: tuple | None, name: str, meta: dict) -> tuple[Node, tuple]:
    """One step down from the directory ``ctx`` names (None: the /proc root)."""
    missing = abi.kernel_error(abi.ENOENT, f"no /proc entry {name!r}")
    if ctx is None:
        if name == "self":
            return Node("link", target=str(viewer.tgid_vnr(viewer))), ("link",)
        if name == "thread-self":
            return Node("link", target=f"{viewer.tgid_vnr(viewer)}/task/{viewer.vnr(viewer)}"), ("link",)
        if name in ROOT_FILES:
            return Node("file", data=await ROOT_FILES[name](k, viewer, meta)), ("file",)
        if name in PROC_TREE:
            return tree_dir(name), ("tree", name)
        task = _find(k, viewer, name, leaders=True)
        if task is None:
            raise missing
        return task_dir(task, threads=True), ("task", task)
    if ctx[0] == "tree":
        return await tree_entry(k, viewer, ctx[1], name, meta)
    kind, task = ctx[0], ctx[1]
    if kind == "task":
        return await task_entry(k, viewer, task, name, meta)
    if kind == "threads":
        thread = _find(k, viewer, name, leaders=False)
        if thread is None or thread.leader is not task.leader:
            raise missing
        return task_dir(thread, threads=False), ("thread", thread)
    if kind == "thread":
        if name == "task":
            raise missing
        return await task_entry(k, viewer, task, name, meta)
    if kind == "fd":
        links = await fd_links(k, task, meta)
        if name not in links:
            raise missing
        return Node("link", target=links[name], magic=True), ("link",)
    if kind == "ns":
        links = await ns_links(k, task, meta)
        if name not in links:
            raise missing
        return Node("link", target=links[name], nsfs=True), ("link",)
    raise missing


def tree_dir(path: str) -> Node:
    entries = PROC_TREE[path]
    return Node("dir", [".", "..", *sorted(entries)])


async def tree_entry(k: Kernel, viewer: TaskStruct, path: str, name: str, meta: dict) -> tuple[Node, tuple]:
    """One step inside /proc/net or /proc/sys: a subdirectory or a generated file."""
    entries = PROC_TREE[path]
    sub = f"{path}/{name}"
    if sub in PROC_TREE:
        return tree_dir(sub), ("tree", sub)
    if isinstance(entries, dict) and name in entries:
        return Node("file", data=await entries[name](k, viewer, meta)), ("file",)
    raise abi.kernel_error(abi.ENOENT, f"no /proc/{path} entry {name!r}")


async def ns_links(k: Kernel, task: TaskStruct, meta: dict) -> dict[str, str]:
    """/proc/PID/ns: each namespace's ``kind:[inum]`` (none for a zombie)."""
    if task.nsproxy is None:
        return {}
    args = {"nsproxy": task.nsproxy, "pid_ns": task.pid_ns}
    return await k.call("namespaces", "ns_links", args, meta | {"step": "proc"})


def _find(k: Kernel, viewer: TaskStruct, name: str, leaders: bool) -> TaskStruct | None:
    if not name.isdigit():
        return None
    task = k.tasks.find(int(name), viewer)
    if task is None or (leaders and task.leader is not task) or task.state not in ("running", "zombie"):
        return None
    return task


def task_dir(task: TaskStruct, threads: bool) -> Node:
    names = sorted([*TASK_FILES, *TASK_LINKS, "fd", "ns", *(["task"] if threads else [])])
    return Node("dir", [".", "..", *names])


async def task_entry(k: Kernel, viewer: TaskStruct, task: TaskStruct, name: str, meta: dict) -> tuple[Node, tuple]:
    if name in TASK_FILES:
        data = await TASK_FILES[name](k, viewer, task, meta)
        return Node("file", data=data, writable=name in TASK_WRITERS), ("file",)
    if name == "task":
        tids = sorted(t.nr_in(viewer.level) for t in (task.leader.thread_group or [task]) if t.is_visible_from(viewer))
        return Node("dir", [".", "..", *map(str, tids)]), ("threads", task)
    if name == "fd":
        return Node("dir", [".", "..", *await fd_links(k, task, meta)], fds_of=task.files), ("fd", task)
    if name == "ns":
        return Node("dir", [".", "..", *await ns_links(k, task, meta)]), ("ns", task)
    if name in TASK_LINKS:
        return Node("link", target=await link_target(k, task, name, meta), magic=True), ("link",)
    raise abi.kernel_error(abi.ENOENT, f"no /proc/PID entry {name!r}")


async def fd_links(k: Kernel, task: TaskStruct, meta: dict) -> dict[str, str]:
    if task.files is None or task.fs is None:
        return {}
    return await k.call("vfs", "fd_links", {"files": task.files, "fs": task.fs}, meta | {"step": "proc"})


async def link_target(k: Kernel, task: TaskStruct, name: str, meta: dict) -> str:
    if name == "exe":
        image = task.leader.image
        if image is None or task.state == "zombie":
            raise abi.kernel_error(abi.ENOENT, "the task has no executable")
        return image.path
    if task.fs is None:
        raise abi.kernel_error(abi.ENOENT, "the task has no fs_struct")
    paths = await k.call("vfs", "fs_paths", {"fs": task.fs}, meta | {"step": "proc"})
    return paths[name if name == "root" else "cwd"]


def stat_of(node: Node, rel: str) -> dict:
    """stat(2) of a /proc entry: mode by kind, size 0 as Linux reports, a stable inode number."""
    mode = {
        "dir": st.S_IFDIR | 0o555,
        "file": st.S_IFREG | (0o644 if node.writable else 0o444),
        "nsfs": st.S_IFREG | 0o444,
        "link": st.S_IFLNK | 0o777,
    }[node.kind]
    ino = 0xF0000000 | zlib.crc32(rel.encode()) & 0x0FFFFFFF
    if node.kind == "nsfs":  # a namespace's inode number is its name's number
        ino = int(node.target.rsplit("[", 1)[1].rstrip("]"))
    return {
        "st_mode": mode, "st_ino": ino, "st_dev": 0, "st_nlink": 2 if node.kind == "dir" else 1,
        "st_uid": 0, "st_gid": 0, "st_size": len(node.target) if node.kind == "link" else 0,
        "st_atime": 0, "st_mtime": 0, "st_ctime": 0,
    }  # fmt: skip


# --- finishing a path syscall that entered /proc -----------------------------------------------
async def finish_path(k: Kernel, task: TaskStruct, meta: dict, op: str, reply: dict, args: dict, again: Any) -> Any:
    """The vfs answered ``{"proc": rel}``: resolve the path here and finish the syscall
    (PROC_PATH_OPS); through a magic link (/proc/self/cwd/...) the syscall ``again``
    starts over on the real path."""
    touch(k, EVERYTHING)  # explore's POR: what /proc shows is every task's, the clock's...
    found = await lookup(k, task, reply["proc"], reply["follow"], meta)
    if isinstance(found, Escape):
        if found.path.startswith("pipe:"):
            raise abi.kernel_error(abi.ENOSYS, f"reopening {found.path} through /proc is not built")
        return await again(k, task, meta, **(args | {"path": found.path}))
    node, rel = found
    return await PROC_PATH_OPS[op](k, task, meta, node, rel, args)


async def _open(k: Kernel, task: TaskStruct, meta: dict, node: Node, rel: str, args: dict) -> int:
    """Hand what was generated to the vfs, which keeps the open file (seq_file)."""
    flags = args.get("flags", 0)
    if node.kind == "link":
        raise abi.kernel_error(abi.ELOOP, f"/proc/{rel} is a symlink (O_NOFOLLOW)")
    if flags & abi.O_CREAT and flags & abi.O_EXCL:
        raise abi.kernel_error(abi.EEXIST, f"/proc/{rel}")
    data = node.target.encode() if node.kind == "nsfs" else node.data
    proc = {"rel": rel, "kind": node.kind, "flags": flags, "data": data, "entries": node.entries}
    if node.fds_of is not None:
        proc["fds_of"] = node.fds_of
    if node.writable:
        proc["writable"] = True
    return await k.call("vfs", "open_proc", {"files": task.files, "fs": task.fs} | proc, meta)


async def _stat(k: Kernel, task: TaskStruct, meta: dict, node: Node, rel: str, args: dict) -> dict:
    return stat_of(node, rel)


async def _access(k: Kernel, task: TaskStruct, meta: dict, node: Node, rel: str, args: dict) -> int:
    mode = args.get("mode", 0)
    if mode & abi.W_OK or (mode & abi.X_OK and node.kind == "file"):
        raise abi.kernel_error(abi.EACCES, f"/proc/{rel} is read-only")
    return 0


async def _readlink(k: Kernel, task: TaskStruct, meta: dict, node: Node, rel: str, args: dict) -> str:
    if node.kind != "link":
        raise abi.kernel_error(abi.EINVAL, f"/proc/{rel} is not a symlink")
    return node.target


async def _chdir(k: Kernel, task: TaskStruct, meta: dict, node: Node, rel: str, args: dict) -> None:
    if node.kind != "dir":
        raise abi.kernel_error(abi.ENOTDIR, f"/proc/{rel}")
    await k.call("vfs", "chdir_proc", {"fs": task.fs, "rel": rel}, meta)


#: The path syscalls that can enter /proc, and how each is finished there.
PROC_PATH_OPS = {
    "open": _open,
    "stat": _stat,
    "lstat": _stat,
    "access": _access,
    "readlink": _readlink,
    "chdir": _chdir,
}
