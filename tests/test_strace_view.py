"""The strace view against real strace's formats (issue 16): signal lines, pause and its
restarts, sigaction by handler name, -c's table, -T, -tt, -r and -f/-p.

The expected lines are what ``strace -f`` prints for a C program of the same shape (fork,
kill, pause, waitpid) on Linux 6, with ukernel's pids and without strace's column padding.
"""

from __future__ import annotations

import re

import pytest

from ukernel.trace import views
from ukernel.trace.views.strace import program_pid, strace_summary

SIGNALS = """
from ukernel.abi import SA_RESTART, SIGTERM, SIGUSR1


def on_usr1(sys, sig):
    pass


async def main(sys, argv):
    await sys.sigaction(SIGUSR1, on_usr1, SA_RESTART)
    killed = await sys.fork()
    if killed == 0:
        await sys.pause()
        return 3
    await sys.kill(killed, SIGTERM)
    await sys.waitpid(killed, 0)
    woken = await sys.fork()
    if woken == 0:
        await sys.sigaction(SIGUSR1, on_usr1, 0)
        try:
            await sys.pause()
        except OSError:
            pass
        return 4
    await sys.nanosleep(0.1)
    await sys.kill(woken, SIGUSR1)
    await sys.waitpid(woken, 0)
    return 0
"""


@pytest.fixture
async def signals(run):
    return (await run(SIGNALS)).trace


def chld(pid: int, code: str, status: int | str) -> str:
    return (
        f"--- SIGCHLD {{si_signo=SIGCHLD, si_code={code}, si_pid={pid}, si_uid=0, si_status={status}, "
        "si_utime=0, si_stime=0} ---"
    )


async def test_pause_killed_and_pause_ended_by_a_handler_as_strace_f_prints_them(signals):
    lines = views.strace(signals, pid=2, follow=True).splitlines()
    start = lines.index('[pid 2] execve("/bin/t", ["t"], /* 0 vars */) = 0')
    assert lines[start + 1 :] == [
        "[pid 2] sigaction(SIGUSR1, {sa_handler=on_usr1, sa_mask=[], sa_flags=SA_RESTART}, "
        "{sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}) = 0",
        "[pid 2] fork() = 3",
        "[pid 2] kill(3, SIGTERM) = 0",
        "[pid 2] wait4(3,  <unfinished ...>",
        "[pid 3] pause() = ? ERESTARTNOHAND (To be restarted if no handler)",
        "[pid 3] --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=2, si_uid=0} ---",
        "[pid 3] +++ killed by SIGTERM +++",
        "[pid 2] <... wait4 resumed>[{WIFSIGNALED(s) && WTERMSIG(s) == SIGTERM}], 0, NULL) = 3",
        "[pid 2] " + chld(3, "CLD_KILLED", "SIGTERM"),
        "[pid 2] fork() = 4",
        "[pid 2] nanosleep(0.1 <unfinished ...>",
        "[pid 4] sigaction(SIGUSR1, {sa_handler=on_usr1, sa_mask=[], sa_flags=0}, "
        "{sa_handler=on_usr1, sa_mask=[], sa_flags=SA_RESTART}) = 0",
        "[pid 4] pause( <unfinished ...>",
        "[pid 2] <... nanosleep resumed>) = 0",
        "[pid 2] kill(4, SIGUSR1) = 0",
        "[pid 2] wait4(4,  <unfinished ...>",
        "[pid 4] <... pause resumed>) = ? ERESTARTNOHAND (To be restarted if no handler)",
        "[pid 4] --- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=2, si_uid=0} ---",
        "[pid 4] rt_sigreturn({mask=[]}) = -1 EINTR (Interrupted system call)",
        "[pid 4] exit_group(4) = ?",
        "[pid 4] +++ exited with 4 +++",
        "[pid 2] <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 4}], 0, NULL) = 4",
        "[pid 2] " + chld(4, "CLD_EXITED", 4),
        "[pid 2] exit_group(0) = ?",
        "[pid 2] +++ exited with 0 +++",
    ]


async def test_the_trace_carries_each_delivery_and_the_handlers_name(signals):
    delivered = [(e["pid"], e["op"], e["action"]) for e in signals if e["type"] == "signal"]
    assert delivered == [
        (3, "SIGTERM", "kill"),
        (2, "SIGCHLD", "discard"),  # SIGCHLD's default is to ignore: dropped as it is sent
        (4, "SIGUSR1", "handler"),
        (2, "SIGCHLD", "discard"),
        (1, "SIGCHLD", "discard"),
    ]
    (first, *_) = [e for e in signals if e["type"] == "signal"]
    assert first["info"] == {"signo": 15, "code": 0, "pid": 2, "uid": 0, "status": 0}
    enters = [e for e in signals if e["type"] == "syscall_enter" and e["op"] == "sigaction"]
    assert [(e["pid"], e["args"]["handler"] != "on_usr1", e["handler"]) for e in enters] == [
        (2, True, "on_usr1"),  # args keep libc's token; the event names the function
        (4, True, "on_usr1"),
    ]


