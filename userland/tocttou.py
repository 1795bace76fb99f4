"""tocttou: a check-then-use race on a file: the attacker swaps /etc/passwd in between (MOSAIC's tocttou).

The mailer (root) checks that /tmp/mail is its plain mailbox, then opens it
again by name to append. If the attacker's rename lands between the check and
the use, the mail goes into the password file: 3 outcomes.
"""

from ukernel.abi import O_APPEND, O_CREAT, O_RDONLY, O_RDWR, O_WRONLY, SEEK_SET


async def put(sys, path, data):
    fd = await sys.open(path, O_WRONLY | O_CREAT, 0o644)
    await sys.write(fd, data)
    await sys.close(fd)


async def first_line(sys, path):
    fd = await sys.open(path, O_RDONLY)
    data = await sys.read(fd, 64)
    await sys.close(fd)
    return data.split(b"\n")[0]


async def main(sys, argv):
    await put(sys, "/etc/passwd", b"root:secret\n")
    await put(sys, "/tmp/mail", b"mailbox\n")
    pid = await sys.fork()
    await sys.sched_yield()
    if pid == 0:  # the attacker: /tmp/mail becomes the password file
        await sys.rename("/etc/passwd", "/tmp/mail")
        return 0
    if await first_line(sys, "/tmp/mail") != b"mailbox":  # time of check
        await sys.write(1, b"rejected\n")
    else:
        await sys.sched_yield()  # the window
        fd = await sys.open("/tmp/mail", O_RDWR | O_APPEND)  # time of use
        await sys.write(fd, b"mail\n")
        await sys.lseek(fd, 0, SEEK_SET)
        written = (await sys.read(fd, 64)).split(b"\n")[0]
        await sys.close(fd)
        await sys.write(1, b"/etc/passwd written\n" if written == b"root:secret" else b"mailbox written\n")
    await sys.waitpid(pid, 0)
    return 0
