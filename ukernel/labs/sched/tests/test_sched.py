"""The sched lab's visible tests: run them with `ukernel lab grade sched DIR` (docs/labs.md).

The driver programs beside this file (spinners.py, latency.py, newcomer.py)
run in the kernel with your class as the class of every SCHED_OTHER task;
their parent is SCHED_FIFO, outside your class, so it wakes on time.
"""

from ukernel.lab import test

MLFQ = "mlfq.py:Mlfq"


def shares(lab, r):
    """{nice: share of the CPU} from spinners' "NICE TICKS" lines."""
    lab.exited(r, 0)
    rows = [line.split() for line in r.stdout.decode().splitlines()]
    total = sum(int(ticks) for _, ticks in rows) or 1
    return [int(ticks) / total for _, ticks in rows]


def within(lab, measured, expected, tolerance):
    shown = ", ".join(f"{m:.1%}" for m in measured)
    wanted = ", ".join(f"{e:.1%}" for e in expected)
    lab.check(
        all(abs(m - e) <= tolerance for m, e in zip(measured, expected, strict=True)),
        f"CPU shares {shown}; expected {wanted} within {tolerance:.0%}",
    )


@test(points=3)
def lottery_shares_follow_the_tickets(lab):
    r = lab.run(lab.helper("spinners.py"), ["spinners", "3000", "10", "0", "-10"])  # 100, 200, 300 tickets
    within(lab, shares(lab, r), [1 / 6, 2 / 6, 3 / 6], 0.04)
    lab.clean(r)


@test(points=1)
def lottery_equal_tickets_share_equally(lab):
    r = lab.run(lab.helper("spinners.py"), ["spinners", "2000", "0", "0"])
    within(lab, shares(lab, r), [1 / 2, 1 / 2], 0.08)
    lab.clean(r)


@test(points=1)
def lottery_runs_programs_that_fork_sleep_and_exit(lab):
    for program, argv in (("nginx", ["nginx", "3"]), ("sleepers", ["sleepers", "30", "10", "20"])):
        r = lab.run(program, argv)
        lab.exited(r, 0)
        lab.clean(r)


@test(points=3)
def mlfq_runs_an_interactive_task_soon_after_it_wakes(lab):
    r = lab.run(lab.helper("latency.py"), ["latency", "2", "30", "20"], sched=MLFQ)
    lab.exited(r, 0)
    latencies = [int(t) for t in r.stdout.split()]
    fast = sum(t <= 2 for t in latencies)  # its own two syscalls: it ran at once
    lab.check(len(latencies) == 30 and fast >= 22, f"{fast} of 30 wake-ups ran at once; latencies {latencies}")
    lab.check(max(latencies) <= 12, f"a wake-up waited {max(latencies)} ticks; latencies {latencies}")
    lab.clean(r)


@test(points=2)
def mlfq_a_new_task_runs_before_a_demoted_hog(lab):
    settings = {"mlfq_levels": 3, "mlfq_quantum": 5, "mlfq_boost": 100_000}  # no boost in this test
    r = lab.run(lab.helper("newcomer.py"), ["newcomer", "200", "15"], sched=MLFQ, sched_settings=settings)
    lab.exited(r, 0)
    work, elapsed = map(int, r.stdout.split())
    lab.check(elapsed <= work + 2, f"the newcomer's {work} ticks of work took {elapsed} ticks: the hog ran between")
    lab.clean(r)


@test(points=1)
def mlfq_runs_programs_that_fork_sleep_and_exit(lab):
    for program, argv in (("nginx", ["nginx", "3"]), ("pthreads", ["pthreads", "3", "20"])):
        r = lab.run(program, argv, sched=MLFQ)
        lab.exited(r, 0)
        lab.clean(r)
