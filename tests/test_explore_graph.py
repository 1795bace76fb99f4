"""ukernel explore --graph (issue 17, item 4): the state graph's model, its page, and the page in
headless Chromium (the page loads with no script error, draws its nodes and edges, shows a
clicked node's detail, and colours the outcomes and the deadlock)."""

from __future__ import annotations

import html
import json
import re
import textwrap
from collections import Counter, deque

import pytest
import trio
from test_browser import CHROMIUM, chromium, png_pixels  # how Chromium is launched headless

import ukernel
from services import SERVICES
from ukernel.cli import main as cli_main
from ukernel.explore import graph as graph_module
from ukernel.explore.graph import DEADLOCK, PALETTE, Notes
from ukernel.explore.search import Recorder, run_one
from ukernel.ipc.service import readable

#: The child checks for a file the parent makes, then waits on a pipe nobody writes: it ends
#: when the parent made the file first, and deadlocks (the parent in wait4) when it did not.
LATE = """
from ukernel.abi import O_CREAT, O_WRONLY


async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        try:
            await sys.stat("/tmp/done")
        except OSError:
            await sys.read(r, 1)  # nobody writes: the parent has decided already
        await sys.write(1, b"child\\n")
        return 0
    await sys.open("/tmp/done", O_CREAT | O_WRONLY)
    await sys.waitpid(pid, 0)
    await sys.write(1, b"parent\\n")
    return 0
"""

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: apt-get install chromium (as .ci/run does)"
)


