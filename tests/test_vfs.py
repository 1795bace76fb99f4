"""The vfs through programs: fork semantics on files (LTP-style), pipes, paths, errnos, /proc."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ukernel
from ukernel import abi


def out(r: ukernel.Result) -> list[str]:
    return r.stdout.decode().splitlines()


# --- copy_files and copy_fs: what fork shares --------------------------------------------------
async def test_child_read_moves_the_parents_offset(run):
    r = await run(
        """
        async def main(sys, argv):
            fd = await sys.open("/etc/data", 0)
            pid = await sys.fork()
            if pid == 0:
                await sys.read(fd, 4)           # the child reads 4 bytes ...
                return 0
            await sys.waitpid(pid)
            rest = await sys.read(fd, 100)      # ... so the parent goes on after them
            await sys.write(1, rest + b"\\n")
            await sys.write(1, f"{await sys.lseek(fd, 0, 1)}\\n")
        """,
        files={"/etc/data": b"0123456789"},
    )
    assert out(r) == ["456789", "10"]


async def test_closing_an_inherited_fd_in_the_child_keeps_it_open_in_the_parent(run):
    r = await run(
        """
        async def main(sys, argv):
            fd = await sys.open("/etc/data", 0)
            pid = await sys.fork()
            if pid == 0:
                await sys.close(fd)
                try:
                    await sys.read(fd, 1)
                except OSError as e:
                    await sys.write(1, f"child: {e.errno}\\n")
                return 0
            await sys.waitpid(pid)
            await sys.write(1, b"parent: " + await sys.read(fd, 3) + b"\\n")
        """,
        files={"/etc/data": b"abcdef"},
    )
    assert out(r) == [f"child: {abi.EBADF}", "parent: abc"]


async def test_clone_files_shares_the_table_so_a_close_in_the_child_closes_for_the_parent(run):
    r = await run(
        """
        from ukernel.abi import CLONE_FILES, SIGCHLD

        def child(sys, fd):
            return sys.close(fd)

        async def main(sys, argv):
            fd = await sys.open("/etc/data", 0)
            pid = await sys.clone(CLONE_FILES | SIGCHLD, child, fd)
            await sys.waitpid(pid)
            try:
                await sys.read(fd, 1)
            except OSError as e:
                await sys.write(1, f"after CLONE_FILES child closed it: {e.errno}\\n")
            fd2 = await sys.open("/etc/data", 0)
            pid = await sys.clone(SIGCHLD, child, fd2)
            await sys.waitpid(pid)
            await sys.write(1, b"without CLONE_FILES: " + await sys.read(fd2, 2) + b"\\n")
        """,
        files={"/etc/data": b"xyz"},
    )
    assert out(r) == [f"after CLONE_FILES child closed it: {abi.EBADF}", "without CLONE_FILES: xy"]


async def test_chdir_in_a_clone_fs_child_moves_the_parent_and_without_it_does_not(run):
    r = await run(
        """
        from ukernel.abi import CLONE_FS, SIGCHLD

        async def child(sys, where):
            await sys.chdir(where)
            return 0

        async def main(sys, argv):
            await sys.waitpid(await sys.clone(SIGCHLD, child, "/tmp"))
            await sys.write(1, (await sys.getcwd()) + "\\n")
            await sys.waitpid(await sys.clone(CLONE_FS | SIGCHLD, child, "/etc"))
            await sys.write(1, (await sys.getcwd()) + "\\n")
            await sys.umask(0o077)
            await sys.waitpid(await sys.clone(CLONE_FS | SIGCHLD, child, "/"))
            await sys.write(1, f"{await sys.umask(0):o}\\n")
        """
    )
    assert out(r) == ["/", "/etc", "77"]


async def test_close_on_exec_fds_are_closed_by_execve(run):
    probe = b"""
async def main(sys, argv):
    for fd in map(int, argv[1:]):
        try:
            await sys.fstat(fd)
            await sys.write(1, f"{fd} open\\n")
        except OSError as e:
            await sys.write(1, f"{fd} closed ({e.errno})\\n")
