"""A buggy pid.py (tests/test_lab_pid_files.py): the reference solution, except that
free_pid zips numbers and namespaces the wrong way round, so a number is looked up as
a namespace handle (a KeyError on the line after the bug)."""

from pathlib import Path

import ukernel
from ukernel.ipc.service import get
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "pid" / "solution" / "pid.py")


class Pid(reference.Pid):
    async def free_pid(self, req, pid: int) -> int:
        p = get(self.pids, pid, "struct pid")
        p.refcount -= 1
        if p.refcount:
            return p.refcount
        for handle, nr in zip(p.numbers, p.nss, strict=True):  # BUG: numbers and namespaces swapped
            del self.namespaces[handle].used[nr]
        del self.pids[pid]
        self._put_ns(p.nss[-1])
        return 0
