"""Reading trace files back (issue 13): what a killed run leaves, and what is not a trace at all."""

from __future__ import annotations

import logging

import pytest

from ukernel.trace import load


def test_a_last_line_cut_short_is_skipped_with_one_warning(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    path.write_text('{"seq": 1, "type": "sched", "op": "pick"}\n{"seq": 2, "type": "sch')
    with caplog.at_level(logging.WARNING, logger="ukernel"):
        assert load(path) == [{"seq": 1, "type": "sched", "op": "pick"}]
    assert [r.getMessage() for r in caplog.records] == [
        f"ukernel: {path}:2: the last line is cut short (a run that was stopped?); skipped"
    ]


def test_a_bad_line_before_the_end_is_still_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"seq": 1, "type": "sch\n{"seq": 2, "type": "sched"}')
    with pytest.raises(ValueError, match=r"t\.jsonl:1: not JSON"):
        load(path)


def test_binary_garbage_is_one_value_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"t\.jsonl: not a text trace \(byte \d+ is not UTF-8\)"):
        load(path)