"""
    r = await run(
        """
        from ukernel.abi import F_GETFD, F_SETFD, FD_CLOEXEC, O_CLOEXEC

        async def main(sys, argv):
            keep = await sys.open("/etc/motd", 0)
            gone = await sys.open("/etc/motd", O_CLOEXEC)
            later = await sys.dup(keep)
            await sys.fcntl(later, F_SETFD, FD_CLOEXEC)
            assert await sys.fcntl(gone, F_GETFD) == FD_CLOEXEC
            await sys.execve("/bin/probe", ["probe", str(keep), str(gone), str(later)])
        """,
        files={"/etc/motd": b"hi", "/bin/probe": probe},
    )
    assert out(r) == ["3 open", f"4 closed ({abi.EBADF})", f"5 closed ({abi.EBADF})"]


# --- pipes -----------------------------------------------------------------------------------
async def test_a_blocking_reader_is_woken_by_a_writer_in_another_process(run):
    r = await run(
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                await sys.close(w)
                got = []
                while chunk := await sys.read(r, 100):   # sleeps on the empty pipe
                    got.append(chunk)
                await sys.write(1, b"child read " + b"|".join(got) + b" then EOF\\n")
                return 0
            await sys.close(r)
            for _ in range(5):
                await sys.sched_yield()                 # the child is asleep on the pipe by now
            await sys.write(w, b"one")
            await sys.sched_yield()
            await sys.write(w, b"two")
            await sys.close(w)                          # the last writer: EOF
            await sys.waitpid(pid)
        """
    )
    assert out(r) == ["child read one|two then EOF"]
    reads = [e for e in r.trace if e["type"] == "request" and e["dst"] == "vfs" and e["op"] in ("read", "wait")]
    assert [e["op"] for e in reads][:2] == ["read", "wait"]  # the child waited in sched, not in vfs
    sleeps = [
        e for e in r.trace if e["type"] == "request" and e["op"] == "schedule" and e["args"]["state"] == "blocked"
    ]
    assert sleeps


async def test_write_with_no_reader_is_epipe_and_sigpipe(run):
    r = await run(
        """
        from ukernel.abi import SIG_IGN, SIGPIPE, WIFSIGNALED, WTERMSIG

        async def main(sys, argv):
            r, w = await sys.pipe()
            await sys.close(r)
            pid = await sys.fork()
            if pid == 0:
                await sys.write(w, b"x")               # SIGPIPE kills the child
                return 0
            _, status = await sys.waitpid(pid)
            await sys.write(1, f"child killed by {WTERMSIG(status)}\\n")
            await sys.sigaction(SIGPIPE, SIG_IGN)
            try:
                await sys.write(w, b"x")
            except OSError as e:
                await sys.write(1, f"ignored: errno {e.errno}\\n")
        """
    )
    assert out(r) == [f"child killed by {abi.SIGPIPE}", f"ignored: errno {abi.EPIPE}"]


async def test_pipe_buffer_is_bounded_and_nonblocking_ends_say_eagain(run):
    r = await run(
        """
        from ukernel.abi import O_NONBLOCK, F_GETFL, F_SETFL, PIPE_DEF_BUFFERS_SIZE

        async def main(sys, argv):
            r, w = await sys.pipe2(O_NONBLOCK)
            try:
                await sys.read(r, 10)
            except OSError as e:
                await sys.write(1, f"empty: {e.errno}\\n")
            n = await sys.write(w, bytes(PIPE_DEF_BUFFERS_SIZE + 100))
            await sys.write(1, f"wrote {n}\\n")
            try:
                await sys.write(w, b"more")
            except OSError as e:
                await sys.write(1, f"full: {e.errno}\\n")
            flags = await sys.fcntl(r, F_GETFL)
            await sys.fcntl(r, F_SETFL, flags & ~O_NONBLOCK)
            await sys.write(1, f"{len(await sys.read(r, 70000))} {await sys.fcntl(r, F_GETFL) & O_NONBLOCK}\\n")
        """
    )
    assert out(r) == [f"empty: {abi.EAGAIN}", "wrote 65536", f"full: {abi.EAGAIN}", "65536 0"]


