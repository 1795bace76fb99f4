"""A typical bug (tests/test_lab_fork_trace_cow.py): the reference mm.py, except that
the copy reads the old frame's data, and a frame never written has none (KeyError)."""

from pathlib import Path

import ukernel
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "cow" / "solution" / "mm.py")


class Mm(reference.Mm):
    def _do_wp_page(self, m, vma, vpn: int) -> dict:  # noqa: ANN001 (as the reference's)
        pfn = m.pfn_of[vpn]
        before = self.refcount[pfn]
        if vma.shm is not None or before == 1:
            m.writable.add(vpn)
            return {"kind": "cow-reuse", "frame": pfn, "refcount": [before, before]}
        new = self._alloc_frame()
        self.data[new] = bytearray(self.data[pfn])  # BUG: a frame never written has no data
        self._put_frame(pfn)
        m.pfn_of[vpn] = new
        m.writable.add(vpn)
        m.cow_breaks += 1
        return {"kind": "cow-copy", "frame": new, "old_frame": pfn, "refcount": [before, before - 1]}
