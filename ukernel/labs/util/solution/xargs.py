"""xargs [-n N] COMMAND [ARG...]: run COMMAND with words read from stdin appended (xv6's xargs lab).

Without -n, COMMAND runs once per input line, with that line's words. With
-n N, the words of all lines are taken N at a time. Each command is forked,
exec'd (/bin/COMMAND unless it holds a '/') and waited for before the next,
so their outputs keep the input's order. The status is 0, or 123 if any
command exited non-zero (as GNU xargs).
"""

from ukernel.abi import WEXITSTATUS, WIFEXITED


async def read_all(sys, fd):
    chunks = []
    while chunk := await sys.read(fd, 512):
        chunks.append(chunk)
    return b"".join(chunks).decode()


async def run(sys, argv):
    """fork, exec argv in the child, wait: the child's exit status (127 if it could not exec)."""
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("run: your code here (handout: 5. xargs)")
    path = argv[0] if "/" in argv[0] else f"/bin/{argv[0]}"
    pid = await sys.fork()
    if pid == 0:
        try:
            await sys.execve(path, argv)
        except OSError as exc:
            await sys.write(2, f"xargs: {argv[0]}: {exc.strerror}\n")
            return 127
    _, status = await sys.waitpid(pid, 0)
    return WEXITSTATUS(status) if WIFEXITED(status) else 128
    # END SOLUTION


async def main(sys, argv):
    args = argv[1:]
    per = 0
    if args[:1] == ["-n"] and len(args) > 1 and args[1].isdigit() and int(args[1]) > 0:
        per, args = int(args[1]), args[2:]
    if not args:
        await sys.write(2, "usage: xargs [-n N] COMMAND [ARG...]\n")
        return 1
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("xargs: your code here (handout: 5. xargs)")
    lines = [line.split() for line in (await read_all(sys, 0)).splitlines()]
    if per:
        words = [w for line in lines for w in line]
        groups = [words[i : i + per] for i in range(0, len(words), per)]
    else:
        groups = [line for line in lines if line]
    failed = False
    for group in groups:
        failed |= await run(sys, args + group) != 0
    return 123 if failed else 0
    # END SOLUTION
