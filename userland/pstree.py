"""pstree [-p] [PID]: the process tree, built from /proc only (each process's PPid).

Every process in /proc is hung under its parent (the PPid field of
/proc/PID/stat); processes whose parent is not visible (init, whose PPid is
0) are roots. A process's threads (/proc/PID/task, less the leader) are shown
as ``{name}`` children, as Linux's pstree does. -p adds pids: ``sh(2)``.
With a PID only that subtree is drawn. Children are ordered by pid.

The drawing uses Linux pstree's Unicode line style:

    init───sh─┬─pstree          one child:   name───child
              ├─slow            first of several: ─┬─, then ├─ ... └─
              └─threads─┬─{threads}
                        └─{threads}

Unlike Linux's pstree, identical siblings are not folded into ``2*[name]``:
each process gets its own line, which is easier to check against ps.
"""

from userland.lib.fs import complain, write_all
from userland.lib.proc import processes


def draw(label, children):
    """The lines of a subtree: ``children`` are the already drawn subtrees, in order."""
    if not children:
        return [label]
    pad = " " * (len(label) + 1)
    if len(children) == 1:
        first, *rest = children[0]
        return [f"{label}───{first}"] + [f"{pad}  {line}" for line in rest]
    lines = []
    for i, child in enumerate(children):
        first, *rest = child
        last = i == len(children) - 1
        if i == 0:
            lines.append(f"{label}─┬─{first}")
        else:
            lines.append(f"{pad}{'└─' if last else '├─'}{first}")
        lines += [f"{pad}{'  ' if last else '│ '}{line}" for line in rest]
    return lines


async def main(sys, argv):
    show_pids = "-p" in argv[1:]
    wanted = [int(a) for a in argv[1:] if a.isdigit()]
    procs = {p.pid: p for p in await processes(sys, threads=True)}
    kids = {pid: [] for pid in procs}
    roots = []
    for pid, proc in sorted(procs.items()):
        (kids[proc.ppid] if proc.ppid in procs else roots).append(pid)

    def name(comm, pid, thread=False):
        text = f"{{{comm}}}" if thread else comm
        return f"{text}({pid})" if show_pids else text

    def subtree(pid):
        proc = procs[pid]
        children = [subtree(child) for child in kids[pid]]
        children += [[name(comm, tid, thread=True)] for tid, comm in proc.threads]
        return draw(name(proc.comm, pid), children)

    if wanted:
        if wanted[0] not in procs:
            await complain(sys, "pstree", f"no such process: {wanted[0]}")
            return 1
        roots = wanted[:1]
    lines = [line for root in roots for line in subtree(root)]
    await write_all(sys, 1, "\n".join(lines) + "\n")
    return 0
