"""What the cow lab's tests share: run a cowtest scenario with the student's mm, read what each
process printed and which copy-on-write faults the trace shows (mm's ``fault`` events)."""

from __future__ import annotations

import re
from pathlib import Path

import ukernel
from ukernel.testing import syscall_events

PROGRAM = "/bin/cowtest"
SOURCE = Path(__file__).with_name("cowtest.py").read_bytes()
COW = ("cow-copy", "cow-reuse")


class Scenario:
    """One run of ``cowtest NAME``: its output by process, and its faults by process name."""

    def __init__(self, lab, name: str):
        self.lab, self.name = lab, name
        self.result = lab.run(PROGRAM, ["cowtest", name], files={PROGRAM: SOURCE})
        self.saw = dict(line.split(": ", 1) for line in self.lines() if ": " in line)
        forks = syscall_events(self.result.trace, "fork", 2)
        exits = {e["msgid"]: e.get("result") for e in self.result.trace if e["type"] == "syscall_exit"}
        children = [exits.get(e["msgid"]) for e in forks]
        self.who = {2: "parent"} | dict(
            zip(children, ("child",) if len(children) == 1 else ("first", "second"), strict=False)
        )

    def lines(self) -> list[str]:
        return self.result.stdout.decode(errors="replace").splitlines()

    def why_not(self) -> str:
        """Why a process printed nothing: the error that ended it (a crash names the file:line), or the run's."""
        errors = [line for line in self.lines() if re.match(r"\w+(Error|Exception)\b", line)]
        oopses = [p for p in self.result.problems if p.startswith("oops")]
        return (errors or oopses or [self.result.error or "no output"])[0][:300]

    def faults(self, kinds: tuple[str, ...] = COW) -> list[tuple[str, str, list[int]]]:
        """(who, kind, refcount [before, after]) of each fault of the scenario's peeks and pokes."""
        return [
            (self.who.get(e["pid"], f"pid {e['pid']}"), e["kind"], list(e.get("refcount", [])))
            for e in self.result.trace
            if e["type"] == "fault" and e.get("kind") in kinds and e.get("syscall") in ("peek", "poke")
        ]

    def expect_saw(self, who: str, want: str, why: str) -> None:
        """What ``who`` printed is ``want``; else fail with ``why`` and what it printed."""
        got = self.saw.get(who)
        if got is None:
            self.lab.check(False, f"cowtest {self.name}: the {who} printed nothing; {self.why_not()}")
        self.lab.check(got == want, f"cowtest {self.name}: the {who} read {got!r}, not {want!r}: {why}")

    def expect_faults(self, want: list[tuple[str, str, list[int]]], why: str) -> None:
        got = self.faults()
        shown = ", ".join(f"{who} {kind} refcount {refs}" for who, kind, refs in got) or "none"
        self.lab.check(got == want, f"cowtest {self.name}: copy-on-write faults were [{shown}]; {why}")

    def clean(self) -> ukernel.Result:
        self.lab.clean(self.result)
        return self.result
