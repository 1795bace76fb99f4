"""cowtest SCENARIO: the cow lab's grading program; each scenario prints what each process saw.

Every scenario maps PAGES private pages (or one shared, or one read-only) and
uses peek/poke, the CPU's loads and stores, so every page fault is mm's.
Lines are "WHO: WHAT"; the tests read them and the trace's fault events.
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE

PAGES = 4
RW = PROT_READ | PROT_WRITE


async def say(sys, who, what):
    await sys.write(1, f"{who}: {what}\n".encode())


async def pages(sys, buf, n=PAGES):
    return " ".join(
        [(await sys.peek(buf + i * PAGE_SIZE, 6)).decode(errors="replace").replace("\0", ".") for i in range(n)]
    )


async def filled(sys, n=PAGES, flags=MAP_PRIVATE):
    buf = await sys.mmap(0, n * PAGE_SIZE, RW, flags | MAP_ANONYMOUS)
    for i in range(n):
        await sys.poke(buf + i * PAGE_SIZE, f"page-{i}".encode())
    return buf


async def minflt(sys):
    return (await sys.getrusage())["minflt"]


async def child_writes(sys, argv):
    """The child writes page 1 and reads all; the parent reads all after the child is gone."""
    buf = await filled(sys)
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf + PAGE_SIZE, b"CHILD!")
        await say(sys, "child", f"{await pages(sys, buf)} minflt {await minflt(sys)}")
        return 0
    await sys.waitpid(pid, 0)
    before = await minflt(sys)
    await say(sys, "parent", f"{await pages(sys, buf)} minflt {await minflt(sys) - before}")
    return 0


async def both_write(sys, argv):
    """The child writes page 1 and waits; then the parent writes page 1: one copy, one reuse."""
    buf = await filled(sys)
    to_parent, to_child = await sys.pipe(), await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf + PAGE_SIZE, b"CHILD!")
        await sys.write(to_parent[1], b"x")
        await sys.read(to_child[0], 1)  # until the parent has written
        await say(sys, "child", await pages(sys, buf))
        return 0
    await sys.read(to_parent[0], 1)
    await sys.poke(buf + PAGE_SIZE, b"PARENT")
    await sys.write(to_child[1], b"x")
    await sys.waitpid(pid, 0)
    await say(sys, "parent", await pages(sys, buf))
    return 0


async def parent_writes(sys, argv):
    """The parent writes page 2 while the child still maps it; the child must not see it."""
    buf = await filled(sys)
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.read(r, 1)
        await say(sys, "child", await pages(sys, buf))
        return 0
    await sys.poke(buf + 2 * PAGE_SIZE, b"PARENT")
    await sys.write(w, b"x")
    await sys.waitpid(pid, 0)
    await say(sys, "parent", await pages(sys, buf))
    return 0


async def three(sys, argv):
    """Three processes map page 0: two children write it in turn, then the parent does."""
    buf = await filled(sys, 1)
    kids = []
    for name in ("first", "second"):
        r, w = await sys.pipe()
        pid = await sys.fork()
        if pid == 0:
            await sys.read(r, 1)
            await sys.poke(buf, name[:6].ljust(6).encode())
            await say(sys, name, await pages(sys, buf, 1))
            return 0
        kids.append((pid, w))
    for pid, w in kids:  # one at a time: the first copies, the second copies, the parent reuses
        await sys.write(w, b"x")
        await sys.waitpid(pid, 0)
    await sys.poke(buf, b"PARENT")
    await say(sys, "parent", await pages(sys, buf, 1))
    return 0


async def exit_then_write(sys, argv):
    """The child exits without writing; the parent, the last holder, writes: no copy."""
    buf = await filled(sys)
    pid = await sys.fork()
    if pid == 0:
        return 0
    await sys.waitpid(pid, 0)
    await sys.poke(buf + 3 * PAGE_SIZE, b"PARENT")
    await say(sys, "parent", await pages(sys, buf))
    return 0


async def readonly(sys, argv):
    """A read-only page stays shared: the child reads it without a fault."""
    buf = await filled(sys, 1)
    await sys.mprotect(buf, PAGE_SIZE, PROT_READ)
    pid = await sys.fork()
    if pid == 0:
        await say(sys, "child", f"{await pages(sys, buf, 1)} minflt {await minflt(sys)}")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, "parent", await pages(sys, buf, 1))
    return 0


async def shared(sys, argv):
    """MAP_SHARED is not copied: the child's write is the parent's too."""
    buf = await filled(sys, 1, MAP_SHARED)
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf, b"CHILD!")
        return 0
    await sys.waitpid(pid, 0)
    await say(sys, "parent", await pages(sys, buf, 1))
    return 0


async def untouched(sys, argv):
    """Page 0 only read before fork (a frame of zeros), page 1 never touched: the child's write
    to page 0 copies zeros; page 1 is in neither page table, so each side's touch is a zero-fill."""
    buf = await sys.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.peek(buf, 1)
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(buf + 3, b"CHILD!")
        await say(sys, "child", await pages(sys, buf, 2))
        return 0
    await sys.waitpid(pid, 0)
    await sys.poke(buf + PAGE_SIZE, b"PARENT")
    await say(sys, "parent", await pages(sys, buf, 2))
    return 0


SCENARIOS = {
    f.__name__: f
    for f in (child_writes, both_write, parent_writes, three, exit_then_write, readonly, shared, untouched)
}


async def main(sys, argv):
    return await SCENARIOS[argv[1]](sys, argv)
