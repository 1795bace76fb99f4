"""condvar [C] [N]: producer and consumers on one condition variable woken with one signal: a deadlock (MOSAIC's cond-var).

A one-slot buffer, a futex mutex and ONE condition variable shared by the
producer (making C*N items) and C consumers (N each). cond_signal wakes one
waiter, of either kind: when a consumer wakes a consumer, everyone ends up
waiting (`ukernel explore condvar` shows the wait-for graph); with
pthread_cond_broadcast, or a condition variable per kind, it cannot happen.
"""

from ukernel.abi import CLONE_VM, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, SIGCHLD

MUTEX, COND = 0, 4  # offsets of the two futex words in the shared page
state = {"count": 0}  # the buffer's fill, 0 or 1, guarded by the mutex


async def word(sys, addr):
    return int.from_bytes(await sys.peek(addr, 4), "little")


async def lock(sys, page):
    while await sys.cmpxchg(page + MUTEX, 0, 1) != 0:
        try:
            await sys.futex(page + MUTEX, FUTEX_WAIT, 1)
        except BlockingIOError:  # EAGAIN: unlocked between the cmpxchg and the wait (explore found it)
            pass


async def unlock(sys, page):
    await sys.poke(page + MUTEX, (0).to_bytes(4, "little"))
    await sys.futex(page + MUTEX, FUTEX_WAKE, 1)


async def cond_wait(sys, page):
    seq = await word(sys, page + COND)
    await unlock(sys, page)
    try:
        await sys.futex(page + COND, FUTEX_WAIT, seq)
    except BlockingIOError:  # EAGAIN: signalled between the unlock and the wait
        pass
    await lock(sys, page)


async def cond_signal(sys, page):
    seq = await word(sys, page + COND)
    await sys.poke(page + COND, ((seq + 1) % 2**32).to_bytes(4, "little"))
    await sys.futex(page + COND, FUTEX_WAKE, 1)  # one waiter, producer or consumer


async def worker(sys, arg):
    page, delta, items = arg
    for _ in range(items):
        await lock(sys, page)
        while not 0 <= state["count"] + delta <= 1:
            await cond_wait(sys, page)
        state["count"] += delta
        await cond_signal(sys, page)
        await unlock(sys, page)
    return 0


async def main(sys, argv):
    consumers = int(argv[1]) if len(argv) > 1 else 2
    each = int(argv[2]) if len(argv) > 2 else 1
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    tids = [await sys.clone(CLONE_VM | SIGCHLD, worker, (page, 1, consumers * each))]
    tids += [await sys.clone(CLONE_VM | SIGCHLD, worker, (page, -1, each)) for _ in range(consumers)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"done, count {state['count']}\n".encode())
    return 0
