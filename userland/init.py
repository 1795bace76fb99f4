"""init (pid 1): start the program named in argv, then reap every child until none is left.

init plays getty, login and the login shell: it leads a session with the
console as its controlling terminal (when the input is typed at one), and the
program runs as that shell's foreground job would, in a process group of its
own that owns the terminal.
Orphans are reparented to init, so the loop below is also where they are reaped.
"""

from ukernel.abi import ECHILD, ENOENT, TIOCSCTTY


async def main(sys, argv):
    if len(argv) < 2:
        await sys.write(2, b"init: usage: init PROGRAM [ARGS...]\n")
        return 1
    await sys.setsid()
    terminal = await sys.isatty(0)  # typed at a terminal; input from a pipe or a file has none
    if terminal:
        await sys.ioctl(0, TIOCSCTTY, 0)
    pid = await sys.fork()
    if pid == 0:
        if terminal:
            # the terminal first, while still in init's foreground group (no SIGTTOU): tcsetpgrp
            # takes a pid of the session that leads no group yet (tiocspgrp's session_of_pgrp)
            try:
                await sys.tcsetpgrp(0, await sys.getpid())
            except OSError as exc:  # (a fault injected there): the program runs, in the background
                await sys.write(2, f"init: the terminal stays init's: {type(exc).__name__}: {exc}\n".encode())
        await sys.setpgid(0, 0)
        try:
            await sys.execve(argv[1], argv[2:] or [argv[1]])
        except OSError as exc:  # a mistyped name is one line; a program that does not load says why
            await sys.write(2, f"init: cannot run {argv[1]}: {exc.strerror}\n".encode())
            return 127 if exc.errno == ENOENT else 126  # as a shell: not found, found but not runnable
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
