"""A program's globals watched for explore: which names a step of a task read and wrote.

Threads (clone with CLONE_VM) share their program's module namespace, so without
a closer look every step of one conflicts with every step of another (explore's
partial-order reduction, explore/por.py). While exploring, an image's namespace
is a ``WatchedGlobals``: CPython 3.11 loads a global of a function whose globals
are not an exact dict with ``PyObject_GetItem`` (LOAD_GLOBAL's slow path, never
specialised), so every load of a name goes through ``__getitem__`` and is noted.
``UserSteps`` turns that into each step's footprint on user memory
(docs/explore.md, "User memory"):

- a step **reads** the names it loaded and every global whose object graph shares a
  mutable object with what the task's frames hold at its start (an alias: a local, a
  cell, the value stack, read with user/framestack.py: a for loop's iterator over a
  global list, an argument being built around an await; the syscall's arguments; a
  clone argument): what a frame loaded earlier and still holds is seen there, and
  what it no longer holds is no read (cond-var's ``state`` after its change). Where
  a stack cannot be read, the names its task loaded in any earlier step whose value
  then reached a mutable object stay read (*held*);
- a step **writes** the names whose *form* changed: the value walked deeply with
  the identity of every mutable object in it (so an in-place change counts, and
  so does rebinding a name to an equal copy), names bound and unbound included;
- a global whose graph holds something the walk cannot see into (a generator, an
  object of a C type) is written by every step that reads it;
- and the step touches *all* of user memory (the caller's coarse object) when its
  task has no watched namespace, its image has signal handlers, it replaced its
  namespace (exec, a fork child starting its replay), something read the whole
  namespace (``globals().items()``, a copy for clone without CLONE_VM), its frames
  reach what the walk cannot see into, or they share a mutable object with another
  task's frames that no global holds (a list passed to two threads).
"""

from __future__ import annotations

import collections
import gc
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .framestack import frame_objects

if TYPE_CHECKING:
    from ..kernel.core import Kernel
    from ..kernel.task import TaskStruct

#: The name noted when something read the whole namespace (no identifier is "*").
EVERY = "*"
#: Names that are the loader's, not the program's data (the builtins' dict is shared by all).
UNWATCHED = frozenset({"__builtins__"})


