"""vfs, sched, signals and namespaces, driven only through messages (as the kernel would)."""

from __future__ import annotations

import errno

import pytest

from services.namespaces import NamespacesService
from services.pid import PidService
from services.sched import SchedService
from services.signals import SignalsService
from services.vfs import VfsService
from ukernel import abi
from ukernel.testing import service_client

VFS_CLEAN = {
    "faults": 0,
    "files_structs": 0,
    "files_refs": 0,
    "fs_structs": 0,
    "fs_users": 0,
    "open_files": 0,
    "f_count": 0,
    "fds": 0,
    "mnt_namespaces": 1,
    "pipes": 0,
    "orphan_inodes": 0,
    "waiters": 0,
}
SCHED_CLEAN = {"faults": 0, "entities": 0, "queued": 0, "running": 0, "timers": 0}
SIGNALS_CLEAN = {"faults": 0, "sighands": 0, "sighand_refs": 0, "signals": 0, "threads": 0}
NS_CLEAN = {
    "faults": 0,
    "nsproxies": 0,
    "nsproxy_refs": 0,
    "namespaces": 0,
    "ns_refs": 0,
    "undo_lists": 0,
    "waiters": 0,
}
PID_CLEAN = {"faults": 0, "pids": 0, "numbers": 0, "namespaces": 1, "refs": 0}


async def expect_errno(err, c, op, **args):
    with pytest.raises(OSError) as info:
        await c.call(op, **args)
    got = info.value.errno
    assert got == err, f"{op}({args}) gave {errno.errorcode.get(got, got)}, not {errno.errorcode[err]}"


def vfs_acct(**changes):
    return VFS_CLEAN | changes


# --- vfs -------------------------------------------------------------------------------------


async def vfs_task(c):
    """The files and fs of a first task: fds 0, 1, 2 on /dev/console."""
    files = (await c.call("init_files"))["files"]
    fs = (await c.call("init_fs"))["fs"]
    return files, fs


async def test_vfs_init_files_shares_one_console_file():
    async with service_client(VfsService()) as c:
        assert await c.call("accounting") == VFS_CLEAN
        files = (await c.call("init_files"))["files"]
        assert await c.call("accounting") == vfs_acct(files_structs=1, files_refs=1, open_files=1, f_count=3, fds=3)
        assert await c.call("put_files", files=files) == {"count": 0}
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_dup_share_and_put_files():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        assert await c.call("open", files=files, fs=fs, path="/tmp/a", flags=abi.O_CREAT | abi.O_RDWR) == 3
        base = vfs_acct(files_structs=1, files_refs=1, fs_structs=1, fs_users=1, open_files=2, f_count=4, fds=4)
        assert await c.call("accounting") == base

        child = (await c.call("dup_files", files=files))["files"]
        assert child != files
        dup = base | {"files_structs": 2, "files_refs": 2, "f_count": 8, "fds": 8}
        assert await c.call("accounting") == dup  # same open files: f_count += 4, none new

        assert await c.call("share_files", files=files) == {"files": files}
        assert await c.call("accounting") == dup | {"files_refs": 3}

        assert await c.call("put_files", files=files) == {"count": 1}  # still shared: nothing closed
        assert await c.call("accounting") == dup
        assert await c.call("put_files", files=child) == {"count": 0}
        assert await c.call("accounting") == base
        assert await c.call("put_files", files=files) == {"count": 0}
        assert await c.call("put_fs", fs=fs) == {"users": 0}
        assert await c.call("accounting") == VFS_CLEAN
        await expect_errno(abi.EINVAL, c, "put_files", files=files)  # gone


