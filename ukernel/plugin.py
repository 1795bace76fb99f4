"""Loading a student's class from a spec: ``path/to/file.py:Class`` or ``package.module:Class``.

The one loader behind ``--service``, ``--sched`` and ``--copy-process``. A host
file is loaded under a module name made from its full path, so two students'
``pid.py`` are two modules, and its directory need not be a package. Whatever
goes wrong is a ValueError of one line naming the file (and the line of a
SyntaxError), never a traceback. Imports only the standard library, so a
service may use it (services/__init__.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from . import abi

#: How a spec is written, for error messages.
FORMS = "path/to/file.py:Class or package.module:Class"


def split_spec(spec: str) -> tuple[str, str]:
    """'pkg.mod:Class' -> ('pkg.mod', 'Class'); ValueError when it is not a spec."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise ValueError(f"{spec!r} is not {FORMS}")
    return where, attr


def is_file_spec(spec: str) -> bool:
    """True for 'student/pid.py:MyPid' (a host file), False for 'pkg.mod:Class'."""
    where = spec.rpartition(":")[0]
    return where.endswith(".py") or "/" in where


def relative_to(spec: str, base: str | os.PathLike) -> str:
    """A file spec with a relative path made relative to ``base`` (a TOML file's directory)."""
    if not isinstance(spec, str) or not is_file_spec(spec):
        return spec
    where, attr = split_spec(spec)
    return f"{Path(base) / Path(where).expanduser()}:{attr}"


def load(spec: Any) -> Any:
    """The object a spec names (a class given as itself is returned as it is)."""
    if not isinstance(spec, str):
        return spec
    where, attr = split_spec(spec)
    module = load_file(Path(where)) if is_file_spec(spec) else _import(where)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{where} has no {attr}") from None


def load_subclass(spec: Any, base: type) -> type:
    """The class a spec names, which must derive from ``base``; ValueError says why not."""
    cls = load(spec)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{spec!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return cls


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise ValueError(_syntax_error(exc)) from None
    except ImportError as exc:
        raise ValueError(f"cannot import {name}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"{name}: importing it raised {_where(exc)}{type(exc).__name__}: {exc}") from None


def load_file(path: Path) -> Any:
    """A host .py file as a module, once per path and version of the file."""
    try:
        real = path.expanduser().resolve(strict=True)
        stat = real.stat()
    except OSError as exc:
        raise ValueError(f"{path}: {abi.named(exc.errno, exc.strerror) if exc.errno else exc}") from None
    if not real.is_file():
        raise ValueError(f"{path}: not a file")
    # The name says which file (so a crash report is read relative to its directory) and
    # which version of it: an edited file is loaded anew, an unchanged one is the same module.
    stem = re.sub(r"\W", "_", real.stem)
    name = f"ukernel_plugin_{stem}_{hashlib.sha256(f'{real}:{stat.st_mtime_ns}'.encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, real)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before running it: a dataclass in it looks itself up there
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ValueError(_syntax_error(exc)) from None
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(f"{path}: loading it raised {_where(exc, real)}{type(exc).__name__}: {exc}") from None
    return module


def _syntax_error(exc: SyntaxError) -> str:
    return f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}"


def _where(exc: BaseException, file: Path | None = None) -> str:
    """'pid.py:12: ' to put before the error: the innermost frame in ``file`` (the student's
    line, not the library's that raised), else the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in frames if file is not None and Path(f.filename) == file] or frames
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def identity(cls: type) -> str:
    """Which class this is, the same on every host that has the same file: the class's
    name, its file's name and a digest of the file (so an edited copy differs)."""
    try:
        file = Path(inspect.getfile(cls))
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    except (TypeError, OSError):  # defined where no file holds it
        return f"{cls.__module__}:{cls.__qualname__}"
    return f"{cls.__qualname__} from {file.name} (sha256 {digest})"
