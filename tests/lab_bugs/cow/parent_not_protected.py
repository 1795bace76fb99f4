"""A typical bug (tests/test_lab_fork_trace_cow.py): the reference mm.py, except that
dup_mm write-protects only the child, so the parent writes into the shared frame."""

from pathlib import Path

import ukernel
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "cow" / "solution" / "mm.py")


class Mm(reference.Mm):
    def copy_page_range(self, parent, child, vma) -> None:  # noqa: ANN001 (as the reference's)
        for vpn in self._present(parent, vma.start, vma.end):
            pfn = parent.pfn_of[vpn]
            self.refcount[pfn] += 1
            child.pfn_of[vpn] = pfn
            if vma.shm is not None and vpn in parent.writable:
                child.writable.add(vpn)
            # BUG: a private page stays writable in the parent (the child has no write bit)
