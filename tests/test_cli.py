"""The ukernel command, run as a user would run it."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ukernel import cli
from ukernel.trace import load
from ukernel.trace.views import VIEWS, View


def ukernel(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ukernel.cli", *args], input=stdin, capture_output=True, timeout=60)


def test_run_exits_with_the_program_code_and_prints_its_output(tmp_path):
    prog = tmp_path / "seven.py"
    prog.write_text("async def main(sys, argv):\n    await sys.write(1, ' '.join(argv).encode())\n    return 7\n")
    done = ukernel("run", str(prog), "a", "b")
    assert (done.returncode, done.stdout, done.stderr) == (7, b"seven a b", b"")


def test_verbose_prints_one_readable_line_per_message():
    done = ukernel("run", "nginx", "2", "-v")
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert any(
        line.endswith("kernel -> vfs        dup_files        {files: 7} (fork by pid 2, no CLONE_FILES)")
        for line in lines
    ), lines[:40]
    assert any("[pid 2] fork() ..." in line for line in lines)


def test_trace_file_is_json_lines(tmp_path):
    out = tmp_path / "t.jsonl"
    done = ukernel("run", "hello", "--trace", str(out))
    assert done.returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"seq", "ts", "type", "src", "dst", "op", "msgid"} <= events[0].keys()
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))
    assert {e["type"] for e in events} >= {"request", "reply", "syscall_enter", "syscall_exit", "sched"}


def test_fail_injection_reaches_the_program():
    done = ukernel("run", "nginx", "2", "--fail", "copy_mm=ENOMEM")
    assert done.returncode == 1
    assert b"OSError: [Errno 12] Cannot allocate memory (fault injected at copy_mm)" in done.stdout


def test_bad_fail_step_is_reported():
    done = ukernel("run", "hello", "--fail", "copy_nothing=ENOMEM")
    assert done.returncode == 2 and b"unknown step" in done.stderr


def test_killed_program_exits_128_plus_signal(tmp_path):
    prog = tmp_path / "segv.py"
    prog.write_text("async def main(sys, argv):\n    await sys.poke(0, b'x')\n")
    done = ukernel("run", str(prog))
    assert (done.returncode, done.stderr) == (128 + 11, b"ukernel: program killed by SIGSEGV\n")


def test_missing_program_is_enoent():
    done = ukernel("run", "nosuchprogram")
    assert done.returncode == 1 and b"FileNotFoundError: [Errno 2]" in done.stdout


def test_flags_prints_the_route(capsys):
    assert cli.main(["flags", "0x3d0f00"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "flags 0x3d0f00 = CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"
    )
    assert "  kernel -> vfs        share_files      CLONE_FILES" in out
    assert cli.main(["flags", "0x800"]) == 1
    assert "EINVAL" in capsys.readouterr().out


def test_progress_counter_counts_tasks_and_messages():
    import io

    from ukernel.trace import ProgressSink

    out = io.StringIO()
    sink = ProgressSink(out, every=2)
    for op in ("alloc_pid", "dup_files", "alloc_pid", "write"):
        sink({"type": "request", "op": op})
    sink({"type": "reply", "op": "write"})
    assert out.getvalue() == "\r[ukernel] 1 tasks, 2 messages \r[ukernel] 2 tasks, 4 messages "


def test_run_writes_a_view_directly(tmp_path):
    out = tmp_path / "tree.txt"
    done = ukernel("run", "nginx", "3", "--trace", str(out), "--trace-format", "pstree")
    assert done.returncode == 0
    assert out.read_text() == "init───nginx───3*[nginx]\n"
    done = ukernel("run", "hello", "--trace-format", "strace")
    assert b'[pid 2] write(1, "hello from pid 2 (parent 1)\\n", 28) = 28' in done.stderr


# --- the VIEWS table drives `ukernel trace` and `ukernel run --trace-format` ------------------------
def in_process(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``ukernel ARGS`` in this process, with nothing on stdin: (exit code, stdout)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO()))
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_trace_help_lists_every_view_with_its_line(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["trace", "--help"])
    assert done.value.code == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    for name, view in VIEWS.items():
        assert [name, view.help] in lines, name


#: The views whose text is the same on every run in one process (the others show dur_us or task numbers).
SAME_EVERY_RUN = {"strace", "pstree", "route", "mermaid", "gantt"}


def test_every_view_in_the_table_is_reachable_from_trace_and_run(tmp_path, monkeypatch, capsys):
    jsonl = tmp_path / "hello.jsonl"
    assert in_process(monkeypatch, capsys, "run", "hello", "--trace", str(jsonl))[0] == 0
    events = load(jsonl)
    for name, view in VIEWS.items():
        assert in_process(monkeypatch, capsys, "trace", name, str(jsonl)) == (0, view.render(events)), name
        out = tmp_path / f"hello.{name}"
        assert in_process(monkeypatch, capsys, "run", "hello", "--trace", str(out), "--trace-format", name)[0] == 0
        written, expected = out.read_text(), view.render(events)
        if name in SAME_EVERY_RUN:
            assert written == expected, name
        else:
            assert written.splitlines()[0] == expected.splitlines()[0], name


def test_a_view_added_to_the_table_is_offered_with_its_options(tmp_path, monkeypatch, capsys):
    def count(events: list, pid: int | None = None) -> str:
        return f"{sum(pid is None or e.get('pid') == pid for e in events)} events\n"

    monkeypatch.setitem(VIEWS, "count", View(count, "how many events (of -p PID)", ("pid",)))
    jsonl = tmp_path / "hello.jsonl"
    assert in_process(monkeypatch, capsys, "run", "hello", "--trace", str(jsonl))[0] == 0
    events = load(jsonl)
    assert in_process(monkeypatch, capsys, "trace", "count", str(jsonl), "-p", "2") == (0, count(events, pid=2))
    out = tmp_path / "hello.count"
    assert in_process(monkeypatch, capsys, "run", "hello", "--trace", str(out), "--trace-format", "count")[0] == 0
    assert out.read_text().endswith(" events\n")
    with pytest.raises(SystemExit):
        cli.main(["trace", "--help"])
    assert ["count", "how many events (of -p PID)"] in [
        line.split(None, 1) for line in capsys.readouterr().out.splitlines()
    ]
    monkeypatch.delitem(VIEWS, "count")
    with pytest.raises(SystemExit) as done:
        cli.main(["trace", "count", str(jsonl)])
    assert done.value.code == 2 and "invalid choice: 'count'" in capsys.readouterr().err
