"""tsh [-hvp]: the tiny shell of CMU 15-213's shell lab, a reference solution on ukernel's syscalls.

Usage: ``tsh`` (a ``tsh> `` prompt), ``tsh -p`` (no prompt, as the trace
driver runs it), ``tsh -v`` (say what the handlers do).

A line is a command and its words (``'...'`` quotes), with a trailing ``&``
for a background job. Built-ins: ``quit``, ``jobs``, ``bg <job>``, ``fg
<job>``, where <job> is a pid or ``%jid``. Anything else is the path of a
program, forked and exec'd as its own process group (setpgid(0, 0)), so that
the ^C and ^Z the shell receives (it is the terminal's foreground group) go
only to the job it forwards them to: ``kill(-pid, sig)``.

The lab's three rules of signal-safe job control, each in one place here:

1. **SIGCHLD is blocked from before fork until the job is in the table**
   (``eval``): otherwise the child could exit and be reaped by the handler,
   which would find no job, before ``addjob`` adds one that never ends.
2. **The foreground wait is sigsuspend in a loop** (``waitfg``): the handler
   reaps and updates the table; the shell sleeps with SIGCHLD unblocked only
   inside sigsuspend, so a SIGCHLD can never slip in between the test and the
   sleep (which pause() after unblocking would allow).
3. **One reaper**: only ``sigchld_handler`` calls waitpid, with WNOHANG |
   WUNTRACED in a loop, since signals do not queue (one SIGCHLD may stand for
   several children), and reports stops and kills:
   ``Job [1] (5) stopped by signal 20`` / ``terminated by signal 2``.

Handlers are installed with SA_RESTART (as the lab's Signal wrapper does), so
a read of the next line interrupted by SIGCHLD is restarted by the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from ukernel.abi import (
    SA_RESTART,
    SIG_BLOCK,
    SIG_SETMASK,
    SIGCHLD,
    SIGCONT,
    SIGINT,
    SIGQUIT,
    SIGTSTP,
    WIFSIGNALED,
    WIFSTOPPED,
    WNOHANG,
    WSTOPSIG,
    WTERMSIG,
    WUNTRACED,
)
from userland.lib.fs import write_all

MAXJOBS = 16
FG, BG, ST = "Foreground", "Running", "Stopped"  # a job's state, as ``jobs`` prints it


@dataclass
class Job:
    pid: int
    jid: int
    state: str
    cmdline: str  # the line as typed, with its newline (the lab prints it so)


class JobList:
    """The job table: jids are the smallest free numbers from 1, at most MAXJOBS jobs."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}

    def add(self, pid: int, state: str, cmdline: str) -> Job | None:
        if len(self.jobs) >= MAXJOBS:
            return None
        jid = next(n for n in range(1, MAXJOBS + 1) if n not in self.jobs)
        self.jobs[jid] = Job(pid, jid, state, cmdline)
        return self.jobs[jid]

    def delete(self, pid: int) -> None:
        job = self.by_pid(pid)
        if job is not None:
            del self.jobs[job.jid]

    def by_pid(self, pid: int) -> Job | None:
        return next((job for job in self.jobs.values() if job.pid == pid), None)

    def by_jid(self, jid: int) -> Job | None:
        return self.jobs.get(jid)

    def fgpid(self) -> int:
        """The foreground job's pid, 0 when there is none."""
        return next((job.pid for job in self.jobs.values() if job.state == FG), 0)

    def listing(self) -> str:
        return "".join(f"[{j.jid}] ({j.pid}) {j.state} {j.cmdline}" for j in sorted(self.jobs.values(), key=jid_of))


def jid_of(job: Job) -> int:
    return job.jid


def parseline(cmdline: str) -> tuple[list[str], bool]:
    """The lab's parseline: words split at spaces, '...' one word; (argv, background)."""
    rest, argv = cmdline.rstrip("\n") + " ", []
    rest = rest.lstrip(" ")
    while rest:
        if rest[0] == "'":
            word, _, rest = rest[1:].partition("'")
        else:
            word, _, rest = rest.partition(" ")
        argv.append(word)
        rest = rest.lstrip(" ")
    background = bool(argv) and argv[-1].startswith("&")
    if background:
        argv.pop()
    return argv, background


