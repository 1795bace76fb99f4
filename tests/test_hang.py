"""A hang is diagnosed (issue 13): a deadlocked run prints each task's wait channel and ends
with status 124; SIGQUIT prints the same dump while the run goes on; Ctrl-C ends a run cleanly.

The dump is kernel/hung.py's; the watcher that finds the deadlock is ukernel/api.py's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import program, run_source

import ukernel
from ukernel.api import HUNG_EXIT
from ukernel.kernel.hung import format_dump

# The classic pipe mistake: the child reads until EOF but forgot to close its copy of the
# write end, so EOF never comes; the parent waits for the child. It prints the pipe's inode.
FORGOTTEN_CLOSE = """
async def main(sys, argv):
    r, w = await sys.pipe()
    await sys.write(1, b"%d\\n" % (await sys.fstat(r)).st_ino)
    pid = await sys.fork()
    if pid == 0:
        while await sys.read(r, 100):  # forgot: await sys.close(w)
            pass
        return 0
    await sys.close(r)
    await sys.write(w, b"2 3 5 7\\n")
    await sys.close(w)
    await sys.waitpid(pid, 0)
    return 0
"""


def rows(result: ukernel.Result) -> list[tuple]:
    return [(r["pid"], r["comm"], r["state"], r["syscall"], r["wchan"]) for r in result.hung]


async def test_a_forgotten_close_is_a_deadlock_naming_every_wait_channel(caplog):
    result = await run_source(FORGOTTEN_CLOSE)
    ino = int(result.stdout)
    assert rows(result) == [
        (1, "init", "S", "wait4", "wait4 for any child"),
        (2, "t", "S", "wait4", "wait4 for pid 3"),
        (3, "t", "S", "read", f"read end of pipe inode {ino}"),
    ]
    assert result.exit_code == HUNG_EXIT == 124
    assert result.error == (
        "hung: no task can run and nothing can wake one: pid 1 (init) wait4 for any child, "
        f"pid 2 (t) wait4 for pid 3, pid 3 (t) read end of pipe inode {ino}"
    )
    assert format_dump(result.hung) == [
        "    PID COMM S SYSCALL   WAITS FOR",
        "      1 init S wait4     wait4 for any child",
        "      2 t    S wait4     wait4 for pid 3",
        f"      3 t    S read      read end of pipe inode {ino}",
    ]
    assert "\n".join(format_dump(result.hung)) in caplog.text
    (event,) = [e for e in result.trace if e["type"] == "hung"]
    assert event["tasks"] == result.hung and event["message"] == result.error


async def test_two_processes_reading_the_pipe_the_other_should_write():
    result = await run_source(
        """
        async def main(sys, argv):
            a_r, a_w = await sys.pipe()
            b_r, b_w = await sys.pipe()
            ino_a, ino_b = (await sys.fstat(a_r)).st_ino, (await sys.fstat(b_r)).st_ino
            await sys.write(1, b"%d %d\\n" % (ino_a, ino_b))
            pid = await sys.fork()
            if pid == 0:
                await sys.read(b_r, 1)  # waits for the parent, which waits for it
                await sys.write(a_w, b"x")
                return 0
            await sys.read(a_r, 1)
            await sys.write(b_w, b"x")
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    ino_a, ino_b = map(int, result.stdout.split())
    assert rows(result)[1:] == [
        (2, "t", "S", "read", f"read end of pipe inode {ino_a}"),
        (3, "t", "S", "read", f"read end of pipe inode {ino_b}"),
    ]


async def test_a_full_pipe_nobody_reads_is_the_write_end():
    result = await run_source(
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            await sys.write(1, b"%d\\n" % (await sys.fstat(r)).st_ino)
            await sys.write(w, bytes(70000))  # more than the pipe holds, and the reader is us
            return 0
        """
    )
    assert rows(result)[1] == (2, "t", "S", "write", f"write end of pipe inode {int(result.stdout)} (full)")


async def test_a_futex_wait_nobody_wakes():
    result = await run_source(
        """
        from ukernel.abi import FUTEX_WAIT, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
        async def main(sys, argv):
            addr = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            await sys.write(1, b"%#x\\n" % addr)
            await sys.futex(addr, FUTEX_WAIT, 0)
            return 0
        """
    )
    assert rows(result)[1] == (2, "t", "S", "futex", f"futex at {result.stdout.decode().strip()}")


async def test_a_vfork_parent_waits_for_its_child_stuck_on_a_pipe():
    result = await run_source(
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.vfork()
            if pid == 0:
                await sys.read(r, 1)
                await sys.exit(0)
            return 0
        """
    )
    assert [r[2:4] for r in rows(result)] == [("S", "wait4"), ("D", "vfork"), ("S", "read")]
    assert rows(result)[1][4] == "vfork child 3"


