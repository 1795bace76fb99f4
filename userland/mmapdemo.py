"""mmapdemo: MAP_SHARED vs MAP_PRIVATE across fork.

Both pages are anonymous. After fork the child writes to both. The shared page
is one object both processes map, so the parent sees the child's write; the
private page is copied on the child's write (copy-on-write), so the parent
still sees its own data.

Run: ukernel run mmapdemo
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE

RW = PROT_READ | PROT_WRITE


async def main(sys, argv):
    shared = await sys.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
    private = await sys.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.poke(shared, b"parent")
    await sys.poke(private, b"parent")
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(shared, b"child!")
        await sys.poke(private, b"child!")
        return 0
    await sys.waitpid(pid, 0)
    await sys.write(1, f"MAP_SHARED:  parent sees {(await sys.peek(shared, 6)).decode()}\n".encode())
    await sys.write(1, f"MAP_PRIVATE: parent sees {(await sys.peek(private, 6)).decode()}\n".encode())
    return 0
