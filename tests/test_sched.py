"""Scheduling: CFS shares, real-time classes, CPUs and affinity, a student's class, the sched syscalls' errnos."""

from __future__ import annotations

from collections import deque

import pytest

import ukernel
from services.sched import SchedService
from services.sched.classes import SCHED_PRIO_TO_WEIGHT, TICK_NSEC, FairClass, SchedClass, SchedEntity
from ukernel import abi
from ukernel.testing import service_client

SPINNERS = """
from ukernel.abi import SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD, SIGKILL


async def spin(sys, nice):
    await sys.nice(nice)
    while True:
        await sys.getppid()


async def main(sys, argv):
    await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)  # the referee always gets the CPU
    pids = [await sys.clone(SIGCHLD, spin, int(n)) for n in argv[2:]]
    await sys.nanosleep(int(argv[1]) / 1000)
    ticks = []
    for pid in pids:
        await sys.kill(pid, SIGKILL)
        ticks.append((await sys.wait4(pid, 0))[2]["utime"])
    await sys.write(1, " ".join(map(str, ticks)).encode())
    return 0
"""


def picks(trace: list[dict]) -> list[tuple[int, int]]:
    """(cpu, pid) of every dispatch, in order."""
    return [(e["cpu"], e["pid"]) for e in trace if e["type"] == "sched" and e["op"] == "pick"]


def enters(trace: list[dict], pid: int) -> list[dict]:
    return [e for e in trace if e["type"] == "syscall_enter" and e["pid"] == pid]


# --- CFS ---------------------------------------------------------------------------------------
async def test_cfs_shares_follow_the_weights_of_nice_0_and_nice_5(run):
    r = await run(SPINNERS, ["t", "4000", "0", "5"], sched="cfs")
    nice0, nice5 = map(int, r.stdout.split())
    ratio = nice0 / nice5
    expected = SCHED_PRIO_TO_WEIGHT[20] / SCHED_PRIO_TO_WEIGHT[25]  # 1024 / 335 = 3.06
    assert abs(ratio - expected) / expected < 0.03, (nice0, nice5, ratio)
    assert nice0 + nice5 >= 3900  # the spinners had the CPU all the time the referee slept


async def test_under_round_robin_nice_changes_nothing(run):
    r = await run(SPINNERS, ["t", "1000", "0", "5"], sched="rr")
    nice0, nice5 = map(int, r.stdout.split())
    assert abs(nice0 - nice5) <= 10  # one slice apart at most


async def test_a_new_task_starts_a_vslice_after_min_vruntime():
    """place_entity with START_DEBIT: the child is behind everyone already queued."""
    settings = {"sched_latency": 24, "sched_min_granularity": 3, "sched_wakeup_granularity": 4}
    rq = FairClass(0, settings)
    parent = SchedEntity(1)
    rq.enqueue(parent, "new")
    assert rq.pick_next() is parent
    rq.task_tick(parent, 10)
    assert parent.vruntime == 10 * TICK_NSEC and rq.min_vruntime == 10 * TICK_NSEC
    child = SchedEntity(2)
    rq.task_fork(child, parent)
    rq.enqueue(child, "new")
    assert child.vruntime == 10 * TICK_NSEC + 12 * TICK_NSEC  # two tasks: a 12-tick slice each
    rq.put_prev(parent)
    assert rq.pick_next() is parent  # the parent runs on first


async def test_sched_service_rejects_bad_policies_and_priorities():
    async with service_client(SchedService(policy="cfs")) as c:
        await c.call("sched_fork", task=1)
        for policy, prio in ((4, 0), (abi.SCHED_DEADLINE, 0), (abi.SCHED_FIFO, 0), (abi.SCHED_RR, 100), (0, 1)):
            with pytest.raises(OSError) as info:
                await c.call("sched_setscheduler", task=1, policy=policy, priority=prio)
            assert info.value.errno == abi.EINVAL
        with pytest.raises(OSError) as info:
            await c.call("set_user_nice", task=1, nice=20)
        assert info.value.errno == abi.EINVAL
        await c.call("sched_cancel_fork", task=1)
        assert (await c.call("accounting"))["entities"] == 0


