"""File-system limits (issue 13): a tmpfs that fills up, mount stacks that stay cheap and capped,
and a device unlinked while open that is not a leak."""

from __future__ import annotations

import pytest
from conftest import run_source

from services.vfs import VfsService
from ukernel import abi
from ukernel.testing import service_client

FILL = """
from ukernel.abi import O_CREAT, O_WRONLY
async def main(sys, argv):
    fd = await sys.open("/big", O_CREAT | O_WRONLY)
    total = 0
    while True:
        try:
            total += await sys.write(fd, bytes(1 << 20))
        except OSError as exc:
            await sys.write(1, b"%d %d\\n" % (exc.errno, total >> 20))
            break
    await sys.close(fd)
    await sys.unlink("/big")
    fd = await sys.open("/again", O_CREAT | O_WRONLY)
    await sys.write(1, b"after unlink: %d\\n" % await sys.write(fd, bytes(1 << 20)))
    await sys.unlink("/again")
    return 0
"""


async def test_a_full_tmpfs_is_enospc_and_an_unlink_gives_the_room_back():
    result = await run_source(FILL, tmpfs_size="12M")
    errno, mib = map(int, result.stdout.split(b"\n")[0].split())
    assert errno == abi.ENOSPC
    assert 9 <= mib < 12  # boot's /bin programs hold some of it
    assert result.stdout.split(b"\n")[1] == b"after unlink: 1048576"


async def test_the_tmpfs_is_half_of_memory_by_default():
    result = await run_source(FILL, memory="24M")
    errno, mib = map(int, result.stdout.split(b"\n")[0].split())
    assert (errno, mib < 12) == (abi.ENOSPC, True)


async def test_mounts_stack_cheaply_and_stop_at_mount_max():
    async with service_client(VfsService(mount_max=200)) as vfs:
        fs = (await vfs.call("init_fs"))["fs"]
        for _ in range(198):  # '/' and /proc are the first two
            await vfs.call("mount", fs=fs, source="none", target="/mnt", fstype="tmpfs")
        with pytest.raises(OSError) as caught:
            await vfs.call("mount", fs=fs, source="none", target="/mnt", fstype="tmpfs")
        assert caught.value.errno == abi.ENOSPC
        assert "200 mounts in this namespace (fs.mount-max)" in caught.value.strerror
        for _ in range(198):
            await vfs.call("umount", fs=fs, target="/mnt")
        with pytest.raises(OSError) as caught:
            await vfs.call("umount", fs=fs, target="/mnt")
        assert caught.value.errno == abi.EINVAL
        assert await vfs.call("check") == []


async def test_unlinking_the_console_while_it_is_open_is_not_a_leak():
    source = """
    async def main(sys, argv):
        await sys.unlink("/dev/console")
        await sys.write(1, b"still writing\\n")
        return 0
    """
    result = await run_source(source)
    assert result.stdout == b"still writing\n"


async def test_a_hole_costs_nothing():
    source = """
    from ukernel.abi import O_CREAT, O_RDWR, SEEK_SET
    async def main(sys, argv):
        fd = await sys.open("/sparse", O_CREAT | O_RDWR)
        await sys.lseek(fd, 1 << 30, SEEK_SET)
        await sys.write(fd, b"x")
        await sys.lseek(fd, (1 << 30) - 2, SEEK_SET)
        await sys.write(1, b"%d %r\\n" % ((await sys.fstat(fd)).st_size, await sys.read(fd, 8)))
        await sys.unlink("/sparse")
        return 0
    """
    result = await run_source(source, tmpfs_size="1M")  # 1 GiB of hole in a 1 MiB tmpfs
    assert result.stdout == b"1073741825 b'\\x00\\x00x'\n"