async def test_vfs_copy_share_put_fs():
    async with service_client(VfsService()) as c:
        fs = (await c.call("init_fs"))["fs"]
        assert await c.call("share_fs", fs=fs) == {"fs": fs}
        assert await c.call("accounting") == vfs_acct(fs_structs=1, fs_users=2)
        copy = (await c.call("copy_fs", fs=fs))["fs"]
        assert copy != fs
        assert await c.call("accounting") == vfs_acct(fs_structs=2, fs_users=3)
        assert await c.call("put_fs", fs=fs) == {"users": 1}
        assert await c.call("put_fs", fs=copy) == {"users": 0}
        assert await c.call("put_fs", fs=fs) == {"users": 0}
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_tmpfs_open_write_lseek_read():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        fd = await c.call("open", files=files, fs=fs, path="/tmp/f", flags=abi.O_CREAT | abi.O_RDWR)
        assert fd == 3
        assert await c.call("write", files=files, fd=fd, data=b"hello world") == 11
        assert await c.call("read", files=files, fd=fd, n=5) == b""  # at the end
        assert await c.call("lseek", files=files, fd=fd, offset=0, whence=abi.SEEK_SET) == 0
        assert await c.call("read", files=files, fd=fd, n=5) == b"hello"
        assert await c.call("lseek", files=files, fd=fd, offset=1, whence=abi.SEEK_CUR) == 6
        assert await c.call("read", files=files, fd=fd, n=100) == b"world"
        assert await c.call("lseek", files=files, fd=fd, offset=-5, whence=abi.SEEK_END) == 6
        assert await c.call("write", files=files, fd=fd, data=b"WORLD!") == 6
        assert await c.call("lseek", files=files, fd=fd, offset=0, whence=abi.SEEK_SET) == 0
        assert await c.call("read", files=files, fd=fd, n=100) == b"hello WORLD!"
        await expect_errno(abi.EINVAL, c, "lseek", files=files, fd=fd, offset=-1, whence=abi.SEEK_SET)
        await expect_errno(abi.ESPIPE, c, "lseek", files=files, fd=0, offset=0, whence=abi.SEEK_SET)
        # A second open is a second open file description: its own offset.
        fd2 = await c.call("open", files=files, fs=fs, path="/tmp/f")
        assert await c.call("read", files=files, fd=fd2, n=5) == b"hello"
        await c.call("put_files", files=files)
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_dup_files_shares_the_offset():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        fd = await c.call("open", files=files, fs=fs, path="/tmp/f", flags=abi.O_CREAT | abi.O_RDWR)
        await c.call("write", files=files, fd=fd, data=b"0123456789")
        await c.call("lseek", files=files, fd=fd, offset=2, whence=abi.SEEK_SET)
        child = (await c.call("dup_files", files=files))["files"]
        assert await c.call("read", files=child, fd=fd, n=3) == b"234"  # the child read ...
        assert await c.call("lseek", files=files, fd=fd, offset=0, whence=abi.SEEK_CUR) == 5  # ... moved ours
        assert await c.call("read", files=files, fd=fd, n=2) == b"56"
        # But the tables are separate: closing in the child leaves the parent's fd open.
        await c.call("close", files=child, fd=fd)
        await expect_errno(abi.EBADF, c, "read", files=child, fd=fd, n=1)
        assert await c.call("read", files=files, fd=fd, n=2) == b"78"
        for table in (child, files):
            await c.call("put_files", files=table)
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_open_errors():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        fd = await c.call("open", files=files, fs=fs, path="/tmp/x", flags=abi.O_CREAT | abi.O_EXCL | abi.O_WRONLY)
        assert fd == 3
        await expect_errno(
            abi.EEXIST, c, "open", files=files, fs=fs, path="/tmp/x", flags=abi.O_CREAT | abi.O_EXCL | abi.O_WRONLY
        )
        await expect_errno(abi.ENOENT, c, "open", files=files, fs=fs, path="/tmp/missing")
        await expect_errno(abi.ENOENT, c, "open", files=files, fs=fs, path="/nodir/x", flags=abi.O_CREAT)
        await expect_errno(abi.EISDIR, c, "open", files=files, fs=fs, path="/tmp", flags=abi.O_WRONLY)
        await expect_errno(abi.EISDIR, c, "open", files=files, fs=fs, path="/tmp", flags=abi.O_RDWR)
        await expect_errno(abi.ENOTDIR, c, "open", files=files, fs=fs, path="/tmp/x", flags=abi.O_DIRECTORY)
        await expect_errno(abi.EBADF, c, "read", files=files, fd=fd, n=1)  # O_WRONLY
        # Failed opens leave nothing behind.
        assert await c.call("accounting") == vfs_acct(
            files_structs=1, files_refs=1, fs_structs=1, fs_users=1, open_files=2, f_count=4, fds=4
        )
        await c.call("close", files=files, fd=fd)
        await expect_errno(abi.EBADF, c, "close", files=files, fd=fd)
        await expect_errno(abi.EBADF, c, "write", files=files, fd=fd, data=b"x")
        await expect_errno(abi.EBADF, c, "read", files=files, fd=fd, n=1)
        await expect_errno(abi.EBADF, c, "read", files=files, fd=99, n=1)
        await c.call("put_files", files=files)
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_lowest_free_fd_and_dup2():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        opened = [
            await c.call("open", files=files, fs=fs, path=f"/tmp/{n}", flags=abi.O_CREAT | abi.O_RDWR) for n in "abc"
        ]
        assert opened == [3, 4, 5]
        await c.call("close", files=files, fd=4)
        await c.call("close", files=files, fd=1)
        assert await c.call("open", files=files, fs=fs, path="/tmp/d", flags=abi.O_CREAT) == 1
        assert await c.call("open", files=files, fs=fs, path="/tmp/e", flags=abi.O_CREAT) == 4
        assert await c.call("dup", files=files, fd=3) == 6

        # dup2 onto an open fd closes it first; both fds then share one offset.
        assert await c.call("write", files=files, fd=3, data=b"abcdef") == 6
        assert await c.call("dup2", files=files, old=3, new=5) == 5
        await c.call("lseek", files=files, fd=5, offset=1, whence=abi.SEEK_SET)
        assert await c.call("read", files=files, fd=3, n=2) == b"bc"
        assert await c.call("dup2", files=files, old=3, new=3) == 3
        assert await c.call("dup2", files=files, old=3, new=40) == 40
        await expect_errno(abi.EBADF, c, "dup2", files=files, old=77, new=8)
        await expect_errno(abi.EBADF, c, "dup2", files=files, old=3, new=-1)
        await expect_errno(abi.EBADF, c, "dup2", files=files, old=3, new=1024)
        # /tmp/a open once, held by 3, 5, 6, 40; /tmp/c was closed by dup2.
        assert await c.call("accounting") == vfs_acct(
            files_structs=1, files_refs=1, fs_structs=1, fs_users=1, open_files=4, f_count=8, fds=8
        )
        await c.call("put_files", files=files)
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_exec_files_closes_cloexec_and_unshares():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        keep = await c.call("open", files=files, fs=fs, path="/tmp/k", flags=abi.O_CREAT | abi.O_RDWR)
        shut = await c.call("open", files=files, fs=fs, path="/tmp/s", flags=abi.O_CREAT | abi.O_RDWR | abi.O_CLOEXEC)
        assert (keep, shut) == (3, 4)
        # A dup'd fd does not inherit FD_CLOEXEC.
        assert await c.call("dup", files=files, fd=shut) == 5

        await c.call("share_files", files=files)  # a CLONE_FILES sibling
        new = (await c.call("exec_files", files=files))["files"]
        assert new != files
        await expect_errno(abi.EBADF, c, "read", files=new, fd=shut, n=1)
        assert await c.call("read", files=new, fd=5, n=1) == b""
        assert await c.call("read", files=new, fd=keep, n=1) == b""
        # The sibling keeps its table, FD_CLOEXEC fd included; one reference each now.
        assert await c.call("read", files=files, fd=shut, n=1) == b""
        assert await c.call("accounting") == vfs_acct(
            files_structs=2, files_refs=2, fs_structs=1, fs_users=1, open_files=3, f_count=11, fds=11
        )
        # Not shared: exec_files keeps the same table.
        assert await c.call("exec_files", files=new) == {"files": new}
        assert await c.call("put_files", files=files) == {"count": 0}
        assert await c.call("put_files", files=new) == {"count": 0}
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_kernel_read_file():
    async with service_client(VfsService()) as c:
        fs = (await c.call("init_fs"))["fs"]
        await c.call("write_file", path="/bin/prog", data=b"print(1)", mode=0o755)
        await c.call("write_file", path="/etc/motd", data=b"hi")
        got = await c.call("kernel_read_file", fs=fs, path="/bin/prog")
        st_ = await c.call("stat", fs=fs, path="/bin/prog")
        assert got == {"data": b"print(1)", "path": "/bin/prog", "dev": st_["st_dev"], "ino": st_["st_ino"]}
        await expect_errno(abi.EACCES, c, "kernel_read_file", fs=fs, path="/etc/motd")
        await expect_errno(abi.EACCES, c, "kernel_read_file", fs=fs, path="/bin")
        await expect_errno(abi.EACCES, c, "kernel_read_file", fs=fs, path="/dev/console")
        await expect_errno(abi.ENOENT, c, "kernel_read_file", fs=fs, path="/bin/nothing")
        await expect_errno(abi.EINVAL, c, "kernel_read_file", fs=12345, path="/bin/prog")
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_console_io():
    seen = []
    async with service_client(VfsService(stdin=b"abcde", console=seen.append)) as c:
        files, fs = await vfs_task(c)
        assert await c.call("write", files=files, fd=1, data=b"out ") == 4
        assert await c.call("write", files=files, fd=2, data=b"err") == 3
        assert await c.call("console_output") == b"out err"
        assert seen == [b"out ", b"err"]
        assert await c.call("read", files=files, fd=0, n=3) == b"abc"
        assert await c.call("read", files=files, fd=0, n=10) == b"de"
        assert await c.call("read", files=files, fd=0, n=10) == b""  # EOF
        null = await c.call("open", files=files, fs=fs, path="/dev/null", flags=abi.O_RDWR)
        assert await c.call("write", files=files, fd=null, data=b"gone") == 4
        assert await c.call("read", files=files, fd=null, n=4) == b""
        assert await c.call("console_output") == b"out err"
        await c.call("put_files", files=files)
        await c.call("put_fs", fs=fs)
        assert await c.call("accounting") == VFS_CLEAN


