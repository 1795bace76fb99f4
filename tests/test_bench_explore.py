"""bench/explore.py's host columns: what the host kernel charged a search, per state."""

from __future__ import annotations

import importlib.util
import mmap
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "explore.py"
spec = importlib.util.spec_from_file_location("bench_explore", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_host_usage_counts_the_faults_of_a_child_once_it_is_waited_for():
    pages = 2000
    before = bench.host_usage()
    pid = os.fork()
    if pid == 0:  # a fresh anonymous mapping: each page written is one minor fault, in the child
        area = mmap.mmap(-1, pages * mmap.PAGESIZE)
        for page in range(pages):
            area[page * mmap.PAGESIZE] = 1
        os._exit(0)
    os.waitpid(pid, 0)
    faults = bench.host_usage()[2] - before[2]
    assert faults >= pages


def test_ours_reports_the_search_and_its_host_costs_per_state():
    found = bench.ours("forkhello", [], 60.0)
    assert (found["runs"], found["states"], found["outcomes"], found["complete"]) == (4, 9, 2, True)
    assert found["forks"] >= 1
    assert found["faults_per_state"] > 0 and found["user_ms_per_state"] > 0
    assert found["faults_per_fork"] == pytest.approx(found["faults_per_state"] * found["states"] / found["forks"])
