"""cow: fork copies no memory until someone writes (copy-on-write).

The parent maps 4 private pages and writes into each, then forks. dup_mm gives
the child the parent's page table with every private page write-protected on
both sides: nothing is copied. The child's write to page 1 faults once, and
only that page is copied (do_wp_page), so the child's getrusage() shows one
minor fault and the parent's data stay as they were. The parent took 4 faults
before the fork, one per page it touched, and none since: reading a shared
page does not fault.

Run: ukernel run cow
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE

PAGES = 4


async def show(sys, who, buf):
    pages = [(await sys.peek(buf + i * PAGE_SIZE, 6)).decode() for i in range(PAGES)]
    minflt = (await sys.getrusage())["minflt"]
    await sys.write(1, f"{who}: {' '.join(pages)} (minflt {minflt})\n".encode())


async def main(sys, argv):
    buf = await sys.mmap(0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(PAGES):
        await sys.poke(buf + i * PAGE_SIZE, f"page-{i}".encode())
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf + PAGE_SIZE, b"CHILD!")  # one page: one fault, one copy
        await show(sys, "child ", buf)
        return 0
    await sys.waitpid(pid, 0)
    await show(sys, "parent", buf)
    return 0
