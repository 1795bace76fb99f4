"""A program's own mistakes, explained so a student can act on them: a syntax error as Python
prints it (with the host file), a main that is not ``async def main(sys, argv)``, a forgotten
``await`` on a syscall (with its line), sys.exit, and OSError texts that name the errno."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import trio
from conftest import RUN_TIMEOUT, run_source

import ukernel
from ukernel import abi
from ukernel.ipc import protocol

MAIN = "`async def main(sys, argv)`"


def host_program(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


async def run_host(path: Path, **settings) -> ukernel.Result:
    """Run a host .py file as ``ukernel run FILE`` does; every run leaves the kernel clean."""
    with trio.fail_after(RUN_TIMEOUT):
        result = await ukernel.run_async(str(path), [path.stem], **settings)
    assert result.problems == [], result.problems
    return result


# --- a program that does not load --------------------------------------------------------------
async def test_a_syntax_error_is_pythons_block_with_the_host_file_and_a_caret(tmp_path):
    path = host_program(tmp_path, "syn", "# a student's program\nasync def main(sys, argv)\n    return 0\n")
    result = await run_host(path)
    assert result.exit_code == 126  # found, but it does not load: as a shell says
    assert result.stdout.decode() == (
        "init: cannot run /bin/syn: ENOEXEC: /bin/syn does not parse:\n"
        f'  File "{path}", line 2\n'
        "    async def main(sys, argv)\n"
        "                             ^\n"
        "SyntaxError: expected ':'\n"
    )
    assert "ukernel/" not in result.stdout.decode()  # no frame of ukernel's


async def test_a_program_from_bin_dirs_is_named_by_its_host_file(tmp_path):
    (tmp_path / "broken.py").write_text("async def main(sys, argv):\n    return (\n")
    result = await run_source(
        """
        async def main(sys, argv):
            try:
                await sys.execve("/bin/broken", ["broken"])
            except OSError as exc:
                await sys.write(1, f"{exc.errno} {exc.strerror}\\n".encode())
            return 0
        """,
        bin_dirs=[str(tmp_path)],
    )
    assert result.stdout.decode() == (
        "8 ENOEXEC: /bin/broken does not parse:\n"
        f'  File "{tmp_path}/broken.py", line 2\n'
        "    return (\n"
        "           ^\n"
        "SyntaxError: '(' was never closed\n"
    )


async def test_execve_of_a_file_that_does_not_parse_is_enoexec_for_the_caller():
    result = await run_source(
        """
        async def main(sys, argv):
            try:
                await sys.execve("/bin/bad", ["bad"])
            except OSError as exc:
                await sys.write(1, f"{exc.errno} {type(exc).__name__} {exc.strerror.splitlines()[-1]}\\n".encode())
            return 0
        """,
        files={"/bin/bad": b"if True\n"},
    )
    assert (result.exit_code, result.stdout) == (0, b"8 OSError SyntaxError: expected ':'\n")


@pytest.mark.parametrize(
    ("source", "line", "why"),
    [
        ("def main(sys, argv):\n    return 0\n", 1, f"main must be {MAIN}, not a plain def"),
        (
            "import os\n\n\nasync def main(sys):\n    return 0\n",
            4,
            f"main must be {MAIN}: it cannot be called with (sys, argv): too many positional arguments",
        ),
        ("main = 3\n", None, f"main must be {MAIN}, not a int"),
        ("x = 1\n", None, f"no main: a program defines {MAIN}"),
    ],
    ids=["plain-def", "one-parameter", "not-a-function", "no-main"],
)
async def test_a_main_that_cannot_start_the_program_names_the_def(tmp_path, source, line, why):
    path = host_program(tmp_path, "prog", source)
    result = await run_host(path)
    where = f"{path}:{line}" if line else str(path)
    assert (result.exit_code, result.stdout.decode()) == (126, f"init: cannot run /bin/prog: ENOEXEC: {where}: {why}\n")


# --- a forgotten await -------------------------------------------------------------------------
FORGOT = """\
async def main(sys, argv):
    await sys.write(1, b"before\\n")
    n = 2
    sys.write(1, b"lost\\n")
    await sys.write(1, b"after\\n")
    return 0
