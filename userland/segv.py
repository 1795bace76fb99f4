"""segv: a bad memory access kills the process with SIGSEGV, and its parent learns it.

The first child writes to address 0x1000, which nothing maps (the low pages
never are, so NULL-ish pointers fault: SEGV_MAPERR). The second child writes
to a page mapped PROT_READ (the page exists but forbids writes: SEGV_ACCERR).
Neither gets an errno back: the fault the mm cannot fix becomes SIGSEGV, and
the parent reads it from the wait status with WIFSIGNALED and WTERMSIG.

Run: ukernel run segv
"""

from ukernel.abi import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_READ,
    SIGNAL_NAMES,
    WEXITSTATUS,
    WIFSIGNALED,
    WTERMSIG,
)


async def report(sys, what, pid):
    _, status = await sys.waitpid(pid, 0)
    if WIFSIGNALED(status):
        sig = WTERMSIG(status)
        how = f"killed by signal {sig} ({SIGNAL_NAMES.get(sig, '?')})"
    else:
        how = f"exited {WEXITSTATUS(status)}"
    await sys.write(1, f"{what}: child {how}\n".encode())


async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        await sys.poke(0x1000, b"x")  # nothing is mapped there
        return 0  # not reached
    await report(sys, "write to unmapped 0x1000", pid)

    page = await sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    pid = await sys.fork()
    if pid == 0:
        await sys.peek(page, 1)  # reading is allowed
        await sys.poke(page, b"x")  # writing is not
        return 0  # not reached
    await report(sys, "write to a PROT_READ page", pid)
    return 0