async def test_vfs_mount_namespaces():
    async with service_client(VfsService()) as c:
        await vfs_task(c)  # as at boot: other handles are given out first
        ns = (await c.call("copy_mnt_ns", mnt_ns=1))["mnt_ns"]
        assert ns != 1
        assert (await c.call("accounting"))["mnt_namespaces"] == 2
        await c.call("get_mnt_ns", mnt_ns=ns)
        await c.call("put_mnt_ns", mnt_ns=ns)
        assert (await c.call("accounting"))["mnt_namespaces"] == 2
        await c.call("put_mnt_ns", mnt_ns=ns)
        assert (await c.call("accounting"))["mnt_namespaces"] == 1
        await expect_errno(abi.EINVAL, c, "put_mnt_ns", mnt_ns=ns)
        await expect_errno(abi.EINVAL, c, "copy_mnt_ns", mnt_ns=ns)


async def test_vfs_first_copy_mnt_ns_is_a_new_namespace():
    async with service_client(VfsService()) as c:
        ns = (await c.call("copy_mnt_ns", mnt_ns=1))["mnt_ns"]
        assert ns != 1
        assert (await c.call("accounting"))["mnt_namespaces"] == 2


async def test_vfs_bad_messages():
    async with service_client(VfsService()) as c:
        files, fs = await vfs_task(c)
        await expect_errno(abi.EINVAL, c, "dup_files", files=999)
        await expect_errno(abi.EINVAL, c, "share_files", files="x")
        await expect_errno(abi.EINVAL, c, "put_fs", fs=999)
        await expect_errno(abi.EINVAL, c, "open", files=999, fs=fs, path="/tmp")
        await expect_errno(abi.EINVAL, c, "open", files=files, fs=999, path="/tmp")
        await expect_errno(abi.ENOSYS, c, "no_such_op")
        await expect_errno(abi.EINVAL, c, "dup_files", fd=files)  # wrong name
        await expect_errno(abi.EINVAL, c, "dup_files")  # missing
        await expect_errno(abi.EINVAL, c, "dup_files", files=files, extra=1)  # unknown extra
        await expect_errno(abi.EFAULT, c, "write", files=files, fd=1, data="not bytes")
        assert await c.call("ping") == "vfs"
        acct = await c.call("accounting")
        assert acct["faults"] == 0
        assert acct["files_refs"] == 1 and acct["f_count"] == 3


