"""Labs (ukernel/lab/, ukernel/labs/): skeletons, the grader, its one-line reports, Gradescope's JSON.

For each shipped lab: the reference scores full marks, the skeleton written
by `lab start` scores less without a traceback anywhere, and a typical bug
gets a FAIL line naming the student's file and line. A lab made here in
tmp_path (found through $UKERNEL_LAB_PATH) covers the grader's own failure
paths: a test module that does not import, a hang, SystemExit, a bare assert.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ukernel.config import Config
from ukernel.lab import Lab, LabError, grade, list_labs, load_lab, start
from ukernel.lab.catalog import LABS_DIR, skeleton
from ukernel.lab.grade import collect

LINE = re.compile(r"^[a-z0-9 ]+: (OK \(\d+\.\d+s\)|FAIL: \S.*)$")
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def ukernel(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ukernel.cli", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def check_gradescope(data: dict) -> None:
    """results.json as gradescope-autograders.readthedocs.io/en/latest/specs/ describes it."""
    top = {"score", "max_score", "execution_time", "output", "output_format", "test_output_format"}
    top |= {"test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
    assert set(data) <= top, set(data) - top
    assert isinstance(data["score"], int | float) and isinstance(data["execution_time"], int | float)
    assert isinstance(data["output"], str)
    assert data["visibility"] in VISIBILITY and data["stdout_visibility"] in VISIBILITY
    per_test = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format"}
    per_test |= {"tags", "visibility", "extra_data"}
    for test in data["tests"]:
        assert set(test) <= per_test, set(test) - per_test
        assert isinstance(test["name"], str) and isinstance(test["number"], str) and isinstance(test["output"], str)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in ("passed", "failed") and test["visibility"] in VISIBILITY
        assert isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])
    assert data["score"] == sum(t["score"] for t in data["tests"])
    assert data["max_score"] == sum(t["max_score"] for t in data["tests"])


def graded_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The OK/FAIL lines of a `lab grade` run, after checking every line is one and no traceback shows."""
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    *lines, score = done.stdout.splitlines()
    assert re.fullmatch(r"Score: \d+(\.\d+)?/\d+(\.\d+)?", score), score
    assert all(LINE.match(line) for line in lines), lines
    return lines


# --- the shipped labs --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["util", "sched"])
def test_the_reference_solution_scores_full_marks(name: str, tmp_path: Path):
    out = tmp_path / "results.json"
    done = ukernel("lab", "grade", name, "--reference", "--jobs", "2", "--json", str(out))
    lines = graded_lines(done)
    assert done.returncode == 0, done.stdout
    assert all(": OK (" in line for line in lines) and len(lines) >= 8
    data = json.loads(out.read_text())
    check_gradescope(data)
    assert data["score"] == data["max_score"] > 0
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert hidden and len(hidden) < len(data["tests"])  # some tests hidden, some not


@pytest.mark.parametrize("name", ["util", "sched"])
def test_the_skeleton_boots_and_scores_less_with_a_reason_per_failure(name: str, tmp_path: Path):
    started = ukernel("lab", "start", name, str(tmp_path / "mine"))
    assert started.returncode == 0, started.stderr
    spec = load_lab(name)
    for file in spec.files:
        text = (tmp_path / "mine" / file).read_text()
        assert "SOLUTION" not in text and "# STUB" not in text
    out = tmp_path / "results.json"
    done = ukernel("lab", "grade", name, str(tmp_path / "mine"), "-j", "2", "--no-hidden", "--json", str(out))
    lines = graded_lines(done)
    assert done.returncode == 1
    assert len(lines) == len(collect(spec, tmp_path / "mine", hidden=False)) >= 6
    assert any(": FAIL: " in line for line in lines)
    data = json.loads(out.read_text())
    check_gradescope(data)
    assert data["score"] < data["max_score"]
    assert all(t["output"] for t in data["tests"] if t["status"] == "failed")