async def test_a_big_write_waits_for_room_and_arrives_whole(run):
    r = await run(
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                await sys.close(r)
                n = await sys.write(w, bytes(range(256)) * 1024)   # 256 KiB through a 64 KiB pipe
                await sys.write(2, f"{n}\\n")
                return 0
            await sys.close(w)
            data = b""
            while chunk := await sys.read(r, 10000):
                data += chunk
            await sys.waitpid(pid)
            await sys.write(1, f"{len(data)} {data == bytes(range(256)) * 1024}\\n")
        """
    )
    assert out(r) == ["262144", "262144 True"]


async def test_a_signal_interrupts_a_pipe_read_with_eintr_and_sa_restart_restarts_it(run):
    r = await run(
        """
        from ukernel.abi import SA_RESTART, SIGUSR1

        async def note(sys, sig):
            await sys.write(1, b"handler\\n")

        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                await sys.sigaction(SIGUSR1, note)
                try:
                    await sys.read(r, 1)
                except OSError as e:
                    await sys.write(1, f"EINTR {e.errno == 4}\\n")
                await sys.sigaction(SIGUSR1, note, SA_RESTART)
                await sys.write(1, b"restarted: " + await sys.read(r, 5) + b"\\n")
                return 0
            for _ in range(5):
                await sys.sched_yield()
            await sys.kill(pid, SIGUSR1)
            for _ in range(5):
                await sys.sched_yield()
            await sys.kill(pid, SIGUSR1)
            for _ in range(5):
                await sys.sched_yield()
            await sys.write(w, b"hello")
            await sys.waitpid(pid)
        """
    )
    assert out(r) == ["handler", "EINTR True", "handler", "restarted: hello"]


async def test_killing_a_reader_asleep_on_a_pipe_leaves_nothing_behind(run):
    r = await run(
        """
        from ukernel.abi import SIGKILL, WTERMSIG

        async def main(sys, argv):
            r, w = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                await sys.read(r, 1)
                return 0
            for _ in range(5):
                await sys.sched_yield()
            await sys.kill(pid, SIGKILL)
            _, status = await sys.waitpid(pid)
            await sys.write(1, f"{WTERMSIG(status)}\\n")
        """
    )
    assert out(r) == [str(abi.SIGKILL)]


# --- paths -----------------------------------------------------------------------------------------
async def test_path_walk_with_dotdot_symlinks_and_chroot(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.mkdir("/tmp/a")
            await sys.mkdir("/tmp/a/b")
            fd = await sys.open("/tmp/a/b/f", 0o101)
            await sys.write(fd, b"found")
            await sys.symlink("a/b", "/tmp/ab")        # relative to the link's directory
            await sys.symlink("/tmp/a/b/f", "/tmp/abs")
            await sys.symlink("loop2", "/tmp/loop1")
            await sys.symlink("loop1", "/tmp/loop2")
            say = lambda s: sys.write(1, s + "\\n")
            await say((await sys.read(await sys.open("/tmp/ab/f"), 9)).decode())
            await say((await sys.read(await sys.open("/tmp/a/b/../../abs"), 9)).decode())
            await say(await sys.readlink("/tmp/ab"))
            for path in ("/tmp/loop1", "/tmp/abs/x", "/../../tmp/nope"):
                try:
                    await sys.open(path)
                except OSError as e:
                    await say(f"{path}: {e.errno}")
            await sys.chdir("/tmp/a")
            await sys.chroot("/tmp/a")
            await say(await sys.getcwd())
            await sys.chdir("/../../..")                # '..' stops at the new root
            await say(await sys.getcwd())
            await say(" ".join(sorted(await sys.getdents(await sys.open(".")))))
            await say((await sys.read(await sys.open("/b/f"), 9)).decode())
        """
    )
    assert out(r) == [
        "found",
        "found",
        "a/b",
        f"/tmp/loop1: {abi.ELOOP}",
        f"/tmp/abs/x: {abi.ENOTDIR}",
        f"/../../tmp/nope: {abi.ENOENT}",
        "/",
        "/",
        ". .. b",
        "found",
    ]


async def test_an_unlinked_open_file_lives_until_the_last_close(run):
    r = await run(
        """
        async def main(sys, argv):
            fd = await sys.open("/tmp/f", 0o102)
            await sys.write(fd, b"still here")
            await sys.unlink("/tmp/f")
            await sys.lseek(fd, 0, 0)
            await sys.write(1, await sys.read(fd, 20) + b"\\n")
            await sys.write(1, f"{(await sys.fstat(fd)).st_nlink}\\n")
            await sys.write(1, (await sys.readlink(f"/proc/self/fd/{fd}")) + "\\n")
            await sys.close(fd)
        """
    )
    assert out(r) == ["still here", "0", "/tmp/f (deleted)"]


async def test_link_rename_and_stat(run):
    r = await run(
        """
        import stat

        async def main(sys, argv):
            say = lambda s: sys.write(1, f"{s}\\n")
            fd = await sys.open("/tmp/f", 0o101, 0o666)
            await sys.write(fd, b"12345")
            await sys.link("/tmp/f", "/tmp/g")
            s = await sys.stat("/tmp/g")
            await say(f"{stat.filemode(s.st_mode)} {s.st_nlink} {s.st_size}")
            await sys.rename("/tmp/g", "/tmp/h")
            await say((await sys.stat("/tmp/h")).st_ino == (await sys.stat("/tmp/f")).st_ino)
            await sys.mkdir("/tmp/d", 0o750)
            await say(f"{stat.filemode((await sys.stat('/tmp/d')).st_mode)} {(await sys.stat('/tmp')).st_nlink}")
            await sys.rename("/tmp/d", "/tmp/e")
            await sys.symlink("e", "/tmp/s")
            await say(stat.filemode((await sys.lstat("/tmp/s")).st_mode) + " " + stat.filemode((await sys.stat("/tmp/s")).st_mode))
            await sys.umask(0)
            await sys.close(await sys.open("/tmp/open", 0o101, 0o666))
            await say(stat.filemode((await sys.stat("/tmp/open")).st_mode))
        """
    )
    assert out(r) == ["-rw-r--r-- 2 5", "True", "drwxr-x--- 3", "lrwxrwxrwx drwxr-x---", "-rw-rw-rw-"]


