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
import linecache
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import abi
from ..reprs import bounded

#: The journal's entries besides syscalls: (tid, HANDLE_SIGNAL, token, handler args) when a
#: handler is entered; (tid, RT_SIGRETURN, returned normally?, sig) when it is left.
HANDLE_SIGNAL, RT_SIGRETURN = "handle_signal", "rt_sigreturn"


class ReplayDiverged(BaseException):
    """The replaying child asked for a different syscall than its parent made (or ran a
    handler differently). BaseException: a program's ``except Exception`` cannot go on
    with a replay that lost its place; the task exits 1 with the message as one line."""


@dataclass
class Image:
    """The Python side of an address space: namespace, start and journal."""

    path: str
    code: types.CodeType | None
    argv: list[str]
    envp: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)
    journal: list[tuple[int, str, Any, Any]] = field(default_factory=list)  # (task id, syscall, ok, value)
    snapshot: bytes | None = None  # set when the image started as a clone(fn) copy
    snapshot_keep: list | None = None  # what the snapshot shares rather than copies (modules, code, sys)
    handlers: dict[int, Any] = field(default_factory=dict)  # sigaction tokens -> Python handlers (libc's table)

    def register_handler(self, handler: Any) -> int:
        """Tokens are given in call order, so a replaying child gets the same ones."""
        for token, known in self.handlers.items():
            if known is handler:
                return token
        token = len(self.handlers) + 1
        self.handlers[token] = handler
        return token

    @classmethod
    def load(cls, path: str, source: bytes, argv: list[str], envp: dict[str, str]) -> Image:
        """Compile and run the module body (the loader); ENOEXEC if there is no main."""
        try:
            code = compile(source, path, "exec")
        except (SyntaxError, ValueError) as exc:
            raise abi.kernel_error(abi.ENOEXEC, f"{path}: not a program: {exc}") from None
        text = source.decode("utf-8", "replace")
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)  # tracebacks show the lines
        image = cls(path, code, list(argv), dict(envp))
        try:
            image.namespace = image.fresh_namespace()
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: the module body is the loader's, not main's)
            where = _user_line(exc, path)
            raise abi.kernel_error(
                abi.ENOEXEC, f"{path}: the module body raised {bounded(exc)}{where}; do the program's work in main()"
            ) from None
        if not callable(image.namespace.get("main")):
            raise abi.kernel_error(abi.ENOEXEC, f"{path} defines no main(sys, argv)")
        return image

    def fresh_namespace(self) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "__main__", "__file__": self.path}
        exec(self.code, namespace)
        return namespace

    def fork_copy(self, forker: int, child: int, syscall: str) -> Image:
        """A child image: same start, the forking thread's journal as the child's, then fork returning 0."""
        journal = [(child if who == forker else who, name, ok, value) for who, name, ok, value in self.journal]
        journal.append((child, syscall, True, 0))
        return Image(self.path, self.code, self.argv, self.envp, {}, journal, self.snapshot, self.snapshot_keep)


def userland_programs() -> Iterator[tuple[str, bytes]]:
    """The programs that boot installs as /bin/NAME: each userland/NAME.py (package data,
    so a wheel install has them too), in name order."""
    files = sorted(importlib.resources.files("userland").iterdir(), key=lambda f: f.name)
    for program in files:
        if program.name.endswith(".py") and program.name != "__init__.py":
            yield program.name.removesuffix(".py"), program.read_bytes()


def _user_line(exc: BaseException, path: str) -> str:
    """' at line N' for the program's innermost frame in a traceback, else ''."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return f" at line {lines[-1]}" if lines else ""
