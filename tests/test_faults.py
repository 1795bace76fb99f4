"""Page faults in the trace: mm reports each fault it handles as a ``fault`` event, tied by
``cause`` to the message whose access faulted, and the views show it under its syscall.

"Where does the copy-on-write fault happen?" is then read off the trace: the
child's write to a page it shares with its parent copies the frame (cow-copy),
the parent's later write to it takes the frame back in place (cow-reuse: it is
the last holder), a first touch gets a fresh frame (zero-fill), a bad access is
a segv and SIGSEGV.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
from conftest import RUN_TIMEOUT, program

import ukernel
from ukernel import abi
from ukernel.trace import views

PAGE = abi.PAGE_SIZE

#: One private page: the parent touches it, forks, the child writes it, then the parent
#: again; a second page is first touched by a read. Each prints its minflt.
COW = """
from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE


async def main(sys, argv):
    buf = await sys.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.write(1, b"buf %d\\n" % buf)
    await sys.poke(buf + 8, b"parent")  # first touch: zero-fill
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf + 16, b"child")  # the frame is shared with the parent: cow-copy
        await sys.write(1, b"child minflt %d\\n" % (await sys.getrusage())["minflt"])
        return 0
    await sys.waitpid(pid, 0)
    await sys.poke(buf + 24, b"again")  # the child copied: the parent is the last holder
    await sys.peek(buf + PAGE_SIZE + 100, 1)  # first touch by a read: zero-fill
    await sys.write(1, b"parent minflt %d\\n" % (await sys.getrusage())["minflt"])
    return 0
"""


async def run(source: str, **settings) -> ukernel.Result:
    """Run ``source`` as /bin/t (the run must leave the kernel clean unless told otherwise)."""
    with trio.fail_after(RUN_TIMEOUT):
        result = await ukernel.run_async("/bin/t", ["t"], files={"/bin/t": program(source)}, **settings)
    assert result.problems == [], result.problems
    return result


def faults(trace: list[dict], pid: int | None = None) -> list[dict]:
    return [e for e in trace if e["type"] == "fault" and (pid is None or e["pid"] == pid)]


def by_msgid(trace: list[dict], kind: str) -> dict[int, dict]:
    return {e["msgid"]: e for e in trace if e["type"] == kind}


def syscall(trace: list[dict], op: str, pid: int, nth: int = 0) -> dict:
    return [e for e in trace if e["type"] == "syscall_enter" and e["op"] == op and e["pid"] == pid][nth]


@dataclass
class Cow:
    """The COW run, its buffer's address, and the pids of /bin/t and its child."""

    result: ukernel.Result
    buf: int
    parent: int
    child: int

    @property
    def trace(self) -> list[dict]:
        return self.result.trace


@pytest.fixture(scope="module")
def cow() -> Cow:
    """COW, run once for the module."""
    result = trio.run(run, COW)
    buf = int(result.stdout.split(b"\n")[0].split()[1])
    (execve,) = [e for e in result.trace if e["type"] == "syscall_enter" and e["op"] == "execve" and e["pid"] != 1]
    (fork,) = [e for e in result.trace if e["type"] == "syscall_exit" and e["op"] == "fork" and e["pid"] != 1]
    return Cow(result, buf, execve["pid"], fork["result"])


def test_the_childs_write_copies_the_frame_once_and_its_cause_is_that_write(cow):
    trace, buf, child = cow.trace, cow.buf, cow.child
    (fault,) = faults(trace, child)
    poke = syscall(trace, "poke", child)
    request = by_msgid(trace, "request")[fault["cause"]]
    assert (request["dst"], request["op"], request["cause"]) == ("mm", "write_mem", poke["msgid"])
    (first_touch,) = [f for f in faults(trace, cow.parent) if f["page"] == buf and f["kind"] == "zero-fill"]
    vma = {"start": buf, "end": buf + 2 * PAGE, "perms": "rw-p", "name": ""}
    assert fault == {
        "seq": fault["seq"],
        "ts": fault["ts"],
        "type": "fault",
        "src": "mm",
        "op": "handle_mm_fault",
        "cause": request["msgid"],
        "pid": child,
        "tid": child,
        "syscall": "poke",
        "access": "write",
        "addr": buf + 16,
        "page": buf,
        "vma": vma,
        "kind": "cow-copy",
        "old_frame": first_touch["frame"],  # the frame the parent faulted in before fork
        "frame": fault["frame"],
        "refcount": [2, 1],  # the old frame: parent and child, then the parent alone
    }
    assert fault["frame"] != first_touch["frame"]


