"""forkdemo: fork vs clone(CLONE_VM), side by side: who sees whose writes?

After fork the child has a copy of the address space: its write to `box` is
its own. A clone(CLONE_VM) child runs in the same address space: the parent
sees its write. The same holds for memory reached with peek/poke.
"""

from ukernel.abi import CLONE_VM, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, SIGCHLD

box = {"value": "parent's"}


async def child_writes(sys, page):
    box["value"] = "clone child's"
    await sys.poke(page, b"clone")
    return 0


async def main(sys, argv):
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    await sys.poke(page, b"start")
    pid = await sys.fork()
    if pid == 0:
        box["value"] = "fork child's"
        await sys.poke(page, b"forkc")
        await sys.write(1, f"fork child: box = {box['value']}, page = {(await sys.peek(page, 5)).decode()}\n".encode())
        return 0
    await sys.waitpid(pid, 0)
    await sys.write(1, f"after fork:  box = {box['value']}, page = {(await sys.peek(page, 5)).decode()}\n".encode())
    pid = await sys.clone(CLONE_VM | SIGCHLD, child_writes, page)
    await sys.waitpid(pid, 0)
    await sys.write(1, f"after clone: box = {box['value']}, page = {(await sys.peek(page, 5)).decode()}\n".encode())
    return 0
