"""A buggy service never crashes the kernel, and the report says whose bug it was (issue 14, items 2, 3).

Each typical bug of a student's service (tests/buggy_services.py) is plugged into a run:
the run ends with a Result, and the report names the buggy file and line, the message
that met the bug and the messages before it. A reply is checked against its op's
contract (ukernel/kernel/contracts.py); service_timeout stops a handler that spins or
never answers; Ctrl-C ends a run whose handler spins.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import buggy_services as bugs
import pytest

import ukernel
from services.pid import PidService
from ukernel.kernel import exit as exit_
from ukernel.kernel import fork, nsproxy
from ukernel.kernel.contracts import CONTRACTS
from ukernel.kernel.task import TaskStruct
from ukernel.reprs import bounded

ROOT = Path(__file__).resolve().parents[1]
UKERNEL = [sys.executable, "-m", "ukernel"]
FORKS = b"""
async def main(sys, argv):
    for _ in range(3):
        if await sys.fork() == 0:
            return 0
    for _ in range(3):
        await sys.waitpid(-1, 0)
    await sys.write(1, b"done\\n")
    return 0
"""


async def run_with(monkeypatch, cls: type | None = None, **settings) -> ukernel.Result:
    """A run with ``cls`` plugged in as a student would (``services=``)."""
    if cls is not None:
        settings["services"] = {cls.name: cls}
    return await ukernel.run_async("/bin/forks", ["forks"], files={"/bin/forks": FORKS}, **settings)


def service_bugs(result: ukernel.Result) -> list[dict]:
    return [e for e in result.trace if e["type"] == "service_bug"]


# --- a handler's exception -------------------------------------------------------------------
async def test_an_exception_in_a_handler_is_reported_with_the_students_line(monkeypatch):
    result = await run_with(monkeypatch, bugs.RaisingPid)
    (site,) = bugs.bug_lines(bugs.RaisingPid)
    (report,) = result.bugs
    lines = report.splitlines()
    assert lines[0] == f"service bug: pid.alloc_pid crashed at {site}: RuntimeError('the allocator lost its place')"
    assert lines[1] == f"  at {site} (the service's code, most recent call last):"
    assert lines[2].startswith(f"    {site} in alloc_pid: raise RuntimeError(")
    assert lines[3] == "  the message: #26 kernel -> pid alloc_pid {ns: 1, set_tid: []} (fork by pid 1)"
    assert lines[4] == "  the messages before it:" and len(lines) == 10
    assert lines[9].startswith("    #25 kernel <- namespaces share_nsproxy = {nsproxy: 7")
    assert result.problems[0] == report  # check_invariants lists it, not "pid.faults: 0 at boot, 1 now"
    assert not any("pid.faults" in p for p in result.problems)
    assert b"OSError: [Errno 5] EIO: pid.alloc_pid crashed at " in result.stdout  # init's fork got EIO
    (event,) = service_bugs(result)
    assert (event["src"], event["op"], event["msgid"], event["kind"]) == ("pid", "alloc_pid", 26, "crash")
    assert event["report"] == report


async def test_an_exception_at_boot_ends_the_run_with_one_report(monkeypatch):
    result = await run_with(monkeypatch, bugs.RaisingAtBootPid)
    (site,) = bugs.bug_lines(bugs.RaisingAtBootPid)
    assert result.error == f"run stopped: pid.alloc_pid crashed at {site}: KeyError(1)"
    assert result.status == ukernel.abi.W_EXITCODE(1) and result.exit_code == 1
    assert result.problems == [*result.bugs, "leaks not counted: the run was stopped (the report above says why)"]
    assert "the message: #8 kernel -> pid alloc_pid {ns: 1, set_tid: []} (kernel_thread by pid 0)" in result.bugs[0]


async def test_with_the_trace_off_the_report_still_names_the_site_and_the_message(monkeypatch):
    bugs.plug(monkeypatch, bugs.RaisingPid)  # a built-in slot's class, not the user's: no events are kept
    result = await run_with(monkeypatch, trace=False)
    (site,) = bugs.bug_lines(bugs.RaisingPid)
    (report,) = result.bugs
    assert report.startswith(f"service bug: pid.alloc_pid crashed at {site}: ")
    assert "  the message: #26 kernel -> pid alloc_pid {ns: 1, set_tid: []} (fork by pid 1)" in report
    assert "before it" not in report


async def test_a_users_service_with_the_trace_off_still_shows_the_messages_before_its_bug(monkeypatch):
    result = await run_with(monkeypatch, bugs.RaisingPid, trace=False)  # as the CLI runs without -v
    (report,) = result.bugs
    assert result.trace == [] and "  the messages before it:" in report
    assert report.splitlines()[9].startswith("    #25 kernel <- namespaces share_nsproxy = {nsproxy: 7")


# --- replies that break their contract ---------------------------------------------------------
async def test_a_reply_of_the_wrong_shape_is_the_services_bug(monkeypatch):
    result = await run_with(monkeypatch, bugs.WrongShapePid)
    (site,) = bugs.bug_lines(bugs.WrongShapePid)
    why = "numbers must be list[int], not str"
    assert result.error == f"run stopped: pid.alloc_pid (#8) broke its reply contract: {why}"
    lines = result.bugs[0].splitlines()
    assert lines[1:4] == [
        "  the reply: {'numbers': '1', 'pid': 2}",
        f"  what is wrong: {why}",
        f"  its handler: {site} (WrongShapePid.alloc_pid)",
    ]
    assert service_bugs(result)[0]["kind"] == "contract"


async def test_a_duplicate_pid_is_caught_at_the_reply_and_kills_only_the_forking_task(monkeypatch):
    result = await run_with(monkeypatch, bugs.DuplicatePid)
    (site,) = bugs.bug_lines(bugs.DuplicatePid)
    (report,) = result.bugs
    why = "pid 1 is in use: live task pid 1 (init) holds it"
    assert report.startswith(f"service bug: pid.alloc_pid (#26) broke its reply contract: {why}\n")
    assert f"  its handler: {site} (DuplicatePid.alloc_pid)" in report
    assert "oops in pid 1 (init) during fork: pid.alloc_pid (#26) broke its reply contract" in result.problems
    assert not any("free_pid" in p for p in result.problems)  # caught at the reply, not later in waitpid
    assert result.error == ""  # the kernel went on: init was killed, the run ended as usual
    assert result.status == ukernel.abi.W_EXITCODE(127)


async def test_a_raise_in_pick_next_ends_the_run_with_the_classes_line(monkeypatch):
    result = await run_with(monkeypatch, sched="buggy_services:RaisingPickNext")
    (site,) = bugs.bug_lines(bugs.RaisingPickNext)
    headline = f"sched.schedule crashed at {site}: IndexError('pick_next: the queue went out of order')"
    assert result.error == f"run stopped: {headline}"
    report = result.bugs[0]
    assert report.startswith(f"service bug: {headline}\n")
    assert f"    {site} in pick_next: raise IndexError(" in report
    assert "services/sched/service.py:" in report  # the frames that led there, after the student's line
    assert result.exit_code == 1


async def test_a_dup_files_without_its_refcount_names_the_students_op(monkeypatch):
    result = await run_with(monkeypatch, bugs.NoRefcountVfs)
    (site,) = bugs.bug_lines(bugs.NoRefcountVfs)
    assert result.error.startswith("run stopped: vfs.put_files crashed at services/vfs/vfs.py:")
    assert result.error.endswith(f"KeyError(2) (after your dup_files at {site})")
    report = result.bugs[0]
    assert "  your code that ran on this service before it:\n" in report
    assert f"    {site}: #" in report and "kernel -> vfs dup_files {files: 7}" in report
    assert result.bugs[1].startswith("service bug: vfs.put_files (#") and "count -1: put more often" in result.bugs[1]


# --- handlers that do not answer ---------------------------------------------------------------
async def test_a_handler_that_loops_for_ever_is_stopped_where_it_spins(monkeypatch):
    result = await run_with(monkeypatch, bugs.SpinningPid, service_timeout=0.5)
    sites = bugs.bug_lines(bugs.SpinningPid)
    report = result.bugs[0]
    headline = report.splitlines()[0]
    assert headline.startswith("service bug: pid.alloc_pid did not answer within 0.5 s (it ran ")
    assert headline.rsplit("stopped at ", 1)[1] in sites
    assert "    tests/buggy_services.py:" in report and " in alloc_pid: " in report
    assert "the message: #26 kernel -> pid alloc_pid {ns: 1, set_tid: []} (fork by pid 1)" in report
    assert result.error == f"run stopped: {headline.removeprefix('service bug: ')}"
    assert result.exit_code == 1 and service_bugs(result)[0]["kind"] == "timeout"


async def test_a_handler_that_waits_for_ever_is_reported_with_its_stack(monkeypatch):
    result = await run_with(monkeypatch, bugs.AwaitingPid, service_timeout=0.5)
    (site,) = bugs.bug_lines(bugs.AwaitingPid)
    assert result.error == f"run stopped: pid.alloc_pid (#26) did not answer within 0.5 s: it waits at {site}"
    lines = result.bugs[0].splitlines()
    assert lines[1] == "  its arguments: {'ns': 1, 'set_tid': []}"
    assert lines[2] == f"  it waits at {site} (the handler's stack, most recent call last):"
    assert lines[3].startswith(f"    {site} in alloc_pid: await trio.Event().wait()")


async def test_a_handler_that_defers_and_never_replies_is_reported(monkeypatch):
    result = await run_with(monkeypatch, bugs.DeferringPid, service_timeout=0.5)
    (site,) = bugs.bug_lines(bugs.DeferringPid)
    headline = "pid.alloc_pid (#26) did not answer within 0.5 s: its handler deferred the reply and never gave it"
    assert result.error == f"run stopped: {headline}"
    assert f"  its handler: {site} (DeferringPid.alloc_pid), returned DEFERRED " in result.bugs[0]


def test_ctrl_c_ends_a_run_whose_handler_spins():
    cmd = [*UKERNEL, "run", "-v", "--service", "pid=tests/buggy_services.py:SpinningPid", "forktest"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the program's first fork is sent: the handler spins from here on
        if "-> pid" in line and "alloc_pid" in line and "fork by pid 1" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert lines[-1] == "ukernel: interrupted"
    assert lines[-2].startswith("ukernel: pid.alloc_pid (#26) was stopped by Ctrl-C at tests/buggy_services.py:")
    assert lines[-2].rsplit(" at ", 1)[1] in bugs.bug_lines(bugs.SpinningPid)
    assert "Traceback" not in err


def test_the_cli_prints_the_report_once_and_exits_1():
    cmd = [*UKERNEL, "run", "--service", "pid=tests/buggy_services.py:RaisingAtBootPid", "hello"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    (site,) = bugs.bug_lines(bugs.RaisingAtBootPid)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"ukernel: service bug: pid.alloc_pid crashed at {site}: KeyError(1)"
    assert done.stderr.count("service bug:") == 1 and "Traceback" not in done.stderr


# --- bounded reports ---------------------------------------------------------------------------
async def test_a_leak_with_many_differences_is_at_most_21_lines(monkeypatch):
    async with ukernel.boot(services={"vfs": bugs.LeakyVfs}) as kernel:
        assert await kernel.run("/bin/hello") == 0
        problems = await kernel.check_invariants()
    assert len(problems) == 21
    assert problems[0] == "vfs: inode 100 has i_count 1, 0 open files"
    assert problems[-1] == "and 80 more"


def test_reprs_in_messages_are_bounded():
    task = TaskStruct(comm="big", pid=7)
    task.children = [TaskStruct(pid=n) for n in range(5000)]
    assert repr(task) == "TaskStruct(pid=7, comm='big', state='new')"
    assert len(bounded(list(range(10**5)))) <= 200 and len(bounded(b"x" * 10**6)) <= 200
    assert len(bounded({"k": [[[["deep"] * 100] * 100] * 100]})) <= 200


# --- the contract table ------------------------------------------------------------------------
def test_every_op_of_the_step_tables_has_a_contract():
    ops = {
        (step.service, name)
        for table in (fork.COPY_STEPS, exit_.EXIT_STEPS, nsproxy.UNSHARE_STEPS)
        for step in table
        if step.service != "kernel"
        for name in (step.op_set, step.op_clear, step.undo)
        if name is not None
    }
    cannot_fail = {("sched", "schedule"), ("sched", "wake"), ("sched", "wake_up_new_task"), ("pid", "free_pid")}
    missing = sorted((ops | cannot_fail) - CONTRACTS.keys() - {("namespaces", "copy_semundo")} | set())
    assert missing == []


def test_a_service_timeout_must_be_seconds():
    with pytest.raises(ValueError, match="service_timeout: seconds >= 0"):
        ukernel.run("hello", service_timeout=-1)


def test_a_buggy_class_keeps_the_base_ops():
    assert set(bugs.RaisingPid.OPS) == set(PidService.OPS)


def test_a_spinning_handler_past_service_timeout_is_one_report_from_the_cli():
    cmd = [*UKERNEL, "run", "--service-timeout", "0.5", "--service", "pid=tests/buggy_services.py:SpinningPid", "hello"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("service bug:") == 1 and "deferred" not in done.stderr and "Traceback" not in done.stderr
    headline = done.stderr.splitlines()[0]
    assert headline.startswith("ukernel: service bug: pid.alloc_pid did not answer within 0.5 s (it ran ")
    assert headline.rsplit("stopped at ", 1)[1] in bugs.bug_lines(bugs.SpinningPid)


def test_a_walker_that_raises_while_init_is_made_is_one_line():
    walker = "tests/plugs/raising_walker.py"
    done = subprocess.run(
        [*UKERNEL, "run", "--copy-process", f"{walker}:Walk", "hello"], cwd=ROOT, capture_output=True, text=True
    )
    line = (
        (ROOT / walker).read_text().splitlines().index('        raise RuntimeError("the walker lost its way")  # BUG')
    )
    why = "RuntimeError('the walker lost its way')"
    assert (done.returncode, done.stderr) == (1, f"ukernel: oops while making init: {why} at {walker}:{line + 1}\n")
