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


# --- run's options end at the program's name (strace, docker run, env) -----------------------------
@pytest.mark.parametrize(
    ("args", "stdin", "out"),
    [
        (["sh", "-c", "echo hi | cat"], b"", b"hi\n"),
        (["--", "sh", "-c", "echo hi | cat"], b"", b"hi\n"),
        (["--cpus", "2", "sh", "-c", "echo --cpus 3 -v"], b"", b"--cpus 3 -v\n"),
        (["head", "-n", "3"], b"a\nb\nc\nd\n", b"a\nb\nc\n"),
        (["echo", "--", "-v"], b"", b"-- -v\n"),
    ],
    ids=["sh-c", "dashdash", "options-after-program-are-its", "head-n", "dashdash-after-program-is-its"],
)
def test_words_after_the_program_are_its_arguments(args, stdin, out):
    done = ukernel("run", *args, stdin=stdin)
    assert (done.returncode, done.stdout, done.stderr) == (0, out, b"")


def test_trace_before_the_program_writes_the_trace(tmp_path):
    out = tmp_path / "t.jsonl"
    done = ukernel("run", "--trace", str(out), "sh", "-c", "echo hi | cat")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hi\n", b"")
    assert VIEWS["pstree"].render(load(out)) == "init───sh─┬─cat\n          └─echo\n"  # by name, as psmisc


def test_trace_dash_is_stdout():
    done = ukernel("run", "--trace", "-", "--trace-format", "pstree", "hello")
    assert (done.returncode, done.stdout.decode(), done.stderr) == (
        0,
        "hello from pid 2 (parent 1)\ninit───hello\n",
        b"",
    )


def test_a_reader_that_leaves_trace_dash_ends_the_run_as_sigpipe():
    proc = subprocess.Popen(
        [sys.executable, "-m", "ukernel.cli", "run", "--trace", "-", "nginx", "4"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.read(9) == b'{"seq": 1'
    proc.stdout.close()  # as head -c does: the trace (hundreds of KB) fills the pipe, the next write fails
    assert (proc.wait(timeout=60), proc.stderr.read()) == (128 + 13, b"")


def test_run_without_a_program_asks_which(capsys):
    assert cli.main(["run", "--cpus", "2"]) == 2
    assert capsys.readouterr() == ("", "ukernel: run: which program? (ukernel run --list shows them)\n")


def test_list_shows_each_program_under_bin_with_its_docstring_line(capsys):
    from ukernel.user.binfmt import userland_programs

    assert cli.main(["run", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [name for name, _ in userland_programs()]
    width = max(len(name) for name, _ in userland_programs())
    assert f"{'hello':<{width}}  the smallest program; prints its pid and its parent's." in lines
    assert f"{'head':<{width}}  head [-n N] [FILE]: the first N lines (10 by default) of FILE, or of stdin." in lines


def test_verbose_prints_one_readable_line_per_message():
    done = ukernel("run", "-v", "nginx", "2")
    assert done.returncode == 0
    lines = done.stderr.decode().splitlines()
    assert any(
        line.endswith("kernel -> vfs        dup_files        {files: 7} (fork by pid 2, no CLONE_FILES)")
        for line in lines
    ), lines[:40]
    assert any("[pid 2] fork() ..." in line for line in lines)


def test_trace_file_is_json_lines(tmp_path):
    out = tmp_path / "t.jsonl"
    done = ukernel("run", "--trace", str(out), "hello")
    assert done.returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"seq", "ts", "type", "src", "dst", "op", "msgid"} <= events[0].keys()
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))
    assert {e["type"] for e in events} >= {"request", "reply", "syscall_enter", "syscall_exit", "sched"}


def test_fail_injection_reaches_the_program():
    done = ukernel("run", "--fail", "copy_mm=ENOMEM", "nginx", "2")
    assert done.returncode == 1
    assert b"OSError: [Errno 12] ENOMEM: Cannot allocate memory (fault injected at copy_mm)" in done.stdout


def test_bad_fail_step_is_reported():
    done = ukernel("run", "--fail", "copy_nothing=ENOMEM", "hello")
    assert done.returncode == 2 and b"unknown step" in done.stderr


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--cpus", "0"], "--cpus: must be at least 1 (a machine needs a CPU), not 0"),
        (["--memory", "1K"], "--memory: 1K is too small: at least 1M"),
        (["--memory", "lots"], "--memory: 'lots' is not a size (bytes, or a number with K, M or G: 64M)"),
        (["--fail", "copy_mm=ENOPE"], "--fail: copy_mm: unknown errno 'ENOPE' (a name like ENOMEM, or a number)"),
        (["--trace", "/nonexistent/x.jsonl"], "--trace: /nonexistent/x.jsonl: ENOENT: No such file or directory"),
    ],
    ids=["cpus", "memory-small", "memory-lots", "fail-errno", "trace-dir"],
)
def test_a_bad_option_is_one_line_and_exit_2(capsys, options, says):
    assert cli.main(["run", *options, "hello"]) == 2
    assert capsys.readouterr() == ("", f"ukernel: {says}\n")


