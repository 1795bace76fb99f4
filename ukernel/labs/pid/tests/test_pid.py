"""The pid lab's visible tests; `ukernel lab grade pid DIR` runs them and the hidden ones.

Each test runs one of the programs beside this file with your ``Pid`` as the
kernel's pid service (lab.toml's [plug]). Run one yourself, with its messages:

    ukernel run --service pid=pid.py:Pid -v tests/forks.py

The program under test is pid 2 (init is 1), so its first child is 3.
"""

from ukernel.kernel.fork import route
from ukernel.lab import test
from ukernel.testing import route_of, syscall_events

#: fork without flags: a copy of everything, then one number from the pid service
#: (the kernel's clone table, ukernel/kernel/fork.py, says so).
FORK_ROUTE = [(service, op) for service, op, _ in route(0)]


def alloc_pid_replies(result, syscall: str, pid: int) -> list:
    """What alloc_pid answered to each ``syscall`` that ``pid`` made, in order."""
    calls = {e["msgid"] for e in syscall_events(result.trace, syscall, pid)}
    return [
        e.get("result") for e in result.trace if e["type"] == "reply" and e["op"] == "alloc_pid" and e["cause"] in calls
    ]


@test(points=2)
def pids_count_up_from_init(lab):
    r = lab.run(lab.helper("forks.py"), ["forks"])
    lab.expect_output(r, ["parent 2", "child 3", "fork 3", "child 4", "fork 4", "child 5", "fork 5", "ns_last_pid 5"])


@test(points=2)
def freed_pids_come_back_only_after_the_wrap(lab):
    # pid_max 6: 3, 4, 5, then the wrap goes back to 1 (below RESERVED_PIDS), skips init's 1
    # and the parent's 2, and gives 3 and 4 again (freed when their children were reaped).
    r = lab.run(lab.helper("forks.py"), ["forks", "5"], pid_max=6)
    forks = [line for line in r.stdout.decode(errors="replace").splitlines() if line.startswith("fork")]
    lab.ran(r)
    lab.check(forks == ["fork 3", "fork 4", "fork 5", "fork 3", "fork 4"], f"with pid_max 6 the forks gave {forks}")


@test(points=2)
def fork_route_sends_alloc_pid_for_one_number(lab):
    r = lab.run(lab.helper("forks.py"), ["forks"])
    lab.ran(r)
    route = route_of(r.trace, "fork", pid=2)
    lab.check(route == FORK_ROUTE, f"the route of fork was {route}")
    asks = [e["args"] for e in r.trace if e["type"] == "request" and e["op"] == "alloc_pid" and e["pid"] == 2]
    lab.check(asks == [{"ns": 1, "set_tid": []}] * 3, f"the kernel asked alloc_pid {asks}")
    numbers = [reply and reply.get("numbers") for reply in alloc_pid_replies(r, "fork", 2)]
    lab.check(numbers == [[3], [4], [5]], f"alloc_pid answered numbers {numbers}, expected [[3], [4], [5]]")


@test(points=2)
def new_pid_namespace_starts_at_1(lab):
    r = lab.run(lab.helper("pidns.py"), ["pidns"])
    lab.expect_output(
        r,
        [
            "container: getpid 1 getppid 0",
            "grandchild: getpid 2 getppid 1",
            "container: fork 2",
            "main: clone 3",
        ],
    )
    # numbers[0] is level 0 (what the root namespace sees), numbers[1] the container's level.
    outer = [reply and reply.get("numbers") for reply in alloc_pid_replies(r, "clone", 2)]
    lab.check(outer == [[3, 1]], f"alloc_pid for the container answered numbers {outer}, expected [[3, 1]]")
    inner = [reply and reply.get("numbers") for reply in alloc_pid_replies(r, "fork", 3)]
    lab.check(inner == [[4, 2]], f"alloc_pid for the grandchild answered numbers {inner}, expected [[4, 2]]")


@test(points=2)
def set_tid_gives_that_pid_or_the_errno(lab):
    r = lab.run(lab.helper("settid.py"), ["settid", "400"], pid_max=400)
    lab.expect_output(
        r,
        [
            "child 50",
            "set_tid [50]: 50",
            "set_tid [2]: EEXIST",  # the program's own pid is taken
            "set_tid [0]: EINVAL",  # pids are 1 .. pid_max - 1
            "set_tid [400]: EINVAL",
            "set_tid [7, 8]: EINVAL",  # two numbers for one level
            "fork 3",  # an exact pid does not move the cursor
        ],
    )
