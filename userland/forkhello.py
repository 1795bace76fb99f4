"""forkhello: fork, then parent and child print one word each: which comes first? (MOSAIC's hello)

`ukernel run forkhello` shows one order; `ukernel explore forkhello` finds both.
"""


async def main(sys, argv):
    pid = await sys.fork()
    await sys.sched_yield()  # a context switch may happen here (or at any syscall)
    if pid == 0:
        await sys.write(1, b"World\n")
        return 0
    await sys.write(1, b"Hello\n")
    await sys.waitpid(pid, 0)
    return 0
