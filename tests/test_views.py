"""Views of a trace (ukernel.views) and reading a trace file back (ukernel.trace.load).

Golden files live in tests/golden/; after an intended change to a view or to a
route, rewrite them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_views.py``
and review the diff.
"""

from __future__ import annotations

import difflib
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from html import escape
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
import trio

import ukernel
from ukernel.trace import JsonlSink, load, views
from ukernel.trace.records import json_default as _json_default

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))

# Each program runs once per test session; the views are pure, so the tests share the runs.
_RUNS: dict[tuple, tuple[ukernel.Result, str]] = {}


async def traced(program: str, *args: str, **settings) -> tuple[ukernel.Result, str]:
    """Run a program under init with cpus=1: its result, and the same trace as JSON Lines text."""
    key = (program, args, repr(sorted(settings.items())))
    if key not in _RUNS:
        jsonl = io.StringIO()
        with trio.fail_after(60):
            result = await ukernel.run_async(program, [program, *args], cpus=1, sinks=(JsonlSink(jsonl),), **settings)
        assert result.problems == [], result.problems
        _RUNS[key] = (result, jsonl.getvalue())
    return _RUNS[key]


async def trace_of(program: str, *args: str, **settings) -> list[dict]:
    return (await traced(program, *args, **settings))[0].trace


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), text.splitlines(True), f"golden/{name}", "now", n=2)
        )
        pytest.fail(f"{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it):\n{diff}")


# --- mermaid, checked by structure ------------------------------------------------------------
PARTICIPANT = re.compile(r"^    participant (?P<id>[A-Za-z_]\w*)(?: as (?P<label>.+))?$")
TEXT = r"(?:[^#;\n{}]|#\w+;)+"  # Mermaid ends a message at # or ;, so those only as entity codes (#59;)
ARROW = re.compile(rf"^ +(?P<src>[A-Za-z_]\w*)(?P<arrow>->>|-->>|-\))(?P<dst>[A-Za-z_]\w*): {TEXT}$")
NOTE = re.compile(rf"^ +Note over [A-Za-z_]\w*: {TEXT}$")


def check_mermaid(text: str) -> dict[str, int]:
    """Parse a sequenceDiagram the way the view writes one; counts of what it holds."""
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram", lines[:1]
    declared: set[str] = set()
    depth = alts = 0
    counts = {"->>": 0, "-->>": 0, "-)": 0}
    for line in lines[1:]:
        if m := PARTICIPANT.match(line):
            assert m["id"].lower() not in views.MERMAID_KEYWORDS, line
            declared.add(m["id"])
        elif line.strip() == "alt unwind":
            depth += 1
            alts += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, "end without alt"
        elif m := ARROW.match(line):
            assert {m["src"], m["dst"]} <= declared, line
            assert line.startswith(" " * (4 + 4 * depth) + m["src"]), f"not indented for its block: {line!r}"
            counts[m["arrow"]] += 1
        else:
            assert NOTE.match(line), f"not a Mermaid line the view writes: {line!r}"
    assert depth == 0, "alt without end"
    return {"alt": alts, "requests": counts["->>"], "replies": counts["-->>"], "notifies": counts["-)"]}


# --- strace ------------------------------------------------------------------------------------
async def test_strace_of_nginx_4_matches_its_golden_file():
    text = views.strace(await trace_of("nginx", "4"))
    golden("nginx4.strace", text)
    lines = text.splitlines()
    assert '[pid 1] execve("/bin/init", ["init", "/bin/nginx", "nginx", "4"], /* 0 vars */) = 0' in lines
    assert [line for line in lines if line.startswith("[pid 2] fork()")] == [
        f"[pid 2] fork() = {n}" for n in (3, 4, 5, 6)
    ]
    assert "[pid 2] <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 10}], 0, NULL) = 3" in lines
    assert "[pid 1] wait4(-1, NULL, 0, NULL) = -1 ECHILD (No child processes)" in lines
    assert [line for line in lines if "+++" in line][:4] == [
        f"[pid {p}] +++ exited with {7 + p} +++" for p in (3, 4, 5, 6)
    ]


async def test_strace_of_threads_3_matches_its_golden_file():
    text = views.strace(await trace_of("threads", "3"))
    golden("threads3.strace", text)
    clones = [line for line in text.splitlines() if "clone(" in line]
    assert len(clones) == 3
    assert clones[0].startswith(
        "[pid 2] clone(flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|"
        "CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, fn=worker, arg=0, parent_tid=0x"
    )
    assert clones[0].endswith(") = 3")


async def test_strace_pairs_every_unfinished_call_with_its_resumption():
    for trace in (await trace_of("nginx", "4"), await trace_of("threads", "3")):
        open_calls: dict[str, str] = {}
        for line in views.strace(trace).splitlines():
            pid, _, rest = line.partition("] ")
            if m := re.match(r"(\w+)\(.*<unfinished \.\.\.>$", rest):
                assert pid not in open_calls, f"{pid} has two calls in flight"
                open_calls[pid] = m[1]
            elif m := re.match(r"<\.\.\. (\w+) resumed>", rest):
                assert open_calls.pop(pid) == m[1]
        assert open_calls == {}


