"""The html view's page from Python's side: every syscall's route as the route view has it,
pids as tgid and tid, the console's output, the task filter, labels that wrap and are never cut.

What the browser does with them (clicks, keys, layout) is tests/test_browser.py.
"""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from ukernel.testing import syscall_route
from ukernel.trace import views
from ukernel.trace.views.format import jsonable
from ukernel.trace.views.html import label_lines, syscall_routes, thread_groups

_RUNS: dict[tuple, ukernel.Result] = {}


async def run(program: str, *args: str, **settings) -> ukernel.Result:
    """A program's run under init (cpus=1), once per test session; its invariants hold."""
    key = (program, args, repr(sorted(settings.items())))
    if key not in _RUNS:
        with trio.fail_after(60):
            result = await ukernel.run_async(program, [program, *args], cpus=1, **settings)
        assert result.problems == [], result.problems
        _RUNS[key] = result
    return _RUNS[key]


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)[1])


def rows(page: str) -> list[tuple[str, int, int, str, str]]:
    """(msgid, pid, tid, call, result) of each syscall row."""
    found = re.findall(
        r'<tr class="call[ \w]*" data-msgid="(\d+)"><td class="num">\d+</td>'
        r'<td class="num" data-pid="(\d+)">\d+</td><td class="num" data-tid="(\d+)">\d+</td>'
        r'<td class="call"><button type="button" class="call">(.*?)</button></td><td class="result">(.*?)</td>',
        page,
    )
    return [(m, int(p), int(t), unescape(c), unescape(r)) for m, p, t, c, r in found]


PROGRAMS = [
    ("nginx", ("4",), {}),
    ("threads", ("3",), {}),
    ("cow", (), {}),
    ("container", ("sh", "-c", "ps"), {}),
    ("nginx", ("2",), {"fail": {"copy_mm": "ENOMEM"}}),
    ("vforkexec", (), {}),
]


@pytest.mark.parametrize(("program", "args", "settings"), PROGRAMS, ids=lambda v: str(v) if v else "")
async def test_each_syscalls_route_is_the_one_syscall_route_finds(program, args, settings):
    trace = (await run(program, *args, **settings)).trace
    routes = syscall_routes(trace)
    enters = [e for e in trace if e["type"] == "syscall_enter"]
    assert list(routes) == [e["msgid"] for e in enters]
    for e in enters:
        want, got = syscall_route(trace, e), routes[e["msgid"]]
        assert (got.root, got.exit, got.pid, got.request) == (want.root, want.exit, want.pid, want.request)
        for field in ("events", "requests", "faults"):  # the same events, not equal copies
            assert [id(x) for x in getattr(got, field)] == [id(x) for x in getattr(want, field)], (e, field)
        assert got.parent_of == want.parent_of


async def test_the_page_holds_every_syscalls_route_drawn_and_no_label_is_cut():
    trace = (await run("nginx", "4")).trace
    page = views.html(trace)
    data = page_data(page)
    enters = [e for e in trace if e["type"] == "syscall_enter"]
    assert list(data["calls"]) == [str(e["msgid"]) for e in enters]
    for e in enters:
        r = syscall_route(trace, e)
        call = data["calls"][str(e["msgid"])]
        assert [data["events"][k] for k in call["events"]] == json.loads(json.dumps(jsonable(r.events)))
        assert call["title"] == views.route(trace, msgid=e["msgid"]).splitlines()[0]
        svg = call["svg"]
        titles = [unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)]
        assert [re.match(r"#(\d+) ", t)[1] for t in titles] == [str(x["msgid"]) for x in r.events]
        # A label's lines, put together, are its arrow's whole text (the title's, after "src → dst: ").
        labels = re.findall(r'<text class="label"[^>]*>(.*?)</text>', svg)
        joined = [unescape(re.sub(r"<tspan[^>]*>|</tspan>", "", x)) for x in labels]
        assert [j.replace(" ", "") for j in joined] == [t.split(": ", 1)[1].replace(" ", "") for t in titles]
    # The route shown first is the program's first fork, drawn in the page itself as well.
    fork = views.default_route(trace)
    assert data["shown"] == str(fork.root["msgid"])
    assert data["calls"][data["shown"]]["svg"] in page