def test_the_parent_then_reuses_its_frame_as_the_last_holder_and_a_read_zero_fills(cow):
    trace, buf = cow.trace, cow.buf
    parent = faults(trace, cow.parent)
    summary = [(f["kind"], f["access"], f["addr"], f["refcount"], f["cause"]) for f in parent]
    pokes = [syscall(trace, "poke", cow.parent, n) for n in (0, 1)]
    peek = syscall(trace, "peek", cow.parent)
    cause_of = {m: e["cause"] for m, e in by_msgid(trace, "request").items()}
    assert [(k, a, addr, refs, cause_of[c]) for k, a, addr, refs, c in summary] == [
        ("zero-fill", "write", buf + 8, [0, 1], pokes[0]["msgid"]),
        ("cow-reuse", "write", buf + 24, [1, 1], pokes[1]["msgid"]),
        ("zero-fill", "read", buf + PAGE + 100, [0, 1], peek["msgid"]),
    ]
    assert parent[1]["frame"] == parent[0]["frame"]  # reused in place: no copy


def test_minflt_is_the_number_of_fault_events_of_each_process(cow):
    lines = cow.result.stdout.decode().splitlines()
    counts = [len(faults(cow.trace, cow.child)), len(faults(cow.trace, cow.parent))]
    assert lines[1:] == [f"child minflt {counts[0]}", f"parent minflt {counts[1]}"]
    assert counts == [1, 3]


def test_strace_prints_the_fault_under_the_write_that_took_it(cow):
    buf, child = cow.buf, cow.child
    (copy,) = faults(cow.trace, child)
    lines = views.strace(cow.trace).splitlines()
    at = lines.index(f'[pid {child}] poke({buf + 16:#x}, "child") = 5')
    vma = f"{buf:#x}-{buf + 2 * PAGE:#x} rw-p"
    assert lines[at + 1] == (
        f"[pid {child}]   --- page fault: write {buf + 16:#x} in {vma} cow-copy frame"
        f" {copy['old_frame']} -> {copy['frame']} ---"
    )
    assert lines[at + 2].startswith(f"[pid {child}] getrusage() = ")


def test_the_route_of_the_childs_write_shows_the_fault_under_write_mem(cow):
    buf, child = cow.buf, cow.child
    (copy,) = faults(cow.trace, child)
    poke = syscall(cow.trace, "poke", child)
    vma = f"{buf:#x}-{buf + 2 * PAGE:#x} rw-p"
    assert views.route(cow.trace, msgid=poke["msgid"]) == (
        f'#{poke["msgid"]} [pid {child}] poke({buf + 16:#x}, "child") = 5\n'
        f"  #{copy['cause']} kernel -> mm         write_mem\n"
        f"    --- page fault: write {buf + 16:#x} in {vma} cow-copy frame {copy['old_frame']} -> {copy['frame']} ---\n"
    )
    assert views.select_route(cow.trace, msgid=poke["msgid"]).faults == [copy]