async def test_strace_one_pid_has_no_prefix_and_ops_filter_keeps_exits():
    trace = await trace_of("nginx", "4")
    assert views.strace(trace, pid=2, ops=["fork", "exit"]) == (  # signals stay too, as strace -e trace=
        "fork() = 3\nfork() = 4\nfork() = 5\nfork() = 6\n"
        "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=3, si_uid=0, si_status=10, si_utime=0, si_stime=0} ---\n"
        "+++ exited with 0 +++\n"
    )
    only_master = views.strace(trace, pid=2).splitlines()
    assert "wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 10}], 0, NULL) = 3" in only_master  # nothing between
    assert not any(line.startswith("[pid") for line in only_master)


async def test_strace_shows_errors_exits_signals_and_clone3(run):
    result = await run(
        """
        from ukernel.abi import CLONE_THREAD, SIGCHLD

        async def main(sys, argv):
            pid = await sys.vfork()
            if pid == 0:
                await sys.execve("/bin/hello", ["hello"])
            await sys.waitpid(pid, 0)
            pid = await sys.clone3(flags=0, exit_signal=SIGCHLD)
            if pid == 0:
                await sys.exit(5)
            await sys.waitpid(pid, 0)
            pid = await sys.fork()
            if pid == 0:
                await sys.poke(0, b"x")
            await sys.waitpid(pid, 0)
            try:
                await sys.clone(CLONE_THREAD)
            except OSError:
                pass
            await sys.exit_group(4)
        """
    )
    lines = views.strace(result.trace).splitlines()
    expected_in_order = [
        "[pid 2] vfork( <unfinished ...>",
        '[pid 3] execve("/bin/hello", ["hello"], /* 0 vars */) = 0',
        "[pid 3] +++ exited with 0 +++",
        "[pid 2] <... vfork resumed>) = 3",
        "[pid 2] clone3({flags=0, exit_signal=SIGCHLD}) = 4",
        "[pid 4] exit(5) = ?",
        "[pid 4] +++ exited with 5 +++",
        '[pid 5] poke(NULL, "x" <unfinished ...>) = ?',
        "[pid 5] +++ killed by SIGSEGV +++",
        "[pid 2] <... wait4 resumed>[{WIFSIGNALED(s) && WTERMSIG(s) == SIGSEGV}], 0, NULL) = 5",
        "[pid 2] clone(flags=CLONE_THREAD) = -1 EINVAL (Invalid argument)",
        "[pid 2] exit_group(4) = ?",
        "[pid 2] +++ exited with 4 +++",
    ]
    positions = [lines.index(line) for line in expected_in_order]
    assert positions == sorted(positions), lines
    assert views.pstree(result.trace) == "init───t─┬─hello\n         └─2*[t]\n"


async def test_strace_prints_pipe2s_fds_in_its_array(run):
    result = await run(
        """
        from ukernel.abi import O_CLOEXEC, O_APPEND

        async def main(sys, argv):
            await sys.pipe2(0)
            await sys.pipe2(O_CLOEXEC)
            try:
                await sys.pipe2(O_APPEND)
            except OSError:
                pass
        """
    )
    assert [line for line in views.strace(result.trace, pid=2).splitlines() if line.startswith("pipe2")] == [
        "pipe2([3, 4], 0) = 0",
        "pipe2([5, 6], O_CLOEXEC) = 0",
        "pipe2(NULL, O_APPEND) = -1 EINVAL (Invalid argument)",
    ]


def test_strace_of_hand_made_events_restart_and_escapes():
    """The restarts strace shows: an SA_RESTART call again as a new call, a restart block as
    restart_syscall, EINTR after a handler as rt_sigreturn's result."""

    def call(op: str, msgid: int, args: dict, *exits: dict) -> list[dict]:
        common = {"op": op, "msgid": msgid, "pid": 9}
        return [{"type": "syscall_enter", **common, "args": args}] + [
            {"type": "syscall_exit", **common, **outcome} for outcome in exits
        ]

    handler = {"type": "signal", "pid": 9, "action": "handler", "info": {"signo": 10, "code": -6, "pid": 9}}
    events = call("read", 7, {"fd": 0, "n": 4}, {"errno": "ERESTARTSYS"}, {"result": b"ab"})
    events += call("nanosleep", 8, {"seconds": 2}, {"errno": "ERESTART_RESTARTBLOCK"}, {"result": 0})
    events += call("pause", 9, {}, {"errno": "ERESTARTNOHAND"})
    events += [handler, {"type": "syscall_exit", "op": "pause", "msgid": 9, "pid": 9, "errno": "EINTR", "mask": [10]}]
    events += call("write", 10, {"fd": 1, "data": b'a"\t\x00\x01' + b"x" * 40}, {"result": 45})
    for n, e in enumerate(events):
        e["seq"] = n
    assert views.strace(events).splitlines() == [
        "read(0, NULL, 4) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)",
        'read(0, "ab", 4) = 2',
        "nanosleep(2) = ? ERESTART_RESTARTBLOCK (Interrupted by signal)",
        "restart_syscall(<... resuming interrupted nanosleep ...>) = 0",
        "pause() = ? ERESTARTNOHAND (To be restarted if no handler)",
        "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_TKILL, si_pid=9, si_uid=0} ---",
        "rt_sigreturn({mask=[USR1]}) = -1 EINTR (Interrupted system call)",
        'write(1, "a\\"\\t\\0\\1xxxxxxxxxxxxxxxxxxxxxxxxxxx"..., 45) = 45',
    ]


