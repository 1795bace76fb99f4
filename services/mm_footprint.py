"""What each mm op touches, for ``ukernel explore``'s partial-order reduction (``@touches``).

Objects: ``mm`` (an mm_struct by handle: its VMAs, page table and write bits),
``page`` (a frame's bytes, by frame number: the pages of a MAP_SHARED mapping are
the same frames in every mm that maps them, so two processes' stores to one shared
page conflict, and stores to their private pages do not), and ``frames`` (the
frame allocator, every frame's reference count, the shared mappings' page lists
and the mm numbering). A page fault (first touch, copy-on-write) writes ``frames``
and its mm; a load or store that faults nothing reads its mm and reads or writes
its pages. ``c``: mm_users changing and staying above zero (commutes). Any op not
declared here is the whole mm.
"""

from __future__ import annotations

from typing import Any

from ukernel import abi

PAGE = abi.PAGE_SIZE
FRAMES = ("frames", 0, "w")
Touched = list[tuple[str, Any, str]]


def access(mm: Any, args: dict, n: int, write: bool) -> Touched:
    """A load or store of ``n`` bytes at ``addr``, as the page table is now: each page's frame
    (read or written), and the allocator too where a page would fault (a bad address faults
    nothing but raises EFAULT: reading the mm is all it does)."""
    m = mm.mms[args["mm"]]
    addr = args["addr"]
    out: Touched = []
    faults = False
    for vpn in range(addr // PAGE, (addr + max(n, 1) - 1) // PAGE + 1):
        pfn = m.pfn_of.get(vpn)
        if pfn is None or (write and vpn not in m.writable):
            faults = True
        if pfn is not None:
            out.append(("page", pfn, "w" if write else "r"))
    return out + ([("mm", args["mm"], "w"), FRAMES] if faults else [("mm", args["mm"], "r")])


def read_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, args["n"], False)


def write_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, len(args["data"]), True)


def cmpxchg(mm: Any, args: dict) -> Touched:
    return access(mm, args, 4, True)


def new_mm(mm: Any, args: dict) -> Touched:
    """mm_init: a new mm from the allocator (its pgd frame, its number)."""
    return [FRAMES]


def dup_mm(mm: Any, args: dict) -> Touched:
    """The parent's write bits are cleared (copy-on-write) and every frame gains a reference."""
    return [("mm", args["mm"], "w"), FRAMES]


def share_mm(mm: Any, args: dict) -> Touched:
    return [("mm", args["mm"], "c")]


def mmput(mm: Any, args: dict) -> Touched:
    """A user goes; the last one's exit_mmap gives every frame back."""
    if mm.mms[args["mm"]].mm_users > 1:
        return [("mm", args["mm"], "c")]
    return [("mm", args["mm"], "w"), FRAMES]


def remap(mm: Any, args: dict) -> Touched:
    """mmap, munmap, brk: the VMAs, and frames freed or a shared mapping made."""
    return [("mm", args["mm"], "w"), FRAMES]


def mprotect(mm: Any, args: dict) -> Touched:
    return [("mm", args["mm"], "w")]
