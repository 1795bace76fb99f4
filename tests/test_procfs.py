"""/proc as Linux prints it: stat's 52 fields, maps' names, meminfo, uptime, loadavg,
environ and limits, read by programs and compared with the host's own /proc where
the host has one (the layout and the kinds of the fields, never the host's values)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.sched.loadavg import EXP, FIXED_1, LOAD_FREQ, calc_load, calc_load_n
from ukernel import abi
from ukernel.kernel.proc_misc import load_text

HOST_PROC = Path("/proc/self/stat").exists()
needs_host_proc = pytest.mark.skipif(not HOST_PROC, reason="the host has no /proc to compare the layout with")

CAT = """
async def main(sys, argv):
    for path in argv[1:]:
        fd = await sys.open(path)
        await sys.write(1, await sys.read(fd, 65536))
        await sys.close(fd)
"""


def stat_fields(line: str) -> list[str]:
    """The 52 fields, the comm (which may hold spaces and parentheses) as one."""
    head, _, rest = line.rpartition(")")
    pid, _, comm = head.partition(" (")
    return [pid, f"({comm})", *rest.split()]


def kind(field: str) -> str:
    if field.startswith("("):
        return "comm"
    return "int" if re.fullmatch(r"-?\d+", field) else "letter" if re.fullmatch(r"[A-Za-z]", field) else field


# --- /proc/PID/stat ----------------------------------------------------------------------------
STAT_PROGRAM = """
from ukernel.abi import SCHED_FIFO

async def cat(sys, path):
    return (await sys.read(await sys.open(path), 4096)).decode()

async def main(sys, argv):
    await sys.nice(5)
    await sys.write(1, (await cat(sys, "/proc/self/stat")).encode())
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:  # a child that has not exec'd: PF_FORKNOEXEC; it exits with 3
        await sys.sched_setscheduler(0, SCHED_FIFO, 10)
        await sys.write(1, (await cat(sys, "/proc/self/stat")).encode())
        await sys.write(w, b"x")
        return 3
    await sys.read(r, 1)
    await sys.nanosleep(0.01)  # the child exits meanwhile: a zombie until waited for
    await sys.write(1, (await cat(sys, f"/proc/{pid}/stat")).encode())
    await sys.waitpid(pid, 0)
"""


async def test_stat_has_linux_52_fields_with_real_values(run):
    r = await run(STAT_PROGRAM)
    me, child, zombie = (stat_fields(line) for line in r.stdout.decode().splitlines())
    assert [len(me), len(child), len(zombie)] == [52, 52, 52]
    # pid comm state ppid pgrp session tty_nr tpgid flags
    assert me[:9] == ["2", "(t)", "R", "1", "2", "1", "0", "-1", "0"]
    assert me[17:20] == ["25", "5", "1"]  # priority 20 + nice, nice, num_threads
    assert me[24] == str(2**64 - 1)  # rsslim: RLIMIT_RSS unlimited
    assert me[25] == str(0x400000)  # startcode: where executables are linked
    assert int(me[22]) == 40960 + 0 and me[27] == str(0x7FFFFFFFF000)  # vsize; startstack
    assert (me[37], me[38], me[39], me[40]) == ("17", "0", "0", "0")  # exit_signal processor rt_priority policy
    assert me[51] == "0"  # exit_code
    assert child[:9] == ["3", "(t)", "R", "2", "2", "1", "0", "-1", str(0x40)]  # PF_FORKNOEXEC
    assert (child[17], child[39], child[40]) == ("-11", "10", str(abi.SCHED_FIFO))  # -1 - rt_priority
    assert zombie[2] == "Z" and zombie[51] == str(3 << 8)  # the wait status it left
    assert zombie[22:24] == ["0", "0"]  # no mm any more: vsize, rss
    assert int(child[21]) >= int(me[21])  # starttime, in USER_HZ clock ticks since boot


@needs_host_proc
async def test_stat_field_kinds_match_the_hosts(run):
    r = await run(CAT, ["t", "/proc/self/stat"])
    ours = stat_fields(r.stdout.decode().strip())
    host = stat_fields(Path("/proc/self/stat").read_text().strip())
    assert len(host) == len(ours) == 52
    assert [kind(f) for f in ours] == [kind(f) for f in host]


async def test_stat_starttime_counts_virtual_clock_ticks(run):
    r = await run(
        """