# --- pstree ------------------------------------------------------------------------------------
async def test_pstree_folds_identical_workers_and_braces_threads():
    nginx = views.pstree(await trace_of("nginx", "4"))
    threads = views.pstree(await trace_of("threads", "3"))
    assert nginx == "init───nginx───4*[nginx]\n"
    assert threads == "init───threads───3*[{threads}]\n"
    golden("nginx4.pstree", nginx)
    golden("threads3.pstree", threads)
    assert views.pstree(await trace_of("threads", "3"), pids=True, ascii=True) == (
        "init(1)---threads(2)-+-{threads}(3)\n"
        "                     |-{threads}(4)\n"
        "                     `-{threads}(5)\n"
    )


async def test_views_inside_a_pid_namespace_name_tasks_by_their_global_pid():
    """container's child is pid 1 of a new pid namespace and sh's fork returns 2 there: the
    clone's exit carries the global pid (child), and the views use it, not the result."""
    trace = await trace_of("container", "sh", "-c", "ps")
    clones = [
        (e["op"], e["pid"], e["result"], e["child"]) for e in trace if e["type"] == "syscall_exit" and "child" in e
    ]
    assert clones[-2:] == [("clone", 2, 3, 3), ("fork", 3, 2, 4)]
    assert views.pstree(trace, pids=True) == "init(1)───container(2)───sh(3)───ps(4)\n"
    exits = [line for line in views.strace(trace).splitlines() if "+++" in line]
    assert exits == [
        "[pid 4] +++ exited with 0 +++",
        "[pid 3] +++ exited with 0 +++",
        "[pid 2] +++ exited with 0 +++",
        "[pid 1] +++ exited with 0 +++",  # its own exit_group(0) says so
    ]
    assert "[pid 3] fork() = 2" in views.strace(trace).splitlines()  # strace prints the result as the caller sees it
    assert check_chrome(views.chrome(trace))["processes"] == {
        views.CHROME_PID: "ukernel",
        1: "init",
        2: "container",
        3: "sh",
        4: "ps",
    }
    assert "init(1)───container(2)───sh(3)───ps(4)" in views.html(trace)


def test_pstree_draws_branches_and_folds_whole_subtrees():
    def spawn(parent: int, child: int, msgid: int, op: str = "fork", flags: int = 0) -> list[dict]:
        args = {"flags": flags} if op == "clone" else {}
        return [
            {"type": "syscall_enter", "op": op, "msgid": msgid, "pid": parent, "args": args},
            {"type": "syscall_exit", "op": op, "msgid": msgid, "pid": parent, "result": child},
        ]

    def execve(pid: int, path: str, msgid: int) -> list[dict]:
        return [
            {"type": "syscall_enter", "op": "execve", "msgid": msgid, "pid": pid, "args": {"path": path}},
            {"type": "syscall_exit", "op": "execve", "msgid": msgid, "pid": pid, "result": 0},
        ]

    events = execve(1, "/bin/init", 1) + spawn(1, 2, 2) + execve(2, "/bin/sh", 3)
    for n, child in enumerate((3, 4)):  # two sh children that each run sleep
        events += spawn(2, child, 10 + n) + execve(child, "/bin/sh", 20 + n) + spawn(child, child + 10, 30 + n)
        events += execve(child + 10, "/bin/sleep", 40 + n)
    events += spawn(2, 5, 50, "clone", 0x10F00)  # a thread of sh
    events += spawn(1, 6, 51, "clone", 0x8000 | 17) + spawn(6, 7, 52, "clone", 0x8000)  # CLONE_PARENT: 7 is 1's child
    # psmisc's order: children by name (init before sh), threads after processes
    assert views.pstree(events) == ("init─┬─2*[init]\n     └─sh─┬─2*[sh───sleep]\n          └─{sh}\n")


# --- route and mermaid ---------------------------------------------------------------------------
async def test_route_of_a_fork_is_its_copy_process_steps_with_flags():
    text = views.route(await trace_of("nginx", "4"), syscall="fork", pid=2, nth=1)
    golden("nginx4-fork.route", text)
    lines = text.splitlines()
    assert re.fullmatch(r"#\d+ \[pid 2\] fork\(\) = 4", lines[0])
    assert [line.split()[4:] for line in lines[1:]] == [
        ["sched_fork"],
        ["dup_files", "[no", "CLONE_FILES]"],
        ["copy_fs", "[no", "CLONE_FS]"],
        ["copy_sighand", "[no", "CLONE_SIGHAND]"],
        ["copy_signal", "[no", "CLONE_THREAD]"],
        ["dup_mm", "[no", "CLONE_VM]"],
        ["share_nsproxy", "[no", "CLONE_NEW*]"],
        ["alloc_pid"],
        ["wake_up_new_task"],
    ]


async def test_route_of_a_failed_step_shows_the_errno_and_the_unwind():
    trace = await trace_of("nginx", "2", fail={"copy_mm": "ENOMEM"})
    lines = views.route(trace, syscall="fork", pid=2).splitlines()
    assert lines[0].endswith("fork() = -1 ENOMEM (Cannot allocate memory)")
    assert lines[6].endswith("dup_mm            [no CLONE_VM] = -1 ENOMEM (Cannot allocate memory)")
    assert [line.split()[4] for line in lines[7:]] == [
        "put_signal",
        "put_sighand",
        "put_fs",
        "put_files",
        "sched_cancel_fork",
    ]
    assert lines[7].endswith("[undo copy_signal]")


