"""A typical bug: the copy reads the old frame's data, but a frame never written has none (KeyError).

cow lab: fork's copy-on-write -- dup_mm's write-protect and the write fault (mm/memory.c).

``Mm`` is the built-in mm service (services/mm.py) with two pieces replaced:
``dup_mm``, the op fork sends (kernel/fork.c dup_mm -> dup_mmap ->
copy_page_range), and ``_do_wp_page``, the method the fault handler
(services/mm_fault.py ``_handle_mm_fault``) calls when a write hits a
write-protected PTE (mm/memory.c do_wp_page -> wp_page_copy / wp_page_reuse).
``ukernel lab grade cow`` plugs ``Mm`` in as the mm service.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.mm import VMA, MmService, MmStruct
from ukernel.ipc.service import Call


class Mm(MmService):
    """mm with your dup_mm and your copy-on-write fault."""

    async def dup_mm(self, req: Call, mm: int) -> dict:
        """fork without CLONE_VM: the child gets the parent's VMAs and page table, no page is copied."""
        parent = self._mm(mm)
        child = MmStruct(pgd=self._alloc_frame(), **parent.layout())  # mm_alloc: may fail, before anything else
        for vma in parent.vmas:  # dup_mmap: one copy of each VMA
            child.vmas.append(replace(vma))
            if vma.shm is not None:
                self.shmem[vma.shm].vmas += 1  # one more mapping of the shared object
            self.copy_page_range(parent, child, vma)
        handle = next(self._mm_ids)
        self.mms[handle] = child
        return {"mm": handle}

    def copy_page_range(self, parent: MmStruct, child: MmStruct, vma: VMA) -> None:
        """copy_pte_range -> copy_present_pte for every present page of ``vma``."""
        for vpn in self._present(parent, vma.start, vma.end):
            pfn = parent.pfn_of[vpn]
            self.refcount[pfn] += 1  # get_page: the child maps the same frame
            child.pfn_of[vpn] = pfn
            if vma.shm is not None:  # MAP_SHARED: both sides keep writing the one page
                if vpn in parent.writable:
                    child.writable.add(vpn)
            else:  # is_cow_mapping: write-protect BOTH sides, so whoever writes first copies
                parent.writable.discard(vpn)

    def _do_wp_page(self, m: MmStruct, vma: VMA, vpn: int) -> dict[str, Any]:
        """A write hit a write-protected PTE in a writable mapping: reuse the frame or copy it.

        Answers the fault event's fields: kind ("cow-copy" or "cow-reuse"), frame (the
        frame the PTE maps now), refcount ([before, after] of the frame the fault found)
        and, for a copy, old_frame.
        """
        pfn = m.pfn_of[vpn]
        before = self.refcount[pfn]
        if vma.shm is not None or before == 1:  # wp_page_reuse: nobody else maps it
            m.writable.add(vpn)
            return {"kind": "cow-reuse", "frame": pfn, "refcount": [before, before]}
        new = self._alloc_frame()  # wp_page_copy; first, so an ENOMEM leaves the PTE as it was
        self.data[new] = bytearray(self.data[pfn])  # BUG: a frame never written has no data
        self._put_frame(pfn)  # this mm's reference to the old frame goes
        m.pfn_of[vpn] = new
        m.writable.add(vpn)
        m.cow_breaks += 1
        return {"kind": "cow-copy", "frame": new, "old_frame": pfn, "refcount": [before, before - 1]}
