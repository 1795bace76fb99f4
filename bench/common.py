"""What every benchmark shares: the programs timed, best-of timing, the machine line, and a C baseline."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import trio

# --- the programs timed (argv[1]: how many times) --------------------------------------------
GETPID = b"""
async def main(sys, argv):
    for _ in range(int(argv[1])):
        await sys.getpid()
    return 0
"""

FORK = b"""
async def main(sys, argv):
    for _ in range(int(argv[1])):
        pid = await sys.fork()
        if pid == 0:
            return 0
        await sys.waitpid(pid, 0)
    return 0
"""

FORK_HANDLED = b"""
from ukernel.abi import SIGCHLD

reaped = 0


async def on_chld(sys, sig):
    global reaped
    await sys.waitpid(-1, 0)
    reaped += 1


async def main(sys, argv):
    await sys.sigaction(SIGCHLD, on_chld)
    for i in range(int(argv[1])):
        pid = await sys.fork()
        if pid == 0:
            return 0
        while reaped <= i:
            try:
                await sys.pause()
            except InterruptedError:
                pass
    return 0
"""

CLONE = b"""
from ukernel.abi import SIGCHLD


def child(sys, arg):
    return 0


async def main(sys, argv):
    for _ in range(int(argv[1])):
        pid = await sys.clone(SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
    return 0
"""


def best(fn: Callable[[], float], repeats: int) -> float:
    """The least of a few timings: noise only ever adds time."""
    return min(fn() for _ in range(repeats))


def machine(extra: str = "") -> str:
    """One line that says what the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " " + line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {platform.python_version()} ({platform.python_implementation()}), {os.cpu_count()} cpus{model}, "
        f"{platform.system()} {platform.release()} {platform.machine()}, trio {trio.__version__}, "
        f"msgpack {'.'.join(map(str, msgpack.version))}{extra}, load {load}"
    )


@contextmanager
def c_program(source: str, name: str) -> Iterator[Callable[..., str] | None]:
    """Compile a C baseline with cc -O2; yields run(*args) -> stdout, or None without cc."""
    cc = shutil.which("cc")
    if cc is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp, f"{name}.c"), Path(tmp, name)
        src.write_text(source)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)

        def run(*args: object) -> str:
            return subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True).stdout

        yield run


def finish(started: float, problems: list[str]) -> int:
    """The closing lines: total time, then anything odd a ukernel run reported (exit 1)."""
    print(f"total {time.perf_counter() - started:.1f} s")
    if not problems:
        return 0
    print(f"ukernel problems ({len(problems)}):")
    for problem in dict.fromkeys(problems):
        print(f"  {problem}")
    return 1