def test_route_indents_requests_a_service_sent_while_serving_one():
    events = [
        {"type": "syscall_enter", "op": "open", "msgid": 1, "pid": 2, "args": {"path": "/x", "flags": 0}},
        {"type": "request", "src": "kernel", "dst": "vfs", "op": "open", "msgid": 2, "cause": 1, "pid": 2},
        {"type": "request", "src": "vfs", "dst": "mm", "op": "alloc", "msgid": 3, "cause": 2, "pid": 2},
        {"type": "notify", "src": "mm", "dst": "sched", "op": "poke", "msgid": 4, "cause": 3, "pid": 2},
        {"type": "reply", "src": "mm", "dst": "vfs", "op": "alloc", "msgid": 3, "cause": 2, "pid": 2, "result": 1},
        {"type": "reply", "src": "vfs", "dst": "kernel", "op": "open", "msgid": 2, "cause": 1, "pid": 2, "result": 3},
        {"type": "syscall_exit", "op": "open", "msgid": 1, "pid": 2, "src": "vfs", "result": 3},
    ]
    events[0]["src"], events[0]["dst"] = "pid:2", "vfs"
    assert views.route(events, msgid=1) == (
        '#1 [pid 2] open("/x", O_RDONLY) = 3\n'
        "  #2 kernel -> vfs        open\n"
        "    #3 vfs -> mm         alloc\n"
        "      #4 mm ~> sched      poke\n"
    )
    assert views.route(events, msgid=3).splitlines()[1:] == [
        "  #3 vfs -> mm         alloc",
        "    #4 mm ~> sched      poke",
    ]
    counts = check_mermaid(views.mermaid(events, msgid=1))
    assert counts == {"alt": 0, "requests": 3, "replies": 3, "notifies": 1}


async def test_mermaid_of_a_fork_matches_its_golden_file():
    text = views.mermaid(await trace_of("nginx", "4"), syscall="fork", pid=2)
    golden("nginx4-fork.mmd", text)
    assert check_mermaid(text) == {"alt": 0, "requests": 10, "replies": 10, "notifies": 0}
    assert "    P2->>kernel: fork()" in text.splitlines()
    assert "    kernel->>vfs: dup_files [no CLONE_FILES]" in text.splitlines()


async def test_mermaid_of_a_pthread_clone_matches_its_golden_file():
    text = views.mermaid(await trace_of("threads", "3"), syscall="clone")
    golden("threads3-clone.mmd", text)
    assert check_mermaid(text)["alt"] == 0
    assert "    kernel->>vfs: share_files [CLONE_FILES]" in text.splitlines()


async def test_mermaid_puts_the_unwind_of_a_failed_clone_in_an_alt_block():
    trace = await trace_of("nginx", "2", fail={"copy_mm": "ENOMEM"})
    text = views.mermaid(trace, syscall="fork", pid=2)
    golden("nginx2-fork-enomem.mmd", text)
    assert check_mermaid(text)["alt"] == 1
    lines = text.splitlines()
    inside = lines[lines.index("    alt unwind") + 1 : lines.index("    end")]
    assert [line.split(": ")[1] for line in inside[::2]] == [
        "put_signal [undo copy_signal]",
        "put_sighand [undo copy_sighand]",
        "put_fs [undo copy_fs]",
        "put_files [undo copy_files]",
        "sched_cancel_fork [undo sched_fork]",
    ]
    assert lines[-1] == "    kernel-->>P2: fork = -1 ENOMEM (Cannot allocate memory)"
    assert check_mermaid(views.mermaid(trace, syscall="fork", pid=2, values=True))["alt"] == 1


async def test_mermaid_of_every_syscall_and_exit_parses():
    for trace in (await trace_of("nginx", "4"), await trace_of("threads", "3")):
        for e in trace:
            if e["type"] == "syscall_enter":
                check_mermaid(views.mermaid(trace, msgid=e["msgid"], values=True))
        exits = views.mermaid(trace, syscall="exit", nth=1)
        assert check_mermaid(exits)["requests"] >= 6


def test_mermaid_escapes_what_it_reserves():
    assert views.mermaid_text("a;b #1 {x} <y> end End endless") == (
        "a#59;b #35;1 #123;x#125; #lt;y#gt; #101;nd #69;nd endless"
    )
    assert views.mermaid_id("end") == "svc_end"
    assert views.mermaid_id("pid_2") == "pid_2"
    events = [
        {"type": "syscall_enter", "src": "pid:3", "dst": "kernel", "op": "weird", "msgid": 1, "pid": 3, "args": {}},
        {"type": "request", "src": "kernel", "dst": "end", "op": "a;b#c{d}", "msgid": 2, "cause": 1, "pid": 3},
        {
            "type": "reply",
            "src": "end",
            "dst": "kernel",
            "op": "a;b#c{d}",
            "msgid": 2,
            "cause": 1,
            "pid": 3,
            "result": {"k": "v;"},
        },
        {"type": "syscall_exit", "src": "kernel", "dst": "pid:3", "op": "weird", "msgid": 1, "pid": 3, "result": 0},
    ]
    text = views.mermaid(events, msgid=1, values=True)
    check_mermaid(text)
    assert "    participant svc_end as #101;nd service" in text.splitlines()
    assert "    participant P3 as pid 3" in text.splitlines()  # a task never exec'd here has no comm
    assert "    kernel->>svc_end: a#59;b#35;c#123;d#125;()" in text.splitlines()
    assert '    svc_end-->>kernel: k="v#59;"' in text.splitlines()


