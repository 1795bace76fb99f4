"""The html view in a real browser: headless Chromium runs its script and draws it.

Skipped only when there is no ``chromium`` on PATH (.ci/run installs Debian's). A few
launches of a second or two each: --dump-dom shows the page after its script ran (with
the console on stderr; a test driver appended to a copy of the page clicks through it and
writes what it saw into the DOM), --screenshot shows that it draws something (and that
the pstree's glyphs join), and --remote-debugging-pipe presses real keys.
"""

from __future__ import annotations

import html
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

import ukernel
from ukernel.trace import views

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: apt-get install chromium (as .ci/run does)"
)
LAUNCH_TIMEOUT = 60  # seconds; a launch takes one or two


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with its own profile; a hung one is killed with its children."""
    if CHROMIUM is None:  # the mark above skips first; this says why if the mark is ever removed
        pytest.skip("chromium is not installed: apt-get install chromium (as .ci/run does)")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this launch started, and nothing else
        proc.communicate()
        pytest.fail(f"chromium did not finish in {LAUNCH_TIMEOUT} s: {' '.join(command)}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, pixels) of an 8-bit RGB or RGBA PNG, decoded with zlib and struct alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    assert len(raw) == height * (stride + 1)
    prev = bytearray(stride)
    pixels: list[bytes] = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert kind == 0, f"PNG filter {kind}"
        pixels.extend(bytes(line[i : i + bpp]) for i in range(0, stride, bpp))
        prev = line
    return width, height, pixels


@pytest.fixture
async def page(tmp_path) -> tuple[Path, list[dict]]:
    with trio.fail_after(60):
        result = await ukernel.run_async("nginx", ["nginx", "4"])
    path = tmp_path / "nginx.html"
    path.write_text(views.html(result.trace), encoding="utf-8")
    return path, result.trace


async def test_the_page_runs_its_script_without_console_errors(tmp_path, page):
    path, trace = page
    done = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", f"{path.as_uri()}#filter=fork&msg=2")
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    dom = done.stdout
    assert re.search(r'<body[^>]* data-ready="1"', dom), "the script did not finish:\n" + dom[:2000]
    # The hash selected arrow 2 (the reply to sched_fork) and filtered the table to the forks.
    fork = views.select_route(trace, syscall="fork", pid=2)
    assert fork.events[2]["type"] == "reply"
    assert re.search(r'<g class="msg reply selected" data-ev="2"', dom), "arrow 2 is not selected"
    detail = re.search(r'<div id="detail">(.*?)</div></aside>', dom, re.S)[1]
    title = f'<p class="detail-title">#{fork.events[2]["msgid"]} sched → kernel: sched_fork ok</p>'
    assert detail.startswith(title), detail[:300]
    # The request and its reply, as tables of their fields.
    assert re.findall(r"<caption>(.*?)</caption>", detail) == ["request: kernel → sched", "reply: sched → kernel"]
    assert f'<tr><th>msgid</th><td><span class="value">{fork.events[2]["msgid"]}</span></td></tr>' in detail
    forks = sum(e["type"] == "syscall_enter" and e["op"] == "fork" for e in trace)
    calls = sum(e["type"] == "syscall_enter" for e in trace)
    assert f'<span id="shown" class="hint">{forks} of {calls} syscalls</span>' in dom
    assert len(re.findall(r'<tr class="call[ \w]*" data-msgid="\d+"', dom)) == calls
    assert len(re.findall(r'<tr class="call[ \w]*" data-msgid="\d+" hidden="">', dom)) == calls - forks


async def test_the_page_draws_something(tmp_path, page):
    path, _ = page
    shot = tmp_path / "page.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", path.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-3000:]
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 900)
    colours = Counter(pixels)
    background, most = colours.most_common(1)[0]
    assert len(colours) > 16, f"{len(colours)} colours: a blank page"
    assert most < 0.97 * len(pixels), f"{most / len(pixels):.1%} of the page is {background.hex()}"


# --- the click-through: a test driver appended to a copy of the page ---------------------------------
#: Run after the page's own script: clicks what ``steps`` say and records what the page then
#: shows into <pre id="driver">, as JSON (--dump-dom prints it). A task passes after each click.
DRIVER = """<script>
(async function () {
  // A turn of the event loop (headless --dump-dom draws no frames, so requestAnimationFrame never fires).
  const frame = function () { return new Promise(function (done) { setTimeout(done, 0); }); };
  const texts = function (els) { return Array.from(els).map(function (el) { return el.textContent; }); };
  function diagram() {
    const svg = document.getElementById("diagram");
    const box = svg.getBoundingClientRect();
    const labels = Array.from(svg.querySelectorAll(".msg text.label"));
    return {
      title: document.getElementById("route-title").textContent,
      participants: texts(svg.querySelectorAll(".participant text")),
      arrows: texts(svg.querySelectorAll(".msg title")),
      labels: labels.map(function (t) { const s = t.querySelectorAll("tspan"); return s.length ? texts(s) : [t.textContent]; }),
      outside: labels.filter(function (t) {
        const b = t.getBoundingClientRect();
        return b.left < box.left || b.right > box.right || b.top < box.top || b.bottom > box.bottom;
      }).length,
      wider: labels.filter(function (t) {
        const hit = t.parentNode.querySelector("line.hit");
        return hit && t.getBBox().width > Math.abs(hit.x2.baseVal.value - hit.x1.baseVal.value);
      }).length,
      svgWidth: svg.width.baseVal.value,
      boxWidth: document.getElementById("diagram-box").clientWidth,
      scrolls: getComputedStyle(document.getElementById("diagram-box")).overflowX,
    };
  }
  function details() {
    const d = document.getElementById("detail");
    return {
      title: d.querySelector(".detail-title").textContent,
      captions: texts(d.querySelectorAll("caption")),
      messages: Array.from(d.querySelectorAll("table.messages tbody tr")).map(function (tr) { return texts(tr.cells); }),
    };
  }
  function visible() {
    return Array.from(document.querySelectorAll("#syscalls tr.call")).filter(function (r) { return !r.hidden; })
      .map(function (r) { return r.dataset.msgid; });
  }
  const out = {};
  document.querySelector('tr.call[data-msgid="CALL"] button.call').click();
  await frame();
  out.call = { diagram: diagram(), details: details() };
  document.querySelectorAll("#diagram .msg")[ARROW].dispatchEvent(new MouseEvent("click", { bubbles: true }));
  await frame();
  out.arrow = details();
  const select = document.getElementById("pid-filter");
  select.value = "pPID";
  select.dispatchEvent(new Event("change"));
  await frame();
  out.pid = visible();
  const task = document.querySelector('#pstree button[data-task="pTREE"]');
  task.click();
  await frame();
  out.tree = { value: select.value, visible: visible(), buttons: texts(document.querySelectorAll("#pstree button")) };
  select.value = "";
  select.dispatchEvent(new Event("change"));
  await frame();
  out.all = visible().length;
  const pre = document.body.appendChild(document.createElement("pre"));
  pre.id = "driver";
  pre.textContent = JSON.stringify(out);
})();
</script>
"""


def drive(tmp_path: Path, page: Path, **values: Any) -> dict:
    """Load a copy of ``page`` with DRIVER appended (CALL, ARROW, PID, TREE filled in) and
    return what it recorded."""
    driver = DRIVER
    for name, value in values.items():
        driver = driver.replace(name.upper(), str(value))
    copy = tmp_path / "driven.html"
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", driver + "</body>"), encoding="utf-8")
    done = chromium(
        tmp_path, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    found = re.search(r'<pre id="driver">(.*?)</pre>', done.stdout, re.S)
    assert found, "the driver did not finish:\n" + done.stdout[-2000:]
    return json.loads(html.unescape(found[1]))


def route_lines(trace: list[dict], msgid: int) -> list[str]:
    """The route view's messages for a syscall, one per request: ``#12 kernel vfs dup_files [no CLONE_FILES]``."""
    lines = views.route(trace, msgid=msgid).splitlines()[1:]
    return [" ".join(line.replace(" -> ", " ").split()) for line in lines if not line.strip().startswith("---")]