ERRNO_CASES = [
    ("open", ("/nope",), abi.ENOENT),
    ("open", ("/etc/motd", abi.O_CREAT | abi.O_EXCL), abi.EEXIST),
    ("open", ("/tmp", abi.O_WRONLY), abi.EISDIR),
    ("open", ("/etc/motd", abi.O_DIRECTORY), abi.ENOTDIR),
    ("open", ("/etc/motd/x",), abi.ENOTDIR),
    ("open", ("/tmp/lnk", abi.O_NOFOLLOW), abi.ELOOP),
    ("open", ("/" + "x" * 300,), abi.ENAMETOOLONG),
    ("open", ("",), abi.ENOENT),
    ("close", (99,), abi.EBADF),
    ("read", (99, 1), abi.EBADF),
    ("read", (1, -1), abi.EINVAL),
    ("write", (99, b"x"), abi.EBADF),
    ("lseek", (0, 0, abi.SEEK_SET), abi.ESPIPE),
    ("dup", (99,), abi.EBADF),
    ("dup2", (99, 3), abi.EBADF),
    ("dup2", (1, 5000), abi.EBADF),
    ("dup3", (1, 1, 0), abi.EINVAL),
    ("dup3", (1, 4, 1), abi.EINVAL),
    ("fcntl", (1, 999), abi.EINVAL),
    ("fcntl", (99, abi.F_GETFD), abi.EBADF),
    ("fcntl", (1, abi.F_DUPFD, 5000), abi.EINVAL),
    ("pipe2", (abi.O_APPEND,), abi.EINVAL),
    ("chdir", ("/etc/motd",), abi.ENOTDIR),
    ("chdir", ("/nope",), abi.ENOENT),
    ("fchdir", (0,), abi.ENOTDIR),
    ("chroot", ("/etc/motd",), abi.ENOTDIR),
    ("mkdir", ("/tmp",), abi.EEXIST),
    ("mkdir", ("/nope/x",), abi.ENOENT),
    ("mkdir", ("/proc/x",), abi.EACCES),
    ("rmdir", ("/etc",), abi.ENOTEMPTY),
    ("rmdir", ("/etc/motd",), abi.ENOTDIR),
    ("rmdir", ("/tmp/.",), abi.EINVAL),
    ("rmdir", ("/proc",), abi.EBUSY),
    ("unlink", ("/tmp",), abi.EISDIR),
    ("unlink", ("/nope",), abi.ENOENT),
    ("rename", ("/nope", "/tmp/x"), abi.ENOENT),
    ("rename", ("/tmp", "/tmp/sub/x"), abi.EINVAL),
    ("rename", ("/etc/motd", "/tmp"), abi.EISDIR),
    ("rename", ("/etc", "/tmp/lnk"), abi.ENOTDIR),
    ("rename", ("/tmp/sub", "/etc"), abi.ENOTEMPTY),
    ("rename", ("/etc/motd", "/proc/motd"), abi.EACCES),
    ("link", ("/tmp", "/tmp/x"), abi.EPERM),
    ("link", ("/etc/motd", "/tmp/lnk"), abi.EEXIST),
    ("symlink", ("x", "/etc/motd"), abi.EEXIST),
    ("symlink", ("", "/tmp/empty"), abi.ENOENT),
    ("readlink", ("/etc/motd",), abi.EINVAL),
    ("stat", ("/nope",), abi.ENOENT),
    ("lstat", ("/tmp/nope/x",), abi.ENOENT),
    ("fstat", (99,), abi.EBADF),
    ("getdents", (1,), abi.ENOTDIR),
    ("access", ("/etc/motd", abi.X_OK), abi.EACCES),
    ("access", ("/etc/motd", 99), abi.EINVAL),
    ("mount", ("none", "/etc/motd", "tmpfs"), abi.ENOTDIR),
    ("mount", ("none", "/mnt", "ext4"), abi.ENODEV),
    ("umount", ("/tmp",), abi.EINVAL),
]


@pytest.mark.parametrize(
    ("call", "args", "errno"), ERRNO_CASES, ids=[f"{c}-{abi.errno_name(e)}" for c, a, e in ERRNO_CASES]
)
async def test_errno(run, call, args, errno):
    r = await run(
        f"""
        async def main(sys, argv):
            await sys.symlink("/etc/motd", "/tmp/lnk")
            await sys.mkdir("/tmp/sub")
            await sys.mkdir("/tmp/sub/x")
            try:
                await sys.{call}(*{args!r})
            except OSError as e:
                await sys.write(1, f"{{e.errno}} {{e.strerror}}\\n")
                return 0
            return 1
        """,
        files={"/etc/motd": b"hi"},
    )
    assert r.exit_code == 0, r.stdout
    assert r.stdout.decode().split(" ")[0] == str(errno), r.stdout


