"""A student's code plugged in: a replacement for any service (``services=``, ``--service``,
``[services]``), the fork lab's CopyProcess walker (``copy_process``), and several
programs per run (``--bin``, ``--file``). What is checked: the replacement is the code
that answers (it counts its calls, and the counts are the trace's), the run is the
built-in's (same output, same route, nothing leaked), and a class that cannot stand
in for the built-in is refused before boot in one line naming what is missing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from conftest import read_line

import services
import ukernel
from services.pid import PidService
from services.signals import SignalsService
from ukernel import abi, plugin
from ukernel.config import Config, load_config
from ukernel.ipc.router import BootError
from ukernel.ipc.service import Call, Service, op
from ukernel.testing import service_client

HERE = Path(__file__).resolve().parent
PLUGS = HERE / "plugs" / "counting.py"
COUNTED = plugin.load_file(PLUGS).COUNTED
UKERNEL = [sys.executable, "-m", "ukernel.cli"]
TIMEOUT = 30
PROGRAM, ARGV = "nginx", ["nginx", "2"]  # two forks: every copy step sends its copy op


def spec(slot: str) -> str:
    return f"{PLUGS}:{COUNTED[slot][0]}"


def requests(trace: list[dict]) -> list[tuple[str, str]]:
    return [(e["dst"], e["op"]) for e in trace if e["type"] == "request"]


async def counting_run(replaced: dict[str, str], **settings) -> tuple[bytes, list[dict], dict[str, int], list[str]]:
    """PROGRAM in a kernel with ``replaced`` slots: its output, trace, each replacement's count, problems."""
    with trio.fail_after(TIMEOUT):
        async with ukernel.boot(services=replaced, **settings) as kernel:
            assert await kernel.run(f"/bin/{PROGRAM}", ARGV) == 0
            stdout = await kernel.call("vfs", "console_output", {})
            trace = list(kernel.trace)
            counts = {slot: await kernel.call(slot, "counted", {}) for slot in replaced}
            problems = await kernel.check_invariants()
    return stdout, trace, counts, problems


async def builtin_run() -> tuple[bytes, list[tuple[str, str]]]:
    """The built-in services' output and route, for comparison."""
    stdout, trace, _, problems = await counting_run({})
    assert problems == []
    return stdout, requests(trace)


# --- every slot, embedded ----------------------------------------------------------------
@pytest.mark.parametrize("slot", list(services.SERVICES))
async def test_a_replacement_overriding_one_op_answers_it_and_the_run_is_unchanged(slot):
    builtin = await builtin_run()
    stdout, trace, counts, problems = await counting_run({slot: spec(slot)})
    op_name = COUNTED[slot][1]
    sent = requests(trace).count((slot, op_name))
    assert (problems, stdout, requests(trace)) == ([], *builtin)
    assert counts == {slot: sent} and sent >= 2  # the override (not re-marked @op) handled every one


async def test_a_replacement_given_as_a_class_from_python():
    cls = plugin.load(spec("pid"))
    stdout, _, counts, problems = await counting_run({"pid": cls})
    assert (problems, counts, stdout.count(b"exited")) == ([], {"pid": 4}, 2)  # init, its fork of nginx, nginx's two


