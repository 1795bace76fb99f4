"""Benchmark: fork costs in ukernel against a C fork loop, as ratios.

    .venv/bin/python bench/fork.py [--quick]

Every round runs, back to back: an empty run (boot and shutdown: what every other run
less this is the program's cost), fork()+exit+wait loops of 100 and of 1,000 (the child
of fork i replays the parent's 2*i journal entries, so the long loop is replay's
figure), the loop of 100 with a SIGCHLD handler that reaps (each delivery is journaled
and replayed too), clone(SIGCHLD, fn)+exit+wait x100 (no replay: the child runs ``fn``
on a copy of the namespace), and the same fork/_exit/waitpid loop as a host C program
(if ``cc`` exists; its own clock, wall time per fork, as its children run elsewhere),
and one replayed entry alone: the loop's program answered from a journal of 10^6 entries
with no kernel (what the child of a fork in a loop spends per iteration it re-runs).
ukernel's figures are thread CPU time (bench/common.py run_cpu), trace off. A ratio to
C is C's time per fork over ukernel's (1.0: as fast as C).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from common import CLONE, FORK, FORK_HANDLED, c_program, figure, finish, machine, print_figures, ratios, rounds, run_cpu

from ukernel.kernel.watchdog import Watchdog
from ukernel.user.libc import Sys
from ukernel.user.replay import Replay, replaying

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) _exit(0);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "waitpid failed\n");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.9f\n", secs / n);
    return 0;
}
"""

SHORT = 100  # iterations of the short loops
C_FORKS = 1000  # forks of one C loop

PROBLEMS: list[str] = []  # everything odd a ukernel run reported
REPLAYED = 10**6  # entries of the replay timed alone


def replayed_entry(entries: int = REPLAYED) -> float:
    """Thread CPU seconds per entry of FORK's main replaying a journal of ``entries`` (its
    forks and waits, then the fork returning 0), answered in libc: no kernel, no trio."""
    namespace: dict = {}
    exec(compile(FORK, "/bin/bench", "exec"), namespace)
    journal = [(1, "fork", True, 3), (1, "wait4", True, [3, 0, {}])] * (entries // 2) + [(1, "fork", True, 0)]
    ended: list[bool] = []
    replay = Replay([(journal, len(journal))], Watchdog(limit=0), lambda: ended.append(True))
    token = replaying.set(replay)
    try:
        main = namespace["main"](Sys(None), ["bench", str(entries)])  # (a kernel is never asked)
        started = time.thread_time()
        try:
            main.send(None)  # (never suspends: every call is answered)
        except StopIteration:
            pass
        elapsed = time.thread_time() - started
    finally:
        replaying.reset(token)
    if ended != [True]:
        PROBLEMS.append("replayed_entry: the replay did not end at the journal's last entry")
    return elapsed / len(journal)


def figures(quick: bool = False) -> list[dict]:
    """The fork figures: 1,000 fork() in a loop (seconds; 300 with ``quick``), and ratios to C."""
    long = 300 if quick else 1000
    with c_program(C_SOURCE, "cfork") as c_run:
        measures: dict[str, Callable[[], float]] = {
            "empty": lambda: run_cpu(FORK, ["0"], PROBLEMS, trace=False),
            "fork100": lambda: run_cpu(FORK, [str(SHORT)], PROBLEMS, trace=False),
            "handled100": lambda: run_cpu(FORK_HANDLED, [str(SHORT)], PROBLEMS, trace=False),
            "clone100": lambda: run_cpu(CLONE, [str(SHORT)], PROBLEMS, trace=False),
            "fork_long": lambda: run_cpu(FORK, [str(long)], PROBLEMS, trace=False),
            "entry": lambda: replayed_entry(REPLAYED // 10 if quick else REPLAYED),
        }
        if c_run is not None:
            measures["c"] = lambda: float(c_run(C_FORKS))
        s = rounds(measures)
    empty = s["empty"]
    per = {
        name: [(t - e) / n for t, e in zip(s[name], empty, strict=True)]
        for name, n in (("fork100", SHORT), ("handled100", SHORT), ("clone100", SHORT), ("fork_long", long))
    }
    loop = [t - e for t, e in zip(s["fork_long"], empty, strict=True)]
    out = [
        figure(f"{long:,} fork() in a loop (replay), CPU seconds", loop, "<= 1.5" if long == 1000 else "", unit=" s"),
        figure(
            "one replayed entry (fork loop, answered in libc), CPU microseconds",
            [t * 1e6 for t in s["entry"]],
            unit=" us",
        ),
        figure(
            f"fork() in a loop of {SHORT} with a reaping SIGCHLD handler / without",
            ratios(per["handled100"], per["fork100"]),
        ),
    ]
    if "c" in s:
        out += [
            figure(
                f"fork()+exit+wait at N={SHORT} in a loop / C, tracing off", ratios(s["c"], per["fork100"]), ">= 0.35"
            ),
            figure(
                "clone(fn)+exit+wait / C fork+_exit+waitpid, tracing off", ratios(s["c"], per["clone100"]), ">= 0.4"
            ),
            figure(f"fork() in a loop of {long:,} (replay), per fork / C", ratios(s["c"], per["fork_long"])),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a loop of 300 forks, not 1,000")
    opts = parser.parse_args(argv)
    wall = time.perf_counter()
    print(machine())
    print_figures(figures(opts.quick), "fork (thread CPU time, interleaved rounds; a ratio to C: C's time / ukernel's)")
    return finish(wall, PROBLEMS)


if __name__ == "__main__":
    sys.exit(main())
