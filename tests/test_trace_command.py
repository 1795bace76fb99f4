"""``ukernel trace VIEW [OPTION...] FILE`` (issue 16): each view's own options, as the tool it
imitates takes them, and every mistake one line with exit status 2."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
import trio

import ukernel
from ukernel import cli
from ukernel.trace import JsonlSink, load, views
from ukernel.trace.views import VIEWS
from ukernel.trace.views.strace import TRACE_CLASSES, strace_summary

SIGNALS = b"""
from ukernel.abi import SIGUSR1


def on_usr1(sys, sig):
    pass


async def main(sys, argv):
    await sys.sigaction(SIGUSR1, on_usr1, 0)
    child = await sys.fork()
    if child == 0:
        await sys.kill(await sys.getppid(), SIGUSR1)
        return 5
    await sys.waitpid(child, 0)
    return 0
"""


async def traced(tmp_path, program: str, *args: str, **settings) -> tuple[str, list[dict]]:
    """Run a program under init with its trace written as JSON Lines: (the file, its events)."""
    path = tmp_path / f"{program.rsplit('/', 1)[-1]}.jsonl"
    with open(path, "w", encoding="utf-8") as out, trio.fail_after(60):
        result = await ukernel.run_async(program, [program, *args], sinks=(JsonlSink(out),), **settings)
    assert result.problems == [], result.problems
    return str(path), load(path)


@pytest.fixture
async def signals(tmp_path):
    return await traced(tmp_path, "/bin/sigs", files={"/bin/sigs": SIGNALS})


@pytest.fixture
async def container(tmp_path):
    return await traced(tmp_path, "container", "sh", "-c", "ps")


def trace(capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """``ukernel trace ARGS`` in this process: (exit status, stdout, stderr)."""
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = cli.main(["trace", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


# --- each view's options ---------------------------------------------------------------------------
async def test_strace_options_are_strace_s(signals, capsys):
    path, events = signals
    expected = views.strace_command(
        events, pid=2, follow=True, ops=list(TRACE_CLASSES["%process"]), timestamps=2, syscall_times=True
    )
    assert trace(capsys, "strace", "-f", "-e", "trace=%process", "-p", "2", "-tt", "-T", path) == (0, expected, "")
    assert trace(capsys, "strace", path, "-T", "-tt", "-p", "2", "-e", "trace=%process", "-f")[1] == expected
    assert trace(capsys, "strace", "-e", "fork,wait4", path)[1] == views.strace_command(events, ops=["fork", "wait4"])
    assert trace(capsys, "strace", "-e", "trace=all", "-r", path)[1] == views.strace_command(events, relative=True)
    assert trace(capsys, "strace", "-c", "-f", path)[1] == strace_summary(events, pid=2, follow=True)
    assert trace(capsys, "strace", "-a", "0", path)[1] == views.strace(events, pid=2)
    code, out, _ = trace(capsys, "strace", "-f", "-", stdin=open(path).read())
    assert (code, out) == (0, views.strace_command(events, follow=True))
    lines = out.splitlines()
    assert "[pid     3] kill(2, SIGUSR1)            = 0" in lines
    assert "[pid     2] --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=3, si_uid=0} ---" in lines


async def test_strace_o_writes_a_file_with_a_pid_column_under_f(signals, capsys, tmp_path):
    path, events = signals
    out = tmp_path / "strace.txt"
    assert trace(capsys, "strace", "-f", "-o", str(out), path) == (0, "", "")
    text = out.read_text()
    assert text == views.strace_command(events, follow=True, pid_column=True)
    assert "3     kill(2, SIGUSR1)                  = 0" in text.splitlines()  # as strace -f -o: "PID  "
    assert trace(capsys, "strace", "-o", str(out), path) == (0, "", "")
    assert out.read_text() == views.strace_command(events)  # one process: no column


async def test_pstree_takes_p_A_and_a_pid_inside_a_pid_namespace(container, capsys):
    path, events = container
    assert trace(capsys, "pstree", "-p", "-A", path) == (0, "init(1)---container(2)---sh(3)---ps(4)\n", "")
    assert trace(capsys, "pstree", "-p", "-A", "3", path) == (0, "sh(3)---ps(4)\n", "")
    assert trace(capsys, "pstree", "2", path) == (0, "container───sh───ps\n", "")
    assert trace(capsys, "pstree", "--pids", "--ascii", path)[1] == views.pstree(events, pids=True, ascii=True)


async def test_route_mermaid_and_html_keep_their_route_options(signals, capsys):
    path, events = signals
    assert trace(capsys, "route", "-e", "fork", "-p", "2", path)[1] == views.route(events, syscall="fork", pid=2)
    msgid = next(e["msgid"] for e in events if e["type"] == "syscall_enter" and e["op"] == "kill")
    assert trace(capsys, "mermaid", "--msgid", str(msgid), "--values", path)[1] == views.mermaid(
        events, msgid=msgid, values=True
    )
    html = VIEWS["html"].render(events, syscall="fork", nth=0, msgid=None, pid=None)
    assert trace(capsys, "html", "-e", "fork", "--nth", "0", path) == (0, html, "")


async def test_mermaid_sends_every_syscall_through_the_kernel(signals):
    _, events = signals
    for e in events:
        if e["type"] != "syscall_enter" or e.get("dst") == "kernel":
            continue  # the calls a service serves (write: vfs, kill: signals) are the point
        arrows = re.findall(r"^ +(\w+)(?:->>|-->>|-\))(\w+): ", views.mermaid(events, msgid=e["msgid"]), re.M)
        assert arrows[0] == (f"P{e['pid']}", "kernel"), e["op"]
        assert arrows[-1] == ("kernel", f"P{e['pid']}"), e["op"]
        assert [a for a in arrows if a[0].startswith("P") or a[1].startswith("P")] == [arrows[0], arrows[-1]]
    text = views.mermaid(events, syscall="kill")
    assert text.splitlines()[1:4] == [
        "    participant P3 as sigs (pid 3)",
        "    participant kernel",
        "    participant signals as signals service",
    ]


async def test_nested_namespace_steps_carry_only_their_flag(container):
    _, events = container
    lines = views.route(events, syscall="clone", pid=2).splitlines()
    nested = [line.split(None, 1)[1] for line in lines if line.startswith("    #")]
    assert [" ".join(line.split()) for line in nested] == [
        "namespaces -> vfs copy_mnt_ns [CLONE_NEWNS]",
        "namespaces -> pid create_pid_ns [CLONE_NEWPID]",
    ]


# --- mistakes: one line each, status 2 -------------------------------------------------------------
async def test_every_mistake_is_one_line_and_status_2(signals, capsys, tmp_path):
    path, _ = signals
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello\n")
    cases = [
        (["strace", "-e", "trace=forkk", path], "trace strace: -e trace=forkk: no such syscall (did you mean fork?)"),
        (["strace", "-e", "forkk", path], "trace strace: -e trace=forkk: no such syscall (did you mean fork?)"),
        (["strace", "-e", "trace=fork,xyzzy", path], "trace strace: -e trace=xyzzy: no such syscall"),
        (
            ["strace", "-e", "trace=%proc", path],
            "trace strace: -e trace=%proc: no such class (there are %process, %signal, %memory, %file, %desc)",
        ),
        (
            ["strace", "-e", "signal=none", path],
            "trace strace: -e signal=none: ENOSYS: only -e trace=... is built (not signal=)",
        ),
        (["strace", "-p", "99", path], "trace: -p 99: no process 99 in this trace"),
        (["mermaid", "-p", "99", path], "trace: -p 99: no process 99 in this trace"),
        (["route", "-e", "frok", path], "trace route: -e frok: no such syscall (did you mean fork?)"),
        (["pstree", "99", path], "trace pstree: PID 99: no process 99 in this trace"),
        (["route", "-e", "clone", path], "the trace has 0 clone calls, not 1"),
        (["strace", str(garbage)], f"{garbage}: not a ukernel trace (line 1: not JSON: Expecting value)"),
        (["strace", str(tmp_path / "nothere")], f"{tmp_path / 'nothere'}: ENOENT: No such file or directory"),
        (["strace", "-o", str(tmp_path / "no" / "x"), path], f"trace strace: -o {tmp_path / 'no' / 'x'}: ENOENT: "),
    ]
    for args, message in cases:
        code, out, err = trace(capsys, *args)
        assert (code, out) == (2, ""), args
        assert err.startswith(f"ukernel: {message}") and err.count("\n") == 1, (args, err)


def test_argparse_mistakes_say_the_view(capsys):
    code, _, err = trace(capsys, "strace", "-p", "two", "x.jsonl")
    assert (code, err) == (
        2,
        "ukernel: trace strace: argument -p/--pid: 'two' is not a pid (see ukernel trace strace --help)\n",
    )
    code, _, err = trace(capsys, "pstree", "-T", "x.jsonl")
    assert (code, err) == (2, "ukernel: trace pstree: unrecognized arguments: -T (see ukernel trace pstree --help)\n")


def test_each_view_has_its_own_help(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["trace", "pstree", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ukernel trace pstree [-h] [-p] [-A] [-o FILE] [PID] FILE\n")
    with pytest.raises(SystemExit):
        cli.main(["trace", "strace", "--help"])
    text = capsys.readouterr().out
    for flag in ("-f", "-e trace=NAME,...", "-p PID", "-t", "-r", "-T", "-c", "-a COLUMN", "-o FILE"):
        assert f"  {flag}" in text, flag
    assert "virtual" in text


async def test_a_non_trace_file_from_the_shell_is_one_line(tmp_path):
    garbage = tmp_path / "x.json"
    garbage.write_text('[1, 2]\n{"type": "sched"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "ukernel", "trace", "strace", str(garbage)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"ukernel: {garbage}: not a ukernel trace (line 1: not an event, a JSON object with a type)\n"