# --- real-time classes -------------------------------------------------------------------------
async def test_fifo_starves_cfs_while_it_is_runnable(run):
    r = await run(
        """
        from ukernel.abi import SCHED_FIFO, SCHED_RESET_ON_FORK, SIGCHLD

        async def cfs(sys, arg):
            for _ in range(20):
                await sys.getppid()
            return 0

        async def fifo(sys, arg):
            await sys.sched_setscheduler(0, SCHED_FIFO, 10)
            for _ in range(300):
                await sys.getppid()
            return 0

        async def main(sys, argv):
            await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 99)
            a = await sys.clone(SIGCHLD, cfs)
            b = await sys.clone(SIGCHLD, fifo)
            await sys.write(1, f"{a} {b}\\n".encode())
            for _ in range(2):
                await sys.waitpid(-1, 0)
            return 0
        """,
        sched="cfs",
    )
    cfs, fifo = map(int, r.stdout.split())
    fifo_calls = enters(r.trace, fifo)
    cfs_calls = enters(r.trace, cfs)
    assert len(fifo_calls) == 302  # sched_setscheduler, 300 getppid, exit(0) when fn returns (glibc's clone)
    # The CFS task had one tick before the FIFO task raised itself, then nothing until the FIFO task was done.
    after = [e for e in cfs_calls if e["seq"] > fifo_calls[0]["seq"]]
    assert after and all(e["seq"] > fifo_calls[-1]["seq"] for e in after)
    assert len(cfs_calls) == 21  # 20 getppid, exit(0)


async def test_round_robin_rotates_equal_real_time_priorities(run):
    r = await run(
        """
        from ukernel.abi import SCHED_RR, SIGCHLD

        async def spin(sys, arg):
            for _ in range(30):
                await sys.getppid()
            return 0

        async def main(sys, argv):
            await sys.sched_setscheduler(0, SCHED_RR, 50)  # children inherit SCHED_RR 50
            for _ in range(3):
                await sys.clone(SIGCHLD, spin)
            for _ in range(3):
                await sys.waitpid(-1, 0)
            return 0
        """,
        sched_settings={"sched_rr_timeslice": 5},
    )
    order = [pid for _, pid in picks(r.trace) if pid in (3, 4, 5)]
    assert order[:9] == [3, 4, 5, 3, 4, 5, 3, 4, 5]


async def test_policy_and_nice_are_inherited_and_reset_on_fork(run):
    r = await run(
        """
        from ukernel.abi import SCHED_FIFO, SCHED_OTHER, SCHED_RESET_ON_FORK, SIGCHLD

        async def report(sys, arg):
            policy = await sys.sched_getscheduler(0)
            prio = (await sys.sched_getparam(0)).sched_priority
            nice = await sys.nice(0)
            await sys.write(1, f"{arg}: {policy:#x} {prio} {nice}\\n".encode())
            return 0

        async def main(sys, argv):
            await sys.nice(-5)
            await sys.sched_setscheduler(0, SCHED_FIFO, 7)
            await sys.waitpid(await sys.clone(SIGCHLD, report, "inherit"), 0)
            await sys.sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, 7)
            await report(sys, "parent")
            await sys.waitpid(await sys.clone(SIGCHLD, report, "reset"), 0)
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        "inherit: 0x1 7 -5",
        "parent: 0x40000001 7 -5",
        "reset: 0x0 0 0",  # SCHED_OTHER, and a negative nice back to 0
    ]


# --- CPUs -----------------------------------------------------------------------------------------
async def test_fork_balancing_spreads_new_tasks_over_idle_cpus(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD

        async def spin(sys, arg):
            for _ in range(200):
                await sys.getppid()
            return 0

        async def main(sys, argv):
            for _ in range(3):
                await sys.clone(SIGCHLD, spin)
            for _ in range(3):
                await sys.waitpid(-1, 0)
            return 0
        """,
        cpus=4,
    )
    first = {}
    for cpu, pid in picks(r.trace):
        first.setdefault(pid, cpu)
    assert first[1] == 0 and first[2] == 1  # init forked the program while on CPU 0
    assert sorted(first[p] for p in (3, 4, 5)) == [0, 2, 3]  # init sleeps in wait4: CPU 0 is idle again


