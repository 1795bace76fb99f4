"""The local fast path (Router.call; ipc/local.py for frames RS passes on): a message to an
idle service runs its handler in the caller's task, with the same messages, trace and
semantics as through the inbox; a busy service queues; a handler's bug is still that service's."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from conftest import program, run_source

import ukernel
from ukernel.ipc import router as router_module
from ukernel.ipc.local import LocalEndpoint
from ukernel.ipc.service import DEFERRED, Call, Service, op
from ukernel.testing import service_client

# --- one trace, either way ----------------------------------------------------------------------

PIPE_BLOCKS = """
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(r)
        await sys.sched_yield()
        await sys.write(w, b"late")
        return 0
    await sys.close(w)
    data = await sys.read(r, 10)   # empty: the parent sleeps until the child writes
    await sys.waitpid(pid, 0)
    await sys.write(1, data + b"\\n")
    return 0
"""

SIGNALS = """
from ukernel.abi import SIGUSR1

got = []


def on_usr1(sys, sig):
    got.append(sig)


async def main(sys, argv):
    await sys.sigaction(SIGUSR1, on_usr1)
    pid = await sys.fork()
    if pid == 0:
        await sys.kill(await sys.getppid(), SIGUSR1)
        return 7
    _, status = await sys.waitpid(pid, 0)
    await sys.write(1, b"%d %d\\n" % (len(got), status >> 8))
    return 0
"""

FUTEX = """
from ukernel.abi import CLONE_VM, CLONE_THREAD, CLONE_SIGHAND, CLONE_FILES, CLONE_FS, FUTEX_WAIT, FUTEX_WAKE

THREAD = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_FILES | CLONE_FS


async def waker(sys, addr):
    await sys.poke(addr, b"\\x01\\x00\\x00\\x00")
    await sys.futex(addr, FUTEX_WAKE, 1)
    return 0


async def main(sys, argv):
    addr = await sys.mmap(0, 4096, 3, 0x22)
    await sys.clone(THREAD, waker, addr)
    try:
        await sys.futex(addr, FUTEX_WAIT, 0)   # sleeps unless the waker ran first
    except BlockingIOError:
        pass
    await sys.write(1, await sys.peek(addr, 1))
    return 0
