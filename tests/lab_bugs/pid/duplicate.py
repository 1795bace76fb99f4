"""A buggy pid.py (tests/test_lab_pid_files.py): the reference solution, except that the
cyclic allocator takes the next number without asking whether it is free, so after
the wrap it hands out numbers still in use."""

from pathlib import Path

import ukernel
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "pid" / "solution" / "pid.py")


class Pid(reference.Pid):
    def idr_alloc_cyclic(self, ns, handle: int, pid_min: int) -> int:
        nr = max(ns.last + 1, pid_min)
        if nr >= self.pid_max:
            nr = pid_min
        ns.used[nr] = handle  # BUG: never asks whether nr is free
        ns.last = nr
        return nr
