"""What the fork lab's tests share: the flag combinations, the clones program, and the checks.

Every check compares the student's walker with the built-in one (CopyProcess in
ukernel/kernel/fork.py) on a fresh run, so nothing here is a hard-coded route.
"""

from __future__ import annotations

from pathlib import Path

import ukernel
from ukernel import abi
from ukernel.kernel.fork import validate_flags
from ukernel.testing import select_route, syscall_events

#: The flags whose bit picks a row's op (share or copy), and the two that send
#: copy_namespaces; every valid combination of them is graded.
FLAGS = (
    abi.CLONE_FILES,
    abi.CLONE_FS,
    abi.CLONE_SIGHAND,
    abi.CLONE_THREAD,
    abi.CLONE_VM,
    abi.CLONE_SYSVSEM,
    abi.CLONE_NEWNS,
    abi.CLONE_NEWPID,
)
PROGRAM = "/bin/clones"
SOURCE = Path(__file__).with_name("clones.py").read_bytes()
SHOWN = 3  # wrong clones named in a failure, then "and N more"


def valid(flags: int) -> bool:
    try:
        validate_flags(flags)
    except OSError:
        return False
    return True


def combos() -> list[int]:
    """Every combination of FLAGS that copy_process's checks let through (84 of 256)."""
    words = [sum(bit for i, bit in enumerate(FLAGS) if mask >> i & 1) for mask in range(1 << len(FLAGS))]
    return [flags for flags in words if valid(flags)]


def names(flags: int) -> str:
    return "|".join(abi.decode_clone_flags(flags)) or "0"


def run_clones(lab, flags: list[int], *, builtin: bool = False, **settings) -> ukernel.Result:
    """The clones program over ``flags``: with the student's walker, or (builtin) Linux's own."""
    argv = ["clones", *map(hex, flags)]
    files = {PROGRAM: SOURCE}
    if builtin:
        return ukernel.run(PROGRAM, argv, files=files, **settings)
    return lab.run(PROGRAM, argv, files=files, **settings)


def outcomes(result: ukernel.Result, flags: list[int]) -> dict[int, str]:
    """flags -> 'ok' or the errno name, from the program's output; a clone it never reported is absent."""
    found: dict[int, str] = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        word, _, outcome = line.partition(" ")
        if word.startswith("0x") and outcome:
            found[int(word, 16)] = outcome
    return {f: found[f] for f in flags if f in found}


def bounded(items: list[str]) -> str:
    more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def why_not_run(result: ukernel.Result) -> str:
    """Why the program did not say what it should: an oops (with its file:line), the run's error, or its last line."""
    oopses = [p for p in result.problems if p.startswith("oops")]
    tail = result.stdout.decode(errors="replace").strip().splitlines()[-1:]
    return (oopses or [result.error] * bool(result.error) or tail or ["no output"])[0][:300]


def no_crash(lab, result: ukernel.Result) -> None:
    """The walk did not crash: else the oops, with the file:line it happened at, is the FAIL."""
    oopses = [p for p in result.problems if p.startswith("oops")]
    lab.check(not oopses, f"the walk crashed: {why_not_run(result)}")


def check_all_fail(lab, step: str, errno: str = "ENOMEM") -> None:
    """``--fail STEP=ERRNO``: every clone fails with that errno, and nothing leaks."""
    flags = combos()
    result = run_clones(lab, flags, fail={step: errno})
    got = outcomes(result, flags)
    lab.check(got, f"with --fail {step}={errno} the clones program reported nothing: {why_not_run(result)}")
    wrong = [f"clone({names(f)}) gave {got.get(f, 'nothing')}" for f in flags if got.get(f) != errno]
    if len(got) < len(flags):
        wrong.append(f"then: {why_not_run(result)}")
    lab.check(not wrong, f"with --fail {step}={errno}, every clone must fail with {errno}: {bounded(wrong)}")
    lab.clean(result)


def check_fail_at(lab, *steps: str) -> None:
    for step in steps:
        check_all_fail(lab, step)


def clone_routes(result: ukernel.Result) -> list[list[tuple[str, str, str]]]:
    """(dst, op, step) of the kernel's requests, for each clone of the program, in order."""
    trace = result.trace
    calls = syscall_events(trace, "clone")
    pid = calls[0]["pid"] if calls else None
    routes = []
    for nth in range(len(calls)):
        route = select_route(trace, syscall="clone", nth=nth, pid=pid)
        routes.append([(e["dst"], e["op"], e.get("step", "")) for e in route.requests if e["src"] == "kernel"])
    return routes


def compare_routes(lab, flags: list[int], what: str, pick, **settings) -> None:
    """Each clone's route, reduced by ``pick``, is the built-in walker's on the same run."""
    mine, linux = run_clones(lab, flags, **settings), run_clones(lab, flags, builtin=True, **settings)
    no_crash(lab, mine)
    got, want = clone_routes(mine), clone_routes(linux)
    lab.check(len(got) == len(want), f"the program made {len(got)} clone calls, not {len(want)}: {why_not_run(mine)}")
    wrong = [
        f"clone({names(f)}) {what} {pick(g)}, Linux's {pick(w)}"
        for f, g, w in zip(flags, got, want, strict=True)
        if pick(g) != pick(w)
    ]
    lab.check(not wrong, bounded(wrong))
    lab.clean(mine)


def messages(route: list[tuple[str, str, str]]) -> list[str]:
    """A route as 'service.op' strings."""
    return [f"{dst}.{op}" for dst, op, _ in route]


def undo_steps(route: list[tuple[str, str, str]]) -> list[str]:
    """The route's unwind: its 'undo STEP' labels, in the order they were sent."""
    return [step for _, _, step in route if step.startswith("undo ")]
