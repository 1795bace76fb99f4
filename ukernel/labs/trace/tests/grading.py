"""The trace lab's questions and how each is answered from a fresh trace at grade time.

Nothing here holds an answer: every test runs the question's program again,
reads the answer out of that run's trace with ukernel.testing's route helpers
(the ones behind the views), and compares it with the student's answers.toml.
A wrong answer's FAIL says which question, what kind of difference, and which
view shows it, but not the right answer.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ukernel import abi
from ukernel.testing import route_of, select_route, syscall_events

ANSWERS = "answers.toml"
PROGRAM_PID = 2  # init (pid 1) forks the program first


def first(trace: list[dict], syscall: str) -> dict:
    """The program's first call of ``syscall`` (its syscall_enter)."""
    return syscall_events(trace, syscall, PROGRAM_PID)[0]


def messages(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{service}.{op}" for service, op in pairs]


def fork_child(trace: list[dict]) -> int:
    """The pid the program's first fork made (its syscall_exit's result)."""
    enter = first(trace, "fork")
    return next(e["result"] for e in trace if e["type"] == "syscall_exit" and e.get("msgid") == enter["msgid"])


def failed_message(trace: list[dict]) -> str:
    """The message of the program's fork whose reply is an error."""
    route = select_route(trace, syscall="fork", pid=PROGRAM_PID)
    return next(f"{e['src']}.{e['op']}" for e in route.events if e["type"] == "reply" and e.get("errno"))


def undo_messages(trace: list[dict]) -> list[str]:
    route = select_route(trace, syscall="fork", pid=PROGRAM_PID)
    return [f"{e['dst']}.{e['op']}" for e in route.requests if str(e.get("step", "")).startswith("undo ")]


def cow_copies(trace: list[dict]) -> list[dict]:
    return [e for e in trace if e["type"] == "fault" and e.get("kind") == "cow-copy"]


def cow_copy_message(trace: list[dict]) -> str:
    """The message whose access took the cow-copy fault (the fault event's cause)."""
    cause = cow_copies(trace)[0]["cause"]
    request = next(e for e in trace if e["type"] == "request" and e.get("msgid") == cause)
    return f"{request['dst']}.{request['op']}"


@dataclass(frozen=True)
class Question:
    """One key of answers.toml: the run that answers it, how, and the view that shows it."""

    name: str
    ask: str  # the question, as the handout asks it
    program: list[str]  # argv of `ukernel run`
    answer: Callable[[list[dict]], Any]
    view: str  # where to look: the `ukernel trace` command
    kind: type = list  # list (order matters), set (a list whose order does not), int, str
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. fail

    @property
    def command(self) -> str:
        fail = "".join(f" --fail {k}={v}" for k, v in self.settings.get("fail", {}).items())
        return f"ukernel run{fail} --trace FILE {' '.join(self.program)}"


QUESTIONS = {
    q.name: q
    for q in (
        Question(
            "fork_route",
            "the messages forkdemo's fork sends, in order",
            ["forkdemo"],
            lambda t: messages(route_of(t, "fork", pid=PROGRAM_PID)),
            "ukernel trace route FILE -e fork -p 2",
        ),
        Question(
            "vfork_route",
            "the messages vforkexec's vfork sends, in order",
            ["vforkexec"],
            lambda t: messages(route_of(t, "vfork", pid=PROGRAM_PID)),
            "ukernel trace route FILE -e vfork",
        ),
        Question(
            "pthread_create_route",
            "the messages of the clone that pthreads' first pthread_create makes, in order",
            ["pthreads", "2", "2"],
            lambda t: messages(route_of(t, "clone", pid=PROGRAM_PID)),
            "ukernel trace route FILE -e clone",
        ),
        Question(
            "pthread_create_flags",
            "the CLONE_* flags of that clone (any order)",
            ["pthreads", "2", "2"],
            lambda t: abi.decode_clone_flags(first(t, "clone")["args"]["flags"]),
            "ukernel trace strace FILE -e clone",
            kind=set,
        ),
        Question(
            "exit_route",
            "the messages of the do_exit of forkdemo's fork child, in order",
            ["forkdemo"],
            lambda t: messages(route_of(t, "exit", pid=fork_child(t))),
            "ukernel trace route FILE -e exit -p PID",
        ),
        Question(
            "fail_message",
            "with --fail copy_mm=ENOMEM: the message of forkdemo's fork that fails",
            ["forkdemo"],
            failed_message,
            "ukernel trace route FILE -e fork -p 2",
            kind=str,
            settings={"fail": {"copy_mm": "ENOMEM"}},
        ),
        Question(
            "fail_undo",
            "with --fail copy_mm=ENOMEM: the undo messages that follow it, in order",
            ["forkdemo"],
            undo_messages,
            "ukernel trace route FILE -e fork -p 2",
            settings={"fail": {"copy_mm": "ENOMEM"}},
        ),
        Question(
            "cow_copy_message",
            "in cow: the message under which the copy-on-write copy of a page is made",
            ["cow"],
            cow_copy_message,
            "ukernel trace strace FILE (its --- page fault --- lines)",
            kind=str,
        ),
        Question(
            "cow_copies",
            "in cow: how many pages are copied on write in the whole run",
            ["cow"],
            lambda t: len(cow_copies(t)),
            "ukernel trace strace FILE",
            kind=int,
        ),
        Question(
            "cow_refcount",
            "in cow: the copied frame's refcount before and after the copy, as [before, after]",
            ["cow"],
            lambda t: list(cow_copies(t)[0]["refcount"]),
            "the fault events in FILE (its JSON lines)",
        ),
    )
}


def load_answers(lab) -> dict[str, Any]:
    """answers.toml from the student's DIR; a missing or broken file fails the test in one line."""
    path = lab.dir / ANSWERS
    lab.check(path.is_file(), f"no {ANSWERS} in {lab.dir}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        lab.check(False, f"{ANSWERS} is not TOML: {exc}")
    return {}


def shape_error(q: Question, given: Any) -> str | None:
    """Why ``given`` is not an answer of q's kind, or None."""
    if q.kind is int:
        return None if isinstance(given, int) and not isinstance(given, bool) else "a number"
    if q.kind is str:
        return None if isinstance(given, str) and given else "a 'service.op' string"
    if not isinstance(given, list):
        return "a list"
    if q.kind is list and q.name.endswith("_refcount"):
        return None if len(given) == 2 and all(isinstance(x, int) for x in given) else "[before, after], two numbers"
    return None if all(isinstance(x, str) for x in given) else "a list of strings"


def difference(q: Question, given: Any, truth: Any) -> str | None:
    """What differs, without saying the right answer; None when the answer is right."""
    if given == truth or (q.kind is set and set(given) == set(truth)):
        return None
    if q.kind is set:
        wrong = sorted(set(given) - set(truth))
        if wrong:
            return f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not among them"
        return f"the trace has {len(set(truth))}, your answer {len(set(given))}"
    if q.kind is not list:
        return f"{given!r} is not what the trace shows"
    for i, (mine, real) in enumerate(zip(given, truth, strict=False)):
        if mine != real:
            return f"item {i + 1} of {len(truth)} ({mine!r}) is not what the trace has there"
    return f"the trace has {len(truth)} items, your answer {len(given)}"


def where(lab, name: str) -> str:
    """'answers.toml:7: fork_route' -- the line of the answer, for the FAIL line."""
    lines = (lab.dir / ANSWERS).read_text().splitlines()
    number = next((i for i, line in enumerate(lines, 1) if re.match(rf"\s*{name}\s*=", line)), None)
    return f"{ANSWERS}:{number}: {name}" if number else name


def check(lab, *names: str) -> None:
    """Grade the questions ``names``: each program is run once, fresh, and each answer compared."""
    answers = load_answers(lab)
    runs: dict[str, list[dict]] = {}
    for name in names:
        q = QUESTIONS[name]
        given = answers.get(name)
        lab.check(given not in (None, [], ""), f"{name}: not answered yet in {ANSWERS} ({q.ask})")
        shape = shape_error(q, given)
        lab.check(shape is None, f"{where(lab, name)}: the answer must be {shape}, not {given!r}")
        key = q.command
        if key not in runs:
            result = lab.run(f"/bin/{q.program[0]}", q.program, **q.settings)
            if "fail" in q.settings:
                lab.crash = ""  # the program dies of the injected errno: that is the question, not a failure
            lab.clean(result)
            runs[key] = result.trace
        why = difference(q, given, q.answer(runs[key]))
        lab.check(why is None, f"{where(lab, name)}: {why}; run `{q.command}` and look with `{q.view}`")


def check_well_formed(lab) -> None:
    """answers.toml parses, names only the questions, and each answer given has its question's shape."""
    answers = load_answers(lab)
    unknown = sorted(set(answers) - set(QUESTIONS))
    lab.check(not unknown, f"{ANSWERS}: no question {', '.join(unknown)}; the questions are {', '.join(QUESTIONS)}")
    for name, given in answers.items():
        shape = shape_error(QUESTIONS[name], given) if given not in ([], "") else None
        lab.check(shape is None, f"{where(lab, name)}: the answer must be {shape}, not {given!r}")
