"""The pid and files labs (ukernel/labs/pid, ukernel/labs/files): each reference scores
full marks, each skeleton nothing without crashing the grader, and the typical bugs of
tests/lab_bugs/ are reported where they are, in one line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ukernel.lab import grade, start

BUGS = Path(__file__).parent / "lab_bugs"
#: lab -> (the student's file, max score, tests)
LABS = {"pid": ("pid.py", 19, 12), "files": ("files.py", 16, 9)}


def student(tmp_path: Path, lab: str, bug: str | None = None) -> Path:
    """A lab start into tmp_path, with lab_bugs/LAB/BUG.py as the student's file."""
    directory = tmp_path / lab
    start(lab, directory)
    if bug:
        shutil.copy(BUGS / lab / f"{bug}.py", directory / LABS[lab][0])
    return directory


def bug_line(lab: str, bug: str) -> int:
    """The line of lab_bugs/LAB/BUG.py marked ``# BUG``."""
    lines = (BUGS / lab / f"{bug}.py").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if "# BUG" in text)


def only(report):
    (outcome,) = report.outcomes
    assert not outcome.ok and "\n" not in outcome.message, outcome.message
    return outcome.message


@pytest.mark.parametrize("lab", LABS)
def test_reference_scores_full_marks(lab):
    report = grade(lab, reference=True, jobs=2)
    assert report.full_marks, report.lines()
    assert (report.max_score, len(report.outcomes)) == LABS[lab][1:]


@pytest.mark.parametrize("lab", LABS)
def test_skeleton_scores_nothing_and_says_where_in_one_line_each(lab, tmp_path):
    report = grade(lab, student(tmp_path, lab), jobs=2)
    assert (report.score, report.max_score) == (0, LABS[lab][1])
    for outcome in report.outcomes:
        assert "\n" not in outcome.message and "Traceback" not in outcome.message, outcome.message
        stub = rf"crashed at \S*{LABS[lab][0]}:\d+: NotImplementedError\('\w+: your code here \(handout, the task, step \d\)'\)"
        assert re.search(stub, outcome.message), outcome.message


def test_pid_numbers_swapped_in_free_pid_are_reported_at_the_crashing_line(tmp_path):
    message = only(grade("pid", student(tmp_path, "pid", "swapped"), jobs=2, pattern="low_free"))
    line = bug_line("pid", "swapped") + 1  # where the swapped number is used as a handle
    assert re.search(rf"pid\.free_pid crashed at \S*/pid\.py:{line}: KeyError", message), message


def test_pid_duplicate_numbers_and_a_missing_wrap_fail_the_wrap_tests(tmp_path):
    dup = grade("pid", student(tmp_path / "dup", "pid", "duplicate"), jobs=2, pattern="after_the_wrap")
    assert [o.case.function for o in dup.outcomes if not o.ok] == [
        "freed_pids_come_back_only_after_the_wrap",
        "after_the_wrap_low_free_pids_stay_unused",
    ], dup.lines()
    message = only(grade("pid", student(tmp_path / "nw", "pid", "no_wrap"), jobs=2, pattern="wrap_restarts"))
    assert message.startswith("a program crashed: BlockingIOError: [Errno 11] EAGAIN: no free pid below pid_max"), (
        message
    )


def test_files_entry_taken_for_a_handle_is_reported_at_its_line(tmp_path):
    message = only(grade("files", student(tmp_path, "files", "entry_as_handle"), jobs=2, pattern="offset"))
    line = bug_line("files", "entry_as_handle")
    assert re.search(rf"vfs\.dup_files crashed at \S*/files\.py:{line}: TypeError", message), message


def test_files_missing_f_count_and_missing_close_are_named_by_their_counts(tmp_path):
    message = only(grade("files", student(tmp_path / "f", "files", "no_fcount"), jobs=2, pattern="per_fd"))
    assert message.startswith("after dup_files: (2, 2, 2, 5, 10), expected (2, 2, 2, 10, 10)"), message
    message = only(grade("files", student(tmp_path / "c", "files", "no_close"), jobs=2, pattern="pipe_eof"))
    assert message.startswith("the run hung:") and "pid 4 (pipeeof) read end of pipe inode" in message, message
