"""ukernel explore's reduction (source-DPOR + sleep sets), fork checkpoints and early stop:
the reduced searches find exactly what the full one finds, in fewer runs."""

from __future__ import annotations

import pytest
from conftest import found, program_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from ukernel.explore.por import (
    GLOBAL,
    Footprint,
    dependent,
    happens_before,
    merge_summary,
    prepend_summary,
    races,
    summary_choices,
    summary_races,
)

#: Two processes, each doing N syscalls that touch only its own objects (its sighand, its
#: signal mask, its memory), while their parent waits for them.
INDEPENDENT = """
from ukernel.abi import SIG_BLOCK, SIG_IGN, SIGUSR1, SIGUSR2


async def child(sys, n):
    for _ in range(n):
        await sys.sigaction(SIGUSR1, SIG_IGN)
        await sys.sigprocmask(SIG_BLOCK, {SIGUSR2})
    return 0


async def main(sys, argv):
    n = int(argv[1])
    kids = []
    for _ in range(2):
        pid = await sys.fork()
        if pid == 0:
            return await child(sys, n)
        kids.append(pid)
    for pid in kids:
        await sys.waitpid(pid, 0)
    return 0
"""


def test_independent_processes_explore_a_constant_number_of_runs(tmp_path):
    """N=3 and N=6 syscalls each: the same handful of runs (not binomial(2N, N))."""
    prog = program_file(tmp_path, "indep", INDEPENDENT)
    three, six = ukernel.explore(prog, ["indep", "3"]), ukernel.explore(prog, ["indep", "6"])
    assert three.complete and six.complete
    assert three.runs <= 13 and six.runs <= 13  # 13 by DPOR alone; caching may merge a run or two
    assert found(three) == found(six) == ([("", 0)], [], [])
    one = ukernel.explore(prog, ["indep", "1"])
    bound = 3 * one.runs  # without reduction, every order: more runs than this bound allows
    full = ukernel.explore(prog, ["indep", "1"], reduction=False, cache=False, max_runs=bound)
    assert one.runs <= 13 and not full.complete and full.runs >= bound and found(full) == found(one)


def test_state_caching_tells_apart_what_a_preempted_task_is_about_to_write():
    """waitrace's grandchild is preempted at its write with getppid's answer already in the
    bytes it writes (on the program's stack, not in its locals): a digest without the pending
    call's arguments merged "init" and "child" and lost outcomes (it found 5 of these 8)."""
    found = ukernel.explore("waitrace", ["waitrace"], reduction=False)
    assert found.complete and sorted(found.stdouts()) == [
        "child already exited 7\ngrandchild's parent: child\n",
        "child already exited 7\ngrandchild's parent: init\n",
        "child still running, then exited 7\ngrandchild's parent: child\n",
        "child still running, then exited 7\ngrandchild's parent: init\n",
        "grandchild's parent: child\nchild already exited 7\n",
        "grandchild's parent: child\nchild still running, then exited 7\n",
        "grandchild's parent: init\nchild already exited 7\n",
        "grandchild's parent: init\nchild still running, then exited 7\n",
    ]


@pytest.mark.parametrize("argv", [["forkhello"], ["forkbuf", "1"], ["lostupdate", "1"]])
def test_reduction_and_caching_find_what_the_full_search_finds(argv):
    """The soundness check: DPOR with caching (the default), DPOR alone and caching alone
    against every path."""
    full = ukernel.explore(argv[0], argv, reduction=False, cache=False)
    both = ukernel.explore(argv[0], argv)
    dpor = ukernel.explore(argv[0], argv, cache=False)
    cached = ukernel.explore(argv[0], argv, reduction=False)
    assert both.method == "source-DPOR, sleep sets and state caching" and dpor.method == "source-DPOR and sleep sets"
    assert full.complete and both.complete and dpor.complete and cached.complete
    assert found(both) == found(dpor) == found(full) == found(cached)
    assert both.runs <= dpor.runs < full.runs and both.runs < cached.runs < full.runs


