"""/proc's machine-wide files (fs/proc/meminfo.c, uptime.c, loadavg.c), for procfs.py.

Each asks the service that owns the numbers (mm's frames, sched's load average)
and prints them in Linux's layout, so tools that parse Linux's files parse these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import abi
from .task import TaskStruct

if TYPE_CHECKING:
    from .core import Kernel

FIXED_1 = 1 << abi.FSHIFT
KB_PER_PAGE = abi.PAGE_SIZE // 1024

#: /proc/meminfo's lines in Linux's order: label -> the mm counter it shows (pages), or
#: None for what ukernel has no such thing for (no swap, no page cache, no slab): 0.
MEMINFO: dict[str, str | None] = {
    "MemTotal": "total",
    "MemFree": "free",
    "MemAvailable": "free",  # nothing reclaimable besides the free frames: no page cache
    "Buffers": None,
    "Cached": "shmem",  # shmem pages are page cache in Linux (Cached includes Shmem)
    "SwapCached": None,
    "Active": "lru",  # anonymous and shmem pages; no reclaim, so none goes inactive
    "Inactive": None,
    "SwapTotal": None,
    "SwapFree": None,
    "Dirty": None,
    "Writeback": None,
    "AnonPages": "anon",
    "Mapped": None,
    "Shmem": "shmem",
    "KReclaimable": None,
    "Slab": None,
    "PageTables": "page_tables",
    "CommitLimit": "total",  # no swap: overcommit's limit is the RAM
    "Committed_AS": "committed",
}


def _meta(meta: dict) -> dict:
    return meta | {"step": "proc"}


async def proc_meminfo(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """meminfo_proc_show: ``MemTotal:          65536 kB`` (show_val_kb: the label in 16
    columns, the number in 8)."""
    counts = await k.call("mm", "meminfo", {}, _meta(meta))
    counts["lru"] = counts["anon"] + counts["shmem"]
    lines = [f"{label + ':':<16}{counts[key] * KB_PER_PAGE if key else 0:>8} kB" for label, key in MEMINFO.items()]
    return ("\n".join(lines) + "\n").encode()


def centis(ticks: int) -> str:
    """Seconds with two decimals, as uptime_proc_show prints a timespec: 12.34."""
    hundredths = ticks * 100 // abi.HZ
    return f"{hundredths // 100}.{hundredths % 100:02d}"


async def proc_uptime(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """uptime_proc_show: seconds since boot on the virtual clock (with the reader's time
    namespace's boottime offset), then the idle time summed over the CPUs."""
    offset = viewer.time_offsets.get("boottime", 0) * abi.HZ // 10**9
    now = k.ticks
    idle = sum(k.idle_ticks) + sum(now - since for cpu, since in enumerate(k.idle_since) if k.cpu_curr[cpu] is None)
    return f"{centis(now + offset)} {centis(idle)}\n".encode()


def load_text(load: int) -> str:
    """One average as loadavg_proc_show prints it: get_avenrun's FIXED_1/200 rounds to two
    decimals, then LOAD_INT.LOAD_FRAC."""
    x = load + FIXED_1 // 200
    return f"{x >> abi.FSHIFT}.{((x & (FIXED_1 - 1)) * 100) >> abi.FSHIFT:02d}"


async def proc_loadavg(k: Kernel, viewer: TaskStruct, meta: dict) -> bytes:
    """loadavg_proc_show: the 1, 5 and 15 minute averages, running/total tasks (every
    thread of the machine, as nr_threads), and the last pid of the reader's pid namespace."""
    load = await k.call("sched", "loadavg", {"now": k.ticks}, _meta(meta))
    last = await k.call("pid", "ns_last_pid", {"ns": viewer.pid_ns}, _meta(meta))
    total = sum(t.state == "running" for t in k.tasks)
    averages = " ".join(load_text(a) for a in load["avenrun"])
    return f"{averages} {load['nr_running']}/{total} {last}\n".encode()
