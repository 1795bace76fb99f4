"""The labs shipped in ``ukernel/labs/NAME/``: their lab.toml, and the skeletons made from the solutions.

A lab's reference solution is the one source of truth: the student's copy is
the same file with every ``# BEGIN SOLUTION`` .. ``# END SOLUTION`` region
replaced by its ``# STUB:`` lines (or by a ``raise NotImplementedError``),
like nbgrader's. A lab the teacher got wrong (no lab.toml, unbalanced
markers, a student file missing from solution/) is a ``LabError``: one line
naming the file and line.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
LAB_PATH = "UKERNEL_LAB_PATH"  # more folders of labs (a course's own), searched before the shipped ones
STATUSES = ("ready", "coming")
DEFAULT_TIMEOUT = 60  # seconds per test unless lab.toml or the test says otherwise

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
STUB = re.compile(r"^\s*# STUB: ?(.*)$")


class LabError(Exception):
    """A lab that cannot be used as asked (unknown name, a teacher's mistake, a DIR in the way): one line."""


@dataclass
class LabSpec:
    """One lab as lab.toml describes it."""

    name: str
    root: Path  # ukernel/labs/NAME
    title: str
    summary: str = ""
    status: str = "ready"
    files: list[str] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    points: dict[str, float] = field(default_factory=dict)  # test name -> points, over the decorator's
    plug: dict[str, Any] = field(default_factory=dict)

    @property
    def solution(self) -> Path:
        return self.root / "solution"

    def tests_dir(self, hidden: bool) -> Path:
        return self.root / ("hidden" if hidden else "tests")


KNOWN_KEYS = {"title", "summary", "status", "files", "timeout", "points", "plug"}


def lab_dirs() -> list[Path]:
    """Where labs are looked for: $UKERNEL_LAB_PATH's folders, then ukernel/labs."""
    extra = [Path(p) for p in os.environ.get(LAB_PATH, "").split(os.pathsep) if p]
    return [*extra, LABS_DIR]


def _find(name: str) -> Path | None:
    return next((d / name for d in lab_dirs() if (d / name / "lab.toml").is_file()), None)


def lab_names() -> list[str]:
    found = {p.name for d in lab_dirs() if d.is_dir() for p in d.iterdir() if (p / "lab.toml").is_file()}
    return sorted(found)


def list_labs() -> list[LabSpec]:
    """Every shipped lab, by name."""
    return [load_lab(name) for name in lab_names()]


def load_lab(name: str) -> LabSpec:
    """The lab called ``name``; a ready lab's solution files are checked for balanced markers."""
    root = _find(name) if re.fullmatch(r"[a-z][a-z0-9_-]*", name) else None
    if root is None:
        raise LabError(f"no lab {name!r}; labs are {', '.join(lab_names())}")
    toml = root / "lab.toml"
    try:
        data = tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{toml}: not TOML: {exc}") from None
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown or "title" not in data or data.get("status", "ready") not in STATUSES:
        raise LabError(f"{toml}: needs a title and status in {STATUSES}; unknown keys: {', '.join(unknown) or 'none'}")
    spec = LabSpec(name=name, root=root, **data)
    if spec.status == "ready":
        if not (root / "handout.md").is_file():
            raise LabError(f"lab {name} is ready but has no handout.md")
        for file in spec.files:
            skeleton(spec.solution / file)  # a teacher's marker mistake shows at load, not in a student's copy
    return spec


def skeleton(path: Path) -> str:
    """The student's copy of one solution file: every SOLUTION region replaced by its STUB lines."""
    if not path.is_file():
        raise LabError(f"{path}: listed in lab.toml's files but not in solution/")
    out: list[str] = []
    region: tuple[int, str, list[str]] | None = None  # (line of BEGIN, its indentation, STUB lines)
    for number, line in enumerate(path.read_text().splitlines(keepends=True), 1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if region is not None:
                raise LabError(f"{path.name}:{number}: BEGIN SOLUTION inside the region opened at line {region[0]}")
            region = (number, begin.group(1), [])
        elif end:
            if region is None:
                raise LabError(f"{path.name}:{number}: END SOLUTION without a BEGIN SOLUTION")
            out += _replacement(path.name, len(out) + 1, region[1], region[2])
            region = None
        elif region is not None:
            stub = STUB.match(line)
            if stub:
                region[2].append(stub.group(1))
        else:
            out.append(line)
    if region is not None:
        raise LabError(f"{path.name}:{region[0]}: BEGIN SOLUTION never ended (no END SOLUTION)")
    return "".join(out)


def _replacement(name: str, line: int, indent: str, stubs: list[str]) -> list[str]:
    """A region's STUB lines at the BEGIN's indentation, or a raise naming its line in the student's copy."""
    if not stubs:
        stubs = [f'raise NotImplementedError("{name}:{line}: your code here")']
    return [f"{indent}{stub}\n" for stub in stubs]


def start(name: str, directory: Path, *, force: bool = False, solution: bool = False) -> list[Path]:
    """Write the handout, the student's files (skeletons, or the reference with ``solution``) and the
    visible tests into ``directory``; refuse to overwrite a student's file unless ``force``."""
    spec = load_lab(name)
    if spec.status != "ready":
        raise LabError(f"lab {name} is coming, not ready yet: {spec.title}")
    wanted = {directory / "handout.md": (spec.root / "handout.md").read_text()}
    for file in spec.files:
        source = spec.solution / file
        wanted[directory / file] = source.read_text() if solution else skeleton(source)
    visible = spec.tests_dir(hidden=False)
    for test in sorted(visible.glob("*.py")) if visible.is_dir() else ():
        wanted[directory / "tests" / test.name] = test.read_text()
    there = [p for p in wanted if p.exists()]
    if there and not force:
        shown = ", ".join(str(p.relative_to(directory)) for p in there[:3]) + (" ..." if len(there) > 3 else "")
        raise LabError(f"{directory} already has {shown}: not overwritten (--force to replace them)")
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(wanted)