async def test_affinity_is_respected_and_reported(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD

        async def spin(sys, arg):
            await sys.sched_setaffinity(0, {1})
            for _ in range(40):
                await sys.getppid()
                await sys.sched_yield()
            return 0

        async def main(sys, argv):
            pid = await sys.clone(SIGCHLD, spin)
            other = await sys.clone(SIGCHLD, spin)
            for _ in range(4):
                await sys.sched_yield()
            await sys.write(1, f"{sorted(await sys.sched_getaffinity(pid))} {sorted(await sys.sched_getaffinity())}\\n".encode())
            for _ in range(2):
                await sys.waitpid(-1, 0)
            return 0
        """,
        cpus=2,
    )
    assert r.stdout == b"[1] [0, 1]\n"
    for pid in (3, 4):
        calls = enters(r.trace, pid)
        since = calls[0]["seq"]  # sched_setaffinity: from its return on, only CPU 1
        later = [
            cpu
            for e in r.trace
            if e["type"] == "sched" and e["op"] == "pick" and e["pid"] == pid and e["seq"] > since
            for cpu in [e["cpu"]]
        ]
        assert later and set(later) == {1}


async def test_stats_count_switches_and_migrations():
    async with ukernel.boot(cpus=2, sched="cfs") as k:
        task = await k.spawn("/bin/hello", ["hello"])
        stat = await k.call("sched", "sched_stat", {"task": task.id})
        assert {key: stat[key] for key in ("policy", "prio", "static_prio", "normal_prio", "nice")} == {
            "policy": abi.SCHED_OTHER,
            "prio": 120,
            "static_prio": 120,
            "normal_prio": 120,
            "nice": 0,
        }
        assert {"vruntime", "nr_switches", "nr_migrations"} <= stat.keys()
        await k.wait_exit(task)
        assert await k.check_invariants() == []


# --- a student's class ---------------------------------------------------------------------------
class Lifo(SchedClass):
    """A student's (deliberately odd) class: the newest runnable task runs first, 4-tick slices."""

    name = "lifo"

    def __init__(self, cpu, settings):
        super().__init__(cpu, settings)
        self.stack = deque()

    def enqueue(self, se, why):
        self.stack.append(se)

    def dequeue(self, se, why):
        if se in self.stack:
            self.stack.remove(se)

    def pick_next(self):
        return self.stack.pop() if self.stack else None

    def queued(self):
        return list(reversed(self.stack))

    def time_slice(self, se):
        return 4


@pytest.mark.parametrize(
    ("program", "argv"),
    [("nginx", ["nginx", "4"]), ("forktest", ["forktest", "10"]), ("pthreads", ["pthreads", "3", "10"])],
)
@pytest.mark.parametrize("cpus", [1, 2])
async def test_a_student_class_by_dotted_name_runs_the_demos(program, argv, cpus):
    reference = await ukernel.run_async(program, argv)
    got = await ukernel.run_async(program, argv, sched=f"{__name__}:Lifo", cpus=cpus)
    assert got.problems == []
    assert (got.exit_code, sorted(got.stdout.splitlines())) == (0, sorted(reference.stdout.splitlines()))
    # The class really ran them: slices of 4 ticks show as preemptions after 4 kernel entries.
    assert any(e["op"] == "schedule" and e["args"]["state"] == "preempted" for e in got.trace if e["type"] == "request")


def test_unknown_classes_are_refused_before_boot():
    for name in ("nosuch", "nosuch.module:X", f"{__name__}:SPINNERS", "ukernel.abi:SchedClass"):
        with pytest.raises(ValueError):
            ukernel.run("hello", sched=name)
    with pytest.raises(ValueError, match="does not define dequeue, pick_next"):
        ukernel.run("hello", sched=f"{__name__}:HalfAClass")


class HalfAClass(SchedClass):
    """A student's class that forgot two of the three methods a class must define."""

    def enqueue(self, se, why):
        pass


# --- errnos -----------------------------------------------------------------------------------------
async def test_sched_syscalls_errnos(run):
    r = await run(
        """
        import os
        from ukernel.abi import PRIO_PGRP, PRIO_PROCESS, PRIO_USER, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE, SCHED_OTHER

        CASES = [
            ("setscheduler bad policy", lambda s: s.sched_setscheduler(0, 4, 0)),
            ("setscheduler deadline", lambda s: s.sched_setscheduler(0, SCHED_DEADLINE, 0)),
            ("setscheduler fifo 0", lambda s: s.sched_setscheduler(0, SCHED_FIFO, 0)),
            ("setscheduler fifo 100", lambda s: s.sched_setscheduler(0, SCHED_FIFO, 100)),
            ("setscheduler other 1", lambda s: s.sched_setscheduler(0, SCHED_OTHER, 1)),
            ("setscheduler pid -1", lambda s: s.sched_setscheduler(-1, SCHED_OTHER, 0)),
            ("setscheduler no pid", lambda s: s.sched_setscheduler(999, SCHED_OTHER, 0)),
            ("getscheduler no pid", lambda s: s.sched_getscheduler(999)),
            ("setparam other 5", lambda s: s.sched_setparam(0, os.sched_param(5))),
            ("getparam no pid", lambda s: s.sched_getparam(999)),
            ("priority_max bad", lambda s: s.sched_get_priority_max(4)),
            ("setpriority bad which", lambda s: s.setpriority(9, 0, 0)),
            ("setpriority no pid", lambda s: s.setpriority(PRIO_PROCESS, 999, 0)),
            ("getpriority no group", lambda s: s.getpriority(PRIO_PGRP, 999)),
            ("getpriority no user", lambda s: s.getpriority(PRIO_USER, 1000)),
            ("setaffinity none", lambda s: s.sched_setaffinity(0, {5})),
            ("setaffinity empty", lambda s: s.sched_setaffinity(0, set())),
            ("getaffinity no pid", lambda s: s.sched_getaffinity(999)),
        ]

        async def main(sys, argv):
            for name, call in CASES:
                try:
                    await call(sys)
                    await sys.write(1, f"{name}: ok\\n".encode())
                except OSError as exc:
                    await sys.write(1, f"{name}: {exc.errno}\\n".encode())
            out = [
                await sys.nice(100), await sys.nice(-100), await sys.nice(25),
                await sys.sched_get_priority_min(SCHED_FIFO), await sys.sched_get_priority_max(SCHED_FIFO),
                await sys.sched_get_priority_max(SCHED_IDLE),
            ]
            await sys.setpriority(PRIO_PROCESS, 0, 7)
            out.append(await sys.getpriority(PRIO_PROCESS, 0))
            await sys.setpriority(PRIO_PGRP, 0, 3)
            out.append(await sys.getpriority(PRIO_PGRP, 0))
            out.append(await sys.getpriority(PRIO_USER, 0))
            await sys.sched_setscheduler(0, SCHED_IDLE, 0)
            out.append(await sys.sched_getscheduler(0))
            await sys.write(1, f"{out}\\n".encode())
            return 0
        """,
        cpus=2,
    )
    lines = r.stdout.decode().splitlines()
    einval, esrch = abi.EINVAL, abi.ESRCH
    assert lines[:-1] == [
        f"setscheduler bad policy: {einval}",
        f"setscheduler deadline: {einval}",
        f"setscheduler fifo 0: {einval}",
        f"setscheduler fifo 100: {einval}",
        f"setscheduler other 1: {einval}",
        f"setscheduler pid -1: {einval}",
        f"setscheduler no pid: {esrch}",
        f"getscheduler no pid: {esrch}",
        f"setparam other 5: {einval}",
        f"getparam no pid: {esrch}",
        f"priority_max bad: {einval}",
        f"setpriority bad which: {einval}",
        f"setpriority no pid: {esrch}",
        f"getpriority no group: {esrch}",
        f"getpriority no user: {esrch}",
        f"setaffinity none: {einval}",
        f"setaffinity empty: {einval}",
        f"getaffinity no pid: {esrch}",
    ]
    # nice clamps to 19 and -20; rt range 1..99; setpriority/getpriority; SCHED_IDLE
    # the group is the program's alone (init made it a job of its own): PRIO_USER's best is init's 0
    assert lines[-1] == f"[19, -20, 5, 1, 99, 0, 7, 3, 0, {abi.SCHED_IDLE}]"


# --- determinism ------------------------------------------------------------------------------------
def _events(result: ukernel.Result) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "dur_us"} for e in result.trace]


