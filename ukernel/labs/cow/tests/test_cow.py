"""cow lab, visible tests: a write after fork copies one page, the other side then reuses, the
parent's writes stay its own. Each runs /bin/cowtest (tests/cowtest.py) with your Mm."""

from ukernel.lab import test
from ukernel.labs.cow.tests.grading import Scenario


@test(points=2)
def child_write_copies_one_page(lab):
    s = Scenario(lab, "child_writes")
    s.expect_saw("child", "page-0 CHILD! page-2 page-3 minflt 1", "its write copies page 1 (one fault), nothing else")
    s.expect_saw("parent", "page-0 page-1 page-2 page-3 minflt 0", "the child's copy is its own; reading faults not")
    s.expect_faults(
        [("child", "cow-copy", [2, 1])], "the child's write copies the frame it shares with the parent, and only that"
    )
    s.clean()


@test(points=2)
def then_the_parent_reuses(lab):
    s = Scenario(lab, "both_write")
    s.expect_saw("child", "page-0 CHILD! page-2 page-3", "the parent's later write is not the child's")
    s.expect_saw("parent", "page-0 PARENT page-2 page-3", "the child's write is not the parent's")
    s.expect_faults(
        [("child", "cow-copy", [2, 1]), ("parent", "cow-reuse", [1, 1])],
        "after the child's copy the parent is the frame's last holder: it reuses it, no second copy",
    )
    s.clean()


@test(points=2)
def the_parent_is_write_protected_too(lab):
    s = Scenario(lab, "parent_writes")
    s.expect_saw(
        "child",
        "page-0 page-1 page-2 page-3",
        "the parent's write after fork went into the frame the child still maps: "
        "dup_mm must write-protect the parent's private PTEs as well as the child's",
    )
    s.expect_saw("parent", "page-0 page-1 PARENT page-3", "the parent's own write is lost")
    s.expect_faults([("parent", "cow-copy", [2, 1])], "the parent's first write after fork copies the page")
    s.clean()
