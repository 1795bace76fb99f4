"""Choice points beyond entry/schedule (issue 17, item 1): several CPUs taking turns, which CPU a
task goes to, which futex waiter a wake picks, which of tied timers fires first."""

from __future__ import annotations

import io
import textwrap

from test_explore import RACE  # a fork and three writes: abc, bac, bca

import ukernel
from ukernel.cli import main as cli_main
from ukernel.trace import JsonlSink

TWO_BY_TWO = """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        await sys.write(1, b"a")
        await sys.write(1, b"b")
        return 0
    await sys.write(1, b"x")
    await sys.write(1, b"y")
    await sys.waitpid(pid, 0)
    return 0
"""

FUTEX = """
from ukernel.abi import CLONE_VM, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD

page = 0


async def waiter(sys, delay):
    await sys.nanosleep(delay)  # the waiters queue in the order of their delays: FIFO would pick the first
    await sys.futex(page, FUTEX_WAIT, 0)
    await sys.write(1, str(delay).encode() + b" ")
    return 0


async def main(sys, argv):
    global page
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    delays = [float(d) for d in argv[1:]]
    kids = [await sys.clone(CLONE_VM | SIGCHLD, waiter, d) for d in delays]
    await sys.nanosleep(1)  # every waiter waits by now
    await sys.futex(page, FUTEX_WAKE, len(kids) - 1)  # all but one: which, Linux leaves open
    for _ in kids[1:]:
        await sys.waitpid(-1, 0)
    await sys.write(1, b"| ")
    await sys.futex(page, FUTEX_WAKE, 1)
    await sys.waitpid(-1, 0)
    return 0
"""

TIMERS = """
from ukernel.abi import CLONE_VM, SIGCHLD

woke = []


async def sleeper(sys, seconds):
    await sys.nanosleep(seconds)
    woke.append(seconds)  # no syscall between the wake-up and this: the first woken is first here
    return 0


async def main(sys, argv):
    # armed a tick apart, a tick apart in length: in the run without preemption they expire together
    kids = [await sys.clone(CLONE_VM | SIGCHLD, sleeper, s) for s in (0.010, 0.009)]
    for kid in kids:
        await sys.waitpid(kid, 0)
    await sys.write(1, " ".join(str(s) for s in woke).encode())
    return 0
"""

CPU = """
from ukernel.abi import O_RDONLY, SIGCHLD


async def a(sys, arg):
    return 0


async def b(sys, arg):
    fd = await sys.open("/proc/self/stat", O_RDONLY)
    cpu = (await sys.read(fd, 4096)).rsplit(b")", 1)[1].split()[36]  # field 39: processor
    await sys.write(1, b"b" + cpu)
    return 0


async def main(sys, argv):
    await sys.clone(SIGCHLD, a)
    await sys.clone(SIGCHLD, b)  # a waits for its turn on cpu 1: both CPUs are as loaded
    return 0
"""


