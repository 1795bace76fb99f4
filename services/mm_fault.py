"""The page-fault handler (mm/memory.c's handle_mm_fault; arch/x86/mm/fault.c's bad_area), mixed into MmService.

read_mem and write_mem are the CPU's loads and stores: a page with no PTE yet,
or a write through a write-protected PTE, traps here. Every fault is reported
into the trace as one ``fault`` event (docs/trace.md), tied by ``cause`` to the
message whose access faulted, so "which write copied which frame?" is answered
by the trace itself, not only by getrusage's minflt. Its ``kind``:

- ``zero-fill``: first touch of a page nothing backs yet: a fresh zeroed frame;
- ``shared``: first touch of a MAP_SHARED page another mapping faulted in already;
- ``cow-copy``: a write to a frame others still map: this mm gets its own copy;
- ``cow-reuse``: a write-protected PTE made writable in place: the last holder of a
  private frame (the other side of the fork copied or left), or a MAP_SHARED page;
- ``segv``: no VMA there (SEGV_MAPERR) or one without the right (SEGV_ACCERR);
- ``oom``: no frame left for it (the OOM killer's case).

A fault that fails (segv, oom) is not counted in min_flt, as mm_account_fault
does not count it, so a process's minflt is the number of its other fault events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ukernel import abi

if TYPE_CHECKING:
    from .mm import VMA, MmStruct

PAGE = abi.PAGE_SIZE


def _efault(message: str) -> OSError:
    return abi.kernel_error(abi.EFAULT, message)


def vma_fields(vma: VMA | None) -> dict | None:
    """The VMA as a fault event names it: its range, rights and name, as /proc/PID/maps."""
    if vma is None:
        return None
    return {"start": vma.start, "end": vma.end, "perms": vma.perms(), "name": vma.name}


class FaultOps:
    """mm's page-fault handler (mixed into MmService, whose frames and VMAs it uses)."""

    def _report_fault(self, addr: int, write: bool, vma: VMA | None, fields: dict[str, Any]) -> None:
        """One ``fault`` event: the access, the page, the VMA and what the handler did."""
        if self.tracing:
            access = "write" if write else "read"
            page = addr & ~(PAGE - 1)
            self.trace_event(
                "fault", "handle_mm_fault", access=access, addr=addr, page=page, vma=vma_fields(vma), **fields
            )

    def _check_access(self, m: MmStruct, addr: int, n: int, write: bool) -> list[tuple[int, VMA]]:
        """(vpn, VMA) of every page in [addr, addr+n), or EFAULT: the fault handler's bad_area.

        Checked for the whole range before anything is touched, so a bad access changes
        nothing. (No VMA lies outside user space, so a kernel address is SEGV_MAPERR too.)
        """
        pages = []
        for page in range(addr & ~(PAGE - 1), addr + n, PAGE):
            where = max(page, addr)
            i = self._vma_index(m, page)
            if i < 0:
                self._report_fault(where, write, None, {"kind": "segv", "code": "SEGV_MAPERR"})
                raise _efault(f"address {where:#x} is not mapped (SIGSEGV, SEGV_MAPERR)")
            vma = m.vmas[i]
            if not vma.prot & (abi.PROT_WRITE if write else abi.PROT_READ):
                self._report_fault(where, write, vma, {"kind": "segv", "code": "SEGV_ACCERR"})
                what = "write to" if write else "read of"
                raise _efault(f"{what} {where:#x} in a {vma.perms()} mapping {vma.name} (SIGSEGV, SEGV_ACCERR)")
            pages.append((page // PAGE, vma))
        return pages

    def _handle_mm_fault(self, m: MmStruct, vma: VMA, vpn: int, addr: int, write: bool) -> int:
        """The frame behind vpn; fault it in first if the MMU would not let the access at addr through.

        A page with no PTE gets one (_do_anonymous_page, _do_shared_fault), with the
        VMA's write right; _check_access let only allowed accesses come, so a first
        touch never needs copy-on-write as well. A write through a present,
        write-protected PTE is _do_wp_page.
        """
        pfn = m.pfn_of.get(vpn)
        if pfn is not None and (not write or vpn in m.writable):
            return pfn  # no fault: the MMU finds the frame on its own
        try:
            fields = self._do_wp_page(m, vma, vpn) if pfn is not None else self._do_first_touch(m, vma, vpn)
        except OSError as exc:  # ENOMEM: no frame left
            self._report_fault(addr, write, vma, {"kind": "oom", "code": abi.errno_name(exc.errno)})
            raise
        m.min_flt += 1  # mm_account_fault: only a fault that succeeded counts
        self._report_fault(addr, write, vma, fields)
        return m.pfn_of[vpn]

    def _do_first_touch(self, m: MmStruct, vma: VMA, vpn: int) -> dict[str, Any]:
        """do_pte_missing: map the page's frame; the new PTE gets the VMA's write right (set_pte_at)."""
        fields = self._do_shared_fault(vma, vpn) if vma.shm is not None else self._do_anonymous_page()
        m.pfn_of[vpn] = fields["frame"]
        if vma.prot & abi.PROT_WRITE:
            m.writable.add(vpn)
        m.hiwater_rss = max(m.hiwater_rss, len(m.pfn_of))
        return fields

    def _do_anonymous_page(self) -> dict[str, Any]:
        """First touch of a private page: a fresh zero-filled frame.

        (Linux maps the shared zero page on a read fault and allocates on the
        first write; ukernel allocates at once but fills the frame lazily.)
        """
        return {"kind": "zero-fill", "frame": self._alloc_frame(), "refcount": [0, 1]}

    def _do_shared_fault(self, vma: VMA, vpn: int) -> dict[str, Any]:
        """First touch of a shared page: map the object's page, creating it if nobody has yet."""
        obj = self.shmem[vma.shm]
        index = vma.pgoff + vpn - vma.start // PAGE
        fresh = index not in obj.pages
        if fresh:
            obj.pages[index] = self._alloc_frame()  # the object's own reference
        pfn = obj.pages[index]
        before = 0 if fresh else self.refcount[pfn]
        self.refcount[pfn] += 1
        return {"kind": "zero-fill" if fresh else "shared", "frame": pfn, "refcount": [before, self.refcount[pfn]]}

    def _do_wp_page(self, m: MmStruct, vma: VMA, vpn: int) -> dict[str, Any]:
        """A write hit a read-only PTE in a writable mapping: copy-on-write, or just reuse.

        Shared pages, and private ones nobody else maps any more (refcount 1,
        the other side of a fork already copied or exited), are made writable
        in place (wp_page_reuse). Otherwise this mm gets its own copy (wp_page_copy),
        and the old frame loses this mm's reference.
        """
        pfn = m.pfn_of[vpn]
        before = self.refcount[pfn]
        if vma.shm is not None or before == 1:
            m.writable.add(vpn)
            return {"kind": "cow-reuse", "frame": pfn, "refcount": [before, before]}
        new = self._alloc_frame()  # first: an ENOMEM leaves the PTE as it was
        if pfn in self.data:
            self.data[new] = bytearray(self.data[pfn])
        self._put_frame(pfn)
        m.pfn_of[vpn] = new
        m.writable.add(vpn)
        m.cow_breaks += 1
        return {"kind": "cow-copy", "frame": new, "old_frame": pfn, "refcount": [before, before - 1]}