"""


def _without_wall_time(trace: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "dur_us"} for e in trace]


async def _both_ways(monkeypatch, run) -> tuple[ukernel.Result, ukernel.Result]:
    monkeypatch.setattr(LocalEndpoint, "fastpath", False)
    slow = await run()
    monkeypatch.setattr(LocalEndpoint, "fastpath", True)
    fast = await run()
    return slow, fast


@pytest.mark.parametrize(
    ("source", "settings"),
    [
        (PIPE_BLOCKS, {}),
        (SIGNALS, {}),
        (FUTEX, {}),
        (PIPE_BLOCKS, {"fail": {"copy_mm": "ENOMEM"}}),
        (SIGNALS, {"fail": {"msg:9": "EAGAIN"}}),
    ],
    ids=["pipe-read-blocks", "signal-and-wait4", "futex", "fail-copy_mm", "fail-9th-message"],
)
async def test_a_run_traces_the_same_events_in_the_same_order_either_way(monkeypatch, source, settings):
    slow, fast = await _both_ways(monkeypatch, lambda: run_source(source, **settings))
    assert (fast.exit_code, fast.stdout) == (slow.exit_code, slow.stdout)
    assert _without_wall_time(fast.trace) == _without_wall_time(slow.trace)
    assert any(e["type"] == "request" for e in fast.trace)


async def test_the_outputs_the_programs_expect():
    assert (await run_source(PIPE_BLOCKS)).stdout == b"late\n"
    assert (await run_source(SIGNALS)).stdout == b"1 7\n"
    assert (await run_source(FUTEX)).stdout == b"\x01"


@pytest.mark.parametrize(("name", "argv"), [("nginx", ["nginx", "4"]), ("threads", ["threads", "3"])])
async def test_the_routes_of_the_golden_programs_are_the_same_either_way(monkeypatch, name, argv):
    slow, fast = await _both_ways(monkeypatch, lambda: ukernel.run_async(name, argv))
    assert _without_wall_time(fast.trace) == _without_wall_time(slow.trace)


async def test_a_deadlock_is_diagnosed_the_same_either_way(monkeypatch):
    """condvar's default configuration starves a consumer: the hang dump names each task's
    wait channel. (The kill that ends the run lets several tasks exit at once, so from
    there the interleaving of their messages is trio's, as with several CPUs.)"""
    slow, fast = await _both_ways(monkeypatch, lambda: ukernel.run_async("condvar", ["condvar"]))
    assert fast.hung == slow.hung and fast.error == slow.error and fast.exit_code == slow.exit_code
    assert [row["syscall"] for row in fast.hung] == ["wait4", "wait4", "futex"]


async def test_two_cpus_same_seed_same_trace():
    runs = [await ukernel.run_async("nginx", ["nginx", "4"], cpus=2, seed=5) for _ in range(2)]
    assert _without_wall_time(runs[0].trace) == _without_wall_time(runs[1].trace)


# --- the service's side -----------------------------------------------------------------------


class Probe(Service):
    """Records the trio task each handler ran in; ``hold`` waits until ``release``."""

    name = "probe"

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[tuple[str, object]] = []
        self.gate = trio.Event()
        self.parked: object = None

    @op
    async def where(self, req: Call, tag: str) -> str:
        self.ran.append((tag, trio.lowlevel.current_task()))
        return tag

    @op
    async def hold(self, req: Call, tag: str) -> str:
        self.ran.append((tag, trio.lowlevel.current_task()))
        await self.gate.wait()
        return tag

    @op
    async def park(self, req: Call) -> object:
        self.parked = req.defer()
        return DEFERRED

    @op
    async def release(self, req: Call) -> None:
        self.gate.set()
        if self.parked is not None:
            await self.reply(self.parked, "woken")

    @op
    async def crash(self, req: Call) -> None:
        raise KeyError("bug")

    @op
    async def interrupt(self, req: Call) -> None:
        raise KeyboardInterrupt


async def test_an_idle_service_runs_the_handler_in_the_callers_task():
    probe = Probe()
    async with service_client(probe) as client:
        assert await client.call("where", tag="a") == "a"
        assert probe.ran == [("a", trio.lowlevel.current_task())]
        assert probe.task is not trio.lowlevel.current_task()  # back to its loop's task
        assert [(e["type"], e["op"]) for e in client.trace] == [("request", "where"), ("reply", "where")]


async def test_without_the_fast_path_the_loop_runs_it(monkeypatch):
    monkeypatch.setattr(LocalEndpoint, "fastpath", False)
    probe = Probe()
    async with service_client(probe) as client:
        assert await client.call("where", tag="a") == "a"
        assert probe.ran == [("a", probe.task)] and probe.task is not trio.lowlevel.current_task()


async def test_a_busy_service_queues_the_next_message_and_serves_it_after():
    """One message at a time: while a caller's task runs ``hold`` (it waits), a second
    caller's message goes to the inbox, and the loop serves it only once ``hold`` answered."""
    probe = Probe()
    answers: list[str] = []
    async with service_client(probe) as client:
        async with trio.open_nursery() as nursery:

            async def call(op_name: str, tag: str) -> None:
                answers.append(await client.call(op_name, tag=tag))

            nursery.start_soon(call, "hold", "first")
            await trio.testing.wait_all_tasks_blocked()
            assert probe.busy and probe.handling.op == "hold"
            nursery.start_soon(call, "where", "second")
            await trio.testing.wait_all_tasks_blocked()
            assert probe.queued == 1 and [tag for tag, _ in probe.ran] == ["first"]
            probe.gate.set()
        assert answers == ["first", "second"]
        (_, first), (_, second) = probe.ran
        assert first is not probe.task and second is probe.task  # a caller's task, then the loop's
        assert not probe.busy and probe.queued == 0
        assert await client.call("where", tag="third") == "third"
        assert probe.ran[-1][1] is trio.lowlevel.current_task()  # idle again: the fast path


async def test_a_deferred_reply_given_on_the_fast_path_later():
    probe = Probe()
    async with service_client(probe) as client:
        async with trio.open_nursery() as nursery:
            got: list[str] = []

            async def wait() -> None:
                got.append(await client.call("park"))

            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            assert not probe.busy  # the handler returned DEFERRED: the service serves on
            await client.call("release")
        assert got == ["woken"]


async def test_a_bug_in_an_inline_handler_is_the_services_fault_and_it_serves_on():
    probe = Probe()
    async with service_client(probe) as client:
        with pytest.raises(OSError, match=r"probe\.crash crashed at tests/test_fastpath\.py:\d+: KeyError"):
            await client.call("crash")
        assert len(probe.faults) == 1 and not probe.busy
        assert await client.call("where", tag="after") == "after"


async def test_a_fatal_exception_in_an_inline_handler_kills_the_service_not_the_caller():
    """A KeyboardInterrupt is no fault answered EIO: as through the inbox, the service's loop
    dies of it (and with it the run), not the calling task."""
    probe = Probe()
    with pytest.raises(KeyboardInterrupt):
        async with service_client(probe) as client:
            with trio.fail_after(10):
                await client.call("interrupt")  # never answered: the loop's death ends the nursery


async def test_a_cancelled_caller_starts_no_handler():
    probe = Probe()
    async with service_client(probe) as client:
        with trio.CancelScope() as scope:
            scope.cancel()
            await client.call("where", tag="never")
        assert probe.ran == [] and not client.router.pending


# --- the scheduler still runs the others -------------------------------------------------------

GETPIDS = """
async def main(sys, argv):
    for _ in range(12000):  # (64 fast calls between two trips: a few of them per clock tick)
        await sys.getpid()
    return 0
"""


@pytest.mark.parametrize("yields", [True, False])
async def test_a_task_whose_calls_all_take_the_fast_path_still_lets_other_tasks_run(monkeypatch, yields):
    """cond_resched: every YIELD_EVERY replies already in, the caller passes through trio's
    scheduler (else a console, a remote link or Ctrl-C would wait for the program's end).
    Another trio task notes the kernel's clock at each of its turns: it gets turns while
    the program runs, not only before and after."""
    if not yields:
        monkeypatch.setattr(router_module, "YIELD_EVERY", 10**9)
    seen: set[int] = set()
    async with ukernel.boot(files={"/bin/g": program(GETPIDS)}) as kernel:
        async with trio.open_nursery() as nursery:

            async def other() -> None:
                while kernel.program_status is None:  # (a task always runnable keeps the kernel from quiescing)
                    await trio.lowlevel.checkpoint()
                    seen.add(kernel.ticks)

            nursery.start_soon(other)
            assert await kernel.run("/bin/g") == 0
        assert await kernel.check_invariants() == []
    if yields:
        assert len(seen) >= 10  # the clock at many points of the loop
    else:
        assert len(seen) <= 3  # before the loop and after: the program held trio to itself
