"""sh: pipelines, redirections, built-ins, background jobs, -c, -i and scripts.

Every run goes through ukernel.run_async (init -> sh -> ...) and must leave
the kernel clean (Result.problems is kernel.check_invariants() after the
run): a pipe end the shell forgot to close would show up there, or as a
pipeline that never ends.
"""

from __future__ import annotations

import textwrap

import pytest
import trio

import ukernel
from ukernel import abi

TIMEOUT = 30
SPIN = b"async def main(sys, argv):\n    for _ in range(int(argv[1])):\n        await sys.sched_yield()\n    return 0\n"


async def sh(script: str, *args: str, files: dict | None = None, **settings) -> ukernel.Result:
    stdin = textwrap.dedent(script).lstrip().encode()
    with trio.fail_after(TIMEOUT):
        r = await ukernel.run_async("sh", ["sh", *args], stdin=stdin, files=files or {}, **settings)
    assert r.problems == []  # kernel.check_invariants() after the run
    return r


def out(r: ukernel.Result) -> list[str]:
    return r.stdout.decode().splitlines()


def waits(r: ukernel.Result, pid: int = 2) -> list[list[int]]:
    """(pid, status) of each wait4 the shell made."""
    return [
        e["result"][:2]
        for e in r.trace
        if e["type"] == "syscall_exit" and e["pid"] == pid and e["op"] == "wait4" and "result" in e
    ]


# --- parsing ----------------------------------------------------------------------------
def test_tokenize_words_quotes_and_operators():
    from userland.sh import tokenize

    assert tokenize("""echo 'a | b' "c  d" e\\ f|cat>x 2>>y 2>&1 <z&  # comment""") == [
        "echo", "a | b", "c  d", "e f", ("|",), "cat", ("redir", 1, ">"), "x",
        ("redir", 2, ">>"), "y", ("redir", 2, ">&"), "1", ("redir", 0, "<"), "z", ("&",),
    ]  # fmt: skip
    assert tokenize("echo '2'>x") == ["echo", "2", ("redir", 1, ">"), "x"]  # a quoted 2 is a word


def test_parse_jobs_pipelines_and_redirections():
    from userland.sh import parse

    assert parse("a x | b > o ; c & d") == [
        ([(["a", "x"], []), (["b"], [(1, ">", "o")])], False),
        ([(["c"], [])], True),
        ([(["d"], [])], False),
    ]
    assert parse("") == [] and parse("  ;  ") == []


@pytest.mark.parametrize("line", ["| cat", "echo |", "echo >", "echo 'open", "a | | b", "> f"])
async def test_syntax_errors_are_reported_and_the_shell_goes_on(line):
    r = await sh(f"{line}\necho next\n")
    assert out(r)[0].startswith("sh: syntax error: ")
    assert out(r)[1:] == ["next"]


# --- pipelines ----------------------------------------------------------------------------
async def test_ls_pipe_cat():
    r = await sh("ls / | cat\n")
    assert out(r) == ["bin", "dev", "etc", "mnt", "proc", "tmp"]
    assert [pid for pid, _ in waits(r)] == [3, 4]


async def test_three_stage_pipeline():
    r = await sh("cat /etc/words | cat | cat\n", files={"/etc/words": b"alpha\nbeta\ngamma\n"})
    assert r.stdout == b"alpha\nbeta\ngamma\n"
    assert waits(r) == [[3, 0], [4, 0], [5, 0]]


async def test_pipeline_children_are_wired_with_dup2_and_the_shell_keeps_no_pipe_end():
    # the middle stage's fd table, as /proc shows it; then the shell's own table
    r = await sh("echo | ls -l /proc/self/fd | cat\nls -l /proc/2/fd\n")
    lines = out(r)
    targets = [line.split(" -> ")[1] for line in lines]
    assert [line.split(" -> ")[0].split()[-1] for line in lines] == ["0", "1", "2", "3", "0", "1", "2"]
    assert targets[0].startswith("pipe:[") and targets[1].startswith("pipe:[") and targets[0] != targets[1]
    assert targets[2] == "/dev/console" and targets[3].endswith("/fd")  # fd 3: ls reading the directory
    assert targets[4:] == ["/dev/console"] * 3  # no pipe end left in the shell