async def test_a_threads_rows_show_its_process_pid_and_its_own_tid():
    result = await run("threads", "3")
    page = views.html(result.trace)
    table = rows(page)
    # What the program itself was told: getpid is the tgid, gettid the thread's own.
    getpid = [(pid, tid, r) for _, pid, tid, call, r in table if call == "getpid()"]
    assert getpid == [(2, 3, "2"), (2, 4, "2"), (2, 5, "2"), (2, 2, "2")]
    gettid = [(pid, tid, r) for _, pid, tid, call, r in table if call == "gettid()"]
    assert gettid == [(2, 3, "3"), (2, 4, "4"), (2, 5, "5")]
    assert "thread 0: tid 3, pid 2\n" in result.stdout.decode()
    assert {(pid, tid) for _, pid, tid, _, _ in table} == {(1, 1), (2, 2), (2, 3), (2, 4), (2, 5)}
    options = re.findall(r'<option value="([pt]?\d*)">(.*?)</option>', page)
    assert options == [
        ("", "all"),
        ("p1", "pid 1 init"),
        ("p2", "pid 2 threads"),
        ("t3", "\u2003tid 3 (thread)"),
        ("t4", "\u2003tid 4 (thread)"),
        ("t5", "\u2003tid 5 (thread)"),
    ]
    tids = [e.get("tid", e.get("pid")) for e in result.trace]
    assert thread_groups(result.trace) == [2 if tid in (3, 4, 5) else tid for tid in tids]


async def test_in_a_pid_namespace_the_page_names_tasks_by_their_global_pids():
    result = await run("container", "sh", "-c", "ps")
    page = views.html(result.trace)
    assert '<pre class="pstree" id="pstree">init(1)───container(2)───sh(3)───ps(4)\n</pre>' in page
    table = rows(page)
    # sh (task 3) forked ps inside the container's pid namespace: fork returned 2, ps's own rows are task 4's.
    assert [(pid, r) for _, pid, _, call, r in table if call == "fork()"] == [(1, "2"), (3, "2")]
    assert [(pid, tid) for _, pid, tid, call, _ in table if call.startswith('execve("/bin/ps"')] == [(4, 4)]
    options = re.findall(r'<option value="(p\d+)">(.*?)</option>', page)
    assert options == [("p1", "pid 1 init"), ("p2", "pid 2 container"), ("p3", "pid 3 sh"), ("p4", "pid 4 ps")]


async def test_the_page_shows_the_consoles_output():
    result = await run("nginx", "4")
    page = views.html(result.trace)
    shown = unescape(re.search(r'<pre class="output" id="output">(.*?)</pre>', page, re.S)[1])
    assert shown == result.stdout.decode() and shown.startswith("master 2: starting 4 workers\n")
    # A trace without the console's answer (a boot() a test drives) says so, and shows the writes to fd 1 and 2.
    without = [e for e in result.trace if e.get("op") != "console_output"]
    page = views.html(without)
    assert "The trace does not hold the console's output" in page
    shown = unescape(re.search(r'<pre class="output" id="output">(.*?)</pre>', page, re.S)[1])
    writes = [e for e in without if e["type"] == "syscall_enter" and e["op"] == "write"]
    assert shown == "".join(f"[pid {e['pid']}] {e['args']['data'].decode()}" for e in writes)  # each ends its line


async def test_with_no_message_the_page_says_there_is_no_route():
    trace = (await run("hello")).trace
    silent = [e for e in trace if e["type"] in ("syscall_enter", "syscall_exit") and e["op"] not in views.CLONE_FAMILY]
    page = views.html(silent)
    assert '<p class="hint" id="no-route">No syscall in this trace sent a message: there is no route to draw.' in page
    assert page_data(page)["shown"] is None
    assert (
        '<p class="hint" id="no-route">No syscall in this trace sent a message: there is no route to draw.</p>'
        in views.html([])
    )


@settings(deadline=None)
@given(st.text(alphabet="ab ,|()=_", max_size=300), st.integers(min_value=4, max_value=80))
def test_a_label_wraps_into_lines_that_fit_and_lose_only_blanks(label, limit):
    lines = label_lines(label, limit)
    assert lines and all(len(line) <= limit for line in lines)
    assert "".join(lines).replace(" ", "") == label.replace(" ", "")
    if len(label) <= limit and label == label.strip():
        assert lines == [label]


_EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["syscall_enter", "syscall_exit", "request", "reply", "fault", "sched"]),
        "op": st.sampled_from(["fork", "clone", "write", "dup_files", "console_output", "handle_mm_fault"]),
        "msgid": st.integers(1, 6),
        "pid": st.one_of(st.none(), st.integers(1, 4)),
    },
    optional={
        "cause": st.one_of(st.none(), st.integers(1, 6)),
        "src": st.sampled_from(["kernel", "vfs", "mm", "pid:2"]),
        "dst": st.sampled_from(["kernel", "vfs", "mm", "pid:2"]),
        "args": st.one_of(
            st.none(), st.integers(), st.dictionaries(st.sampled_from(["fd", "data", "flags"]), st.integers(0, 3))
        ),
        "result": st.one_of(st.none(), st.integers(-1, 5), st.text(max_size=5)),
        "child": st.integers(1, 5),
        "errno": st.just("EINVAL"),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_EVENT, max_size=12))
def test_any_trace_makes_a_page(events):
    """A trace from a file may say anything: the page is made, with a row per syscall."""
    page = views.html(events)
    assert len(re.findall(r'<tr class="call[ \w]*" data-msgid=', page)) == sum(
        e["type"] == "syscall_enter" for e in events
    )
