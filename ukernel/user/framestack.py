"""A program frame's value stack, for explore's state digest (kernel/choice.py ``user_state``)
and its footprints on user memory (user/watch.py: what a step's frames hold at its start).

A frame's locals do not say all of where it is: a ``for`` loop's iterator lives on
the value stack only (``for x in (1, 1, 1): await sys.sched_yield()`` is three
states with one set of locals), and so do the partial results of an expression
around an ``await``. CPython 3.11 shows no frame's stack to Python code, so this
reads it from the frame's ``_PyInterpreterFrame`` (Include/internal/pycore_frame.h):
a suspended frame saved its stack pointer (``stacktop``); a running one (the
task at the choice point is in the kernel, below its program's ``await``) did not,
and its depth at the current instruction is found by a walk of the code's
bytecode with ``dis.stack_effect``, checked against the saved depth where there
is one (tests/test_explore_speed.py). Where the stack cannot be read (another
CPython, a frame at an instruction that is no await) the answer is a token no
other state has: the state is then never merged, which loses no outcome.
"""

from __future__ import annotations

import ctypes
import dis
import functools
import os
import sys
from types import CodeType, FrameType
from typing import Any

#: Where 3.11 keeps what is read here: PyFrameObject.f_frame (after PyObject_HEAD and
#: f_back); _PyInterpreterFrame.stacktop (after seven pointers and prev_instr) and
#: localsplus (after stacktop, is_entry and owner, padded).
_F_FRAME, _STACKTOP, _LOCALSPLUS = 24, 64, 72
READABLE = sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython"
_NO_FALL_THROUGH = frozenset(
    {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE", "RAISE_VARARGS", "RERAISE"}
)


def value_stack(frame: FrameType) -> list[Any]:
    """The objects on ``frame``'s value stack, bottom first, less the awaitable on top of an
    ``await`` (the next frame of the chain, digested as such); ``None`` stands for a NULL slot.
    A stack that cannot be read is a token no other state has."""
    slots = _slots(frame)
    return [unreadable()] if slots is None else slots[nlocalsplus(frame.f_code) :]


def frame_objects(frame: FrameType) -> list[Any] | None:
    """Every object ``frame`` holds: its locals', cells' and free variables' slots (a cell as
    the cell, which a closure of a global may share) and its value stack, as ``value_stack``;
    None where the stack cannot be read (user/watch.py then takes its coarser rule)."""
    return _slots(frame)


def _slots(frame: FrameType) -> list[Any] | None:
    """The frame's ``localsplus`` then its stack (less an await's awaitable), or None."""
    if not READABLE:
        return None
    code, at = frame.f_code, frame.f_lasti
    op = dis.opname[code.co_code[at]]
    base = ctypes.c_void_p.from_address(id(frame) + _F_FRAME).value
    top = ctypes.c_int.from_address(base + _STACKTOP).value
    nlocals = nlocalsplus(code)
    if top >= 0:  # suspended (or a generator not started): the pointer it saved
        depth = top - nlocals
    elif op == "SEND":  # running, in an await: the depth before SEND less the value it sent
        depth = stack_depths(code).get(at, -1) - 1
    else:
        return None
    if not 0 <= depth <= code.co_stacksize:
        return None
    awaiting = op == "SEND" or op == "YIELD_VALUE" and at >= 2 and dis.opname[code.co_code[at - 2]] == "SEND"
    kept = nlocals + (depth - 1 if awaiting and depth else depth)
    slots = (ctypes.c_void_p * kept).from_address(base + _LOCALSPLUS)
    return [None if p is None else ctypes.cast(p, ctypes.py_object).value for p in slots]


def unreadable() -> tuple:
    """A token equal to nothing met before or after in any process of the tree (random: a
    serial would repeat in two children of one process, a pid once it is reused)."""
    return ("unreadable stack", os.urandom(16))


@functools.cache
def nlocalsplus(code: CodeType) -> int:
    """The slots before the stack: locals, cells and free variables (``co_nlocalsplus``, which
    3.11 does not show; an argument that is a cell has one slot, not two)."""
    n = 0
    while True:
        try:
            code._varname_from_oparg(n)
        except (IndexError, ValueError, SystemError):
            return n
        n += 1


@functools.cache
def stack_depths(code: CodeType) -> dict[int, int]:
    """The stack's depth before each instruction (byte offsets), from the entry and from each
    exception handler (its depth, the lasti it pushes, and the exception); a generator's or
    coroutine's frame as it runs after its first resume."""
    instructions = {i.offset: i for i in dis.get_instructions(code)}
    offsets = sorted(instructions)
    following = dict(zip(offsets, offsets[1:], strict=False))
    work = [(0, 0)] + [(e.target, e.depth + e.lasti + 1) for e in dis._parse_exception_table(code)]
    depths: dict[int, int] = {}
    while work:
        at, depth = work.pop()
        while at is not None and at not in depths:
            depths[at] = depth
            ins = instructions[at]
            arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
            if ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
                work.append((ins.argval, depth + dis.stack_effect(ins.opcode, arg, jump=True)))
            if ins.opname in _NO_FALL_THROUGH:
                break
            # RETURN_GENERATOR: the frame resumes with the value sent (None) pushed, which POP_TOP takes
            depth += 1 if ins.opname == "RETURN_GENERATOR" else dis.stack_effect(ins.opcode, arg, jump=False)
            at = following.get(at)
    return depths
