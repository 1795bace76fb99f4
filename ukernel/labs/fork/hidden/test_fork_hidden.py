"""fork lab, hidden tests: the other steps' unwinds, every flag combination's unwind, a real failure."""

import ukernel
from ukernel.lab import test
from ukernel.labs.fork.tests.grading import check_fail_at, combos, compare_routes, no_crash, undo_steps

#: Forks children that wait on a pipe until fork fails (pid_max runs out), then lets them go.
UNTIL_EAGAIN = b"""
from ukernel.abi import errno_name

async def main(sys, argv):
    r, w = await sys.pipe()
    children = []
    while True:
        try:
            pid = await sys.fork()
        except OSError as exc:
            await sys.write(1, f"{len(children)} children, then {errno_name(exc.errno)}\\n".encode())
            break
        if pid == 0:
            await sys.close(w)
            await sys.read(r, 1)
            return 0
        children.append(pid)
    await sys.close(w)
    for pid in children:
        await sys.waitpid(pid, 0)
    return 0
"""


@test(points=1)
def fail_at_copy_semundo(lab):
    """Also without CLONE_SYSVSEM: the row sends nothing then, but it still fails."""
    check_fail_at(lab, "copy_semundo")


@test(points=2)
def fail_at_copy_sighand_or_copy_signal(lab):
    check_fail_at(lab, "copy_sighand", "copy_signal")


@test(points=1)
def fail_at_copy_mm(lab):
    check_fail_at(lab, "copy_mm")


@test(points=1)
def fail_at_copy_namespaces(lab):
    check_fail_at(lab, "copy_namespaces")


@test(points=2)
def fail_at_copy_thread_alloc_pid_or_link(lab):
    """The last rows: everything before them is given back (a thread's shares too)."""
    check_fail_at(lab, "copy_thread", "alloc_pid", "link")


@test(points=2)
def unwind_order_for_every_flag_combination(lab):
    """Shared or copied, every step done is given back, newest first."""
    compare_routes(lab, combos(), "gave back", undo_steps, fail={"link": "ENOMEM"})


@test(points=2)
def a_real_alloc_pid_failure_unwinds(lab):
    """No injection: pid_max runs out, alloc_pid really fails (EAGAIN), the walk gives back the rest."""
    settings = {"files": {"/bin/forks": UNTIL_EAGAIN}, "pid_max": 8}
    mine = lab.run("/bin/forks", ["forks"], **settings)
    linux = ukernel.run("/bin/forks", ["forks"], **settings)
    assert linux.exit_code == 0 and b"EAGAIN" in linux.stdout, linux.stdout  # the lab's own program
    no_crash(lab, mine)  # first: a crash of the walk or a leak says more than the output
    lab.clean(mine)
    lab.check(mine.stdout == linux.stdout, f"forks printed {mine.stdout!r}; with Linux's walker {linux.stdout!r}")