# --- sched -----------------------------------------------------------------------------------


async def test_sched_fork_and_cancel():
    async with service_client(SchedService()) as c:
        assert await c.call("sched_fork", task=1) == {"task": 1}
        await expect_errno(abi.EEXIST, c, "sched_fork", task=1)
        stat = await c.call("sched_stat", task=1)
        assert {k: stat[k] for k in ("state", "cpu", "runtime", "nvcsw", "nivcsw", "policy", "prio", "nice")} == {
            "state": "new",
            "cpu": -1,
            "runtime": 0,
            "nvcsw": 0,
            "nivcsw": 0,
            "policy": abi.SCHED_OTHER,
            "prio": 120,
            "nice": 0,
        }
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 1}
        await c.call("sched_cancel_fork", task=1)
        assert await c.call("accounting") == SCHED_CLEAN
        await expect_errno(abi.EINVAL, c, "sched_cancel_fork", task=1)
        await expect_errno(abi.EINVAL, c, "wake_up_new_task", task=1)
        # Once woken, a task cannot be cancelled.
        await c.call("sched_fork", task=2)
        await c.call("wake_up_new_task", task=2)
        await expect_errno(abi.EINVAL, c, "sched_cancel_fork", task=2)


async def test_sched_wake_up_new_task_dispatch_and_round_robin():
    async with service_client(SchedService(slice_ticks=7)) as c:
        for t in (1, 2, 3):
            await c.call("sched_fork", task=t)
        assert await c.call("wake_up_new_task", task=1) == {"cpu": 0, "dispatch": [[0, 1, 7]]}  # idle CPU: runs now
        assert await c.call("wake_up_new_task", task=2) == {"cpu": 0, "dispatch": []}  # busy: queued
        assert await c.call("wake_up_new_task", task=3) == {"cpu": 0, "dispatch": []}
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 3, "queued": 2, "running": 1}
        assert (await c.call("sched_stat", task=2))["state"] == "runnable"

        order = []
        now = 0
        for ran in (3, 4, 5, 6):
            prev = order[-1] if order else 1
            got = await c.call("schedule", cpu=0, prev=prev, state="preempted", ran=ran)
            now += ran
            assert got == {"next": got["next"], "slice": 7, "now": now}
            order.append(got["next"])
        assert order == [2, 3, 1, 2]
        assert await c.call("now") == 18
        keys = ("state", "cpu", "runtime", "nvcsw", "nivcsw", "nr_switches")
        stat1, stat2 = [await c.call("sched_stat", task=t) for t in (1, 2)]
        assert {k: stat1[k] for k in keys} == {
            "state": "runnable",
            "cpu": 0,
            "runtime": 3 + 6,
            "nvcsw": 0,
            "nivcsw": 2,
            "nr_switches": 2,
        }
        assert {k: stat2[k] for k in keys} == {
            "state": "running",
            "cpu": 0,
            "runtime": 4,
            "nvcsw": 0,
            "nivcsw": 1,
            "nr_switches": 1,
        }

        # A yield is voluntary and goes to the back of the queue.
        assert (await c.call("schedule", cpu=0, prev=2, state="yield", ran=1))["next"] == 3
        assert (await c.call("sched_stat", task=2))["nvcsw"] == 1
        assert await c.call("now") == 19


async def test_sched_block_wake_and_die():
    async with service_client(SchedService()) as c:
        for t in (1, 2):
            await c.call("sched_fork", task=t)
            await c.call("wake_up_new_task", task=t)
        got = await c.call("schedule", cpu=0, prev=1, state="blocked", ran=2)
        assert got["next"] == 2
        assert (await c.call("sched_stat", task=1))["state"] == "blocked"
        assert (await c.call("sched_stat", task=1))["nvcsw"] == 1
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 2, "running": 1}
        assert await c.call("wake", task=1) == {"cpu": 0, "dispatch": []}  # the CPU is busy: queued
        assert await c.call("wake", task=1) == {"dispatch": []}  # not blocked: nothing to do
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 2, "queued": 1, "running": 1}

        got = await c.call("schedule", cpu=0, prev=2, state="dead", ran=1)
        assert got == {"next": 1, "slice": 10, "now": 3}
        await expect_errno(abi.EINVAL, c, "sched_stat", task=2)
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 1, "running": 1}

        # Blocking with no one else leaves the CPU idle; a wake dispatches at once.
        assert (await c.call("schedule", cpu=0, prev=1, state="blocked"))["next"] is None
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 1}
        assert await c.call("wake", task=1) == {"cpu": 0, "dispatch": [[0, 1, 10]]}
        assert (await c.call("schedule", cpu=0, prev=1, state="dead"))["next"] is None
        assert await c.call("accounting") == SCHED_CLEAN


