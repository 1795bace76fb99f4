"""container: run a command in new pid, mount, uts, ipc and net namespaces.

    container [COMMAND [ARGS...]]      (default: sh, reading its commands from stdin)

This is how a container is born: one clone with CLONE_NEWPID | CLONE_NEWNS |
CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET. The child is pid 1 of its own pid
namespace (its getppid() is 0: the parent is outside), names itself with
sethostname in its own uts namespace, mounts a fresh proc on /proc in its own
mount namespace (so /proc lists only the container's processes, as ps would
show them), has no semaphores and only a loopback interface, and then execs
the command, which stays pid 1 and reaps orphans for the namespace. When it
exits, the namespace's other processes are killed (zap_pid_ns_processes).

Run: ukernel run container hello;  ukernel run container sh -c ps;
     printf 'ps\\n' | ukernel run container
"""

import os

from ukernel.abi import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    SIGCHLD,
    WEXITSTATUS,
    WIFEXITED,
    WTERMSIG,
)

FLAGS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET
HOSTNAME = "container"


async def init(sys, argv):
    """The container's pid 1: set up what only it can see, then become the command."""
    await sys.sethostname(HOSTNAME)
    await sys.mount("proc", "/proc", "proc")
    path = argv[0] if "/" in argv[0] else "/bin/" + argv[0]
    try:
        await sys.execve(path, argv)
    except OSError as exc:
        await sys.write(2, f"container: {argv[0]}: {os.strerror(exc.errno)}\n".encode())
    return 127


async def main(sys, argv):
    command = argv[1:] or ["sh"]
    pid = await sys.clone(FLAGS | SIGCHLD, init, command)
    _, status = await sys.waitpid(pid, 0)
    return WEXITSTATUS(status) if WIFEXITED(status) else 128 + WTERMSIG(status)
