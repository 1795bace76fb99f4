"""Loading a program (binfmt): a Python file in the vfs becomes an ``Image``.

The Python side of an address space is an ``Image``: the program's module
namespace, where it started, and the *journal* of every syscall result since
that start (process.py replays it for a fork child). A caught signal is in the
journal too: a ``handle_signal`` entry where the handler was entered (on the way
out of a syscall whose own entry follows the handler's), its syscalls, then an
``rt_sigreturn`` entry where it returned, as Linux's handler returns through
the rt_sigreturn syscall.
"""

from __future__ import annotations

import importlib.resources
import inspect
import linecache
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from .. import abi
from ..reprs import bounded
from .journal import Journal
from .watch import WatchedGlobals


class ReplayDiverged(BaseException):
    """The replaying child asked for a different syscall than its parent made (or ran a
    handler differently). BaseException: a program's ``except Exception`` cannot go on
    with a replay that lost its place; the task exits 1 with the message as one line."""


@dataclass(slots=True)
class Image:
    """The Python side of an address space: namespace, start and journal (slotted: every
    clone(fn) child has one)."""

    path: str
    code: types.CodeType | None
    argv: list[str]
    envp: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)
    journal: Journal = field(default_factory=Journal)  # (task id, syscall, ok, value) since the start
    snapshot: bytes | None = None  # set when the image started as a clone(fn) copy
    snapshot_keep: list | None = None  # what the snapshot shares rather than copies (modules, code, sys)
    handlers: dict[int, Any] = field(default_factory=dict)  # sigaction tokens -> Python handlers (libc's table)
    host: str | None = None  # the host file the program was copied in from, if known (Config.host_paths)
    watched: bool = False  # explore: the namespace notes the names read (user/watch.py)

    def register_handler(self, handler: Any) -> int:
        """Tokens are given in call order, so a replaying child gets the same ones."""
        for token, known in self.handlers.items():
            if known is handler:
                return token
        token = len(self.handlers) + 1
        self.handlers[token] = handler
        return token

    @classmethod
    def load(
        cls,
        path: str,
        source: bytes,
        argv: list[str],
        envp: dict[str, str],
        host: str | None = None,
        watched: bool = False,
    ) -> Image:
        """Compile and run the module body (the loader); ENOEXEC, with what to fix, if the
        file does not parse or has no ``async def main(sys, argv)``. ``host`` is the file
        the program came from (``ukernel run prog.py``): the student's errors name it;
        ``watched``: explore's, the namespace is a ``WatchedGlobals``."""
        try:
            code = compile(source, path, "exec")
        except (SyntaxError, ValueError) as exc:
            raise abi.kernel_error(abi.ENOEXEC, f"{path} does not parse:\n{syntax_error(exc, host)}") from None
        text = source.decode("utf-8", "replace")
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # tracebacks show the lines
        image = cls(path, code, list(argv), dict(envp), host=host, watched=watched)
        try:
            image.namespace = image.fresh_namespace()
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: the module body is the loader's, not main's)
            where = _user_line(exc, path)
            raise abi.kernel_error(
                abi.ENOEXEC, f"{path}: the module body raised {bounded(exc)}{where}; do the program's work in main()"
            ) from None
        wrong = main_mistake(dict.get(image.namespace, "main"), host or path)
        if wrong:
            raise abi.kernel_error(abi.ENOEXEC, wrong)
        return image

    @property
    def shown_path(self) -> str:
        """The name a student knows the program by: the host file it came from, else its path."""
        return self.host or self.path

    def fresh_namespace(self) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "__main__", "__file__": self.path}
        if self.watched:
            namespace = WatchedGlobals(namespace)
        exec(self.code, namespace)
        if self.watched:
            namespace.reads.clear()  # the module body's loads: its frame is gone, nothing holds them
        return namespace

    def fork_copy(self, child: int, syscall: str) -> Image:
        """A child image: same start, the forking thread's journal as the child's (shared, not
        copied: journal.py), then fork returning 0."""
        journal = self.journal.fork(child, syscall)
        return Image(
            self.path,
            self.code,
            self.argv,
            self.envp,
            {},
            journal,
            self.snapshot,
            self.snapshot_keep,
            host=self.host,
            watched=self.watched,
        )


def userland_programs() -> Iterator[tuple[str, bytes]]:
    """The programs that boot installs as /bin/NAME: each userland/NAME.py (package data,
    so a wheel install has them too), in name order."""
    for program in _userland_files():
        yield program.name.removesuffix(".py"), program.read_bytes()


def userland_paths() -> dict[str, str]:
    """/bin/NAME -> the userland/NAME.py it is a copy of (relative to the working directory
    when it is under it: the name a student types), for messages about the program."""
    try:
        here = Path.cwd()
    except OSError:  # the working directory is gone: absolute names then
        here = None
    paths = {}
    for program in _userland_files():
        host = Path(str(program))
        shown = host.relative_to(here) if here is not None and host.is_relative_to(here) else host
        paths[f"/bin/{program.name.removesuffix('.py')}"] = str(shown)
    return paths


def _userland_files() -> list[Traversable]:
    files = sorted(importlib.resources.files("userland").iterdir(), key=lambda f: f.name)
    return [f for f in files if f.name.endswith(".py") and f.name != "__init__.py"]


MAIN = "`async def main(sys, argv)`"


def syntax_error(exc: SyntaxError | ValueError, host: str | None) -> str:
    """The block Python prints for a file that does not parse (file, line, the source line,
    a caret, ``SyntaxError: expected ':'``), naming the host file when there is one."""
    if isinstance(exc, SyntaxError) and host:
        exc.filename = host
    return "".join(traceback.format_exception_only(exc)).rstrip("\n")


def main_mistake(main: Any, where: str) -> str:
    """Why ``main`` cannot start the program ('FILE:LINE: main must be ...'), or ''."""
    if main is None:
        return f"{where}: no main: a program defines {MAIN}"
    code = getattr(main, "__code__", None)
    at = f"{where}:{code.co_firstlineno}" if code is not None else where
    if not inspect.iscoroutinefunction(main):
        kind = "a plain def" if inspect.isfunction(main) else f"a {type(main).__name__}"
        return f"{at}: main must be {MAIN}, not {kind}"
    try:
        inspect.signature(main).bind(None, [])
    except TypeError as exc:
        return f"{at}: main must be {MAIN}: it cannot be called with (sys, argv): {exc}"
    return ""


def _user_line(exc: BaseException, path: str) -> str:
    """' at line N' for the program's innermost frame in a traceback, else ''."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return f" at line {lines[-1]}" if lines else ""