async def test_sched_two_cpus_spread_and_steal():
    async with service_client(SchedService(cpus=2)) as c:
        for t in (1, 2, 3):
            await c.call("sched_fork", task=t)
        assert await c.call("wake_up_new_task", task=1) == {"cpu": 0, "dispatch": [[0, 1, 10]]}
        assert await c.call("wake_up_new_task", task=2) == {"cpu": 1, "dispatch": [[1, 2, 10]]}
        assert await c.call("wake_up_new_task", task=3) == {"cpu": 0, "dispatch": []}
        assert (await c.call("sched_stat", task=3))["cpu"] == 0
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 3, "queued": 1, "running": 2}
        await expect_errno(abi.EINVAL, c, "schedule", cpu=1, prev=1, state="preempted")
        # CPU 1 goes idle and steals 3 from CPU 0's queue.
        got = await c.call("schedule", cpu=1, prev=2, state="blocked", ran=4)
        assert got == {"next": 3, "slice": 10, "now": 4, "migrated": [[3, 0, 1]]}
        assert (await c.call("sched_stat", task=3))["cpu"] == 1
        # 2 wakes while its CPU is busy and CPU 0 is busy too: it waits on CPU 1.
        assert await c.call("wake", task=2) == {"cpu": 1, "dispatch": []}
        # 1 dies; CPU 0 is idle, so it steals 2.
        got = await c.call("schedule", cpu=0, prev=1, state="dead")
        assert (got["next"], got["migrated"]) == (2, [[2, 1, 0]])
        # 3 blocks on CPU 1 (idle now); when it wakes CPU 1 is idle: dispatched there.
        assert (await c.call("schedule", cpu=1, prev=3, state="blocked"))["next"] is None
        assert await c.call("wake", task=3) == {"cpu": 1, "dispatch": [[1, 3, 10]]}
        for cpu, t in ((0, 2), (1, 3)):
            await c.call("schedule", cpu=cpu, prev=t, state="dead")
        assert await c.call("accounting") == SCHED_CLEAN


async def test_sched_errors():
    async with service_client(SchedService()) as c:
        for t in (1, 2, 3):
            await c.call("sched_fork", task=t)
            await c.call("wake_up_new_task", task=t)
        await expect_errno(abi.EINVAL, c, "schedule", cpu=0, prev=2, state="preempted")  # 2 is queued
        await expect_errno(abi.EINVAL, c, "schedule", cpu=0, prev=99, state="preempted")
        await expect_errno(abi.EBUSY, c, "sched_exit", task=1)
        await c.call("sched_exit", task=2)  # runnable: leaves the queue
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 2, "queued": 1, "running": 1}
        await c.call("schedule", cpu=0, prev=1, state="blocked")
        await c.call("sched_exit", task=1)  # blocked
        await expect_errno(abi.EINVAL, c, "sched_exit", task=1)
        await c.call("schedule", cpu=0, prev=3, state="dead")
        assert await c.call("accounting") == SCHED_CLEAN
        assert await c.call("ping") == "sched"


async def test_sched_unknown_state_is_einval():
    async with service_client(SchedService()) as c:
        await c.call("sched_fork", task=1)
        await c.call("wake_up_new_task", task=1)
        await expect_errno(abi.EINVAL, c, "schedule", cpu=0, prev=1, state="sleeping")
        assert (await c.call("accounting"))["faults"] == 0


async def test_sched_unknown_state_changes_nothing():
    async with service_client(SchedService()) as c:
        await c.call("sched_fork", task=1)
        await c.call("wake_up_new_task", task=1)
        await expect_errno(abi.EINVAL, c, "schedule", cpu=0, prev=1, state="sleeping", ran=5)
        assert await c.call("now") == 0
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 1, "running": 1}
        assert (await c.call("schedule", cpu=0, prev=1, state="dead"))["next"] is None


async def test_sched_bad_cpu_is_einval():
    async with service_client(SchedService()) as c:
        await c.call("sched_fork", task=1)
        await c.call("wake_up_new_task", task=1)
        await expect_errno(abi.EINVAL, c, "schedule", cpu=5, prev=1, state="preempted")
        await expect_errno(abi.EINVAL, c, "schedule", cpu=-1, prev=1, state="preempted")
        assert await c.call("accounting") == SCHED_CLEAN | {"entities": 1, "running": 1}


# --- signals ---------------------------------------------------------------------------------


