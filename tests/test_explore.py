"""ukernel explore (issue 17): choice points, replay by choice list, the search and its outcomes."""

from __future__ import annotations

import io
import json
import logging
import textwrap

import ukernel
from ukernel.cli import main as cli_main
from ukernel.trace import JsonlSink

RACE = """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        await sys.write(1, b"a")
        return 0
    await sys.write(1, b"b")
    await sys.write(1, b"c")
    await sys.waitpid(pid, 0)
    return 0
"""

PIPES = """
async def main(sys, argv):
    a_r, a_w = await sys.pipe()
    b_r, b_w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.read(b_r, 1)  # waits for the parent, which waits for it
        await sys.write(a_w, b"x")
        return 0
    await sys.read(a_r, 1)
    await sys.write(b_w, b"y")
    await sys.waitpid(pid, 0)
    return 0
"""

INDEPENDENT = """
async def main(sys, argv):
    pid = await sys.fork()
    for _ in range(20):
        await sys.getpid()
    if pid:
        await sys.waitpid(pid, 0)
        await sys.write(1, b"done\\n")
    return 0
"""

DEVNULL = """
from ukernel.abi import O_WRONLY


async def main(sys, argv):
    fd = await sys.open("/dev/null", O_WRONLY)
    pid = await sys.fork()
    for _ in range(3):
        await sys.write(fd, b"x")
    if pid:
        await sys.waitpid(pid, 0)
        await sys.write(1, b"done\\n")
    return 0
"""

ASSERTS = """
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.write(w, b"c")
        return 0
    await sys.write(w, b"p")
    await sys.waitpid(pid, 0)
    assert await sys.read(r, 1) == b"p", "the child wrote first"
    return 0
"""


