"""sh: a toy shell, the loop every Unix shell is built on: read, fork, exec, wait.

Each line is split on blanks. ``exit [CODE]``, ``cd DIR`` and ``pwd`` are
built-ins: they must run in the shell itself, since a child's cwd or exit
would not change the shell's. Anything else is a program: the shell forks,
the child execs ``/bin/NAME`` (or NAME itself when it holds a '/'), and the
parent waits for it with wait4. A trailing ``&`` runs the job in the
background: the shell prints ``[pid]`` and reads on; finished jobs are
reaped with WNOHANG before each line and reported as ``[pid] done STATUS``.
At end of input the shell waits for the jobs still running and exits with
the last foreground job's status. ``sh -i`` prints a ``$ `` prompt.

fork() here returns twice by replay: the child re-runs the shell from its
start and gets every syscall's result from the parent's journal, so the
shell must be deterministic: all its input comes through sys.read.
(A real shell reads one byte at a time so that the rest of stdin is left for
its children; this one reads in chunks, which keeps the journal short.)

Run: printf 'hello\\npwd\\n' | ukernel run sh (or with stdin=b"..." from Python)
"""

import os

from ukernel.abi import ECHILD, WEXITSTATUS, WIFEXITED, WIFSIGNALED, WNOHANG, WTERMSIG


def exit_code(status):
    """The shell's $?: the exit code, or 128 + N when signal N killed the job."""
    if WIFEXITED(status):
        return WEXITSTATUS(status)
    if WIFSIGNALED(status):
        return 128 + WTERMSIG(status)
    return 0


async def say(sys, fd, text):
    await sys.write(fd, text.encode())


async def reap_jobs(sys, jobs, options):
    """Collect finished background jobs (all of them when options is 0)."""
    for pid in list(jobs):
        try:
            got, status = await sys.waitpid(pid, options)
        except OSError as exc:
            if exc.errno != ECHILD:
                raise
            jobs.remove(pid)
            continue
        if got == pid:
            jobs.remove(pid)
            await say(sys, 1, f"[{pid}] done {exit_code(status)}\n")


async def run_program(sys, words):
    """In the forked child: become the program, or report why not."""
    name = words[0]
    path = name if "/" in name else "/bin/" + name
    try:
        await sys.execve(path, words)
    except OSError as exc:
        await say(sys, 2, f"sh: {name}: {os.strerror(exc.errno)}\n")
    await sys.exit(127)


async def main(sys, argv):
    interactive = "-i" in argv[1:]
    pending = b""  # read but not yet run
    jobs = []  # background pids, in start order
    last = 0  # the last foreground status, as an exit code
    while True:
        await reap_jobs(sys, jobs, WNOHANG)
        if interactive:
            await say(sys, 1, "$ ")
        while b"\n" not in pending:
            chunk = await sys.read(0, 256)
            if not chunk:
                break
            pending += chunk
        if not pending:
            break  # end of input
        line, _, pending = pending.partition(b"\n")
        words = line.decode().split()
        background = bool(words) and words[-1].endswith("&")
        if background:
            words[-1] = words[-1][:-1]
            if not words[-1]:
                words.pop()
        if not words:
            continue
        if words[0] == "exit":
            code = last
            if len(words) > 1:
                try:
                    code = int(words[1]) & 0xFF
                except ValueError:
                    await say(sys, 2, f"sh: exit: {words[1]}: numeric argument required\n")
                    code = 2
            return code
        if words[0] == "cd":
            target = words[1] if len(words) > 1 else "/"
            try:
                await sys.chdir(target)
                last = 0
            except OSError as exc:
                await say(sys, 2, f"sh: cd: {target}: {os.strerror(exc.errno)}\n")
                last = 1
            continue
        if words[0] == "pwd":
            await say(sys, 1, await sys.getcwd() + "\n")
            last = 0
            continue
        pid = await sys.fork()
        if pid == 0:
            await run_program(sys, words)
        if background:
            jobs.append(pid)
            await say(sys, 1, f"[{pid}]\n")
            continue
        _, status = await sys.waitpid(pid, 0)
        last = exit_code(status)
    await reap_jobs(sys, jobs, 0)
    return last