async def test_signals_share_vs_copy_sighand():
    async with service_client(SignalsService()) as c:
        sh = (await c.call("init_sighand"))["sighand"]
        assert await c.call("share_sighand", sighand=sh) == {"sighand": sh}
        assert await c.call("accounting") == SIGNALS_CLEAN | {"sighands": 1, "sighand_refs": 2}
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGUSR1, handler=7) == [abi.SIG_DFL, 0]
        copy = (await c.call("copy_sighand", sighand=sh))["sighand"]
        assert copy != sh
        assert await c.call("accounting") == SIGNALS_CLEAN | {"sighands": 2, "sighand_refs": 3}
        # The copy starts with the parent's actions ...
        assert await c.call("sigaction", sighand=copy, sig=abi.SIGUSR1) == [7, 0]
        # ... and is independent from then on, both ways.
        await c.call("sigaction", sighand=copy, sig=abi.SIGUSR1, handler=abi.SIG_IGN)
        await c.call("sigaction", sighand=sh, sig=abi.SIGUSR2, handler=8, flags=abi.SA_RESTART)
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGUSR1) == [7, 0]
        assert await c.call("sigaction", sighand=copy, sig=abi.SIGUSR1) == [abi.SIG_IGN, 0]
        assert await c.call("sigaction", sighand=copy, sig=abi.SIGUSR2) == [abi.SIG_DFL, 0]
        # Setting SIG_DFL returns the old action; the next query sees the default.
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGUSR2, handler=abi.SIG_DFL) == [8, abi.SA_RESTART]
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGUSR2) == [abi.SIG_DFL, 0]

        assert await c.call("put_sighand", sighand=sh) == {"count": 1}
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGUSR1) == [7, 0]  # the sharer still has it
        assert await c.call("put_sighand", sighand=sh) == {"count": 0}
        assert await c.call("put_sighand", sighand=copy) == {"count": 0}
        await expect_errno(abi.EINVAL, c, "sigaction", sighand=sh, sig=abi.SIGUSR1)
        assert await c.call("accounting") == SIGNALS_CLEAN


async def test_signals_copy_sighand_clear():
    async with service_client(SignalsService()) as c:
        sh = (await c.call("init_sighand"))["sighand"]
        await c.call("sigaction", sighand=sh, sig=abi.SIGINT, handler=3)
        await c.call("sigaction", sighand=sh, sig=abi.SIGTERM, handler=4, flags=abi.SA_RESTART)
        await c.call("sigaction", sighand=sh, sig=abi.SIGHUP, handler=abi.SIG_IGN)
        clear = (await c.call("copy_sighand", sighand=sh, clear=True))["sighand"]
        assert await c.call("sigaction", sighand=clear, sig=abi.SIGINT) == [abi.SIG_DFL, 0]
        assert await c.call("sigaction", sighand=clear, sig=abi.SIGTERM) == [abi.SIG_DFL, 0]
        assert await c.call("sigaction", sighand=clear, sig=abi.SIGHUP) == [abi.SIG_IGN, 0]
        assert await c.call("sigaction", sighand=sh, sig=abi.SIGINT) == [3, 0]  # the parent keeps its own
        for h in (sh, clear):
            await c.call("put_sighand", sighand=h)
        assert await c.call("accounting") == SIGNALS_CLEAN


async def test_signals_copy_sighand_clear_resets_flags_of_ignored():
    async with service_client(SignalsService()) as c:
        sh = (await c.call("init_sighand"))["sighand"]
        await c.call("sigaction", sighand=sh, sig=abi.SIGHUP, handler=abi.SIG_IGN, flags=abi.SA_RESTART)
        clear = (await c.call("copy_sighand", sighand=sh, clear=True))["sighand"]
        assert await c.call("sigaction", sighand=clear, sig=abi.SIGHUP) == [abi.SIG_IGN, 0]


async def test_signals_sigaction_errors():
    async with service_client(SignalsService()) as c:
        sh = (await c.call("init_sighand"))["sighand"]
        for sig in (abi.SIGKILL, abi.SIGSTOP):
            for handler in (5, abi.SIG_IGN, abi.SIG_DFL):
                await expect_errno(abi.EINVAL, c, "sigaction", sighand=sh, sig=sig, handler=handler)
            assert await c.call("sigaction", sighand=sh, sig=sig) == [abi.SIG_DFL, 0]  # a query is fine
        for sig in (0, -1, abi._NSIG + 1):
            await expect_errno(abi.EINVAL, c, "sigaction", sighand=sh, sig=sig, handler=5)
            await expect_errno(abi.EINVAL, c, "sigaction", sighand=sh, sig=sig)
        assert await c.call("sigaction", sighand=sh, sig=abi._NSIG, handler=5) == [abi.SIG_DFL, 0]
        await expect_errno(abi.EINVAL, c, "sigaction", sighand=999, sig=abi.SIGINT)
        await expect_errno(abi.EINVAL, c, "copy_sighand", sighand=999)
        await expect_errno(abi.EINVAL, c, "sigaction", sighand=sh, signal=abi.SIGINT)  # wrong name
        await expect_errno(abi.ENOSYS, c, "kill")
        assert (await c.call("accounting"))["faults"] == 0