async def test_same_seed_same_trace_on_one_cpu():
    first = await ukernel.run_async("schedtest", ["schedtest", "300"], sched="cfs", seed=7)
    second = await ukernel.run_async("schedtest", ["schedtest", "300"], sched="cfs", seed=7)
    assert _events(first) == _events(second)


def _jsonl(result: ukernel.Result) -> bytes:
    """The trace as --trace writes it, less the wall-clock dur_us: compared byte for byte."""
    import io

    from ukernel.trace import JsonlSink

    out = io.StringIO()
    sink = JsonlSink(out)
    for event in _events(result):
        sink(event)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("program", "argv", "settings"),
    [
        ("nginx", ["nginx", "4"], {}),
        ("schedtest", ["schedtest", "200"], {"sched": "cfs"}),
        ("sh", ["sh"], {"stdin": b"ls / | cat | cat\nps\n"}),
    ],
)
async def test_two_cpus_same_seed_same_bytes_and_another_seed_another_interleaving(program, argv, settings):
    runs = [await ukernel.run_async(program, argv, cpus=2, seed=seed, **settings) for seed in (1, 1, 2)]
    assert all(r.problems == [] for r in runs)
    assert _jsonl(runs[0]) == _jsonl(runs[1])
    assert _jsonl(runs[0]) != _jsonl(runs[2])
    assert {e["cpu"] for e in runs[0].trace if e["type"] == "sched" and e["op"] == "pick"} == {0, 1}


# --- the trace ----------------------------------------------------------------------------------------
async def test_scheduler_events_and_the_gantt_view():
    from ukernel.trace import views

    # a seed whose interleaving migrates a task (not every seed's does)
    r = await ukernel.run_async("schedtest", ["schedtest", "200"], sched="cfs", cpus=2, seed=2)
    assert r.problems == []
    ops = {e["op"] for e in r.trace if e["type"] == "sched"}
    assert ops >= {"pick", "enqueue", "preempt", "sleep", "wake", "idle", "migrate"}
    rows = views.cpu_segments(r.trace)
    assert sorted(rows) == [0, 1]
    for segments in rows.values():  # bars on one CPU never overlap
        assert all(a[1] <= b[0] for a, b in zip(segments, segments[1:], strict=False))
    svg = views.gantt(r.trace)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<rect") == sum(len(s) for s in rows.values())
