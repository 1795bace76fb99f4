"""clones: one clone per flags word in argv; prints "FLAGS ok" or "FLAGS ERRNO" for each.

The fork lab's grading program. A child returns at once; a thread's parent
waits for the kernel to clear its tid word (CLONE_CHILD_CLEARTID, as
pthread_join does), any other child is reaped, so every clone that works
leaves nothing behind.
"""

from ukernel import abi
from ukernel.abi import (
    CLONE_CHILD_CLEARTID,
    CLONE_PARENT_SETTID,
    CLONE_THREAD,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    SIGCHLD,
)


async def child(sys, arg):
    return 0


async def clone_one(sys, flags, word):
    """One clone with these flags, and its child gone again: 'ok', or the errno's name."""
    extra = CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID if flags & CLONE_THREAD else SIGCHLD
    try:
        tid = await sys.clone(flags | extra, child, None, parent_tid=word, child_tid=word)
    except OSError as exc:
        return abi.errno_name(exc.errno)
    if flags & CLONE_THREAD:
        while int.from_bytes(await sys.peek(word, 4), "little"):
            await sys.sched_yield()
    else:
        await sys.waitpid(tid, abi.__WALL)
    return "ok"


async def main(sys, argv):
    word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for text in argv[1:]:
        outcome = await clone_one(sys, int(text, 0), word)
        await sys.write(1, f"{text} {outcome}\n".encode())
    return 0
