"""sh: a toy shell, the loop every Unix shell is built on: read, fork, exec, wait.

Usage: ``sh`` (commands from stdin), ``sh -i`` (the same with a ``$ `` prompt),
``sh -c 'COMMANDS'``, ``sh FILE`` (a script).

A line is cut into words and operators (``tokenize``): blanks separate words,
'...' and "..." quote, ``\\`` escapes one character, ``#`` starts a comment.
The operators are ``|``, ``;``, ``&``, and the redirections ``< FILE``,
``> FILE``, ``>> FILE``, ``N> FILE`` (e.g. ``2> err``) and ``N>&M`` (``2>&1``).

How a command runs (``run_job``):

1. **fork**: the child is a copy of the shell (same fd table contents, same
   cwd). Here fork() returns twice by replay: the child re-runs the shell from
   its start and gets every syscall's result from the parent's journal, so the
   shell must be deterministic: all its input comes through sys.read.
2. In the child, **redirections**: ``> out`` is open("out", O_WRONLY|O_CREAT|
   O_TRUNC) then dup2(fd, 1) and close(fd): fd 1 now names the file, and the
   program that is exec'd next writes there without knowing. ``>>`` adds
   O_APPEND; ``< in`` puts the file on fd 0; ``2>`` on fd 2.
3. **execve** ``/bin/NAME`` (or NAME itself when it holds a '/'): the child
   becomes the program; its fd table survives exec (no O_CLOEXEC here).
4. The parent **waits** with wait4 and keeps the status: ``exit`` without a
   code, and the end of input, exit with the last foreground status (a job
   killed by signal N counts as 128 + N).

A **pipeline** ``a | b | c`` makes a pipe() between each pair of neighbours
and forks one child per command. Child i dup2s the previous pipe's read end
onto fd 0 and its own pipe's write end onto fd 1, then closes the originals
and the read end it does not use. The shell closes a pipe's write end as soon
as its writer is forked (so the reader, forked next, never inherits it) and
the read end once its reader is forked. Closing matters: ``c`` sees end of
file only when *every* write end of its pipe is closed, so one forgotten
write end (in the shell, or in ``c`` itself) makes ``c`` wait forever.
The shell waits for all of them; the pipeline's status is the last command's.

``cd DIR``, ``exit [CODE]`` and ``pwd`` are built-ins: cd and exit must run
in the shell itself, since a child's cwd or exit would not change the
shell's. A built-in with redirections saves the fds it changes (dup) and puts
them back after (dup2); in a pipeline a built-in runs in its forked child.

A trailing ``&`` runs the job in the background: the shell prints ``[pid]``
(the pid of the job's last command) and reads on; finished jobs are reaped
with WNOHANG before each line and reported as ``[pid] done STATUS``. At end
of input the shell waits for the jobs still running.

(A real shell reads one byte at a time so that the rest of stdin is left for
its children; this one reads in chunks, which keeps the journal short.)

Run: printf 'ls / | cat\\npwd\\n' | ukernel run sh (or with stdin=b"..." from Python)
"""

import os

from ukernel.abi import (
    ECHILD,
    F_DUPFD_CLOEXEC,
    O_APPEND,
    O_CREAT,
    O_RDONLY,
    O_TRUNC,
    O_WRONLY,
    WEXITSTATUS,
    WIFEXITED,
    WIFSIGNALED,
    WNOHANG,
    WTERMSIG,
)

BUILTINS = ("cd", "exit", "pwd")
OPEN_FLAGS = {
    "<": O_RDONLY,
    ">": O_WRONLY | O_CREAT | O_TRUNC,
    ">>": O_WRONLY | O_CREAT | O_APPEND,
}


class SyntaxErr(Exception):
    pass


class ShellExit(Exception):
    """``exit`` was run: unwinds to main, which returns the code."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def exit_code(status):
    """The shell's $?: the exit code, or 128 + N when signal N killed the job."""
    if WIFEXITED(status):
        return WEXITSTATUS(status)
    if WIFSIGNALED(status):
        return 128 + WTERMSIG(status)
    return 0


async def say(sys, fd, text):
    await sys.write(fd, text.encode())