@pytest.mark.parametrize("argv", [["tocttou"], ["waitrace"]])
def test_the_default_finds_what_state_caching_alone_finds(argv):
    """Stateful DPOR (a run cut at a cached state takes its races from the state's summary)
    against caching alone, on the races with 3 and 8 outcomes, in fewer runs."""
    both, cached = ukernel.explore(argv[0], argv), ukernel.explore(argv[0], argv, reduction=False)
    assert both.complete and cached.complete
    assert found(both) == found(cached) and len(both.outcomes) == {"tocttou": 3, "waitrace": 8}[argv[0]]
    assert both.runs < cached.runs


#: One step of a generated program's process: each touches what a real program would.
STEPS = {
    "print": "await sys.write(1, NAME)",
    "pipe": "await sys.write(w, NAME)",
    "yield": "await sys.sched_yield()",
    "mask": "await sys.sigprocmask(SIG_BLOCK, {SIGUSR2})",
    "handler": "await sys.sigaction(SIGUSR1, SIG_IGN)",
}


def generated(parent: list[str], child: list[str]) -> str:
    """A parent and a child doing the given steps; the pipe's bytes are printed at the end."""

    def body(steps: list[str], name: bytes) -> str:
        return "".join(f"\n        {STEPS[s].replace('NAME', repr(name))}" for s in steps) or "\n        pass"

    return f"""
from ukernel.abi import SIG_BLOCK, SIG_IGN, SIGUSR1, SIGUSR2


async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:{body(child, b"c")}
        return 0
    if True:{body(parent, b"p")}
    await sys.waitpid(pid, 0)
    await sys.close(w)
    await sys.write(1, b"|" + await sys.read(r, 100))
    return 0
"""


PROCESS = st.lists(st.sampled_from(sorted(STEPS)), max_size=2)


def test_a_deadlock_is_found_with_reduction_as_without(tmp_path):
    prog = program_file(tmp_path, "crossed", CROSSED)
    full, dpor = ukernel.explore(prog, reduction=False, cache=False), ukernel.explore(prog)
    assert full.complete and dpor.complete and found(dpor) == found(full)
    assert [len(found(dpor)[0]), len(found(dpor)[1])] == [1, 1] and dpor.runs < full.runs


#: One byte, two readers: if the child takes it, the parent (which still holds the write end)
#: waits for ever; if the parent does, it closes the pipe and the child reads EOF.
CROSSED = """
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(w)
        await sys.read(r, 1)
        return 0
    await sys.write(w, b"x")
    got = await sys.read(r, 1)
    await sys.close(w)
    await sys.waitpid(pid, 0)
    await sys.write(1, b"parent got " + got)
    return 0
"""


@given(PROCESS, PROCESS)
@settings(
    max_examples=4, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], deadline=None
)
def test_generated_programs_reduce_to_the_same_outcomes(tmp_path, parent, child):
    prog = program_file(tmp_path, "gen", generated(parent, child))
    full = ukernel.explore(prog, ["gen"], reduction=False, cache=False)
    dpor = ukernel.explore(prog, ["gen"])
    assert full.complete and dpor.complete
    assert found(dpor) == found(full) and dpor.runs <= full.runs


def test_every_outcome_of_the_reduced_search_replays_to_itself():
    result = ukernel.explore("tocttou", ["tocttou"])
    assert result.complete and len(result.outcomes) == 3  # MOSAIC's three
    for outcome in result.outcomes:
        replay = ukernel.run("tocttou", ["tocttou"], schedule=outcome["schedule"], trace=False)
        assert replay.stdout.decode() == outcome["stdout"]


