"""condvar [C] [N] [all]: a producer and C consumers on one condition variable woken with one signal: deadlocks (MOSAIC's cond-var).

A one-slot buffer, a futex mutex and ONE condition variable shared by one
producer and C consumers, N items each (MOSAIC's N=1 T_p=1 T_c=2 by default:
a consumer is left waiting for ever). With ``all`` the producer makes C*N
items, enough for everyone, and still cond_signal wakes one waiter of either
kind: when a consumer wakes a consumer, everyone ends up waiting. With
pthread_cond_broadcast, or a condition variable per kind, that cannot happen.
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
    made = consumers * each if argv[3:4] == ["all"] else each
    page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    tids = [await sys.clone(CLONE_VM | SIGCHLD, worker, (page, 1, made))]
    tids += [await sys.clone(CLONE_VM | SIGCHLD, worker, (page, -1, each)) for _ in range(consumers)]
    for tid in tids:
        await sys.waitpid(tid, 0)
    await sys.write(1, f"done, count {state['count']}\n".encode())
    return 0
