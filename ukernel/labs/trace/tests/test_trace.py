"""trace lab, visible tests: the answers file, and the routes of fork, vfork and pthread_create."""

from ukernel.lab import test
from ukernel.labs.trace.tests.grading import check, check_well_formed


@test(points=1)
def answers_file_is_well_formed(lab):
    check_well_formed(lab)


@test(points=2)
def fork_route(lab):
    check(lab, "fork_route")


@test(points=2)
def vfork_route(lab):
    check(lab, "vfork_route")


@test(points=2)
def pthread_create_route(lab):
    check(lab, "pthread_create_route")


@test(points=1)
def fail_message(lab):
    check(lab, "fail_message")
