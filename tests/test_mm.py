"""The mm service, through real messages: faults, copy-on-write, VMAs, brk."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.mm import MmService
from ukernel import abi
from ukernel.testing import service_client

PAGE = abi.PAGE_SIZE
R, W, X = abi.PROT_READ, abi.PROT_WRITE, abi.PROT_EXEC
RW = R | W
PRIVATE = abi.MAP_PRIVATE | abi.MAP_ANONYMOUS
SHARED = abi.MAP_SHARED | abi.MAP_ANONYMOUS
FIXED = abi.MAP_FIXED
BASE = 0x10000000  # a free area for MAP_FIXED mappings


def boot(pages: int = 1024):
    return service_client(MmService(memory=pages * PAGE))


async def errno_of(c, op: str, **args) -> tuple[int, str]:
    with pytest.raises(OSError) as info:
        await c.call(op, **args)
    return info.value.errno, str(info.value)


async def new_mm(c, **args) -> int:
    return (await c.call("mm_init", **args))["mm"]


async def stat(c, mm: int) -> dict:
    return await c.call("mm_stat", mm=mm)


async def test_layout_and_maps_lines_exact():
    async with boot() as c:
        layout = await c.call("mm_init", code_size=5000, exe="/bin/prog", dev=os.makedev(0, 1), ino=13)
        mm = layout["mm"]
        assert layout["start_code"] == 0x400000 and layout["end_code"] == 0x402000
        assert layout["start_data"] == 0x402000 and layout["end_data"] == 0x403000
        assert layout["start_brk"] == layout["brk"] == 0x403000
        assert layout["start_stack"] == 0x7FFFFFFFF000
        assert layout["mmap_base"] < 0x7FFFFFFFF000 - 8 * PAGE
        assert await c.call("brk", mm=mm, addr=0x403000 + 2 * PAGE) == 0x405000
        top = await c.call("mmap", mm=mm, addr=0, length=PAGE, prot=RW, flags=SHARED)
        assert top == layout["mmap_base"] - PAGE  # top-down from mmap_base
        anon = await c.call(
            "mmap", mm=mm, addr=0, length=PAGE, prot=abi.PROT_READ, flags=abi.MAP_PRIVATE | abi.MAP_ANONYMOUS
        )

        def at_73(head: str, name: str) -> str:  # show_map_vma starts the name at column 73
            return head + " " * (73 - len(head)) + name

        assert await c.call("maps", mm=mm) == [
            at_73("00400000-00402000 r-xp 00000000 00:01 13", "/bin/prog"),  # the binary's path, offset 0
            at_73("00402000-00403000 rw-p 00002000 00:01 13", "/bin/prog"),  # its data, 2 pages in
            at_73("00403000-00405000 rw-p 00000000 00:00 0 ", "[heap]"),
            f"{anon:08x}-{anon + PAGE:08x} r--p 00000000 00:00 0 ",  # anonymous: no name, the space stays
            at_73(f"{top:08x}-{top + PAGE:08x} rw-s 00000000 00:00 0 ", "/dev/zero (deleted)"),
            at_73("7fffffff7000-7ffffffff000 rw-p 00000000 00:00 0 ", "[stack]"),
        ]
        st_ = await stat(c, mm)
        assert st_["vmas"] == 6 and st_["vm_size"] == (2 + 1 + 2 + 1 + 1 + 8) * PAGE and st_["users"] == 1
        assert await c.call("check") == []


async def test_lazy_allocation_and_faults():
    async with boot() as c:
        mm = await new_mm(c)
        base = (await c.call("accounting"))["frames"]
        addr = await c.call("mmap", mm=mm, addr=0, length=16 * PAGE, prot=RW, flags=PRIVATE)
        assert (await stat(c, mm))["rss"] == 0
        assert (await c.call("accounting"))["frames"] == base
        assert await c.call("write_mem", mm=mm, addr=addr + 3 * PAGE + 5, data=b"hi") == 2
        assert await c.call("read_mem", mm=mm, addr=addr + 7 * PAGE, n=8) == bytes(8)  # zero filled
        s = await stat(c, mm)
        assert (s["rss"], s["min_flt"], s["maj_flt"]) == (2, 2, 0)
        assert await c.call("read_mem", mm=mm, addr=addr + 3 * PAGE + 4, n=4) == b"\0hi\0"
        assert (await stat(c, mm))["min_flt"] == 2  # present pages do not fault again


async def test_read_write_across_page_boundaries():
    async with boot() as c:
        mm = await new_mm(c)
        addr = await c.call("mmap", mm=mm, addr=0, length=4 * PAGE, prot=RW, flags=PRIVATE)
        data = bytes(range(256)) * 40  # 10240 bytes from addr+4000: pages 0..3
        assert await c.call("write_mem", mm=mm, addr=addr + 4000, data=data) == len(data)
        assert await c.call("read_mem", mm=mm, addr=addr + 4000, n=len(data)) == data
        assert await c.call("read_mem", mm=mm, addr=addr, n=0) == b""
        assert (await stat(c, mm))["rss"] == 4
        err, msg = await errno_of(c, "write_mem", mm=mm, addr=addr + 4 * PAGE - 2, data=b"abcd")
        assert err == abi.EFAULT and f"{addr + 4 * PAGE:#x}" in msg and "SIGSEGV" in msg
        assert await c.call("read_mem", mm=mm, addr=addr + 4 * PAGE - 2, n=2) == bytes(2)  # checked first


async def test_cow_after_dup_mm():
    async with boot() as c:
        parent = await new_mm(c)
        addr = await c.call("mmap", mm=parent, addr=0, length=2 * PAGE, prot=RW, flags=PRIVATE)
        await c.call("write_mem", mm=parent, addr=addr, data=b"parent")
        await c.call("write_mem", mm=parent, addr=addr + PAGE, data=b"second")
        before = await c.call("accounting")
        child = (await c.call("dup_mm", mm=parent))["mm"]
        after = await c.call("accounting")
        assert after["frames"] == before["frames"] + 1  # only the child's pgd: no page copied
        assert after["frame_refs"] == before["frame_refs"] + 1 + 2  # both pages now mapped twice
        assert (await stat(c, child))["rss"] == 2
        assert await c.call("read_mem", mm=child, addr=addr, n=6) == b"parent"

        await c.call("write_mem", mm=child, addr=addr, data=b"CH")  # the copy keeps the rest of the page
        assert await c.call("read_mem", mm=child, addr=addr, n=6) == b"CHrent"
        assert await c.call("read_mem", mm=parent, addr=addr, n=6) == b"parent"
        assert (await stat(c, child))["cow"] == 1
        assert (await c.call("accounting"))["frames"] == after["frames"] + 1  # copied on write only

        # The parent is now the last holder of page 0: its write reuses the frame.
        await c.call("write_mem", mm=parent, addr=addr, data=b"PARENT")
        s = await stat(c, parent)
        assert s["cow"] == 0 and s["min_flt"] == 2 + 1  # two first touches, one write-protect fault
        assert (await c.call("accounting"))["frames"] == after["frames"] + 1
        assert await c.call("read_mem", mm=child, addr=addr, n=6) == b"CHrent"
        assert await c.call("check") == []

        # Once the child is gone, the parent's shared second page is reused too.
        assert await c.call("mmput", mm=child) == {"users": 0}
        await c.call("write_mem", mm=parent, addr=addr + PAGE, data=b"SECOND")
        assert (await stat(c, parent))["cow"] == 0
        assert (await c.call("accounting"))["frames"] == before["frames"]
        assert await c.call("check") == []


async def test_shared_mapping_survives_fork():
    async with boot() as c:
        parent = await new_mm(c)
        addr = await c.call("mmap", mm=parent, addr=0, length=2 * PAGE, prot=RW, flags=SHARED)
        await c.call("write_mem", mm=parent, addr=addr, data=b"before")
        child = (await c.call("dup_mm", mm=parent))["mm"]
        await c.call("write_mem", mm=child, addr=addr, data=b"child")
        await c.call("write_mem", mm=child, addr=addr + PAGE, data=b"late")  # untouched at fork
        assert await c.call("read_mem", mm=parent, addr=addr, n=6) == b"childe"
        assert await c.call("read_mem", mm=parent, addr=addr + PAGE, n=4) == b"late"
        assert (await stat(c, child))["cow"] == 0
        await c.call("munmap", mm=parent, addr=addr, length=2 * PAGE)
        assert await c.call("read_mem", mm=child, addr=addr, n=5) == b"child"
        assert await c.call("check") == []


async def test_split_shared_mapping_keeps_page_offsets():
    async with boot() as c:
        parent = await new_mm(c)
        addr = await c.call("mmap", mm=parent, addr=0, length=3 * PAGE, prot=RW, flags=SHARED)
        await c.call("write_mem", mm=parent, addr=addr, data=b"page0")
        await c.call("mprotect", mm=parent, addr=addr + PAGE, length=PAGE, prot=R)  # three VMAs now
        child = (await c.call("dup_mm", mm=parent))["mm"]
        await c.call("write_mem", mm=child, addr=addr + 2 * PAGE, data=b"page2")
        assert await c.call("read_mem", mm=parent, addr=addr + 2 * PAGE, n=5) == b"page2"
        assert await c.call("read_mem", mm=parent, addr=addr + PAGE, n=5) == bytes(5)
        await c.call("mprotect", mm=parent, addr=addr, length=3 * PAGE, prot=RW)
        assert len(await c.call("maps", mm=parent)) == 4  # merged back: same object, offsets contiguous
        assert await c.call("check") == []


async def test_share_mm_and_mmput():
    async with boot() as c:
        start = await c.call("accounting")
        mm = await new_mm(c)
        assert await c.call("share_mm", mm=mm) == {"mm": mm, "users": 2}
        await c.call("write_mem", mm=mm, addr=0x401000, data=b"thread")  # [data]
        assert await c.call("read_mem", mm=mm, addr=0x401000, n=6) == b"thread"
        child = (await c.call("dup_mm", mm=mm))["mm"]
        shared = await c.call("mmap", mm=mm, addr=0, length=PAGE, prot=RW, flags=SHARED)
        await c.call("write_mem", mm=mm, addr=shared, data=b"x")
        assert (await c.call("accounting"))["users"] == 3
        assert await c.call("mmput", mm=mm) == {"users": 1}
        assert await c.call("read_mem", mm=mm, addr=0x401000, n=6) == b"thread"  # still alive
        assert await c.call("mmput", mm=mm) == {"users": 0}
        assert (await errno_of(c, "mm_stat", mm=mm))[0] == abi.EINVAL
        await c.call("mmput", mm=child)
        assert await c.call("accounting") == start
        assert await c.call("check") == []


async def test_enomem_fails_cleanly():
    async with boot(pages=4) as c:
        mm = await new_mm(c)  # frame 1: the pgd
        addr = await c.call("mmap", mm=mm, addr=0, length=4 * PAGE, prot=RW, flags=PRIVATE)
        for i in range(3):
            await c.call("write_mem", mm=mm, addr=addr + i * PAGE, data=b"ok")
        assert (await errno_of(c, "write_mem", mm=mm, addr=addr + 3 * PAGE, data=b"no"))[0] == abi.ENOMEM
        assert (await errno_of(c, "dup_mm", mm=mm))[0] == abi.ENOMEM
        assert (await errno_of(c, "mm_init"))[0] == abi.ENOMEM
        acct = await c.call("accounting")
        assert (acct["mms"], acct["frames"]) == (1, 4)
        assert await c.call("check") == []
        await c.call("mmput", mm=mm)
        assert (await c.call("accounting"))["frames"] == 0


async def test_enomem_on_cow_break():
    async with boot(pages=3) as c:
        parent = await new_mm(c)
        await c.call("write_mem", mm=parent, addr=0x401000, data=b"data")
        child = (await c.call("dup_mm", mm=parent))["mm"]  # all 3 frames in use
        assert (await errno_of(c, "write_mem", mm=child, addr=0x401000, data=b"DATA"))[0] == abi.ENOMEM
        assert await c.call("read_mem", mm=child, addr=0x401000, n=4) == b"data"
        assert await c.call("check") == []
        await c.call("mmput", mm=parent)
        await c.call("write_mem", mm=child, addr=0x401000, data=b"DATA")  # last holder: reuse
        assert (await stat(c, child))["cow"] == 0
        assert await c.call("read_mem", mm=child, addr=0x401000, n=4) == b"DATA"


async def test_efault_outside_vmas_and_against_prot():
    async with boot() as c:
        mm = await new_mm(c)
        err, msg = await errno_of(c, "read_mem", mm=mm, addr=0x1234, n=4)
        assert err == abi.EFAULT and "0x1234" in msg and "SIGSEGV" in msg and "MAPERR" in msg
        err, msg = await errno_of(c, "write_mem", mm=mm, addr=0x400010, data=b"x")  # [code] is r-x
        assert err == abi.EFAULT and "0x400010" in msg and "SEGV_ACCERR" in msg
        assert (await errno_of(c, "read_mem", mm=mm, addr=-PAGE, n=1))[0] == abi.EFAULT
        addr = await c.call("mmap", mm=mm, addr=0, length=PAGE, prot=abi.PROT_NONE, flags=PRIVATE)
        assert (await errno_of(c, "read_mem", mm=mm, addr=addr, n=1))[0] == abi.EFAULT
        await c.call("mprotect", mm=mm, addr=addr, length=PAGE, prot=RW)
        await c.call("write_mem", mm=mm, addr=addr, data=b"w")
        await c.call("mprotect", mm=mm, addr=addr, length=PAGE, prot=R)
        assert await c.call("check") == []  # the PTE was write-protected with the VMA
        assert (await errno_of(c, "write_mem", mm=mm, addr=addr, data=b"x"))[0] == abi.EFAULT
        assert await c.call("read_mem", mm=mm, addr=addr, n=1) == b"w"
        await c.call("mprotect", mm=mm, addr=addr, length=PAGE, prot=RW)
        faults = (await stat(c, mm))["min_flt"]
        await c.call("write_mem", mm=mm, addr=addr, data=b"again")  # write-protect fault, frame reused
        s = await stat(c, mm)
        assert (s["min_flt"], s["cow"], s["rss"]) == (faults + 1, 0, 1)
        assert await c.call("check") == []


async def test_mmap_arguments():
    async with boot() as c:
        mm = await new_mm(c)
        err, msg = await errno_of(c, "mmap", mm=mm, addr=0, length=PAGE, prot=R, flags=abi.MAP_PRIVATE)
        assert err == abi.ENOSYS and "vfs" in msg
        for flags in (abi.MAP_ANONYMOUS, SHARED | abi.MAP_PRIVATE):
            assert (await errno_of(c, "mmap", mm=mm, addr=0, length=PAGE, prot=R, flags=flags))[0] == abi.EINVAL
        assert (await errno_of(c, "mmap", mm=mm, addr=0, length=0, prot=R, flags=PRIVATE))[0] == abi.EINVAL
        unaligned = dict(addr=BASE + 1, length=PAGE, prot=R, flags=PRIVATE | FIXED)
        assert (await errno_of(c, "mmap", mm=mm, **unaligned))[0] == abi.EINVAL
        assert (await errno_of(c, "mmap", mm=999, addr=0, length=PAGE, prot=R, flags=PRIVATE))[0] == abi.EINVAL
        assert await c.call("mmap", mm=mm, addr=BASE, length=100, prot=R, flags=PRIVATE) == BASE  # free hint
        again = await c.call("mmap", mm=mm, addr=BASE, length=PAGE, prot=RW, flags=PRIVATE)  # taken: top-down
        assert again != BASE and again + PAGE <= (await stat(c, mm))["mmap_base"]
        below = await c.call("mmap", mm=mm, addr=0, length=2 * PAGE, prot=RW, flags=PRIVATE)
        assert below == again - 2 * PAGE
        await c.call("munmap", mm=mm, addr=again, length=PAGE)
        assert await c.call("mmap", mm=mm, addr=0, length=PAGE, prot=R, flags=PRIVATE) == again  # exact fit
        # MAP_FIXED replaces what is there, pages and all.
        await c.call("write_mem", mm=mm, addr=below, data=b"old")
        assert await c.call("mmap", mm=mm, addr=below, length=PAGE, prot=RW, flags=SHARED | FIXED) == below
        assert (await stat(c, mm))["rss"] == 0  # the old page went with the old mapping
        assert await c.call("read_mem", mm=mm, addr=below, n=3) == bytes(3)
        assert await c.call("check") == []


async def test_munmap_and_mprotect_split_and_merge():
    async with boot() as c:
        mm = await new_mm(c)
        await c.call("mmap", mm=mm, addr=BASE, length=4 * PAGE, prot=RW, flags=PRIVATE | FIXED)
        for i in range(4):
            await c.call("write_mem", mm=mm, addr=BASE + i * PAGE, data=bytes([65 + i]))

        async def lines() -> list[str]:
            return [line for line in await c.call("maps", mm=mm) if line.startswith("1000")]

        await c.call("mprotect", mm=mm, addr=BASE + PAGE, length=2 * PAGE, prot=R)
        assert await lines() == [
            "10000000-10001000 rw-p 00000000 00:00 0 ",
            "10001000-10003000 r--p 00000000 00:00 0 ",
            "10003000-10004000 rw-p 00000000 00:00 0 ",
        ]
        await c.call("mprotect", mm=mm, addr=BASE + PAGE, length=1, prot=RW)  # length rounds up
        assert len(await lines()) == 3
        await c.call("mprotect", mm=mm, addr=BASE + 2 * PAGE, length=PAGE, prot=RW)
        assert await lines() == ["10000000-10004000 rw-p 00000000 00:00 0 "]  # merged again

        assert await c.call("munmap", mm=mm, addr=BASE + PAGE, length=PAGE) == 0
        assert await lines() == ["10000000-10001000 rw-p 00000000 00:00 0 ", "10002000-10004000 rw-p 00000000 00:00 0 "]
        assert (await stat(c, mm))["rss"] == 3
        assert (await errno_of(c, "read_mem", mm=mm, addr=BASE + PAGE, n=1))[0] == abi.EFAULT
        err = (await errno_of(c, "mprotect", mm=mm, addr=BASE, length=3 * PAGE, prot=R))[0]
        assert err == abi.ENOMEM and len(await lines()) == 2  # the hole: nothing changed
        assert (await errno_of(c, "munmap", mm=mm, addr=BASE + 1, length=PAGE))[0] == abi.EINVAL
        assert (await errno_of(c, "munmap", mm=mm, addr=BASE, length=0))[0] == abi.EINVAL

        await c.call("mmap", mm=mm, addr=BASE + PAGE, length=PAGE, prot=RW, flags=PRIVATE | FIXED)
        assert await lines() == ["10000000-10004000 rw-p 00000000 00:00 0 "]
        data = await c.call("read_mem", mm=mm, addr=BASE, n=4 * PAGE)
        assert data[::PAGE] == b"A\0CD"
        await c.call("munmap", mm=mm, addr=BASE - PAGE, length=10 * PAGE)  # holes are fine
        assert await lines() == [] and (await stat(c, mm))["rss"] == 0
        assert await c.call("check") == []


async def test_brk():
    async with boot() as c:
        layout = await c.call("mm_init")
        mm, start = layout["mm"], layout["start_brk"]
        assert await c.call("brk", mm=mm, addr=0) == start
        assert await c.call("brk", mm=mm, addr=start + 100) == start + 100
        assert await c.call("brk", mm=mm, addr=start + 3 * PAGE) == start + 3 * PAGE
        heap = [line.split() for line in await c.call("maps", mm=mm) if line.endswith("[heap]")]
        assert heap == [[f"{start:08x}-{start + 3 * PAGE:08x}", "rw-p", "00000000", "00:00", "0", "[heap]"]]
        await c.call("write_mem", mm=mm, addr=start + 2 * PAGE, data=b"top")
        await c.call("write_mem", mm=mm, addr=start, data=b"bottom")
        assert await c.call("brk", mm=mm, addr=start + 10) == start + 10  # shrinking unmaps
        assert (await stat(c, mm))["rss"] == 1
        assert (await errno_of(c, "read_mem", mm=mm, addr=start + PAGE, n=1))[0] == abi.EFAULT
        assert await c.call("brk", mm=mm, addr=start - PAGE) == start + 10  # below start_brk: refused
        await c.call("mmap", mm=mm, addr=start + 4 * PAGE, length=PAGE, prot=R, flags=PRIVATE | FIXED)
        assert await c.call("brk", mm=mm, addr=start + 5 * PAGE) == start + 10  # would hit the mapping
        assert await c.call("brk", mm=mm, addr=start + 3 * PAGE) == start + 3 * PAGE  # keeps a guard page
        assert await c.call("read_mem", mm=mm, addr=start, n=6) == b"bottom"
        assert await c.call("read_mem", mm=mm, addr=start + 2 * PAGE, n=3) == bytes(3)  # fresh page
        assert await c.call("brk", mm=mm, addr=start) == start
        assert not [line for line in await c.call("maps", mm=mm) if "[heap]" in line]
        assert await c.call("check") == []


async def test_mm_release():
    async with boot() as c:
        mm = await new_mm(c)
        tid_addr = 0x401010
        await c.call("write_mem", mm=mm, addr=tid_addr, data=b"\xff" * 8)
        assert await c.call("mm_release", mm=mm, clear_child_tid=tid_addr) == {"cleared": False}  # alone
        await c.call("share_mm", mm=mm)
        assert await c.call("mm_release", mm=mm, clear_child_tid=0) == {"cleared": False}
        assert await c.call("mm_release", mm=mm, clear_child_tid=0x1000) == {"cleared": False}  # fault ignored
        assert await c.call("mm_release", mm=mm, clear_child_tid=tid_addr) == {"cleared": True}
        assert await c.call("read_mem", mm=mm, addr=tid_addr, n=8) == bytes(4) + b"\xff" * 4


async def test_bad_arguments():
    async with boot() as c:
        assert (await errno_of(c, "dup_mm", mm=42))[0] == abi.EINVAL
        assert (await errno_of(c, "mmput", mm="x"))[0] == abi.EINVAL
        assert (await errno_of(c, "mm_init", code_size=-1))[0] == abi.EINVAL
        empty = await c.call("mm_init", code_size=0)  # an empty program still gets a [code] page
        assert empty["end_code"] - empty["start_code"] == PAGE
        await c.call("mmput", mm=empty["mm"])
        assert await c.call("accounting") == {"faults": 0, "mms": 0, "users": 0, "frames": 0, "frame_refs": 0}


# --- property: VMAs against a page-by-page model ---------------------------------------
PAGES = 16
page = st.integers(0, PAGES - 1)
npages = st.integers(1, 6)
prot = st.sampled_from([abi.PROT_NONE, R, RW, R | X, RW | X])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("mmap"), page, npages, prot, st.booleans(), st.booleans()),
        st.tuples(st.just("munmap"), page, npages),
        st.tuples(st.just("mprotect"), page, npages, prot),
        st.tuples(st.just("poke"), page, st.integers(0, PAGE - 1), st.integers(1, 255)),
        st.tuples(st.just("peek"), page, st.integers(0, PAGE - 1)),
    ),
    max_size=25,
)


def perms(prot: int, shared: bool) -> str:
    return "".join(c if prot & b else "-" for c, b in zip("rwx", (R, W, X), strict=True)) + ("s" if shared else "p")


def expected_maps(model: dict[int, tuple]) -> list[str]:
    """VMAs from the page model: a page joins the previous VMA when it is mergeable with it."""
    vmas: list[list] = []
    for vpn in sorted(model):
        prot_, shared, name, group, index = model[vpn]
        if vmas:
            last = vmas[-1]
            lprot, lshared, lname, lgroup, lindex = model[last[1] - 1]
            same = (prot_, shared, name, group) == (lprot, lshared, lname, lgroup)
            if last[1] == vpn and same and (not shared or index == lindex + 1):
                last[1] = vpn + 1
                continue
        vmas.append([vpn, vpn + 1])
    lines = []
    for start, end in vmas:
        prot_, shared, name, *_ = model[start]
        name = name or ("/dev/zero (deleted)" if shared else "")  # Linux's name for shared anonymous memory
        head = f"{start * PAGE:08x}-{end * PAGE:08x} {perms(prot_, shared)} 00000000 00:00 0 "
        lines.append(f"{head:<72} {name}" if name else head)
    return lines


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
async def test_vmas_match_page_model(steps):
    async with boot(pages=64) as c:
        mm = await new_mm(c)
        model: dict[int, tuple] = {}  # vpn -> (prot, shared, name, shm group, index in group)
        for line in await c.call("maps", mm=mm):  # the code, the data, [stack]
            span, perm, _offset, _dev, _inode, *name = line.split(maxsplit=5)
            name = name[0] if name else ""  # mm_init without an exe: anonymous code and data
            lo, hi = (int(x, 16) // PAGE for x in span.split("-"))
            prot_ = sum(bit for ch, bit in zip("rwx", (R, W, X), strict=True) if ch in perm)
            model.update((vpn, (prot_, False, name, None, None)) for vpn in range(lo, hi))
        memory: dict[int, int] = {}  # address -> byte written
        base = BASE // PAGE

        def forget(lo: int, hi: int) -> None:
            for vpn in range(lo, hi):
                model.pop(vpn, None)
            for a in [a for a in memory if lo <= a // PAGE < hi]:
                del memory[a]

        for group, (kind, first, *rest) in enumerate(steps):
            addr = BASE + first * PAGE
            if kind == "mmap":
                n, prot_, shared, fixed = rest
                flags = (SHARED if shared else PRIVATE) | (FIXED if fixed else 0)
                got = await c.call("mmap", mm=mm, addr=addr, length=n * PAGE - 1, prot=prot_, flags=flags)
                if fixed or all(v not in model for v in range(base + first, base + first + n)):
                    assert got == addr
                lo = got // PAGE
                forget(lo, lo + n)
                for i in range(n):
                    model[lo + i] = (prot_, shared, "", group if shared else None, i if shared else None)
            elif kind == "munmap":
                await c.call("munmap", mm=mm, addr=addr, length=rest[0] * PAGE)
                forget(base + first, base + first + rest[0])
            elif kind == "mprotect":
                n, prot_ = rest
                vpns = range(base + first, base + first + n)
                if all(v in model for v in vpns):
                    await c.call("mprotect", mm=mm, addr=addr, length=n * PAGE, prot=prot_)
                    for v in vpns:
                        model[v] = (prot_, *model[v][1:])
                else:
                    assert (await errno_of(c, "mprotect", mm=mm, addr=addr, length=n * PAGE, prot=prot_))[
                        0
                    ] == abi.ENOMEM
            elif kind == "poke":
                offset, byte = rest
                vpn = base + first
                if vpn in model and model[vpn][0] & W:
                    await c.call("write_mem", mm=mm, addr=addr + offset, data=bytes([byte]))
                    memory[addr + offset] = byte
                else:
                    assert (await errno_of(c, "write_mem", mm=mm, addr=addr + offset, data=b"x"))[0] == abi.EFAULT
            else:
                (offset,) = rest
                vpn = base + first
                if vpn in model and model[vpn][0] & R:
                    got = await c.call("read_mem", mm=mm, addr=addr + offset, n=1)
                    assert got == bytes([memory.get(addr + offset, 0)])
                else:
                    assert (await errno_of(c, "read_mem", mm=mm, addr=addr + offset, n=1))[0] == abi.EFAULT
            assert await c.call("maps", mm=mm) == expected_maps(model)
            assert await c.call("check") == []
        assert (await stat(c, mm))["vm_size"] == len(model) * PAGE
        child = (await c.call("dup_mm", mm=mm))["mm"]  # the child sees the same bytes
        for a, byte in memory.items():
            if model[a // PAGE][0] & R:
                assert await c.call("read_mem", mm=child, addr=a, n=1) == bytes([byte])
        assert await c.call("check") == []
        await c.call("mmput", mm=child)
        await c.call("mmput", mm=mm)
        acct = await c.call("accounting")
        assert (acct["frames"], acct["frame_refs"], acct["mms"]) == (0, 0, 0)


async def test_status_lines_in_kb():
    async with boot() as c:
        mm = await new_mm(c)
        addr = await c.call("mmap", mm=mm, addr=0, length=4 * PAGE, prot=RW, flags=PRIVATE)
        await c.call("write_mem", mm=mm, addr=addr, data=b"x" * (PAGE + 1))
        status = await c.call("status", mm=mm)
        assert status == {"VmSize": 4 + 4 + 32 + 16, "VmHWM": 8, "VmRSS": 8, "VmData": 4 + 16, "VmStk": 32, "VmExe": 4}
        await c.call("mmput", mm=mm)