def test_a_crash_in_a_students_program_names_the_file_and_line(tmp_path: Path):
    mine = tmp_path / "mine"
    start("util", mine, solution=True)
    pingpong = (mine / "pingpong.py").read_text().replace("sys.write(pong_write, byte)", "sys.write(pong_wrte, byte)")
    (mine / "pingpong.py").write_text(pingpong)
    line = next(i for i, text in enumerate(pingpong.splitlines(), 1) if "pong_wrte" in text)
    primes = (mine / "primes.py").read_text()
    forgetful = primes.replace(
        "await sys.close(left)\n        await sys.close(right_write)\n", "await sys.close(left)\n"
    )
    assert forgetful != primes
    (mine / "primes.py").write_text(forgetful)
    (mine / "sleep.py").unlink()
    report = grade("util", mine, hidden=False, jobs=2)
    why = {o.case.function: o.message for o in report.outcomes if not o.ok}
    assert why["pingpong_exchanges_one_byte"] == (
        f"the program crashed: NameError: name 'pong_wrte' is not defined at pingpong.py:{line}"
    )
    assert why["primes_up_to_35"].startswith("hung: no task can run and nothing can wake one: ")
    assert "(primes) read end of pipe" in why["primes_up_to_35"]
    assert why["sleep_waits_the_ticks_asked"] == f"there is no sleep.py in {mine}"
    assert set(why) == {"pingpong_exchanges_one_byte", "primes_up_to_35", "sleep_waits_the_ticks_asked"} | {
        "sleep_without_argument_prints_usage_on_stderr"
    }


def test_a_raise_in_a_students_pick_next_names_the_file_and_line(tmp_path: Path):
    mine = tmp_path / "mine"
    start("sched", mine, solution=True)
    lottery = (mine / "lottery.py").read_text()
    drawn = "        winner = self.rng.randrange("
    lottery = lottery.replace(
        drawn, "        if len(self.queue) > 1:\n            raise RuntimeError('no luck')\n" + drawn
    )
    (mine / "lottery.py").write_text(lottery)
    line = next(i for i, text in enumerate(lottery.splitlines(), 1) if "no luck" in text)
    report = grade("sched", mine, pattern="lottery_shares_follow_the_tickets")
    [outcome] = report.outcomes
    assert not outcome.ok
    assert f"lottery.py:{line}" in outcome.message and "RuntimeError('no luck')" in outcome.message
    assert "\n" not in outcome.message and "Traceback" not in outcome.message


def test_lab_list_names_every_lab_with_its_status():
    done = ukernel("lab", "list")
    assert done.returncode == 0
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in done.stdout.splitlines()}
    assert all(rows[name][0] == "ready" for name in ("util", "sched", "pid", "files", "fork", "trace", "cow"))
    for name in ("shell",):
        assert rows[name][0] == "coming"
    assert rows["util"][1] == load_lab("util").title
    assert [spec.name for spec in list_labs()] == sorted(rows)


def test_lab_start_writes_the_handout_skeleton_and_visible_tests_and_refuses_to_overwrite(tmp_path: Path):
    spec = load_lab("util")
    written = start("util", tmp_path / "u")
    names = sorted(str(p.relative_to(tmp_path / "u")) for p in written)
    assert names == sorted(["handout.md", *spec.files, "tests/test_util.py"])
    assert not (tmp_path / "u" / "tests" / "test_util_hidden.py").exists()
    again = ukernel("lab", "start", "util", str(tmp_path / "u"))
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "not overwritten (--force to replace them)" in again.stderr
    forced = ukernel("lab", "start", "util", str(tmp_path / "u"), "--force", "--solution")
    assert forced.returncode == 0
    assert (tmp_path / "u" / "primes.py").read_text() == (spec.solution / "primes.py").read_text()
    coming = ukernel("lab", "start", "shell", str(tmp_path / "p"))
    assert coming.returncode == 1 and "coming" in coming.stderr and not (tmp_path / "p").exists()


