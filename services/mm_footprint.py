"""What each mm op touches, for ``ukernel explore``'s partial-order reduction (``@touches``).

Objects: ``mm`` (an mm_struct by handle: its VMAs, page table and write bits),
``users`` (its mm_users count), ``frames`` (the frame allocator, every frame's
reference count, the shared mappings' page lists and the mm numbering), and a
frame's bytes at two grains: ``word`` (4 bytes, by physical address: frame
number * PAGE + offset, so a MAP_SHARED page's words are the same objects in every
mm that maps it) and ``page`` (the whole frame, by frame number). A load or store
that faults nothing reads its mm and the page, and reads or writes its words; a
store also changes the page's ``stores`` count (``c``: two stores commute as
counts do, a read of the whole page sees them). An access of more words of a page
than ``WORDS`` reads the whole page (``page`` and ``stores``) or writes it. A page
fault (first touch, copy-on-write) writes its mm, ``frames`` and the page it copies
or maps. So two threads' stores to different words of one page commute, and a
fault, a copy, or a whole-page access conflicts with every word of it. ``c`` on
``users``: mm_users changing and staying above zero. Any op not declared here is
the whole mm.
"""

from __future__ import annotations

from typing import Any

from ukernel import abi

PAGE = abi.PAGE_SIZE
WORD = 4
#: Above this many words of one page an access touches the page as a whole (fewer objects).
WORDS = 16
FRAMES = ("frames", 0, "w")
Touched = list[tuple[str, Any, str]]


def access(mm: Any, args: dict, n: int, write: bool) -> Touched:
    """A load or store of ``n`` bytes at ``addr``, as the page table is now: each page's words
    or the whole page, and where a page would fault its mm, the allocator and the frame the
    fault copies or maps (a bad address faults nothing but raises EFAULT: reading the mm is
    all it does)."""
    m = mm.mms[args["mm"]]
    addr = args["addr"]
    end = addr + max(n, 1)
    out: Touched = []
    faults = False
    for vpn in range(addr // PAGE, (end - 1) // PAGE + 1):
        pfn = m.pfn_of.get(vpn)
        if pfn is None or (write and vpn not in m.writable):
            faults = True
            out += _fault(mm, m, vpn, pfn)
        else:
            lo, hi = max(addr, vpn * PAGE), min(end, (vpn + 1) * PAGE)
            out += _bytes(pfn, lo - vpn * PAGE, hi - vpn * PAGE, write)
    return out + ([("mm", args["mm"], "w"), FRAMES] if faults else [("mm", args["mm"], "r")])


def _fault(mm: Any, m: Any, vpn: int, pfn: int | None) -> Touched:
    """A page that faults: the frame the handler copies or reuses (copy-on-write), or the
    MAP_SHARED frame another mapping faulted in already, written whole; a fresh frame is
    only the allocator's (which the caller adds)."""
    if pfn is None:
        pfn = _shared_frame(mm, m, vpn)
    return [] if pfn is None else [("page", pfn, "w")]


def _shared_frame(mm: Any, m: Any, vpn: int) -> int | None:
    """The frame a first touch of ``vpn`` maps when it is a MAP_SHARED page that exists."""
    addr = vpn * PAGE
    vma = next((v for v in m.vmas if v.start <= addr < v.end), None)
    if vma is None or vma.shm is None:
        return None
    return mm.shmem[vma.shm].pages.get(vma.pgoff + vpn - vma.start // PAGE)


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


def read_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, args["n"], False)


def write_mem(mm: Any, args: dict) -> Touched:
    return access(mm, args, len(args["data"]), True)


def cmpxchg(mm: Any, args: dict) -> Touched:
    """A store of one word, or only its load where the compare will fail (the word is there
    and holds another value: the handler then reads and stores nothing), as a failed
    compare-and-swap is a load in a memory model: two failed ones commute."""
    current = _current(mm, args)
    return access(mm, args, WORD, current is None or current == args["old"] & 0xFFFFFFFF)


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
    """mm_init: a new mm from the allocator (its pgd frame, its number)."""
    return [FRAMES]


def dup_mm(mm: Any, args: dict) -> Touched:
    """The parent's write bits are cleared (copy-on-write) and every frame gains a reference."""
    return [("mm", args["mm"], "w"), FRAMES]


def share_mm(mm: Any, args: dict) -> Touched:
    return [("users", args["mm"], "c")]


def mmput(mm: Any, args: dict) -> Touched:
    """A user goes; the last one's exit_mmap gives every frame back. Its VMAs and page table
    are no one's then: a step that reads them is a user's, whose own mmput (a count change,
    which this write of the count conflicts with) comes first, so the two never meet."""
    if mm.mms[args["mm"]].mm_users > 1:
        return [("users", args["mm"], "c")]
    return [("users", args["mm"], "w"), FRAMES]


def remap(mm: Any, args: dict) -> Touched:
    """mmap, munmap, brk: the VMAs, and frames freed or a shared mapping made."""
    return [("mm", args["mm"], "w"), FRAMES]


def mprotect(mm: Any, args: dict) -> Touched:
    return [("mm", args["mm"], "w")]