# --- mount namespaces --------------------------------------------------------------------------------
async def test_a_mount_in_a_new_mount_namespace_is_not_seen_by_the_original(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWNS, SIGCHLD

        async def child(sys, arg):
            await sys.mount("none", "/mnt", "tmpfs")
            await sys.close(await sys.open("/mnt/inside", 0o101))
            await sys.write(1, "child: " + " ".join(await sys.getdents(await sys.open("/mnt"))) + "\\n")
            await sys.write(1, (await sys.read(await sys.open("/proc/self/mounts"), 999)).decode())
            return 0

        async def main(sys, argv):
            await sys.waitpid(await sys.clone(CLONE_NEWNS | SIGCHLD, child))
            await sys.write(1, "parent: " + " ".join(await sys.getdents(await sys.open("/mnt"))) + "\\n")
            await sys.write(1, (await sys.read(await sys.open("/proc/mounts"), 999)).decode())
        """
    )
    assert out(r) == [
        "child: . .. inside",
        "rootfs / tmpfs rw 0 0",
        "proc /proc proc rw 0 0",
        "none /mnt tmpfs rw 0 0",
        "parent: . ..",
        "rootfs / tmpfs rw 0 0",
        "proc /proc proc rw 0 0",
    ]
    child_fs = next(
        e["result"]["fs"] for e in r.trace if e["type"] == "reply" and e["op"] == "copy_fs" and e["pid"] == 2
    )
    copies = [e["args"] for e in r.trace if e["type"] == "request" and e["op"] == "copy_mnt_ns"]
    assert copies == [
        {"mnt_ns": 1, "fs": child_fs, "inum": abi.FIRST_NS_INUM}
    ]  # copy_mnt_ns(..., new_fs): the child's own fs_struct


async def test_umount_is_ebusy_while_a_file_is_open_below(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.mount("none", "/mnt", "tmpfs")
            fd = await sys.open("/mnt/f", 0o101)
            try:
                await sys.umount("/mnt")
            except OSError as e:
                await sys.write(1, f"{e.errno}\\n")
            try:
                await sys.rename("/mnt/f", "/tmp/f")
            except OSError as e:
                await sys.write(1, f"{e.errno}\\n")
            await sys.close(fd)
            await sys.umount("/mnt")
            await sys.write(1, f"{await sys.getdents(await sys.open('/mnt'))}\\n")
        """
    )
    assert out(r) == [str(abi.EBUSY), str(abi.EXDEV), "['.', '..']"]


# --- /proc ---------------------------------------------------------------------------------------------
async def test_proc_status_matches_the_task_table():
    async with ukernel.boot() as kernel:
        src = b"""
from ukernel.abi import SIGUSR1, SIGUSR2, SIG_IGN, SIG_BLOCK

async def main(sys, argv):
    await sys.sigaction(SIGUSR1, SIG_IGN)
    await sys.sigaction(SIGUSR2, lambda sys, sig: None)
    await sys.sigprocmask(SIG_BLOCK, {SIGUSR2})
    fd = await sys.open("/proc/self/status")
    text = (await sys.read(fd, 4096)).decode()
    await sys.write(1, text)
    await sys.write(1, (await sys.read(await sys.open("/proc/self/cmdline"), 100)).replace(b"\\0", b" ") + b"\\n")
    await sys.write(1, " ".join(await sys.getdents(await sys.open("/proc/self/fd"))) + "\\n")
    await sys.write(1, " ".join(await sys.getdents(await sys.open("/proc"))) + "\\n")
"""
        await kernel.call("vfs", "write_file", {"path": "/bin/st", "data": src, "mode": 0o755})
        status = await kernel.run("/bin/st", ["st", "one", "two"])
        assert status == 0
        lines = (await kernel.call("vfs", "console_output", {})).decode().splitlines()
        fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
        assert fields["Name"] == "st"
        assert fields["State"] == "R (running)"
        assert (fields["Pid"], fields["Tgid"], fields["PPid"], fields["NSpid"]) == ("2", "2", "1", "2")
        assert fields["Threads"] == "1"
        assert int(fields["SigIgn"], 16) == 1 << (abi.SIGUSR1 - 1)
        assert int(fields["SigCgt"], 16) == 1 << (abi.SIGUSR2 - 1)
        assert int(fields["SigBlk"], 16) == 1 << (abi.SIGUSR2 - 1)
        assert int(fields["VmSize"].split()[0]) > 0
        assert lines[-3] == "st one two "
        assert lines[-2] == ". .. 0 1 2 3 4 5"  # status, cmdline, and the fd listing the directory
        assert lines[-1] == ". .. 1 2 loadavg meminfo mounts net self sys thread-self uptime"
        assert await kernel.check_invariants() == []


