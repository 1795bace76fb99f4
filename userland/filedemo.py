"""filedemo: what a child shares with its parent's open files, after fork and with CLONE_FILES.

Three layers sit between an fd number and a file (see DESIGN.md and
services/vfs/vfs.py): the fd table (files_struct: fd -> open file description),
the open file description (the offset, the O_* flags), and the inode.

1. fork copies the fd table, but the copy points at the *same* descriptions:
   the child's read moves the offset the parent reads from next.
2. fork's copy is still a copy: an fd the child closes stays open in the parent.
3. clone(CLONE_FILES) shares the table itself (as threads do): an fd the
   child closes is closed for the parent too, and its next use is EBADF.

Run: ukernel run filedemo
"""

import os

from ukernel.abi import CLONE_FILES, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY, SEEK_CUR, SIGCHLD

PATH = "/tmp/filedemo.txt"
TEXT = b"0123456789abcdefghij"


async def say(sys, text):
    await sys.write(1, (text + "\n").encode())


async def closes_fd(sys, fd):
    """A clone child: close the fd it was given, in whatever fd table it has."""
    await sys.close(fd)
    await say(sys, f"  child {await sys.getpid()}: close({fd})")
    return 0


async def still_open(sys, fd):
    """Whether fd is open here: lseek(fd, 0, SEEK_CUR) is EBADF on a closed fd."""
    try:
        await sys.lseek(fd, 0, SEEK_CUR)
        return "still open"
    except OSError as exc:
        return f"closed ({os.strerror(exc.errno)}, EBADF)"


async def main(sys, argv):
    fd = await sys.open(PATH, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    await sys.write(fd, TEXT)
    await sys.close(fd)

    await say(sys, "1. fork shares the open file description, and with it the offset")
    fd = await sys.open(PATH, O_RDONLY)
    await say(sys, f"  parent: open({PATH}) = fd {fd}, offset 0, contents {TEXT.decode()}")
    pid = await sys.fork()
    if pid == 0:
        data = await sys.read(fd, 5)
        await say(sys, f"  child:  read(fd {fd}, 5) = {data.decode()}")
        return 0
    await sys.waitpid(pid, 0)
    data = await sys.read(fd, 5)
    offset = await sys.lseek(fd, 0, SEEK_CUR)
    await say(sys, f"  parent: read(fd {fd}, 5) = {data.decode()}  <- after the child's 5 bytes; offset now {offset}")

    await say(
        sys, "2. clone(SIGCHLD), like fork, copies the fd table: a close in the child leaves the parent's fd open"
    )
    pid = await sys.clone(SIGCHLD, closes_fd, fd)
    await sys.waitpid(pid, 0)
    await say(sys, f"  parent: fd {fd} is {await still_open(sys, fd)}")

    await say(sys, "3. clone(CLONE_FILES) shares the fd table: a close in the child closes it for the parent")
    pid = await sys.clone(CLONE_FILES | SIGCHLD, closes_fd, fd)
    await sys.waitpid(pid, 0)
    await say(sys, f"  parent: fd {fd} is {await still_open(sys, fd)}")
    await sys.unlink(PATH)
    return 0