# --- every slot, served -------------------------------------------------------------------
async def test_every_slot_replaced_in_a_ukernel_serve_process(tmp_path, monkeypatch):
    monkeypatch.setenv("UKERNEL_SECRET", "plug-secret")
    every = {slot: spec(slot) for slot in services.SERVICES}
    options = [f"--service={slot}={text}" for slot, text in every.items()]
    serve = [*UKERNEL, "serve", *services.SERVICES, *options, "--listen", f"unix:{tmp_path}/all.sock"]
    builtin = await builtin_run()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                lambda task_status: trio.run_process(
                    serve, stderr=subprocess.PIPE, check=False, task_status=task_status
                )
            )
            line = await read_line(process.stderr)
            assert line.startswith("ukernel: serving "), line
            url = line.rsplit(" on ", 1)[1]
            remote = dict.fromkeys(services.SERVICES, url)
            stdout, trace, counts, problems = await counting_run(every, remote=remote)
            with pytest.raises(BootError) as refused:  # the served pid is not the built-in this run asks for
                await ukernel.run_async("hello", remote={"pid": url})
            nursery.cancel_scope.cancel()
    assert (problems, stdout, requests(trace)) == ([], *builtin)
    assert {e["node"] for e in trace if e["type"] == "request"} == {url}
    assert counts == {slot: requests(trace).count((slot, op_name)) for slot, (_, op_name) in COUNTED.items()}
    assert str(refused.value) == (
        f"remote pid runs the class {plugin.identity(plugin.load(spec('pid')))}, this run asks for "
        "the built-in class: serve pid with the same --service"
    )
    assert plugin.identity(plugin.load(spec("pid"))).startswith("CountingPid from counting.py (sha256 ")


# --- refused at boot: one line naming what is wrong ------------------------------------------
class NoFreePid(PidService):
    async def alloc_pid(self, req: Call, ns: int) -> dict:  # dropped set_tid
        return await super().alloc_pid(req, ns)

    free_pid = None  # no longer an op


class StrictPid(PidService):
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None, flags: int) -> dict:
        return await super().alloc_pid(req, ns, set_tid)


class WrongName(PidService):
    name = "pids"


class CallsOut(SignalsService):
    calls = frozenset({"pid"})


class Bare(Service):
    @op
    async def init_sighand(self, req: Call) -> dict:
        return {}


@pytest.mark.parametrize(
    ("slot", "cls", "why"),
    [
        ("pid", NoFreePid, "op alloc_pid does not take set_tid; NoFreePid has no op free_pid"),
        ("pid", StrictPid, "op alloc_pid requires flags, which callers may leave out; "
         "op alloc_pid requires set_tid, which callers may leave out"),
        ("pid", WrongName, "WrongName.name is 'pids', not 'pid'"),
        ("signals", CallsOut, "CallsOut calls pid, which signals may not call (its calls: none)"),
        ("signals", dict, "<class 'dict'> is not a class derived from SignalsService or ukernel.ipc.service.Service"),
    ],
)  # fmt: skip
def test_a_class_that_cannot_stand_in_for_the_builtin_is_refused_naming_each_problem(slot, cls, why):
    with pytest.raises(ValueError) as refused:
        Config(services={slot: cls})
    assert str(refused.value) == f"service {slot}={cls.__qualname__}: {why}"


def test_a_service_subclass_must_provide_every_op_of_the_builtin():
    with pytest.raises(ValueError) as refused:
        Config(services={"signals": Bare})
    missing = [name for name in SignalsService.OPS if name not in Bare.OPS]
    assert str(refused.value) == "service signals=Bare: " + "; ".join(f"Bare has no op {m}" for m in missing)
    assert "Bare.name" not in str(refused.value)  # a Service that did not set its name gets the slot's


def test_an_unknown_slot_and_a_spec_that_does_not_load_are_one_line(tmp_path):
    with pytest.raises(
        ValueError, match="^services: no service pids; services are mm vfs pid sched signals namespaces$"
    ):
        Config(services={"pids": PidService})
    (tmp_path / "pid.py").write_text("class MyPid(\n    pass\n")
    with pytest.raises(ValueError) as refused:
        Config(services={"pid": f"{tmp_path}/pid.py:MyPid"})
    assert (
        str(refused.value)
        == f"service pid={tmp_path}/pid.py:MyPid: {tmp_path}/pid.py:1: SyntaxError: '(' was never closed"
    )
    for text, why in [
        (f"{tmp_path}/none.py:MyPid", f"{tmp_path}/none.py: ENOENT: No such file or directory"),
        (f"{PLUGS}:NoSuch", f"{PLUGS} has no NoSuch"),
        ("no_such_module:MyPid", "cannot import no_such_module: No module named 'no_such_module'"),
        ("MyPid", "'MyPid' is not path/to/file.py:Class or package.module:Class"),
    ]:
        with pytest.raises(ValueError) as refused:
            Config(services={"pid": text})
        assert str(refused.value) == f"service pid={text}: {why}"