def program(tmp_path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def page_data(path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', text, re.S)[1])


def by_kind(model: dict, kind: str) -> list[dict]:
    return [n for n in model["nodes"] if n["kind"] == kind]


def reachable(model: dict) -> set[str]:
    out = {e["from"]: [] for e in model["edges"]}
    for e in model["edges"]:
        out[e["from"]].append(e["to"])
    seen, todo = {"n0"}, deque(["n0"])
    while todo:
        for child in out.get(todo.popleft(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


# --- the model -------------------------------------------------------------------------------------
def test_forkhello_graph_states_outcomes_and_edges(tmp_path):
    out = tmp_path / "g.html"
    found = ukernel.explore("forkhello", graph=out)
    model = found.graph
    assert model == page_data(out)
    assert found.complete and model["complete"] is True and model["runs"] == found.runs
    assert len(by_kind(model, "start")) == 1 and len(by_kind(model, "state")) == found.states == model["states"]
    outcomes = by_kind(model, "outcome")
    assert [(n["ending"]["stdout"], n["ending"]["exit_status"]) for n in outcomes] == [
        (o["stdout"], o["exit_status"]) for o in found.outcomes
    ]
    assert [(n["runs"], n["schedule"]) for n in outcomes] == [(o["count"], o["schedule"]) for o in found.outcomes]
    assert by_kind(model, "deadlock") == [] and model["drawn"] == {"states": found.states, "endings": 2}
    ids = {n["id"] for n in model["nodes"]}
    assert all(e["from"] in ids and e["to"] in ids for e in model["edges"])
    assert reachable(model) == ids  # every state hangs off the start
    assert [e["to"] for e in model["edges"] if e["from"] == "n0"] == ["n1"]  # one way to the first choice
    # a state met more than once is where paths merged (later runs stopped there: state caching)
    assert sum(n["met"] for n in by_kind(model, "state")) > found.states
    labels = Counter(e["label"] for e in model["edges"])
    assert labels["boot"] == 1 and labels["2 write"] >= 1 and labels["3 write"] >= 1
    # an entry's option 0 is the task at the entry going on; another option preempts it
    for e in model["edges"]:
        node = next(n for n in model["nodes"] if n["id"] == e["from"])
        if node["kind"] == "state" and node["choice"]["kind"] == "entry" and e["chosen"] == 0:
            assert e["label"] == f"{node['choice']['pid']} {node['choice']['syscall']}"
        elif node["kind"] == "state" and node["choice"]["kind"] == "entry":
            assert e["title"].startswith(f"choice {e['chosen']}: pid {node['choice']['pid']} is preempted before")
    # layered: a state is one layer below a parent; the endings on the last layer
    last = max(n["depth"] for n in model["nodes"])
    assert {n["depth"] for n in outcomes} == {last}
    assert all(n["y"] == graph_module.MARGIN + n["depth"] * graph_module.Y_GAP for n in model["nodes"])


def test_a_states_detail_tasks_and_service_fields(tmp_path):
    model = ukernel.explore("forkhello", graph=tmp_path / "g.html").graph
    first = by_kind(model, "state")[0]
    detail = first["detail"]
    assert [(t["pid"], t["comm"]) for t in detail["tasks"]] == [(1, "init"), (2, "forkhello"), (3, "forkhello")]
    # the first choice: the parent yields after fork (forkhello's sched_yield), the child has not run
    assert first["choice"] == {"kind": "schedule", "pid": 2, "syscall": "yield", "options": [3, 2]}
    init, parent, child = detail["tasks"]
    assert (init["state"], init["syscall"], init["wchan"]) == ("S", "wait4", "wait4 for any child")
    assert (parent["state"], parent["syscall"], parent["wchan"]) == ("R", "sched_yield", "running on cpu 0")
    assert [(f["function"], f["line"], f["locals"]) for f in parent["frames"]] == [
        ("main", 9, {"argv": ["forkhello"], "pid": 3})
    ]
    assert (child["state"], child["syscall"], child["frames"]) == ("R", "", [])
    assert set(detail["services"]) == set(SERVICES)
    sched = {k: model["blobs"][i] for k, i in detail["services"]["sched"].items()}
    assert sched["curr"] == [2] and sorted(sched["entities"]) == ["1", "2", "3"]
    assert {t: e["state"] for t, e in sched["entities"].items()} == {"1": "blocked", "2": "running", "3": "runnable"}
    pid = {k: model["blobs"][i] for k, i in detail["services"]["pid"].items()}
    assert sorted(p["numbers"] for p in pid["pids"].values()) == [[1], [2], [3]]  # struct pids, by handle
    assert first["replay"] == "ukernel run --schedule 0 forkhello"


def test_each_states_schedule_replays_to_that_state(tmp_path):
    """The schedule shown for a state reaches it: a run that follows it meets the state's digest
    at the point after its choices."""
    model = ukernel.explore("forkhello", graph=tmp_path / "g.html").graph
    for node in by_kind(model, "state"):
        report = run_one("forkhello", None, {}, Recorder(node["schedule"], None, notes=Notes(set())))
        digests = {r["index"]: str(r["state"]) for r in report.points}
        assert digests[node["choices"]] == node["digest"], node["id"]


def test_a_deadlock_node_with_its_wait_for_graph(tmp_path):
    late = program(tmp_path, "late", LATE)
    found = ukernel.explore(late, graph=tmp_path / "g.html")
    model = found.graph
    (dead,) = by_kind(model, "deadlock")
    (done,) = by_kind(model, "outcome")
    assert done["ending"]["stdout"] == "child\nparent\n" and dead["schedule"] == found.deadlocks[0]["schedule"]
    assert dead["replay"] == f"ukernel run --schedule {','.join(map(str, dead['schedule']))} {late}"
    waits = [(w["pid"], w["syscall"]) for w in dead["ending"]["waits"]]
    assert waits == [(1, "wait4"), (2, "wait4"), (3, "read")]
    text = (tmp_path / "g.html").read_text()
    assert f'<g class="node deadlock" data-node="{dead["id"]}"' in text
    assert f'style="fill:{DEADLOCK}"' in text and f'style="fill:{PALETTE[0]}"' in text
    legend = re.search(r'<ul id="legend">(.*?)</ul>', text, re.S)[1]
    assert "deadlock 1: every task asleep, nothing can wake one (pid 1 init in wait4" in html.unescape(legend)
    assert "outcome 1: stdout &#x27;child\\nparent\\n&#x27;, exit status 0" in legend


def test_jobs_2_draws_the_same_states_and_endings(tmp_path):
    one = ukernel.explore("forkhello", graph=tmp_path / "1.html").graph
    two = ukernel.explore("forkhello", jobs=2, graph=tmp_path / "2.html").graph
    assert {n["digest"] for n in by_kind(two, "state")} == {n["digest"] for n in by_kind(one, "state")}
    assert all("detail" in n for n in by_kind(two, "state"))
    endings = [(n["kind"], n["ending"].get("stdout")) for n in one["nodes"] if "ending" in n]
    assert sorted(endings) == sorted((n["kind"], n["ending"].get("stdout")) for n in two["nodes"] if "ending" in n)


def test_a_large_graph_is_cut_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(graph_module, "MAX_NODES", 5)
    found = ukernel.explore("forkhello", graph=tmp_path / "g.html")
    model = found.graph
    assert model["states"] == found.states > 5 and model["drawn"]["states"] == 5
    assert sum("detail" in n for n in by_kind(model, "state")) == 5  # the kernel spelled out only those
    ids = {n["id"] for n in model["nodes"]}
    assert all(e["from"] in ids and e["to"] in ids for e in model["edges"]) and reachable(model) == ids
    text = (tmp_path / "g.html").read_text()
    assert f"The search met {found.states} states and 2 endings; this page draws the first 5 states" in text


def test_the_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "out.html"
    assert cli_main(["explore", "--graph", str(out), "forkhello"]) == 0
    assert "complete: every outcome was seen" in capsys.readouterr().out
    data = page_data(out)
    assert data["program"] == "forkhello" and len(by_kind(data, "outcome")) == 2
    assert "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", out.read_text())  # nothing fetched


def test_explore_options_may_follow_the_programs_arguments(tmp_path, capsys):
    """The issue's usage: ``ukernel explore PROGRAM [ARGS] [--graph FILE] ...``."""
    out, found = tmp_path / "out.html", tmp_path / "found.json"
    assert cli_main(["explore", "forkbuf", "1", "--graph", str(out), "--json", str(found)]) == 0
    assert json.loads(found.read_text())["argv"] == ["forkbuf", "1"]
    assert page_data(out)["program"] == "forkbuf"
    assert capsys.readouterr().err == ""


def test_a_double_dash_gives_the_program_every_later_word(tmp_path):
    found = tmp_path / "found.json"
    assert cli_main(["explore", "--json", str(found), "forkhello", "--", "--graph", "x"]) == 0
    assert json.loads(found.read_text())["argv"] == ["forkhello", "--graph", "x"]
    assert not (tmp_path / "x").exists()


def test_the_cli_refuses_a_page_it_cannot_write_before_searching(tmp_path, capsys):
    assert cli_main(["explore", "--graph", str(tmp_path / "no" / "out.html"), "forkhello"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"ukernel: explore: --graph {tmp_path / 'no' / 'out.html'}: No such file or directory\n"
    assert captured.out == ""


# --- the services' fields, through the message ---------------------------------------------------
async def test_state_digest_with_fields_through_the_message():
    async with ukernel.boot() as kernel:
        digest = await kernel.call("sched", "state_digest", {})
        fields = await kernel.call("sched", "state_digest", {"fields": True})
        assert isinstance(digest, int) and fields == {"curr": [None], "entities": {}, "timers_left": {}}
        pid = await kernel.call("pid", "state_digest", {"fields": True})
        assert pid["pids"] == {} and pid["namespaces"]["1"]["__class__"] == "PidNamespace"
        with pytest.raises(OSError, match="EINVAL: sched.state_digest: argument fields must be bool, not int"):
            await kernel.call("sched", "state_digest", {"fields": 1})
        assert await kernel.check_invariants() == []


class Node:
    def __init__(self, name: str) -> None:
        self.name, self.next, self.data = name, None, b"x" * 100


def test_readable_cuts_long_values_and_names_what_it_met_before():
    a, b = Node("a"), Node("b")
    a.next, b.next = b, a
    assert readable({"head": a, "ids": set(range(20)), 7: (1, 2)}) == {
        "7": [1, 2],
        "head": {
            "__class__": "Node",
            "data": repr(b"x" * 32) + "... (100 bytes)",
            "name": "a",
            "next": {
                "__class__": "Node",
                "data": repr(b"x" * 32) + "... (100 bytes)",
                "name": "b",
                "next": "<Node: as at head>",
            },
        },
        "ids": sorted(range(20), key=repr)[:16] + ["... 4 more"],
    }
    assert readable({Node("k"): 1}) == {"<Node> #0": 1} and readable(trio.Event()) == "<Event>"


# --- the page in Chromium ------------------------------------------------------------------------------
@pytest.fixture
def late_page(tmp_path):
    out = tmp_path / "late.html"
    found = ukernel.explore(program(tmp_path, "late", LATE), graph=out)
    return out, found.graph | {"deadlock_runs": found.deadlocks[0]["count"]}


def dump_dom(tmp_path, url: str) -> str:
    """The page after its script (and a driver's timeouts: the virtual time budget) ran."""
    done = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    return done.stdout


@needs_chromium
def test_the_page_loads_draws_and_shows_the_node_its_hash_names(tmp_path, late_page):
    path, model = late_page
    state = by_kind(model, "state")[0]
    dom = dump_dom(tmp_path, f"{path.as_uri()}#node={state['id']}")
    assert re.search(r'<body[^>]* data-ready="1"', dom), "the script did not finish:\n" + dom[:2000]
    assert len(re.findall(r'<g class="node state[^"]*" data-node=', dom)) == len(by_kind(model, "state"))
    assert len(re.findall(r'<g class="edge[^"]*" data-from=', dom)) == len(model["edges"])
    assert f'<g class="node state selected" data-node="{state["id"]}"' in dom
    detail = re.search(r'<div id="detail">(.*?)</div></aside>', dom, re.S)[1]
    times = "time" if state["met"] == 1 else "times"
    assert detail.startswith(
        f'<p class="detail-title">state {state["id"][1:]} · depth 1 · met {state["met"]} {times}</p>'
    )
    tasks = re.search(r'<table class="tasks">(.*?)</table>', detail, re.S)[1]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td><td>(\w)</td><td>([\w-]+)</td>", tasks)
    assert [(int(r[0]), r[1]) for r in rows] == [(t["pid"], t["comm"]) for t in state["detail"]["tasks"]]
    assert re.findall(r'<details data-service="(\w+)">', detail) == sorted(SERVICES)
    assert f'<code class="replay">{html.escape(state["replay"], quote=False)}</code>' in detail


#: Clicks a state, then the deadlock's legend entry, then a "choices from here" link, and writes
#: what the detail showed after each into <pre id="driver"> (--dump-dom prints it).
DRIVER = """<script>
(async function () {
  const frame = function () { return new Promise(function (done) { setTimeout(done, 0); }); };
  const detail = function () {
    const d = document.getElementById("detail");
    return { title: d.querySelector(".detail-title").textContent,
      captions: Array.from(d.querySelectorAll("caption")).map(function (c) { return c.textContent; }),
      selected: Array.from(document.querySelectorAll("#graph .selected")).map(function (g) { return g.dataset.node; }),
      near: document.querySelectorAll("#graph .edge.near").length,
      waits: Array.from(d.querySelectorAll("table.waits tr td:nth-child(4)")).map(function (c) { return c.textContent; }) };
  };
  const out = {};
  document.querySelector('#graph .node[data-node="STATE"]').dispatchEvent(new MouseEvent("click", { bubbles: true }));
  await frame();
  out.state = detail();
  document.querySelector('#legend button[data-node="DEAD"]').click();
  await frame();
  out.dead = detail();
  document.querySelector('#graph .node[data-node="STATE"]').dispatchEvent(new MouseEvent("click", { bubbles: true }));
  await frame();
  document.querySelector("#detail .moves button.goto").click();
  await frame();
  out.next = detail();
  out.hash = location.hash;
  const pre = document.body.appendChild(document.createElement("pre"));
  pre.id = "driver";
  pre.textContent = JSON.stringify(out);
})();
</script>
"""


@needs_chromium
def test_clicking_nodes_shows_their_detail(tmp_path, late_page):
    path, model = late_page
    state = by_kind(model, "state")[1]
    (dead,) = by_kind(model, "deadlock")
    first_move = next(e for e in model["edges"] if e["from"] == state["id"])
    copy = tmp_path / "driven.html"
    driver = DRIVER.replace("STATE", state["id"]).replace("DEAD", dead["id"])
    copy.write_text(path.read_text(encoding="utf-8").replace("</body>", driver + "</body>"), encoding="utf-8")
    dom = dump_dom(tmp_path, copy.as_uri())
    seen = json.loads(html.unescape(re.search(r'<pre id="driver">(.*?)</pre>', dom, re.S)[1]))
    near = sum(e["from"] == state["id"] or e["to"] == state["id"] for e in model["edges"])
    assert seen["state"] == {
        "title": f"state {state['id'][1:]} · depth {state['depth']} · met {state['met']} time"
        + ("" if state["met"] == 1 else "s"),
        "captions": ["tasks", *(f"{s} fields" for s in sorted(SERVICES)), "kernel"],
        "selected": [state["id"]],
        "near": near,
        "waits": [],
    }
    assert seen["dead"]["title"] == f"deadlock 1 · depth {dead['depth']} · {dead['runs']} runs"
    assert dead["runs"] == model["deadlock_runs"]  # the exploration's count for it
    assert seen["dead"]["captions"] == ["wait-for graph"] and seen["dead"]["waits"] == ["wait4", "wait4", "read"]
    target = next(n for n in model["nodes"] if n["id"] == first_move["to"])
    assert seen["next"]["selected"] == [target["id"]] and seen["hash"] == f"#node={target['id']}"


@needs_chromium
def test_the_page_colours_outcomes_and_the_deadlock(tmp_path, late_page):
    path, model = late_page
    shot = tmp_path / "graph.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1400", path.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-3000:]
    _, _, pixels = png_pixels(shot.read_bytes())
    colours = Counter(p[:3] for p in pixels)
    red, blue = bytes.fromhex(DEADLOCK[1:]), bytes.fromhex(PALETTE[0][1:])
    # the legend's swatches (14 px squares) and the nodes (80 x 32): well over a swatch each
    assert colours[red] > 1000 and colours[blue] > 1000, (colours[red], colours[blue])
