"""nginx: a master forks N workers (fork() returns twice), each reports and exits.

Each worker exits with a distinct code (10 + its index), and the master waits
for all of them and reports what it reaped. Run: ukernel run nginx 4
"""

from ukernel.abi import WEXITSTATUS


async def main(sys, argv):
    n = int(argv[1]) if len(argv) > 1 else 2
    master = await sys.getpid()
    await sys.write(1, f"master {master}: starting {n} workers\n".encode())
    workers = {}
    for i in range(n):
        pid = await sys.fork()
        if pid == 0:
            me = await sys.getpid()
            await sys.write(1, f"worker {i}: pid {me}, parent {await sys.getppid()}\n".encode())
            return 10 + i
        workers[pid] = i
    codes = {}
    for _ in range(n):
        pid, status = await sys.waitpid(-1, 0)
        codes[workers[pid]] = WEXITSTATUS(status)
    report = ", ".join(f"worker {i} exited {codes[i]}" for i in sorted(codes))
    await sys.write(1, f"master {master}: {report}\n".encode())
    return 0
