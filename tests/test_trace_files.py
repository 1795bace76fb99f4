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
    with pytest.raises(ValueError, match=r"t\.jsonl: not a ukernel trace \(line 1: not JSON: "):
        load(path)


def test_binary_garbage_is_one_value_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"t\.jsonl: not a ukernel trace \(byte \d+ is not UTF-8 text\)"):
        load(path)


async def test_every_view_renders_calls_refused_for_their_arguments():
    """A refused call's enter event carries the arguments as the program gave them."""
    from conftest import run_source

    from ukernel.trace import views

    source = """
    async def main(sys, argv):
        calls = (
            lambda: sys.execve(42, [1]), lambda: sys.write("x", 5), lambda: sys.open(None),
            lambda: sys.read(1, "n"), lambda: sys.kill("x", 9), lambda: sys.wait4("p"), lambda: sys.pipe2("x"),
        )
        for call in calls:
            try:
                await call()
            except OSError:
                pass
        return 0
    """
    result = await run_source(source)
    for name, view in views.VIEWS.items():
        assert isinstance(view.render(result.trace), str | dict), name
    lines = views.strace(result.trace, pid=2).splitlines()
    assert "execve(42, [1], NULL) = -1 EFAULT (Bad address)" in lines
    assert 'write("x", 5) = -1 EBADF (Bad file descriptor)' in lines


def test_the_trace_command_says_one_line_for_garbage(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "g.jsonl"
    path.write_bytes(b"\x89PNG\xff\xfe")
    done = subprocess.run(
        [sys.executable, "-m", "ukernel", "trace", "strace", str(path)], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"ukernel: {path}: not a ukernel trace (byte 0 is not UTF-8 text)\n"
