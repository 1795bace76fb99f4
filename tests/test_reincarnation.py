"""The reincarnation server (kernel/reincarnation.py): a dead service is restarted by policy."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio

import ukernel
import ukernel.api
from services.pid import PidService
from services.vfs import VfsService
from ukernel.config import Config
from ukernel.ipc import protocol
from ukernel.kernel.reincarnation import _held

NGINX_4 = (
    b"master 2: starting 4 workers\n"
    b"worker 0: pid 3, parent 2\n"
    b"worker 1: pid 4, parent 2\n"
    b"worker 2: pid 5, parent 2\n"
    b"worker 3: pid 6, parent 2\n"
    b"master 2: worker 0 exited 10, worker 1 exited 11, worker 2 exited 12, worker 3 exited 13\n"
)
FAST = {"pid": {"backoff_min": 0.001, "backoff_max": 0.002}}


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """RS's own lines (not the kernel's reports of what then failed)."""
    return [r.getMessage() for r in caplog.records if r.name == "ukernel.rs"]


def restarts(result: ukernel.Result) -> list[dict]:
    return [e for e in result.trace if e["type"] == "restart"]


def test_pid_killed_in_nginx_4_is_restarted_and_the_run_completes(caplog: pytest.LogCaptureFixture) -> None:
    """Killed after its 2nd request (worker 1's alloc_pid): workers 2 and 3 fork through the fresh one."""
    with caplog.at_level(logging.WARNING, logger="ukernel.rs"):
        result = ukernel.run("nginx", ["nginx", "4"], restart=FAST, kill_service="pid@2")
    assert (result.status, result.stdout, result.problems) == (0, NGINX_4, [])
    [event] = restarts(result)
    assert {k: event[k] for k in ("service", "attempt", "delay", "why", "failed")} == {
        "service": "pid",
        "attempt": 1,
        "delay": 0.001,
        "why": "killed on purpose after its request 2 (kill_service)",
        "failed": 0,
    }
    assert event["held"] == {"faults": 0, "pids": 4, "numbers": 4, "namespaces": 1, "refs": 4}
    assert said(caplog) == [
        "ukernel: pid died (killed on purpose after its request 2 (kill_service)) and was restarted (attempt 1, "
        "after 0.001 s): the old instance held 1 namespaces, 4 numbers, 4 pids, 4 refs; 0 call(s) in flight "
        "failed with EIO; 4 pid(s) given back from the task table, ns_last_pid 4; no task killed"
    ]
    restored = [e for e in result.trace if e["type"] == "request" and e.get("step") == "rs_restore"]
    assert [e["args"] for e in restored] == [{"ns": 1, "set_tid": [n]} for n in (1, 2, 3, 4)]


def test_the_cursor_comes_back_past_freed_pids() -> None:
    """pid 3 reaped before the kill: the fresh pid must not give 3 again to the next fork."""
    clean = ukernel.run("nginx", ["nginx", "4"])
    killed = ukernel.run("nginx", ["nginx", "4"], restart=FAST, kill_service="pid@5")  # after worker 0's free_pid
    assert (killed.status, killed.stdout, killed.problems) == (clean.status, clean.stdout, [])
    assert [e["attempt"] for e in restarts(killed)] == [1]


def test_without_restart_the_dead_service_is_eio_and_nothing_hangs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ukernel.rs"):
        result = ukernel.run("nginx", ["nginx", "4"], kill_service="pid@2")
    assert result.exit_code == 1
    assert b"OSError: [Errno 5] EIO: pid is dead: killed on purpose after its request 2 (kill_service)\n" in (
        result.stdout
    )
    assert restarts(result) == []
    assert said(caplog) == [
        "ukernel: pid died (killed on purpose after its request 2 (kill_service)); not restarted "
        "(no restart policy for pid: --restart pid); its calls fail with EIO"
    ]


class CrashingPid(PidService):
    """A pid whose inbox loop dies on every alloc_pid after init's and the program's (in every
    instance): a bug no handler guard catches."""

    allocs: ClassVar[list[int]] = []

    async def handle(self, item: bytes | list, reply_fn: Any) -> None:
        if isinstance(item, bytes) and b"alloc_pid" in item:
            self.allocs.append(1)
            if len(self.allocs) > 2:
                raise RuntimeError("pid loop corrupted")
        await super().handle(item, reply_fn)


def test_a_service_that_keeps_crashing_stops_being_restarted(caplog: pytest.LogCaptureFixture) -> None:
    policy = {"pid": {"limit": 2, "backoff_min": 0.001, "backoff_max": 0.001}}
    CrashingPid.allocs.clear()
    with caplog.at_level(logging.WARNING, logger="ukernel.rs"):
        result = ukernel.run("nginx", ["nginx", "4"], restart=policy, services={"pid": CrashingPid})
    events = restarts(result)
    assert [(e["attempt"], e["failed"]) for e in events] == [(1, 1), (2, 0)]  # 2: RS's own restore call
    line = next(
        i
        for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
        if 'raise RuntimeError("pid loop corrupted")' in text
    )
    assert events[0]["why"] == f"crashed at tests/test_reincarnation.py:{line}: RuntimeError('pid loop corrupted')"
    assert said(caplog)[-1].endswith("not restarted again: it died 3 times (limit 2); its calls fail with EIO")
    assert result.exit_code != 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"restart": {"nosuch": True}}, "restart: no service 'nosuch'"),
        ({"restart": {"pid": {"limit": -1}}}, "restart: pid: limit >= 0"),
        ({"restart": {"pid": {"tries": 3}}}, "restart: pid: a policy takes limit, backoff_min, backoff_max"),
        ({"kill_service": "pid@0"}, "kill_service: SERVICE@N"),
    ],
)
def test_bad_policies_are_one_line(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        Config(**settings)


def test_all_means_every_service() -> None:
    from ukernel.config import parse_restart

    assert set(parse_restart({"all": True})) == {"mm", "vfs", "pid", "sched", "signals", "namespaces"}


def fast(name: str) -> dict:
    return {name: {"backoff_min": 0.001, "backoff_max": 0.002}}


@pytest.mark.parametrize("nth", [5, 9, 14])
def test_sched_killed_in_nginx_4_is_restored_and_the_run_completes(nth: int, caplog) -> None:
    """Stateful: every task sched had is re-registered where it was, from the kernel's task
    table and the dead instance's core; the output is the run's without the kill."""
    with caplog.at_level(logging.WARNING, logger="ukernel.rs"):
        result = ukernel.run("nginx", ["nginx", "4"], restart=fast("sched"), kill_service=f"sched@{nth}")
    assert (result.status, result.stdout, result.problems) == (0, NGINX_4, [])
    [event] = restarts(result)
    assert (event["service"], event["attempt"], event["failed"]) == ("sched", 1, 0)
    [line] = said(caplog)
    assert re.search(
        r"; (\d+) task\(s\) re-registered from the old instance's core, 0 timer\(s\) re-armed, "
        r"clock \d+; no task killed$",
        line,
    ), line
    assert int(re.search(r"(\d+) task\(s\)", line)[1]) == event["held"]["entities"]


def test_sched_restore_rearms_a_pending_timer() -> None:
    """A sleeper's timer, pending when sched dies, fires from the fresh instance."""
    clean = ukernel.run("sleepers", ["sleepers"])
    result = ukernel.run("sleepers", ["sleepers"], restart=fast("sched"), kill_service="sched@10")
    assert (result.status, result.stdout, result.problems) == (0, clean.stdout, [])
    [event] = restarts(result)
    assert event["held"]["timers"] == 1


KILLED = {  # service@N in nginx 4: who held its handles when it died (init is given fresh ones)
    "vfs": (5, "killed with SIGKILL: 2:nginx, 3:nginx", b"master 2: starting 4 workers\n"),
    "mm": (5, "killed with SIGKILL: 2:nginx, 3:nginx, 4:nginx, 5:nginx", b"master 2: starting 4 workers\n"),
    "signals": (3, "killed with SIGKILL: 2:nginx, 3:nginx", b"master 2: starting 4 workers\n"),
    "namespaces": (2, "killed with SIGKILL: 2:nginx, 3:nginx, 4:nginx", b"master 2: starting 4 workers\n"),
}


@pytest.mark.parametrize("name", sorted(KILLED))
def test_a_stateless_service_restarted_kills_its_holders(name: str, caplog) -> None:
    """A fresh instance with its boot state only: every task holding a handle into the dead one
    is SIGKILLed (the program's status: killed by SIGKILL, 137 in a shell), init reaps it with
    fresh handles, the run ends, and nothing leaks. vfs's console record is kept: the output is
    what the terminal showed before the death (and nothing was written after it)."""
    nth, killed, out = KILLED[name]
    with caplog.at_level(logging.WARNING, logger="ukernel.rs"):
        result = ukernel.run("nginx", ["nginx", "4"], restart=fast(name), kill_service=f"{name}@{nth}")
    assert (result.status, result.exit_code, 128 + result.status, result.stdout) == (9, None, 137, out)
    assert result.problems == []  # check_invariants clean
    [event] = restarts(result)
    assert (event["service"], event["attempt"], event["failed"]) == (name, 1, 0)
    [line] = said(caplog)
    assert line.startswith(
        f"ukernel: {name} died (killed on purpose after its request {nth} (kill_service)) "
        f"and was restarted (attempt 1, after 0.001 s): the old instance held "
    )
    kept = ", the console's 29 byte(s) of output kept" if name == "vfs" else ""
    assert line.endswith(
        f"; 0 call(s) in flight failed with EIO; its boot state made again{kept}, init given fresh handles; {killed}"
    )


def test_vfs_restart_accounts_what_the_old_instance_held() -> None:
    result = ukernel.run("nginx", ["nginx", "4"], restart=fast("vfs"), kill_service="vfs@5")
    [event] = restarts(result)
    assert event["held"] == {
        "faults": 0,
        "files_structs": 4,
        "files_refs": 4,
        "fs_structs": 4,
        "fs_users": 4,
        "open_files": 1,
        "f_count": 12,
        "fds": 12,
        "mnt_namespaces": 1,
        "pipes": 0,
        "orphan_inodes": 0,
        "waiters": 0,
    }


async def test_the_console_output_before_a_vfs_restart_stays_in_stdout(caplog) -> None:
    """vfs dies after echo's write (its 4th request): the fresh instance is given the old
    one's console record first, so what the next program writes comes after it, in order,
    and nothing is shown twice (the console sink sees each byte once)."""
    shown: list[bytes] = []
    caplog.set_level(logging.WARNING, "ukernel.rs")
    async with ukernel.boot(restart=fast("vfs"), kill_service="vfs@4", console=shown.append) as kernel:
        first = await ukernel.api._run_watched(kernel, "/bin/echo", ["echo", "before"])
        second = await ukernel.api._run_watched(kernel, "/bin/echo", ["echo", "after"])
        out = await kernel.call("vfs", "console_output", {})
        problems = await kernel.check_invariants()
    assert (first, second, out, problems) == ((0, ""), (0, ""), b"before\nafter\n", [])
    assert shown == [b"before\n", b"after\n"]
    [line] = said(caplog)
    assert "its boot state made again, the console's 7 byte(s) of output kept, init given fresh handles" in line


READ4 = b"""
async def main(sys, argv):
    await sys.write(1, b"got " + await sys.read(0, 4))
    return 0
"""


async def test_input_read_before_a_vfs_restart_is_not_read_again(caplog) -> None:
    """vfs dies after the first reader's write (its 4th request): the fresh instance is
    booted with Config.stdin, but takes the old one's unread input instead (console_unread),
    so the second reader gets the second line, not the first again."""
    caplog.set_level(logging.WARNING, "ukernel.rs")
    settings = {"stdin": b"one\ntwo\n", "files": {"/bin/r4": READ4}}
    async with ukernel.boot(restart=fast("vfs"), kill_service="vfs@4", **settings) as kernel:
        statuses = [(await ukernel.api._run_watched(kernel, "/bin/r4", ["r4"]))[0] for _ in range(2)]
        out = await kernel.call("vfs", "console_output", {})
        problems = await kernel.check_invariants()
    assert (statuses, out, problems) == ([0, 0], b"got one\ngot two\n", [])
    [line] = said(caplog)
    assert "the console's 8 byte(s) of output and 4 byte(s) of unread input kept" in line


class DyingVfs(VfsService):
    """A vfs whose inbox loop dies right after it answers the first two console writes of the
    class (each instance in turn): a bug no handler guard catches."""

    writes: ClassVar[list[bytes]] = []

    async def handle(self, item: bytes | list, reply_fn: Any) -> None:
        await super().handle(item, reply_fn)
        if isinstance(item, bytes) and getattr(protocol.decode(item), "op", None) == "write":
            self.writes.append(item)
            if len(self.writes) <= 2:
                raise RuntimeError("vfs loop corrupted")


async def test_a_vfs_restarted_twice_keeps_the_whole_record(caplog) -> None:
    """The second dead instance's record holds what the first one gave it: all three
    programs' output, in order."""
    DyingVfs.writes.clear()
    caplog.set_level(logging.WARNING, "ukernel.rs")
    policy = {"vfs": {"backoff_min": 0.001, "backoff_max": 0.001}}
    async with ukernel.boot(restart=policy, services={"vfs": DyingVfs}) as kernel:
        statuses = [(await ukernel.api._run_watched(kernel, "/bin/echo", ["echo", word]))[0] for word in "abc"]
        out = await kernel.call("vfs", "console_output", {})
        problems = await kernel.check_invariants()
    assert (len(DyingVfs.writes), out, problems) == (3, b"a\nb\nc\n", [])
    assert statuses == [0, 0, 0]
    kept = [re.search(r"attempt (\d)\b.*the console's (\d+) byte", line).groups() for line in said(caplog)]
    assert kept == [("1", "2"), ("2", "4")]


def test_restart_all_is_accepted_and_a_clean_run_is_unchanged() -> None:
    result = ukernel.run("nginx", ["nginx", "4"], restart={"all": True})
    assert (result.status, result.stdout, result.problems, restarts(result)) == (0, NGINX_4, [], [])


# --- a remote pid: a ``ukernel serve`` process killed mid-run, started again -------------------
UKERNEL = [sys.executable, "-m", "ukernel.cli"]
REPO = Path(__file__).resolve().parent.parent
SECRET = "reincarnation-secret"


class Serve:
    """``ukernel serve SERVICE`` on a Unix socket; killed and started again on the same path.
    ``stop`` kills every process it started (one started as the run ends is not left behind)."""

    def __init__(self, listen: str, service: str = "pid", remote: dict[str, str] | None = None):
        self.args = [
            *UKERNEL,
            "serve",
            *service.split(),
            "--listen",
            listen,
            "--heartbeat",
            "0.1",
            "--rpc-timeout",
            "1",
        ]
        self.args += [arg for name, url in (remote or {}).items() for arg in ("--remote", f"{name}={url}")]
        self.process: trio.Process | None = None
        self.started: list[trio.Process] = []
        self.stopped = False

    async def start(self, nursery: trio.Nursery) -> str:
        env = dict(os.environ, UKERNEL_SECRET=SECRET, PYTHONPATH=str(REPO))
        self.process = await nursery.start(
            partial(trio.run_process, self.args, stderr=subprocess.PIPE, env=env, check=False)
        )
        self.started.append(self.process)
        if self.stopped:  # the run ended before this one was up
            self.process.kill()
            return ""
        line = b""
        with trio.fail_after(20):  # a hang detector only
            while not line.endswith(b"\n"):
                line += await self.process.stderr.receive_some(1)
        assert line.startswith(b"ukernel: serving "), line
        return line.decode().rstrip().rsplit(" on ", 1)[1]

    def kill(self) -> None:
        """SIGKILL, and wait for it to be dead: the kernel's next message meets no server."""
        self.process.kill()
        while self.process.poll() is None:
            time.sleep(0.001)

    def stop(self) -> None:
        self.stopped = True
        for process in self.started:
            process.kill()


async def test_a_remote_pid_killed_mid_nginx_4_is_redialled_and_restored(tmp_path, monkeypatch, caplog) -> None:
    """The kernel did not start the server, so it cannot respawn it: it redials (holding the pid
    calls meanwhile, at most rpc_timeout; those in flight are sent again to the new instance)
    and restores the new instance as an embedded one."""
    monkeypatch.setenv("UKERNEL_SECRET", SECRET)
    caplog.set_level(logging.WARNING, "ukernel")
    trace: list[dict] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = Serve(f"unix:{tmp_path / 'pid.sock'}")
            url = await server.start(nursery)

            held: list[dict] = []  # the last heartbeat's accounting before the kill: what the loss names

            def console(data: bytes) -> None:
                if data == b"worker 3: pid 6, parent 2\n":  # every fork done; the free_pids to come
                    held.append(dict(kernel.router.endpoints["pid"].last_accounting))
                    server.kill()
                    nursery.start_soon(server.start, nursery)

            settings = {"remote": {"pid": url}, "heartbeat": 0.05, "rpc_timeout": 20, "restart": FAST}
            async with ukernel.boot(console=console, **settings) as kernel:
                kernel.tracer.add_sink(trace.append)
                status, error, out, problems = await run_when_accounted(kernel, "pid", "/bin/nginx", ["nginx", "4"])
            server.stop()
    assert (status, error, out, problems) == (0, "", NGINX_4, [])
    [event] = [e for e in trace if e["type"] == "restart"]
    assert (event["service"], event["attempt"], event["why"].startswith(f"pid at {url}: ")) == ("pid", 1, True)
    assert (set(event["held"]), event["failed"]) == (set(held[0]), 0)  # calls in flight: sent again
    # the last heartbeat's answer: the one before the kill, or one already on its way then
    assert event["held"]["namespaces"] == 1 and event["held"]["pids"] == event["held"]["numbers"] <= 6
    [line] = said(caplog)
    # where worker 0's release was when the loss was seen is a race: in flight (sent again), held
    # (its handle translated), or not begun (its pid given back): the output is the same
    assert re.search(
        rf"at its last heartbeat the old instance held {re.escape(_held(event['held']))}; a new instance; "
        r"[01] call\(s\) sent again; [56] pid\(s\) given back from the task table, ns_last_pid 6; no task killed$",
        line,
    ), line


def test_a_toml_config_sets_a_per_service_policy(tmp_path) -> None:
    from ukernel.config import load_config, parse_restart
    from ukernel.kernel.reincarnation import Policy

    path = tmp_path / "run.toml"
    path.write_text('kill_service = "pid@2"\n[restart.pid]\nlimit = 3\nbackoff_min = 0.01\nbackoff_max = 0.5\n')
    settings = load_config(path)
    assert parse_restart(Config(**settings).restart) == {"pid": Policy(limit=3, backoff_min=0.01, backoff_max=0.5)}
    assert [Policy(backoff_min=0.01, backoff_max=0.05).delay(n) for n in (1, 2, 3, 4)] == [0.01, 0.02, 0.04, 0.05]


@pytest.mark.parametrize(("name", "nth"), [("namespaces", 1), ("vfs", 5)])
def test_a_restart_under_a_container_leaks_nothing_across_services(name: str, nth: int) -> None:
    """The container's nsproxy holds a pid and a mount namespace: after namespaces dies they
    are put back for it (read from its core); after vfs dies the stale mount namespace its
    put names is answered for it (restore.GONE), not by a fresh object."""
    result = ukernel.run("container", ["container"], restart=fast(name), kill_service=f"{name}@{nth}")
    assert (result.status, result.problems) == (9, [])
    assert [e["service"] for e in restarts(result)] == [name]


def test_a_stale_handle_is_answered_for_the_dead_instance() -> None:
    from ukernel.ipc import protocol
    from ukernel.kernel.restore import gone_reply

    def ask(op: str, args: dict) -> Any:
        frame = gone_reply("vfs", protocol.Request(7, "vfs", op, args, {}), range(3, 9))
        return None if frame is None else protocol.decode(frame)

    put = ask("put_files", {"files": 5})
    assert (put.error, put.result) == (None, {"count": 0})
    read = ask("read", {"files": 8, "fd": 0, "size": 1})
    assert read.error["name"] == "EIO"
    assert ask("put_files", {"files": 9}) is None  # the fresh instance's
    assert ask("put_mnt_ns", {"mnt_ns": 1}) is None  # made again by its construction


@pytest.mark.parametrize("nth", [1, 4, 7, 9])  # nginx 4 makes 9 pid requests
def test_pid_killed_at_any_of_its_requests_is_restarted_and_nginx_completes(nth: int) -> None:
    """pid@9 was the master's release_task in flight: its free_pid named a handle of the dead
    instance after the restore (the fresh one numbers past the dead one's; RS answers it)."""
    result = ukernel.run("nginx", ["nginx", "4"], restart=FAST, kill_service=f"pid@{nth}")
    assert (result.status, result.stdout, result.problems) == (0, NGINX_4, [])
    assert [e["service"] for e in restarts(result)] == ["pid"]


async def run_when_accounted(kernel: Any, name: str, path: str, argv: list[str]) -> tuple:
    """Once a heartbeat of the remote ``name`` has answered (what a loss can account), run
    ``path``: its status and error, the console's output and check_invariants' problems."""
    endpoint = kernel.router.endpoints[name]
    while not endpoint.last_accounting:
        await trio.sleep(0.01)
    status, error = await ukernel.api._run_watched(kernel, path, argv)
    return status, error, await kernel.call("vfs", "console_output", {}), await kernel.check_invariants()


async def remote_run(tmp_path: Path, name: str, kill_at: Any, nursery: trio.Nursery) -> tuple:
    """nginx 4 with ``name`` served by a ``ukernel serve`` process, killed (and started again on
    the same socket) as the kernel sends the request ``kill_at`` picks out of the trace."""
    server = Serve(f"unix:{tmp_path / f'{name}.sock'}", name)
    url = await server.start(nursery)
    trace: list[dict] = []
    last: list[dict] = []  # what the lost instance held at its last heartbeat before the kill

    def sink(event: dict) -> None:
        trace.append(event)
        if event["type"] == "request" and event["dst"] == name and len(server.started) == 1 and kill_at(event):
            last.append(dict(kernel.router.endpoints[name].last_accounting))
            server.kill()
            nursery.start_soon(server.start, nursery)

    settings = {"remote": {name: url}, "heartbeat": 0.05, "rpc_timeout": 20, "restart": fast(name)}
    async with ukernel.boot(**settings) as kernel:
        kernel.tracer.add_sink(sink)
        ran = await run_when_accounted(kernel, name, "/bin/nginx", ["nginx", "4"])
    server.stop()
    return url, ran, trace, last


REMOTE_KILLS = {  # service: which request of nginx 4 meets the killed server, and who held its handles then
    "vfs": (
        lambda e: e["op"] == "write" and e["pid"] == 4,  # worker 1's line: in flight when the loss is seen
        1,
        "2:nginx, 4:nginx, 5:nginx, 6:nginx",
    ),
    "mm": (lambda e: e["op"] == "dup_mm" and e["pid"] == 2, 1, "2:nginx"),  # the master's first fork
    "signals": (lambda e: e["op"] == "copy_sighand" and e["pid"] == 2, 1, "2:nginx"),
}


def _handles(name: str, result: Any) -> list[int]:
    from ukernel.kernel.restore import HANDLE_ARGS

    return [result[a] for a in HANDLE_ARGS[name] if isinstance(result, dict) and type(result.get(a)) is int]


REMOTE_OUT = {"vfs": b"", "mm": b"master 2: starting 4 workers\n", "signals": b"master 2: starting 4 workers\n"}


@pytest.mark.parametrize("name", sorted(REMOTE_KILLS))
async def test_a_remote_stateless_service_killed_mid_run_is_restored_as_an_embedded_one(
    name: str, tmp_path, monkeypatch, caplog
) -> None:
    """A new instance after the redial: its boot state made again, every holder of a handle into
    the lost one SIGKILLed (status 9, 137 in a shell), init given fresh handles, the call in
    flight failed EIO (the old one may have begun it), nothing leaked; its handles are numbered
    past the lost one's (handles_past), so a stale handle names nothing of the fresh one."""
    monkeypatch.setenv("UKERNEL_SECRET", SECRET)
    caplog.set_level(logging.WARNING, "ukernel")
    kill_at, failed, killed = REMOTE_KILLS[name]
    with trio.fail_after(60):  # a hang detector only
        async with trio.open_nursery() as nursery:
            url, (status, error, out, problems), trace, [held] = await remote_run(tmp_path, name, kill_at, nursery)
    # the console died with a vfs (what was written before is on the CLI's screen already)
    assert (status, 128 + status, error, out, problems) == (9, 137, "", REMOTE_OUT[name], [])
    [event] = [e for e in trace if e["type"] == "restart"]
    before = trace[: trace.index(event)]
    given = [v for e in before if e["type"] == "reply" and e["src"] == name for v in _handles(name, e.get("result"))]
    [renumber] = [e for e in trace if e["type"] == "request" and e["op"] == "handles_past"]
    assert renumber["args"] == {"first": max(given) + 1}  # RS's first request to the fresh instance
    assert {k: event[k] for k in ("service", "attempt", "delay", "failed")} == {
        "service": name,
        "attempt": 1,
        "delay": 0.05,
        "failed": failed,
    }
    assert event["why"].startswith(f"{name} at {url}: ")
    # the last heartbeat's answer: the one before the kill, or one already on its way then
    assert (set(event["held"]), event["held"]["faults"]) == (set(held), 0)
    [line] = said(caplog)
    assert line.startswith(f"ukernel: {name} lost ({event['why']}) and redialled (attempt 1): at its last ")
    assert f"heartbeat the old instance held {_held(event['held'])}; " in line
    lost = ", the console's output before it was lost (no core to read)" if name == "vfs" else ""
    assert line.endswith(
        f"a new instance; {failed} call(s) in flight failed with EIO; its boot state made again{lost}, "
        f"init given fresh handles; killed with SIGKILL: {killed}"
    ), line


async def test_a_remote_sched_killed_mid_fork_is_restored_from_the_kernels_view(tmp_path, monkeypatch, caplog) -> None:
    """Stateful, as pid: the lost instance cannot be asked for its core, so every task the kernel
    schedules is re-registered from its task table (running where cpu_curr says, else runnable,
    the default policy), and the master's sched_fork, in flight, is sent again: the run is the
    run without the kill."""
    monkeypatch.setenv("UKERNEL_SECRET", SECRET)
    caplog.set_level(logging.WARNING, "ukernel")
    with trio.fail_after(60):  # a hang detector only
        async with trio.open_nursery() as nursery:
            first_fork = lambda e: e["op"] == "sched_fork" and e["pid"] == 2  # noqa: E731
            url, result, trace, [held] = await remote_run(tmp_path, "sched", first_fork, nursery)
    assert result == (0, "", NGINX_4, [])
    [event] = [e for e in trace if e["type"] == "restart"]
    assert {k: event[k] for k in ("service", "attempt", "delay", "failed", "held")} == {
        "service": "sched",
        "attempt": 1,
        "delay": 0.05,
        "failed": 0,
        "held": held,
    }
    [line] = said(caplog)
    assert re.search(
        r"; a new instance; 1 call\(s\) sent again; 2 task\(s\) re-registered from the kernel's task table "
        r"\(no core\), 0 timer\(s\) re-armed, clock \d+; no task killed$",
        line,
    ), line
    assert not [e for e in trace if e["type"] == "request" and e["op"] == "handles_past"]  # stateful: none


async def test_a_remote_namespaces_lost_gives_back_what_its_nsproxies_held_in_pid_and_vfs(
    tmp_path, monkeypatch, caplog
) -> None:
    """namespaces served by a node of its own, pid and vfs by another (its callees): killed as the
    container's init names itself, after the clone made its pid and mount namespaces. The lost
    instance cannot be asked, so the references its nsproxies held there are asked of pid and vfs
    (nsproxy_refs) and put for it; the container's tasks are SIGKILLed, and nothing leaks."""
    monkeypatch.setenv("UKERNEL_SECRET", SECRET)
    caplog.set_level(logging.WARNING, "ukernel")
    trace: list[dict] = []
    with trio.fail_after(60):  # a hang detector only
        async with trio.open_nursery() as nursery:
            callees = Serve(f"unix:{tmp_path / 'pidvfs.sock'}", "pid vfs")
            where = await callees.start(nursery)
            server = Serve(f"unix:{tmp_path / 'ns.sock'}", "namespaces", {"pid": where, "vfs": where})
            url = await server.start(nursery)

            def sink(event: dict) -> None:
                trace.append(event)
                if event["type"] == "request" and event["op"] == "sethostname" and len(server.started) == 1:
                    server.kill()
                    nursery.start_soon(server.start, nursery)

            remote = {"namespaces": url, "pid": where, "vfs": where}
            settings = {"remote": remote, "heartbeat": 0.05, "rpc_timeout": 20, "restart": fast("namespaces")}
            async with ukernel.boot(**settings) as kernel:
                kernel.tracer.add_sink(sink)
                ran = await run_when_accounted(kernel, "namespaces", "/bin/container", ["container", "hello"])
                status, error, out, problems = ran
            server.stop()
            callees.stop()
    assert (status, error, out, problems) == (9, "", b"", [])
    [event] = [e for e in trace if e["type"] == "restart"]
    assert (event["service"], event["attempt"], event["failed"]) == ("namespaces", 1, 1)  # sethostname: EIO
    [made] = [e["result"] for e in trace if e["type"] == "reply" and e.get("op") == "copy_namespaces"]
    put = [(e["op"], e["args"]) for e in trace if e["type"] == "request" and e.get("step") == "rs_restore"]
    assert [p for p in put if p[0] in ("put_pid_ns", "put_mnt_ns")] == [  # the clone's nsproxy's, once each
        ("put_mnt_ns", {"mnt_ns": made["mnt_ns"]}),
        ("put_pid_ns", {"ns": made["pid_ns"]}),
    ]
    [line] = said(caplog)
    assert line.endswith(
        "a new instance; 1 call(s) in flight failed with EIO; its boot state made again, the 2 reference(s) its "
        "nsproxies held in vfs and pid put back, init given fresh handles; killed with SIGKILL: 2:container, "
        "3:container"
    ), line
