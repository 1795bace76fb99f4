"""execfiles: exec unshares a table shared by CLONE_FILES (exec_files calls dup_files):
what the exec'd program opens is not the parent's, and the table's count is back to 1."""

from ukernel import abi


async def say(sys, text: str) -> None:
    await sys.write(1, f"{text}\n".encode())


async def child(sys, arg):
    await sys.execve("/bin/probe", ["probe", "open", "/tmp/p"])


async def main(sys, argv):
    log = await sys.open("/tmp/log", abi.O_WRONLY | abi.O_CREAT)
    pid = await sys.clone(abi.CLONE_FILES | abi.SIGCHLD, child, None)
    await sys.waitpid(pid, 0)
    try:
        await sys.fcntl(log + 1, abi.F_GETFD)
        state = "open"
    except OSError as exc:
        state = abi.errno_name(exc.errno)
    await say(sys, f"parent: fd {log + 1} {state}, write to fd {log}: {await sys.write(log, b'x')}")
    return 0
