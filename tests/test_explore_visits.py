"""stateful DPOR's shared log of visits (ukernel/explore/visits.py): what a child's subtree
learnt reaches its parent once, through the log, and folds to what the reports' nested merges
gave (the fold is a join)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ukernel.explore.por import Below, below
from ukernel.explore.visits import Visit, Visits, joined

A, B, C = (("vfs", "inode", 1),), (("vfs", "inode", 2),), (("mm", "frame", 3),)


def fp(*objects: tuple) -> frozenset:
    return frozenset(o[0] for o in objects)


def steps(visit: Visit | None) -> object:
    """A visit as plain data, in its order (Below has no equality of its own; the order of a
    summary's tasks is the order its races are taken in)."""
    if visit is None:
        return None
    if visit.summary is None:
        return visit.sleep, None
    return visit.sleep, [(p, list(below(v).steps.items())) for p, v in visit.summary.items()]


def in_child(work) -> None:
    """Run ``work`` in a forked child, as the tree's processes do, and wait for it."""
    child = os.fork()
    if child == 0:
        try:
            work()
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_childs_entries_reach_the_parent_through_the_log():
    visits = Visits()
    visits[7] = Visit(frozenset({2}), None)  # on the parent's path: its subtree still walked
    one = Visit(frozenset({2}), {1: Below({frozenset(): (fp(A), frozenset())})})
    two = Visit(frozenset({3}), {2: Below({frozenset({1}): (fp(B), fp(A))})})

    def child() -> None:
        assert steps(visits.get(7)) == (frozenset({2}), None)  # inherited by fork
        visits.record(7, one)
        visits.record(-(2**63), two)  # any 64-bit digest

    in_child(child)
    assert steps(visits.get(7)) == (frozenset({2}), None)  # not taken in yet
    visits.catch_up()
    assert steps(visits.get(7)) == steps(one)  # the path's mark is replaced
    assert steps(visits[-(2**63)]) == steps(two)
    assert visits.get(8) is None
    visits.catch_up()  # nothing new: nothing twice
    assert steps(visits.get(7)) == steps(one)


def test_entries_fold_in_order_and_a_set_replaces_them():
    visits = Visits()
    visits[5] = Visit(frozenset({1, 2}), {1: Below({frozenset(): (fp(A), frozenset())})})

    def grandchild() -> None:
        visits.record(5, Visit(frozenset({2, 3}), {1: Below({frozenset(): (fp(B), frozenset())})}))

    def child() -> None:
        in_child(grandchild)
        visits.catch_up()
        visits.record(6, Visit(frozenset(), {4: Below({frozenset({1}): (fp(C), fp(A, B))})}))

    in_child(child)
    visits.catch_up()
    assert steps(visits[5]) == (frozenset({2}), [(1, [(frozenset(), (fp(A, B), frozenset()))])])
    assert steps(visits[6]) == (frozenset(), [(4, [(frozenset({1}), (fp(C), fp(A, B)))])])
    in_child(lambda: visits.record(5, Visit(frozenset({9}), {})))
    visits.catch_up()
    visits[5] = Visit(frozenset({4}), None)  # this process's own value wins over what came before
    assert steps(visits[5]) == (frozenset({4}), None)


footprints = st.frozensets(st.sampled_from([A[0], B[0], C[0], ("r", A[0])]), max_size=3)
values = st.builds(
    lambda entries: Below({tasks: (touched, earlier) for tasks, touched, earlier in entries}),
    st.lists(st.tuples(st.frozensets(st.integers(1, 3), max_size=2), footprints, footprints), max_size=3),
)
visit_values = st.builds(
    Visit, st.frozensets(st.integers(1, 4)), st.dictionaries(st.integers(1, 3), values, max_size=3)
)


@settings(max_examples=60, deadline=None)
@given(
    known=st.none() | visit_values | st.builds(Visit, st.frozensets(st.integers(1, 4)), st.none()),
    below_child=st.lists(visit_values, max_size=3),
    own=visit_values,
)
def test_the_fold_of_raw_entries_is_the_reports_nested_merge(known, below_child, own):
    """A parent that knew ``known`` (a child inherits it), a child whose subtree sent up
    ``below_child`` then recorded ``own``: the reports sent each entry of the subtree merged
    with what the child knew, then ``own``, and the parent merged them again; the log's raw
    entries fold to the same."""
    child_known = known
    reported = []
    for visit in below_child:
        child_known = joined(child_known, visit)
        reported.append(child_known)
    reported.append(own)
    nested = known
    for visit in reported:
        nested = joined(nested, visit)
    raw = known
    for visit in [*below_child, own]:
        raw = joined(raw, visit)
    assert steps(raw) == steps(nested)