def test_the_cli_refuses_a_replacement_missing_an_op_in_one_line(tmp_path):
    (tmp_path / "pid.py").write_text(
        textwrap.dedent(
            """
            from services.pid import PidService

            class MyPid(PidService):
                free_pid = None
            """
        )
    )
    done = subprocess.run([*UKERNEL, "run", "--service", f"pid={tmp_path}/pid.py:MyPid", "hello"], capture_output=True)
    assert (done.returncode, done.stderr.decode()) == (
        2,
        f"ukernel: --service: pid={tmp_path}/pid.py:MyPid: MyPid has no op free_pid\n",
    )


def test_two_students_files_of_the_same_name_are_two_classes(tmp_path):
    for student in ("ann", "bob"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "pid.py").write_text(
            f"from services.pid import PidService\n\nclass MyPid(PidService):\n    who = {student!r}\n"
        )
    ann, bob = (plugin.load(f"{tmp_path}/{s}/pid.py:MyPid") for s in ("ann", "bob"))
    assert (ann.who, bob.who) == ("ann", "bob")
    assert plugin.load(f"{tmp_path}/ann/pid.py:MyPid") is ann  # the same file, unchanged: the same class


def test_sched_takes_a_file_spec_through_the_same_loader(tmp_path):
    (tmp_path / "lottery.py").write_text(
        "from services.sched.classes import RoundRobin\n\nclass Mine(RoundRobin):\n    pass\n"
    )
    config = Config(sched=f"{tmp_path}/lottery.py:Mine")
    assert services.build("sched", config).rqs[0][1].__class__.__name__ == "Mine"
    with pytest.raises(
        ValueError, match=r"^sched: cannot load scheduling class '.*/nope.py:Mine': .*/nope.py: ENOENT: No such file"
    ):
        Config(sched=f"{tmp_path}/nope.py:Mine")


# --- an override of an op is that op -------------------------------------------------------
class Greeter(Service):
    name = "greeter"

    @op
    async def greet(self, req: Call, who: str) -> str:
        return f"hello {who}"

    @op
    async def wave(self, req: Call) -> str:
        return "wave"


class LoudGreeter(Greeter):
    async def greet(self, req: Call, who: str) -> str:  # not re-marked @op
        return f"HELLO {who}"

    wave = None  # taken away: no longer an op


class WrappingGreeter(Greeter):
    async def greet(self, req: Call, **args) -> str:  # takes what Greeter.greet takes, checked as it is
        return (await super().greet(req, **args)).title()


async def test_an_override_not_marked_op_is_what_dispatch_calls():
    async with service_client(LoudGreeter()) as c:
        assert await c.call("greet", who="ann") == "HELLO ann"
        with pytest.raises(OSError) as gone:
            await c.call("wave")
    assert gone.value.errno == abi.ENOSYS
    async with service_client(WrappingGreeter()) as c:
        assert await c.call("greet", who="bob") == "Hello Bob"
        with pytest.raises(OSError) as bad:
            await c.call("greet", who=1)
    assert (bad.value.errno, bad.value.strerror) == (
        abi.EINVAL,
        "EINVAL: greeter.greet: argument who must be str, not int",
    )


# --- the fork lab's plug ----------------------------------------------------------------------
async def test_copy_process_walks_with_the_labs_walker_and_its_unwind_runs_on_a_failure():
    walker = plugin.load(f"{PLUGS}:CountingUnwind")
    before = walker.unwinds
    plain = await ukernel.run_async(PROGRAM, ARGV, fail={"copy_mm": "ENOMEM"})
    with trio.fail_after(TIMEOUT):
        result = await ukernel.run_async(
            PROGRAM, ARGV, fail={"copy_mm": "ENOMEM"}, copy_process=f"{PLUGS}:CountingUnwind"
        )
    assert (result.problems, result.stdout, requests(result.trace)) == ([], plain.stdout, requests(plain.trace))
    assert walker.unwinds - before == 1  # nginx's first fork fails at copy_mm and the program ends
    assert requests(result.trace).count(("vfs", "put_files")) >= 1


