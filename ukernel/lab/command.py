"""``ukernel lab list|start|grade``: the lab kit's commands (docs/labs.md), apart from cli.py's
run, serve, flags and trace; ukernel/cli.py adds this parser to its own."""

from __future__ import annotations

import argparse
import sys


def cmd_lab_list(ns: argparse.Namespace) -> int:
    from . import list_labs

    labs = list_labs()
    width = max(len(spec.name) for spec in labs)
    for spec in labs:
        print(f"{spec.name:<{width}}  {spec.status:<6}  {spec.title}")
    return 0


def cmd_lab_start(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from . import LabError, start

    directory = Path(ns.dir or ns.name)
    try:
        written = start(ns.name, directory, force=ns.force, solution=ns.solution)
    except LabError as exc:
        print(f"ukernel: lab start: {exc}", file=sys.stderr)
        return 1
    print(f"ukernel: lab {ns.name}: wrote {len(written)} files into {directory}; read {directory / 'handout.md'}")
    print(f"ukernel: grade it with: ukernel lab grade {ns.name} {directory}")
    return 0


def cmd_lab_grade(ns: argparse.Namespace) -> int:
    import json

    from . import LabError, grade

    def show(outcome) -> None:
        print(outcome.line(), flush=True)

    try:
        report = grade(
            ns.name,
            ns.dir,
            reference=ns.reference,
            hidden=ns.hidden,
            jobs=ns.jobs,
            pattern=ns.k,
            package_tests=ns.package_tests,
            progress=show,
        )
    except LabError as exc:
        print(f"ukernel: lab grade: {exc}", file=sys.stderr)
        return 2
    print(report.score_line())
    if ns.json:
        with open(ns.json, "w") as out:
            json.dump(report.gradescope(), out, indent=2)
    return 0 if report.full_marks else 1


def add_lab_parser(sub: argparse._SubParsersAction) -> None:
    """``ukernel lab list|start|grade``: the course kit (docs/labs.md)."""
    p_lab = sub.add_parser("lab", help="labs: list them, start one (handout, skeleton, tests), grade it")
    labs = p_lab.add_subparsers(dest="lab_command", required=True)
    labs.add_parser("list", help="one line per lab: name, status, title").set_defaults(func=cmd_lab_list)
    p_start = labs.add_parser("start", help="write a lab's handout, skeleton files and visible tests into DIR")
    p_start.add_argument("name")
    p_start.add_argument("dir", nargs="?", help="where (default ./NAME)")
    p_start.add_argument("--force", action="store_true", help="overwrite the files already there")
    p_start.add_argument("--solution", action="store_true", help="write the reference solution (for teachers)")
    p_start.set_defaults(func=cmd_lab_start)
    p_grade = labs.add_parser("grade", help="run a lab's tests on DIR, each in its own process: OK/FAIL lines, Score")
    p_grade.add_argument("name")
    p_grade.add_argument("dir", nargs="?", help="the student's directory (default ./NAME)")
    p_grade.add_argument("--json", metavar="FILE", help="write a Gradescope results.json")
    p_grade.add_argument("--jobs", "-j", type=int, default=1, help="tests run at once (default 1)")
    p_grade.add_argument("--hidden", action=argparse.BooleanOptionalAction, default=True, help="run the hidden tests")
    p_grade.add_argument("-k", metavar="PATTERN", help="only the tests whose name contains PATTERN")
    p_grade.add_argument("--reference", action="store_true", help="grade the lab's own solution (teachers, CI)")
    p_grade.add_argument(
        "--package-tests", action="store_true", help="run the lab's visible tests as shipped, not DIR/tests (graders)"
    )
    p_grade.set_defaults(func=cmd_lab_grade)
