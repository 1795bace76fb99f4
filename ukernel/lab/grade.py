"""The grader: every test of a lab in its own process, with points and timeouts, like xv6's gradelib.

    pingpong exchanges one byte: OK (1.2s)
    primes up to 35: FAIL: the program crashed: NotImplementedError: ... at primes.py:21
    Score: 7/10

Tests are found by reading the modules' source (``ast``), not by importing
them, so a module that does not import still lists its tests (each FAILs
with the reason) and the maximum score never depends on the student's code.
Each test runs as ``python -m ukernel.lab.runner`` in a new session; on
timeout its whole process group is killed.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import LabError, LabSpec, load_lab
from .explain import one_line
from .runner import DUMP_FILE, READY_FD

KILL_GRACE = 5  # seconds to wait for a killed test's process group to go
DUMP_GRACE = 3  # seconds a timed-out test has to dump its stack before it is killed
DUMP_END = "(most recent call first):"  # faulthandler's header: the frames follow at once
STARTUP = 120  # seconds a test's process may take to start Python and import the test


@dataclass
class Case:
    """One test: where it is and what it is worth."""

    function: str
    module: Path
    points: float
    timeout: float
    hidden: bool
    broken: str = ""  # why it cannot run at all (its module does not parse, no DIR): the case fails with it

    @property
    def name(self) -> str:
        return self.function.replace("_", " ")


@dataclass
class Outcome:
    case: Case
    ok: bool
    message: str
    seconds: float

    @property
    def score(self) -> float:
        return self.case.points if self.ok else 0

    def line(self) -> str:
        """gradelib's line: ``name: OK (1.2s)`` or ``name: FAIL: why``."""
        if self.ok:
            return f"{self.case.name}: OK ({self.seconds:.1f}s)"
        return f"{self.case.name}: FAIL: {self.message}"


@dataclass
class Report:
    """What ``grade`` found: an outcome per test, in order."""

    lab: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> float:
        return sum(o.case.points for o in self.outcomes)

    @property
    def full_marks(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)

    def score_line(self) -> str:
        return f"Score: {_number(self.score)}/{_number(self.max_score)}"

    def lines(self) -> list[str]:
        return [o.line() for o in self.outcomes] + [self.score_line()]

    def gradescope(self) -> dict[str, Any]:
        """results.json as Gradescope's autograder specification has it; hidden tests show after publishing."""
        return {
            "score": self.score,
            "max_score": self.max_score,
            "execution_time": round(self.seconds, 3),
            "output": f"ukernel lab {self.lab}: {self.score_line()}",
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [
                {
                    "name": o.case.name,
                    "number": str(number),
                    "score": o.score,
                    "max_score": o.case.points,
                    "status": "passed" if o.ok else "failed",
                    "output": "OK" if o.ok else o.message,
                    "tags": [self.lab, "hidden" if o.case.hidden else "visible"],
                    "visibility": "after_published" if o.case.hidden else "visible",
                }
                for number, o in enumerate(self.outcomes, 1)
            ],
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# --- finding the tests ------------------------------------------------------------------
def _decorator_args(node: ast.expr) -> dict[str, Any] | None:
    """The keywords of ``@test`` / ``@test(...)`` / ``@lab.test(...)``, or None if it is not that."""
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    if name != "test":
        return None
    return {k.arg: k.value for k in call.keywords if k.arg} if call else {}


def _literal(module: Path, node: ast.expr, key: str) -> float:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None
    if not isinstance(value, int | float) or value < 0:
        raise LabError(f"{module.name}:{node.lineno}: {key} must be a number >= 0, given literally")
    return value


def collect_module(spec: LabSpec, module: Path, hidden: bool) -> list[Case]:
    """The tests of one module, read from its source; a module that does not parse is one failing case."""
    try:
        tree = ast.parse(module.read_text(), str(module))
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        why = f"{module.name} does not parse: {one_line(str(exc), 200)}"
        return [Case(module.stem, module, 1, spec.timeout, hidden, broken=why)]
    cases = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            args = _decorator_args(decorator)
            if args is None:
                continue
            points = _literal(module, args["points"], "points") if "points" in args else 1
            points = spec.points.get(node.name, points)
            timeout = _literal(module, args["timeout"], "timeout") if "timeout" in args else spec.timeout
            cases.append(Case(node.name, module, points, timeout, hidden))
    return cases


def collect(spec: LabSpec, directory: Path, *, hidden: bool = True, package_tests: bool = False) -> list[Case]:
    """Visible tests from DIR/tests (the student's copy; the package's with ``package_tests`` or when DIR
    has no tests/), then the hidden ones."""
    given = directory / "tests"
    visible = given if given.is_dir() and not package_tests else spec.tests_dir(False)
    folders = [(visible, False)] + ([(spec.tests_dir(True), True)] if hidden else [])
    cases = []
    for folder, is_hidden in folders:
        for module in sorted(folder.glob("test_*.py")) if folder.is_dir() else ():
            cases += collect_module(spec, module, is_hidden)
    return cases


# --- running them -----------------------------------------------------------------------
def run_case(spec: LabSpec, directory: Path, case: Case) -> Outcome:
    """One test in its own process group, killed whole at its timeout."""
    if case.broken:
        return Outcome(case, False, case.broken, 0.0)
    dump = Path(tempfile.mkstemp(prefix="ukernel-lab-", suffix=".stack")[1])
    try:
        return _run_child(spec, directory, case, dump)
    finally:
        dump.unlink(missing_ok=True)


def _run_child(spec: LabSpec, directory: Path, case: Case, dump: Path) -> Outcome:
    """run_case's child: ``python -m ukernel.lab.runner``, told where to say it starts (a pipe)
    and where to write its stack when asked (``dump``)."""
    command = [sys.executable, "-m", "ukernel.lab.runner", spec.name, str(directory), str(case.module), case.function]
    started = time.monotonic()
    ready, tell = os.pipe()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=(tell,),
        env=os.environ | {READY_FD: str(tell), DUMP_FILE: str(dump)},
    )
    os.close(tell)
    try:
        _wait_until_started(ready)  # the test's own time starts there (runner.started)
        out, err = child.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        where = _student_frame(_stop(child, dump), directory)
        why = f"timed out after {_number(case.timeout)}s" + (f", running {where}" if where else "")
        return Outcome(case, False, why, time.monotonic() - started)
    seconds = time.monotonic() - started
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
        return Outcome(case, bool(result["ok"]), str(result["message"]), seconds)
    except (IndexError, ValueError, KeyError, TypeError):
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        return Outcome(case, False, f"the test process died: {one_line(last[0])}", seconds)