def test_copy_process_must_subclass_copyprocess():
    with pytest.raises(
        ValueError, match=r"^copy_process: <class 'int'> is not a subclass of ukernel.kernel.fork.CopyProcess$"
    ):
        Config(copy_process=int)


# --- several programs per run ---------------------------------------------------------------------
PRODUCER = "async def main(sys, argv):\n    await sys.write(1, b'one\\ntwo\\nthree\\n')\n    return 0\n"
UPPER = """
async def main(sys, argv):
    while data := await sys.read(0, 4096):
        await sys.write(1, data.upper())
    return 0
"""


def test_a_students_two_programs_in_a_pipeline_with_bin_and_a_file_with_file(tmp_path):
    progs = tmp_path / "progs"
    progs.mkdir()
    (progs / "produce.py").write_text(PRODUCER)
    (progs / "upper.py").write_text(UPPER)
    (progs / "notes.txt").write_text("not a program")
    (tmp_path / "motd.txt").write_text("hi there\n")
    done = subprocess.run(
        [*UKERNEL, "run", "--bin", str(progs), "--file", f"{tmp_path}/motd.txt:/etc/motd",
         "--file", str(progs / "notes.txt"), "sh", "-c", "produce | upper; cat /etc/motd; ls /bin/notes /notes.txt"],
        capture_output=True,
    )  # fmt: skip
    assert (done.returncode, done.stderr, done.stdout.decode()) == (
        2,  # ls's, as GNU ls for a missing file: only .py files go into /bin
        b"",
        "ONE\nTWO\nTHREE\nhi there\nls: cannot access '/bin/notes': No such file or directory\n/notes.txt\n",
    )
    missing = subprocess.run([*UKERNEL, "run", "--bin", str(tmp_path / "nope"), "hello"], capture_output=True)
    assert (missing.returncode, missing.stderr.decode()) == (
        2,
        f"ukernel: --bin: {tmp_path}/nope: ENOENT: No such file or directory\n",
    )


async def test_a_toml_file_names_services_programs_and_files_relative_to_itself(tmp_path):
    (tmp_path / "progs").mkdir()
    (tmp_path / "progs" / "produce.py").write_text(PRODUCER)
    (tmp_path / "motd.txt").write_text("from the file\n")
    (tmp_path / "pid.py").write_text((HERE / "plugs" / "counting.py").read_text())
    (tmp_path / "run.toml").write_text(
        'bin_dirs = ["progs"]\nhost_files = ["motd.txt:/etc/motd"]\ncopy_process = "pid.py:CountingUnwind"\n'
        '[services]\npid = "pid.py:CountingPid"\n'
    )
    settings = load_config(tmp_path / "run.toml")
    assert settings["services"] == {"pid": f"{tmp_path}/pid.py:CountingPid"}
    assert (settings["bin_dirs"], settings["host_files"]) == ([f"{tmp_path}/progs"], [f"{tmp_path}/motd.txt:/etc/motd"])
    config = Config(**settings)
    assert (config.services["pid"].__name__, config.copy_process.__name__) == ("CountingPid", "CountingUnwind")
    with trio.fail_after(TIMEOUT):
        result = await ukernel.run_async(
            "sh", ["sh", "-c", "produce; cat /etc/motd"], config=str(tmp_path / "run.toml")
        )
    assert (result.problems, result.stdout) == ([], b"one\ntwo\nthree\nfrom the file\n")
    with pytest.raises(ValueError, match="^.*/nowhere.txt: ENOENT: No such file or directory$"):
        await ukernel.run_async("hello", host_files=[str(tmp_path / "nowhere.txt")])
