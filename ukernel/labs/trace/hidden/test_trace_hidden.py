"""trace lab, hidden tests: pthread_create's flags, do_exit's route, the unwind, and the COW fault."""

from ukernel.lab import test
from ukernel.labs.trace.tests.grading import check


@test(points=1)
def pthread_create_flags(lab):
    check(lab, "pthread_create_flags")


@test(points=2)
def exit_route(lab):
    check(lab, "exit_route")


@test(points=2)
def fail_undo(lab):
    check(lab, "fail_undo")


@test(points=2)
def cow_copy_message(lab):
    check(lab, "cow_copy_message")


@test(points=2)
def cow_copies_and_refcount(lab):
    check(lab, "cow_copies", "cow_refcount")
