"""Reading /proc the way procps does: everything ps and pstree know comes from here.

``/proc`` lists one directory per process the reader can see (plus self,
thread-self, mounts); the numeric names are the pids. For each pid:

- ``/proc/PID/stat`` is one line, ``pid (comm) S ppid pgrp session ...``.
  comm may itself hold spaces or ')', so it is cut at the *last* ')'.
- ``/proc/PID/cmdline`` is argv joined by NUL bytes (empty for a zombie).
- ``/proc/PID/task/`` lists the thread ids; the first is the leader itself.

A process can exit between the listing and the read: such pids are skipped
(ENOENT), as ps does.
"""

from dataclasses import dataclass, field

from userland.lib.fs import listdir, read_file


@dataclass
class Proc:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    session: int
    cmdline: list[str]
    threads: list[tuple[int, str]] = field(default_factory=list)  # (tid, comm), the leader excluded

    @property
    def command(self):
        """What ps prints as CMD: the argv, or [comm] when there is none (a zombie)."""
        return " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"


def parse_stat(line):
    """'3 (sh) S 2 3 1 ...' -> (pid, comm, state, ppid, pgrp, session)."""
    head, _, rest = line.partition(" (")
    comm, _, tail = rest.rpartition(") ")
    fields = tail.split()
    return int(head), comm, fields[0], int(fields[1]), int(fields[2]), int(fields[3])


async def pids(sys, root="/proc"):
    """The pids in /proc, in increasing order."""
    return sorted(int(name) for name in await listdir(sys, root) if name.isdigit())


async def read_proc(sys, pid, threads=False):
    """One process, or None when it is gone already."""
    try:
        stat = (await read_file(sys, f"/proc/{pid}/stat")).decode()
        raw = await read_file(sys, f"/proc/{pid}/cmdline")
        tids = await listdir(sys, f"/proc/{pid}/task") if threads else []
    except OSError:
        return None
    pid_, comm, state, ppid, pgrp, session = parse_stat(stat)
    cmdline = [arg.decode() for arg in raw.split(b"\0")[:-1]] if raw else []
    proc = Proc(pid_, comm, state, ppid, pgrp, session, cmdline)
    for name in tids:
        if name.isdigit() and int(name) != pid:
            try:
                tstat = (await read_file(sys, f"/proc/{pid}/task/{name}/stat")).decode()
            except OSError:
                continue
            proc.threads.append((int(name), parse_stat(tstat)[1]))
    proc.threads.sort()
    return proc


async def processes(sys, threads=False):
    """Every visible process, by pid."""
    found = []
    for pid in await pids(sys):
        proc = await read_proc(sys, pid, threads)
        if proc is not None:
            found.append(proc)
    return found
