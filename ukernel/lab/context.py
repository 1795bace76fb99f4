"""What a lab's test sees: the ``@test`` decorator and the ``Lab`` context passed to each test.

    from ukernel.lab import test

    @test(points=2, timeout=30)
    def pingpong_exchanges_one_byte(lab):
        r = lab.run("/bin/pingpong")
        lab.check(r.stdout == b"3: received ping\\n2: received pong\\n", f"stdout was {r.stdout!r}")
        lab.clean(r)

``lab.run`` is ``ukernel.run`` with the lab's [plug] applied for the student's
DIR: their programs in /bin, their scheduling class, their services. A check
that fails ends the test with its one-line reason (docs/labs.md).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

import ukernel
from ukernel import abi, plugin
from ukernel.api import Result
from ukernel.testing import service_client

from .catalog import LabSpec
from .explain import from_traceback_text, one_line

PLUG_FILES = ("sched", "copy_process")  # [plug] keys naming one FILE:Class of the student's DIR
PROBLEMS_SHOWN = 3  # the first few leaks or faults are enough to act on
HEADLINE = 400  # characters of one problem shown: room for a student's absolute path and line


class CheckFailed(Exception):
    """A test's check did not hold: the message is the FAIL line's reason."""


@dataclass(frozen=True)
class TestInfo:
    points: float = 1
    timeout: float | None = None  # None: the lab's timeout


def test(fn: Callable | None = None, *, points: float = 1, timeout: float | None = None) -> Any:
    """Mark a function of a lab's tests/ or hidden/ module as a test (``@test`` or ``@test(points=2)``).
    The grader reads points and timeout from the source without running it, so give them as numbers."""

    def mark(function: Callable) -> Callable:
        function.lab_test = TestInfo(points, timeout)  # type: ignore[attr-defined]
        return function

    return mark(fn) if fn is not None else mark


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test itself


class Lab:
    """The context of one test: the student's DIR and how their code plugs into a run."""

    def __init__(self, spec: LabSpec, directory: Path, test_file: Path):
        self.spec, self.dir, self.test_file = spec, directory.resolve(), test_file.resolve()
        self.crash = ""  # the last run's program crash, as one line ('' if none)
        self.settings = self.plug(spec.plug)

    # --- the plug -----------------------------------------------------------------------
    def plug(self, settings: dict[str, Any]) -> dict[str, Any]:
        """[plug] (or a test's own settings) as ukernel.run keywords for this DIR."""
        out = {k: v for k, v in settings.items() if k != "bin"}
        if settings.get("bin"):
            out["files"] = {f"/bin/{p.stem}": p.read_bytes() for p in sorted(self.dir.glob("*.py"))}
        for key in PLUG_FILES:
            if key in settings:
                out[key] = self._student_class(settings[key], key == "sched")
        if "services" in settings:
            out["services"] = {slot: self._student_class(v, False) for slot, v in settings["services"].items()}
        return out

    def _student_class(self, value: str, as_module: bool) -> str:
        """'lottery.py:Lottery' -> 'lottery:Lottery' (DIR on sys.path) or '/DIR/lottery.py:Lottery'."""
        file, sep, cls = value.partition(":")
        if not sep or not file.endswith(".py"):
            return value  # a built-in or importable name: 'cfs', 'pkg.mod:Class'
        path = self.dir / file
        if not path.is_file():
            raise CheckFailed(f"{file} is not in {self.dir}")
        if not as_module:
            return f"{path}:{cls}"
        if str(self.dir) not in sys.path:
            sys.path.insert(0, str(self.dir))
        return f"{path.stem}:{cls}"

    # --- running ------------------------------------------------------------------------
    def run(self, program: str | Path, argv: list[str] | None = None, **settings: Any) -> Result:
        """ukernel.run with the plug applied; a test's settings win (``files`` are added to the plug's)."""
        given = self.plug(settings)
        merged = self.settings | given
        merged["files"] = self.settings.get("files", {}) | given.get("files", {})
        program = str(program)
        if program.startswith("/bin/") and self.spec.plug.get("bin"):
            name = program.removeprefix("/bin/")
            if f"/bin/{name}" not in merged["files"] and not _userland_has(name):
                raise CheckFailed(f"there is no {name}.py in {self.dir}")
        result = ukernel.run(program, argv, **merged)
        names = {f"/bin/{Path(p).name}": f"{Path(p).name}.py" for p in merged["files"] if p.startswith("/bin/")}
        self.crash = from_traceback_text(result.stdout.decode("utf-8", "replace"), names) or ""
        return result

    @staticmethod
    def syscalls(result: Result, op: str) -> list[dict]:
        """Each finished ``op`` syscall of the run, in order: its exit event plus the enter's
        ``args`` and ``start`` (the tick it entered), so a test reads what was asked and how long it took."""
        entered = {e["msgid"]: e for e in result.trace if e["type"] == "syscall_enter" and e["op"] == op}
        return [
            e | {"args": entered[e["msgid"]].get("args", {}), "start": entered[e["msgid"]]["ts"]}
            for e in result.trace
            if e["type"] == "syscall_exit" and e["op"] == op and e["msgid"] in entered
        ]

    def helper(self, name: str) -> Path:
        """A file shipped beside the lab's tests (a driver program): next to this test, else in the lab."""
        for folder in (self.test_file.parent, self.spec.tests_dir(False), self.spec.tests_dir(True)):
            if (folder / name).is_file():
                return folder / name
        raise CheckFailed(f"the lab ships no helper {name}")

    # --- checking -----------------------------------------------------------------------
    def check(self, condition: Any, why: str) -> None:
        """Fail the test with ``why`` unless ``condition``; a crash of the program is the better reason."""
        if not condition:
            raise CheckFailed(f"the program crashed: {self.crash}" if self.crash else one_line(why))

    def exited(self, result: Result, code: int = 0) -> None:
        """The program exited with ``code`` (a crash, a hang or a signal is said as such)."""
        self.check(not result.error, result.error)
        self.check(result.exit_code == code, f"exit status {_status(result)}, expected {code}")

    def ran(self, result: Result) -> None:
        """In the order that names the cause first: the run was not stopped (a service's bug),
        it was clean (a broken reply, a leak), and the program exited 0."""
        self.check(not result.error, result.error)
        self.clean(result)
        self.exited(result, 0)

    def expect_output(self, result: Result, want: list[str]) -> None:
        """``ran``, and the program printed the lines ``want``."""
        self.ran(result)
        got = result.stdout.decode(errors="replace").splitlines()
        self.check(got == want, f"the program printed {got}, expected {want}")

    def talk(self, slot: str, script: Callable[..., Awaitable[Any]], **settings: Any) -> tuple[Any, dict]:
        """``await script(call, attempt)`` against a fresh instance of the student's class for
        ``slot`` (built with ``settings``), through real messages as the kernel sends them
        (ukernel.testing.service_client): ``call(op, **args)`` answers the op's result and fails
        the test on an errno, ``attempt(op, **args)`` answers the result or the errno's name.
        Returns what the script returned and the service's accounting after it."""
        cls = plugin.load(self.settings["services"][slot])

        async def main() -> tuple[Any, dict]:
            async with service_client(cls(**settings)) as client:

                async def attempt(op: str, **args: Any) -> Any:
                    try:
                        return await client.call(op, **args)
                    except OSError as exc:
                        return Refused(op, args, exc)

                async def call(op: str, **args: Any) -> Any:
                    answer = await attempt(op, **args)
                    if isinstance(answer, Refused):
                        raise answer
                    return answer

                async def named(op: str, **args: Any) -> Any:
                    answer = await attempt(op, **args)
                    return abi.errno_name(answer.exc.errno) if isinstance(answer, Refused) else answer

                return await script(call, named), await client.call("accounting")

        try:
            return trio.run(main)
        except Refused as refused:
            raise CheckFailed(str(refused)) from None

    def clean(self, result: Result) -> None:
        """The run ended on its own (no deadlock), no program crashed, and check_invariants found
        nothing (the first few problems)."""
        self.check(not result.hung, result.error)
        if self.crash:
            raise CheckFailed(f"a program crashed: {self.crash}")
        if result.problems:
            shown = "; ".join(headline(p) for p in result.problems[:PROBLEMS_SHOWN])
            more = len(result.problems) - PROBLEMS_SHOWN
            raise CheckFailed(f"after the run: {shown}" + (f" and {more} more" if more > 0 else ""))


class Refused(Exception):  # noqa: N818 (a service's answer, not an error of the grader)
    """The service answered an errno where the test (``Lab.talk``'s ``call``) expected a result."""

    def __init__(self, op: str, args: dict, exc: OSError):
        super().__init__(f"{op}({args}) answered {abi.errno_name(exc.errno)}: {exc.strerror}")
        self.exc = exc


def headline(problem: str) -> str:
    """A problem's first line, whole up to HEADLINE characters: a service bug's report puts its
    file:line there, at the end (the lines under it are the stack and the messages)."""
    return one_line(problem.strip().splitlines()[0] if problem.strip() else problem, HEADLINE)


def _status(result: Result) -> str:
    if result.exit_code is not None:
        return str(result.exit_code)
    return f"killed by {ukernel.abi.SIGNAL_NAMES.get(ukernel.abi.WTERMSIG(result.status), result.status)}"


def _userland_has(name: str) -> bool:
    import userland

    return (Path(userland.__file__).parent / f"{name}.py").is_file()
