"""The pid lab (ukernel/labs/pid): the reference scores full marks, the skeleton less
without crashing the grader, and typical bugs are reported where they are."""

from __future__ import annotations

import shutil
from pathlib import Path

from ukernel.lab import grade, start

BUGS = Path(__file__).parent / "lab_bugs" / "pid"


def student(tmp_path: Path, bug: str | None = None) -> Path:
    """A lab start into tmp_path, with one of lab_bugs/pid/ as the student's pid.py."""
    directory = tmp_path / "pid"
    start("pid", directory)
    if bug:
        shutil.copy(BUGS / f"{bug}.py", directory / "pid.py")
    return directory


def test_reference_scores_full_marks():
    report = grade("pid", reference=True, jobs=2)
    assert report.full_marks, report.lines()
    assert report.max_score == 19 and len(report.outcomes) == 12


def test_skeleton_scores_nothing_and_says_where_in_one_line_each(tmp_path):
    report = grade("pid", student(tmp_path), jobs=2)
    assert report.score == 0 and report.max_score == 19
    for outcome in report.outcomes:
        assert "\n" not in outcome.message and "Traceback" not in outcome.message, outcome.message
        assert "NotImplementedError" in outcome.message and "pid.py:" in outcome.message, outcome.message


def test_numbers_swapped_in_free_pid_is_reported_at_its_line(tmp_path):
    line = next(n for n, text in enumerate((BUGS / "swapped.py").read_text().splitlines(), 1) if "BUG" in text)
    report = grade("pid", student(tmp_path, "swapped"), jobs=2, pattern="low_free")
    (outcome,) = report.outcomes
    assert not outcome.ok
    # the crash is on the line after the bug, where the swapped number is used as a handle
    assert f"pid.free_pid crashed at pid.py:{line + 1}: KeyError" in outcome.message, outcome.message


def test_duplicate_numbers_and_a_missing_wrap_fail_their_tests(tmp_path):
    dup = grade("pid", student(tmp_path / "dup", "duplicate"), jobs=2, pattern="wrap")
    assert [o.case.function for o in dup.outcomes if not o.ok] == [
        "freed_pids_come_back_only_after_the_wrap",
        "after_the_wrap_low_free_pids_stay_unused",
    ], dup.lines()
    no_wrap = grade("pid", student(tmp_path / "no_wrap", "no_wrap"), jobs=2, pattern="wrap_restarts")
    (outcome,) = no_wrap.outcomes
    assert outcome.message.startswith("the program crashed: BlockingIOError: [Errno 11]"), outcome.message
    assert "no free pid below pid_max 310 at level 0" in outcome.message
