"""mm: address spaces, page tables and physical frames (read it next to Linux's mm/).

An address space is an ``MmStruct`` (struct mm_struct): a sorted list of
``VMA`` (struct vm_area_struct) saying which addresses are valid and with what
rights, and a page table saying which of those pages have a physical frame
yet. Nothing is allocated when memory is mapped: a frame appears only when a
page is first touched (a page fault, ``handle_mm_fault``). fork does not copy
memory either (``dup_mm``): parent and child share every private frame
read-only, and the first write to one copies it (copy-on-write, ``do_wp_page``).
So a frame can be mapped many times, and its refcount says how many: the frame
is free again only when the last mapping goes. The fault handler is mm_fault.py;
it reports every fault into the trace.

The page table is kept as two maps rather than one dict of PTE objects:
``pfn_of`` (vpn -> pfn, the frame each present page maps) and ``writable``
(the set of vpns whose PTE has the write bit). A PTE is "present" when its vpn
is in ``pfn_of``; it is writable when its vpn is also in ``writable``. The
split is for fork: copying a page table is then one ``dict.copy()``,
write-protecting every private PTE is one set operation, and raising the
frames' refcounts is one ``Counter.update`` -- all loops run in C, as the real
copy_page_range does, instead of one Python object per page.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections import Counter
from dataclasses import dataclass, field, replace

from ukernel import abi
from ukernel.ipc.service import Call, Service, get, op, touches

from . import mm_footprint as fp
from .mm_fault import FaultOps

PAGE = abi.PAGE_SIZE
TASK_SIZE = 0x7FFFFFFFF000  # top of x86-64 user space (TASK_SIZE_MAX)
STACK_TOP = TASK_SIZE
STACK_PAGES = abi.STACK_SIZE // PAGE
CODE_START = 0x400000  # where x86-64 executables are linked
MMAP_MIN_ADDR = 0x10000  # vm.mmap_min_addr: the low pages stay unmapped, so NULL derefs fault
MIN_GAP = 128 * 1024 * 1024  # mmap_base sits this far below the stack (arch/x86/mm/mmap.c)
PROT_ALL = abi.PROT_READ | abi.PROT_WRITE | abi.PROT_EXEC
LAYOUT = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack", "mmap_base")


def page_align(n: int) -> int:
    """PAGE_ALIGN: round up to a page boundary."""
    return (n + PAGE - 1) & ~(PAGE - 1)


@dataclass(slots=True)
class VMA:
    """vm_area_struct: pages [start, end) with the same rights and the same backing."""

    start: int
    end: int
    prot: int
    flags: int  # MAP_PRIVATE or MAP_SHARED
    name: str = ""  # "[heap]", "[stack]", a file's path, "" (anonymous): as /proc/PID/maps shows it
    shm: int | None = None  # the Shmem object behind a MAP_SHARED mapping
    pgoff: int = 0  # page index of ``start`` inside that object (or inside the file)
    dev: int = 0  # the file's device and inode (vm_file), 0 for an anonymous mapping
    ino: int = 0

    def dup(self) -> VMA:
        """vm_area_dup: the same fields in a new VMA (a fork copies every one; dataclasses.replace
        costs four times as much)."""
        return VMA(self.start, self.end, self.prot, self.flags, self.name, self.shm, self.pgoff, self.dev, self.ino)

    def mergeable(self, nxt: VMA) -> bool:
        """is_mergeable_vma: touching, same rights, same backing at contiguous offsets."""
        same = (self.prot, self.flags, self.name, self.shm, self.ino) == (
            nxt.prot,
            nxt.flags,
            nxt.name,
            nxt.shm,
            nxt.ino,
        )
        backed = self.shm is not None or self.ino
        contiguous = not backed or self.pgoff + (self.end - self.start) // PAGE == nxt.pgoff
        return self.end == nxt.start and same and contiguous

    def perms(self) -> str:
        bits = (abi.PROT_READ, abi.PROT_WRITE, abi.PROT_EXEC)
        rwx = "".join(c if self.prot & bit else "-" for c, bit in zip("rwx", bits, strict=True))
        return rwx + ("s" if self.flags & abi.MAP_SHARED else "p")


@dataclass(slots=True)
class Shmem:
    """What a MAP_SHARED|MAP_ANONYMOUS mapping maps (mm/shmem.c): an object owning its pages.

    Its pages must outlive any one PTE: after fork, a page first touched by the
    child must be the very page the parent sees. So the object holds one
    reference on each of its frames, as the page cache does, until its last VMA goes.
    """

    pages: dict[int, int] = field(default_factory=dict)  # page index -> pfn
    vmas: int = 1


@dataclass(eq=False, slots=True)
class MmStruct:
    """mm_struct: the VMAs, the page table, and who uses it (mm_users; CLONE_VM threads share one)."""

    pgd: int  # the frame holding the page-table root (pgd_alloc): page tables cost memory too
    vmas: list[VMA] = field(default_factory=list)
    # The page table (all levels flattened), as two maps; see the module docstring.
    pfn_of: dict[int, int] = field(default_factory=dict)  # vpn -> pfn: the present PTEs
    writable: set[int] = field(default_factory=set)  # vpns whose PTE lets a write through
    mm_users: int = 1
    start_code: int = 0
    end_code: int = 0
    start_data: int = 0
    end_data: int = 0
    start_brk: int = 0
    brk: int = 0
    start_stack: int = 0
    mmap_base: int = 0
    min_flt: int = 0
    maj_flt: int = 0  # a major fault waits for I/O (swap, files); ukernel has neither, so it stays 0
    cow_breaks: int = 0
    hiwater_rss: int = 0  # the most pages ever resident (getrusage's maxrss)

    def layout(self) -> dict:
        return {key: getattr(self, key) for key in LAYOUT}


MAPS_NAME_COLUMN = 25 + 8 * 6 - 1  # show_vma_header_prefix's seq_setwidth on a 64-bit kernel
SHARED_ANON_NAME = "/dev/zero (deleted)"  # shmem_zero_setup's file: how Linux names MAP_SHARED|MAP_ANONYMOUS


def map_line(v: VMA) -> str:
    """One /proc/PID/maps line: range, rights, offset, device, inode, then the name."""
    head = f"{v.start:08x}-{v.end:08x} {v.perms()} {v.pgoff * PAGE if v.ino else 0:08x} "
    head += f"{os.major(v.dev):02x}:{os.minor(v.dev):02x} {v.ino} "
    name = v.name or (SHARED_ANON_NAME if v.shm is not None else "")
    return f"{head:<{MAPS_NAME_COLUMN}} {name}" if name else head


def _start(vma: VMA) -> int:
    return vma.start


class MmService(FaultOps, Service):
    name = "mm"
    calls = frozenset()
    takes = {"memory": "memory"}  # Config field -> keyword of __init__ (services.build)
    never_waits = True  # no handler waits: a node may run requests in its reader

    def __init__(self, memory: int = 64 * 1024 * 1024):
        super().__init__()
        if memory < PAGE:
            raise ValueError(f"memory must hold at least one {PAGE}-byte frame")
        self.nframes = memory // PAGE
        # pfn -> references (struct page's _refcount); frames in use only, a count never stays at 0
        self.refcount: Counter[int] = Counter()
        self.data: dict[int, bytearray] = {}  # frame contents, created on first write: absent = zeros
        self.free: set[int] = set()  # freed frames, reused (lowest first) once no frame is left unused
        self.next_pfn = 0  # frames from here up were never used
        self.mms: dict[int, MmStruct] = {}
        self.shmem: dict[int, Shmem] = {}
        self._mm_ids = itertools.count(1)
        self._shm_ids = itertools.count(1)

    def next_handle(self) -> int:
        """mm numbers its mm_structs on their own (the reincarnation server reads where)."""
        first = next(self._mm_ids)
        self._mm_ids = itertools.count(first)
        return max(first, super().next_handle())

    def handles_from(self, first: int) -> None:
        super().handles_from(first)
        self._mm_ids = itertools.count(first)

    # --- physical frames (the page allocator) ---------------------------------
    def _alloc_frame(self) -> int:
        """alloc_page: a free frame with refcount 1, or ENOMEM (the OOM case).

        A frame never used comes first, then the lowest freed one: so which frame an
        allocation gets does not depend on frees that came before it while unused frames are
        left (no program sees a frame's number), and explore can let an exit's frees commute
        with another process's fork or fault (mm_footprint.py)."""
        if self.next_pfn < self.nframes:
            pfn, self.next_pfn = self.next_pfn, self.next_pfn + 1
        elif self.free:
            pfn = min(self.free)
            self.free.remove(pfn)
        else:
            raise abi.kernel_error(abi.ENOMEM, f"out of memory: all {self.nframes} frames are in use")
        self.refcount[pfn] = 1
        return pfn

    def _put_frame(self, pfn: int) -> None:
        """put_page: drop one reference; the last one frees the frame."""
        self.refcount[pfn] -= 1
        if self.refcount[pfn] == 0:
            del self.refcount[pfn]
            self.data.pop(pfn, None)
            self.free.add(pfn)

    # --- VMAs -----------------------------------------------------------------
    def _mm(self, handle: int) -> MmStruct:
        return get(self.mms, handle, "mm_struct")

    def _vma_index(self, m: MmStruct, addr: int) -> int:
        """Index of the VMA containing addr, or -1 (find_vma, by bisection on the sorted list)."""
        i = bisect.bisect_right(m.vmas, addr, key=_start) - 1
        return i if i >= 0 and addr < m.vmas[i].end else -1

    def _overlaps(self, m: MmStruct, start: int, end: int) -> bool:
        return any(v.start < end and start < v.end for v in m.vmas)

    def _split(self, m: MmStruct, addr: int) -> None:
        """split_vma: cut the VMA straddling addr in two, so a range can start or end there."""
        i = self._vma_index(m, addr)
        if i < 0 or m.vmas[i].start == addr:
            return
        vma = m.vmas[i]
        m.vmas.insert(i + 1, replace(vma, start=addr, pgoff=vma.pgoff + (addr - vma.start) // PAGE))
        vma.end = addr
        if vma.shm is not None:
            self.shmem[vma.shm].vmas += 1

    def _range(self, m: MmStruct, start: int, end: int) -> list[VMA]:
        """The VMAs inside [start, end), after splitting those that cross its edges."""
        self._split(m, start)
        self._split(m, end)
        return [v for v in m.vmas if start <= v.start and v.end <= end]

    def _merge(self, m: MmStruct) -> None:
        """vma_merge over the whole list: neighbours that agree become one VMA again."""
        merged: list[VMA] = []
        for vma in m.vmas:
            if merged and merged[-1].mergeable(vma):
                merged[-1].end = vma.end
                if vma.shm is not None:
                    self.shmem[vma.shm].vmas -= 1
            else:
                merged.append(vma)
        m.vmas = merged

    def _insert(self, m: MmStruct, vma: VMA) -> None:
        bisect.insort(m.vmas, vma, key=_start)
        self._merge(m)

    def _present(self, m: MmStruct, start: int, end: int) -> list[int]:
        """The vpns in [start, end) that have a PTE (walking whichever is smaller)."""
        lo, hi = start // PAGE, end // PAGE
        if hi - lo <= len(m.pfn_of):
            return [vpn for vpn in range(lo, hi) if vpn in m.pfn_of]
        return [vpn for vpn in m.pfn_of if lo <= vpn < hi]

    @staticmethod
    def _in_range(vpns: set[int], lo: int, hi: int) -> set[int]:
        """The members of vpns in [lo, hi) (walking whichever is smaller)."""
        if hi - lo <= len(vpns):
            return vpns.intersection(range(lo, hi))
        return {vpn for vpn in vpns if lo <= vpn < hi}

    def _unmap(self, m: MmStruct, start: int, end: int) -> None:
        """do_vmi_munmap: remove the VMAs in [start, end) and zap their PTEs (unmap_page_range)."""
        gone = self._range(m, start, end)
        m.vmas = [v for v in m.vmas if not (start <= v.start and v.end <= end)]
        present = self._present(m, start, end)
        m.writable.difference_update(present)
        for vpn in present:
            self._put_frame(m.pfn_of.pop(vpn))
        for vma in gone:
            if vma.shm is not None:
                obj = self.shmem[vma.shm]
                obj.vmas -= 1
                if obj.vmas == 0:  # the last mapping: the object and its pages go
                    for pfn in obj.pages.values():
                        self._put_frame(pfn)
                    del self.shmem[vma.shm]

    def _get_unmapped_area(self, m: MmStruct, hint: int, length: int) -> int:
        """The hint if that range is free, else the highest free gap below mmap_base (top-down)."""
        if hint and MMAP_MIN_ADDR <= hint <= TASK_SIZE - length and not self._overlaps(m, hint, hint + length):
            return hint
        end = m.mmap_base
        for vma in reversed(m.vmas):
            if vma.start >= end:
                continue
            if vma.end <= end - length:
                break
            end = vma.start
        if end - length < MMAP_MIN_ADDR:
            raise abi.kernel_error(abi.ENOMEM, f"no free gap of {length} bytes below mmap_base")
        return end - length

    # --- address spaces: exec, fork, exit -------------------------------------
    @op
    @touches(fp.new_mm)
    async def mm_init(self, req: Call, code_size: int = PAGE, exe: str = "", dev: int = 0, ino: int = 0) -> dict:
        """A fresh address space with the standard layout, for execve: the code and data
        are mappings of the executable ``exe`` (its path, device and inode: /proc/PID/maps)."""
        if code_size < 0:
            raise abi.kernel_error(abi.EINVAL, f"negative code_size {code_size}")
        if CODE_START + page_align(code_size) + PAGE > STACK_TOP - MIN_GAP:
            raise abi.kernel_error(abi.ENOMEM, f"code of {code_size} bytes does not fit below mmap_base")
        m = MmStruct(pgd=self._alloc_frame())
        m.start_code, m.end_code = CODE_START, CODE_START + page_align(max(code_size, 1))  # never empty
        m.start_data, m.end_data = m.end_code, m.end_code + PAGE
        m.start_brk = m.brk = m.end_data  # the heap starts empty; brk grows it
        m.start_stack, m.mmap_base = STACK_TOP, STACK_TOP - MIN_GAP
        private, rw = abi.MAP_PRIVATE, abi.PROT_READ | abi.PROT_WRITE
        data_pgoff = (m.end_code - m.start_code) // PAGE  # the data follows the code in the file
        m.vmas = [
            VMA(m.start_code, m.end_code, abi.PROT_READ | abi.PROT_EXEC, private, exe, dev=dev, ino=ino),
            VMA(m.start_data, m.end_data, rw, private, exe, pgoff=data_pgoff, dev=dev, ino=ino),
            VMA(STACK_TOP - STACK_PAGES * PAGE, STACK_TOP, rw, private, "[stack]"),
        ]
        handle = next(self._mm_ids)
        self.mms[handle] = m
        return {"mm": handle, **m.layout()}

    @op
    @touches(fp.dup_mm)
    async def dup_mm(self, req: Call, mm: int) -> dict:
        """fork without CLONE_VM (dup_mm/dup_mmap): same VMAs, frames shared, nothing copied.

        Private pages become read-only in BOTH address spaces, so whichever
        side writes first takes a fault and gets its own copy; shared pages
        stay writable, that is the point of MAP_SHARED.

        With the page table as two maps this is copy_page_range done in bulk:
        the child's vpn -> pfn map is a copy of the parent's, the write bits
        that survive (those in MAP_SHARED VMAs) are found with set operations,
        and every mapped frame gains one reference in a single Counter.update.
        """
        parent = self._mm(mm)
        child = MmStruct(pgd=self._alloc_frame(), **parent.layout())  # the only allocation: fails cleanly
        child.vmas = [v.dup() for v in parent.vmas]
        for vma in child.vmas:
            if vma.shm is not None:
                self.shmem[vma.shm].vmas += 1
        # copy_present_pte: write-protect every private PTE, the parent's too; only
        # PTEs inside the (few) MAP_SHARED VMAs keep their write bit.
        keep: set[int] = set()
        for vma in parent.vmas:
            if vma.shm is not None and parent.writable:
                keep |= self._in_range(parent.writable, vma.start // PAGE, vma.end // PAGE)
        parent.writable = keep
        child.writable = set(keep)
        child.pfn_of = parent.pfn_of.copy()
        self.refcount.update(parent.pfn_of.values())  # get_page on every mapped frame
        handle = next(self._mm_ids)
        self.mms[handle] = child
        return {"mm": handle}

    @op
    @touches(fp.share_mm)
    async def share_mm(self, req: Call, mm: int) -> dict:
        """clone with CLONE_VM: the new thread uses the same mm, one more user."""
        m = self._mm(mm)
        m.mm_users += 1
        return {"mm": mm, "users": m.mm_users}

    @op
    @touches(fp.mmput)
    async def mmput(self, req: Call, mm: int) -> dict:
        """A user is done (exit, execve); the last one tears the address space down (exit_mmap)."""
        m = self._mm(mm)
        m.mm_users -= 1
        if m.mm_users == 0:
            self._unmap(m, 0, TASK_SIZE)
            self._put_frame(m.pgd)
            del self.mms[mm]
        return {"users": m.mm_users}

    @op
    async def mm_release(self, req: Call, mm: int, clear_child_tid: int) -> dict:
        """A thread leaves its mm: zero its clear_child_tid word if others still use the mm.

        That zero (and the futex wake the kernel sends after it) is how
        pthread_join learns the thread is gone. A bad address is ignored, as in Linux.
        """
        m = self._mm(mm)
        if not clear_child_tid or m.mm_users <= 1:
            return {"cleared": False}
        try:
            self._write(m, clear_child_tid, bytes(4))
        except OSError:
            return {"cleared": False}
        return {"cleared": True}

    # --- system calls -----------------------------------------------------------
    @op
    @touches(fp.mmap)
    async def mmap(self, req: Call, mm: int, addr: int, length: int, prot: int, flags: int) -> int:
        """Map anonymous memory; no frame is allocated until a page is touched."""
        m = self._mm(mm)
        kind = flags & (abi.MAP_SHARED | abi.MAP_PRIVATE)
        if kind not in (abi.MAP_SHARED, abi.MAP_PRIVATE):
            raise abi.kernel_error(abi.EINVAL, "mmap needs exactly one of MAP_SHARED and MAP_PRIVATE")
        if not flags & abi.MAP_ANONYMOUS:
            raise abi.kernel_error(abi.ENOSYS, "only MAP_ANONYMOUS mappings: file mappings come with the vfs")
        if length <= 0 or prot & ~PROT_ALL:
            raise abi.kernel_error(abi.EINVAL, f"bad length {length} or prot {prot:#x}")
        length = page_align(length)
        if length > TASK_SIZE - MMAP_MIN_ADDR:
            raise abi.kernel_error(abi.ENOMEM, f"{length} bytes do not fit in the address space")
        if length > self.nframes * PAGE:  # heuristic overcommit (mode 0): more than all of RAM is refused
            raise abi.kernel_error(abi.ENOMEM, f"{length} bytes are more than the machine's {self.nframes * PAGE}")
        if flags & abi.MAP_FIXED:
            if addr % PAGE:
                raise abi.kernel_error(abi.EINVAL, f"MAP_FIXED address {addr:#x} is not page aligned")
            if addr < MMAP_MIN_ADDR:
                raise abi.kernel_error(abi.EPERM, f"{addr:#x} is below mmap_min_addr {MMAP_MIN_ADDR:#x}")
            if addr > TASK_SIZE - length:
                raise abi.kernel_error(abi.ENOMEM, f"[{addr:#x}, +{length:#x}) runs past user space")
        else:
            addr = self._get_unmapped_area(m, page_align(max(addr, 0)), length)
        self._unmap(m, addr, addr + length)  # MAP_FIXED replaces whatever was there
        vma = VMA(addr, addr + length, prot, kind)
        if kind == abi.MAP_SHARED:
            vma.shm = next(self._shm_ids)
            self.shmem[vma.shm] = Shmem()
        self._insert(m, vma)
        return addr

    @op
    @touches(fp.munmap)
    async def munmap(self, req: Call, mm: int, addr: int, length: int) -> int:
        """Unmap [addr, addr+length): holes in the range are fine, as in Linux."""
        m = self._mm(mm)
        end = addr + page_align(length)
        if addr % PAGE or length <= 0 or addr < 0 or end > TASK_SIZE:
            raise abi.kernel_error(abi.EINVAL, f"munmap({addr:#x}, {length}): unaligned or out of range")
        self._unmap(m, addr, end)
        return 0

    @op
    @touches(fp.mprotect)
    async def mprotect(self, req: Call, mm: int, addr: int, length: int, prot: int) -> int:
        """Change rights on [addr, addr+length); removing write also write-protects the PTEs."""
        m = self._mm(mm)
        if addr % PAGE or length < 0 or prot & ~PROT_ALL:
            raise abi.kernel_error(abi.EINVAL, f"mprotect({addr:#x}, {length}, {prot:#x})")
        end = addr + page_align(length)
        pos = addr
        for vma in m.vmas:  # the whole range must be mapped (checked before changing anything)
            if vma.start <= pos < vma.end:
                pos = vma.end
        if pos < end:
            raise abi.kernel_error(abi.ENOMEM, f"mprotect: {pos:#x} in [{addr:#x}, {end:#x}) is not mapped")
        for vma in self._range(m, addr, end):
            vma.prot = prot
        if not prot & abi.PROT_WRITE:
            m.writable.difference_update(self._present(m, addr, end))
        self._merge(m)
        return 0

    @op
    @touches(fp.brk)
    async def brk(self, req: Call, mm: int, addr: int) -> int:
        """Move the end of the heap; answer the break now in force (the old one on failure, as Linux)."""
        m = self._mm(mm)
        if addr < m.start_brk or addr > TASK_SIZE:
            return m.brk  # brk(0) is how programs ask where the break is
        old, new = page_align(m.brk), page_align(addr)
        if new < old:
            self._unmap(m, new, old)
        elif new > old:
            if self._overlaps(m, old, new + PAGE):  # would run into the next mapping (keep a guard page)
                return m.brk
            self._insert(m, VMA(old, new, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_PRIVATE, "[heap]"))
        m.brk = addr
        return addr

    # --- user memory (copy_from_user / copy_to_user) ----------------------------
    @op
    @touches(fp.read_mem)
    async def read_mem(self, req: Call, mm: int, addr: int, n: int) -> bytes:
        """n bytes at addr, faulting pages in as the CPU would."""
        m = self._mm(mm)
        if n < 0:
            raise abi.kernel_error(abi.EINVAL, f"negative length {n}")
        out = bytearray()
        for vpn, vma in self._check_access(m, addr, n, write=False):
            pfn = self._handle_mm_fault(m, vma, vpn, max(addr, vpn * PAGE), write=False)
            lo, hi = max(addr, vpn * PAGE) - vpn * PAGE, min(addr + n, (vpn + 1) * PAGE) - vpn * PAGE
            frame = self.data.get(pfn)
            out += frame[lo:hi] if frame is not None else bytes(hi - lo)
        return bytes(out)

    @op
    @touches(fp.write_mem)
    async def write_mem(self, req: Call, mm: int, addr: int, data: bytes) -> int:
        """Write data at addr; a write may fault a page in or break copy-on-write."""
        return self._write(self._mm(mm), addr, bytes(data))

    @op
    @touches(fp.cmpxchg)
    async def cmpxchg(self, req: Call, mm: int, addr: int, old: int, new: int) -> int:
        """The CPU's atomic compare-and-exchange on a 4-byte word: one message, so atomic."""
        current = int.from_bytes(await self.read_mem(req, mm, addr, 4), "little")
        if current == old & 0xFFFFFFFF:
            self._write(self._mm(mm), addr, (new & 0xFFFFFFFF).to_bytes(4, "little"))
        return current

    def _write(self, m: MmStruct, addr: int, data: bytes) -> int:
        done = 0
        for vpn, vma in self._check_access(m, addr, len(data), write=True):
            pfn = self._handle_mm_fault(m, vma, vpn, max(addr, vpn * PAGE), write=True)
            lo = max(addr, vpn * PAGE) - vpn * PAGE
            chunk = data[done : done + PAGE - lo]
            self.data.setdefault(pfn, bytearray(PAGE))[lo : lo + len(chunk)] = chunk
            done += len(chunk)
        return done

    # --- introspection ------------------------------------------------------------
    @op
    async def status(self, req: Call, mm: int) -> dict:
        """The Vm* lines of /proc/PID/status, in kB (task_mem in fs/proc/task_mmu.c)."""
        m = self._mm(mm)

        def kb(vmas: list) -> int:
            return sum(v.end - v.start for v in vmas) // 1024

        private_rw = [v for v in m.vmas if v.prot & abi.PROT_WRITE and v.shm is None and v.name != "[stack]"]
        return {
            "VmSize": kb(m.vmas),
            "VmHWM": m.hiwater_rss * PAGE // 1024,
            "VmRSS": len(m.pfn_of) * PAGE // 1024,
            "VmData": kb(private_rw),
            "VmStk": kb([v for v in m.vmas if v.name == "[stack]"]),
            "VmExe": (m.end_code - m.start_code) // 1024,
        }

    @op
    async def mm_stat(self, req: Call, mm: int) -> dict:
        """vm_size in bytes and rss in pages, as /proc/PID/stat's vsize and rss."""
        m = self._mm(mm)
        vm_size = sum(v.end - v.start for v in m.vmas)
        counts = {
            "min_flt": m.min_flt,
            "maj_flt": m.maj_flt,
            "cow": m.cow_breaks,
            "vmas": len(m.vmas),
            "hiwater_rss": m.hiwater_rss,
        }
        return {"users": m.mm_users, "vm_size": vm_size, "rss": len(m.pfn_of), **counts, **m.layout()}

    @op
    async def maps(self, req: Call, mm: int) -> list[str]:
        """/proc/PID/maps: one line per VMA, as show_map_vma prints it (the name padded to
        column 73; an anonymous mapping's line ends with the space before the name)."""
        return [map_line(v) for v in self._mm(mm).vmas]

    @op
    async def meminfo(self, req: Call) -> dict:
        """si_meminfo and the page counters /proc/meminfo shows, in pages: every frame in
        use is a page table root, a shmem page (MAP_SHARED) or an anonymous page."""
        shmem = {pfn for obj in self.shmem.values() for pfn in obj.pages.values()}
        tables = {m.pgd for m in self.mms.values()}
        anon = {pfn for m in self.mms.values() for pfn in m.pfn_of.values()} - shmem
        return {
            "total": self.nframes,
            "free": self.nframes - len(self.refcount),
            "anon": len(anon),
            "shmem": len(shmem),
            "page_tables": len(tables),
            "committed": sum(  # vm_committed_as: what private writable mappings could come to use
                (v.end - v.start) // PAGE
                for m in self.mms.values()
                for v in m.vmas
                if v.prot & abi.PROT_WRITE and v.shm is None
            ),
        }

    @op
    async def accounting(self, req: Call) -> dict:
        users = sum(m.mm_users for m in self.mms.values())
        frames = {"frames": len(self.refcount), "frame_refs": sum(self.refcount.values())}
        return {"faults": len(self.faults), "mms": len(self.mms), "users": users, **frames}

    @op
    async def check(self, req: Call) -> list[str]:
        return self._check()

    def _check(self) -> list[str]:
        """Every invariant of this file; the problems found, empty when all hold."""
        problems: list[str] = []
        refs: Counter[int] = Counter()
        shm_vmas: Counter[int] = Counter()
        for h, m in self.mms.items():
            refs[m.pgd] += 1
            if m.mm_users < 1:
                problems.append(f"mm {h}: mm_users {m.mm_users}")
            for prev, vma in zip([None, *m.vmas], m.vmas, strict=False):
                if vma.start >= vma.end or vma.start % PAGE or vma.end % PAGE:
                    problems.append(f"mm {h}: bad VMA {vma}")
                if prev is not None and prev.end > vma.start:
                    problems.append(f"mm {h}: VMAs overlap or are unsorted: {prev} {vma}")
                if prev is not None and prev.mergeable(vma):
                    problems.append(f"mm {h}: VMAs not merged: {prev} {vma}")
                if vma.shm is not None:
                    shm_vmas[vma.shm] += 1
            refs.update(m.pfn_of.values())
            for vpn in sorted(m.writable - m.pfn_of.keys()):
                problems.append(f"mm {h}: write bit on {vpn:#x}, which has no PTE")
            for vpn, pfn in m.pfn_of.items():
                writable = vpn in m.writable
                i = self._vma_index(m, vpn * PAGE)
                if i < 0:
                    problems.append(f"mm {h}: PTE {vpn:#x} outside any VMA")
                elif writable and not m.vmas[i].prot & abi.PROT_WRITE:
                    problems.append(f"mm {h}: writable PTE {vpn:#x} in a read-only VMA")
                elif writable and m.vmas[i].shm is None and self.refcount.get(pfn) != 1:
                    problems.append(f"mm {h}: writable private PTE {vpn:#x} on a shared frame (COW broken)")
        for sid, obj in self.shmem.items():
            refs.update(obj.pages.values())
            if obj.vmas != shm_vmas[sid]:
                problems.append(f"shmem {sid}: counts {obj.vmas} VMAs, {shm_vmas[sid]} exist")
        for pfn in sorted(refs.keys() | self.refcount.keys()):
            if refs[pfn] != self.refcount.get(pfn, 0):
                problems.append(f"frame {pfn}: refcount {self.refcount.get(pfn, 0)}, {refs[pfn]} references")
        if len(self.free) + len(self.refcount) != self.next_pfn or self.free & self.refcount.keys():
            problems.append("free list and used frames disagree")
        if not self.data.keys() <= self.refcount.keys():
            problems.append("a free frame still has data")
        return problems