async def test_proc_self_fd_lists_the_fd_reading_it():
    """proc_readfd lists at getdents time, so the fd reading the directory is in it."""
    r = await sh("ls /proc/self/fd\n")
    assert out(r) == ["0", "1", "2", "3"]


async def test_pipeline_status_is_the_last_commands():
    r = await sh("cat /nope | echo ok\nexit\n")
    assert (out(r), r.exit_code) == (["cat: /nope: No such file or directory", "ok"], 0)
    r = await sh("echo ok | cat /nope\n")
    assert (out(r), r.exit_code) == (["cat: /nope: No such file or directory"], 1)


async def test_writer_to_a_closed_pipe_dies_of_sigpipe():
    big = b"y" * 200_000  # more than a pipe holds: cat must block, then find no reader
    r = await sh("cat /etc/big | echo done\n", files={"/etc/big": big})
    assert out(r) == ["done"]
    assert waits(r) == [[3, abi.W_EXITCODE(0, abi.SIGPIPE)], [4, 0]]
    assert r.exit_code == 0


async def test_a_long_stream_goes_through_a_pipeline_intact():
    data = b"".join(b"%06d\n" % i for i in range(20_000))  # 140 kB: every stage blocks and is woken
    r = await sh("cat /etc/data | cat | cat\n", files={"/etc/data": data})
    assert r.stdout == data


async def test_builtins_in_a_pipeline_run_in_the_child():
    r = await sh("pwd | cat\ncd /tmp | cat\npwd\n")
    assert out(r) == ["/", "/"]  # the child's cd does not move the shell


# --- redirections -------------------------------------------------------------------------
async def test_redirect_stdout_to_a_file_then_cat_it():
    r = await sh("echo hi > /tmp/f; cat /tmp/f\n")
    assert r.stdout == b"hi\n"


async def test_redirect_truncates_and_append_appends():
    r = await sh(
        """
        echo one > /tmp/f
        echo two >> /tmp/f
        echo three >>/tmp/f
        cat /tmp/f
        echo new >/tmp/f
        cat /tmp/f
        """
    )
    assert out(r) == ["one", "two", "three", "new"]


async def test_redirect_stdin_from_a_file():
    r = await sh("cat < /etc/motd\ncat</etc/motd | cat\n", files={"/etc/motd": b"welcome\n"})
    assert out(r) == ["welcome", "welcome"]


async def test_redirect_stderr():
    r = await sh("cat /nope 2> /tmp/err\necho --\ncat /tmp/err\nnosuch 2>/tmp/err2\ncat /tmp/err2\n")
    assert out(r) == ["--", "cat: /nope: No such file or directory", "sh: nosuch: No such file or directory"]


async def test_redirect_stderr_into_stdout_through_a_pipe():
    r = await sh("cat /nope 2>&1 | cat > /tmp/both\ncat /tmp/both\n")
    assert out(r) == ["cat: /nope: No such file or directory"]


async def test_redirect_to_a_missing_directory_fails_the_command():
    r = await sh("echo x > /nope/f\nexit\n")
    assert (out(r), r.exit_code) == (["sh: /nope/f: No such file or directory"], 1)
    assert waits(r) == [[3, abi.W_EXITCODE(1)]]


async def test_redirected_files_get_the_umask_applied_mode():
    r = await sh("echo x > /tmp/f\nls -l /tmp\n")
    assert out(r) == ["-rw-r--r--  1     2 f"]


async def test_builtin_with_a_redirection_restores_the_shells_fds():
    r = await sh("pwd > /tmp/p\necho after\ncat /tmp/p\nls /proc/2/fd\n")
    assert out(r) == ["after", "/", "0", "1", "2"]


