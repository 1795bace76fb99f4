"""``canonical``: a state as nested tuples of plain values, the same for equal states (explore's digests).

Services digest their attributes with it (Service.state_digest) and the kernel its tasks
and their programs' frames (kernel/choice.py ``state_digest``).
"""

from __future__ import annotations

from typing import Any

OPAQUE_MODULES = ("trio", "ukernel", "builtins", "types")  # their objects are a name in a digest (a program's sys)


def canonical(value: Any, memo: dict[int, int] | None = None) -> Any:
    """``value`` as nested tuples of plain values, the same for equal states whatever the
    order dicts and sets were filled in; an object seen twice (links, cycles) is its first
    visit's number the second time. Functions and trio objects are their type's name; a
    class's ``DIGEST_DERIVED`` fields (indexes kept from its other fields) are left out."""
    memo = {} if memo is None else memo
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    key = id(value)
    if key in memo:
        return ("@", memo[key])
    memo[key] = len(memo)
    if isinstance(value, dict):
        return _canonical_dict(value, memo)
    if isinstance(value, set | frozenset):
        return ("s", tuple(sorted(repr(canonical(v, {})) for v in value)))
    if isinstance(value, list | tuple) or type(value).__name__ == "deque":
        return ("l", tuple(canonical(v, memo) for v in value))
    fields = fields_of(value)
    if fields is None or callable(value) or type(value).__module__.startswith(OPAQUE_MODULES):
        return _opaque(value, memo)
    derived = getattr(type(value), "DIGEST_DERIVED", ())
    if derived:  # indexes made from the other fields: the same for equal states, and costly to sort
        fields = {k: v for k, v in fields.items() if k not in derived}
    # the fields' map is walked, not remembered: a slots object's is a temporary, whose id a
    # later temporary may reuse (it would be taken for an object seen before)
    return ("o", type(value).__qualname__, _canonical_dict(fields, memo))


def fields_of(value: Any) -> dict | None:
    """An object's fields, from its ``__dict__`` or its ``__slots__``; None for one with neither."""
    fields = getattr(value, "__dict__", None)
    if fields is None and hasattr(type(value), "__slots__"):
        fields = {n: getattr(value, n, None) for n in type(value).__slots__}
    return fields


def _opaque(value: Any, memo: dict[int, int]) -> tuple:
    """A value with no fields to walk: its type's name; but a range by its bounds, and an iterator
    of builtins or itertools (a ``for`` loop's, a counter) by its position, from ``__reduce__``
    (``iter((1, 1, 1))`` after one item: ``(iter, ((1, 1, 1),), 1)``): two loops at different
    items are two states. What reduce made (``dict`` iterators copy their rest) stays alive in
    the memo until the walk ends, so that no later temporary takes its id."""
    kind = type(value)
    if kind is range:
        return ("range", value.start, value.stop, value.step)
    if kind.__module__ in _ITERATOR_MODULES and hasattr(kind, "__next__"):
        try:
            reduced = value.__reduce__()
        except TypeError:  # a generator: not reducible (user_state walks a program's own)
            return ("t", kind.__qualname__)
        memo.setdefault(_KEEP, []).append(reduced)
        return ("i", kind.__qualname__, tuple(canonical(part, memo) for part in reduced[1:]))
    return ("t", kind.__qualname__)


_ITERATOR_MODULES = frozenset({"builtins", "itertools"})
_KEEP = -1  # canonical's memo: the temporaries of reduce, kept alive (no id is negative)


def _canonical_dict(value: dict, memo: dict[int, int]) -> tuple:
    """canonical's map: sorted by key, by its canonical form's repr where keys are objects."""
    keys = list(value)
    if all(type(k) is int for k in keys) or all(type(k) is str for k in keys):
        return ("d", tuple((k, canonical(value[k], memo)) for k in sorted(keys)))
    items = sorted(((repr(canonical(k, {})), k) for k in keys), key=lambda kv: kv[0])
    return ("d", tuple((r, canonical(value[k], memo)) for r, k in items))