def test_early_stop_counts_each_state_once():
    """With caching, a run stops at a state seen before: states are distinct, runs end early."""
    cached = ukernel.explore("forkhello", ["forkhello"], reduction=False)
    full = ukernel.explore("forkhello", ["forkhello"], reduction=False, cache=False)
    stopped = cached.runs - sum(o["count"] for o in cached.outcomes)
    assert stopped > 0 and cached.states < full.states


def test_the_bounds_stop_the_tree():
    result = ukernel.explore("forkbuf", ["forkbuf", "2"], max_runs=5)
    assert not result.complete and result.runs <= 6 and "--max-runs 5" in result.why_incomplete


# --- the relation itself --------------------------------------------------------------------
def test_footprints_conflict_on_a_shared_object_a_whole_service_or_global():
    pipe = frozenset({("vfs", "*")})
    sighand = frozenset({("signals", "sighand", 3)})
    other = frozenset({("signals", "sighand", 5)})
    assert not dependent(sighand, other)
    assert dependent(sighand, frozenset({("signals", "*")}))
    assert dependent(pipe, pipe) and not dependent(pipe, sighand)
    assert dependent(frozenset({GLOBAL}), frozenset())


def test_a_message_to_a_service_reaches_what_it_calls():
    footprint = Footprint()
    footprint.begin(3)
    calls = {"kernel": frozenset({"namespaces"}), "namespaces": frozenset({"pid", "vfs"})}
    footprint.message(calls, "namespaces", "copy_namespaces", {}, {"pid": 3})
    [(pid, objects)] = footprint.take([{3: (7, 9)}], False)
    assert pid == 3
    # no user memory seen (no kernel's hooks here): all of the task's, (("user", mm), "*")
    # and its signal_struct read (TIF_SIGPENDING at the kernel exit)
    assert objects == {
        ("namespaces", "*"),
        ("pid", "*"),
        ("vfs", "*"),
        (("user", 7), "*"),
        ("r", ("signals", "signal", 9)),
        ("r", ("woken", 3)),  # after the step that made it runnable
    }


def test_races_are_the_unordered_dependent_pairs():
    a, b = frozenset({("x", "*")}), frozenset({("y", "*")})
    # 0: pid 1 touches x; 1: pid 2 touches y; 2: pid 2 touches x -> races with 0, reversed by pid 2 first
    assert races([1, 2, 2], [a, b, a]) == [(0, {2})]
    # ordered through a third transition: 0 -> 1 (same object) -> 2 (same task): no race 0/2
    assert races([1, 2, 2], [a, a, a]) == [(0, {2})]
    assert races([1, 1], [a, a]) == []


def test_summary_races_are_the_steps_a_cached_subtree_depends_on():
    a, b = frozenset({("x", "*")}), frozenset({("y", "*")})

    def pairs(pids, fps, summary):
        return [(race.i, race.q) for race in summary_races(pids, fps, summary)]

    # pid 3 touches x below the cached state: it races with pid 1's step 0, not pid 2's step 1
    assert pairs([1, 2], [a, b], {3: a}) == [(0, 3)]
    # pid 2's step 1 comes after step 0 (both touch x): its later steps do too, no race
    assert pairs([1, 2], [a, a], {2: a}) == []
    # the same task's own steps never race; GLOBAL against everything
    assert pairs([1, 2], [a, b], {1: a}) == []
    assert pairs([1, 2], [a, b], {3: frozenset({GLOBAL})}) == [(0, 3), (1, 3)]
    # pid 3 made runnable by step 0 (its fork or a wake, which each of its steps reads): all it
    # does below is after that step
    fork = a | {("woken", 3)}
    assert pairs([1, 2], [fork, b], {3: a | {("r", ("woken", 3))}}) == []


