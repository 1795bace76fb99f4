"""Every reply the kernel collects passes its hook, also on the fast path with the trace off
(ipc/router.py hands it ``(sent, error, result)`` there, with no Response made), and RS
wraps that hook only when a restart policy needs what the replies say (reincarnation.py)."""

from __future__ import annotations

import buggy_services as bugs
from test_service_bugs import FORKS  # three forks, three waits, done

import ukernel

CLONES = b"""
from ukernel.abi import SIGCHLD


def child(sys, arg):
    return 0


async def main(sys, argv):
    for _ in range(4):
        pid = await sys.clone(SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
    return 0
"""

FAST = {"pid": {"backoff_min": 0.001, "backoff_max": 0.002}}


async def forks(**settings) -> ukernel.Result:
    return await ukernel.run_async("/bin/forks", ["forks"], files={"/bin/forks": FORKS}, **settings)


async def test_a_broken_contract_is_caught_with_the_trace_off(monkeypatch):
    bugs.plug(monkeypatch, bugs.DuplicatePid)  # a built-in slot's class: no events kept at all, the trace is off
    result = await forks(trace=False)
    assert result.trace == []
    why = "pid 1 is in use: live task pid 1 (init) holds it"
    (report,) = result.bugs
    assert report.startswith(f"service bug: pid.alloc_pid (#26) broke its reply contract: {why}\n")
    assert "before it" not in report  # (nothing traced: the message alone)
    assert "oops in pid 1 (init) during fork: pid.alloc_pid (#26) broke its reply contract" in result.problems
    assert (result.error, result.status) == ("", ukernel.abi.W_EXITCODE(127))


async def test_a_crash_reply_is_reported_with_the_trace_off(monkeypatch):
    bugs.plug(monkeypatch, bugs.RaisingPid)
    result = await forks(trace=False)
    (site,) = bugs.bug_lines(bugs.RaisingPid)
    (report,) = result.bugs
    assert report.startswith(f"service bug: pid.alloc_pid crashed at {site}: ")
    assert b"OSError: [Errno 5] EIO: pid.alloc_pid crashed at " in result.stdout


async def test_without_a_restart_policy_the_replies_go_straight_to_the_kernels_hook():
    async with ukernel.boot(trace=False) as kernel:
        assert kernel.router.on_collect == kernel.on_collect


async def test_with_a_pid_policy_rs_notes_the_last_pid_given_on_the_fast_path():
    async with ukernel.boot(trace=False, restart=FAST, files={"/bin/clones": CLONES}) as kernel:
        assert kernel.router.on_collect != kernel.on_collect  # RS's wrapper, then the kernel's
        assert await kernel.run("/bin/clones") == 0
        assert kernel.rs.last_pid == 6  # init 1, the program 2, its children 3 to 6
        assert not await kernel.check_invariants()
