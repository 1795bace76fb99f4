"""threads: clone with glibc's pthread flag set; the threads share one counter.

Each thread's tid word lives in shared memory: CLONE_PARENT_SETTID writes the
tid there before the thread runs, CLONE_CHILD_CLEARTID zeroes it when the
thread exits. The main thread joins by watching those words (a futex-based
join comes with the lifecycle issue's pthread library).
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, PTHREAD_CLONE_FLAGS

counter = {"value": 0, "by": []}


def worker(sys, index):
    """A thread body may be sync or async; this one increments the shared counter."""

    async def body():
        tid = await sys.gettid()
        for _ in range(3):
            counter["value"] += 1
            await sys.sched_yield()
        counter["by"].append(index)
        await sys.write(1, f"thread {index}: tid {tid}, pid {await sys.getpid()}\n".encode())
        return 0

    return body()


async def main(sys, argv):
    n = int(argv[1]) if len(argv) > 1 else 3
    words = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    tids = []
    for i in range(n):
        word = words + 4 * i
        tid = await sys.clone(PTHREAD_CLONE_FLAGS, worker, i, parent_tid=word, child_tid=word)
        tids.append(tid)
        assert int.from_bytes(await sys.peek(word, 4), "little") == tid  # PARENT_SETTID, before it ran
    for i in range(n):  # join: wait until CLONE_CHILD_CLEARTID zeroes each tid word
        while int.from_bytes(await sys.peek(words + 4 * i, 4), "little") != 0:
            await sys.sched_yield()
    pid = await sys.getpid()
    await sys.write(
        1, f"main {pid}: {n} threads, counter = {counter['value']}, finished {sorted(counter['by'])}\n".encode()
    )
    return 0