def test_html_lists_the_fault_under_its_syscall_and_stats_counts_faults_by_kind(cow):
    poke = syscall(cow.trace, "poke", cow.child)
    page = views.html(cow.trace, msgid=poke["msgid"])
    row = page.index(f'<tr class="call" data-msgid="{poke["msgid"]}">')
    assert page.index('<tr class="fault"', row) < page.index('<tr class="call"', row + 1)
    assert '<g class="msg fault" data-ev="2"' in page  # after poke and write_mem: the loop on mm
    stats = views.stats(cow.trace).split("page faults by kind:\n")[1].split("\n\n")[0]
    assert stats.splitlines()[1:] == [
        f"  zero-fill       2  {cow.parent}: 2",
        f"  cow-copy        1  {cow.child}: 1",
        f"  cow-reuse       1  {cow.parent}: 1",
        "  total           4",
    ]


@pytest.mark.parametrize(
    ("access", "code"),
    [("await sys.poke(ro + 5, b'x')", "SEGV_ACCERR"), ("await sys.peek(0x1000, 1)", "SEGV_MAPERR")],
)
async def test_a_bad_access_is_a_segv_fault_and_sigsegv(access, code):
    result = await run(
        f"""
        from ukernel.abi import *


        async def main(sys, argv):
            ro = await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
            await sys.write(1, b"%d\\n" % ro)
            {access}
            return 0
        """
    )
    assert abi.WIFSIGNALED(result.status) and abi.WTERMSIG(result.status) == abi.SIGSEGV
    ro = int(result.stdout)
    (fault,) = faults(result.trace)
    access_of = {"SEGV_ACCERR": ("write", ro + 5), "SEGV_MAPERR": ("read", 0x1000)}
    vma = {"start": ro, "end": ro + PAGE, "perms": "r--p", "name": ""} if code == "SEGV_ACCERR" else None
    assert (fault["access"], fault["addr"], fault["vma"], fault["kind"], fault["code"]) == (
        *access_of[code],
        vma,
        "segv",
        code,
    )
    assert "frame" not in fault
    where = f" in {ro:#x}-{ro + PAGE:#x} r--p" if vma else ""
    assert views.strace(result.trace, pid=fault["pid"]).splitlines()[-3:] == [
        f"  --- page fault: {access_of[code][0]} {access_of[code][1]:#x}{where} segv ({code}) ---",
        f"--- SIGSEGV {{si_signo=SIGSEGV, si_code={code}, si_addr={access_of[code][1]:#x}}} ---",  # as strace
        "+++ killed by SIGSEGV +++",
    ]


async def test_a_shared_page_another_mapping_faulted_in_is_mapped_not_filled():
    result = await run(
        """
        from ukernel.abi import *


        async def main(sys, argv):
            buf = await sys.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
            pid = await sys.fork()
            if pid == 0:
                await sys.poke(buf, b"child")
                return 0
            await sys.waitpid(pid, 0)
            await sys.peek(buf, 5)
            return 0
        """
    )
    kinds = [(f["kind"], f["vma"]["perms"], f["refcount"]) for f in faults(result.trace)]
    # the child's touch creates the object's page (its reference and the PTE's); the parent maps it
    assert kinds == [("zero-fill", "rw-s", [0, 2]), ("shared", "rw-s", [1, 2])]


async def test_no_frame_left_is_an_oom_fault_not_counted_in_minflt():
    # 1M is 256 frames, 2 in use when /bin/t starts: the 255th page has no frame
    result = await run(
        """
        from ukernel.abi import *


        async def main(sys, argv):
            buf = await sys.mmap(0, 255 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            for i in range(255):
                await sys.poke(buf + i * PAGE_SIZE, b"x")
            return 0
        """,
        memory="1M",
    )
    assert abi.WTERMSIG(result.status) == abi.SIGKILL
    kinds = [f["kind"] for f in faults(result.trace)]
    assert kinds == ["zero-fill"] * 254 + ["oom"] and faults(result.trace)[-1]["code"] == "ENOMEM"


async def test_a_run_without_a_trace_takes_the_same_faults():
    result = await run(COW, trace=False)
    assert result.trace == [] and result.stdout.splitlines()[1:] == [b"child minflt 1", b"parent minflt 3"]
