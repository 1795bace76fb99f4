"""The fork, trace and cow labs: the reference scores full marks, the skeleton less without a
traceback, and a typical bug (tests/lab_bugs/LAB/) gets a report naming what is wrong and where.

The line a report must name is the one marked ``# BUG`` in the variant, found here, not written down.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ukernel.lab import grade, load_lab, start

BUGS = Path(__file__).parent / "lab_bugs"
LABS = ("fork", "trace", "cow")

#: variant -> (the test it fails, what its FAIL line must say; "LINE" is FILE:N of the # BUG line)
VARIANTS = {
    "fork/handle_from_child.py": ("fail_at_copy_files", ["TypeError", "LINE"]),
    "fork/oldest_first_no_put_fs.py": ("fail_at_copy_mm", ["vfs.fs_structs: 1 at boot"]),
    "trace/answers.toml": ("vfork_route", ["LINE: vfork_route: item 6 of 9", "ukernel trace route FILE -e vfork"]),
    "cow/parent_not_protected.py": ("the_parent_is_write_protected", ["write-protect the parent's private PTEs"]),
    "cow/copy_of_unwritten_frame.py": ("pages_not_present_at_fork", ["KeyError", "LINE"]),
}


@pytest.mark.parametrize("lab", LABS)
def test_the_reference_scores_full_marks(lab):
    report = grade(lab, reference=True, jobs=2)
    assert report.full_marks, "\n".join(report.lines())
    assert len(report.outcomes) >= 8 and any(o.case.hidden for o in report.outcomes)


@pytest.mark.parametrize("lab", LABS)
def test_the_skeleton_scores_less_in_one_line_per_failure(lab, tmp_path):
    start(lab, tmp_path)
    report = grade(lab, tmp_path, hidden=False, jobs=2)
    assert not report.full_marks and report.score < report.max_score
    failures = [o.message for o in report.outcomes if not o.ok]
    assert failures and all(m and "\n" not in m and "Traceback" not in m for m in failures), failures


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_typical_bug_is_reported_where_it_is(variant, tmp_path):
    lab, name = variant.split("/")
    source = BUGS / variant
    (student_file,) = load_lab(lab).files
    start(lab, tmp_path)
    shutil.copy(source, tmp_path / student_file)
    marked = next(n for n, line in enumerate(source.read_text().splitlines(), 1) if "# BUG" in line)
    test, says = VARIANTS[variant]
    report = grade(lab, tmp_path, pattern=test, jobs=1)
    (outcome,) = report.outcomes
    assert not outcome.ok, outcome.line()
    for words in says:
        assert words.replace("LINE", f"{student_file}:{marked}") in outcome.message, outcome.message
    assert "Traceback" not in outcome.message


def test_a_wrong_trace_answer_does_not_give_the_answer_away(tmp_path):
    start("trace", tmp_path)
    shutil.copy(BUGS / "trace/answers.toml", tmp_path / "answers.toml")
    (outcome,) = grade("trace", tmp_path, pattern="cow_copy_message").outcomes
    assert "cow_copy_message" in outcome.message and "mm.write_mem" not in outcome.message, outcome.message
