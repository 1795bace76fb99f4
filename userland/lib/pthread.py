"""A tiny pthread library on clone and futex, the way glibc's nptl does it.

pthread_create clones with glibc's flag set; the thread's tid word is set by
CLONE_PARENT_SETTID and zeroed by CLONE_CHILD_CLEARTID when the thread exits,
with a FUTEX_WAKE: pthread_join sleeps on that word. The mutex is Drepper's
three-state futex mutex ("Futexes Are Tricky") on ``sys.cmpxchg``, the
CPU's atomic compare-and-exchange.
"""

from ukernel.abi import (
    EAGAIN,
    FUTEX_WAIT,
    FUTEX_WAKE,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    PTHREAD_CLONE_FLAGS,
)


class Thread:
    def __init__(self, tid: int, word: int):
        self.tid, self.word = tid, word


async def _word(sys, addr: int) -> int:
    return int.from_bytes(await sys.peek(addr, 4), "little")


async def pthread_create(sys, fn, arg=None) -> Thread:
    """Start fn(sys, arg) as a thread of this process."""
    word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    tid = await sys.clone(PTHREAD_CLONE_FLAGS, fn, arg, parent_tid=word, child_tid=word)
    return Thread(tid, word)


async def pthread_join(sys, thread: Thread) -> None:
    """Sleep until the thread's tid word is zero (its exit wakes us)."""
    while (tid := await _word(sys, thread.word)) != 0:
        try:
            await sys.futex(thread.word, FUTEX_WAIT, tid)
        except OSError as exc:
            if exc.errno != EAGAIN:
                raise
    await sys.munmap(thread.word, 4096)


class Mutex:
    """0: unlocked, 1: locked, 2: locked with waiters."""

    def __init__(self, word: int):
        self.word = word

    @classmethod
    async def create(cls, sys) -> "Mutex":
        return cls(await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS))

    async def _cmpxchg(self, sys, old: int, new: int) -> int:
        return await sys.cmpxchg(self.word, old, new)

    async def lock(self, sys) -> None:
        c = await self._cmpxchg(sys, 0, 1)
        if c == 0:
            return
        while True:
            if c == 2 or await self._cmpxchg(sys, 1, 2) != 0:
                try:
                    await sys.futex(self.word, FUTEX_WAIT, 2)
                except OSError as exc:
                    if exc.errno != EAGAIN:
                        raise
            c = await self._cmpxchg(sys, 0, 2)
            if c == 0:
                return

    async def unlock(self, sys) -> None:
        if await sys.cmpxchg(self.word, 1, 0) == 2:  # there are waiters: hand the lock over
            await sys.poke(self.word, (0).to_bytes(4, "little"))
            await sys.futex(self.word, FUTEX_WAKE, 1)
