"""The files lab (ukernel/labs/files): the reference scores full marks, the skeleton less
without crashing the grader, and typical bugs are reported where they are."""

from __future__ import annotations

import shutil
from pathlib import Path

from ukernel.lab import grade, start

BUGS = Path(__file__).parent / "lab_bugs" / "files"


def student(tmp_path: Path, bug: str | None = None) -> Path:
    """A lab start into tmp_path, with one of lab_bugs/files/ as the student's files.py."""
    directory = tmp_path / "files"
    start("files", directory)
    if bug:
        shutil.copy(BUGS / f"{bug}.py", directory / "files.py")
    return directory


def test_reference_scores_full_marks():
    report = grade("files", reference=True, jobs=2)
    assert report.full_marks, report.lines()
    assert report.max_score == 16 and len(report.outcomes) == 9


def test_skeleton_scores_nothing_and_says_where_in_one_line_each(tmp_path):
    report = grade("files", student(tmp_path), jobs=2)
    assert report.score == 0 and report.max_score == 16
    for outcome in report.outcomes:
        assert "\n" not in outcome.message and "Traceback" not in outcome.message, outcome.message
        assert "NotImplementedError" in outcome.message and "files.py:" in outcome.message, outcome.message


def test_an_entry_taken_for_a_handle_is_reported_at_its_line(tmp_path):
    line = next(n for n, text in enumerate((BUGS / "entry_as_handle.py").read_text().splitlines(), 1) if "BUG" in text)
    report = grade("files", student(tmp_path, "entry_as_handle"), jobs=2, pattern="offset")
    (outcome,) = report.outcomes
    assert f"vfs.dup_files crashed at files.py:{line}: TypeError" in outcome.message, outcome.message


def test_a_missing_f_count_and_a_missing_close_are_named_by_their_counts(tmp_path):
    report = grade("files", student(tmp_path / "f", "no_fcount"), jobs=2, pattern="per_fd")
    (outcome,) = report.outcomes
    assert outcome.message.startswith("after dup_files: (2, 2, 2, 5, 10), expected (2, 2, 2, 10, 10)"), outcome.message
    report = grade("files", student(tmp_path / "c", "no_close"), jobs=2, pattern="pipe_eof")
    (outcome,) = report.outcomes
    assert outcome.message.startswith("the run hung:"), outcome.message
    assert "pid 4 (pipeeof) read end of pipe inode" in outcome.message