# --- parsing ------------------------------------------------------------------------------
def tokenize(line):
    """Words (str) and operators (tuples): ("|",) (";",) ("&",) and ("redir", fd, op)."""
    tokens = []
    word, quoted = None, False  # word: the word being read (None: between words)
    i = 0

    def end_word():
        nonlocal word, quoted
        if word is not None:
            tokens.append(word)
        word, quoted = None, False

    while i < len(line):
        c = line[i]
        if c in " \t":
            end_word()
        elif c == "#" and word is None:
            break
        elif c in "'\"":
            close = line.find(c, i + 1)
            if close < 0:
                raise SyntaxErr(f"unterminated {c}")
            word, quoted = (word or "") + line[i + 1 : close], True
            i = close
        elif c == "\\" and i + 1 < len(line):
            word, quoted, i = (word or "") + line[i + 1], True, i + 1
        elif c in "|;&":
            end_word()
            tokens.append((c,))
        elif c in "<>":
            fd = 0 if c == "<" else 1
            if word is not None and word.isdigit() and not quoted:  # 2> err: the word was the fd
                fd, word = int(word), None
            end_word()
            op = c
            if line.startswith(">>", i):
                op, i = ">>", i + 1
            if line.startswith("&", i + 1):  # 2>&1
                op, i = op + "&", i + 1
            tokens.append(("redir", fd, op))
        else:
            word = (word or "") + c
        i += 1
    end_word()
    return tokens


def parse(line):
    """A line -> jobs: (pipeline, background); a pipeline is a list of commands,
    a command is (words, redirections), a redirection is (fd, op, target)."""
    jobs, pipeline, words, redirs = [], [], [], []
    tokens = tokenize(line)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, str):
            words.append(tok)
        elif tok[0] == "redir":
            if i + 1 >= len(tokens) or not isinstance(tokens[i + 1], str):
                raise SyntaxErr(f"{tok[2]} needs a file name")
            i += 1
            redirs.append((tok[1], tok[2], tokens[i]))
        else:  # | ; &
            if not words:
                if tok[0] in ";&" and not pipeline:
                    i += 1
                    continue  # an empty command: nothing to do
                raise SyntaxErr(f"near unexpected token '{tok[0]}'")
            pipeline.append((words, redirs))
            words, redirs = [], []
            if tok[0] != "|":
                jobs.append((pipeline, tok[0] == "&"))
                pipeline = []
        i += 1
    if words or redirs:
        if not words:
            raise SyntaxErr("a redirection without a command")
        pipeline.append((words, redirs))
    elif pipeline:
        raise SyntaxErr("a pipeline ends with '|'")
    if pipeline:
        jobs.append((pipeline, False))
    return jobs


# --- running ------------------------------------------------------------------------------
async def redirect(sys, redirs):
    """open + dup2 each redirection onto its fd, in the order written (as sh does).
    False, after saying why, when one fails."""
    for fd, op, target in redirs:
        try:
            if op.endswith("&"):  # N>&M: fd N becomes a copy of fd M
                await sys.dup2(int(target) if target.isdigit() else -1, fd)
                continue
            new = await sys.open(target, OPEN_FLAGS[op], 0o666)
            if new != fd:
                await sys.dup2(new, fd)
                await sys.close(new)
        except OSError as exc:
            await say(sys, 2, f"sh: {target}: {os.strerror(exc.errno)}\n")
            return False
    return True


async def builtin(sys, words, state):
    """Run a built-in in this process; its exit code (exit raises ShellExit)."""
    name = words[0]
    if name == "exit":
        code = state["last"]
        if len(words) > 1:
            try:
                code = int(words[1]) & 0xFF
            except ValueError:
                await say(sys, 2, f"sh: exit: {words[1]}: numeric argument required\n")
                code = 2
        raise ShellExit(code)
    if name == "cd":
        target = words[1] if len(words) > 1 else "/"
        try:
            await sys.chdir(target)
        except OSError as exc:
            await say(sys, 2, f"sh: cd: {target}: {os.strerror(exc.errno)}\n")
            return 1
        return 0
    await say(sys, 1, await sys.getcwd() + "\n")  # pwd
    return 0


async def builtin_here(sys, words, redirs, state):
    """A built-in in the shell itself: save the fds the redirections change, run, restore."""
    saved = []
    try:
        for fd, _, _ in redirs:
            try:
                saved.append((fd, await sys.fcntl(fd, F_DUPFD_CLOEXEC, 10)))
            except OSError:
                saved.append((fd, None))  # fd was not open: close it afterwards
        if not await redirect(sys, redirs):
            return 1
        return await builtin(sys, words, state)
    finally:
        for fd, copy in reversed(saved):
            if copy is None:
                try:
                    await sys.close(fd)
                except OSError:
                    pass
            else:
                await sys.dup2(copy, fd)
                await sys.close(copy)


