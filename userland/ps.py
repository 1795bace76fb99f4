"""ps: list processes, from /proc only (as procps does): no syscall asks the kernel directly.

For each numeric name in /proc (the pids this process can see: a process in
a new pid namespace sees only its namespace, with its own numbers) it reads
/proc/PID/stat for the state and the parent, and /proc/PID/cmdline for the
command. Output, one process a line, by pid (like ``ps -ef``, cut down):

      PID  PPID STAT CMD
        1     0 S    init /bin/sh sh

STAT is R (running or runnable), S (sleeping: waiting in wait4, read, pause),
D (uninterruptible sleep), T (stopped) or Z (zombie: exited, not yet reaped;
its cmdline is gone, so CMD shows [comm]).
"""

from userland.lib.fs import write_all
from userland.lib.proc import processes


async def main(sys, argv):
    lines = [f"{'PID':>5} {'PPID':>5} STAT CMD"]
    for proc in await processes(sys):
        lines.append(f"{proc.pid:>5} {proc.ppid:>5} {proc.state:<4} {proc.command}")
    await write_all(sys, 1, "\n".join(lines) + "\n")
    return 0