def test_a_summary_race_takes_one_initial_of_the_run_after_its_step():
    a, b, c = frozenset({("x", "*")}), frozenset({("y", "*")}), frozenset({("z", "*")})
    # step 0 (pid 1, x) races pid 3's x below; steps 1 (pid 2, y) and 2 (pid 4, z) do not follow it:
    # u = both, its initials {2, 4}; one is enough, none when one is there already
    [race] = summary_races([1, 2, 4], [a, b, c], {3: a})
    assert (race.first, race.quiet) == ({2, 4}, {3})
    assert summary_choices([1, 2, 3, 4], {1}, race) == [2]
    assert summary_choices([1, 2, 3, 4], {1, 4}, race) == []
    # the run's last step races: u is empty (the reversed run is all below the state); the
    # tasks quiet since that can run there start it, each of them
    [race] = summary_races([1], [a], {3: a})
    assert (race.i, race.first, race.quiet) == (0, frozenset(), {3})
    assert summary_choices([1, 2, 3], {1}, race) == [3]
    [race] = summary_races([1], [a], {3: a, 5: b})
    assert race.quiet == {3, 5} and summary_choices([1, 2, 5], {1}, race) == [5]  # 3 cannot run there
    # a later step of the run that depends on pid 3's step below comes before it: no race at 0
    assert [(r.i, r.q) for r in summary_races([1, 2], [a, a | b], {3: a})] == [(1, 3)]


def test_a_summary_keeps_what_comes_before_each_step_below():
    a, b, c = frozenset({("x", "*")}), frozenset({("y", "*")}), frozenset({("z", "*")})
    # below the state: pid 2 touches y, then pid 3 touches y and x (after pid 2's step)
    summary = prepend_summary([(2, b, 0), (3, b | a, 1)], {})
    # a step of pid 2 on the path (touching x) comes before pid 3's x below: no race
    assert summary_races([2], [a], summary) == []
    # pid 1's step on x does race it, unless it comes before pid 2's (its z step, then y: no)
    assert [(r.i, r.q) for r in summary_races([1], [a], summary)] == [(0, 3)]
    assert [(r.i, r.q) for r in summary_races([1], [a | b], summary)] == [(0, 2)]
    # prepended once more, to the state before a step of pid 1 on z: the same steps below
    above = prepend_summary([(1, c, 0)], summary)
    assert sorted(above) == [1, 2, 3] and [(r.i, r.q) for r in summary_races([4], [a], above)] == [(0, 3)]
    # alternatives join: what either subtree has
    both = merge_summary(dict(summary), {3: c})
    assert [(r.i, r.q) for r in summary_races([2], [c], both)] == [(0, 3)]


EVENTS = st.lists(
    st.tuples(st.integers(1, 3), st.frozensets(st.sampled_from([("x", "*"), ("y", "*"), ("z", "*")]), max_size=2)),
    max_size=8,
)


@given(EVENTS)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_every_race_is_a_dependent_pair_of_two_tasks_whose_initials_are_tasks_of_the_run(events):
    pids, fps = [p for p, _ in events], [f for _, f in events]
    for i, initials in races(pids, fps):
        later = [j for j in range(i + 1, len(pids)) if pids[j] != pids[i] and dependent(fps[i], fps[j])]
        assert later and initials and initials <= set(pids[i + 1 :]) and pids[i] not in initials


@given(EVENTS, st.integers(0, 12), st.integers(0, 12))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_happens_before_extends_a_prefix_to_what_it_finds_afresh(events, cut, start):
    """A process inherits its path's happens-before and extends it (checkpoint.py's ``hb``):
    the same bit sets, races and summary races as from scratch."""
    pids, fps = [p for p, _ in events], [f for _, f in events]
    whole = happens_before(pids, fps)
    prefix = happens_before(pids[:cut], fps[:cut])
    assert happens_before(pids, fps, prefix) is prefix and prefix == whole
    assert races(pids, fps, start, happens_before(pids[:cut], fps[:cut])) == races(pids, fps, start)
    summary = {pids[0]: fps[-1], 99: fps[0]} if pids else {}
    again = summary_races(pids, fps, summary, happens_before(pids[:cut], fps[:cut]))
    assert again == summary_races(pids, fps, summary)
