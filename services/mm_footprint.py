"""What each mm op touches, for ``ukernel explore``'s partial-order reduction (``@touches``).

Objects: ``mm`` (an mm_struct by handle: its VMAs, page table and write bits),
``users`` (its mm_users count), a frame's bytes at two grains: ``word`` (4 bytes,
by physical address: frame number * PAGE + offset, so a MAP_SHARED page's words are
the same objects in every mm that maps it) and ``page`` (the whole frame, by frame
number); and the frames' bookkeeping, split so that one process's exit and another's
fork commute: ``frame`` (one frame's reference count, struct page's _refcount),
``next`` (where never-used frames start: an allocation takes the next one), ``free``
(the set of freed frames), ``shmem`` (a MAP_SHARED object: its VMA count and pages)
and the numbering of mms (``mm_ids``) and of shmem objects (``shm_ids``).

A load or store that faults nothing reads its mm and the page, and reads or writes its
words; a store also changes the page's ``stores`` count (``c``: two stores commute as
counts do, a read of the whole page sees them). An access of more words of a page than
``WORDS`` reads the whole page (``page`` and ``stores``) or writes it. A page fault
(first touch, copy-on-write) writes its mm and the page it copies or maps, and the frame
whose count it reads (copy or reuse) or raises. So two threads' stores to different
words of one page commute, and a fault, a copy, or a whole-page access conflicts with
every word of it.

Counts (``c``) change and stay above zero: mm_users for share_mm and a put that is not
the last; a frame's count for a put that leaves it mapped and for a shared fault's get; a
shmem object's VMA count for an unmap that leaves it mapped elsewhere. A reference is only
ever got by a holder (a fork by an mm that maps the frame or the object, a shared fault
through a VMA that keeps the object alive), so a count a get raises is at least 1 before and
2 after, and the steps that read a count exactly see no difference: a copy-on-write reuses
the frame only at 1 (the faulting mm its last holder: no one else to get it), a put frees it
only at 1 (the same). So a fork's get_page on every frame it shares, and the VMA counts a
split or merge moves, are in no footprint; a put that reaches zero is a write (``frame``
and ``page``), and adds the frame to ``free`` (``c``: adds commute). An allocation takes a
never-used frame while there is one (mm.py ``_alloc_frame``): it writes ``next`` and reads
nothing a free changes, so the frame it gets is the same in either order; once they are
used up it takes the lowest freed one and writes ``free``. Any op not declared here is the
whole mm. tests/test_explore_frames.py checks that steps these call independent commute.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ukernel import abi

PAGE = abi.PAGE_SIZE
WORD = 4
#: Above this many words of one page an access touches the page as a whole (fewer objects).
WORDS = 16
EVERY_ADDRESS = 1 << 64  # past every VMA: exit_mmap unmaps them all
MM_IDS = ("mm_ids", 0, "w")
SHM_IDS = ("shm_ids", 0, "w")
Touched = list[tuple[str, Any, str]]


def access(mm: Any, args: dict, n: int, write: bool) -> Touched:
    """A load or store of ``n`` bytes at ``addr``, as the page table is now: each page's words
    or the whole page, and where a page would fault its mm, the frame the fault copies, reuses
    or maps, and the allocator for each frame it takes (a bad address faults nothing but raises
    EFAULT before anything changes: reading the mm is all it does)."""
    m = mm.mms[args["mm"]]
    addr = args["addr"]
    end = addr + max(n, 1)
    out: Touched = []
    allocs = 0
    vpns = range(addr // PAGE, (end - 1) // PAGE + 1)
    vmas = [_vma(m, vpn * PAGE) for vpn in vpns]
    right = abi.PROT_WRITE if write else abi.PROT_READ
    if any(v is None or not v.prot & right for v in vmas):
        return [("mm", args["mm"], "r")]  # _check_access: EFAULT, nothing touched
    for vpn, vma in zip(vpns, vmas, strict=True):
        pfn = m.pfn_of.get(vpn)
        if pfn is None:
            touched, new = _first_touch(mm, vma, vpn)
        elif write and vpn not in m.writable:
            touched, new = _wp_fault(mm, vma, pfn)
        else:
            lo, hi = max(addr, vpn * PAGE), min(end, (vpn + 1) * PAGE)
            out += _bytes(pfn, lo - vpn * PAGE, hi - vpn * PAGE, write)
            continue
        out += touched
        allocs += new
        out.append(("mm", args["mm"], "w"))
    if not any(t[0] == "mm" for t in out):
        out.append(("mm", args["mm"], "r"))
    return _unique(out + alloc(mm, allocs))


def _vma(m: Any, addr: int) -> Any:
    return next((v for v in m.vmas if v.start <= addr < v.end), None)


def _first_touch(mm: Any, vma: Any, vpn: int) -> tuple[Touched, int]:
    """do_pte_missing: a private page takes a fresh frame; a MAP_SHARED page maps the object's
    frame (one more reference, the page written whole), or makes it: the object written."""
    if vma.shm is None:
        return [], 1
    pfn = mm.shmem[vma.shm].pages.get(vma.pgoff + vpn - vma.start // PAGE)
    touched: Touched = [("shmem", vma.shm, "w")]
    if pfn is None:
        return touched, 1
    return [*touched, ("frame", pfn, "c"), ("page", pfn, "w")], 0


def _wp_fault(mm: Any, vma: Any, pfn: int) -> tuple[Touched, int]:
    """do_wp_page reads the frame's count (reuse it when this mm is its last holder, else copy
    it and put it): the count and the page written, one frame taken for a copy."""
    copies = vma.shm is None and mm.refcount[pfn] > 1
    return [("frame", pfn, "w"), ("page", pfn, "w")], int(copies)


def _bytes(pfn: int, lo: int, hi: int, write: bool) -> Touched:
    """Bytes [lo, hi) of frame ``pfn``, present and writable where ``write``: its words, or
    the whole page past ``WORDS`` of them."""
    first, last = lo // WORD, (hi - 1) // WORD
    if last - first >= WORDS:
        return [("page", pfn, "w")] if write else [("page", pfn, "r"), ("stores", pfn, "r")]
    base = pfn * PAGE
    mode = "w" if write else "r"
    out: Touched = [("word", base + w * WORD, mode) for w in range(first, last + 1)]
    out.append(("page", pfn, "r"))
    if write:
        out.append(("stores", pfn, "c"))
    return out


def _unique(touched: Touched) -> Touched:
    """Each object once, in the order first met, its strongest mode (a write over the rest)."""
    modes: dict[tuple, str] = {}
    for kind, ident, mode in touched:
        key = (kind, ident)
        held = modes.get(key)
        modes[key] = mode if held in (None, mode) else "w"
    return [(kind, ident, mode) for (kind, ident), mode in modes.items()]


def alloc(mm: Any, n: int) -> Touched:
    """``n`` frames taken (mm.py ``_alloc_frame``): never-used ones while they last, which only
    the allocations before them decide (``next``); past them the freed set, which frees change."""
    if n <= 0:
        return []
    if mm.next_pfn + n <= mm.nframes:
        return [("next", 0, "w")]
    return [("next", 0, "w"), ("free", 0, "w")]


def puts(mm: Any, frames: Counter) -> Touched:
    """put_page on each frame, as many times as counted: a count change while references are
    left, else the frame freed (its count and bytes written, the freed set added to)."""
    out: Touched = []
    freed = False
    for pfn in sorted(frames):
        if mm.refcount[pfn] > frames[pfn]:
            out.append(("frame", pfn, "c"))
        else:
            out += [("frame", pfn, "w"), ("page", pfn, "w")]
            freed = True
    return out + ([("free", 0, "c")] if freed else [])


def unmap(mm: Any, m: Any, start: int, end: int) -> Touched:
    """do_vmi_munmap of [start, end): each present page's frame put, each shmem object mapped
    there counted down, or, where its last VMA goes, the object written and its pages put."""
    frames: Counter = Counter(pfn for vpn, pfn in m.pfn_of.items() if start <= vpn * PAGE < end)
    inside: Counter = Counter(v.shm for v in m.vmas if v.shm is not None and start <= v.start and v.end <= end)
    objects: Touched = []
    for sid in sorted({v.shm for v in m.vmas if v.shm is not None and v.start < end and start < v.end}):
        obj = mm.shmem[sid]
        if obj.vmas == inside[sid]:
            objects.append(("shmem", sid, "w"))
            frames.update(obj.pages.values())
        else:
            objects.append(("shmem", sid, "c"))
    return objects + puts(mm, frames)


def read_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, args["n"], False)


def write_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, len(args["data"]), True)


def cmpxchg(mm: Any, args: dict) -> Touched:
    """A store of one word, or only its load where the compare will fail (the word is there
    and holds another value: the handler then reads and stores nothing), as a failed
    compare-and-swap is a load in a memory model: two failed ones commute."""
    current = _current(mm, args)
    load = access(mm, args, WORD, False)  # the handler loads first: a fault even if the store fails
    if current is not None and current != args["old"] & 0xFFFFFFFF:
        return load
    return _unique(load + access(mm, args, WORD, True))


def _current(mm: Any, args: dict) -> int | None:
    """The word cmpxchg will compare, if its page is present (None: it faults, or spans pages)."""
    addr = args["addr"]
    pfn = mm.mms[args["mm"]].pfn_of.get(addr // PAGE)
    offset = addr % PAGE
    if pfn is None or offset > PAGE - WORD:
        return None
    frame = mm.data.get(pfn)
    return int.from_bytes(frame[offset : offset + WORD], "little") if frame is not None else 0


def new_mm(mm: Any, args: dict) -> Touched:
    """mm_init: a new mm, its number and its pgd frame."""
    return [MM_IDS, *alloc(mm, 1)]


def dup_mm(mm: Any, args: dict) -> Touched:
    """The parent's write bits are cleared (copy-on-write); the child's number and pgd frame.
    The references every frame and shmem object the parent maps gain are a holder's gets,
    which no other step can tell from before (module docstring)."""
    return [("mm", args["mm"], "w"), MM_IDS, *alloc(mm, 1)]


def share_mm(mm: Any, args: dict) -> Touched:
    return [("users", args["mm"], "c")]


def mmput(mm: Any, args: dict) -> Touched:
    """A user goes; the last one's exit_mmap gives every frame back. Its VMAs and page table
    are no one's then: a step that reads them is a user's, whose own mmput (a count change,
    which this write of the count conflicts with) comes first, so the two never meet."""
    m = mm.mms[args["mm"]]
    if m.mm_users > 1:
        return [("users", args["mm"], "c")]
    return _unique([("users", args["mm"], "w"), *unmap(mm, m, 0, EVERY_ADDRESS), *puts(mm, Counter([m.pgd]))])


def mmap(mm: Any, args: dict) -> Touched:
    """The VMAs; a MAP_SHARED mapping's new object; MAP_FIXED unmaps what was there (any
    other mapping goes where nothing is mapped: nothing to unmap)."""
    m = mm.mms[args["mm"]]
    out: Touched = [("mm", args["mm"], "w")]
    if args["flags"] & abi.MAP_SHARED:
        out.append(SHM_IDS)
    if args["flags"] & abi.MAP_FIXED:
        out += unmap(mm, m, args["addr"], args["addr"] + _align(args["length"]))
    return _unique(out)


def munmap(mm: Any, args: dict) -> Touched:
    m = mm.mms[args["mm"]]
    return _unique([("mm", args["mm"], "w"), *unmap(mm, m, args["addr"], args["addr"] + _align(args["length"]))])


def brk(mm: Any, args: dict) -> Touched:
    """The heap's VMA; a shrinking break unmaps the pages past it."""
    m = mm.mms[args["mm"]]
    out: Touched = [("mm", args["mm"], "w")]
    new, old = _align(args["addr"]), _align(m.brk)
    if m.start_brk <= args["addr"] and new < old:
        out += unmap(mm, m, new, old)
    return _unique(out)


def mprotect(mm: Any, args: dict) -> Touched:
    """The VMAs and write bits (splitting and merging move shmem objects' VMA counts: a
    holder's, which no other step can tell)."""
    return [("mm", args["mm"], "w")]


def _align(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)
