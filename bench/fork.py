"""Benchmark: fork costs in ukernel against a C fork loop, as ratios.

    .venv/bin/python bench/fork.py [--quick]

This script owns the figures of issue 18 that compare ukernel's fork path with C's
(bench/ipc.py compares the fast path with the inbox path, not with C). Every round
runs, back to back: the C fork/_exit/waitpid loop (if ``cc`` exists), clone(SIGCHLD,
fn)+exit+wait x300 and fork()+exit+wait x100 timed inside the program, an empty run
(boot and shutdown: what every other run less this is the program's cost), a loop of
1,000 fork() (the child of fork i replays the parent's 2*i journal entries, so the long
loop is replay's figure), the loop of 100 with a SIGCHLD handler that reaps (each
delivery is journaled and replayed too), then the C loop again.

How each side is timed, and why:

- ukernel's clone and fork loops: the program reads the thread's CPU clock
  (``time.thread_time``) before and after its loop and prints the CPU seconds per
  iteration. The kernel and every service are trio tasks of that one thread, so the
  clock sees all of the kernel's work and nothing else; nothing is subtracted (a whole
  run's time less an empty run's carries both runs' noise, and the program's exec and
  exit). Trace off.
- C: its wall time per fork (issue 18's baseline; its children run on the other CPU,
  so its CPU clock would miss them), which is what load moves most: a busy machine
  delays the child's first run and the parent's wake-up. So the C program times
  ``C_BATCHES`` batches of ``C_FORKS`` forks and prints the fastest batch's time per
  fork (noise only ever adds time), and each round runs it before and after the
  ukernel loops and takes the faster: a load spike during one C run does not make that
  round's ratio. It also prints its CPU time per fork (parent and children, getrusage),
  shown beside the table as a check that the wall time is not inflated.

A ratio to C is C's time per fork over ukernel's (1.0: as fast as C). The 1,000-fork
loop and the handled/unhandled ratio are whole runs less the empty run (bench/common.py
run_cpu): they are not per-iteration timers, as a replaying child re-runs the timer too.
One replayed entry is timed alone: the loop's program answered from a journal of 10^6
entries with no kernel (what the child of a fork in a loop spends per iteration it re-runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from common import FORK, FORK_HANDLED, c_program, figure, finish, machine, print_figures, ratios, rounds, run_cpu

import ukernel
from ukernel.kernel.watchdog import Watchdog
from ukernel.user.libc import Sys
from ukernel.user.replay import Replay, replaying

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double secs(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }
static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000, batches = argc > 2 ? atoi(argv[2]) : 1;
    double best = -1;
    for (int b = 0; b < batches; b++) {
        struct timespec a, z;
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
        clock_gettime(CLOCK_MONOTONIC, &z);
        double per = (secs(z) - secs(a)) / n;
        if (best < 0 || per < best) best = per;
    }
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    double cpu = tv(self.ru_utime) + tv(self.ru_stime) + tv(kids.ru_utime) + tv(kids.ru_stime);
    printf("%.9f %.9f\n", best, cpu / ((double)n * batches));
    return 0;
}
"""

#: The loops timed inside the program (argv[1]: iterations): CPU seconds per iteration on stdout.
CLONE_TIMED = b"""
import time

from ukernel.abi import SIGCHLD


def child(sys, arg):
    return 0


async def main(sys, argv):
    n = int(argv[1])
    started = time.thread_time()
    for _ in range(n):
        pid = await sys.clone(SIGCHLD, child, None)
        await sys.waitpid(pid, 0)
    await sys.write(1, b"%.9f\\n" % ((time.thread_time() - started) / n))
    return 0
"""

FORK_TIMED = b"""
import time


async def main(sys, argv):
    n = int(argv[1])
    started = time.thread_time()
    for _ in range(n):
        pid = await sys.fork()
        if pid == 0:
            return 0
        await sys.waitpid(pid, 0)
    await sys.write(1, b"%.9f\\n" % ((time.thread_time() - started) / n))
    return 0
"""

CLONES = 300  # iterations of the timed clone(fn) loop
SHORT = 100  # iterations of the fork loops of 100 (the figure is "at N=100")
C_FORKS, C_BATCHES = 200, 10  # one C run: the fastest of 10 batches of 200 forks

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


def timed(source: bytes, n: int) -> float:
    """CPU seconds per iteration, as the program timed them (tracing off)."""
    result = ukernel.run("/bin/bench", ["bench", str(n)], trace=False, files={"/bin/bench": source})
    if result.exit_code != 0 or result.problems:
        PROBLEMS.append(f"bench {n}: status {result.status:#x}, {result.problems}, {result.stdout[-300:]!r}")
        return float("nan")
    return float(result.stdout.split()[-1])


def figures(quick: bool = False) -> list[dict]:
    """The fork figures: 1,000 fork() in a loop (seconds; 300 with ``quick``), and ratios to C."""
    long = 300 if quick else 1000
    c_cpu: list[float] = []

    def c_best(c_run: Callable[..., str]) -> float:
        wall, cpu = map(float, c_run(C_FORKS, C_BATCHES).split())
        c_cpu.append(cpu)
        return wall

    with c_program(C_SOURCE, "cfork") as c_run:
        measures: dict[str, Callable[[], float]] = {}
        if c_run is not None:
            measures["c_before"] = lambda: c_best(c_run)
        measures |= {
            "clone": lambda: timed(CLONE_TIMED, CLONES),
            "fork100": lambda: timed(FORK_TIMED, SHORT),
            "empty": lambda: run_cpu(FORK, ["0"], PROBLEMS, trace=False),
            "forks100": lambda: run_cpu(FORK, [str(SHORT)], PROBLEMS, trace=False),
            "handled100": lambda: run_cpu(FORK_HANDLED, [str(SHORT)], PROBLEMS, trace=False),
            "fork_long": lambda: run_cpu(FORK, [str(long)], PROBLEMS, trace=False),
            "entry": lambda: replayed_entry(REPLAYED // 10 if quick else REPLAYED),
        }
        if c_run is not None:
            measures["c_after"] = lambda: c_best(c_run)
        s = rounds(measures)
    empty = s["empty"]
    per = {
        name: [(t - e) / n for t, e in zip(s[name], empty, strict=True)]
        for name, n in (("forks100", SHORT), ("handled100", SHORT), ("fork_long", long))
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
            ratios(per["handled100"], per["forks100"]),
        ),
        figure("clone(fn)+exit+wait, CPU per iteration", [t * 1e6 for t in s["clone"]], unit=" us"),
        figure(f"fork()+exit+wait at N={SHORT}, CPU per iteration", [t * 1e6 for t in s["fork100"]], unit=" us"),
    ]
    if "c_before" in s:
        c = [min(a, b) for a, b in zip(s["c_before"], s["c_after"], strict=True)]
        out += [
            figure("C fork+_exit+waitpid, wall per fork (fastest batch)", [t * 1e6 for t in c], unit=" us"),
            figure(
                "C fork+_exit+waitpid, CPU per fork (parent and children)",
                [t * 1e6 for t in c_cpu[2:]],  # (the first two: the warm-up round)
                unit=" us",
            ),
            figure("clone(fn)+exit+wait / C fork+_exit+waitpid, tracing off", ratios(c, s["clone"]), ">= 0.4"),
            figure(f"fork()+exit+wait at N={SHORT} in a loop / C, tracing off", ratios(c, s["fork100"]), ">= 0.35"),
            figure(f"fork() in a loop of {long:,} (replay), per fork / C", ratios(c, per["fork_long"])),
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