class WatchedGlobals(dict):
    """A program's namespace that notes the names read from it (``reads``); writes are
    found by comparing forms (``UserSteps``), as STORE_GLOBAL bypasses ``__setitem__``."""

    __slots__ = ("reads",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: set[str] = set()

    def __getitem__(self, key: Any) -> Any:
        self.reads.add(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads.add(key)
        return dict.get(self, key, default)

    def __contains__(self, key: Any) -> bool:
        self.reads.add(key)
        return dict.__contains__(self, key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.reads.add(key)
        return dict.setdefault(self, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self.reads.add(key)
        return dict.pop(self, key, *default)

    def __getstate__(self) -> bool:
        return True  # a copy (clone without CLONE_VM pickles the namespace) has read nothing yet

    def __setstate__(self, _state: bool) -> None:
        self.reads = set()

    def _every(self) -> None:
        self.reads.add(EVERY)

    # the reads of every name at once
    def keys(self):  # noqa: ANN201 (dict's views)
        self._every()
        return dict.keys(self)

    def values(self):  # noqa: ANN201
        self._every()
        return dict.values(self)

    def items(self):  # noqa: ANN201
        self._every()
        return dict.items(self)

    def __iter__(self):  # noqa: ANN204
        self._every()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._every()
        return dict.__len__(self)

    def __eq__(self, other: object) -> bool:
        self._every()
        return dict.__eq__(self, other)

    def copy(self) -> dict:
        self._every()
        return dict(dict.items(self))

    def popitem(self) -> tuple:
        self._every()
        return dict.popitem(self)

    def __repr__(self) -> str:
        self._every()
        return dict.__repr__(self)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement, not a C type
_ATOMS = frozenset({type(None), int, str, bytes, type(Ellipsis), type(NotImplemented), range})
_TAGGED = frozenset({bool, float, complex})  # their forms would equal an int's (True == 1 == 1.0)
_LEAF_MODULES = ("ukernel", "trio")  # the kernel's objects (a program's sys): not user memory
_BOUND_C = (types.BuiltinFunctionType, types.MethodWrapperType)  # len, lst.append: __self__ is the state
_CLASS_SKIP = frozenset({"__dict__", "__weakref__"})


class Walk:
    """One deep walk of a value: its *form* (plain values, and the identity of every mutable
    object in it: equal forms mean nothing a program can observe changed), the ids of the
    mutable objects met (``ids``), and whether something's state could not be seen
    (``opaque``: an object of a C type; what it refers to is walked, so ``ids`` is whole)."""

    def __init__(self, namespace: dict) -> None:
        self.namespace = namespace
        self.ids: set[int] = set()
        self.opaque = False
        self.whole = False  # the namespace itself was met (globals() held): every name

    def form(self, v: Any) -> Any:
        t = type(v)
        if t in _ATOMS:
            return v
        if t in _TAGGED:
            return (t.__name__, repr(v))
        if t is tuple or t is frozenset:  # immutable: what is mutable is inside
            return (t.__name__, tuple(self.form(x) for x in v))
        if v is self.namespace:  # globals() held: every name at once
            self.whole = True
            return ("globals",)
        if _leaf(t, v):
            return ("leaf", id(v))
        key = id(v)
        if key in self.ids:
            return ("@", key)
        self.ids.add(key)
        return (key, self._mutable(t, v))

    def _mutable(self, t: type, v: Any) -> Any:
        form = self.form
        if t is list or t is collections.deque:
            return tuple(form(x) for x in v)
        if t is dict:
            return tuple((form(k), form(x)) for k, x in dict.items(v))
        if t is set:
            return tuple(form(x) for x in v)
        if t is bytearray:
            return bytes(v)
        if t is types.FunctionType:
            cells = tuple(self._cell(c) for c in v.__closure__ or ())
            extra = form(v.__dict__) if v.__dict__ else None
            return ("fn", id(v.__code__), form(v.__defaults__), form(v.__kwdefaults__), cells, extra)
        if t is types.MethodType:
            return ("m", form(v.__func__), form(v.__self__))
        if isinstance(v, _BOUND_C):  # (one bound to a module is a leaf)
            return ("c", form(v.__self__))
        if isinstance(v, type):  # a class statement's (a library's is a leaf)
            return ("class", tuple((k, form(x)) for k, x in vars(v).items() if k not in _CLASS_SKIP))
        if t is staticmethod or t is classmethod:
            return (t.__name__, form(v.__func__))
        if t is property:
            return ("property", form(v.fget), form(v.fset), form(v.fdel))
        if isinstance(v, BaseException):
            return ("exc", form(type(v)), form(v.args), form(getattr(v, "__dict__", None)))
        return self._instance(t, v)

    def _instance(self, t: type, v: Any) -> Any:
        """An object of a class statement's class: its class, fields and slots (and its items
        where the class extends a container); one with a C type's state is opaque."""
        mro = t.__mro__[:-1]
        containers = (dict, list, set, collections.deque, collections.defaultdict, collections.OrderedDict)
        form = self.form
        if not all(c.__flags__ & _HEAPTYPE or c in containers for c in mro):
            self.opaque = True  # a C type's state (an iterator's position): what it refers to is seen
            return ("opaque", tuple(form(x) for x in gc.get_referents(v)))
        fields = form(vars(v)) if hasattr(v, "__dict__") else None
        slots = tuple((name, form(getattr(v, name, None))) for c in mro for name in _slots(c) if name != "__dict__")
        items: Any = None
        if isinstance(v, dict):
            items = (tuple((form(k), form(x)) for k, x in dict.items(v)), form(getattr(v, "default_factory", None)))
        elif isinstance(v, list | set | collections.deque):
            items = tuple(form(x) for x in v)
        return ("obj", form(t), fields, slots, items)

    def _cell(self, cell: types.CellType) -> Any:
        self.ids.add(id(cell))  # a nonlocal assignment changes the cell
        try:
            return (id(cell), self.form(cell.cell_contents))
        except ValueError:
            return (id(cell), "empty")


def _slots(cls: type) -> tuple[str, ...]:
    slots = getattr(cls, "__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


def _leaf(t: type, v: Any) -> bool:
    """What is not user memory, or never changes: modules (every program's: not watched,
    docs/explore.md), code, the kernel's objects (a program's sys), a library's classes,
    builtin functions bound to a module (len)."""
    if isinstance(v, types.ModuleType | types.CodeType) or t.__module__.startswith(_LEAF_MODULES):
        return True
    if isinstance(v, type):
        return v.__module__ != "__main__"
    if isinstance(v, _BOUND_C):
        owner = getattr(v, "__self__", None)
        return owner is None or isinstance(owner, types.ModuleType)
    return False


@dataclass(frozen=True, slots=True)
class Global:
    """One global's walk: its form, the mutable objects it reaches, whether it is opaque."""

    form: Any
    ids: frozenset[int]
    opaque: bool
    whole: bool  # it holds the namespace itself: a read of it reads every name


def walk_globals(namespace: dict) -> dict[str, Global]:
    """Each name's own walk (not one walk for all: an object two globals share is in both,
    so a change through either is a write of both)."""
    out = {}
    for name, value in dict.items(namespace):
        if name in UNWATCHED:
            continue
        w = Walk(namespace)
        out[name] = Global(w.form(value), frozenset(w.ids), w.opaque, w.whole)
    return out


_KERNEL = str(Path(__file__).resolve().parents[1])  # the ukernel package: its frames are not the program's


def _program_frame(frame: types.FrameType) -> bool:
    import sys

    name = frame.f_code.co_filename
    return not name.startswith((_KERNEL, sys.base_prefix, sys.prefix))


@dataclass(slots=True)
class Open:
    """The step under way: its task, namespace, the globals at its start and the names its
    frames alias (``start`` None: the step touches all of user memory, seen at its start);
    ``seen``: every frame was read whole, value stacks included (else the held names count)."""

    pid: int
    namespace: WatchedGlobals
    start: dict[str, Global] | None = None
    alias: frozenset[str] = frozenset()
    seen: bool = False


class UserSteps:
    """explore's Footprint's hooks on user memory (``begin`` and ``end`` of each step)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.open: Open | None = None
        self.last: tuple[dict, dict[str, Global]] | None = None  # the namespace walked at the last end
        self.held: dict[int, set[str]] = {}  # pid -> the names its task ever loaded (a stack not read)

    def begin(self, pid: int) -> None:
        """``pid``'s step starts: what its namespace and frames hold now (a structure too
        deep to walk: all of user memory)."""
        self.open = None
        try:
            self._begin(pid)
        except RecursionError:
            self.last = None

    def _begin(self, pid: int) -> None:
        task = self.kernel.tasks.by_pid.get(pid)
        image = task.image if task is not None else None
        ns = image.namespace if image is not None else None
        if not isinstance(ns, WatchedGlobals):
            return
        sharing = [t for t in self.kernel.tasks if t is not task and t.image is not None and t.image.namespace is ns]
        if ns.reads:  # loads no step was seen to make: any task of the namespace may hold them
            for t in [task, *sharing]:
                self.held.setdefault(t.pid, set()).update(ns.reads)
            ns.reads.clear()
        self.open = step = Open(pid, ns)
        if image.handlers:
            return
        start = self.last[1] if self.last is not None and self.last[0] is ns else walk_globals(ns)
        mine, seen = self._roots(task, ns)
        if mine.whole:
            return  # globals() in a local
        if not seen and EVERY in self.held.get(pid, ()):
            return  # (held: it may still hold any name's objects)
        everyone = frozenset().union(*(g.ids for g in start.values()))
        others: set[int] = set()
        for t in sharing:
            theirs, read = self._roots(t, ns)
            others |= theirs.ids
            seen = seen and read
        if (mine.ids & others) - everyone:
            return  # an object two tasks' frames share, no global holds: not seen by name
        step.start, step.alias = start, frozenset(name for name, g in start.items() if g.ids & mine.ids)
        step.seen = seen

    def end(self, pid: int) -> tuple[frozenset[str], frozenset[str]] | None:
        """The names ``pid``'s step read and wrote, or None: all of its user memory."""
        try:
            return self._end(pid)
        except RecursionError:
            self.last = None
            return None

    def _end(self, pid: int) -> tuple[frozenset[str], frozenset[str]] | None:
        step, self.open = self.open, None
        task = self.kernel.tasks.by_pid.get(pid)
        ns = step.namespace if step is not None and step.pid == pid else None
        if ns is None or (task is not None and task.image is not None and task.image.namespace is not ns):
            self.last = None  # a step not begun here, or one that replaced its namespace (exec)
            return None
        held = self.held.setdefault(pid, set())
        loaded = frozenset(ns.reads)
        ns.reads.clear()
        now = walk_globals(ns)
        self.last = (ns, now)
        start = step.start
        # what its frames may hold on: a coarse step's loads all, else those that reach a
        # mutable object (a snapshot of a plain value changes with nothing: reading it again
        # is no read of the global)
        held |= loaded if start is None else {n for n in loaded if n == EVERY or _reaches(start, n) or _reaches(now, n)}
        if start is None or EVERY in (loaded if step.seen else held):
            return None
        # its frames read whole at its start: what they held is the alias, the rest it loaded;
        # else what it loaded in earlier steps may be on a stack not read
        reads = loaded | step.alias if step.seen else frozenset(held) | loaded | step.alias
        if any(_whole(start, n) or _whole(now, n) for n in reads):
            return None
        writes = {n for n in start.keys() | now.keys() if _form(start, n) != _form(now, n)}
        writes.update(n for n in reads if _opaque(start, n) or _opaque(now, n))
        return reads, frozenset(writes)

    def _roots(self, task: TaskStruct, ns: dict) -> tuple[Walk, bool]:
        """What the task's program frames hold (locals, cells, value stacks: a ``for`` loop's
        iterator, an expression's partial results) and the arguments of the syscall it is in
        (a task not started yet: the function and argument it starts with); whether every
        stack was read (user/framestack.py)."""
        from ..kernel.choice import entry_code, task_frames  # choice imports the kernel, which imports user

        w = Walk(ns)
        if task.host is None:
            w.form(task.entry[1:] if isinstance(task.entry, tuple) else task.entry)
            return w, True
        seen, entry, program = True, entry_code(), False
        for frame in task_frames(task):
            if frame.f_code is entry:  # the call's arguments (a buffer to write, clone's fn and arg)
                w.form(frame.f_locals.get("args"))
                break  # (below it, the kernel's own frames)
            program = program or _program_frame(frame)
            if not program or frame.f_code.co_filename.startswith(_KERNEL):
                continue  # the harness around the program, libc's calls
            held = frame_objects(frame)  # a program frame, or a library's coroutine it awaits
            if held is None:
                seen = False
                held = list(frame.f_locals.values())
            for value in held:
                w.form(value)
        return w, seen


_MISSING = ("unbound",)


def _form(globals_: dict[str, Global], name: str) -> Any:
    g = globals_.get(name)
    return _MISSING if g is None else g.form


def _whole(globals_: dict[str, Global], name: str) -> bool:
    g = globals_.get(name)
    return g is not None and g.whole


def _reaches(globals_: dict[str, Global], name: str) -> bool:
    """Whether the global's value reaches a mutable object, or something not seen into."""
    g = globals_.get(name)
    return g is not None and bool(g.ids or g.opaque or g.whole)


def _opaque(globals_: dict[str, Global], name: str) -> bool:
    g = globals_.get(name)
    return g is not None and g.opaque