async def child(sys, words, redirs, stdin, pipe, state):
    """In the forked child: wire up fds 0 and 1, redirect, become the program."""
    if stdin is not None:  # the previous command's pipe
        await sys.dup2(stdin, 0)
        await sys.close(stdin)
    if pipe is not None:  # our own pipe to the next command
        read_end, write_end = pipe
        await sys.close(read_end)  # the next command's end, not ours
        await sys.dup2(write_end, 1)
        await sys.close(write_end)
    if not await redirect(sys, redirs):
        await sys.exit(1)
    name = words[0]
    if name in BUILTINS:  # in a pipeline: the built-in runs in this child
        try:
            code = await builtin(sys, words, state)
        except ShellExit as done:
            code = done.code
        await sys.exit(code)
    path = name if "/" in name else "/bin/" + name
    try:
        await sys.execve(path, words)
    except OSError as exc:
        await say(sys, 2, f"sh: {name}: {os.strerror(exc.errno)}\n")
    await sys.exit(127)


async def start(sys, pipeline, state):
    """fork one child per command, joined by pipes; their pids, in order."""
    pids, stdin = [], None
    for i, (words, redirs) in enumerate(pipeline):
        pipe = await sys.pipe() if i < len(pipeline) - 1 else None
        pid = await sys.fork()
        if pid == 0:
            await child(sys, words, redirs, stdin, pipe, state)
        pids.append(pid)
        if stdin is not None:
            await sys.close(stdin)  # both of its users are forked
        if pipe is not None:
            await sys.close(pipe[1])  # only the child writes; the shell must not hold it open
            stdin = pipe[0]
    return pids


async def reap_jobs(sys, jobs, options):
    """Collect finished background jobs (all of them when options is 0).
    A job is [pids still running, its last pid, the last pid's status]."""
    for job in list(jobs):
        for pid in list(job[0]):
            try:
                got, status = await sys.waitpid(pid, options)
            except OSError as exc:
                if exc.errno != ECHILD:
                    raise
                job[0].remove(pid)
                continue
            if got == pid:
                job[0].remove(pid)
                if pid == job[1]:
                    job[2] = status
        if not job[0]:
            jobs.remove(job)
            if job[2] is not None:
                await say(sys, 1, f"[{job[1]}] done {exit_code(job[2])}\n")


async def run_job(sys, pipeline, background, state):
    words, redirs = pipeline[0]
    if len(pipeline) == 1 and words[0] in BUILTINS and not background:
        state["last"] = await builtin_here(sys, words, redirs, state)
        return
    try:
        pids = await start(sys, pipeline, state)
    except OSError as exc:  # fork or pipe failed (EAGAIN, EMFILE): the job does not run
        await say(sys, 2, f"sh: {os.strerror(exc.errno)}\n")
        state["last"] = 1
        return
    if background:
        state["jobs"].append([list(pids), pids[-1], None])
        await say(sys, 1, f"[{pids[-1]}]\n")
        return
    status = 0
    for pid in pids:
        _, status = await sys.waitpid(pid, 0)
    state["last"] = exit_code(status)


async def lines_of(sys, fd, command):
    """The lines to run: -c's string, or what read(2) gives on fd (stdin or a script)."""
    if command is not None:
        for line in command.split("\n"):
            yield line
        return
    pending = b""  # read but not yet run
    while True:
        while b"\n" not in pending:
            chunk = await sys.read(fd, 256)
            if not chunk:
                break
            pending += chunk
        if not pending:
            return
        line, _, pending = pending.partition(b"\n")
        yield line.decode()


async def main(sys, argv):
    interactive = "-i" in argv[1:]
    args = [a for a in argv[1:] if a != "-i"]
    command, fd = None, 0
    if args[:1] == ["-c"]:
        command = args[1] if len(args) > 1 else ""
    elif args:
        try:
            fd = await sys.open(args[0])
        except OSError as exc:
            await say(sys, 2, f"sh: {args[0]}: {os.strerror(exc.errno)}\n")
            return 127
    state = {"last": 0, "jobs": []}
    lines = lines_of(sys, fd, command)
    while True:
        await reap_jobs(sys, state["jobs"], WNOHANG)
        if interactive:
            await say(sys, 1, "$ ")
        try:
            line = await anext(lines)
        except StopAsyncIteration:
            break  # end of input
        try:
            jobs = parse(line)
        except SyntaxErr as exc:
            await say(sys, 2, f"sh: syntax error: {exc}\n")
            state["last"] = 2
            continue
        try:
            for pipeline, background in jobs:
                await run_job(sys, pipeline, background, state)
        except ShellExit as done:
            return done.code
    await reap_jobs(sys, state["jobs"], 0)
    return state["last"]