async def main(sys, argv):
    await sys.nanosleep(2)
    if await sys.fork() == 0:
        fd = await sys.open("/proc/self/stat")
        await sys.write(1, await sys.read(fd, 4096))
        return 0
    await sys.waitpid(-1, 0)
"""
    )
    starttime = int(stat_fields(r.stdout.decode().strip())[21])
    assert 200 <= starttime < 210  # 2 s of virtual time at USER_HZ 100, and a few syscalls' ticks


# --- pgid and sid, in stat and status, in pid namespaces ------------------------------------------
NS_PROGRAM = """
from ukernel.abi import CLONE_NEWPID, SIGCHLD

async def child(sys, fds):
    r, w = fds
    before = (await sys.read(await sys.open("/proc/self/stat"), 4096)).decode().split()
    await sys.setsid()
    after = (await sys.read(await sys.open("/proc/self/status"), 4096)).decode()
    ns = [line for line in after.splitlines() if line.startswith("NS")]
    await sys.write(1, f"inside before setsid: pgrp {before[4]} session {before[5]}\\n".encode())
    await sys.write(1, ("inside " + " ".join(ns) + "\\n").encode())
    await sys.write(w, b"x")
    await sys.read(r, 1)  # stay alive until the parent has looked
    return 0

async def main(sys, argv):
    up_r, up_w = await sys.pipe()
    down_r, down_w = await sys.pipe()
    pid = await sys.clone(CLONE_NEWPID | SIGCHLD, child, (down_r, up_w))
    await sys.read(up_r, 1)
    stat = (await sys.read(await sys.open(f"/proc/{pid}/stat"), 4096)).decode().split()
    status = (await sys.read(await sys.open(f"/proc/{pid}/status"), 4096)).decode()
    ns = [line for line in status.splitlines() if line.startswith("NS")]
    await sys.write(1, f"outside stat: pid {stat[0]} pgrp {stat[4]} session {stat[5]}\\n".encode())
    await sys.write(1, ("outside " + " ".join(ns) + "\\n").encode())
    await sys.write(down_w, b"x")
    await sys.waitpid(pid, 0)
"""


async def test_pgid_and_sid_are_real_at_every_level(run):
    r = await run(NS_PROGRAM)
    assert r.stdout.decode().splitlines() == [
        "inside before setsid: pgrp 0 session 0",  # its group and session are outside: pid_vnr is 0
        "inside NStgid:\t1 NSpid:\t1 NSpgid:\t1 NSsid:\t1",
        "outside stat: pid 3 pgrp 3 session 3",
        "outside NStgid:\t3\t1 NSpid:\t3\t1 NSpgid:\t3\t1 NSsid:\t3\t1",
    ]


# --- /proc/PID/maps ---------------------------------------------------------------------------------
MAPS_PROGRAM = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

async def main(sys, argv):
    start = await sys.brk(0)
    await sys.brk(start + 8192)
    await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    await sys.write(1, await sys.read(await sys.open("/proc/self/maps"), 4096))
"""


async def test_maps_name_the_binary_heap_stack_and_anonymous_memory(run):
    r = await run(MAPS_PROGRAM)
    lines = r.stdout.decode().split("\n")[:-1]
    rows = [(line[:72].split(), line[73:]) for line in lines]
    names = [name for _, name in rows]
    assert names == ["/bin/t", "/bin/t", "[heap]", "/dev/zero (deleted)", "", "[stack]"]
    assert [head[1] for head, _ in rows] == ["r-xp", "rw-p", "rw-p", "rw-s", "rw-p", "rw-p"]
    code, data = rows[0][0], rows[1][0]
    assert code[2] == "00000000" and data[2] == "00001000"  # the data's offset in the file: after the code
    assert code[3:] == data[3:] and code[4] != "0"  # the same file: its device and inode
    assert lines[4].endswith(" 0 ")  # an anonymous mapping's line ends with the space before a name


