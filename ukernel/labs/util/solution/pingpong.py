"""pingpong: a byte goes from parent to child and back through two pipes (xv6's user/pingpong.c).

The child prints "<pid>: received ping" once it has read the parent's byte,
writes it back, and exits; the parent prints "<pid>: received pong" once the
byte is back, and reaps the child.
"""


async def main(sys, argv):
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("pingpong: your code here (handout: 2. pingpong)")
    ping_read, ping_write = await sys.pipe()  # parent -> child
    pong_read, pong_write = await sys.pipe()  # child -> parent
    pid = await sys.fork()
    if pid == 0:
        await sys.close(ping_write)
        await sys.close(pong_read)
        byte = await sys.read(ping_read, 1)
        await sys.write(1, f"{await sys.getpid()}: received ping\n")
        await sys.write(pong_write, byte)
        await sys.close(ping_read)
        await sys.close(pong_write)
        return 0
    await sys.close(ping_read)
    await sys.close(pong_write)
    await sys.write(ping_write, b"p")
    await sys.read(pong_read, 1)
    await sys.write(1, f"{await sys.getpid()}: received pong\n")
    await sys.close(ping_write)
    await sys.close(pong_read)
    await sys.waitpid(pid, 0)
    return 0
    # END SOLUTION