async def test_a_process_in_a_new_pid_namespace_sees_its_own_numbers(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWPID, SIGCHLD

        async def inner(sys, arg):
            status = (await sys.read(await sys.open("/proc/self/status"), 4096)).decode()
            for line in status.splitlines():
                if line.split(":")[0] in ("Pid", "PPid", "NSpid"):
                    await sys.write(1, "inner " + line + "\\n")
            await sys.write(1, "inner sees " + " ".join(await sys.getdents(await sys.open("/proc"))) + "\\n")
            return 0

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, inner)
            await sys.waitpid(pid)
            nspid = [l for l in (await sys.read(await sys.open("/proc/self/status"), 4096)).decode().splitlines() if l.startswith("NSpid")]
            await sys.write(1, f"outer child {pid}; " + nspid[0] + "\\n")
        """
    )
    assert out(r) == [
        "inner Pid:\t1",
        "inner PPid:\t0",
        "inner NSpid:\t1",
        "inner sees . .. 1 loadavg meminfo mounts net self sys thread-self uptime",
        "outer child 3; NSpid:\t2",
    ]


async def test_proc_links_and_chdir(run):
    r = await run(
        """
        async def main(sys, argv):
            say = lambda s: sys.write(1, f"{s}\\n")
            await sys.chdir("/tmp")
            await say(await sys.readlink("/proc/self/cwd"))
            await say(await sys.readlink("/proc/self/exe"))
            await say(await sys.readlink("/proc/self"))
            await sys.close(await sys.open("/proc/self/cwd/made", 0o101))   # through a magic link
            await say((await sys.stat("/tmp/made")).st_size)
            await sys.chdir("/proc/self")
            await say(await sys.getcwd())
            await say((await sys.read(await sys.open("comm"), 99)).decode().strip())
            await sys.chdir("..")
            await say(await sys.getcwd())
            await sys.chdir("..")
            await say(await sys.getcwd())
            try:
                await sys.open("/proc/self/status", 1)
            except OSError as e:
                await say(e.errno)
        """
    )
    assert out(r) == ["/tmp", "/bin/t", "2", "0", "/proc/2", "t", "/proc", "/", str(abi.EACCES)]


# --- the console -----------------------------------------------------------------------------------------
async def test_console_reads_wait_for_terminal_input_and_see_eof_at_its_end():
    import os

    import trio

    read_end, write_end = os.pipe()
    src = b"""
async def main(sys, argv):
    while line := await sys.read(0, 100):
        await sys.write(1, b"got " + line)
    await sys.write(1, b"eof\\n")
"""
    try:
        async with ukernel.boot(terminal=read_end, files={"/bin/echoer": src}) as kernel:
            async with trio.open_nursery() as nursery:

                async def typist():
                    for line in (b"one\n", b"two\n"):
                        await trio.testing.wait_all_tasks_blocked()  # the reader is asleep on the console
                        os.write(write_end, line)
                        await trio.sleep(0.01)
                    await trio.testing.wait_all_tasks_blocked()
                    os.close(write_end)

                nursery.start_soon(typist)
                assert await kernel.run("/bin/echoer") == 0
            assert await kernel.call("vfs", "console_output", {}) == b"got one\ngot two\neof\n"
            assert await kernel.check_invariants() == []
    finally:
        os.close(read_end)


# --- property: any sequence of fd-table operations keeps every count true -------------------------
FD_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("open"),
            st.sampled_from(["/etc/motd", "/tmp/new", "/dev/null", "/tmp", "/nope"]),
            st.sampled_from([0, 1, 2, 0o101, 0o2000000]),
        ),
        st.tuples(st.just("pipe2"), st.sampled_from([0, abi.O_NONBLOCK, abi.O_CLOEXEC])),
        st.tuples(st.sampled_from(["dup", "close", "read", "fstat"]), st.integers(0, 8)),
        st.tuples(st.just("dup2"), st.integers(0, 8), st.integers(0, 8)),
        st.tuples(st.just("write"), st.integers(0, 8), st.binary(max_size=8)),
        st.tuples(st.sampled_from(["fork", "share", "exit", "exec"])),
        st.tuples(st.just("unlink"), st.sampled_from(["/tmp/new", "/etc/motd"])),
    ),
    max_size=30,
)


@given(ops=FD_OPS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fd_tables_open_files_and_pipes_stay_counted(ops):
    from services.vfs import VfsService
    from ukernel.testing import service_client

    async def body():
        async with service_client(VfsService()) as c:
            clean = await c.call("accounting")
            await c.call("write_file", path="/etc/motd", data=b"hello")
            fs = (await c.call("init_fs"))["fs"]
            tables = [(await c.call("init_files"))["files"]]
            for op, *args in ops:
                files = tables[-1] if tables else None
                try:
                    if op == "open":
                        await c.call("open", files=files, fs=fs, path=args[0], flags=args[1])
                    elif op == "pipe2":
                        await c.call("pipe2", files=files, flags=args[0])
                    elif op in ("dup", "close", "fstat"):
                        await c.call(op, files=files, fd=args[0])
                    elif op == "read":
                        got = await c.call("read", files=files, fd=args[0], n=4)
                        if isinstance(got, dict):  # an empty pipe: a signal ends the wait at once
                            assert await c.call("accounting") != clean
                            await c.call("finish_wait", waiter=got["wait"])
                    elif op == "dup2":
                        await c.call("dup2", files=files, old=args[0], new=args[1])
                    elif op == "write":
                        await c.call("write", files=files, fd=args[0], data=args[1])
                    elif op == "fork":
                        tables.append((await c.call("dup_files", files=files))["files"])
                    elif op == "share":
                        tables.append((await c.call("share_files", files=files))["files"])
                    elif op == "exec":
                        tables[-1] = (await c.call("exec_files", files=files))["files"]
                    elif op == "exit" and len(tables) > 1:
                        await c.call("put_files", files=tables.pop())
                    elif op == "unlink":
                        await c.call("unlink", fs=fs, path=args[0])
                except OSError as exc:
                    assert exc.errno in (abi.EBADF, abi.ENOENT, abi.EISDIR, abi.EAGAIN, abi.EPIPE, abi.EINVAL)
                assert await c.call("check") == []
            for files in reversed(tables):
                await c.call("put_files", files=files)
            await c.call("put_fs", fs=fs)
            assert await c.call("check") == []
            assert await c.call("accounting") == clean

    trio.run(body)


# --- a remote vfs: the wait protocol is plain messages, so pipes block the same way over TCP ---------
PIPE_PROGRAM = b"""
async def main(sys, argv):
    r, w = await sys.pipe()
    pid = await sys.fork()
    if pid == 0:
        await sys.close(w)
        while chunk := await sys.read(r, 100):
            await sys.write(1, b"child got " + chunk + b"\\n")
        return 0
    await sys.close(r)
    for word in (b"one", b"two"):
        for _ in range(3):
            await sys.sched_yield()
        await sys.write(w, word)
    await sys.close(w)
    await sys.waitpid(pid)
