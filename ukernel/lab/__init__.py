"""Labs: handouts, skeletons made from reference solutions, and a gradelib-style grader.

A lab is ``ukernel/labs/NAME/`` (lab.toml, handout.md, solution/, tests/,
hidden/); docs/labs.md says how to write one. ``ukernel lab list|start|grade``
is the command line; from Python:

    from ukernel.lab import grade
    report = grade("util", "mylab", jobs=2)
    report.score, report.max_score, report.lines(), report.gradescope()

catalog.py finds labs and strips skeletons, context.py is what a test sees
(``@test``, ``Lab``), runner.py runs one test in its own process, grade.py
runs them all, explain.py turns a failure into one line. Imports only
ukernel's public face (and ``userland`` to know its programs).
"""

from .catalog import LabError, LabSpec, list_labs, load_lab, start
from .context import CheckFailed, Lab, test
from .grade import Outcome, Report, grade

__all__ = [
    "CheckFailed",
    "Lab",
    "LabError",
    "LabSpec",
    "Outcome",
    "Report",
    "grade",
    "list_labs",
    "load_lab",
    "start",
    "test",
]
