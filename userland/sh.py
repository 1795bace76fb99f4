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

from __future__ import annotations

import os
from dataclasses import dataclass

from ukernel.abi import (
    ECHILD,
    F_DUPFD_CLOEXEC,
    O_APPEND,
    O_CREAT,
    O_RDONLY,
    O_TRUNC,
    O_WRONLY,
    SIG_DFL,
    SIG_IGN,
    SIGABRT,
    SIGCONT,
    SIGHUP,
    SIGINT,
    SIGKILL,
    SIGPIPE,
    SIGQUIT,
    SIGSEGV,
    SIGSTOP,
    SIGTERM,
    SIGTSTP,
    SIGTTIN,
    SIGTTOU,
    W_EXITCODE,
    WCONTINUED,
    WEXITSTATUS,
    WIFCONTINUED,
    WIFEXITED,
    WIFSIGNALED,
    WIFSTOPPED,
    WNOHANG,
    WSTOPSIG,
    WTERMSIG,
    WUNTRACED,
)
from userland.kill import parse_signal

JOB_SIGNALS = (SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU)  # an interactive shell ignores them
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
def tokenize(line, status=0):
    """Words (str) and operators (tuples): ("|",) (";",) ("&",) and ("redir", fd, op).
    ``$?`` (outside '...') becomes ``status``, the last pipeline's exit status."""
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
            text = line[i + 1 : close]
            if c == '"':
                text = text.replace("$?", str(status))
            word, quoted = (word or "") + text, True
            i = close
        elif line.startswith("$?", i):
            word, i = (word or "") + str(status), i + 1
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


def parse(line, status=0):
    """A line -> jobs: (pipeline, background); a pipeline is a list of commands,
    a command is (words, redirections), a redirection is (fd, op, target)."""
    jobs, pipeline, words, redirs = [], [], [], []
    tokens = tokenize(line, status)
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


# --- the job table ------------------------------------------------------------------------
RUNNING, STOPPED, DONE = "Running", "Stopped", "Done"
STOP_NAMES = {
    SIGTSTP: "Stopped",
    SIGSTOP: "Stopped (signal)",
    SIGTTIN: "Stopped (tty input)",
    SIGTTOU: "Stopped (tty output)",
}
KILL_NAMES = {SIGHUP: "Hangup", SIGINT: "Interrupt", SIGQUIT: "Quit", SIGKILL: "Killed", SIGSEGV: "Segmentation fault",
              SIGPIPE: "Broken pipe", SIGTERM: "Terminated", SIGABRT: "Aborted"}  # fmt: skip


@dataclass
class Job:
    """A pipeline the shell started: its process group, the pids not yet reaped, and how it is."""

    jid: int
    pgid: int  # 0 without job control: the job is in the shell's own group
    pids: list[int]
    last: int  # the pipeline's last command, whose status is the job's
    cmd: str
    state: str = RUNNING
    status: int = 0  # the wait status that made the state (the last pid's exit, or a stop)
    changed: bool = False  # a state the user has not been told of yet

    def describe(self) -> str:
        """The state column of ``jobs``: Running, Stopped (tty input), Done, Exit 3, Killed."""
        if self.state == STOPPED:
            return STOP_NAMES.get(WSTOPSIG(self.status), "Stopped")
        if self.state == RUNNING:
            return RUNNING
        if WIFSIGNALED(self.status):
            sig = WTERMSIG(self.status)
            return KILL_NAMES.get(sig, f"Signal {sig}")
        code = WEXITSTATUS(self.status)
        return f"Exit {code}" if code else DONE


