"""The copy of an address space for clone(fn) without CLONE_VM: a pickle round trip.

What the program can reach (module globals, the function's closure, its
argument) is copied, as dup_mm copies memory; what is read-only (modules,
code objects, ``sys``) is shared rather than copied.
"""

from __future__ import annotations

import io
import pickle
import types
from typing import Any

from .. import abi


def _make_function(code, globals_, name, defaults, closure, kwdefaults, attrs):
    fn = types.FunctionType(code, globals_, name, defaults, closure)
    fn.__kwdefaults__ = kwdefaults
    if attrs:  # (a function's __dict__ is made on first use: most have none)
        fn.__dict__.update(attrs)
    return fn


def _make_cell():
    return types.CellType()


def _fill_cell(cell, contents):
    cell.cell_contents = contents


def _make_class(name, bases, namespace):
    return type(name, bases, {"__module__": "__main__"})


def _fill_class(cls, state):
    for key, value in state.items():
        if key not in ("__dict__", "__weakref__"):
            setattr(cls, key, value)


#: What a copy shares rather than copies: modules and code are read-only (a tuple: isinstance
#: takes it faster than a union).
_READ_ONLY = (types.ModuleType, types.CodeType)


class _SpacePickler(pickle.Pickler):
    """Copies what a program reaches; shares what is read-only (modules, code, sys)."""

    def __init__(self, file: io.BytesIO, namespace: dict, shared: tuple):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.buf, self.namespace, self.given = file, namespace, shared
        self.shared = {id(s) for s in shared}  # (they outlive the dump: their ids stay theirs)
        self.keep: list[Any] = []

    def persistent_id(self, obj):
        """Called for every object the dump meets, so the common answer (copy it) comes first
        and costs one type test and one set lookup."""
        if isinstance(obj, _READ_ONLY) or id(obj) in self.shared:
            self.keep.append(obj)
            return len(self.keep) - 1
        return None

    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and obj.__globals__ is self.namespace:
            args = (
                obj.__code__,
                obj.__globals__,
                obj.__name__,
                obj.__defaults__,
                obj.__closure__,
                obj.__kwdefaults__,
                obj.__dict__,
            )
            return _make_function, args
        if isinstance(obj, types.CellType):
            try:
                contents = obj.cell_contents
            except ValueError:
                return _make_cell, ()
            return _make_cell, (), contents, None, None, _fill_cell
        if isinstance(obj, type) and obj.__module__ == "__main__":
            state = {k: v for k, v in vars(obj).items() if k not in ("__dict__", "__weakref__")}
            return _make_class, (obj.__name__, obj.__bases__, None), state, None, None, _fill_class
        return NotImplemented


class _SpaceUnpickler(pickle.Unpickler):
    def __init__(self, file, keep: list):
        super().__init__(file)
        self.keep = keep

    def persistent_load(self, pid):
        return self.keep[pid]


def copy_space(namespace: dict, roots: tuple, shared: tuple, last: LastCopy) -> tuple[bytes, list, tuple]:
    """Snapshot (namespace, *roots) as bytes; returns (bytes, shared refs, the copy).
    ``last`` is the runtime's last snapshot, whose objects an equal one reuses, and whose
    pickler a copy of the same namespace reuses (making one costs a third of a small dump)."""
    pickler = last.pickler
    if pickler is None or pickler.namespace is not namespace or pickler.given != shared:
        last.pickler = pickler = _SpacePickler(io.BytesIO(), namespace, shared)
    buf = pickler.buf
    buf.seek(0)
    buf.truncate()
    pickler.keep = []
    try:
        pickler.dump((namespace, *roots))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        last.pickler = None  # (half a dump inside: not reused)
        raise abi.kernel_error(abi.EINVAL, f"clone without CLONE_VM cannot copy the program's state: {exc}") from None
    except BaseException:
        last.pickler = None
        raise
    pickler.clear_memo()  # (the memo holds what it met: the copy's objects are the child's alone)
    data, keep = last.same(buf.getvalue(), pickler.keep)
    return data, keep, restore_space(data, keep)


class LastCopy:
    """The last snapshot made: a clone(fn) loop's children, copied from the same state, hold
    one bytes object and one list of shared refs between them rather than one each."""

    __slots__ = ("data", "keep", "pickler")

    def __init__(self) -> None:
        self.data, self.keep = b"", []
        self.pickler: _SpacePickler | None = None  # the last copy's, for the next of the same namespace

    def same(self, data: bytes, keep: list) -> tuple[bytes, list]:
        """``data`` and ``keep``, or the equal ones made before (the same bytes, the same objects)."""
        if (
            data == self.data
            and len(keep) == len(self.keep)
            and all(a is b for a, b in zip(keep, self.keep, strict=True))
        ):
            return self.data, self.keep
        self.data, self.keep = data, keep
        return data, keep


def restore_space(data: bytes, keep: list) -> tuple:
    return _SpaceUnpickler(io.BytesIO(data), keep).load()