def _wait_until_started(ready: int) -> None:
    """Until the runner says its test starts (or ends before: the pipe closes), at most
    STARTUP seconds: starting Python and importing the test is not the test's time."""
    try:
        select.select([ready], [], [], STARTUP)
    finally:
        os.close(ready)


#: A frame of faulthandler's dump: ``  File "/home/s/pid.py", line 32 in idr_alloc_cyclic``.
DUMPED_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)', re.MULTILINE)


def _stop(child: subprocess.Popen, dump: Path) -> str:
    """End a timed-out test: first ask it where it runs (SIGUSR1: the runner's faulthandler
    writes its stack to ``dump``, even from a loop that never yields), then kill its whole
    process group; the stack it wrote."""
    try:
        child.send_signal(signal.SIGUSR1)
    except OSError:
        pass
    deadline = time.monotonic() + DUMP_GRACE
    while time.monotonic() < deadline and child.poll() is None and DUMP_END not in _read(dump):
        time.sleep(0.05)
    time.sleep(0.05)  # the last frames of the dump
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.communicate(timeout=KILL_GRACE)
    return _read(dump)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _student_frame(dump: str, directory: Path) -> str:
    """The innermost frame of the dump in the student's DIR: ``pid.py:32 in idr_alloc_cyclic``."""
    root = directory.resolve()
    for frame in DUMPED_FRAME.finditer(dump):  # most recent call first
        path = Path(frame["file"])
        if path.is_relative_to(root):
            return f"{path.relative_to(root)}:{frame['line']} in {frame['name']}"
    return ""


def grade(
    name: str,
    directory: Path | str | None = None,
    *,
    reference: bool = False,
    hidden: bool = True,
    jobs: int = 1,
    pattern: str | None = None,
    package_tests: bool = False,
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Grade the student's ``directory`` (the lab's own solution with ``reference``); ``progress``
    sees each outcome in test order as soon as it and those before it are done."""
    spec = load_lab(name)
    if spec.status != "ready":
        raise LabError(f"lab {name} is coming, not ready yet: {spec.title}")
    if reference:
        directory, package_tests = spec.solution, True
    directory = Path(directory if directory is not None else name).resolve()
    cases = collect(spec, directory, hidden=hidden, package_tests=package_tests)
    if pattern:
        cases = [c for c in cases if pattern in c.function or pattern in c.name]
    if not directory.is_dir():  # every test fails with the reason (and results.json is still written)
        missing = f"no directory {directory} (ukernel lab start {name} {directory} makes one)"
        cases = [dataclasses.replace(case, broken=missing) for case in cases]
    report = Report(name)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_case, spec, directory, case) for case in cases]
        for future in futures:
            report.outcomes.append(future.result())
            if progress is not None:
                progress(report.outcomes[-1])
    report.seconds = time.monotonic() - started
    return report