def test_lab_start_defaults_to_a_directory_named_after_the_lab(tmp_path: Path):
    done = ukernel("lab", "start", "sched", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sched" / "lottery.py").is_file() and (tmp_path / "sched" / "tests" / "spinners.py").is_file()


# --- the skeleton stripper -------------------------------------------------------------------
def test_stub_lines_replace_a_region_at_its_indentation(tmp_path: Path):
    source = tmp_path / "f.py"
    source.write_text(
        textwrap.dedent("""\
        def f():
            # BEGIN SOLUTION
            # STUB: return None  # yours
            return 42
            # END SOLUTION


        def g():
            x = 1
            # BEGIN SOLUTION
            return x
            # END SOLUTION
        """)
    )
    assert skeleton(source) == textwrap.dedent("""\
        def f():
            return None  # yours


        def g():
            x = 1
            raise NotImplementedError("f.py:7: your code here")
        """)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("# BEGIN SOLUTION\nx = 1\n", "f.py:1: BEGIN SOLUTION never ended (no END SOLUTION)"),
        ("x = 1\n# END SOLUTION\n", "f.py:2: END SOLUTION without a BEGIN SOLUTION"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "f.py:2: BEGIN SOLUTION inside the region opened at line 1"),
    ],
)
def test_unbalanced_markers_are_the_teachers_mistake_in_one_line(tmp_path: Path, text: str, why: str):
    (tmp_path / "f.py").write_text(text)
    with pytest.raises(LabError) as caught:
        skeleton(tmp_path / "f.py")
    assert str(caught.value) == why


def test_every_shipped_solution_strips_cleanly():
    for spec in list_labs():
        for file in spec.files if spec.status == "ready" else ():
            compile(skeleton(spec.solution / file), file, "exec")  # the student's copy is valid Python


# --- the grader's own failure paths, on a lab made here ----------------------------------
TOY_TESTS = """
import os, subprocess, sys, time
from ukernel.lab import test


@test(points=2)
def passes(lab):
    print("noise on stdout")  # must not spoil the result line
    lab.check(True, "never")


@test
def fails_a_check(lab):
    lab.check(1 + 1 == 3, "arithmetic\\nover two lines")


@test(timeout=1)
def hangs(lab):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (lab.dir / "grandchild").write_text(str(child.pid))
    time.sleep(60)


@test(timeout=1)
def spins(lab):
    sys.path.insert(0, str(lab.dir))
    import student

    student.spin()


@test
def exits(lab):
    sys.exit(3)


@test
def bare_assert(lab):
    assert lab.dir.name == "nope"


@test
def students_bug(lab):
    sys.path.insert(0, str(lab.dir))
    import student

    student.divide()


@test(points=1)
def overridden_points(lab):
    pass
"""


STUDENT = """def divide():
    return 1 / 0


def spin():
    while True:
        pass
"""


@pytest.fixture
def toy_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    labs = tmp_path / "labs"
    root = labs / "toy"
    (root / "solution").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "hidden").mkdir()
    (root / "lab.toml").write_text(
        'title = "toy"\nstatus = "ready"\nfiles = ["student.py", "pid.py", "fork.py"]\ntimeout = 30\n'
        "[points]\noverridden_points = 5\n"
        '[plug]\nservices = { pid = "pid.py:MyPid" }\ncopy_process = "fork.py:Walk"\ncpus = 2\n'
    )
    (root / "handout.md").write_text("# toy\n")
    (root / "solution" / "student.py").write_text(STUDENT)
    (root / "solution" / "pid.py").write_text("")
    (root / "solution" / "fork.py").write_text("")
    (root / "tests" / "test_toy.py").write_text(TOY_TESTS)
    (root / "hidden" / "test_broken.py").write_text(
        "from ukernel.lab import test\n\n\n@test\ndef imports_badly(lab):\n    pass\n\n\nraise ImportError('no such')\n"
    )
    (root / "hidden" / "test_unparsable.py").write_text("def (:\n")
    monkeypatch.setenv("UKERNEL_LAB_PATH", str(labs))
    return root