async def test_a_sleeping_program_is_not_hung():
    result = await run_source(
        """
        async def main(sys, argv):
            await sys.nanosleep(5)
            return 7
        """
    )
    assert result.exit_code == 7 and result.hung == [] and result.error == ""


async def test_a_run_that_does_not_hang_has_no_hung_event_and_the_same_trace():
    def stable(trace: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "dur_us"} for e in trace]

    first = await run_source(FORK_AND_PIPE, cpus=2, seed=3)
    again = await run_source(FORK_AND_PIPE, cpus=2, seed=3)
    assert first.stdout == b"hello\n" and first.hung == []
    assert not [e for e in first.trace if e["type"] == "hung"]
    assert stable(first.trace) == stable(again.trace)


FORK_AND_PIPE = """
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(w)
        await sys.write(1, await sys.read(r, 100))
        return 0
    await sys.close(r)
    await sys.nanosleep(0.01)
    await sys.write(w, b"hello\\n")
    await sys.close(w)
    await sys.waitpid(pid, 0)
    return 0
"""


# --- from the shell ------------------------------------------------------------------------
def ukernel_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ukernel.cli", *args]


def write_program(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_bytes(program(source))
    return str(path)


def test_the_cli_prints_the_dump_and_exits_124(tmp_path):
    path = write_program(tmp_path, "sieve", FORGOTTEN_CLOSE)
    done = subprocess.run(ukernel_cli("run", path), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    ino = int(done.stdout)
    assert done.returncode == 124
    err = done.stderr.decode()
    assert "ukernel: deadlock: no task can run" in err
    assert f"      3 sieve S read      read end of pipe inode {ino}\n" in err
    assert err.endswith("ukernel: every task killed; exit status 124\n")
    assert "Traceback" not in err


def start_and_wait_for(tmp_path: Path, source: str, *options: str) -> tuple[subprocess.Popen, Path]:
    """Start ``ukernel run`` on source; return once the program has printed its first line."""
    path = write_program(tmp_path, "prog", source)
    out = tmp_path / "out.txt"
    proc = subprocess.Popen(
        ukernel_cli("run", *options, path),
        stdout=out.open("wb"),
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not out.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, out


SLEEPS_AFTER_READY = """
async def main(sys, argv):
    await sys.write(1, b"ready\\n")
    for _ in range(50000):
        await sys.nanosleep(0.01)
    await sys.write(1, b"done\\n")
    return 5
"""


def test_sigquit_prints_the_dump_and_the_run_goes_on(tmp_path):
    proc, out = start_and_wait_for(tmp_path, SLEEPS_AFTER_READY)
    os.kill(proc.pid, signal.SIGQUIT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5
    assert out.read_bytes() == b"ready\ndone\n"
    text = err.decode()
    assert "ukernel: SIGQUIT: the tasks and what they wait for:\n" in text
    assert "      1 init S wait4     wait4 for any child\n" in text
    assert "      2 prog " in text
    assert "Traceback" not in text


SPINS_AFTER_READY = """
async def main(sys, argv):
    await sys.write(1, b"ready\\n")
    while True:
        pass
"""


def test_ctrl_c_ends_a_sleeping_run_with_130_one_line_and_the_trace_kept(tmp_path):
    trace = tmp_path / "run.jsonl"
    proc, _ = start_and_wait_for(tmp_path, SLEEPS_AFTER_READY, "--trace", str(trace))
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == b"ukernel: interrupted\n"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert any(e["type"] == "syscall_enter" and e["op"] == "nanosleep" for e in events)


def test_ctrl_c_ends_a_spinning_run_too(tmp_path):
    proc, _ = start_and_wait_for(tmp_path, SPINS_AFTER_READY, "--cpu-limit", "0")
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == b"ukernel: interrupted\n"