def test_the_smallest_memory_runs_a_program(capsys):
    assert cli.main(["run", "--memory", "1M", "hello"]) == 0
    assert capsys.readouterr() == ("hello from pid 2 (parent 1)\n", "")


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('cpus = "two"', "cpus: must be an integer, not 'two'"),
        ("cpus = true", "cpus: must be an integer, not True"),
        ("memory = 1.5", "memory: must be an integer or a string, not 1.5"),
        ('realtime = "yes"', "realtime: true, false or unset (on with a terminal), not 'yes'"),
    ],
)
def test_a_toml_value_of_the_wrong_type_is_one_line(tmp_path, capsys, toml, says):
    config = tmp_path / "run.toml"
    config.write_text(toml + "\n")
    assert cli.main(["run", "--config", str(config), "hello"]) == 2
    where = "" if toml.startswith("realtime") else f"--config: {config}: "  # Config's own check names no file
    assert capsys.readouterr() == ("", f"ukernel: {where}{says}\n")


def test_killed_program_exits_128_plus_signal(tmp_path):
    prog = tmp_path / "segv.py"
    prog.write_text("async def main(sys, argv):\n    await sys.poke(0, b'x')\n")
    done = ukernel("run", str(prog))
    assert (done.returncode, done.stderr) == (128 + 11, b"ukernel: program killed by SIGSEGV\n")


@pytest.mark.parametrize(
    ("program", "says"),
    [
        ("ngnix", "ngnix: program not found (did you mean nginx?)"),
        ("zzzzqq", "zzzzqq: program not found (ukernel run --list shows them)"),
    ],
)
def test_a_mistyped_program_is_not_found_with_a_hint(capsys, program, says):
    assert cli.main(["run", program, "4"]) == 127
    assert capsys.readouterr() == ("", f"ukernel: {says}\n")


def test_a_missing_host_program_names_the_host_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "./nothere.py"]) == 127
    assert capsys.readouterr() == (
        "",
        f"ukernel: ./nothere.py: no such file on the host (looked for {tmp_path.resolve()}/nothere.py)\n",
    )


def test_a_program_from_bin_dir_is_found(tmp_path):
    (tmp_path / "mine.py").write_text("async def main(sys, argv):\n    return 3\n")
    assert ukernel("run", "--bin", str(tmp_path), "mine").returncode == 3


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


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ("CLONE_VM", "flags 0x100 = CLONE_VM"),
        ("CLONE_VM|CLONE_FS", "flags 0x300 = CLONE_VM|CLONE_FS"),
        ("clone_vm | 0x200 | SIGCHLD", "flags 0x311 = CLONE_VM|CLONE_FS|SIGCHLD"),
        ("17", "flags 0x11 = SIGCHLD"),
    ],
)
def test_flags_takes_names_and_or_expressions(capsys, given, line):
    assert cli.main(["flags", given]) == 0
    assert capsys.readouterr().out.splitlines()[0] == line


def test_an_unknown_flag_name_is_one_line(capsys):
    assert cli.main(["flags", "CLONE_VM|CLONE_FOO"]) == 2
    assert capsys.readouterr() == (
        "",
        "ukernel: flags: 'CLONE_FOO' is no clone flag (CLONE_VM, ...), signal (SIGCHLD) or number (0x100)\n",
    )


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
    done = ukernel("run", "--trace", str(out), "--trace-format", "pstree", "nginx", "3")
    assert done.returncode == 0
    assert out.read_text() == "init───nginx───3*[nginx]\n"
    done = ukernel("run", "--trace-format", "strace", "hello")
    assert b'write(1, "hello from pid 2 (parent 1)\\n", 28) = 28' in done.stderr.splitlines()  # strace: the program


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
    assert in_process(monkeypatch, capsys, "run", "--trace", str(jsonl), "hello")[0] == 0
    events = load(jsonl)
    for name, view in VIEWS.items():
        assert in_process(monkeypatch, capsys, "trace", name, str(jsonl)) == (0, view.render(events)), name
        out = tmp_path / f"hello.{name}"
        assert in_process(monkeypatch, capsys, "run", "--trace", str(out), "--trace-format", name, "hello")[0] == 0
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
    assert in_process(monkeypatch, capsys, "run", "--trace", str(jsonl), "hello")[0] == 0
    events = load(jsonl)
    assert in_process(monkeypatch, capsys, "trace", "count", str(jsonl), "-p", "2") == (0, count(events, pid=2))
    out = tmp_path / "hello.count"
    assert in_process(monkeypatch, capsys, "run", "--trace", str(out), "--trace-format", "count", "hello")[0] == 0
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


def test_the_cli_does_not_import_test_tools():
    """Start-up (issue 18): trio.testing's package imports pytest when it is installed, which
    cost ``ukernel run`` about 0.1 s before it ran anything."""
    code = "import sys, ukernel.cli; print(sorted(m for m in ('pytest', 'trio.testing', 'hypothesis') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
