"""``ukernel explore`` on the ports of MOSAIC's examples, beside MOSAIC's own ``--check``.

    python bench/explore.py [--mosaic DIR] [--time-limit S] [NAME...]

For each example: ukernel's runs, states, states/s, outcomes and whether the
search completed; then MOSAIC's ``--check`` on its own example in the same
run, if DIR/mosaic.py and DIR/examples exist (a clone of github.com/jiangyy/mosaic,
outside this repository; skipped otherwise), with its states, states/s and
distinct final outputs, and the ratio of states per second. The host's share is
printed too: user and system ms of CPU and minor page faults per state, and faults
per fork of the tree (docs/explore.md, "What the host kernel costs"). Not in ``make test``:
``make explore-bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ukernel  # noqa: E402

#: name -> (ukernel program, argv, MOSAIC example, its configuration)
EXAMPLES = {
    "hello": ("forkhello", [], "hello", ""),
    "fork-buf N=1": ("forkbuf", ["1"], "fork-buf", "N=1"),
    "fork-buf N=2": ("forkbuf", ["2"], "fork-buf", "N=2"),
    "parallel-inc N=2 T=2": ("parinc", ["2", "2"], "parallel-inc", "N=2; T=2"),
    "tocttou P=2": ("tocttou", [], "tocttou", "P=2"),
    "cond-var": ("condvar", ["2", "1"], "cond-var", "N=1; T_p=1; T_c=2"),
    "fork-buf N=3": ("forkbuf", ["3"], "fork-buf", "N=3"),
    "parallel-inc N=3 T=3": ("parinc", ["3", "3"], "parallel-inc", "N=3; T=3"),
}


def host_usage() -> tuple[float, float, int]:
    """User and system CPU seconds and minor page faults of this process and of every child it
    has waited for: the fork tree's processes are its children's children, each waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime, me.ru_minflt + kids.ru_minflt


def ours(program: str, argv: list[str], time_limit: float, jobs: int = 1, **how: object) -> dict:
    """One exploration, with what the host kernel charged for it: per state, CPU (user and
    system apart: system time is mostly fork and copy-on-write faults) and minor faults."""
    before = host_usage()
    started = time.perf_counter()
    found = ukernel.explore(program, [program, *argv], time_limit=time_limit, jobs=jobs, **how)
    seconds = time.perf_counter() - started
    user, system, faults = (after - was for after, was in zip(host_usage(), before, strict=True))
    states = max(found.states, 1)
    return {
        "runs": found.runs,
        "states": found.states,
        "forks": found.forks,
        "seconds": seconds,
        "outcomes": len(found.outcomes),
        "deadlocks": len(found.deadlocks),
        "complete": found.complete,
        "user_ms_per_state": 1000 * user / states,
        "sys_ms_per_state": 1000 * system / states,
        "faults_per_state": faults / states,
        "faults_per_fork": faults / max(found.forks, 1),
    }


def mosaic(directory: Path, example: str, config: str, time_limit: float) -> dict | None:
    """MOSAIC's --check on its example; None when it is not there."""
    tool, source = directory / "mosaic.py", directory / "examples" / f"{example}.py"
    if not tool.is_file() or not source.is_file():
        return None
    program = f"{config}\n\n{source.read_text()}"
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(tool), "--check", "/dev/stdin"],
            input=program.encode(),
            capture_output=True,
            timeout=time_limit,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return {"states": None, "seconds": time_limit, "outputs": None}
    seconds = time.perf_counter() - started
    graph = json.loads(done.stdout)
    ends = [v for v in graph["vertices"] if not v["choices"]]
    return {"states": len(graph["vertices"]), "seconds": seconds, "outputs": len({v["stdout"] for v in ends})}


#: figures(): name -> (example, what is compared, ukernel's keywords, the baseline's)
FIGURES = {
    "explore states/s vs MOSAIC --check, hello": ("hello", "mosaic", {}, None),
    "explore states/s vs MOSAIC --check, fork-buf N=1": ("fork-buf N=1", "mosaic", {}, None),
    "explore fork tree vs replay, every path of fork-buf N=1 (states/s)": (
        "fork-buf N=1",
        "ukernel",
        {"reduction": False, "cache": False},
        {"strategy": "bfs", "reduction": False, "cache": False},
    ),
}


def figures(quick: bool = False) -> list[dict]:
    """The bench protocol's figures: states per second as ratios against a baseline measured
    interleaved in the same run (MOSAIC's --check from /tmp/mosaic or $MOSAIC_DIR, skipped if
    absent; or the replaying search), min and median of 5."""
    directory = Path(os.environ.get("MOSAIC_DIR", "/tmp/mosaic"))
    out = []
    for figure, (name, against, how, base) in FIGURES.items():
        program, argv, example, config = EXAMPLES[name]
        ratios = []
        for _ in range(5):
            u = ours(program, argv, 60.0, **how)
            if against == "mosaic":
                m = mosaic(directory, example, config, 60.0)
                if m is None or m["states"] is None:
                    break
                theirs = m["states"] / m["seconds"]
            else:
                b = ours(program, argv, 60.0, **base)
                theirs = b["states"] / b["seconds"]
            ratios.append((u["states"] / u["seconds"]) / theirs)
        if ratios:
            ratios.sort()
            target = ">= 10x" if against == "mosaic" else "> 1x"
            out.append(
                {"figure": figure, "min": ratios[0], "median": ratios[len(ratios) // 2], "target": target, "unit": "x"}
            )
        if quick and out:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"examples (default: all): {', '.join(EXAMPLES)}")
    parser.add_argument("--mosaic", default=os.environ.get("MOSAIC_DIR", "/tmp/mosaic"), help="a MOSAIC clone")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per example and tool")
    parser.add_argument("--jobs", type=int, default=1, help="ukernel explore --jobs")
    parser.add_argument("--no-reduction", action="store_true", help="state caching instead of DPOR")
    parser.add_argument("--figures", action="store_true", help="print figures() (the bench protocol) and exit")
    ns = parser.parse_args()
    if ns.figures:
        for f in figures():
            print(f"{f['figure']:<70} min {f['min']:6.2f}x  median {f['median']:6.2f}x  target {f['target']}")
        return 0
    print(
        f"{'example':<22} {'runs':>6} {'states':>7} {'st/s':>6} {'outcomes':>8} {'complete':>8}"
        f" {'usr/st':>6} {'sys/st':>6} {'flt/st':>6} {'flt/fork':>8}   MOSAIC: states st/s outputs  ratio"
    )
    for name in ns.names or EXAMPLES:
        program, argv, example, config = EXAMPLES[name]
        u = ours(program, argv, ns.time_limit, ns.jobs, reduction=not ns.no_reduction)
        rate = u["states"] / u["seconds"]
        line = f"{name:<22} {u['runs']:>6} {u['states']:>7} {rate:>6.0f} {u['outcomes'] + u['deadlocks']:>8} {u['complete']!s:>8}"
        line += f" {u['user_ms_per_state']:>6.2f} {u['sys_ms_per_state']:>6.2f} {u['faults_per_state']:>6.0f} {u['faults_per_fork']:>8.0f}"
        m = mosaic(Path(ns.mosaic), example, config, ns.time_limit)
        if m is None:
            line += "   (no MOSAIC at --mosaic)"
        elif m["states"] is None:
            line += f"   timeout (> {ns.time_limit:g} s)"
        else:
            theirs = m["states"] / m["seconds"]
            line += f"   {m['states']:>6} {theirs:>4.0f} {m['outputs']:>7}  {rate / theirs:>5.2f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
