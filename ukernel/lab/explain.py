"""One line for a failure: what a student reads in the grader's output instead of a traceback.

A bug in the student's code is named by the innermost frame inside the
student's DIR (``NameError: name 'x' is not defined at pingpong.py:14``),
whether the exception reached the test itself, came back inside the kernel's
exception groups, was reported by a service as ``crashed at FILE:LINE``, or
was printed by a program on its fd 2 (a program's uncaught exception is its
traceback on the console, as in Linux).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from pathlib import Path

LIMIT = 300  # characters in one failure line
TRACEBACK_HEAD = "Traceback (most recent call last):"
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')


def one_line(text: str, limit: int = LIMIT) -> str:
    """``text`` as one bounded line (a traceback in it is summarized by its last line and frame)."""
    if TRACEBACK_HEAD in text:
        text = from_traceback_text(text, {}) or text.replace(TRACEBACK_HEAD, "")
    text = " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """Every exception in a group tree, each followed by its causes and contexts."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            stack = list(current.exceptions) + stack
            continue
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]


def _inside(path: str, directory: Path) -> bool:
    """A file of the student's (in DIR, not in DIR/tests: a failing test is not the student's bug)."""
    try:
        parts = Path(path).resolve().relative_to(directory).parts
    except (ValueError, OSError):
        return False
    return parts[:1] != ("tests",)


def _short(exc: BaseException) -> str:
    return traceback.format_exception_only(exc)[-1].strip()


def _student_frame(exc: BaseException, directory: Path) -> str | None:
    """'lottery.py:12' for the innermost frame (or SyntaxError position) inside the student's DIR."""
    if isinstance(exc, SyntaxError) and exc.filename and _inside(exc.filename, directory):
        return f"{Path(exc.filename).name}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _inside(f.filename, directory)]
    if frames:
        return f"{Path(frames[-1].filename).resolve().relative_to(directory)}:{frames[-1].lineno}"
    return None


def from_exception(exc: BaseException, directory: Path, test_file: Path | None = None) -> str:
    """The line for an exception that ended a test: the student's own bug first, else where it happened."""
    directory = directory.resolve()
    leaves = list(_leaves(exc))
    for leaf in leaves:  # a traceback through the student's file
        where = _student_frame(leaf, directory)
        if where:
            return one_line(f"{_short(leaf)} at {where}")
    for leaf in leaves:  # a service reporting the student's crash in its message (crashed at DIR/FILE:LINE)
        text = str(leaf)
        if str(directory) in text:
            return one_line(f"{type(leaf).__name__}: {text.replace(str(directory) + '/', '')}")
    first = leaves[0] if leaves else exc
    frames = traceback.extract_tb(first.__traceback__)
    mine = [f for f in frames if test_file is not None and Path(f.filename).resolve() == test_file.resolve()]
    frame = (mine or frames or [None])[-1]
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return one_line(f"{_short(first)}{where}")


def from_traceback_text(text: str, names: dict[str, str]) -> str | None:
    """A program's traceback on the console, as one line: its last line and innermost frame, a
    guest path shown as the student's file (``names``: '/bin/sleep' -> 'sleep.py'); None if no traceback."""
    start = text.rfind(TRACEBACK_HEAD)
    if start < 0:
        return None
    lines = text[start:].splitlines()[1:]
    frames = [(m.group(1), m.group(2)) for m in map(FRAME.match, lines) if m]
    exception = next(
        (line for line in lines if line and not line.startswith(" ") and not FRAME.match(line)), "an exception"
    )
    mine = [(names[path], line) for path, line in frames if path in names]
    path, line = (mine or [(Path(p).name, n) for p, n in frames] or [("?", "?")])[-1]
    return f"{exception.strip()} at {path}:{line}"
