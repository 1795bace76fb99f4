"""The console's ``short``: a dict rendered by the renderer generated for its keys (console.py
``_RENDERERS``) reads exactly as the loop over its items that it replaces renders it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ukernel.trace import console
from ukernel.trace.console import short

PLAIN = (int, str, bool, float, type(None))


def by_items(value: Any, width: int = 60) -> str:
    """short as one loop over every item (the rendering before the renderers)."""
    if type(value) is dict:
        parts = [f"{k}: {v}" if type(v) in PLAIN else f"{k}: {by_items(v, width)}" for k, v in value.items()]
        text = "{" + ", ".join(parts) + "}"
        return text if len(text) <= width else text[: width - 3] + "..."
    if type(value) is list:
        text = "[" + ", ".join([str(v) if type(v) in PLAIN else by_items(v, width) for v in value]) + "]"
        return text if len(text) <= width else text[: width - 3] + "..."
    return short(value, width)


KEYS = st.one_of(st.sampled_from(["mm", "files", "pid", "class", "x1", "é"]), st.text(max_size=3), st.integers(-3, 3))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.binary(max_size=3))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4))


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(KEYS, VALUES, max_size=6), width=st.sampled_from([10, 60, 200]))
def test_a_dict_reads_as_the_loop_over_its_items_renders_it(value, width):
    assert short(value, width) == by_items(value, width)
    assert short(value, width) == by_items(value, width)  # the second time by the renderer made the first


def test_exact_renderings_and_keys_left_to_the_loop():
    assert short({"files": 3, "pid": 7}) == "{files: 3, pid: 7}"
    assert short({}) == "{}"
    assert short({"a": {"b": [1, None]}, "c": b"x", "d": "s{t}"}) == "{a: {b: [1, None]}, c: b'x', d: s{t}}"
    assert short({"sighand": 3, "signal": 4, "sig": 17, "unkillable": True, "info": {"si_signo": 17}}, 40) == (
        "{sighand: 3, signal: 4, sig: 17, unki..."
    )
    assert short({1: 2, "x y": 3}) == "{1: 2, x y: 3}"
    assert console._RENDERERS[(1, "x y")] is None  # not identifiers: the loop renders them
    assert callable(console._RENDERERS[("files", "pid")])
