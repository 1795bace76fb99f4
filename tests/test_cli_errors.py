"""Every user mistake is one line on stderr, ``ukernel: ...``, never a traceback (--debug shows
it), with the exit status docs/cli.md lists; ``ukernel.run`` raises the same line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import ukernel
from ukernel.ipc.router import BootError
from ukernel.mistakes import EXIT_CODES

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"
SECRET = {"UKERNEL_SECRET": "s3cret"}
CPUS = "ukernel: --cpus: must be at least 1 (a machine needs a CPU), not 0"


def ukernel_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "UKERNEL_SECRET"} | (env or {})
    environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent.parent), environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "ukernel.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd=cwd,
        env=environ,
    )


# (arguments, the first line of stderr, the exit status); {tmp} is the test's directory
BAD_INPUTS = [
    (["run"], "ukernel: run: which program? (ukernel run --list shows them)", 2),
    (["run", "--cpus", "0", "hello"], CPUS, 2),
    (
        ["run", "--cpus", "two", "hello"],
        "ukernel: run: argument --cpus: invalid int value: 'two' (see ukernel run --help)",
        2,
    ),
    (["run", "--nosuch", "hello"], "ukernel: run: unrecognized arguments: --nosuch (see ukernel run --help)", 2),
    (["run", "--memory", "1K", "hello"], "ukernel: --memory: 1K is too small: at least 1M", 2),
    (
        ["run", "--memory", "lots", "hello"],
        "ukernel: --memory: 'lots' is not a size (bytes, or a number with K, M or G: 64M)",
        2,
    ),
    (
        ["run", "--nproc", "0", "hello"],
        "ukernel: --nproc: must be at least 1 (RLIMIT_NPROC: how many tasks may exist), not 0",
        2,
    ),
    (["run", "--pid-max", "1", "hello"], "ukernel: --pid-max: must leave room for pid 1, not 1", 2),
    (
        ["run", "--fail", "copy_mm=ENOPE", "hello"],
        "ukernel: --fail: copy_mm: unknown errno 'ENOPE' (a name like ENOMEM, or a number)",
        2,
    ),
    (
        ["run", "--trace", "/nonexistent/x.jsonl", "hello"],
        "ukernel: --trace: /nonexistent/x.jsonl: ENOENT: No such file or directory",
        2,
    ),
    (
        ["run", "--trace-format", "html", "hello"],
        "ukernel: --trace-format html: a file for another program: add --trace FILE (or --trace - for stdout)",
        2,
    ),
    (
        ["run", "--config", "{tmp}/bad.toml", "hello"],
        "ukernel: --config: {tmp}/bad.toml: cpus: must be an integer, not 'two'",
        2,
    ),
    (
        ["run", "--sched", "nope", "hello"],
        "ukernel: --sched: unknown scheduling class 'nope': one of cfs, rr or path/to/file.py:Class or package.module:Class",
        2,
    ),
    (
        ["run", "--sched-set", "sched_latencyy=3", "hello"],
        "ukernel: --sched-set: rr takes no sched_latencyy; its settings: sched_latency, sched_min_granularity, "
        "sched_wakeup_granularity, sched_rr_timeslice, rr_slice",
        2,
    ),
    (["run", "--bin", "{tmp}/nope", "hello"], "ukernel: --bin: {tmp}/nope: ENOENT: No such file or directory", 2),
    (
        ["run", "--copy-process", "{tmp}/nope.py:X", "hello"],
        "ukernel: --copy-process: {tmp}/nope.py: ENOENT: No such file or directory",
        2,
    ),
    (["run", "--cpu-limit", "-1", "hello"], "ukernel: --cpu-limit: seconds >= 0 (0: no limit), not -1.0", 2),
    (
        ["run", "--insecure", "--remote", "mm=tcp://127.0.0.1:1", "hello"],
        "ukernel: --remote: no shared secret: UKERNEL_SECRET is empty or unset",
        2,
    ),
    (
        ["run", "--remote", "mm=tcp://127.0.0.1:1", "hello", "+secret"],
        "ukernel: --remote: mm at tcp://127.0.0.1:1: plain TCP is refused: give --tls DIR (keys from "
        "`ukernel keys`), or --insecure on loopback",
        2,
    ),
    (
        ["run", "--insecure", "--remote", "mm=tcp://10.0.0.2:7001", "hello", "+secret"],
        "ukernel: --remote: mm at tcp://10.0.0.2:7001: --insecure: plain TCP only on loopback, not 10.0.0.2: "
        "use --tls DIR",
        2,
    ),
    (
        ["run", "--tls", "{tmp}/nokeys", "--remote", "mm=tcp://127.0.0.1:1", "hello"],
        "ukernel: --tls: {tmp}/nokeys/ca.pem: no such file (make it with `ukernel keys init {tmp}/nokeys`)",
        2,
    ),
    (
        ["serve", "mm", "--tls", "{tmp}/nokeys", "--listen", "tcp://127.0.0.1:0"],
        "ukernel: serve: --tls: {tmp}/nokeys/ca.pem: no such file (make it with `ukernel keys init {tmp}/nokeys`)",
        2,
    ),
    (
        ["serve", "mm", "--listen", "tcp://127.0.0.1:0", "+secret"],
        "ukernel: serve: --listen: tcp://127.0.0.1:0: plain TCP is refused: give --tls DIR (keys from "
        "`ukernel keys`), or --insecure on loopback",
        2,
    ),
    (
        ["serve", "mm", "--insecure", "--listen", "tcp://0.0.0.0:0", "+secret"],
        "ukernel: serve: --listen: tcp://0.0.0.0:0: --insecure: plain TCP only on loopback, not 0.0.0.0: use --tls DIR",
        2,
    ),
    (
        ["keys", "issue", "kernel", "{tmp}/nokeys"],
        "ukernel: keys: {tmp}/nokeys/ca.key: no such file (make the CA with `ukernel keys init {tmp}/nokeys`)",
        2,
    ),
    (
        ["run", "--remote", "mm=garbage", "hello", "+secret"],
        "ukernel: --remote: mm at garbage: bad address 'garbage': want tcp://HOST:PORT or unix:/PATH",
        2,
    ),
    (
        ["run", "--insecure", "--remote", "mm=tcp://127.0.0.1:1", "hello", "+secret"],
        "ukernel: --remote: mm at tcp://127.0.0.1:1: ECONNREFUSED: nobody listens there "
        "(is `ukernel serve mm --listen tcp://127.0.0.1:1` running?)",
        2,
    ),
    (
        ["run", "--remote", "mm=unix:{tmp}/no.sock", "hello", "+secret"],
        "ukernel: --remote: mm at unix:{tmp}/no.sock: ENOENT: nobody listens there "
        "(is `ukernel serve mm --listen unix:{tmp}/no.sock` running?)",
        2,
    ),
    (
        ["run", "--insecure", "--remote", "nope=tcp://127.0.0.1:1", "hello", "+secret"],
        "ukernel: --remote: no service nope; services are mm vfs pid sched signals namespaces",
        2,
    ),
    (["run", "ngnix", "4"], "ukernel: ngnix: program not found (did you mean nginx?)", 127),
    (["run", "/bin/nothere"], "ukernel: /bin/nothere: program not found (ukernel run --list shows them)", 127),
    (["run", "./nothere.py"], "ukernel: ./nothere.py: no such file on the host (looked for {tmp}/nothere.py)", 127),
    (
        ["flags", "CLONE_VMM"],
        "ukernel: flags: 'CLONE_VMM' is no clone flag (CLONE_VM, ...), signal (SIGCHLD) or number (0x100)",
        2,
    ),
]


def _id(case: tuple) -> str:
    return re.sub(r"[^\w=.-]+", "_", " ".join(w for w in case[0][1:] if w != "+secret"))[:40] or case[0][0]


@pytest.mark.parametrize(("args", "first", "code"), BAD_INPUTS, ids=map(_id, BAD_INPUTS))
def test_a_bad_input_is_one_line_with_its_exit_status(tmp_path, args, first, code):
    (tmp_path / "bad.toml").write_text('cpus = "two"\n')
    env = SECRET if "+secret" in args else None
    words = [a.format(tmp=tmp_path) for a in args if a != "+secret"]
    done = ukernel_cli(*words, cwd=tmp_path, env=env)
    err = done.stderr.decode()
    assert (done.returncode, err) == (code, first.format(tmp=tmp_path) + "\n")
    assert "Traceback" not in err and done.stdout == b""


def test_a_wrong_secret_is_one_line_naming_the_secret(tmp_path):
    sock = tmp_path / "mm.sock"
    serve = subprocess.Popen(
        [sys.executable, "-m", "ukernel.cli", "serve", "mm", "--listen", f"unix:{sock}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"UKERNEL_SECRET": "theirs"},
    )
    try:
        assert serve.stderr.readline() == f"ukernel: serving mm on unix:{sock}\n".encode()
        done = ukernel_cli("run", "--remote", f"mm=unix:{sock}", "hello", env={"UKERNEL_SECRET": "ours"})
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
    assert (done.returncode, done.stderr.decode()) == (
        2,
        f"ukernel: --remote: mm at unix:{sock}: refused: wrong secret (bad HMAC) "
        "(the secrets differ: UKERNEL_SECRET or --secret-file)\n",
    )


@pytest.mark.parametrize("where", ["before", "after"], ids=["ukernel-debug-run", "run-debug"])
def test_debug_shows_the_traceback_behind_the_line(where):
    args = (
        ["--debug", "run", "--cpus", "0", "hello"] if where == "before" else ["run", "--debug", "--cpus", "0", "hello"]
    )
    done = ukernel_cli(*args)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert err.startswith("Traceback (most recent call last):\n") and "ValueError: cpus: must be at least 1" in err
    assert err.endswith(f"\n{CPUS}\n")


# --- exit statuses -----------------------------------------------------------------------------
PROGRAMS = {
    "three": ("async def main(sys, argv):\n    return 3\n", 3, ""),
    "leave": ("import sys\n\n\nasync def main(s, argv):\n    sys.exit(5)\n", 5, ""),
    "syn": ("async def main(sys, argv)\n    return 0\n", 126, ""),
    "term": (
        "async def main(sys, argv):\n    await sys.kill(await sys.getpid(), 15)\n",
        143,
        "program killed by SIGTERM",
    ),
    "forgot": (
        "async def main(sys, argv):\n    sys.getpid()\n    await sys.getpid()\n",
        159,
        "program killed by SIGSYS",
    ),
    "stuck": ("async def main(sys, argv):\n    await sys.pause()\n", 124, None),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_exit_status_says_how_the_program_ended(tmp_path, name):
    source, code, line = PROGRAMS[name]
    (tmp_path / f"{name}.py").write_text(source)
    done = ukernel_cli("run", str(tmp_path / f"{name}.py"))
    err = done.stderr.decode()
    assert done.returncode == code
    if line is not None:
        assert err == (f"ukernel: {line}\n" if line else "")
    else:  # a hang: the dump of who waits for what, then the status it exits with
        assert err.startswith("ukernel: deadlock: ") and err.endswith(f"every task killed; exit status {code}\n")


def test_ctrl_c_ends_the_run_with_130_and_one_line(tmp_path):
    (tmp_path / "wait.py").write_text(
        'async def main(sys, argv):\n    await sys.write(1, b"ready\\n")\n    await sys.read(0, 10)\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ukernel.cli", "run", str(tmp_path / "wait.py")],
        stdin=subprocess.PIPE,  # never written: the program waits for input, the run does not hang
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert (proc.wait(timeout=60), proc.stderr.read()) == (130, b"ukernel: interrupted\n")
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()


def test_the_exit_statuses_are_in_run_help_and_docs_cli_md():
    done = ukernel_cli("run", "--help")
    help_text = done.stdout.decode()
    table = DOCS.read_text()
    for code, why in EXIT_CODES:
        assert re.search(rf"^  {re.escape(code)} +{re.escape(why)}$", help_text, re.M), code
        assert f"| {code} | {why} |" in table, code


# --- the API raises the same line --------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "error", "line"),
    [
        ({"cpus": 0}, ValueError, "cpus: must be at least 1 (a machine needs a CPU), not 0"),
        ({"memory": "lots"}, ValueError, "memory: 'lots' is not a size (bytes, or a number with K, M or G: 64M)"),
        ({"nproc": -1}, ValueError, "nproc: must be at least 1 (RLIMIT_NPROC: how many tasks may exist), not -1"),
        (
            {"fail": {"copy_mm": "ENOPE"}},
            ValueError,
            "fail: copy_mm: unknown errno 'ENOPE' (a name like ENOMEM, or a number)",
        ),
        (
            {"remote": {"mm": "garbage"}},
            BootError,
            "remote: mm at garbage: bad address 'garbage': want tcp://HOST:PORT or unix:/PATH",
        ),
        (
            {"remote": {"mm": "tcp://127.0.0.1:1"}, "insecure": True},
            BootError,
            "remote: mm at tcp://127.0.0.1:1: ECONNREFUSED: nobody listens there "
            "(is `ukernel serve mm --listen tcp://127.0.0.1:1` running?)",
        ),
        (
            {"remote": {"mm": "tcp://127.0.0.1:1"}},
            ValueError,
            "remote: mm at tcp://127.0.0.1:1: plain TCP is refused: give --tls DIR (keys from `ukernel keys`), "
            "or --insecure on loopback",
        ),
    ],
    ids=["cpus", "memory", "nproc", "fail", "remote-address", "remote-refused", "remote-plain"],
)
async def test_the_api_raises_one_exception_whose_text_is_the_line(monkeypatch, settings, error, line):
    monkeypatch.setenv("UKERNEL_SECRET", "s3cret")
    with trio.fail_after(60), pytest.raises(error) as raised:
        await ukernel.run_async("hello", **settings)
    assert type(raised.value) is error and str(raised.value) == line  # not an ExceptionGroup


@pytest.mark.parametrize(("nproc", "code", "out"), [(3, 1, b"sh: Resource temporarily unavailable\n"), (4, 0, b"a\n")])
def test_nproc_is_rlimit_nproc(nproc, code, out):
    done = ukernel_cli("run", "--nproc", str(nproc), "sh", "-c", "echo a | cat")  # init, sh, echo, cat
    assert (done.returncode, done.stdout, done.stderr) == (code, out, b"")


@pytest.mark.parametrize("args", [("run", "--list"), ("flags", "CLONE_VM|CLONE_FS")])
def test_a_reader_that_left_ends_the_command_as_sigpipe_would(args):
    """``ukernel run --list | head -1``: stdout's reader is gone before the command writes."""
    r, w = os.pipe()
    os.close(r)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ukernel", *args],
            stdin=subprocess.DEVNULL,
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(w)
    assert (done.returncode, done.stderr) == (128 + signal.SIGPIPE, "")


def test_serve_on_an_address_in_use_is_one_line(tmp_path):
    import socket

    path = tmp_path / "pid.sock"
    with socket.socket(socket.AF_UNIX) as taken:
        taken.bind(str(path))
        taken.listen()
        done = ukernel_cli("serve", "pid", "--listen", f"unix:{path}", env=dict(os.environ, UKERNEL_SECRET="s"))
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == f"ukernel: serve: --listen unix:{path}: Address already in use\n"