async def test_signals_share_copy_put_signal():
    async with service_client(SignalsService()) as c:
        sig = (await c.call("init_signal"))["signal"]
        assert await c.call("share_signal", signal=sig) == {"signal": sig}
        assert await c.call("share_signal", signal=sig) == {"signal": sig}
        assert await c.call("accounting") == SIGNALS_CLEAN | {"signals": 1, "threads": 3}
        other = (await c.call("copy_signal", signal=sig))["signal"]
        assert other != sig
        assert await c.call("accounting") == SIGNALS_CLEAN | {"signals": 2, "threads": 4}
        assert await c.call("put_signal", signal=sig) == {"nr_threads": 2}
        assert await c.call("put_signal", signal=sig) == {"nr_threads": 1}
        assert await c.call("put_signal", signal=sig) == {"nr_threads": 0}
        await expect_errno(abi.EINVAL, c, "share_signal", signal=sig)
        assert await c.call("put_signal", signal=other) == {"nr_threads": 0}
        assert await c.call("accounting") == SIGNALS_CLEAN


# --- namespaces ------------------------------------------------------------------------------


def ns_client():
    return service_client(NamespacesService(), PidService(), VfsService())


async def boot_nsproxy(c):
    """As kernel.py boots: vfs.init_files and vfs.init_fs, then init_nsproxy."""
    await c.router.call("kernel", "vfs", "init_files", {}, {})
    await c.router.call("kernel", "vfs", "init_fs", {}, {})
    return await c.call("init_nsproxy", pid_ns=1, mnt_ns=1)


async def all_accounting(c):
    return (
        await c.call("accounting"),
        await c.router.call("kernel", "pid", "accounting", {}, {}),
        await c.router.call("kernel", "vfs", "accounting", {}, {}),
    )


async def test_namespaces_share_vs_copy_uts():
    async with ns_client() as c:
        init = await c.call("init_nsproxy", pid_ns=1, mnt_ns=1)
        nsp = init["nsproxy"]
        offsets = {"monotonic": 0, "boottime": 0}
        assert init == {"nsproxy": nsp, "pid_ns": 1, "mnt_ns": 1, "time_offsets": offsets}
        assert await c.call("accounting") == NS_CLEAN | {
            "nsproxies": 1,
            "nsproxy_refs": 1,
            "namespaces": 6,
            "ns_refs": 7,  # the time namespace twice: time and time_for_children
        }
        assert await c.call("share_nsproxy", nsproxy=nsp) == init
        assert (await c.call("accounting"))["nsproxy_refs"] == 2

        new = await c.call("copy_namespaces", nsproxy=nsp, flags=abi.CLONE_NEWUTS)
        assert new["nsproxy"] != nsp
        assert (new["pid_ns"], new["mnt_ns"]) == (1, 1)
        # One new uts namespace; the other five are shared by reference.
        assert await c.call("accounting") == NS_CLEAN | {
            "nsproxies": 2,
            "nsproxy_refs": 3,
            "namespaces": 7,
            "ns_refs": 14,
        }

        await c.call("sethostname", nsproxy=new["nsproxy"], name="box")
        assert (await c.call("uname", nsproxy=new["nsproxy"]))["nodename"] == "box"
        assert await c.call("uname", nsproxy=nsp) == {
            "sysname": "ukernel",
            "nodename": "ukernel",
            "release": "6.9-ukernel",
            "version": "#1",
            "machine": "trio",
            "domainname": "(none)",
        }
        # Through a shared nsproxy, a sethostname is seen by both holders.
        await c.call("sethostname", nsproxy=nsp, name="h" * 64)
        assert (await c.call("uname", nsproxy=nsp))["nodename"] == "h" * 64
        await expect_errno(abi.EINVAL, c, "sethostname", nsproxy=nsp, name="h" * 65)
        await expect_errno(abi.EINVAL, c, "sethostname", nsproxy=nsp, name="é" * 33)  # 66 bytes
        assert (await c.call("uname", nsproxy=new["nsproxy"]))["nodename"] == "box"


async def test_namespaces_newpid_newns_and_put_releases_everything():
    async with ns_client() as c:
        assert await all_accounting(c) == (NS_CLEAN, PID_CLEAN, VFS_CLEAN)
        nsp = (await boot_nsproxy(c))["nsproxy"]
        base = await all_accounting(c)
        vfs_base = base[2]

        new = await c.call("copy_namespaces", nsproxy=nsp, flags=abi.CLONE_NEWPID)
        assert new["pid_ns"] != 1 and new["mnt_ns"] == 1
        ns_acct, pid_acct, vfs_acct_ = await all_accounting(c)
        assert pid_acct == PID_CLEAN | {"namespaces": 2}
        assert vfs_acct_ == vfs_base
        assert ns_acct == base[0] | {"nsproxies": 2, "nsproxy_refs": 2, "ns_refs": 14}

        deeper = await c.call("copy_namespaces", nsproxy=new["nsproxy"], flags=abi.CLONE_NEWNS | abi.CLONE_NEWNET)
        assert deeper["pid_ns"] == new["pid_ns"]  # no NEWPID: pid_ns_for_children is shared
        assert deeper["mnt_ns"] != 1
        ns_acct, pid_acct, vfs_acct_ = await all_accounting(c)
        assert vfs_acct_ == vfs_base | {"mnt_namespaces": 2}
        assert pid_acct == PID_CLEAN | {"namespaces": 2}
        assert ns_acct == base[0] | {"nsproxies": 3, "nsproxy_refs": 3, "namespaces": 7, "ns_refs": 21}

        # The pid namespace outlives the nsproxy that made it while another holds it.
        assert await c.call("put_nsproxy", nsproxy=new["nsproxy"]) == {"count": 0}
        assert (await all_accounting(c))[1] == PID_CLEAN | {"namespaces": 2}
        assert await c.call("put_nsproxy", nsproxy=deeper["nsproxy"]) == {"count": 0}
        assert await all_accounting(c) == base
        await expect_errno(abi.EINVAL, c, "put_nsproxy", nsproxy=deeper["nsproxy"])

        assert await c.call("put_nsproxy", nsproxy=nsp) == {"count": 0}
        assert await all_accounting(c) == (NS_CLEAN, PID_CLEAN, vfs_base)


