"""What an op takes, checked for every message before its handler runs (service.py's dispatch).

Each op's keyword arguments and their kinds are read once, when its service's
class is made (``Params.of``). For a message that names only arguments its op
takes, every required one among them, a small function generated per op
(``Params.stub``, as an IDL compiler such as Mach's MIG or seL4's CAmkES
generates one per interface call) tests each argument inline and creates the
handler's coroutine, with no loop over the names and no ``**args`` call.
Anything else, and every argument the stub refuses, takes the general check
(``Params.problem``), which also says what is wrong: the stub only ever
answers "fine" sooner.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: msgpack's integers: int64 below zero, uint64 above. A bigger int cannot be sent at all.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class Kind:
    """The type one argument must have, ready to test values: ``name`` is what an error says."""

    name: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return type(value) is int and INT_MIN <= value <= INT_MAX  # type(): a bool is not an int


#: The types msgpack decodes to, each with its test.
SCALARS: dict[Any, Callable[[Any], bool]] = {
    int: _is_int,
    bool: lambda value: type(value) is bool,
    float: lambda value: type(value) is float or _is_int(value),
    str: lambda value: type(value) is str,
    bytes: lambda value: type(value) is bytes,
    list: lambda value: type(value) is list,
    dict: lambda value: type(value) is dict,
    type(None): lambda value: value is None,
}


ANYTHING = Kind("Any", lambda value: True)  # the items of a list[Any]


def kind_of(hint: Any) -> Kind | None:
    """The Kind an annotation stands for; None for no check (``Any``). TypeError for an
    annotation dispatch cannot check (a tuple, a class of the service's own...)."""
    if hint is Any:
        return None
    if hint in SCALARS:
        return Kind("None" if hint is type(None) else hint.__name__, SCALARS[hint])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        members = [kind_of(arg) for arg in args]
        if None in members:
            return None  # Any | X takes anything
        return Kind(" | ".join(m.name for m in members), _any_of(tuple(m.accepts for m in members)))
    if origin in (list, dict) and args:
        items = [kind_of(arg) or ANYTHING for arg in args]
        name = f"{origin.__name__}[{', '.join(k.name for k in items)}]"
        return Kind(name, _list_of(items[0]) if origin is list else _dict_of(*items))
    raise TypeError(f"{hint!r} is not a kind dispatch checks (int, str, bytes, bool, float, list, dict, None, Any)")


def _any_of(tests: tuple[Callable[[Any], bool], ...]) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        for test in tests:  # a loop, not any(): this runs for every argument and reply checked
            if test(value):
                return True
        return False

    return accepts


def _list_of(item: Kind) -> Callable[[Any], bool]:
    test = item.accepts

    def accepts(value: Any) -> bool:
        if type(value) is not list:
            return False
        for x in value:
            if not test(x):
                return False
        return True

    return accepts


def _dict_of(key: Kind, val: Kind) -> Callable[[Any], bool]:
    return lambda value: type(value) is dict and all(key.accepts(k) and val.accepts(v) for k, v in value.items())


def _describe(value: Any) -> str:
    """What a wrong argument is, for the error message."""
    if type(value) is int and not _is_int(value):
        return f"{value}, beyond msgpack's 64 bits"
    return type(value).__name__


#: A start stub: the handler's coroutine for arguments it can vouch for, else None.
Stub = Callable[[Callable, Any, Any, dict], Any]

#: Kinds a stub tests inline, as their tests in SCALARS do ({v}: the argument).
INLINE_TESTS = {
    "int": "(type({v}) is int and INT_MIN <= {v} <= INT_MAX)",
    "str": "type({v}) is str",
    "bytes": "type({v}) is bytes",
    "bool": "type({v}) is bool",
    "list": "type({v}) is list",
    "dict": "type({v}) is dict",
}


@dataclass(frozen=True)
class Params:
    """What an op takes: its keyword arguments, those it requires, and their kinds."""

    allowed: frozenset[str]
    required: frozenset[str]
    kinds: dict[str, Kind]  # the checked ones: annotated, and not Any
    order: tuple[str, ...] = ()  # the parameters as declared (the stub's argument order)
    stub: Stub | None = field(default=None, compare=False)

    @classmethod
    def of(cls, service: type, op_name: str, fn: Callable) -> Params:
        """Read an op's signature once, when its class is made; TypeError names what is wrong."""
        params = list(inspect.signature(fn).parameters.values())[2:]  # after self, req
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:  # a NameError, or a SyntaxError in an annotation string
            raise TypeError(f"{service.__name__}.{op_name}: its annotations do not resolve: {exc!r}") from exc
        kinds = {}
        for p in params:
            try:
                kind = kind_of(hints.get(p.name, Any))
            except TypeError as exc:
                raise TypeError(f"{service.__name__}.{op_name}: parameter {p.name}: {exc}") from None
            if kind is not None:
                kinds[p.name] = kind
        required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
        named = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        order = tuple(p.name for p in params)
        made = cls(frozenset(order), required, kinds, order)
        if not named:
            return made
        defaults = {p.name: p.default for p in params if p.name not in required}
        return cls(made.allowed, required, kinds, order, make_stub(order, kinds, defaults))

    def __post_init__(self) -> None:
        # Every message is checked: its tests by name, and the names when all are required
        # (one set comparison answers both questions then).
        object.__setattr__(self, "_tests", {name: kind.accepts for name, kind in self.kinds.items()})
        object.__setattr__(self, "_exact", self.allowed if self.allowed == self.required else None)

    def problem(self, args: dict) -> str | None:
        """What is wrong with a message's arguments, or None: names first, then types."""
        keys = args.keys()
        if not (keys == self._exact or (keys <= self.allowed and self.required <= keys)):
            want = ", ".join(sorted(self.allowed)) or "none"
            return f"bad arguments {sorted(args, key=repr)}; takes {want}"
        tests = self._tests
        if tests:
            for name, value in args.items():
                test = tests.get(name)
                if test is not None and not test(value):
                    kind = self.kinds[name]
                    return f"argument {name} must be {kind.name}, not {_describe(value)}"
        return None


_MISSING = object()


def make_stub(names: tuple[str, ...], kinds: dict[str, Kind], defaults: dict[str, Any] | None = None) -> Stub:
    """The start stub of an op taking ``names`` (those in ``defaults`` optional, with those
    defaults): given only names it takes, every required one among them, each of its kind,
    it makes the handler's coroutine (an optional one left out gets its default, as Python
    would bind it); anything else it leaves to ``Params.problem`` (None). Generated source,
    so each test is inline code."""
    defaults = defaults or {}
    scope: dict[str, Any] = {"INT_MIN": INT_MIN, "INT_MAX": INT_MAX, "MISSING": _MISSING}
    required = [name for name in names if name not in defaults]
    lines = ["def stub(handler, svc, req, args):"]
    if defaults:  # the count of the names found must be the count of the args: no other name
        lines += ["    n = len(args)", f"    if {len(required)} <= n <= {len(names)}:"]
    else:
        lines.append(f"    if len(args) == {len(names)}:")
    tests, call, found = [], ["svc", "req"], []
    for i, name in enumerate(names):
        v = f"v{i}"
        lines.append(f"        {v} = args.get({name!r}, MISSING)")
        kind = kinds.get(name)
        if kind is None:
            test = f"{v} is not MISSING"
        elif kind.name in INLINE_TESTS:
            test = INLINE_TESTS[kind.name].format(v=v)
        else:  # a union, a list[int]...: its own test (which refuses MISSING, an object())
            scope[f"test{i}"] = kind.accepts
            test = f"test{i}({v})"
        if name in defaults:
            scope[f"default{i}"] = defaults[name]
            tests.append(f"({v} is MISSING or {test})" if kind is not None else "True")
            found.append(f"({v} is not MISSING)")
            call.append(f"{name}=default{i} if {v} is MISSING else {v}")
        else:
            tests.append(test)
            call.append(f"{name}={v}")
    if defaults:
        tests.insert(0, f"n == {' + '.join([str(len(required)), *found])}")
    lines.append(f"        if {' and '.join(tests) or 'True'}:")
    lines.append(f"            return handler({', '.join(call)})")
    lines.append("    return None")
    exec("\n".join(lines), scope)  # noqa: S102 (our own source: names are a signature's identifiers)
    return scope["stub"]