async def test_without_f_strace_shows_the_program_and_with_p_one_task(signals):
    assert program_pid(signals) == 2
    own = views.strace_command(signals).splitlines()
    assert own[0] == "setpgid(0, 0)                           = 0"  # init's child, before it execs; -a 40
    assert not any(line.startswith("[pid") for line in own)
    assert "wait4(3, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGTERM}], 0, NULL) = 3" in own  # past column 40: " = "
    assert views.strace_command(signals, pid=3) == (
        "pause()                                 = ? ERESTARTNOHAND (To be restarted if no handler)\n"
        "--- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=2, si_uid=0} ---\n"
        "+++ killed by SIGTERM +++\n"
    )
    followed = views.strace_command(signals, follow=True).splitlines()
    assert {line.split("]")[0] for line in followed} == {"[pid     2", "[pid     3", "[pid     4"}
    assert "[pid     2] fork()                      = 3" in followed  # as strace -f: [pid %5u], -a 40
    assert views.strace_command(signals, pid=1, follow=True, align=0, pid_width=0) == views.strace(signals)


async def test_ops_keep_signal_and_exit_lines_as_strace_e_trace_does(signals):
    assert views.strace(signals, pid=4, ops=["exit_group"]) == (
        "--- SIGUSR1 {si_signo=SIGUSR1, si_code=SI_USER, si_pid=2, si_uid=0} ---\n"
        "exit_group(4) = ?\n"
        "+++ exited with 4 +++\n"
    )


async def test_T_tt_and_r_in_virtual_time(signals):
    tt = views.strace_command(signals, pid=3, timestamps=2, syscall_times=True).splitlines()
    assert re.fullmatch(r"00:00:00\.0\d\d000 pause\(\) {17}= \? ERESTARTNOHAND \(.*\) <0\.\d\d\d000>", tt[0]), tt[0]
    assert {line[:16] for line in tt} == {tt[0][:16]}  # it died at the tick pause returned
    assert [line[16:] for line in tt[1:]] == [
        "--- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=2, si_uid=0} ---",
        "+++ killed by SIGTERM +++",  # no <...> after what is not a call
    ]
    woken = views.strace(signals, pid=4, syscall_times=True).splitlines()
    assert woken[0].endswith(") = 0 <0.001000>")  # sigaction: the tick its kernel entry charged
    assert woken[1].endswith(") <0.101000>")  # pause: until the kill, after the parent's 0.1 s sleep
    assert woken[3] == "rt_sigreturn({mask=[]}) = -1 EINTR (Interrupted system call) <0.000000>"
    relative = views.strace(signals, pid=2, timestamps="r").splitlines()
    assert relative[:2] == [
        "     0.000000 setpgid(0, 0) = 0",
        '     0.001000 execve("/bin/t", ["t"], /* 0 vars */) = 0',
    ]
    after_sleep = relative[relative.index("     0.001000 nanosleep(0.1) = 0") + 1]
    assert after_sleep == "     0.101000 kill(4, SIGUSR1) = 0"  # the 0.1 s the sleep took, and its entry's tick
    every = [line.split("] ", 1)[1][:15] for line in views.strace(signals, timestamps="tt").splitlines()]
    assert every == sorted(every)  # every task's lines: time never goes back
    ttt = views.strace_command(signals, pid=2, timestamps=3).splitlines()
    assert re.fullmatch(r"0\.0\d\d000 setpgid\(0, 0\) +  = 0", ttt[0]) and ttt[0].index("=") == 40, ttt[0]


async def test_c_is_strace_c_s_table(signals):
    table = strace_summary(signals, pid=2, follow=True).splitlines()
    rule = "------ ----------- ----------- --------- --------- ----------------"
    assert table[:2] == ["% time     seconds  usecs/call     calls    errors syscall", rule]
    assert table[-2:-1] == [rule]
    rows = {line.split()[-1]: line for line in table[2:-2]}
    assert rows["pause"].split()[3:] == ["2", "2", "pause"]  # both returned ERESTARTNOHAND
    assert rows["rt_sigreturn"].split()[3:] == ["1", "1", "rt_sigreturn"]
    assert rows["kill"] == "  0.93    0.002000        1000         2           kill"
    assert rows["rt_sigreturn"] == "  0.00    0.000000           0         1         1 rt_sigreturn"
    assert "exit_group" not in rows  # it never returns: strace -c does not count it
    total = table[-1].split()
    assert total[0] == "100.00" and total[-1] == "total"
    assert int(total[3]) == sum(int(line.split()[3]) for line in rows.values())
    assert [float(line.split()[1]) for line in rows.values()] == sorted(
        (float(line.split()[1]) for line in rows.values()), reverse=True
    )  # most time first


async def test_sigchld_to_a_busy_parent_is_one_line_per_pending_signal(run):
    """Four children exit while the parent waits: SIGCHLD is pending once (a standard
    signal does not queue twice), so strace shows one line, with the first child's siginfo."""
    result = await run(
        """
        async def main(sys, argv):
            for n in range(4):
                if await sys.fork() == 0:
                    return 10 + n
            for _ in range(4):
                await sys.waitpid(-1, 0)
            return 0
        """
    )
    lines = views.strace_command(result.trace).splitlines()
    assert [line for line in lines if line.startswith("---")] == [chld(3, "CLD_EXITED", 10)]
