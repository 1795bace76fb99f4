"""RS: a service killed at any of its requests in nginx 4, on 1 or 2 CPUs, ends the run cleanly (issue 19).

pid and sched are restored (stateful): the run ends 0 with nginx's output. mm, vfs,
signals and namespaces come back with their boot state: their holders are killed, and
the program ends 0 (it had exited) or killed by SIGKILL (137 in a shell), its output a
prefix of nginx's. Never a deadlock, and check_invariants clean. On 2 CPUs signals@11
and @12 once ended in a deadlock: a killed child released on one CPU while its killed
parent reparented its children on the other stayed on init's list for ever (exit_notify
now skips it). Every request of every service is tried: a run is a few milliseconds.
"""

from __future__ import annotations

import pytest
import trio

import ukernel

ARGV = ["nginx", "4"]
#: The requests each service answers in nginx 4 (as --kill-service counts them), by CPUs.
REQUESTS = {
    1: {"pid": 9, "sched": 16, "mm": 11, "vfs": 26, "signals": 29, "namespaces": 9},
    2: {"pid": 9, "sched": 19, "mm": 11, "vfs": 26, "signals": 29, "namespaces": 9},
}
STATEFUL = {"pid", "sched"}
FAST = {"backoff_min": 0.001, "backoff_max": 0.002}
RUN_TIMEOUT = 30
CASES = [(cpus, name) for cpus in REQUESTS for name in sorted(REQUESTS[cpus])]


async def kill_at(cpus: int, name: str, nth: int) -> ukernel.Result:
    with trio.fail_after(RUN_TIMEOUT):  # a hang fails the test, it is not a timing assertion
        return await ukernel.run_async(ARGV[0], ARGV, cpus=cpus, restart={name: FAST}, kill_service=f"{name}@{nth}")


def restarts(result: ukernel.Result) -> list[str]:
    return [e["service"] for e in result.trace if e["type"] == "restart"]


@pytest.mark.parametrize(("cpus", "name"), CASES)
async def test_a_service_killed_at_any_request_ends_the_run_cleanly(cpus: int, name: str) -> None:
    clean = await ukernel.run_async(ARGV[0], ARGV, cpus=cpus)
    bad = {}
    for nth in range(1, REQUESTS[cpus][name] + 1):
        r = await kill_at(cpus, name, nth)
        ended = r.stdout == clean.stdout if r.status == 0 else name not in STATEFUL and r.status == 9
        fate = (r.hung, r.error, r.problems, restarts(r))
        if not (ended and clean.stdout.startswith(r.stdout) and fate == ([], "", [], [name])):
            bad[nth] = (r.status, *fate, r.stdout)
    assert (clean.status, bad) == (0, {})


@pytest.mark.parametrize(("cpus", "name"), CASES)
async def test_the_sweep_counts_every_request(cpus: int, name: str) -> None:
    """A kill past the last request never happens: the run is the clean one, with no restart."""
    r = await kill_at(cpus, name, REQUESTS[cpus][name] + 1)
    assert (r.status, r.problems, restarts(r)) == (0, [], [])
