"""primes [N]: the primes up to N (default 35) by Doug McIlroy's pipe sieve (xv6's user/primes.c).

The first process feeds 2..N into a pipe. Each stage reads its first number
p (a prime: print "prime p"), forks the next stage on a new pipe, and passes
on every number p does not divide. A stage whose input ends closes its
output, so the end of the numbers travels down the chain; each stage waits
for its child, so the first process ends last.

Numbers travel as 4-byte little-endian integers.
"""

WIDTH = 4


async def read_number(sys, fd):
    """The next number from fd, or None at end of file."""
    data = b""
    while len(data) < WIDTH:
        chunk = await sys.read(fd, WIDTH - len(data))
        if not chunk:
            return None
        data += chunk
    return int.from_bytes(data, "little")


async def write_number(sys, fd, n):
    await sys.write(fd, n.to_bytes(WIDTH, "little"))


async def sieve(sys, left):
    """One stage: read from ``left`` (the read end of the pipe from the stage before)."""
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("sieve: your code here (handout: 3. primes)")
    prime = await read_number(sys, left)
    if prime is None:
        await sys.close(left)
        return 0
    await sys.write(1, f"prime {prime}\n")
    right_read, right_write = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(left)
        await sys.close(right_write)
        return await sieve(sys, right_read)
    await sys.close(right_read)
    while (n := await read_number(sys, left)) is not None:
        if n % prime:
            await write_number(sys, right_write, n)
    await sys.close(left)
    await sys.close(right_write)
    await sys.waitpid(pid, 0)
    return 0
    # END SOLUTION


async def main(sys, argv):
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("primes: your code here (handout: 3. primes)")
    limit = int(argv[1]) if len(argv) > 1 else 35
    read_end, write_end = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(write_end)
        return await sieve(sys, read_end)
    await sys.close(read_end)
    for n in range(2, limit + 1):
        await write_number(sys, write_end, n)
    await sys.close(write_end)
    await sys.waitpid(pid, 0)
    return 0
    # END SOLUTION