class Tsh:
    """The shell's state (the job table, the options) and what it does with it."""

    def __init__(self, sys, verbose: bool) -> None:
        self.sys = sys
        self.verbose = verbose
        self.jobs = JobList()

    async def say(self, text: str) -> None:
        await write_all(self.sys, 1, text)

    # --- the handlers ----------------------------------------------------------------
    async def sigchld_handler(self, sys, sig: int) -> None:
        """Reap every child that exited or was killed, mark the stopped ones."""
        while True:
            try:
                pid, status = await sys.waitpid(-1, WNOHANG | WUNTRACED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.jobs.by_pid(pid)
            if job is None:
                continue
            if WIFSTOPPED(status):
                job.state = ST
                await self.say(f"Job [{job.jid}] ({pid}) stopped by signal {WSTOPSIG(status)}\n")
                continue
            if WIFSIGNALED(status):
                await self.say(f"Job [{job.jid}] ({pid}) terminated by signal {WTERMSIG(status)}\n")
            elif self.verbose:
                await self.say(f"sigchld_handler: Job [{job.jid}] ({pid}) deleted\n")
            self.jobs.delete(pid)

    async def forward(self, sys, sig: int) -> None:
        """SIGINT / SIGTSTP: send it on to the foreground job's whole process group."""
        pid = self.jobs.fgpid()
        if pid:
            await sys.kill(-pid, sig)

    async def sigquit_handler(self, sys, sig: int) -> None:
        """The driver's way to end a run: quit at once."""
        await self.say("Terminating after receipt of SIGQUIT signal\n")
        await sys.exit(1)

    # --- the commands ----------------------------------------------------------------
    async def eval(self, cmdline: str) -> None:
        argv, background = parseline(cmdline)
        if not argv or await self.builtin(argv):
            return
        sys = self.sys
        prev = await sys.sigprocmask(SIG_BLOCK, {SIGCHLD})  # rule 1: until addjob
        pid = await sys.fork()
        if pid == 0:
            await sys.sigprocmask(SIG_SETMASK, prev)
            await sys.setpgid(0, 0)  # its own group: the shell's ^C is not the job's
            try:
                await sys.execve(argv[0], argv)
            except OSError:
                await self.say(f"{argv[0]}: Command not found\n")
            await sys.exit(0)
        job = self.jobs.add(pid, BG if background else FG, cmdline)
        if job is None:
            await self.say("Tried to create too many jobs\n")
        elif background:
            await self.say(f"[{job.jid}] ({pid}) {cmdline}")
        else:
            await self.waitfg(pid, prev)
        await sys.sigprocmask(SIG_SETMASK, prev)

    async def builtin(self, argv: list[str]) -> bool:
        name = argv[0]
        if name == "quit":
            await self.sys.exit(0)
        if name == "jobs":
            prev = await self.sys.sigprocmask(SIG_BLOCK, {SIGCHLD})  # the handler edits the table
            await self.say(self.jobs.listing())
            await self.sys.sigprocmask(SIG_SETMASK, prev)
            return True
        if name in ("bg", "fg"):
            await self.do_bgfg(argv)
            return True
        return name == "&"  # a lone '&': nothing to run

    async def find_job(self, argv: list[str]) -> Job | None:
        """bg's and fg's argument: %jid or a pid; None after saying what was wrong."""
        if len(argv) < 2:
            await self.say(f"{argv[0]} command requires PID or %jobid argument\n")
            return None
        arg = argv[1]
        if arg.startswith("%") and arg[1:].isdigit():
            job = self.jobs.by_jid(int(arg[1:]))
            if job is None:
                await self.say(f"{arg}: No such job\n")
            return job
        if arg.isdigit():
            job = self.jobs.by_pid(int(arg))
            if job is None:
                await self.say(f"({arg}): No such process\n")
            return job
        await self.say(f"{argv[0]}: argument must be a PID or %jobid\n")
        return None

    async def do_bgfg(self, argv: list[str]) -> None:
        """SIGCONT to the job's group, then run it in the background or wait for it."""
        sys = self.sys
        prev = await sys.sigprocmask(SIG_BLOCK, {SIGCHLD})
        job = await self.find_job(argv)
        if job is not None:
            await sys.kill(-job.pid, SIGCONT)
            if argv[0] == "bg":
                job.state = BG
                await self.say(f"[{job.jid}] ({job.pid}) {job.cmdline}")
            else:
                job.state = FG
                await self.waitfg(job.pid, prev)
        await sys.sigprocmask(SIG_SETMASK, prev)

    async def waitfg(self, pid: int, mask: set) -> None:
        """Rule 2: sleep in sigsuspend (SIGCHLD unblocked only there) until pid is no longer in the foreground."""
        while self.jobs.fgpid() == pid:
            try:
                await self.sys.sigsuspend(mask)
            except InterruptedError:
                pass  # sigsuspend always ends so, once a handler has run (EINTR)
        if self.verbose:
            await self.say(f"waitfg: Process ({pid}) no longer the fg process\n")


async def readline(sys, pending: bytearray) -> str | None:
    """fgets on stdin: the next line with its newline, or None at end of file."""
    while b"\n" not in pending:
        chunk = await sys.read(0, 256)
        if not chunk:
            break
        pending += chunk
    if not pending:
        return None
    end = pending.find(b"\n") + 1 or len(pending)
    line = bytes(pending[:end]).decode()
    del pending[:end]
    return line


async def main(sys, argv):
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    if "h" in flags or any(not a.startswith("-") for a in argv[1:]):
        await write_all(
            sys,
            1,
            "Usage: tsh [-hvp]\n   -h   print this message\n   -v   print additional diagnostic information\n   -p   do not emit a command prompt\n",
        )
        return 1 if "h" not in flags else 0
    tsh = Tsh(sys, "v" in flags)
    await sys.sigaction(SIGINT, tsh.forward, SA_RESTART)
    await sys.sigaction(SIGTSTP, tsh.forward, SA_RESTART)
    await sys.sigaction(SIGCHLD, tsh.sigchld_handler, SA_RESTART)
    await sys.sigaction(SIGQUIT, tsh.sigquit_handler, SA_RESTART)
    pending = bytearray()
    while True:
        if "p" not in flags:
            await tsh.say("tsh> ")
        line = await readline(sys, pending)
        if line is None:
            return 0  # end of file (^D)
        await tsh.eval(line)