# --- built-ins ----------------------------------------------------------------------------
async def test_cd_changes_the_shells_directory_and_checks_it_exists():
    r = await sh(
        """
        cd /tmp
        pwd
        mkdir sub
        cd sub
        /bin/pwd
        cd /nope
        cd /etc/motd
        pwd
        cd
        pwd
        """,
        files={"/etc/motd": b"hi\n"},
    )
    assert out(r) == [
        "/tmp",
        "/tmp/sub",
        "sh: cd: /nope: No such file or directory",
        "sh: cd: /etc/motd: Not a directory",
        "/tmp/sub",
        "/",
    ]


async def test_exit_with_a_code_and_without():
    r = await sh("echo a\nexit 5\necho never\n")
    assert (out(r), r.exit_code) == (["a"], 5)
    r = await sh("cat /nope\nexit\n")
    assert r.exit_code == 1
    r = await sh("exit x\n")
    assert (out(r), r.exit_code) == (["sh: exit: x: numeric argument required"], 2)


async def test_command_not_found_is_127_and_a_signal_is_128_plus_n():
    r = await sh("nosuch\n")
    assert r.exit_code == 127
    segv = b"async def main(sys, argv):\n    await sys.peek(16, 4)\n"
    r = await sh("segv\n", files={"/bin/segv": segv})
    assert r.exit_code == 128 + abi.SIGSEGV


# --- background jobs, kill ----------------------------------------------------------------
async def test_background_pipeline_is_reported_once_all_its_commands_end():
    r = await sh("echo a | cat &\n")
    assert out(r) == ["a", "[4]", "[4] done 0"]  # [the pid of its last command]; echo runs first


async def test_kill_term_a_background_sh_job():
    # a background sh runs spin; ps shows both; kill -TERM ends the sh job with 128 + 15
    r = await sh(
        """
        sh -c "spin 400; echo not reached" &
        spin 60
        ps
        kill -TERM 3
        """,
        files={"/bin/spin": SPIN},
    )
    assert out(r) == [
        "[3]",
        "  PID  PPID STAT CMD",
        "    1     0 S    init /bin/sh sh",
        "    2     1 S    sh",
        "    3     2 S    sh -c spin 400; echo not reached",
        "    5     3 R    spin 400",  # 4 was the foreground spin 60
        "    6     2 R    ps",
        "[3] done 143",
    ]
    assert r.exit_code == 0  # kill's status: the background job's does not count


async def test_kill_then_ps_shows_the_job_gone():
    r = await sh("spin 1000 &\nkill 3\nspin 5\nps\n", files={"/bin/spin": SPIN})
    assert out(r) == [
        "[3]",
        "[3] done 143",
        "  PID  PPID STAT CMD",
        "    1     0 S    init /bin/sh sh",
        "    2     1 S    sh",
        "    5     2 R    ps",  # kill is a built-in (it must be, for %N): no fork for it
    ]


# --- -c, -i, scripts ----------------------------------------------------------------------
async def test_sh_c_runs_a_command_string():
    r = await sh("", "-c", "echo one; echo two | cat\necho three")
    assert out(r) == ["one", "two", "three"]


async def test_sh_c_exit_status():
    r = await sh("", "-c", "cat /nope")
    assert r.exit_code == 1


async def test_sh_runs_a_script_file():
    script = b"# a script\ncd /tmp\necho in $PWD-less shell > out\ncat out\nexit 4\n"
    r = await sh("", "/etc/script", files={"/etc/script": script})
    assert (out(r), r.exit_code) == (["in $PWD-less shell"], 4)


async def test_sh_missing_script():
    r = await sh("", "/nope")
    assert (out(r), r.exit_code) == (["sh: /nope: No such file or directory"], 127)


async def test_interactive_prompt():
    r = await sh("echo hi | cat\ncd /tmp\n", "-i")
    assert r.stdout == b"$ hi\n$ $ "


