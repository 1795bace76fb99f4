"""Run ONE lab test in this process and print its result as one JSON line (the grader's child).

    python -m ukernel.lab.runner LAB DIR TEST_FILE FUNCTION

The grader starts one of these per test, with the test's timeout, so a test
that hangs or crashes the interpreter costs that test only. Whatever the
test or the student's code prints goes to stderr; stdout carries only the
result line: ``{"ok": true, "message": ""}``.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .catalog import LabError, load_lab
from .context import CheckFailed, Lab
from .explain import from_exception, one_line


def load_test(path: Path, function: str, directory: Path):
    """The test function ``function`` of the module at ``path`` (imported under a private name);
    a module that does not import is the test's failure, said in one line."""
    spec = importlib.util.spec_from_file_location(f"_lab_test_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CheckFailed(f"{path.name} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 (SystemExit too: a module must not end the grader's child)
        raise CheckFailed(f"{path.name} does not import: {from_exception(exc, directory, path)}") from None
    found = getattr(module, function, None)
    if not callable(found) or not hasattr(found, "lab_test"):
        raise CheckFailed(f"{path.name} has no test {function}")
    return found


READY_FD = "UKERNEL_LAB_READY_FD"  # where the grader hears that the test itself starts
DUMP_FILE = "UKERNEL_LAB_DUMP"  # where the test's stack goes when the grader asks (SIGUSR1)


def started() -> None:
    """Tell the grader the test function starts now: its timeout counts from here, not from
    the interpreter's start (slow on a loaded machine, and not the student's time)."""
    fd = os.environ.pop(READY_FD, None)
    if fd is not None:
        os.write(int(fd), b"1")
        os.close(int(fd))


def run_one(lab_name: str, directory: Path, test_file: Path, function: str) -> tuple[bool, str]:
    """(passed, why): every way a test can end, as one line."""
    try:
        spec = load_lab(lab_name)
        if not directory.is_dir():
            return False, f"no directory {directory}"
        lab = Lab(spec, directory, test_file)
        test = load_test(test_file, function, directory)
        started()
        test(lab)
    except (CheckFailed, LabError) as exc:
        return False, one_line(str(exc))
    except AssertionError as exc:
        return False, one_line(str(exc)) if str(exc) else from_exception(exc, directory, test_file)
    except BaseException as exc:  # noqa: BLE001 (a student's SystemExit or KeyboardInterrupt is a failure too)
        return False, from_exception(exc, directory, test_file)
    return True, ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python -m ukernel.lab.runner LAB DIR TEST_FILE FUNCTION", file=sys.stderr)
        return 2
    result_fd = os.dup(1)
    os.dup2(2, 1)  # prints by the test or the student's code land on stderr, not in the result line
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    dump = os.environ.pop(DUMP_FILE, None)
    if dump is not None:  # at its timeout, the grader asks where it runs (SIGUSR1) and reads it there
        faulthandler.register(signal.SIGUSR1, file=open(dump, "w"), all_threads=False)  # noqa: SIM115 (for ever)
    ok, message = run_one(args[0], Path(args[1]), Path(args[2]), args[3])
    sys.stdout.flush()
    os.write(result_fd, (json.dumps({"ok": ok, "message": message}) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
