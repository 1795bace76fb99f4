"""A buggy pid.py (tests/test_lab_pid_files.py): the reference solution, except that the
cyclic allocator never wraps round to pid_min: once pid_max is reached, fork fails."""

from pathlib import Path

import ukernel
from ukernel import abi
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "pid" / "solution" / "pid.py")


class Pid(reference.Pid):
    def idr_alloc_cyclic(self, ns, handle: int, pid_min: int) -> int:
        free = [nr for nr in range(max(ns.last + 1, pid_min), self.pid_max) if nr not in ns.used]  # BUG: no wrap
        if not free:
            raise abi.kernel_error(abi.ENOSPC, f"no pid left below {self.pid_max}")
        ns.used[free[0]] = handle
        ns.last = free[0]
        return free[0]