@needs_host_proc
async def test_maps_names_start_at_the_hosts_column(run):
    host = [line for line in Path("/proc/self/maps").read_text().splitlines() if "[stack]" in line]
    r = await run(CAT, ["t", "/proc/self/maps"])
    ours = [line for line in r.stdout.decode().splitlines() if "[stack]" in line]
    assert host and ours
    assert ours[0].index("[stack]") == host[0].index("[stack]") == 73


# --- /proc/meminfo ------------------------------------------------------------------------------------
MEMINFO_PROGRAM = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

async def meminfo(sys):
    text = (await sys.read(await sys.open("/proc/meminfo"), 4096)).decode()
    await sys.write(1, text.encode() + b"--\\n")

async def main(sys, argv):
    await meminfo(sys)
    private = await sys.mmap(0, 10 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for page in range(10):
        await sys.poke(private + page * 4096, b"x")
    shared = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    await sys.poke(shared, b"y")
    await meminfo(sys)
"""


def meminfo(text: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()}


async def test_meminfo_counts_mm_frames(run):
    r = await run(MEMINFO_PROGRAM, memory="16M")
    before, after, _ = r.stdout.decode().split("--\n")
    b, a = meminfo(before), meminfo(after)
    assert b["MemTotal"] == a["MemTotal"] == 16 * 1024
    assert a["AnonPages"] - b["AnonPages"] == 40  # ten private pages touched
    assert a["Shmem"] - b["Shmem"] == 4 and a["Cached"] - b["Cached"] == 4  # one shared page
    assert b["MemFree"] - a["MemFree"] == 44
    for m in (a, b):  # every frame in use is accounted for
        assert m["MemTotal"] - m["MemFree"] == m["AnonPages"] + m["Shmem"] + m["PageTables"]
        assert m["SwapTotal"] == m["SwapFree"] == m["Buffers"] == 0
    assert a["Committed_AS"] - b["Committed_AS"] == 40  # the private writable mapping


@needs_host_proc
async def test_meminfo_layout_is_the_hosts(run):
    host = Path("/proc/meminfo").read_text().splitlines()
    r = await run(CAT, ["t", "/proc/meminfo"])
    ours = r.stdout.decode().splitlines()
    host_labels = [line.split(":")[0] for line in host]
    labels = [line.split(":")[0] for line in ours]
    assert [label for label in host_labels if label in labels] == labels  # a subset, in Linux's order
    for line in ours + [h for h in host if h.endswith(" kB") and len(h) == 27]:
        assert re.fullmatch(r"[A-Za-z0-9_()]+: +\d+ kB", line) and line.index(" kB") == 24, line


# --- /proc/uptime and /proc/loadavg ---------------------------------------------------------------
UPTIME_PROGRAM = """
async def main(sys, argv):
    for _ in range(2):
        await sys.write(1, await sys.read(await sys.open("/proc/uptime"), 100))
        await sys.nanosleep(2.5)
"""


async def test_uptime_is_the_virtual_clock_and_the_idle_cpus(run):
    r = await run(UPTIME_PROGRAM, cpus=2)
    first, second = (line.split() for line in r.stdout.decode().splitlines())
    assert all(re.fullmatch(r"\d+\.\d\d", x) for x in first + second)
    up = float(second[0]) - float(first[0])
    idle = float(second[1]) - float(first[1])
    assert 2.5 <= up < 2.6  # virtual seconds: the sleep and a few syscalls' ticks
    assert 2 * 2.5 - 0.1 <= idle <= 2 * up  # both CPUs idle while it slept


LOADAVG_PROGRAM = """
async def main(sys, argv):
    pid = await sys.fork()
    for _ in range(3000):  # two tasks runnable for 6000 ticks: past the first LOAD_FREQ sample
        await sys.sched_yield()
    if pid == 0:
        return 0
    await sys.write(1, await sys.read(await sys.open("/proc/loadavg"), 100))
    await sys.waitpid(pid, 0)
"""


async def test_loadavg_samples_the_runnable_tasks(run):
    r = await run(LOADAVG_PROGRAM)
    *loads, tasks, last = r.stdout.decode().split()
    # one sample with 2 active tasks, worked by hand: (2 * 2048 * (2048 - 1884) + 2047) // 2048 = 328,
    # shown as (328 + 10) * 100 >> 11 = 16: 0.16; likewise 0.03 and 0.01
    assert loads == ["0.16", "0.03", "0.01"]
    running, total = tasks.split("/")
    assert int(running) >= 1 and total == "3" and last == "3"


def test_load_average_arithmetic_is_linuxs():
    assert calc_load(0, EXP[0], 2 * FIXED_1) == 328
    assert [load_text(calc_load(0, e, 2 * FIXED_1)) for e in EXP] == ["0.16", "0.03", "0.01"]
    assert calc_load_n(1000, EXP[0], 0, 1) == calc_load(1000, EXP[0], 0)
    one = FIXED_1
    for _ in range(12):  # a minute with nothing to run: the 1-minute average falls to 1/e
        one = calc_load(one, EXP[0], 0)
    assert load_text(one) == "0.37" and load_text(calc_load_n(FIXED_1, EXP[0], 0, 12)) == "0.37"
    assert LOAD_FREQ == 5 * abi.HZ + 1


# --- /proc/self/environ and /proc/self/limits ------------------------------------------------------
async def test_environ_is_the_execs_envp(run):
    r = await run(
        """
async def main(sys, argv):
    if argv[1:] == ["again"]:
        await sys.write(1, await sys.read(await sys.open("/proc/self/environ"), 4096))
        return 0
    await sys.execve("/bin/t", ["t", "again"], {"HOME": "/root", "TERM": "dumb"})
""",
    )
    assert r.stdout == b"HOME=/root\0TERM=dumb\0"


LIMITS_PROGRAM = """
from ukernel.abi import RLIMIT_CPU, RLIMIT_NPROC

async def main(sys, argv):
    await sys.prlimit(RLIMIT_NPROC, 50)
    await sys.prlimit(RLIMIT_CPU, [5000, 8000])
    await sys.write(1, await sys.read(await sys.open("/proc/self/limits"), 4096))
"""


async def test_limits_show_the_real_rlimits(run):
    r = await run(LIMITS_PROGRAM)
    rows = {line[:25].rstrip(): line[26:].split() for line in r.stdout.decode().splitlines()[1:]}
    assert rows["Max processes"] == ["50", "50", "processes"]
    assert rows["Max cpu time"] == ["5000", "8000", "ticks"]  # RLIMIT_CPU counts virtual ticks
    assert rows["Max open files"] == ["1024", "1024", "files"]
    assert rows["Max stack size"] == [str(abi.STACK_SIZE)] * 2 + ["bytes"]
    assert rows["Max address space"] == ["unlimited", "unlimited", "bytes"]


@needs_host_proc
async def test_limits_layout_is_the_hosts(run):
    host = Path("/proc/self/limits").read_text().splitlines()
    r = await run(LIMITS_PROGRAM)
    ours = r.stdout.decode().splitlines()
    assert ours[0] == host[0]  # Limit / Soft Limit / Hard Limit / Units, padded as Linux pads them
    assert [line[:26] for line in ours] == [line[:26] for line in host]  # the names, in RLIMIT_* order
    units = [line[68:].replace("ticks     ", "seconds   ") for line in ours]  # RLIMIT_CPU's unit differs
    assert units == [line[68:] for line in host]
