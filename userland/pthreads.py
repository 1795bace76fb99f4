"""pthreads: N threads add to one counter in shared memory under a futex mutex.

The counter lives in the mm (peek/poke), so the read-modify-write spans two
syscalls and preemption can land between them: without the mutex, updates
are lost. Run: ukernel run pthreads 4 50
"""

from ukernel.abi import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from userland.lib.pthread import Mutex, pthread_create, pthread_join


async def main(sys, argv):
    n = int(argv[1]) if len(argv) > 1 else 4
    rounds = int(argv[2]) if len(argv) > 2 else 50
    counter = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    mutex = await Mutex.create(sys)

    async def worker(sys, index):
        for _ in range(rounds):
            await mutex.lock(sys)
            value = int.from_bytes(await sys.peek(counter, 4), "little")
            await sys.poke(counter, (value + 1).to_bytes(4, "little"))
            await mutex.unlock(sys)
        return 0

    threads = [await pthread_create(sys, worker, i) for i in range(n)]
    for thread in threads:
        await pthread_join(sys, thread)
    total = int.from_bytes(await sys.peek(counter, 4), "little")
    await sys.write(1, f"{n} threads x {rounds} rounds: counter = {total} (expected {n * rounds})\n".encode())
    return 0 if total == n * rounds else 1