async def test_clicking_a_syscall_draws_its_route_and_the_filters_show_a_pids_rows(tmp_path, page):
    path, trace = page
    enters = [e for e in trace if e["type"] == "syscall_enter"]
    second_fork = [e for e in enters if e["op"] == "fork" and e["pid"] == 2][1]  # not the route shown first
    r = views.select_route(trace, msgid=second_fork["msgid"])
    got = drive(tmp_path, path, call=second_fork["msgid"], arrow=3, pid=3, tree=4)

    drawn = got["call"]["diagram"]
    assert drawn["title"] == f"Route of {views.route(trace, msgid=second_fork['msgid']).splitlines()[0]}"
    assert drawn["participants"] == ["pid:2", "kernel", "sched", "vfs", "signals", "mm", "namespaces", "pid"]
    # One arrow per event of the route, in order; the requests' arrows are the route view's lines.
    assert [re.match(r"#(\d+) ", a)[1] for a in drawn["arrows"]] == [str(e["msgid"]) for e in r.events]
    requests = [a for a, e in zip(drawn["arrows"], r.events, strict=True) if e["type"] == "request"]
    assert [a.replace(" → ", " ").replace(": ", " ", 1) for a in requests] == route_lines(trace, second_fork["msgid"])
    assert drawn["arrows"][0] == f"#{second_fork['msgid']} pid:2 → kernel: fork()"
    assert drawn["arrows"][-1] == f"#{second_fork['msgid']} kernel → pid:2: fork = 4"
    # Every label whole, inside the diagram and within its arrow; the box scrolls what is wider than it.
    assert ["".join(lines) for lines in drawn["labels"]] == [a.split(": ", 1)[1] for a in drawn["arrows"]]
    assert (drawn["outside"], drawn["wider"], drawn["scrolls"]) == (0, 0, "auto")

    # Its details: tables, the messages one row each (the same requests, in order).
    call = got["call"]["details"]
    assert call["title"] == "fork() = 4"
    assert call["captions"] == ["syscall fork", "return", "messages"]
    assert [row[0] for row in call["messages"]] == [str(e["msgid"]) for e in r.requests]
    assert call["messages"][0] == [
        str(r.requests[0]["msgid"]),
        "sched",
        "sched_fork",
        "{task=" + str(r.events[2]["result"]["task"]) + "}",
    ]
    assert got["arrow"]["captions"] == ["request: kernel → vfs", "reply: vfs → kernel"]  # dup_files
    assert got["arrow"]["title"] == drawn["arrows"][3]

    # The task filter: pid 3's rows only; a process in the pstree chooses it too.
    assert got["pid"] == [str(e["msgid"]) for e in enters if e["pid"] == 3]
    assert got["tree"]["value"] == "p4"
    assert got["tree"]["visible"] == [str(e["msgid"]) for e in enters if e["pid"] == 4]
    assert got["tree"]["buttons"] == ["init(1)", "nginx(2)", "nginx(3)", "nginx(4)", "nginx(5)", "nginx(6)"]
    assert got["all"] == len(enters)


