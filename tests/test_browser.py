"""The html view in a real browser: headless Chromium runs its script and draws it.

Skipped only when there is no ``chromium`` on PATH (.ci/run installs Debian's). Two
launches of a few seconds each: --dump-dom shows the page after its script ran (with
the console on stderr), --screenshot shows that it draws something.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

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
    detail = re.search(r'<pre id="detail">(.*?)</pre>', dom, re.S)[1]
    assert detail.startswith(f"#{fork.events[2]['msgid']} sched → kernel: sched_fork ok\n"), detail[:300]
    assert detail.count('"type": "re') == 2  # the request and its reply
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
