"""The reply contracts compiled to one function per row (kernel/contracts.py): each answers
what the row says, in the row's order, for any reply a service could send."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ukernel.kernel.contracts import CONTRACTS, TABLE, Contract, new_handle, not_negative
from ukernel.kernel.task import TaskTable


def reference(contract: Contract, k: Any, sent: Any, reply: Any) -> str | None:
    """The contract read as its docstring says, one rule after the other: the spec the
    generated function must keep."""
    if contract.kinds:
        if type(reply) is not dict:
            return f"the reply must be dict, not {type(reply).__name__}"
    elif contract.whole is not None and not contract.whole.accepts(reply):
        return f"the reply must be {contract.whole.name}, not {type(reply).__name__}"
    for key in contract.required:
        if key not in reply:
            return f"the reply has no {key!r} (it must have {', '.join(contract.required)})"
    for key, kind in contract.kinds.items():
        if kind is not None and key in reply and not kind.accepts(reply[key]):
            return f"{key} must be {kind.name}, not {type(reply[key]).__name__}"
    for check in contract.checks:
        why = check(k, sent, reply)
        if why:
            return why
    return None


#: What the semantic checks look at: no live tasks but task 1, one CPU.
KERNEL = SimpleNamespace(tasks=TaskTable(), by_id={1: object()}, cpu_curr=[None])
SENT = SimpleNamespace(args={"files": 7, "fs": 7, "sighand": 7, "signal": 7, "mm": 7, "nsproxy": 7, "set_tid": []})

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 9), st.text(max_size=2), st.binary(max_size=2), st.floats(0, 1)
)
VALUES = st.one_of(SCALARS, st.lists(st.integers(-1, 2), max_size=3), st.lists(st.lists(st.integers(0, 1), max_size=3)))
ROWS = sorted(CONTRACTS)


@st.composite
def replies(draw: Any) -> tuple[tuple[str, str], Any]:
    """A row, and a reply to it: mostly a map of its own keys (some missing, some extra),
    each value of any kind; now and then something else altogether."""
    row = draw(st.sampled_from(ROWS))
    contract = TABLE[row[0]][row[1]]
    if not contract.kinds or draw(st.integers(0, 9)) == 0:
        return row, draw(VALUES | st.dictionaries(st.text(max_size=2), SCALARS, max_size=2))
    reply = {key: draw(VALUES) for key in contract.kinds if draw(st.integers(0, 5))}
    if draw(st.booleans()):
        reply["other"] = draw(VALUES)
    return row, reply


@settings(max_examples=400, deadline=None)
@given(case=replies())
def test_every_compiled_contract_answers_as_its_row_reads(case):
    (service, op), reply = case
    contract = TABLE[service][op]
    assert contract.breach(KERNEL, SENT, reply) == reference(contract, KERNEL, SENT, reply)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ({"files": 8}, None),
        ({"files": 8, "extra": "kept"}, None),  # other keys are allowed
        ([8], "the reply must be dict, not list"),
        ({}, "the reply has no 'files' (it must have files)"),
        ({"files": "8"}, "files must be int, not str"),
        ({"files": True}, "files must be int, not bool"),  # a bool is not an int
        ({"files": 7}, "files 7 is the handle it was asked to copy, not a new one"),
        ({"files": 0}, "files 0: a handle is a number >= 1"),
    ],
)
def test_exact_answers_for_dup_files(reply, why):
    assert TABLE["vfs"]["dup_files"].breach(KERNEL, SENT, reply) == why


def test_optional_keys_and_the_order_of_the_answers():
    shape = {"a": int, "b?": list[int], "c": str}
    contract = Contract.of(shape, not_negative("a"))
    assert contract.breach(KERNEL, SENT, {"a": 1, "c": "x"}) is None
    assert contract.breach(KERNEL, SENT, {"a": 1, "c": "x", "b": [1, 2]}) is None
    assert contract.breach(KERNEL, SENT, {"a": 1, "c": "x", "b": [1, "2"]}) == "b must be list[int], not list"
    # every required key first, then the kinds in the row's order, then the checks
    assert contract.breach(KERNEL, SENT, {"a": "1"}) == "the reply has no 'c' (it must have a, c)"
    assert contract.breach(KERNEL, SENT, {"c": 2, "a": "1"}) == "a must be int, not str"
    assert contract.breach(KERNEL, SENT, {"a": -1, "c": "x"}) == "a -1: put more often than taken"
    whole = Contract.of(list[int])
    assert whole.breach(KERNEL, SENT, [1]) is None
    assert whole.breach(KERNEL, SENT, {"a": 1}) == "the reply must be list[int], not dict"
    assert Contract.of(None, new_handle("x")).breach(KERNEL, SENT, {"x": 3}) is None  # any value, then the checks