async def test_namespaces_nested_requests_in_the_trace():
    async with ns_client() as c:
        nsp = (await boot_nsproxy(c))["nsproxy"]
        c.trace.clear()
        await c.call("copy_namespaces", nsproxy=nsp, flags=abi.CLONE_NEWPID | abi.CLONE_NEWNS)
        requests = [(e["src"], e["dst"], e["op"]) for e in c.trace if e["type"] == "request"]
        assert requests == [
            ("kernel", "namespaces", "copy_namespaces"),
            ("namespaces", "vfs", "copy_mnt_ns"),
            ("namespaces", "pid", "create_pid_ns"),
        ]
        top = next(e for e in c.trace if e["type"] == "request" and e["op"] == "copy_namespaces")
        nested = next(e for e in c.trace if e["type"] == "request" and e["op"] == "create_pid_ns")
        assert nested["cause"] == top["msgid"]
        assert nested["args"] == {"parent": 1, "inum": abi.FIRST_NS_INUM + 1}  # the mount ns took the first
        reply = next(e for e in c.trace if e["type"] == "reply" and e["msgid"] == nested["msgid"])
        assert (reply["src"], reply["dst"]) == ("pid", "namespaces")


async def test_namespaces_errors():
    async with ns_client() as c:
        nsp = (await c.call("init_nsproxy", pid_ns=1, mnt_ns=1))["nsproxy"]
        base = await all_accounting(c)
        await expect_errno(
            abi.EINVAL, c, "copy_namespaces", nsproxy=nsp, flags=abi.CLONE_NEWIPC | abi.CLONE_SYSVSEM | abi.CLONE_NEWUTS
        )
        assert await all_accounting(c) == base
        # CLONE_SYSVSEM alone, or NEWIPC alone, is fine.
        for flags in (abi.CLONE_SYSVSEM, abi.CLONE_NEWIPC):
            got = await c.call("copy_namespaces", nsproxy=nsp, flags=flags)
            await c.call("put_nsproxy", nsproxy=got["nsproxy"])
        assert await all_accounting(c) == base
        await expect_errno(abi.EINVAL, c, "copy_namespaces", nsproxy=999, flags=0)
        await expect_errno(abi.EINVAL, c, "uname", nsproxy=999)
        await expect_errno(abi.EINVAL, c, "copy_namespaces", nsproxy=nsp)  # flags missing
        await expect_errno(abi.ENOSYS, c, "unshare")  # the kernel's syscall; the op is unshare_nsproxy


async def test_namespaces_failed_create_pid_ns_is_unwound():
    async with ns_client() as c:
        nsp = (await boot_nsproxy(c))["nsproxy"]
        base = await all_accounting(c)
        # The request after the kernel's copy_namespaces and vfs.copy_mnt_ns is pid.create_pid_ns.
        c.router.fail_nth[c.router.sent + 3] = abi.ENOMEM
        flags = abi.CLONE_NEWPID | abi.CLONE_NEWNS | abi.CLONE_NEWUTS
        await expect_errno(abi.ENOMEM, c, "copy_namespaces", nsproxy=nsp, flags=flags)
        failed = [e for e in c.trace if e["type"] == "reply" and e.get("errno") == "ENOMEM"]
        assert [e["op"] for e in failed] == ["create_pid_ns", "copy_namespaces"]
        assert await all_accounting(c) == base


async def test_namespaces_failed_copy_mnt_ns_is_unwound():
    async with ns_client() as c:
        nsp = (await boot_nsproxy(c))["nsproxy"]
        base = await all_accounting(c)
        c.router.fail_nth[c.router.sent + 2] = abi.ENOMEM  # vfs.copy_mnt_ns
        flags = abi.CLONE_NEWNS | abi.CLONE_NEWUTS
        await expect_errno(abi.ENOMEM, c, "copy_namespaces", nsproxy=nsp, flags=flags)
        assert await all_accounting(c) == base


async def test_namespaces_newns_on_a_fresh_vfs():
    async with ns_client() as c:
        nsp = (await c.call("init_nsproxy", pid_ns=1, mnt_ns=1))["nsproxy"]
        new = await c.call("copy_namespaces", nsproxy=nsp, flags=abi.CLONE_NEWNS)
        assert new["mnt_ns"] != 1
        assert (await c.router.call("kernel", "vfs", "accounting", {}, {}))["mnt_namespaces"] == 2
