"""init (pid 1): start the program named in argv, then reap every child until none is left.

Orphans are reparented to init, so this loop is also where they are reaped.
"""

from ukernel.abi import ECHILD


async def main(sys, argv):
    if len(argv) < 2:
        await sys.write(2, b"init: usage: init PROGRAM [ARGS...]\n")
        return 1
    pid = await sys.fork()
    if pid == 0:
        try:
            await sys.execve(argv[1], argv[2:] or [argv[1]])
        except OSError as exc:  # a mistyped program name is one line, not a traceback
            await sys.write(2, f"init: cannot run {argv[1]}: {type(exc).__name__}: {exc}\n".encode())
            return 1
    code = 0
    while True:
        try:
            child, status = await sys.waitpid(-1, 0)
        except OSError as exc:
            if exc.errno == ECHILD:
                return code
            raise
        if child == pid:
            code = (status >> 8) & 0xFF