def test_selecting_a_route_that_is_not_there_says_what_there_is():
    with pytest.raises(ValueError, match="the trace has 0 clone calls, not 1"):
        views.route([], syscall="clone")
    with pytest.raises(ValueError, match="no syscall or request #5"):
        views.mermaid([], msgid=5)


# --- assert_route ------------------------------------------------------------------------------
async def test_assert_route_shows_both_routes_side_by_side():
    trace = await trace_of("nginx", "4")
    route = [
        ("sched", "sched_fork"),
        ("vfs", "dup_files"),
        ("vfs", "copy_fs"),
        ("signals", "copy_sighand"),
        ("signals", "copy_signal"),
        ("mm", "dup_mm"),
        ("namespaces", "share_nsproxy"),
        ("pid", "alloc_pid"),
        ("sched", "wake_up_new_task"),
    ]
    views.assert_route(trace, route, syscall="fork", pid=2, nth=3)
    wrong = [*route[:1], ("vfs", "share_files"), *route[2:-1]]
    with pytest.raises(AssertionError) as info:
        views.assert_route(trace, wrong, syscall="fork", pid=2)
    message = str(info.value)
    assert message.splitlines()[:4] == [
        "route of fork #0 of pid 2 differs:",
        "   expected                   actual",
        "   sched sched_fork           sched sched_fork",
        " ! vfs share_files            vfs dup_files",
    ]
    assert message.splitlines()[-1] == " !                            sched wake_up_new_task"


# --- stats -------------------------------------------------------------------------------------
async def test_stats_counts_messages_per_service_and_syscalls_per_pid():
    text = views.stats(await trace_of("nginx", "4"))
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in text.splitlines() if line.startswith("  ")}
    assert rows[("vfs", "dup_files")][:2] == ["6", "0"]  # init's kernel_thread, 1 + 4 forks
    count, errors, mean, top = rows[("mm", "dup_mm")]
    assert (count, errors) == ("5", "0") and 0 < float(mean) <= float(top)
    pids = {line.split()[0]: line.split(None, 3)[1:] for line in text.split("syscalls by pid:")[1].splitlines()[2:]}
    assert pids["2"] == [  # init's child leads its own process group before its execve
        "14",
        "0",
        "fork 4, wait4 4, write 2, execve 1, exit_group 1, getpid 1, setpgid 1",
    ]
    # init leads a session and asks whether the console is a terminal (isatty: ENOTTY, stdin is given)
    assert pids["1"] == ["7", "2", "wait4 2, execve 1, exit_group 1, fork 1, ioctl 1, setsid 1"]


# --- load and the trace command ------------------------------------------------------------------
def as_json(events: list[dict]) -> list[dict]:
    return [json.loads(json.dumps(e, default=_json_default)) for e in events]


async def test_load_reads_back_what_the_jsonl_sink_wrote(tmp_path):
    result, jsonl = await traced("threads", "3")
    path = tmp_path / "t.jsonl"
    path.write_text(jsonl)
    events = load(path)
    assert events == as_json(result.trace)
    assert load(io.StringIO(jsonl)) == events
    for view in (views.strace, views.pstree, views.route, views.mermaid):
        assert view(events) == view(result.trace), view.__name__


def test_load_checks_the_schema_header_and_names_bad_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "schema", "version": 1}\n\n{"seq": 1, "type": "sched", "op": "pick"}\n')
    assert load(path) == [{"seq": 1, "type": "sched", "op": "pick"}]
    path.write_text('{"type": "schema", "version": 99}\n')
    with pytest.raises(ValueError, match="schema version 99"):
        load(path)
    path.write_text('{"seq": 1, "type": "sched"}\nnot json\n')
    with pytest.raises(ValueError, match=r"t\.jsonl: not a ukernel trace \(line 2: not JSON: "):
        load(path)