def test_every_way_a_test_can_end_is_one_line_and_the_grader_goes_on(toy_lab: Path, tmp_path: Path):
    mine = tmp_path / "mine"
    start("toy", mine, solution=True)
    report = grade("toy", mine, jobs=2)
    exits, bare = (
        TOY_TESTS.splitlines().index(line) + 1 for line in ("    sys.exit(3)", '    assert lab.dir.name == "nope"')
    )
    why = {o.case.function: (o.ok, o.message) for o in report.outcomes}
    assert why["passes"] == (True, "")
    assert why["fails_a_check"] == (False, "arithmetic | over two lines")
    sleeps = TOY_TESTS.splitlines().index("    time.sleep(60)") + 1
    assert why["hangs"] == (False, f"timed out after 1s, running tests/test_toy.py:{sleeps} in hangs")
    assert why["spins"] in {(False, f"timed out after 1s, running student.py:{n} in spin") for n in (6, 7)}
    assert why["exits"] == (False, f"SystemExit: 3 at test_toy.py:{exits}")
    assert why["bare_assert"] == (False, f"AssertionError at test_toy.py:{bare}")
    assert why["students_bug"] == (False, "ZeroDivisionError: division by zero at student.py:2")
    assert why["imports_badly"] == (False, "test_broken.py does not import: ImportError: no such at test_broken.py:9")
    assert why["test_unparsable"][0] is False and why["test_unparsable"][1].startswith("test_unparsable.py does not")
    assert report.score_line() == "Score: 7/15"  # passes 2 + overridden 5 of 2+1+1+1+1+1+1+5+1+1
    grandchild = int((mine / "grandchild").read_text())
    state = Path(f"/proc/{grandchild}/stat")
    assert not state.exists() or state.read_text().split(") ")[1][0] == "Z"  # the whole process group was killed


def test_grading_a_missing_directory_fails_each_test_with_the_reason(toy_lab: Path, tmp_path: Path):
    done = ukernel("lab", "grade", "toy", str(tmp_path / "absent"), "--no-hidden", env=os.environ.copy())
    lines = graded_lines(done)
    assert done.returncode == 1 and done.stdout.endswith("Score: 0/13\n")
    assert (
        lines[0]
        == f"passes: FAIL: no directory {tmp_path / 'absent'} (ukernel lab start toy {tmp_path / 'absent'} makes one)"
    )
    assert len(lines) == 8 and all(": FAIL: no directory " in line for line in lines)


def test_the_plug_names_the_students_files_for_each_slot(toy_lab: Path, tmp_path: Path):
    mine = tmp_path / "mine"
    start("toy", mine, solution=True)
    lab = Lab(load_lab("toy"), mine, toy_lab / "tests" / "test_toy.py")
    assert lab.settings == {
        "services": {"pid": f"{mine.resolve()}/pid.py:MyPid"},
        "copy_process": f"{mine.resolve()}/fork.py:Walk",
        "cpus": 2,
    }
    assert lab.plug({"sched": "cfs"}) == {"sched": "cfs"}
    assert lab.plug({"sched": "student.py:Mine"}) == {"sched": "student:Mine"}
    assert str(mine.resolve()) in sys.path


@pytest.mark.skipif(
    "services" not in {f.name for f in dataclasses.fields(Config)},
    reason="Config has no services= yet (issue 14 item 1, another branch): the plug's services path cannot run",
)
def test_a_students_service_is_what_the_run_boots(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pid.py").write_text("from services.pid import PidService\n\n\nclass MyPid(PidService):\n    pass\n")
    spec = dataclasses.replace(load_lab("util"), plug={"services": {"pid": "pid.py:MyPid"}})
    lab = Lab(spec, mine, LABS_DIR / "util" / "tests" / "test_util.py")
    r = lab.run("hello")
    assert (r.exit_code, r.stdout, r.problems) == (0, b"hello from pid 2 (parent 1)\n", [])
