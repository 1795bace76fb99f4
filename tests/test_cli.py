"""The ukernel command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys

from ukernel import cli


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
