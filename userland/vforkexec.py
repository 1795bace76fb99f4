"""vforkexec: vfork borrows the parent's memory and stops the parent until exec.

vfork is clone(CLONE_VM | CLONE_VFORK, SIGCHLD): no copy of the address space
is made, so the parent must not run while the child uses it. The parent
sleeps until the child's mm_release, which execve (or _exit) does, so the
parent's next line is always printed after the child became /bin/hello.

Run: ukernel run vforkexec
"""

from ukernel.abi import WEXITSTATUS


async def main(sys, argv):
    pid = await sys.vfork()
    if pid == 0:  # the child: only execve or _exit are safe here
        await sys.execve("/bin/hello", ["hello"])
        await sys.exit(127)
    me = await sys.getpid()
    await sys.write(1, f"vforkexec {me}: resumed after child {pid} exec'd\n".encode())
    _, status = await sys.waitpid(pid, 0)
    await sys.write(1, f"vforkexec {me}: child {pid} exited {WEXITSTATUS(status)}\n".encode())
    return 0