class JobTable:
    """The shell's jobs by number; ``+`` is the most recent one stopped or started, ``-`` the one before."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.recent: list[int] = []  # jids, the current job last

    def add(self, pgid: int, pids: list[int], cmd: str) -> Job:
        jid = max(self.jobs, default=0) + 1
        self.jobs[jid] = job = Job(jid, pgid, list(pids), pids[-1], cmd)
        self.touch(job)
        return job

    def touch(self, job: Job) -> None:
        """Make job the current one (``+``)."""
        if job.jid in self.recent:
            self.recent.remove(job.jid)
        self.recent.append(job.jid)

    def remove(self, job: Job) -> None:
        self.jobs.pop(job.jid, None)
        if job.jid in self.recent:
            self.recent.remove(job.jid)

    def mark(self, job: Job) -> str:
        if self.recent[-1:] == [job.jid]:
            return "+"
        return "-" if self.recent[-2:-1] == [job.jid] else " "

    def find(self, spec: str | None) -> Job | None:
        """%N, %+ / %% / none (the current job), %- (the previous one), %name (a command's start)."""
        if spec in (None, "%", "%%", "%+"):
            return self.jobs.get(self.recent[-1]) if self.recent else None
        if spec == "%-":
            return self.jobs.get(self.recent[-2]) if len(self.recent) > 1 else None
        if spec[1:].isdigit():
            return self.jobs.get(int(spec[1:]))
        return next((job for job in self.jobs.values() if job.cmd.startswith(spec[1:])), None)

    def line(self, job: Job) -> str:
        """A job as bash's ``jobs`` shows it: ``[1]+  Stopped                 cat``."""
        amp = " &" if job.state == RUNNING else ""
        return f"[{job.jid}]{self.mark(job)}  {job.describe():<24}{job.cmd}{amp}\n"


def update(job: Job, pid: int, status: int) -> None:
    """What one wait status says about a job: a member stopped, continued or ended."""
    if WIFSTOPPED(status):
        job.state, job.status, job.changed = STOPPED, status, True
        return
    if WIFCONTINUED(status):
        job.state = RUNNING
        return
    if pid in job.pids:
        job.pids.remove(pid)
    if pid == job.last:
        job.status = status
    if not job.pids:
        job.state, job.changed = DONE, True


# --- running ------------------------------------------------------------------------------
class Shell:
    """What the shell keeps between lines: $?, its jobs, and whether it does job control."""

    def __init__(self, sys, job_control: bool) -> None:
        self.sys = sys
        self.last = 0  # $?
        self.jobs = JobTable()
        self.job_control = job_control
        self.pgid = 0  # the shell's own process group (job control only)
        self.tty: int | None = None  # the terminal's fd when the shell controls one
        self.saved_fg = 0  # the terminal's foreground group before the shell took it

    async def say(self, text: str, fd: int = 1) -> None:
        await self.sys.write(fd, text.encode())

    async def init_job_control(self) -> None:
        """As bash's initialize_job_control: a group of its own, the terminal's job-control
        signals ignored (^C, ^Z and background-terminal stops are for the jobs), the terminal ours."""
        sys = self.sys
        try:
            await sys.setpgid(0, 0)
        except OSError:
            pass  # a session leader already leads its group
        self.pgid = await sys.getpgid(0)
        for sig in JOB_SIGNALS:
            await sys.sigaction(sig, SIG_IGN)
        try:
            self.saved_fg = await sys.tcgetpgrp(0)
            await sys.tcsetpgrp(0, self.pgid)
            self.tty = 0
        except OSError:  # ENOTTY: no terminal, job control by signals alone
            self.tty = None

    async def give_terminal(self, pgid: int) -> None:
        if self.tty is not None:
            await self.sys.tcsetpgrp(self.tty, pgid)

    async def leave(self) -> None:
        """Hand the terminal back to the group that had it before the shell."""
        if self.tty is not None and self.saved_fg:
            try:
                await self.sys.tcsetpgrp(self.tty, self.saved_fg)
            except OSError:
                pass  # that group is gone


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


async def builtin(shell, words):
    """Run a built-in in this process; its exit code (exit raises ShellExit)."""
    sys, name = shell.sys, words[0]
    if name == "exit":
        code = shell.last
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
    if name == "pwd":
        await say(sys, 1, await sys.getcwd() + "\n")
        return 0
    return await JOB_BUILTINS[name](shell, words[1:])


async def builtin_here(shell, words, redirs):
    """A built-in in the shell itself: save the fds the redirections change, run, restore."""
    sys, saved = shell.sys, []
    try:
        for fd, _, _ in redirs:
            try:
                saved.append((fd, await sys.fcntl(fd, F_DUPFD_CLOEXEC, 10)))
            except OSError:
                saved.append((fd, None))  # fd was not open: close it afterwards
        if not await redirect(sys, redirs):
            return 1
        return await builtin(shell, words)
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


async def enter_job(shell, pgid, background):
    """In a forked child, first thing: undo the shell's ignored signals (exec keeps SIG_IGN)
    but SIGTTOU, so a ^C or ^Z typed once the job owns the terminal reaches it; join the
    job's group (the parent does it too: whichever runs first wins the race, and exec never
    starts outside the group); take the terminal for a foreground job (SIGTTOU still ignored:
    tcsetpgrp from the background would stop it); then SIGTTOU as well."""
    sys = shell.sys
    if shell.job_control:
        for sig in JOB_SIGNALS:
            if sig != SIGTTOU:
                await sys.sigaction(sig, SIG_DFL)
        await sys.setpgid(0, pgid)
        if not background:
            await shell.give_terminal(pgid or await sys.getpid())
        await sys.sigaction(SIGTTOU, SIG_DFL)
    elif background:  # POSIX 2.11: no job control, so ^C and ^\ must not reach it
        for sig in (SIGINT, SIGQUIT):
            await sys.sigaction(sig, SIG_IGN)


async def child(shell, words, redirs, stdin, pipe):
    """In the forked child: wire up fds 0 and 1, redirect, become the program."""
    sys = shell.sys
    if stdin is not None:  # the previous command's pipe, or /dev/null
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
            code = await builtin(shell, words)
        except ShellExit as done:
            code = done.code
        await sys.exit(code)
    path = name if "/" in name else "/bin/" + name
    try:
        await sys.execve(path, words)
    except OSError as exc:
        await say(sys, 2, f"sh: {name}: {os.strerror(exc.errno)}\n")
    await sys.exit(127)


async def start(shell, pipeline, background):
    """fork one child per command, joined by pipes, all in one new process group
    under job control: (pgid, pids in order)."""
    sys, pids, pgid = shell.sys, [], 0
    stdin = None
    if background and not shell.job_control:  # POSIX 2.9.3: an asynchronous list reads /dev/null
        stdin = await sys.open("/dev/null", O_RDONLY)
    for i, (words, redirs) in enumerate(pipeline):
        pipe = await sys.pipe() if i < len(pipeline) - 1 else None
        pid = await sys.fork()
        if pid == 0:
            await enter_job(shell, pgid, background)
            await child(shell, words, redirs, stdin, pipe)
        if shell.job_control:
            pgid = pgid or pid
            try:
                await sys.setpgid(pid, pgid)
            except OSError:
                pass  # EACCES: it has exec'd, so it joined by itself (see enter_job)
        pids.append(pid)
        if stdin is not None:
            await sys.close(stdin)  # both of its users are forked
            stdin = None
        if pipe is not None:
            await sys.close(pipe[1])  # only the child writes; the shell must not hold it open
            stdin = pipe[0]
    return pgid, pids


async def wait_job(shell, job):
    """Reap the job's processes until they have all ended or (job control) the job stopped."""
    sys = shell.sys
    options = WUNTRACED if shell.job_control else 0
    while job.pids and job.state != STOPPED:
        target = -job.pgid if job.pgid else job.pids[0]
        try:
            pid, status = await sys.waitpid(target, options)
        except OSError as exc:
            if exc.errno != ECHILD:
                raise
            job.pids.clear()  # someone else reaped them
            job.state = DONE
            break
        update(job, pid, status)


async def foreground(shell, job):
    """Wait for a foreground job with the terminal given to it, then take the terminal back;
    a stopped job stays in the table (``[1]+  Stopped``), an ended one leaves it."""
    await wait_job(shell, job)
    await shell.give_terminal(shell.pgid)
    job.changed = False
    if job.state == STOPPED:
        shell.jobs.touch(job)
        await shell.say("\n" + shell.jobs.line(job))
        shell.last = 128 + WSTOPSIG(job.status)
        return
    shell.jobs.remove(job)
    shell.last = exit_code(job.status)
    if shell.job_control and WIFSIGNALED(job.status):
        sig = WTERMSIG(job.status)  # bash: ^C and a broken pipe need no words
        await shell.say("\n" if sig in (SIGINT, SIGPIPE) else job.describe() + "\n")


async def reap_jobs(shell, options):
    """Collect what the background jobs did (all of it when options is 0) and report it:
    under job control a Done or a new Stop, bash-style; without, ``[pid] done STATUS``."""
    sys = shell.sys
    if shell.job_control and options:
        options |= WUNTRACED | WCONTINUED
    for job in list(shell.jobs.jobs.values()):
        for pid in list(job.pids):
            try:
                got, status = await sys.waitpid(pid, options)
            except OSError as exc:
                if exc.errno != ECHILD:
                    raise
                update(job, pid, W_EXITCODE(0))  # reaped elsewhere: the job ends without a status
                continue
            if got == pid:
                update(job, pid, status)
        if not job.changed:
            continue
        job.changed = False
        if shell.job_control:
            await shell.say(shell.jobs.line(job))
        elif job.state == DONE:
            await shell.say(f"[{job.last}] done {exit_code(job.status)}\n")
        if job.state == DONE:
            shell.jobs.remove(job)


async def run_job(shell, pipeline, background, text):
    words, redirs = pipeline[0]
    if len(pipeline) == 1 and words[0] in BUILTINS and not background:
        shell.last = await builtin_here(shell, words, redirs)
        return
    try:
        pgid, pids = await start(shell, pipeline, background)
    except OSError as exc:  # fork or pipe failed (EAGAIN, EMFILE): the job does not run
        await say(shell.sys, 2, f"sh: {os.strerror(exc.errno)}\n")
        shell.last = 1
        return
    job = shell.jobs.add(pgid, pids, text)
    if background:
        await shell.say(f"[{job.jid}] {pids[-1]}\n" if shell.job_control else f"[{pids[-1]}]\n")
        shell.last = 0
        return
    await shell.give_terminal(pgid)
    await foreground(shell, job)


# --- the job-control built-ins ------------------------------------------------------------
async def job_arg(shell, name, spec):
    """A job named by %N (or the current one); None after saying it is not there."""
    job = shell.jobs.find(spec)
    if job is None:
        await shell.say(f"sh: {name}: {spec or 'current'}: no such job\n", 2)
    return job


async def controlled_job(shell, name, args):
    """The job fg or bg moves: as job_arg, and None without job control (said)."""
    if not shell.job_control:
        await shell.say(f"sh: {name}: no job control\n", 2)
        return None
    return await job_arg(shell, name, args[0] if args else None)


async def builtin_jobs(shell, args):
    await reap_jobs(shell, WNOHANG)  # a job that ended since the prompt shows as Done, once
    for job in shell.jobs.jobs.values():
        await shell.say(shell.jobs.line(job))
    return 0


async def builtin_fg(shell, args):
    job = await controlled_job(shell, "fg", args)
    if job is None:
        return 1
    await shell.say(job.cmd + "\n")
    await shell.give_terminal(job.pgid)
    if job.state == STOPPED:
        await shell.sys.kill(-job.pgid, SIGCONT)
    job.state = RUNNING
    await foreground(shell, job)
    return shell.last


async def builtin_bg(shell, args):
    job = await controlled_job(shell, "bg", args)
    if job is None:
        return 1
    if job.state == RUNNING:
        await shell.say(f"sh: bg: job {job.jid} already in background\n", 2)
        return 0
    await shell.sys.kill(-job.pgid, SIGCONT)
    job.state = RUNNING
    shell.jobs.touch(job)
    await shell.say(f"[{job.jid}]{shell.jobs.mark(job)} {job.cmd} &\n")
    return 0


async def builtin_kill(shell, args):
    """kill [-SIG | -s SIG] %N|PID...: a job's whole group (kill(-pgid)), or a pid."""
    sig = SIGTERM
    if args[:1] == ["-s"] and len(args) > 1:
        sig, args = parse_signal(args[1]), args[2:]
    elif args and args[0].startswith("-") and len(args[0]) > 1 and args[0] != "--":
        sig, args = parse_signal(args[0][1:]), args[1:]
    if sig is None:
        await shell.say("sh: kill: invalid signal specification\n", 2)
        return 1
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        await shell.say("sh: kill: usage: kill [-SIG | -s SIG] %N|PID...\n", 2)
        return 1
    status = 0
    for arg in args:
        if arg.startswith("%"):
            job = await job_arg(shell, "kill", arg)
            targets = [] if job is None else [-job.pgid] if job.pgid else list(job.pids)
        elif arg.lstrip("-").isdigit():
            targets = [int(arg)]
        else:
            await shell.say(f"sh: kill: {arg}: arguments must be process or job IDs\n", 2)
            targets = []
        status |= not targets
        for target in targets:
            try:
                await shell.sys.kill(target, sig)
            except OSError as exc:
                await shell.say(f"sh: kill: ({target}) - {os.strerror(exc.errno)}\n", 2)
                status = 1
    return status


async def builtin_wait(shell, args):
    """wait [%N|PID...]: until the jobs end (all of them when none is named); the last one's status."""
    if not args:
        for job in list(shell.jobs.jobs.values()):
            await wait_job(shell, job)
        await reap_jobs(shell, WNOHANG)
        return 0
    status = 127
    for arg in args:
        if arg.startswith("%"):
            job = await job_arg(shell, "wait", arg)
        else:
            pid = int(arg) if arg.isdigit() else -1
            job = next((j for j in shell.jobs.jobs.values() if pid in j.pids or j.last == pid), None)
            if job is None:
                await shell.say(f"sh: wait: pid {arg} is not a child of this shell\n", 2)
        if job is None:
            status = 127
            continue
        await wait_job(shell, job)
        status = 128 + WSTOPSIG(job.status) if job.state == STOPPED else exit_code(job.status)
        if job.state == DONE:
            shell.jobs.remove(job)
    return status


JOB_BUILTINS = {"jobs": builtin_jobs, "fg": builtin_fg, "bg": builtin_bg, "kill": builtin_kill, "wait": builtin_wait}
BUILTINS = ("cd", "exit", "pwd", *JOB_BUILTINS)


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
    interactive = "-i" in argv[1:] or (command is None and fd == 0 and await sys.isatty(0))
    shell = Shell(sys, job_control=interactive)
    if interactive:
        await shell.init_job_control()
    lines = lines_of(sys, fd, command)
    try:
        while True:
            await reap_jobs(shell, WNOHANG)
            if interactive:
                await say(sys, 1, "$ ")
            try:
                line = await anext(lines)
            except StopAsyncIteration:
                break  # end of input (^D at a terminal)
            try:
                jobs = parse(line, shell.last)
            except SyntaxErr as exc:
                await say(sys, 2, f"sh: syntax error: {exc}\n")
                shell.last = 2
                continue
            for pipeline, background in jobs:
                await run_job(shell, pipeline, background, command_text(pipeline))
    except ShellExit as done:
        await shell.leave()
        return done.code
    if not interactive:
        await reap_jobs(shell, 0)  # a script's background jobs are waited for
    await shell.leave()
    return shell.last


def command_text(pipeline):
    """A job's name in ``jobs``: its commands' words again, joined by `` | ``."""
    return " | ".join(" ".join(words) for words, _ in pipeline)