"""


async def test_a_forgotten_await_is_named_with_its_line_and_kills_the_program_as_sigsys(tmp_path):
    path = host_program(tmp_path, "forgot", FORGOT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = await run_host(path)
    assert result.stdout.decode() == (
        f'before\nukernel: {path}:4: sys.write(...) was never awaited: write "await sys.write(...)"\n'
    )  # neither the lost write nor the one after it ran
    assert (result.exit_code, abi.WTERMSIG(result.status)) == (None, abi.SIGSYS)
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []  # not Python's warning too


async def test_a_syscall_kept_and_awaited_later_is_not_forgotten():
    result = await run_source(
        """
        async def main(sys, argv):
            pending = sys.write(1, b"later\\n")
            await sys.write(1, b"first\\n")
            await pending
            return 0
        """
    )
    assert (result.exit_code, result.stdout) == (0, b"first\nlater\n")


async def test_a_syscall_never_awaited_before_main_returns_is_named_at_exit():
    result = await run_source(
        """
        async def main(sys, argv):
            pending = sys.getpid()
            return 0
        """
    )
    line = 'ukernel: /bin/t:3: sys.getpid(...) was never awaited: write "await sys.getpid(...)"\n'
    assert (result.stdout.decode(), abi.WTERMSIG(result.status)) == (line, abi.SIGSYS)


async def test_a_sys_call_is_an_awaitable_that_knows_where_it_was_made():
    result = await run_source(
        """
        async def main(sys, argv):
            call = sys.getppid()
            where = f"{type(call).__name__} {call.name} {call.lineno}"
            await sys.write(1, f"{where} {await call}\\n".encode())
            return 0
        """
    )
    assert (result.exit_code, result.stdout) == (0, b"SyscallCall getppid 3 1\n")


# --- sys.exit ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "code", "out"),
    [("sys.exit(5)", 5, b""), ("sys.exit()", 0, b""), ("sys.exit('bye')", 1, b"bye\n")],
    ids=["five", "none", "a-message"],
)
async def test_sys_exit_in_a_program_ends_it_as_python_does(tmp_path, call, code, out):
    path = host_program(tmp_path, "leave", f"import sys\n\n\nasync def main(s, argv):\n    {call}\n")
    result = await run_host(path)
    assert (result.exit_code, result.stdout) == (code, out)


# --- OSError texts name the errno --------------------------------------------------------------
async def test_oserror_texts_begin_with_the_errno_name_and_say_why():
    result = await run_source(
        """
        async def main(sys, argv):
            for call in (lambda: sys.close(9), lambda: sys.open("/nope"), lambda: sys.kill(99, 0)):
                try:
                    await call()
                except OSError as exc:
                    await sys.write(1, f"{type(exc).__name__} {exc.errno} {exc.strerror}\\n".encode())
            await sys.close(9)
        """
    )
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "OSError 9 EBADF: fd 9 is not open"
    assert lines[1].startswith("FileNotFoundError 2 ENOENT: ")
    assert lines[2].startswith("ProcessLookupError 3 ESRCH: ")
    assert lines[-1] == "OSError: [Errno 9] EBADF: fd 9 is not open"  # the traceback's last line
    assert result.exit_code == 1


def test_an_errno_without_a_why_says_strerror_and_a_named_text_is_kept():
    assert abi.kernel_error(abi.EAGAIN).strerror == "EAGAIN: Resource temporarily unavailable"
    assert abi.named(abi.EBADF, "EBADF: fd 9 is not open") == "EBADF: fd 9 is not open"
    assert type(abi.kernel_error(abi.ENOENT, "no /x")) is FileNotFoundError


def test_an_error_reply_keeps_errno_name_and_message_and_its_oserror_names_the_errno():
    error = protocol.error_from_exception(abi.kernel_error(abi.EBADF, "fd 9 is not open"))
    assert error == {"errno": abi.EBADF, "name": "EBADF", "message": "EBADF: fd 9 is not open"}
    foreign = {"errno": abi.EINVAL, "name": "EINVAL", "message": "bad flags"}  # another language's service
    exc = protocol.oserror_from_map(foreign)
    assert (exc.errno, exc.strerror) == (abi.EINVAL, "EINVAL: bad flags")