def program(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def choices(result: ukernel.Result, kind: str | None = None) -> list[dict]:
    """The run's choice events (of one kind), in order."""
    return [e for e in result.trace if e["type"] == "choice" and kind in (None, e["op"])]


def at(result: ukernel.Result, kind: str) -> int:
    """Where in the run's choice list its first point of ``kind`` is."""
    return next(i for i, e in enumerate(choices(result)) if e["op"] == kind)


def trace_bytes(path: str, schedule: list[int], **settings) -> str:
    """The trace as --trace writes it, less the wall-clock dur_us."""
    result = ukernel.run(path, schedule=schedule, **settings)
    out = io.StringIO()
    sink = JsonlSink(out)
    for event in result.trace:
        sink({k: v for k, v in event.items() if k != "dur_us"})
    return out.getvalue()


def assert_replays(path: str, found, **settings) -> None:
    for outcome in found.outcomes:
        replay = ukernel.run(path, schedule=outcome["schedule"], trace=False, **settings)
        assert (replay.stdout.decode(), replay.exit_code, replay.problems) == (outcome["stdout"], 0, [])


def test_two_cpus_take_turns_and_explore_finds_every_order(tmp_path):
    """With cpus=2 each task has a CPU of its own, so no CPU has a second task to switch to:
    only the turn between the CPUs reaches the child's write before the parent's."""
    race = program(tmp_path, "race", RACE)
    found = ukernel.explore(race, cpus=2)
    assert found.complete and not found.deadlocks and not found.violations
    assert sorted(found.stdouts()) == ["abc", "bac", "bca"]
    assert_replays(race, found, cpus=2)
    first = next(o["schedule"] for o in found.outcomes if o["stdout"] == "abc")
    replay = ukernel.run(race, schedule=first, cpus=2)
    picked = choices(replay)[len(first) - 1]
    child = next(e["pid"] for e in replay.trace if e["type"] == "syscall_enter" and e["op"] == "write")
    assert picked["options"][picked["chosen"]] == child  # the child, on the other CPU
    cpus = {pid: {e["cpu"] for e in replay.trace if e["type"] == "sched" and e["op"] == "pick" and e["pid"] == pid}
            for pid in (child, picked["pid"])}  # fmt: skip
    assert len(cpus[child]) == len(cpus[picked["pid"]]) == 1 and cpus[child] != cpus[picked["pid"]]
    assert trace_bytes(race, first, cpus=2) == trace_bytes(race, first, cpus=2)


def test_two_writes_each_give_all_six_orders_on_one_cpu_and_on_two(tmp_path):
    """A task preempted at an entry runs that call, then asks at its next entry again."""
    path = program(tmp_path, "twobytwo", TWO_BY_TWO)
    for cpus in (1, 2):
        found = ukernel.explore(path, cpus=cpus)
        assert found.complete
        assert sorted(found.stdouts()) == ["abxy", "axby", "axyb", "xaby", "xayb", "xyab"]


def test_the_cli_replay_hint_names_the_cpus(tmp_path, capsys):
    """A choice list is for its settings: the hint explore prints replays the row it names."""
    race = program(tmp_path, "race", RACE)
    assert cli_main(["explore", "--cpus", "2", race]) == 0
    text = capsys.readouterr().out
    hint = text.splitlines()[-1]
    assert hint.startswith("replay one: ukernel run --cpus 2 --schedule ") and hint.endswith(race)
    words = hint.removeprefix("replay one: ukernel ").split()
    last_row = [line for line in text.splitlines() if "->" in line][-1]
    assert cli_main(words) == 0
    assert repr(capsys.readouterr().out) in last_row


def test_without_a_chooser_two_cpus_ask_nothing(tmp_path):
    race = program(tmp_path, "race", RACE)
    result = ukernel.run(race, cpus=2)
    assert result.exit_code == 0 and choices(result) == [] and result.schedule == []


def test_nginx_on_two_cpus_has_few_points():
    """The turn is asked only where another CPU has a task waiting: nginx 4 stays small."""
    one = ukernel.run("nginx", argv=["nginx", "4"], schedule=[])
    two = ukernel.run("nginx", argv=["nginx", "4"], cpus=2, schedule=[])
    assert (one.exit_code, two.exit_code) == (0, 0)
    kinds = {e["op"] for e in choices(two)}
    assert kinds <= {"entry", "schedule", "turn", "cpu"} and "turn" in kinds
    assert len(two.schedule) <= 2 * len(one.schedule)


def test_which_futex_waiter_a_wake_picks_is_a_choice(tmp_path):
    """Two waiters queued in a fixed order, one FUTEX_WAKE: oldest-first alone would always wake
    0.1; the futex point reaches 0.2 too."""
    path = program(tmp_path, "futex", FUTEX)
    argv = ["futex", "0.1", "0.2"]
    found = ukernel.explore(path, argv)
    assert found.complete and not found.deadlocks and not found.violations
    assert sorted(found.stdouts()) == ["0.1 | 0.2 ", "0.2 | 0.1 "]
    for outcome in found.outcomes:
        replay = ukernel.run(path, argv, schedule=outcome["schedule"], trace=False)
        assert (replay.stdout.decode(), replay.problems) == (outcome["stdout"], [])
    plain = ukernel.run(path, argv, schedule=[])
    (point,) = choices(plain, "futex")
    assert (point["syscall"], len(point["options"]), plain.stdout) == ("futex_wake", 2, b"0.1 | 0.2 ")
    assert trace_bytes(path, [0] * at(plain, "futex") + [1], argv=argv) == trace_bytes(
        path, [0] * at(plain, "futex") + [1], argv=argv
    )


def test_a_futex_wake_of_two_of_three_picks_a_set_not_an_order(tmp_path):
    """3 waiters, wake 2: 3 sets, each one path (the picks go in queue order), not 6 orders."""
    path = program(tmp_path, "futex", FUTEX)
    argv = ["futex", "0.1", "0.2", "0.3"]
    plain = ukernel.run(path, argv, schedule=[], trace=True)
    points = choices(plain, "futex")
    assert [len(p["options"]) for p in points] == [2, 2]
    pids = points[0]["options"] + points[1]["options"][-1:]
    assert len(set(pids)) == 3
    before = [0] * at(plain, "futex")
    left = {}
    for picks in ([0, 0], [0, 1], [1]):
        run = ukernel.run(path, argv, schedule=before + picks)
        assert run.problems == [] and len(choices(run, "futex")) == len(picks)
        left[tuple(picks)] = run.stdout.decode().split("| ")[1]
    assert left == {(0, 0): "0.3 ", (0, 1): "0.2 ", (1,): "0.1 "}


def test_which_of_two_tied_timers_fires_first_is_a_choice(tmp_path):
    path = program(tmp_path, "timers", TIMERS)
    found = ukernel.explore(path)
    assert found.complete and not found.deadlocks and not found.violations
    assert sorted(found.stdouts()) == ["0.009 0.01", "0.01 0.009"]
    assert_replays(path, found)
    plain = ukernel.run(path, schedule=[])
    (tie,) = choices(plain, "timer")
    assert tie["syscall"] == "hrtimer_interrupt" and len(tie["options"]) == 2
    before = [0] * at(plain, "timer")
    assert plain.stdout == b"0.01 0.009"  # armed first: woken first, as without a chooser
    flipped = ukernel.run(path, schedule=before + [1])
    assert (flipped.stdout, flipped.problems) == (b"0.009 0.01", [])
    assert trace_bytes(path, before + [1]) == trace_bytes(path, before + [1])


def test_which_of_two_tied_cpus_a_new_task_goes_to_is_a_choice(tmp_path):
    """b is made while main runs on one CPU and a waits on the other: select_task_rq ties."""
    path = program(tmp_path, "cpu", CPU)
    plain = ukernel.run(path, cpus=2, schedule=[])
    (tie,) = choices(plain, "cpu")
    assert (tie["syscall"], tie["options"], tie["chosen"]) == ("wake_up_new_task", [0, 1], 0)
    before = [0] * at(plain, "cpu")
    placed = {}
    for cpu in (0, 1):
        run = ukernel.run(path, cpus=2, schedule=before + [cpu])
        assert run.problems == [] and run.stdout in (b"b0", b"b1")
        events = run.trace
        asked = next(i for i, e in enumerate(events) if e["type"] == "choice" and e["op"] == "cpu")
        placed[cpu] = next(e["cpu"] for e in events[asked:] if e["type"] == "sched" and e["op"] == "enqueue")
    assert placed == {0: 0, 1: 1}
    assert trace_bytes(path, before + [1], cpus=2) == trace_bytes(path, before + [1], cpus=2)
