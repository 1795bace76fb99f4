"""fork lab, visible tests: the route without faults, the first steps' unwinds, the unwind's order.

Each test runs /bin/clones (tests/clones.py): one clone for every valid
combination of CLONE_FILES, FS, SIGHAND, THREAD, VM, SYSVSEM, NEWNS and NEWPID.
"""

from ukernel.lab import test
from ukernel.labs.fork.tests.grading import check_fail_at, combos, compare_routes, messages, undo_steps


@test(points=3)
def clone_sends_linuxs_route(lab):
    """No fault: every clone sends exactly what the built-in walker sends, in the same order."""
    compare_routes(lab, combos(), "sent", messages)


@test(points=1)
def fail_at_dup_task_struct_or_limits(lab):
    """Nothing is done yet: the clone fails and nothing is sent back."""
    check_fail_at(lab, "dup_task_struct", "limits")


@test(points=1)
def fail_at_sched_fork(lab):
    check_fail_at(lab, "sched_fork")


@test(points=2)
def fail_at_copy_files_or_copy_fs(lab):
    check_fail_at(lab, "copy_files", "copy_fs")


@test(points=2)
def unwind_of_fork_is_newest_first(lab):
    """fork (no flags) failing at its last step gives back every step, newest first."""
    compare_routes(lab, [0], "gave back", undo_steps, fail={"link": "ENOMEM"})