async def test_sh_inside_sh():
    r = await sh("sh -c 'echo inner; exit 3'\nexit\n")
    assert (out(r), r.exit_code) == (["inner"], 3)


async def test_a_named_fifo_between_a_background_reader_and_a_redirected_writer():
    r = await sh("mkfifo /tmp/p\ncat /tmp/p &\necho hi through a fifo > /tmp/p\nls -l /tmp\n")
    assert out(r) == ["[4]", "hi through a fifo", "[4] done 0", "prw-r--r--  1     0 p"]


# --- job control (-i without a terminal: groups and signals, no tcsetpgrp) ------------------
async def test_stop_jobs_bg_kill_wait_and_the_status():
    r = await sh(
        """
        spin 1000 &
        kill -STOP %1
        spin 3
        jobs
        bg
        jobs
        kill %1
        wait
        echo $?
        cat /nope
        echo "status $?"
        fg
        """,
        "-i",
        files={"/bin/spin": SPIN},
    )
    assert r.stdout.decode().replace("$ ", "").splitlines() == [
        "[1] 3",  # [jid] the pid of its last command
        "[1]+  Stopped (signal)        spin 1000",  # reported before the next prompt (WUNTRACED)
        "[1]+  Stopped (signal)        spin 1000",  # jobs
        "[1]+ spin 1000 &",  # bg: SIGCONT to the group
        "[1]+  Running                 spin 1000 &",
        "[1]+  Terminated              spin 1000",  # kill %1: SIGTERM; wait reaps it
        "0",  # wait without operands: 0 (POSIX)
        "cat: /nope: No such file or directory",
        "status 1",  # $? inside "..."
        "sh: fg: current: no such job",
    ]


async def test_each_pipeline_is_a_process_group_set_by_parent_and_child():
    r = await sh("spin 5 | spin 5 &\nwait %1\necho $?\n", "-i", files={"/bin/spin": SPIN})
    calls = [
        (e["pid"], e["args"]["pid"], e["args"]["pgid"])
        for e in r.trace
        if e["type"] == "syscall_enter" and e["op"] == "setpgid"
    ]
    # init's child (2) leads a group of its own before it execs sh, and sh makes sure it does;
    # each child joins the job's group (its first pid, 3) and the shell puts it there too,
    # whichever comes first; echo (5) is a job of its own
    want = [(2, 0, 0), (2, 0, 0), (2, 3, 3), (2, 4, 3), (2, 5, 5), (3, 0, 0), (4, 0, 3), (5, 0, 0)]
    assert sorted(calls) == want
    assert out(r) == ["$ [1] 4", "$ $ 0", "$ "]  # wait %1 reaps it: no Done notice after


async def test_killed_job_status_is_128_plus_the_signal():
    r = await sh("spin 1000 &\nkill -9 %1\nwait %1\necho $?\nkill %7\n", "-i", files={"/bin/spin": SPIN})
    assert r.stdout.decode().replace("$ ", "").splitlines() == ["[1] 3", "137", "sh: kill: %7: no such job"]


async def test_background_without_job_control_reads_dev_null():
    # POSIX 2.9.3: cat & must not eat the script's next lines
    r = await sh("cat &\nwait\necho after\n")
    assert out(r) == ["[3]", "[3] done 0", "after"]


async def test_background_without_job_control_ignores_sigint():
    # POSIX 2.11: without job control an asynchronous list inherits SIGINT and SIGQUIT ignored
    # (spin 5 first: a signal sent before the child has set SIG_IGN would still kill it, as in dash)
    r = await sh("spin 1000 &\nspin 5\nkill -INT 3\nkill -QUIT 3\nspin 5\nkill 3\n", files={"/bin/spin": SPIN})
    assert out(r) == ["[3]", "[3] done 143"]  # only the SIGTERM ended it


def test_tokenize_expands_the_status_outside_single_quotes():
    from userland.sh import tokenize

    assert tokenize("""echo $? "s$?" '$?' x$?y""", 130) == ["echo", "130", "s130", "$?", "x130y"]