def ukernel_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ukernel.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_trace_command_prints_the_views_of_a_run_trace_file(tmp_path):
    path = tmp_path / "nginx.jsonl"
    assert ukernel_cli("run", "--trace", str(path), "nginx", "2").returncode == 0
    events = load(path)
    done = ukernel_cli("trace", "strace", "-f", "-p", "1", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == views.strace(events, align=40, pid_width=5)  # strace's -a 40 and [pid %5u]
    assert "[pid     2] fork()                      = 4" in done.stdout.splitlines()
    done = ukernel_cli("trace", "strace", str(path), "-p", "2", "-e", "fork,wait4")
    assert done.stdout.splitlines()[:2] == [f"{'fork()':<39} = 3", f"{'fork()':<39} = 4"]
    done = ukernel_cli("trace", "mermaid", str(path), "-p", "2", "-e", "fork", "--nth", "1")
    assert done.stdout == views.mermaid(events, syscall="fork", pid=2, nth=1)
    check_mermaid(done.stdout)
    done = ukernel_cli("trace", "route", str(path), "-e", "clone")
    assert (done.returncode, done.stderr) == (2, "ukernel: the trace has 0 clone calls, not 1\n")


# --- chrome: Chrome Trace Event JSON for Perfetto ---------------------------------------------------
METADATA = {"process_name", "thread_name", "process_sort_index", "thread_sort_index"}


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_chrome(trace: dict) -> dict:
    """What Perfetto's JSON importer needs, checked event by event; the slices per track, named."""
    assert json.loads(json.dumps(trace)) == trace, "not plain JSON"
    events = trace["traceEvents"]
    names: dict[tuple[int, int], str] = {}
    processes: dict[int, str] = {}
    slices: dict[tuple[int, int], list[dict]] = {}
    flows: dict[object, dict[str, dict]] = {}
    for e in events:
        assert e["ph"] in ("X", "s", "f", "M"), e
        assert isinstance(e["name"], str) and e["name"], e
        assert is_int(e["pid"]) and is_int(e["tid"]), e
        if e["ph"] == "M":
            assert e["name"] in METADATA, e
            if e["name"].endswith("_name"):
                assert isinstance(e["args"]["name"], str) and e["args"]["name"], e
                if e["name"] == "thread_name":
                    assert (e["pid"], e["tid"]) not in names, f"two names for one thread: {e}"
                    names[(e["pid"], e["tid"])] = e["args"]["name"]
                else:
                    processes[e["pid"]] = e["args"]["name"]
            else:
                assert is_int(e["args"]["sort_index"]), e
            continue
        assert is_number(e["ts"]) and e["ts"] >= 0, e
        assert isinstance(e.get("cat", ""), str)
        if e["ph"] == "X":
            assert is_number(e["dur"]) and e["dur"] >= 0, e
            assert isinstance(e.get("args", {}), dict), e
            slices.setdefault((e["pid"], e["tid"]), []).append(e)
        else:
            assert is_int(e["id"]) or isinstance(e["id"], str), e
            assert e["ph"] not in flows.get(e["id"], {}), f"two {e['ph']} for flow {e['id']}"
            flows.setdefault(e["id"], {})[e["ph"]] = e
            if e["ph"] == "f":
                assert e["bp"] == "e", e
    assert [e["ts"] for e in events if e["ph"] != "M"] == sorted(e["ts"] for e in events if e["ph"] != "M")
    # Slices on one track nest: sorted by start (longer first), each ends within the one it starts in.
    for track, xs in slices.items():
        assert track in names and track[0] in processes, f"track {track} has no thread_name/process_name"
        open_ends: list[float] = []
        for x in sorted(xs, key=lambda x: (x["ts"], -x["dur"])):
            while open_ends and open_ends[-1] <= x["ts"]:
                open_ends.pop()
            end = x["ts"] + x["dur"]
            assert not open_ends or end <= open_ends[-1], f"{names[track]}: {x} overlaps its parent"
            open_ends.append(end)
    # A flow starts inside a slice of its caller's track and ends inside the handler's slice.
    for fid, pair in flows.items():
        assert set(pair) == {"s", "f"}, f"flow {fid} is {set(pair)}"
        for e in pair.values():
            track = (e["pid"], e["tid"])
            assert any(x["ts"] <= e["ts"] <= x["ts"] + x["dur"] for x in slices.get(track, [])), (
                f"flow {fid} {e['ph']} at {e['ts']} is in no slice of {names.get(track)}"
            )
    return {
        "tracks": slices,  # (pid, tid) -> its X events; "threads" names them
        "threads": names,
        "processes": processes,
        "flows": flows,
    }


async def test_chrome_trace_has_what_perfetto_needs():
    for program, args in (("nginx", ("4",)), ("threads", ("3",))):
        trace = await trace_of(program, *args)
        checked = check_chrome(views.chrome(trace))
        requests = [e for e in trace if e["type"] in ("request", "notify")]
        calls = [e for e in trace if e["type"] == "syscall_enter"]
        xs = [x for xs in checked["tracks"].values() for x in xs]
        messages = [x for x in xs if x["cat"] == "message"]
        assert sorted(x["args"]["msgid"] for x in messages) == sorted(e["msgid"] for e in requests)
        assert sorted(x["args"]["msgid"] for x in xs if x["cat"] == "syscall") == sorted(e["msgid"] for e in calls)
        assert sorted(checked["flows"]) == sorted(e["msgid"] for e in requests)  # every request has its caller
        for track, slist in checked["tracks"].items():  # a message on its service's track ("pid #2": concurrent)
            for x in slist:
                if x["cat"] == "message":
                    assert checked["threads"][track].split(" #")[0] == x["args"]["dst"], (track, x)
        ukernel_pid = views.CHROME_PID
        assert checked["processes"][ukernel_pid] == "ukernel"
        tracks = {name for (pid, _), name in checked["threads"].items() if pid == ukernel_pid}
        assert {"kernel", "sched", "vfs", "signals", "namespaces", "pid", "mm", "cpu0"} <= tracks
    assert checked["processes"] == {ukernel_pid: "ukernel", 1: "init", 2: "threads"}
    assert {tid: name for (pid, tid), name in checked["threads"].items() if pid == 2} == {
        2: "threads",
        3: "{threads}",
        4: "{threads}",
        5: "{threads}",
    }


async def test_chrome_flows_go_from_the_syscall_to_the_service_that_handles_it():
    trace = await trace_of("nginx", "4")
    checked = check_chrome(views.chrome(trace))
    fork = views.select_route(trace, syscall="fork", pid=2)
    dup = next(e for e in fork.requests if e["op"] == "dup_files")
    start, end = checked["flows"][dup["msgid"]]["s"], checked["flows"][dup["msgid"]]["f"]
    assert (start["pid"], start["tid"]) == (2, 2)  # from the task's fork slice
    assert checked["threads"][(end["pid"], end["tid"])] == "vfs"
    (fork_slice,) = [x for x in checked["tracks"][(2, 2)] if x["args"]["msgid"] == fork.root["msgid"]]
    assert fork_slice["name"] == "fork" and fork_slice["args"]["call"] == "fork() = 3"
    assert fork_slice["ts"] == fork.root["seq"] and fork_slice["ts"] + fork_slice["dur"] == fork.exit["seq"]


async def test_chrome_of_failures_kills_and_exits_nests(run):
    result = await run(
        """
        async def main(sys, argv):
            pid = await sys.vfork()
            if pid == 0:
                await sys.execve("/bin/hello", ["hello"])
            await sys.waitpid(pid, 0)
            pid = await sys.fork()
            if pid == 0:
                await sys.poke(0, b"x")
            await sys.waitpid(pid, 0)
            await sys.exit_group(4)
        """
    )
    checked = check_chrome(views.chrome(result.trace))
    (poke,) = [x for xs in checked["tracks"].values() for x in xs if x["name"] == "poke"]
    assert poke["dur"] > 0  # killed in the call: it lasts through its do_exit
    check_chrome(views.chrome(await trace_of("nginx", "2", fail={"copy_mm": "ENOMEM"})))


def test_chrome_puts_overlapping_requests_on_a_second_track():
    def msg(seq, kind, msgid, **more):
        src, dst = ("kernel", "svc") if kind == "request" else ("svc", "kernel")
        return {"seq": seq, "type": kind, "src": src, "dst": dst, "op": "op", "msgid": msgid, "pid": None} | more

    events = [
        msg(1, "request", 1, cause=None),
        msg(2, "request", 2, cause=None),
        msg(3, "reply", 1, result=0),
        msg(4, "request", 3, cause=None, args={"data": b"\xff<"}),
        msg(5, "reply", 3, result=(1, 2)),
        msg(6, "reply", 2, errno="EINVAL", message="no"),
    ]
    checked = check_chrome(views.chrome(events))
    tracks = {checked["threads"][t]: xs for t, xs in checked["tracks"].items()}
    assert [(x["ts"], x["dur"]) for x in tracks["svc"]] == [(1, 2), (4, 1)]
    assert [(x["ts"], x["dur"]) for x in tracks["svc #2"]] == [(2, 4)]
    assert tracks["svc"][1]["args"]["args"] == {"data": "\\xff<"} and tracks["svc"][1]["args"]["result"] == [1, 2]
    assert tracks["svc #2"][0]["args"]["errno"] == "EINVAL"


async def test_chrome_of_a_loaded_trace_is_the_same():
    result, jsonl = await traced("threads", "3")
    assert views.chrome(load(io.StringIO(jsonl))) == views.chrome(result.trace)


# --- html: the page ---------------------------------------------------------------------------------
class Page(HTMLParser):
    """The parts of the html view's page the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attrs))
        if tag == "script":
            self._script = attrs

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self.scripts.append((self._script, data))
        else:
            self.text.append(data)

    def having(self, cls: str) -> list[dict]:
        return [attrs for _, attrs in self.tags if cls in attrs.get("class", "").split()]

    def data(self) -> dict:
        (text,) = [t for a, t in self.scripts if a.get("id") == "trace-data"]
        return json.loads(text)


def check_html(text: str, route: views.Route) -> Page:
    page = Page(text)
    arrows = page.having("msg")
    assert len(arrows) == len(route.events)
    assert [a["data-ev"] for a in arrows] == [str(k) for k in range(len(route.events))]
    kinds = [e["type"] for e in route.events]
    assert len(page.having("request")) == kinds.count("request") + kinds.count("syscall_enter")
    assert len(page.having("reply")) == kinds.count("reply") + kinds.count("syscall_exit")
    assert len(page.data()["route"]) == len(route.events)
    assert [a.get("id") for _, a in page.tags if a.get("id") in ("diagram", "filter", "syscalls", "detail")] == [
        "diagram",
        "detail",
        "filter",
        "syscalls",
    ]
    # Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg\")", text)
    return page


async def test_html_draws_the_programs_first_fork_by_default():
    trace = await trace_of("nginx", "4")
    text = views.html(trace)
    fork = views.select_route(trace, syscall="fork", pid=2)
    page = check_html(text, fork)
    assert len(page.having("msg")) == 20  # fork, 9 requests, 9 replies, the return
    first = next(e for e in trace if e["type"] == "syscall_enter" and e["op"] == "fork" and e["pid"] == 2)
    assert f"Route of #{first['msgid']} [pid 2] fork() = 3" in "".join(page.text)  # msgids shift with /bin's size
    assert "init(1)───nginx(2)─┬─nginx(3)" in "".join(page.text)
    rows = [a for tag, a in page.tags if tag == "tr" and "call" in a.get("class", "").split()]
    assert len(rows) == sum(e["type"] == "syscall_enter" for e in trace)
    assert set(page.data()["calls"]) == {str(a["data-msgid"]) for a in rows}
    assert ".msg.reply .line { stroke: var(--rep); stroke-dasharray" in text  # replies dashed


def _first_call(trace: list[dict], op: str, pid: int) -> dict:
    return next(e for e in trace if e["type"] == "syscall_enter" and e["op"] == op and e["pid"] == pid)


async def test_route_mermaid_and_html_default_to_the_programs_first_clone():
    """Not init's own fork, which is the same for every program."""
    for program, args, op in (("nginx", ("4",), "fork"), ("container", ("sh", "-c", "ps"), "clone")):
        trace = await trace_of(program, *args)
        first = _first_call(trace, op, 2)
        assert views.default_route(trace).root is first
        text = views.route(trace)
        assert text == views.route(trace, syscall=op, pid=2)
        assert text.splitlines()[0].startswith(f"#{first['msgid']} [pid 2] {op}(")
        assert views.mermaid(trace) == views.mermaid(trace, syscall=op, pid=2)
        assert '<h2 id="route-title">Route of ' + f"#{first['msgid']} [pid 2] {op}(" in views.html(trace)


async def test_with_no_clone_the_views_draw_the_programs_first_syscall_with_messages():
    trace = await trace_of("hello")
    execve = _first_call(trace, "execve", 2)  # setpgid before it sends no message
    title = f'#{execve["msgid"]} [pid 2] execve("/bin/hello", ["hello"], /* 0 vars */) = 0'
    assert views.route(trace).splitlines()[0] == title
    assert views.mermaid(trace) == views.mermaid(trace, syscall="execve", pid=2)
    check_html(views.html(trace), views.select_route(trace, syscall="execve", pid=2))
    assert f"Route of {escape(title)}" in views.html(trace)
    silent = [e for e in trace if e["type"] in ("syscall_enter", "syscall_exit") and e["op"] not in views.CLONE_FAMILY]
    with pytest.raises(ValueError, match="^no syscall in this trace sent a message$"):
        views.route(silent)
    with pytest.raises(ValueError, match="^no syscall in this trace sent a message$"):
        views.mermaid(silent)
    assert '<h2 id="route-title">Route of no syscall in this trace sent a message</h2>' in views.html(silent)


async def test_html_draws_the_route_asked_for_and_the_unwind():
    trace = await trace_of("threads", "3")
    check_html(views.html(trace), views.select_route(trace, syscall="clone", pid=2))
    check_html(views.html(trace, syscall="clone", nth=2), views.select_route(trace, syscall="clone", nth=2))
    check_html(views.html(trace, syscall="exit", nth=1), views.select_route(trace, syscall="exit", nth=1))
    failed = await trace_of("nginx", "2", fail={"copy_mm": "ENOMEM"})
    route = views.select_route(failed, syscall="fork", pid=2)
    page = check_html(views.html(failed, syscall="fork", pid=2), route)
    assert len(page.having("unwind")) == 1
    assert len(page.having("error")) == 2  # copy_mm's reply and the fork's return


def test_html_escapes_what_the_trace_says():
    events = [
        {"seq": 1, "type": "syscall_enter", "src": "pid:3", "dst": "kernel", "op": "fork", "msgid": 1, "pid": 3},
        {"seq": 2, "type": "request", "src": "kernel", "dst": "<b>", "op": "</script><i>", "msgid": 2, "cause": 1},
        {"seq": 3, "type": "reply", "src": "<b>", "dst": "kernel", "op": "</script><i>", "msgid": 2, "result": b"<"},
        {"seq": 4, "type": "syscall_exit", "src": "kernel", "dst": "pid:3", "op": "fork", "msgid": 1, "result": 4},
    ]
    text = views.html(events)
    page = check_html(text, views.select_route(events))
    assert not any(tag in ("b", "i") for tag, _ in page.tags)
    assert page.data()["route"][2]["result"] == "<"
    assert "</script><i>" not in text
    assert views.html([]).count('class="msg') == 0


def test_html_page_has_its_style_and_script_from_the_package_files():
    files = resources.files("ukernel.trace.views")
    css, js = files.joinpath("html.css").read_text(), files.joinpath("html.js").read_text()
    page = views.html([])
    assert f"<style>\n{css}</style>" in page and f"<script>\n{js}</script>" in page
    assert ".msg.reply .line" in css and "applyFilter" in js
    # A wheel ships them only if pyproject.toml says so (an editable install would find them anyway).
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["ukernel.trace.views"]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in shipped) for name in ("html.css", "html.js"))


def test_ukernel_testing_does_not_import_the_views():
    code = "import sys, ukernel.testing; print('ukernel.trace.views' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "False\n"


async def test_trace_command_writes_chrome_json_and_html(tmp_path):
    path = tmp_path / "threads.jsonl"
    _, jsonl = await traced("threads", "3")
    path.write_text(jsonl)
    events = load(path)
    done = ukernel_cli("trace", "chrome", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == views.chrome(events)
    done = ukernel_cli("trace", "html", str(path), "-e", "clone", "--nth", "1")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == views.html(events, syscall="clone", nth=1)
