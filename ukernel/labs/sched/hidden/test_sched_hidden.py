"""The sched lab's hidden tests: small ticket counts, two CPUs, and the MLFQ's priority boost."""

from ukernel.lab import test

MLFQ = "mlfq.py:Mlfq"


def slices(r, pid, start, end):
    """The lengths of the stretches ``pid`` ran that began in [start, end) (sched's pick events)."""
    picks = [e for e in r.trace if e["type"] == "sched" and e["op"] == "pick" and e["cpu"] == 0]
    return [
        b["ts"] - a["ts"] for a, b in zip(picks, picks[1:], strict=False) if a["pid"] == pid and start <= a["ts"] < end
    ]


def spinner_ticks(lab, r):
    lab.exited(r, 0)
    return [int(line.split()[1]) for line in r.stdout.decode().splitlines()]


@test(points=1)
def lottery_a_small_ticket_holder_still_runs(lab):
    r = lab.run(lab.helper("spinners.py"), ["spinners", "4000", "19", "-20"])  # 10 and 400 tickets
    small, big = spinner_ticks(lab, r)
    share = small / (small + big)
    lab.check(0.005 <= share <= 0.06, f"10 tickets against 400 got {share:.1%} of the CPU, expected about 2.4%")
    lab.clean(r)


@test(points=1)
def lottery_on_two_cpus(lab):
    r = lab.run("nginx", ["nginx", "4"], cpus=2)
    lab.exited(r, 0)
    lab.clean(r)


@test(points=2)
def mlfq_boost_puts_the_hogs_back_at_the_top(lab):
    r = lab.run(lab.helper("spinners.py"), ["spinners", "600", "0", "0"], sched=MLFQ)
    lab.exited(r, 0)
    for pid in (3, 4):  # the two spinners; after tick 200 both have sunk to the bottom level more than once
        short = [n for n in slices(r, pid, 200, 600) if n <= 5]
        lab.check(len(short) >= 3, f"spinner pid {pid} ran {slices(r, pid, 200, 600)} after tick 200: no boost?")
    lab.clean(r)


@test(points=1)
def mlfq_boost_period_is_the_setting(lab):
    settings = {"mlfq_levels": 3, "mlfq_quantum": 5, "mlfq_boost": 50}
    r = lab.run(lab.helper("spinners.py"), ["spinners", "600", "0", "0"], sched=MLFQ, sched_settings=settings)
    lab.exited(r, 0)
    short = [n for n in slices(r, 3, 200, 600) if n <= 5]
    lab.check(len(short) >= 6, f"with mlfq_boost = 50, spinner pid 3 ran {slices(r, 3, 200, 600)} after tick 200")
    lab.clean(r)


@test(points=1)
def mlfq_hogs_share_the_bottom_level_equally(lab):
    r = lab.run(lab.helper("spinners.py"), ["spinners", "1000", "0", "0"], sched=MLFQ)
    first, second = spinner_ticks(lab, r)
    share = first / (first + second)
    lab.check(abs(share - 0.5) <= 0.05, f"two equal hogs got {share:.1%} and {1 - share:.1%} of the CPU")
    lab.clean(r)
