"""lostupdate [K]: two processes add 1 to a counter in a MAP_SHARED page K times each, by peek and poke: updates get lost.

The load (peek) and the store (poke) are two kernel entries: the other
process can run in between. With K=1 the counter ends at 1 or 2.
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE


async def add(sys, page, k):
    for _ in range(k):
        value = int.from_bytes(await sys.peek(page, 4), "little")
        await sys.poke(page, (value + 1).to_bytes(4, "little"))


async def main(sys, argv):
    k = int(argv[1]) if len(argv) > 1 else 1
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    pid = await sys.fork()
    await add(sys, page, k)
    if pid == 0:
        return 0
    await sys.waitpid(pid, 0)
    await sys.write(1, f"counter {int.from_bytes(await sys.peek(page, 4), 'little')}\n".encode())
    return 0
