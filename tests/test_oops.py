"""Nothing a program does ends the kernel (issue 13): its own exceptions end it, a kernel bug is an oops.

Python's ``sys.exit(n)`` is ``exit(n)``; any other exception (KeyboardInterrupt and
GeneratorExit included) exits with status 1 and a traceback on fd 2, as the
interpreter would. A bug in a kernel path taken for a task kills that task with
SIGKILL, traces an ``oops`` event and is listed by check_invariants; the run goes on.
"""

from __future__ import annotations

import pytest
from conftest import program, run_source

import ukernel
from ukernel.api import HUNG_EXIT
from ukernel.kernel import exit as exit_
from ukernel.kernel import syscalls

PARENT = """
from ukernel.abi import SIGCHLD, WEXITSTATUS, WIFEXITED, WIFSIGNALED, WTERMSIG
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        await sys.execve("/bin/child", ["child"])
    _, status = await sys.waitpid(pid)
    if WIFSIGNALED(status):
        await sys.write(1, b"child killed by %d\\n" % WTERMSIG(status))
    else:
        await sys.write(1, b"child exited %d\\n" % WEXITSTATUS(status))
    await sys.write(1, b"parent goes on\\n")
    return 0
"""


async def run_child(child: str, **settings) -> ukernel.Result:
    files = {"/bin/child": program(child)}
    return await run_source(PARENT, files=files, **settings)


@pytest.mark.parametrize(
    ("call", "status"), [("sys.exit(3)", 3), ("sys.exit()", 0), ("sys.exit(None)", 0), ("sys.exit(256 + 7)", 7)]
)
async def test_python_sys_exit_is_exit_with_its_status(call, status):
    child = f"""
    import sys as host_sys
    async def main(sys, argv):
        {call.replace("sys.", "host_sys.")}
    """
    result = await run_child(child)
    assert result.stdout == f"child exited {status}\nparent goes on\n".encode()


async def test_sys_exit_with_a_message_prints_it_and_exits_1():
    child = """
    import sys as host_sys
    async def main(sys, argv):
        host_sys.exit("giving up")
    """
    result = await run_child(child)
    assert result.stdout == b"giving up\nchild exited 1\nparent goes on\n"


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "GeneratorExit", "ZeroDivisionError"])
async def test_any_other_exception_exits_1_with_its_traceback(exc):
    child = f"""
    async def main(sys, argv):
        raise {exc}()
    """
    result = await run_child(child)
    out = result.stdout.decode()
    assert out.startswith("Traceback (most recent call last):\n")
    assert "line 3, in main\n" in out and f"\n{exc}\n" in out
    assert out.endswith("child exited 1\nparent goes on\n")


async def test_a_module_body_that_exits_is_an_exec_format_error():
    source = """
    import sys as host_sys
    host_sys.exit(3)
    async def main(sys, argv):
        return 0
    """
    parent = """
    async def main(sys, argv):
        try:
            await sys.execve("/bin/bad", ["bad"])
        except OSError as exc:
            await sys.write(1, b"%d %s\\n" % (exc.errno, exc.strerror.encode()))
        return 0
    """
    result = await run_source(parent, files={"/bin/bad": program(source)})
    assert result.stdout == (
        b"8 ENOEXEC: /bin/bad: the module body raised SystemExit(3) at line 3; do the program's work in main()\n"
    )


async def test_a_kernel_bug_is_an_oops_that_kills_only_the_task(monkeypatch):
    async def buggy_getppid(k, task, meta):
        return {}["no such key"]  # a bug in a kernel path

    monkeypatch.setitem(syscalls.SYSCALLS, "getppid", ("kernel", buggy_getppid))
    child = """
    async def main(sys, argv):
        await sys.write(1, b"before\\n")
        await sys.getppid()
        await sys.write(1, b"never\\n")
    """
    result = await ukernel.run_async("/bin/t", ["t"], files={"/bin/t": program(PARENT), "/bin/child": program(child)})
    assert result.stdout == b"before\nchild killed by 9\nparent goes on\n"
    assert result.exit_code == 0
    [problem] = result.problems
    assert problem.startswith("oops in pid 3 (child) during getppid: KeyError('no such key') at tests/test_oops.py:")
    oops = [e for e in result.trace if e["type"] == "oops"]
    assert [(e["op"], e["pid"]) for e in oops] == [("getppid", 3)]
    assert "KeyError: 'no such key'" in oops[0]["traceback"]
    exits = [e for e in result.trace if e["type"] == "syscall_exit" and e["op"] == "getppid"]
    assert [e["result"] for e in exits] == ["?"]


async def test_an_oops_in_do_exit_leaves_the_cpu_and_the_run_ends(monkeypatch):
    """make_task_dead: the task cannot finish exiting, but it must not keep its CPU; its
    parent, never notified, is then a hang the watcher names, and the run ends (124)."""
    real = exit_.exit_notify

    async def buggy(k, task, *args):
        if task.comm == "forktest":
            raise TypeError("a bug in exit_notify")
        await real(k, task, *args)

    monkeypatch.setattr(exit_, "exit_notify", buggy)
    r = await ukernel.run_async("forktest", ["forktest", "1"])
    assert r.exit_code == HUNG_EXIT and r.problems[0].startswith("oops in pid 2 (forktest) during do_exit: TypeError")
    assert {row["pid"]: (row["state"], row["syscall"]) for row in r.hung} == {1: ("S", "wait4"), 2: ("D", "exit")}


async def test_an_oops_in_inits_do_exit_still_ends_the_run(monkeypatch):
    real = exit_.exit_notify

    async def buggy(k, task, *args):
        if task.comm == "init":
            raise TypeError("a bug in exit_notify")
        await real(k, task, *args)

    monkeypatch.setattr(exit_, "exit_notify", buggy)
    r = await ukernel.run_async("hello")
    assert r.exit_code == 0 and r.problems[0].startswith("oops in pid 1 (init) during do_exit: TypeError")
