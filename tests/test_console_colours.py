"""``ukernel run -v``'s console lines: colours that read on light and dark terminals, only
for a person (a terminal, or FORCE_COLOR), never with NO_COLOR; sched lines that say
what they know."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import services
import ukernel
from ukernel.trace import ConsoleSink
from ukernel.trace.events import colour_wanted, format_event

SGR = re.compile(r"\x1b\[([0-9;]*)m")
UNREADABLE = {"37", "97", "33", "93", "47", "107"}  # white or yellow text, a white background


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_wanted_follows_no_color_force_color_and_the_tty():
    assert colour_wanted(Tty(), {}) is True
    assert colour_wanted(io.StringIO(), {}) is False
    assert colour_wanted(Tty(), {"NO_COLOR": "1"}) is False
    assert colour_wanted(Tty(), {"NO_COLOR": ""}) is True  # no-color.org: only a non-empty value counts
    assert colour_wanted(io.StringIO(), {"FORCE_COLOR": "1"}) is True
    assert colour_wanted(Tty(), {"NO_COLOR": "1", "FORCE_COLOR": "1"}) is False  # the person's "no" wins


def test_the_palette_reads_on_light_and_dark_backgrounds():
    colours = services.colours()
    assert len(set(colours.values())) == len(colours)  # one colour per service
    assert not set(colours.values()) & UNREADABLE


async def test_console_lines_are_styled_by_kind_and_service():
    out = Tty()
    sink = ConsoleSink(out, colours=services.colours(), colour=True)
    async with ukernel.boot(sinks=(sink,)) as kernel:
        assert await kernel.run("/bin/hello") == 0
        assert await kernel.check_invariants() == []
    lines = out.getvalue().splitlines()
    codes = {m for line in lines for m in SGR.findall(line)} - {"0"}
    assert codes and not codes & UNREADABLE
    by_kind = {}
    for line in lines:
        m = SGR.match(line)
        text = SGR.sub("", line)
        kind = "syscall" if "[pid " in text else "sched" if text.startswith("   sched") else "message"
        by_kind.setdefault(kind, set()).add(m.group(1) if m else None)
    assert by_kind["syscall"] == {"1"}  # bold, in the terminal's own foreground colour
    assert by_kind["sched"] == {"2"}  # dim
    assert by_kind["message"] <= set(services.colours().values())
    assert "cpuNone" not in out.getvalue()


def test_a_wake_names_the_waker_not_a_cpu():
    event = {"type": "sched", "op": "wake", "pid": 5, "tid": 5, "by": 3}
    assert format_event(event) == "   sched wake tid 5 by pid 3"
    assert format_event({"type": "sched", "op": "pick", "cpu": 0, "pid": 5, "tid": 5}) == "   sched cpu0 pick tid 5"
    migrate = {"type": "sched", "op": "migrate", "cpu": 1, "pid": 5, "tid": 5, "src_cpu": 0}
    assert format_event(migrate) == "   sched cpu1 migrate tid 5 from cpu0"


def run_verbose(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    done = subprocess.run(
        [sys.executable, "-m", "ukernel", "run", "-v", "hello"],
        capture_output=True,
        text=True,
        env=base | env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_the_cli_colours_with_force_color_and_never_with_no_color():
    assert SGR.search(run_verbose(FORCE_COLOR="1"))
    plain = run_verbose(FORCE_COLOR="1", NO_COLOR="1")
    assert "kernel -> sched" in plain and not SGR.search(plain)
