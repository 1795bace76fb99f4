"""Bounded reprs: what error messages, reports and trace events show of a value.

A message that quotes a value (a bad argument, a wrong reply, an exception)
must stay a line a person reads, whatever the value is: a task struct, a list
a program built with a million items, a cycle. ``bounded`` is the one place
that cuts them (reprlib, with limits for each kind and a total length).
"""

from __future__ import annotations

import reprlib
from typing import Any

LIMIT = 200  # characters of one value, at most


class _Repr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 4, 8, 8, 8, 8
        self.maxstring, self.maxother, self.maxlong = 80, 80, 40

    def repr_bytes(self, value: bytes, level: int) -> str:
        return reprlib.Repr.repr_str(self, value, level)  # type: ignore[arg-type]


_REPR = _Repr()


def bounded(value: Any, limit: int = LIMIT) -> str:
    """repr(value), at most ``limit`` characters (``...`` marks a cut); never raises."""
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # a __repr__ that raises is still something to show
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