def program(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_a_race_with_exactly_three_outcomes_each_replaying_to_itself(tmp_path):
    race = program(tmp_path, "race", RACE)
    found = ukernel.explore(race)
    assert found.complete and not found.deadlocks and not found.violations
    assert sorted(found.stdouts()) == ["abc", "bac", "bca"]
    assert sum(o["count"] for o in found.outcomes) <= found.runs
    for outcome in found.outcomes:
        replay = ukernel.run(race, schedule=outcome["schedule"], trace=False)
        assert (replay.stdout.decode(), replay.exit_code, replay.problems) == (outcome["stdout"], 0, [])


def test_a_deadlock_and_its_wait_for_graph(tmp_path):
    found = ukernel.explore(program(tmp_path, "pipes", PIPES))
    assert found.complete and found.outcomes == [] and len(found.deadlocks) == 1
    waits = {(w["pid"], w["syscall"], w["waits_for"].split(" inode")[0]) for w in found.deadlocks[0]["waits"]}
    assert waits == {
        (2, "read", "read end of pipe"),
        (3, "read", "read end of pipe"),
        (1, "wait4", "wait4 for any child"),
    }
    replay = ukernel.run(program(tmp_path, "pipes", PIPES), schedule=found.deadlocks[0]["schedule"], trace=False)
    assert [(r["pid"], r["syscall"]) for r in replay.hung] == [(1, "wait4"), (2, "read"), (3, "read")]


def test_independent_processes_are_not_interleaved_pointlessly(tmp_path):
    """Two processes, 20 syscalls each that touch nothing the other sees: a handful of runs."""
    found = ukernel.explore(program(tmp_path, "indep", INDEPENDENT))
    assert found.complete and found.stdouts() == {"done\n"}
    assert found.runs <= 10


def test_a_replayed_schedule_gives_the_same_trace_byte_for_byte(tmp_path):
    race = program(tmp_path, "race", RACE)
    found = ukernel.explore(race)
    schedule = next(o["schedule"] for o in found.outcomes if o["stdout"] == "bac")

    def trace() -> str:
        """The trace as --trace writes it, less the wall-clock dur_us."""
        result = ukernel.run(race, schedule=schedule)
        assert result.stdout == b"bac" and result.schedule[: len(schedule)] == schedule
        events = [{k: v for k, v in e.items() if k != "dur_us"} for e in result.trace]
        assert [e["chosen"] for e in events if e["type"] == "choice"] == result.schedule
        out = io.StringIO()
        sink = JsonlSink(out)
        for event in events:
            sink(event)
        return out.getvalue()

    assert trace() == trace()


def test_jobs_2_finds_what_jobs_1_finds(tmp_path):
    race = program(tmp_path, "race", RACE)
    one, two = ukernel.explore(race, jobs=1), ukernel.explore(race, jobs=2)
    assert one.stdouts() == two.stdouts() == {"abc", "bac", "bca"}
    assert one.complete and two.complete


def test_state_caching_merges_orders_that_reach_one_state(tmp_path):
    """Writes to /dev/null in either order leave one state: explored once, not once per path."""
    writes = program(tmp_path, "writes", DEVNULL)
    cached, plain = ukernel.explore(writes, reduction=False), ukernel.explore(writes, reduction=False, cache=False)
    assert cached.stdouts() == plain.stdouts() == {"done\n"} and cached.complete and plain.complete
    assert cached.runs < plain.runs


def test_a_failed_assert_is_an_outcome_naming_its_line(tmp_path):
    found = ukernel.explore(program(tmp_path, "asserts", ASSERTS))
    failed = [o for o in found.outcomes if o.get("assertion")]
    line = (
        textwrap.dedent(ASSERTS).splitlines().index('    assert await sys.read(r, 1) == b"p", "the child wrote first"')
        + 1
    )
    assert [o["assertion"] for o in failed] == [f"assertion failed at /bin/asserts:{line}"]
    assert failed[0]["exit_status"] == 1
    assert [o["stdout"] for o in found.outcomes if not o.get("assertion")] == [""]


def test_bounds_make_it_incomplete(tmp_path):
    race = program(tmp_path, "race", RACE)
    assert not ukernel.explore(race, max_runs=2).complete
    sampled = ukernel.explore(race, strategy="random", max_runs=5)
    assert sampled.runs == 5 and not sampled.complete and sampled.stdouts() <= {"abc", "bac", "bca"}
    assert ukernel.explore(race, strategy="pct", max_runs=3).runs == 3


def test_forkhello_has_both_orders():
    found = ukernel.explore("forkhello")
    assert found.complete and found.stdouts() == {"Hello\nWorld\n", "World\nHello\n"}


def test_the_cli_table_and_json(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert cli_main(["explore", "--json", str(out), program(tmp_path, "race", RACE)]) == 0
    text = capsys.readouterr().out
    assert "complete: every outcome was seen" in text and "3 outcomes:" in text
    data = json.loads(out.read_text())
    assert set(data) == {"program", "argv", "complete", "runs", "states", "outcomes", "deadlocks", "violations"}
    assert data["program"] == "race" and data["complete"] is True
    assert {o["stdout"] for o in data["outcomes"]} == {"abc", "bac", "bca"}
    assert set(data["outcomes"][0]) == {"stdout", "exit_status", "count", "schedule"}


def test_the_cli_replay_hint_keeps_the_programs_arguments(capsys):
    """The schedule is for forkbuf 1, not forkbuf with its default N: the hint runs the same argv."""
    assert cli_main(["explore", "forkbuf", "1"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("explore forkbuf 1: ")
    hint = text[-1]
    assert hint.startswith("replay one: ukernel run --schedule ") and hint.endswith(" forkbuf 1")
    last_row = [line for line in text if "->" in line][-1]
    assert cli_main(hint.removeprefix("replay one: ukernel ").split()) == 0
    assert repr(capsys.readouterr().out) in last_row


def test_run_schedule_on_the_command_line(tmp_path, capsys):
    race = program(tmp_path, "race", RACE)
    schedule = next(o["schedule"] for o in ukernel.explore(race).outcomes if o["stdout"] == "bca")
    assert cli_main(["run", "--schedule", ",".join(map(str, schedule)), race]) == 0
    assert capsys.readouterr().out == "bca"
    assert cli_main(["run", "--schedule", "0,x", race]) == 2
    assert capsys.readouterr().err == "ukernel: --schedule: '0,x' is neither a file nor a list of choices like 0,1,1\n"


def test_a_schedule_that_does_not_fit_says_so_in_one_line(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="ukernel"):
        assert cli_main(["run", "--schedule", "0,7", program(tmp_path, "race", RACE)]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "ukernel: schedule: choice 2 is 7, but only 2 tasks could run there (pids 2, 3):"
        " the list is for another program or settings"
    ]


def test_a_run_without_a_schedule_has_no_choice_events():
    result = ukernel.run("forkhello")
    assert result.schedule == [] and not [e for e in result.trace if e["type"] == "choice"]


def test_every_view_renders_a_trace_with_choice_events():
    from ukernel.trace import views

    result = ukernel.run("forkhello", schedule=[0, 0, 1])
    assert result.stdout == b"World\nHello\n"
    assert [e["chosen"] for e in result.trace if e["type"] == "choice"] == result.schedule
    for name, view in views.VIEWS.items():
        assert isinstance(view.render(result.trace), str | dict), name
    assert 'write(1, "World\\n", 6) = 6' in views.strace(result.trace, pid=3)


def test_a_forked_runs_outcome_carries_its_check_invariants(tmp_path, monkeypatch):
    """A run of the fork tree ends without its teardown (checkpoint.run_finished), but after
    check_invariants: what it finds makes the run a violation (the children inherit the patch)."""
    from ukernel.kernel.core import Kernel

    real = Kernel.check_invariants

    async def leaky(self):
        return [*(await real(self)), "pipe: 1 pipe left behind"]

    monkeypatch.setattr(Kernel, "check_invariants", leaky)
    found = ukernel.explore(program(tmp_path, "race", RACE))
    assert found.complete and found.outcomes == [] and not found.deadlocks
    assert sorted((v["problems"], v["stdout"]) for v in found.violations) == [
        (["pipe: 1 pipe left behind"], out) for out in ("abc", "bac", "bca")
    ]
