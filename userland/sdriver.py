"""sdriver -t TRACE -s SHELL [-a ARGS] [-d DIR]: 15-213's trace-driven shell driver (sdriver.pl).

It runs SHELL as a child with two pipes (the driver writes the child's
stdin and reads its stdout, as Perl's open2 does) and walks the trace file
line by line:

- ``# ...``      a comment: printed at once on the driver's stdout;
- a blank line   ignored;
- ``TSTP``, ``INT``, ``QUIT``, ``KILL``  that signal sent to the shell's pid
  (as ^Z / ^C would reach it; the shell must forward it to its foreground job);
- ``CLOSE``      close the shell's stdin (end of file);
- ``WAIT``       wait for the shell to exit;
- ``SLEEP N``    sleep N seconds;
- anything else  a command line, written to the shell's stdin.

At the end the driver closes the shell's stdin, copies everything the shell
(and every job still holding its stdout) wrote until end of file, and reaps
the shell. ``-d DIR`` (ukernel's addition) runs the shell in DIR, where the
traces' ``./myspin`` and friends are: the lab runs the driver from there.
"""

from ukernel.abi import SIGINT, SIGKILL, SIGQUIT, SIGTSTP
from userland.lib.fs import write_all

SIGNALS = {"TSTP": SIGTSTP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL}
USAGE = "Usage: sdriver -t <trace> -s <shellprog> [-a <args>] [-d <dir>]\n"


def options(argv):
    """-t -s -a -d, each with a value; None when the command line is wrong."""
    opts, args = {}, argv[1:]
    while args:
        if len(args) < 2 or args[0] not in ("-t", "-s", "-a", "-d"):
            return None
        opts[args[0][1]] = args[1]
        args = args[2:]
    return opts if "t" in opts and "s" in opts else None


async def read_file(sys, path):
    fd = await sys.open(path)
    chunks = []
    while chunk := await sys.read(fd, 4096):
        chunks.append(chunk)
    await sys.close(fd)
    return b"".join(chunks).decode()


async def start_shell(sys, opts):
    """fork + exec the shell with its stdin and stdout on pipes: (pid, writer, reader)."""
    to_child, from_child = await sys.pipe(), await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.dup2(to_child[0], 0)
        await sys.dup2(from_child[1], 1)
        for fd in (*to_child, *from_child):
            await sys.close(fd)
        if "d" in opts:
            await sys.chdir(opts["d"])
        shell = opts["s"]
        try:
            await sys.execve(shell, [shell, *opts.get("a", "").split()])
        except OSError as exc:
            await write_all(sys, 2, f"sdriver: {shell}: {exc.strerror}\n")
        await sys.exit(1)
    await sys.close(to_child[0])
    await sys.close(from_child[1])
    return pid, to_child[1], from_child[0]


async def main(sys, argv):
    opts = options(argv)
    if opts is None:
        await write_all(sys, 2, USAGE)
        return 1
    try:
        trace = await read_file(sys, opts["t"])
    except OSError as exc:
        await write_all(sys, 2, f"sdriver: ERROR: {opts['t']}: {exc.strerror}\n")
        return 1
    pid, writer, reader = await start_shell(sys, opts)
    for line in trace.splitlines():
        word = line.split()[0] if line.strip() else ""
        if line.startswith("#"):
            await write_all(sys, 1, line + "\n")
        elif not word:
            continue
        elif word in SIGNALS:
            await sys.kill(pid, SIGNALS[word])
        elif word == "CLOSE":
            await sys.close(writer)
            writer = None
        elif word == "WAIT":
            await sys.waitpid(pid, 0)
            pid = None
        elif word == "SLEEP":
            await sys.sleep(int(line.split()[1]))
        else:
            await write_all(sys, writer, line + "\n")
    if writer is not None:
        await sys.close(writer)
    while chunk := await sys.read(reader, 4096):
        await write_all(sys, 1, chunk)
    if pid is not None:
        await sys.waitpid(pid, 0)
    return 0
