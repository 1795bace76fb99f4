"""waitrace: the races of exit and wait: is the child a zombie yet, and who is its parent when it asks?

The parent polls with WNOHANG (the child may or may not have exited), and
a grandchild asks getppid while its parent exits: 2 x 2 outcomes (an orphan
is reparented to init, pid 1).
"""

from ukernel.abi import WEXITSTATUS, WNOHANG


async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        if await sys.fork() == 0:  # the grandchild: its parent may be gone already
            await sys.write(1, f"grandchild's parent: {'init' if await sys.getppid() == 1 else 'child'}\n".encode())
            return 0
        return 7
    got, status = await sys.waitpid(pid, WNOHANG)
    if got == 0:
        got, status = await sys.waitpid(pid, 0)
        await sys.write(1, f"child still running, then exited {WEXITSTATUS(status)}\n".encode())
    else:
        await sys.write(1, f"child already exited {WEXITSTATUS(status)}\n".encode())
    return 0