"""


async def test_a_pipe_through_a_remote_vfs_blocks_and_wakes_as_embedded(monkeypatch):
    import services
    from ukernel.config import Config
    from ukernel.ipc import node as server
    from ukernel.ipc import tcp

    monkeypatch.setenv("UKERNEL_SECRET", "vfs-test-secret")
    vfs, settings = services.build("vfs", Config()), {"vfs": services.settings_of("vfs", Config())}
    files = {"/bin/p": PIPE_PROGRAM}
    with trio.fail_after(30):
        embedded = await ukernel.run_async("/bin/p", ["p"], files=files)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(
                    server.serve_services,
                    [vfs],
                    "tcp://127.0.0.1:0",
                    tcp.Auth(b"vfs-test-secret", insecure=True),
                    settings=settings,
                )
            )
            remote = await ukernel.run_async("/bin/p", ["p"], files=files, remote={"vfs": url}, insecure=True)
            nursery.cancel_scope.cancel()
    assert embedded.stdout == b"child got one\nchild got two\n"
    assert (remote.stdout, remote.problems, remote.exit_code) == (embedded.stdout, [], 0)

    def route(trace):
        return [(e["dst"], e["op"]) for e in trace if e["type"] == "request"]

    assert route(remote.trace) == route(embedded.trace)
    assert ("vfs", "wait") in route(remote.trace)


async def test_reopening_a_pipe_through_proc_is_enosys_and_readlink_names_it(run):
    r = await run(
        """
        async def main(sys, argv):
            rfd, wfd = await sys.pipe()
            link = await sys.readlink(f"/proc/self/fd/{rfd}")
            await sys.write(1, f"{link.startswith('pipe:[')}\\n")
            try:
                await sys.open(f"/proc/self/fd/{rfd}")
            except OSError as e:
                await sys.write(1, f"{e.errno}\\n")
        """
    )
    assert out(r) == ["True", str(abi.ENOSYS)]


async def test_proc_shows_threads_and_their_sleep_state(run):
    r = await run(
        """
        from userland.lib.pthread import pthread_create, pthread_join

        async def worker(sys, fd):
            await sys.read(fd, 1)                  # asleep on the pipe until main writes
            return 0

        def field(text, name):
            return next(l.split(":\\t")[1] for l in text.splitlines() if l.startswith(name + ":"))

        async def main(sys, argv):
            r, w = await sys.pipe()
            threads = [await pthread_create(sys, worker, r) for _ in range(2)]
            for _ in range(6):
                await sys.sched_yield()
            me = await sys.getpid()
            status = (await sys.read(await sys.open("/proc/self/status"), 4096)).decode()
            tids = [t for t in await sys.getdents(await sys.open(f"/proc/{me}/task")) if t[0] != "."]
            await sys.write(1, f"Threads {field(status, 'Threads')} tasks {tids}\\n")
            for tid in tids[1:]:
                st = (await sys.read(await sys.open(f"/proc/{me}/task/{tid}/status"), 4096)).decode()
                await sys.write(1, f"{tid}: {field(st, 'State')} tgid {field(st, 'Tgid')}\\n")
            await sys.write(w, b"xy")
            for t in threads:
                await pthread_join(sys, t)
        """
    )
    assert out(r) == ["Threads 3 tasks ['2', '3', '4']", "3: S (sleeping) tgid 2", "4: S (sleeping) tgid 2"]


async def test_proc_pid_sched_shows_sched_entity(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.nice(5)
            for _ in range(3):
                await sys.sched_yield()
            text = (await sys.read(await sys.open("/proc/self/sched"), 4096)).decode()
            fields = dict(l.split(":") for l in text.splitlines()[2:])
            await sys.write(1, text.splitlines()[0] + "\\n")
            for name in ("static_prio", "policy", "nr_voluntary_switches"):
                await sys.write(1, f"{name} {fields[name.ljust(40)].strip()}\\n")
        """
    )
    assert out(r) == ["t (2, #threads: 1)", "static_prio 125", "policy 0", "nr_voluntary_switches 3"]


