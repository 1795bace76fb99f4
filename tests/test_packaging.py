"""Packaging: a wheel installed into a fresh venv runs a program from another directory.

The wheel must carry everything a run needs that is not Python modules of
ukernel itself: the userland programs (/bin), the views' CSS and JS, py.typed.
The fresh venv takes the dependencies (trio, msgpack, structlog, cryptography) from this
one's site-packages through a .pth line, not from the network; that line only
adds a path, so this venv's editable ukernel is not seen there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import ukernel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the tracked files (no build/ left in the tree)."""
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    # a quiet build says nothing: every package found (the labs' folders too), none "absent
    # from the packages configuration", no "installing as data is deprecated"
    assert built.stdout + built.stderr == "", (built.stdout + built.stderr)[:2000]
    return next(out.glob("ukernel-*.whl"))


def test_the_wheel_carries_the_package_data(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ukernel/py.typed" in names
    assert "userland/hello.py" in names and "userland/init.py" in names
    assert "ukernel/__main__.py" in names
    assert "ukernel/trace/views/html.css" in names and "ukernel/trace/views/html.js" in names
    assert "ukernel/lab/runner.py" in names and "ukernel/labs/util/lab.toml" in names
    assert {"ukernel/labs/util/handout.md", "ukernel/labs/util/solution/primes.py"} <= names
    assert {"ukernel/labs/sched/tests/spinners.py", "ukernel/labs/sched/hidden/test_sched_hidden.py"} <= names
    assert "ukernel/labs/trace/solution/answers.toml" in names
    tracked = subprocess.run(["git", "ls-files", "ukernel/labs"], cwd=ROOT, capture_output=True, text=True).stdout
    assert set(tracked.split()) <= names  # every file of every lab
    assert "services/sched/loadavg.py" in names and "ukernel/kernel/proc_misc.py" in names
    assert not {n for n in names if n.startswith(("tests/", "bench/", "docs/"))}


def test_an_installed_wheel_runs_hello_from_another_directory(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)], check=True
    )
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy, not a work tree's

    def installed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], cwd=elsewhere, capture_output=True, text=True, env=env)

    where = installed("-c", "import ukernel; print(ukernel.__file__)")
    assert where.stdout.startswith(site), where.stdout + where.stderr
    run = installed("-m", "ukernel", "run", "hello")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello from pid 2 (parent 1)\n"
    version = installed("-m", "ukernel", "--version")
    assert version.stdout.strip() == f"ukernel {ukernel.__version__}"
    lab = installed("-m", "ukernel", "lab", "list")  # the labs came with the wheel
    assert lab.returncode == 0 and "util" in lab.stdout, lab.stdout + lab.stderr


def test_the_readme_links_only_inside_the_repository():
    """The README is the package's long description too: each link is a relative path
    to a file or folder of the repository, so it works in a checkout, on any host."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert targets and not [t for t in targets if re.match(r"[a-z]+:", t) or t.startswith(("/", "../"))]
    missing = {t for t in targets if not (ROOT / t).exists()}
    assert missing == set()
    assert "https://" not in text and "http://" not in text
    assert "(examples/cluster.toml)" in text and "(docs/performance.md)" in text