# --- the keyboard: real key presses through the DevTools protocol ------------------------------------
class DevTools:
    """Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-ended JSON): real,
    trusted key presses, which a script's synthetic events are not (they press no button)."""

    def __init__(self, tmp_path: Path, url: str):
        if CHROMIUM is None:
            pytest.skip("chromium is not installed: apt-get install chromium (as .ci/run does)")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
        command += ["--disable-background-networking", "--disable-component-update", "--remote-debugging-pipe"]
        command += [f"--user-data-dir={tmp_path / 'profile'}", "about:blank"]

        def pipes() -> None:  # in the child, before exec: the pipes become its fds 3 and 4
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=pipes,
            start_new_session=True,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._id = b"", 0
        self.session = None
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, tolerate: tuple[str, ...] = (), **params: Any) -> dict | None:
        """Send one command and wait for its answer (events in between are dropped); None for an
        error whose message is in ``tolerate``."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._in], [], [], LAUNCH_TIMEOUT)
                chunk = os.read(self._in, 1 << 16) if ready else b""
                if not chunk:
                    pytest.fail(f"chromium did not answer {method} in {LAUNCH_TIMEOUT} s")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(line)
            if answer.get("id") == self._id:
                if "error" in answer and answer["error"]["message"] in tolerate:
                    return None
                assert "error" not in answer, (method, answer["error"])
                return answer["result"]

    def wait_ready(self) -> None:
        """The page's own answer once its script has run (a count of asks raced the load on a busy
        machine). The new tab starts at about:blank and then loads the page, which replaces the
        context an early ask ran in: ask again then (a bounded number of loads, no clock); a page
        that never gets ready is call()'s LAUNCH_TIMEOUT failure, not a hang."""
        for _ in range(5):
            ready = self.call(
                "Runtime.evaluate", tolerate=REPLACED, expression=READY, awaitPromise=True, returnByValue=True
            )
            if ready is not None:
                assert ready["result"].get("value") == "1", ready
                return
        pytest.fail("the page was replaced 5 times before its script finished")

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def press(self, key: str, code: str, keycode: int, text: str = "") -> None:
        """A key pressed and released, as a keyboard sends it."""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": keycode}
        self.call("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=LAUNCH_TIMEOUT)
        except (subprocess.TimeoutExpired, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this launch started, and nothing else
            self.proc.wait()
        finally:
            os.close(self._in)
            os.close(self._out)


#: What the DevTools protocol answers an ask whose page a load replaced meanwhile.
REPLACED = ("Execution context was destroyed.", "Cannot find default execution context")
#: A promise the page keeps once its script has set data-ready (it looks again every 10 ms).
READY = """new Promise(done => { const look = () => document.body && document.body.dataset.ready === "1"
    ? done("1") : setTimeout(look, 10); look(); })"""
TAB = ("Tab", "Tab", 9)
ENTER = ("Enter", "Enter", 13, "\r")
SPACE = (" ", "Space", 32, " ")


async def test_the_keyboard_reaches_a_syscall_and_enter_or_space_draws_its_route(tmp_path, page):
    path, trace = page
    forks = [e for e in trace if e["type"] == "syscall_enter" and e["op"] == "fork"]
    browser = DevTools(tmp_path, path.as_uri())
    try:
        browser.wait_ready()
        browser.js("document.getElementById('filter').focus()")
        browser.call("Input.insertText", text="fork")  # typed: the table shows the forks only
        browser.press(*TAB)  # to the task filter
        browser.press(*TAB)  # to the first fork's button
        focused = "document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.msgid"
        assert browser.js(focused) == str(forks[0]["msgid"])
        assert browser.js("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # focus is visible
        browser.press(*ENTER)
        title = "document.getElementById('route-title').textContent"
        assert browser.js(title) == f"Route of {views.route(trace, msgid=forks[0]['msgid']).splitlines()[0]}"
        arrows = "Array.from(document.querySelectorAll('#diagram .msg title')).map(t => t.textContent)"
        expected = views.select_route(trace, msgid=forks[1]["msgid"])
        browser.press(*TAB)  # the next fork
        browser.press(*SPACE)
        assert browser.js(title) == f"Route of {views.route(trace, msgid=forks[1]['msgid']).splitlines()[0]}"
        drawn = browser.js(arrows)
        assert [re.match(r"#(\d+) ", a)[1] for a in drawn] == [str(e["msgid"]) for e in expected.events]
        # An arrow of the route is focusable too, and Enter shows its message.
        browser.js("document.querySelectorAll('#diagram .msg')[1].focus()")
        browser.press(*ENTER)
        assert browser.js("document.querySelector('#detail .detail-title').textContent") == drawn[1]
    finally:
        browser.close()


def longest_vertical_run(width: int, height: int, pixels: list[bytes]) -> int:
    """The longest run of dark pixels down one column of the picture."""
    best = 0
    for x in range(width):
        run = 0
        for y in range(height):
            run = run + 1 if sum(pixels[y * width + x][:3]) < 3 * 160 else 0
            best = max(best, run)
    return best


async def test_the_pstrees_glyphs_join_into_one_line(tmp_path, page):
    """``nginx(2)─┬─nginx(3)`` over ``├─`` ``├─`` ``└─``: the four glyphs make one vertical
    stroke three lines long (about 44 px); glyphs that do not join make runs of one line (15 px)."""
    path, _ = page
    alone = tmp_path / "pstree.html"
    only_tree = '<script>document.body.replaceChildren(document.getElementById("pstree"));</script></body>'
    alone.write_text(path.read_text(encoding="utf-8").replace("</body>", only_tree), encoding="utf-8")
    shot = tmp_path / "pstree.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=600,400", alone.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-3000:]
    assert longest_vertical_run(*png_pixels(shot.read_bytes())) >= 40