# --- property: no argument a program can pass crashes the vfs or leaks ---------------------------
# no pipe2: a read of this process's own empty pipe would rightly sleep forever (pipes: the test above)
PATH_CALLS = ["open", "close", "read", "write", "lseek", "dup", "dup2", "dup3", "fcntl", "getdents", "fstat"]
PATH_CALLS += ["stat", "lstat", "access", "chdir", "fchdir", "getcwd", "chroot", "umask", "mkdir", "rmdir", "unlink"]
PATH_CALLS += ["rename", "link", "symlink", "readlink", "mount", "umount"]
ODD_VALUES = ["/", "/tmp", "/tmp/x", "/proc", "/proc/self", "/proc/self/fd/0", "/proc/self/cwd/..", "..", "", 0, 1]
ODD_VALUES += [3, -1, 2**40, None, b"x", 1.5, [1], {"a": 1}, "x" * 300, "/proc/self/ns/uts", "tmpfs", "/dev/null"]


@given(
    calls=st.lists(
        st.tuples(st.sampled_from(PATH_CALLS), st.lists(st.sampled_from(ODD_VALUES), max_size=3)), max_size=40
    )
)
@settings(max_examples=25, deadline=None)
def test_any_arguments_give_an_errno_never_a_crash_or_a_leak(calls):
    lines = ["async def main(sys, argv):"]
    for name, args in calls:
        lines += [
            "    try:",
            f"        await sys.{name}(*{args!r})",
            "    except (OSError, TypeError):",
            "        pass",
        ]
    r = ukernel.run("/bin/f", ["f"], files={"/bin/f": "\n".join(lines + ["    return 0"]).encode()})
    assert (r.exit_code, r.problems) == (0, [])


# --- named FIFOs -----------------------------------------------------------------------------------
async def test_a_fifo_open_waits_for_its_partner_then_carries_data(run):
    r = await run(
        """
        import stat

        async def main(sys, argv):
            await sys.mkfifo("/tmp/fifo", 0o600)
            await sys.write(1, f"{stat.filemode((await sys.stat('/tmp/fifo')).st_mode)}\\n")
            pid = await sys.fork()
            if pid == 0:
                fd = await sys.open("/tmp/fifo", 0)          # sleeps until a writer opens
                await sys.write(1, b"reader got " + await sys.read(fd, 100) + b"\\n")
                return 0
            for _ in range(5):
                await sys.sched_yield()
            fd = await sys.open("/tmp/fifo", 1)
            await sys.write(fd, b"through the fifo")
            await sys.close(fd)
            await sys.waitpid(pid)
        """
    )
    assert out(r) == ["prw-------", "reader got through the fifo"]
    waits = [e for e in r.trace if e["type"] == "request" and e["dst"] == "vfs" and e["op"] == "wait"]
    assert len(waits) == 1  # the reader's open waited once, in sched; the data was there when it read


async def test_fifo_open_nonblocking_rules_and_mknod_errnos(run):
    r = await run(
        """
        import stat
        from ukernel.abi import O_NONBLOCK, O_RDONLY, O_WRONLY, O_RDWR

        async def main(sys, argv):
            say = lambda s: sys.write(1, f"{s}\\n")
            await sys.mkfifo("/tmp/f")
            rfd = await sys.open("/tmp/f", O_RDONLY | O_NONBLOCK)      # a reader need not wait
            await say(await sys.read(rfd, 10))                          # no writer: EOF
            await sys.close(rfd)
            for args in (("/tmp/f", O_WRONLY | O_NONBLOCK),):
                try:
                    await sys.open(*args)
                except OSError as e:
                    await say(f"writer without reader: {e.errno}")
            both = await sys.open("/tmp/f", O_RDWR)                     # never waits
            await sys.write(both, b"self")
            await say(await sys.read(both, 10))
            for mode in (stat.S_IFCHR | 0o600, 0o170000):
                try:
                    await sys.mknod("/tmp/dev", mode)
                except OSError as e:
                    await say(e.errno)
            try:
                await sys.mkfifo("/tmp/f")
            except OSError as e:
                await say(e.errno)
        """
    )
    assert out(r) == [
        "b''",
        f"writer without reader: {abi.ENXIO}",
        "b'self'",
        str(abi.ENOSYS),
        str(abi.EINVAL),
        str(abi.EEXIST),
    ]


async def test_a_signal_ends_a_fifo_open_with_eintr_and_no_fd_left(run):
    r = await run(
        """
        from ukernel.abi import SIGUSR1

        async def note(sys, sig):
            pass

        async def main(sys, argv):
            await sys.mkfifo("/tmp/f")
            pid = await sys.fork()
            if pid == 0:
                await sys.sigaction(SIGUSR1, note)
                try:
                    await sys.open("/tmp/f", 0)
                except OSError as e:
                    await sys.write(1, f"EINTR {e.errno == 4}; fds {await sys.getdents(await sys.open('/proc/self/fd'))}\\n")
                return 0
            for _ in range(5):
                await sys.sched_yield()
            await sys.kill(pid, SIGUSR1)
            await sys.waitpid(pid)
        """
    )
    assert out(r) == ["EINTR True; fds ['.', '..', '0', '1', '2', '3']"]
