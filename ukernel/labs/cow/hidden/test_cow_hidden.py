"""cow lab, hidden tests: three holders of a frame, the last holder, read-only and shared
mappings, pages not present at fork, and the frames' accounting."""

from ukernel.lab import test
from ukernel.labs.cow.tests.grading import Scenario


@test(points=2)
def three_holders_two_copies_one_reuse(lab):
    s = Scenario(lab, "three")
    s.expect_saw("first", "first ", "its write is its own")
    s.expect_saw("second", "second", "its write is its own")
    s.expect_saw("parent", "PARENT", "its write is its own")
    s.expect_faults(
        [("first", "cow-copy", [3, 2]), ("second", "cow-copy", [2, 1]), ("parent", "cow-reuse", [1, 1])],
        "three holders: each copy drops one reference, the last holder reuses the frame",
    )
    s.clean()


@test(points=1)
def last_holder_reuses_after_the_child_exits(lab):
    s = Scenario(lab, "exit_then_write")
    s.expect_saw("parent", "page-0 page-1 page-2 PARENT", "the parent's write is lost")
    s.expect_faults([("parent", "cow-reuse", [1, 1])], "the child's exit dropped its references: no copy is needed")
    s.clean()


@test(points=1)
def read_only_mapping_stays_shared(lab):
    s = Scenario(lab, "readonly")
    s.expect_saw("child", "page-0 minflt 0", "a read of a page fork shared takes no fault")
    s.expect_saw("parent", "page-0", "the page changed")
    s.expect_faults([], "nobody wrote")
    s.clean()


@test(points=1)
def map_shared_is_not_copied(lab):
    s = Scenario(lab, "shared")
    s.expect_saw("parent", "CHILD!", "MAP_SHARED memory is one page for both: the child's write is the parent's too")
    s.expect_faults([], "a MAP_SHARED page keeps its write bit across fork: no fault at all")
    s.clean()


@test(points=2)
def pages_not_present_at_fork(lab):
    s = Scenario(lab, "untouched")
    s.expect_saw("child", "...CHI ......", "a page only read before fork holds zeros; the copy must too")
    s.expect_saw("parent", "...... PARENT", "the child's write is not the parent's")
    s.expect_faults([("child", "cow-copy", [2, 1])], "only the page present at fork is copied on write")
    zero_fills = [who for who, _, _ in s.faults(("zero-fill",))]
    lab.check(
        zero_fills == ["parent", "child", "parent"],
        f"zero-fill faults by {zero_fills}: a page absent at fork is each side's own first touch",
    )
    s.clean()


@test(points=1)
def frames_are_given_back(lab):
    """Every scenario's frames and refcounts balance at the end (mm's check and accounting)."""
    for name in ("child_writes", "both_write", "three", "untouched"):
        Scenario(lab, name).clean()
