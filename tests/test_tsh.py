"""The 16 traces of CMU 15-213's shell-lab driver, run against userland/tsh.py.

Each ``tests/shlab/traceNN.txt`` has the commands, signals (``INT``,
``TSTP``: kill(shell, sig), which tsh forwards to its foreground job's group)
and ``SLEEP``s of the lab's trace of the same number; ``traceNN.out`` is what
the lab's reference shell prints for it (tshref.out), with ukernel's pids:
init is 1, the driver 2, tsh 3, then one pid per command in order (each
``/bin/echo tsh> ...`` prompt is a job too). userland/sdriver.py plays
sdriver.pl inside the guest: tsh's stdin and stdout are pipes, comments are
printed as read, the shell's output is copied at the end (so after every job
still holding the pipe has ended). Sleeps are virtual time, so every run is
the same run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import ukernel

SHLAB = Path(__file__).parent / "shlab"
TIMEOUT = 60


async def drive(n: str) -> ukernel.Result:
    trace = f"/tmp/trace{n}.txt"
    argv = ["sdriver", "-t", trace, "-s", "./tsh", "-a", "-p", "-d", "/bin"]
    with trio.fail_after(TIMEOUT):
        return await ukernel.run_async("sdriver", argv, files={trace: (SHLAB / f"trace{n}.txt").read_bytes()})


@pytest.mark.parametrize("n", [f"{i:02}" for i in range(1, 17)])
async def test_trace(n):
    r = await drive(n)
    assert r.stdout.decode() == (SHLAB / f"trace{n}.out").read_text()
    assert (r.exit_code, r.error, r.problems) == (0, "", [])
