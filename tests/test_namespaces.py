"""Namespaces through programs: each kind's isolation and sharing, unshare and setns
with their routes and errnos, nested pid namespaces, SysV semaphores, /proc/PID/ns."""

from __future__ import annotations

import ukernel
from ukernel import abi
from ukernel.testing import nested_route_of, route_of

PRELUDE = """
from errno import errorcode
from ukernel.abi import *

async def say(sys, text):
    await sys.write(1, (text + "\\n").encode())

async def read_file(sys, path):
    fd = await sys.open(path)
    data = await sys.read(fd, 4096)
    await sys.close(fd)
    return data.decode()

async def errno_of(coro):
    try:
        await coro
    except OSError as exc:
        return errorcode[exc.errno]
    return "ok"
"""


def out(r: ukernel.Result) -> list[str]:
    return r.stdout.decode().splitlines()


async def run_ns(run, body: str, **settings) -> list[str]:
    return out(await run(PRELUDE + body, **settings))


# --- each kind: isolated with the flag, shared without ----------------------------------------
async def test_uts_unshare_isolates_and_a_plain_fork_shares(run):
    lines = await run_ns(
        run,
        """
async def child(sys, flags):
    if flags:
        await sys.unshare(flags)
    await sys.sethostname("box")
    await sys.setdomainname("lan")
    u = await sys.uname()
    await say(sys, f"child {u['nodename']} {u['domainname']}")

async def main(sys, argv):
    for flags in (CLONE_NEWUTS, 0):
        await sys.waitpid(await sys.clone(SIGCHLD, child, flags))
        u = await sys.uname()
        await say(sys, f"parent {u['nodename']} {u['domainname']}")
""",
    )
    assert lines == ["child box lan", "parent ukernel (none)", "child box lan", "parent box lan"]


async def test_mount_namespace_unshare_keeps_a_mount_private(run):
    lines = await run_ns(
        run,
        """
async def child(sys, flags):
    await sys.unshare(flags)
    await sys.mount("none", "/mnt", "tmpfs")
    fd = await sys.open("/mnt/x", O_CREAT | O_WRONLY)
    await sys.close(fd)
    await say(sys, f"child sees {await sys.access('/mnt/x') is None}")
    if flags:
        await sys.umount("/mnt")

async def main(sys, argv):
    for flags in (CLONE_NEWNS, 0):
        await sys.waitpid(await sys.clone(SIGCHLD, child, flags))
        await say(sys, f"parent: {await errno_of(sys.access('/mnt/x'))}")
    await sys.unlink("/mnt/x")
    await sys.umount("/mnt")
""",
    )
    assert lines == ["child sees True", "parent: ENOENT", "child sees True", "parent: ok"]


async def test_net_namespace_has_only_loopback(run):
    lines = await run_ns(
        run,
        """
def names(text):
    return [line.split(":")[0].strip() for line in text.splitlines()[2:]]

async def child(sys, flags):
    await sys.unshare(flags)
    await say(sys, f"child {names(await read_file(sys, '/proc/net/dev'))}")

async def main(sys, argv):
    await say(sys, f"parent {names(await read_file(sys, '/proc/net/dev'))}")
    for flags in (CLONE_NEWNET, 0):
        await sys.waitpid(await sys.clone(SIGCHLD, child, flags))
""",
    )
    assert lines == ["parent ['lo', 'eth0']", "child ['lo']", "child ['lo', 'eth0']"]


async def test_user_cgroup_and_uid_map_views(run):
    lines = await run_ns(
        run,
        """
async def child(sys, arg):
    await sys.unshare(CLONE_NEWUSER | CLONE_NEWCGROUP)
    await say(sys, "child " + (await read_file(sys, "/proc/self/uid_map")).strip())
    await say(sys, "child " + (await read_file(sys, "/proc/self/cgroup")).strip())

async def main(sys, argv):
    await say(sys, "parent " + (await read_file(sys, "/proc/self/uid_map")).strip())
    await say(sys, "parent " + (await read_file(sys, "/proc/self/cgroup")).strip())
    await sys.waitpid(await sys.clone(SIGCHLD, child))
""",
    )
    assert lines == [
        "parent 0          0 4294967295",
        "parent 0::/",
        "child 0          0          1",
        "child 0::/",
    ]


async def test_ipc_namespace_has_its_own_semaphores(run):
    lines = await run_ns(
        run,
        """
async def child(sys, flags):
    await sys.unshare(flags)
    await say(sys, f"child: {await errno_of(sys.semget(1234, 0))}")

async def main(sys, argv):
    semid = await sys.semget(1234, 1, IPC_CREAT)
    for flags in (CLONE_NEWIPC, 0):
        await sys.waitpid(await sys.clone(SIGCHLD, child, flags))
    await sys.semctl(semid, 0, IPC_RMID)
""",
    )
    assert lines == ["child: ENOENT", "child: ok"]


async def test_time_namespace_offsets_apply_to_children_only(run):
    lines = await run_ns(
        run,
        """
async def child(sys, start):
    now = await sys.clock_gettime(CLOCK_MONOTONIC)
    await say(sys, f"child ahead by {round(now - start)}")

async def main(sys, argv):
    await sys.unshare(CLONE_NEWTIME)
    fd = await sys.open("/proc/self/timens_offsets", O_WRONLY)
    await sys.write(fd, b"monotonic 1000 0\\n")
    await sys.close(fd)
    await say(sys, (await read_file(sys, "/proc/self/timens_offsets")).splitlines()[0])
    start = await sys.clock_gettime(CLOCK_MONOTONIC)
    await sys.waitpid(await sys.clone(SIGCHLD, child, start))
    parent = await sys.clock_gettime(CLOCK_MONOTONIC)
    await say(sys, f"parent moved by {round(parent - start)}")
    fd = await sys.open("/proc/self/timens_offsets", O_WRONLY)
    await say(sys, f"after a child entered: {await errno_of(sys.write(fd, b'monotonic 5 0'))}")
    await sys.close(fd)
""",
    )
    assert lines == [
        "monotonic        1000         0",
        "child ahead by 1000",
        "parent moved by 0",
        "after a child entered: EACCES",
    ]


async def test_clone3_newtime_child_starts_in_a_new_time_namespace(run):
    lines = await run_ns(
        run,
        """
async def child(sys, arg):
    await say(sys, (await sys.readlink("/proc/self/ns/time")) + " " + (await sys.readlink("/proc/self/ns/time_for_children")))

async def main(sys, argv):
    pid = await sys.clone3(flags=CLONE_NEWTIME, exit_signal=SIGCHLD, fn=child)
    await sys.waitpid(pid)
    await say(sys, await sys.readlink("/proc/self/ns/time"))
""",
    )
    assert lines == ["time:[4026532000] time:[4026532000]", "time:[4026531834]"]


# --- pid namespaces -------------------------------------------------------------------------
NESTED = """
async def level(sys, depth):
    status = [l for l in (await read_file(sys, "/proc/self/status")).splitlines() if l.startswith("NSpid")][0]
    last = (await read_file(sys, "/proc/sys/kernel/ns_last_pid")).strip()
    await say(sys, f"depth {depth}: getpid {await sys.getpid()} getppid {await sys.getppid()} {status} ns_last_pid {last}")
    if depth < 3:
        pid = await sys.clone(CLONE_NEWPID | SIGCHLD, level, depth + 1)
        await sys.waitpid(pid)
        await say(sys, f"depth {depth} saw its child as {pid}")

async def main(sys, argv):
    await level(sys, 0)
"""


async def test_nested_pid_namespaces_number_a_task_at_every_level(run):
    lines = await run_ns(run, NESTED)
    assert lines == [
        "depth 0: getpid 2 getppid 1 NSpid:\t2 ns_last_pid 2",
        "depth 1: getpid 1 getppid 0 NSpid:\t1 ns_last_pid 1",
        "depth 2: getpid 1 getppid 0 NSpid:\t1 ns_last_pid 1",
        "depth 3: getpid 1 getppid 0 NSpid:\t1 ns_last_pid 1",
        "depth 2 saw its child as 2",  # pid 1 of its namespace is there already: the parent
        "depth 1 saw its child as 2",
        "depth 0 saw its child as 3",
    ]


async def test_nspid_of_a_grandchild_from_each_level(run):
    lines = await run_ns(
        run,
        """
async def nspid(sys, pid):
    text = await read_file(sys, f"/proc/{pid}/status")
    return [l for l in text.splitlines() if l.startswith("NSpid")][0].replace("\\t", " ")

async def inner(sys, go):
    await sys.read(go, 1)  # stay alive until the outer process has looked

async def middle(sys, pipes):
    pid = await sys.clone(CLONE_NEWPID | SIGCHLD, inner, pipes[1][0])
    await say(sys, f"middle sees {pid}: {await nspid(sys, pid)}")
    await sys.write(pipes[0][1], b"m")
    await sys.waitpid(pid)

async def main(sys, argv):
    ready, go = await sys.pipe(), await sys.pipe()
    m = await sys.clone(CLONE_NEWPID | SIGCHLD, middle, (ready, go))
    await sys.read(ready[0], 1)
    await say(sys, f"outer sees {m}: {await nspid(sys, m)}")
    await say(sys, f"outer sees {m + 1}: {await nspid(sys, m + 1)}")
    await sys.write(go[1], b"!")
    await sys.waitpid(m)
""",
    )
    assert lines == [
        "middle sees 2: NSpid: 2 1",
        "outer sees 3: NSpid: 3 1",
        "outer sees 4: NSpid: 4 2 1",
    ]


async def test_unshare_newpid_moves_only_the_children(run):
    lines = await run_ns(
        run,
        """
async def child(sys, arg):
    await say(sys, f"child pid {await sys.getpid()}")

async def main(sys, argv):
    await sys.unshare(CLONE_NEWPID)
    await say(sys, f"caller still {await sys.getpid()}")
    pid_ns = await sys.readlink("/proc/self/ns/pid")
    for_children = await sys.readlink("/proc/self/ns/pid_for_children")
    await say(sys, f"{pid_ns} {for_children}")
    await say(sys, f"again: {await errno_of(sys.unshare(CLONE_NEWPID))}")
    await say(sys, f"thread: {await errno_of(sys.clone(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, child))}")
    pid = await sys.clone(SIGCHLD, child)
    await sys.waitpid(pid)
    await say(sys, f"parent saw {pid}")
""",
    )
    assert lines == [
        "caller still 2",
        "pid:[4026531836] pid:[4026532000]",
        "again: EINVAL",
        "thread: EINVAL",
        "child pid 1",
        "parent saw 3",
    ]


async def test_pid_namespaces_nest_32_deep_then_enospc(run):
    lines = await run_ns(
        run,
        """
async def main(sys, argv):
    for depth in range(1, 34):
        try:
            await sys.unshare(CLONE_NEWPID)
        except OSError as exc:
            await say(sys, f"level {depth}: {errorcode[exc.errno]}")
            return 0
        pid = await sys.fork()
        if pid:
            await sys.waitpid(pid)
            return 0
""",
    )
    assert lines == ["level 33: ENOSPC"]


async def test_user_namespaces_nest_33_deep_then_eusers(run):
    lines = await run_ns(
        run,
        """
async def main(sys, argv):
    for depth in range(1, 40):
        err = await errno_of(sys.unshare(CLONE_NEWUSER))
        if err != "ok":
            await say(sys, f"level {depth}: {err}")
            return 0
""",
    )
    assert lines == ["level 34: EUSERS"]


# --- unshare: routes and errnos ----------------------------------------------------------------
UNSHARE_ONE = (
    PRELUDE
    + """
async def main(sys, argv):
    await sys.unshare(int(argv[1], 0))
    await say(sys, "ok")
"""
)

UNSHARE_ROUTES = {
    0: [],
    abi.CLONE_NEWUTS: [
        ("kernel", "namespaces", "unshare_nsproxy"),
        ("namespaces", "vfs", "get_mnt_ns"),
        ("namespaces", "pid", "get_pid_ns"),
        ("kernel", "namespaces", "put_nsproxy"),
    ],
    abi.CLONE_NEWNS: [
        ("kernel", "vfs", "copy_fs"),  # CLONE_NEWNS implies CLONE_FS
        ("kernel", "namespaces", "unshare_nsproxy"),
        ("namespaces", "vfs", "copy_mnt_ns"),
        ("namespaces", "pid", "get_pid_ns"),
        ("kernel", "namespaces", "put_nsproxy"),
        ("kernel", "vfs", "put_fs"),
    ],
    abi.CLONE_FILES | abi.CLONE_FS: [
        ("kernel", "vfs", "copy_fs"),
        ("kernel", "vfs", "dup_files"),
        ("kernel", "vfs", "put_fs"),
        ("kernel", "vfs", "put_files"),
    ],
    abi.CLONE_NEWPID | abi.CLONE_NEWIPC: [
        ("kernel", "namespaces", "unshare_nsproxy"),
        ("namespaces", "vfs", "get_mnt_ns"),
        ("namespaces", "pid", "create_pid_ns"),
        ("kernel", "namespaces", "put_nsproxy"),
    ],
    abi.CLONE_THREAD | abi.CLONE_SIGHAND | abi.CLONE_VM | abi.CLONE_SYSVSEM: [],  # nothing to unshare
}


async def test_unshare_routes(run):
    for flags, expected in UNSHARE_ROUTES.items():
        result = await run(UNSHARE_ONE, ["t", hex(flags)])
        assert result.stdout == b"ok\n"
        assert nested_route_of(result.trace, "unshare") == expected, abi.decode_clone_flags(flags)


async def test_unshare_errnos(run):
    lines = await run_ns(
        run,
        """
async def thread(sys, arg):
    await sys.sched_yield()

async def main(sys, argv):
    await say(sys, f"unknown bit: {await errno_of(sys.unshare(CLONE_VFORK))}")
    await say(sys, f"exit signal bits: {await errno_of(sys.unshare(SIGCHLD))}")
    await say(sys, f"CLONE_VM alone: {await errno_of(sys.unshare(CLONE_VM))}")
    tid = await sys.clone(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_FS | CLONE_FILES, thread)
    await say(sys, f"CLONE_THREAD with a thread: {await errno_of(sys.unshare(CLONE_THREAD))}")
    await say(sys, f"CLONE_NEWUSER with a thread: {await errno_of(sys.unshare(CLONE_NEWUSER))}")
    await say(sys, f"CLONE_NEWUTS with a thread: {await errno_of(sys.unshare(CLONE_NEWUTS))}")
""",
    )
    assert lines == [
        "unknown bit: EINVAL",
        "exit signal bits: EINVAL",
        "CLONE_VM alone: ok",
        "CLONE_THREAD with a thread: EINVAL",
        "CLONE_NEWUSER with a thread: EINVAL",
        "CLONE_NEWUTS with a thread: ok",
    ]


async def test_unshare_vm_in_a_vfork_child_is_einval(run):
    r = await run(
        PRELUDE
        + """
async def main(sys, argv):
    if len(argv) > 1:  # the vfork child, after its execve
        await say(sys, argv[1])
        return 0
    pid = await sys.vfork()
    if pid == 0:
        err = await errno_of(sys.unshare(CLONE_VM))
        await sys.execve("/bin/t", ["t", err])
    await sys.waitpid(pid)
"""
    )
    assert out(r) == ["EINVAL"]


async def test_clone_namespace_errnos(run):
    lines = await run_ns(
        run,
        """
async def child(sys, arg):
    return 0

async def main(sys, argv):
    await say(sys, f"NEWIPC|SYSVSEM: {await errno_of(sys.clone(CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD, child))}")
    await say(sys, f"NEWNS|FS: {await errno_of(sys.clone(CLONE_NEWNS | CLONE_FS | SIGCHLD, child))}")
    await say(sys, f"NEWUSER|FS: {await errno_of(sys.clone(CLONE_NEWUSER | CLONE_FS | SIGCHLD, child))}")
    await sys.unshare(CLONE_NEWPID)
    await say(sys, f"NEWPID after unshare(NEWPID): {await errno_of(sys.clone(CLONE_NEWPID | SIGCHLD, child))}")
""",
    )
    assert lines == [
        "NEWIPC|SYSVSEM: EINVAL",
        "NEWNS|FS: EINVAL",
        "NEWUSER|FS: EINVAL",
        "NEWPID after unshare(NEWPID): EINVAL",
    ]


# --- /proc/PID/ns and setns -----------------------------------------------------------------
async def test_proc_ns_lists_ten_links_with_linux_init_numbers(run):
    lines = await run_ns(
        run,
        """
async def main(sys, argv):
    fd = await sys.open("/proc/self/ns")
    names = [n for n in await sys.getdents(fd) if n not in (".", "..")]
    for name in names:
        await say(sys, f"{name} -> {await sys.readlink('/proc/self/ns/' + name)}")
    st = await sys.stat("/proc/self/ns/uts")
    await say(sys, f"st_ino {st.st_ino}")
""",
    )
    assert lines == [
        "cgroup -> cgroup:[4026531835]",
        "ipc -> ipc:[4026531839]",
        "mnt -> mnt:[4026531841]",
        "net -> net:[4026531840]",
        "pid -> pid:[4026531836]",
        "pid_for_children -> pid:[4026531836]",
        "time -> time:[4026531834]",
        "time_for_children -> time:[4026531834]",
        "user -> user:[4026531837]",
        "uts -> uts:[4026531838]",
        "st_ino 4026531838",
    ]


SETNS_UTS = """
async def child(sys, pipes):
    await sys.sethostname("inner")
    await sys.write(pipes[0][1], b"!")
    await sys.read(pipes[1][0], 1)  # stay alive until the parent is done

async def main(sys, argv):
    ready, done = await sys.pipe(), await sys.pipe()
    r, w = done
    pid = await sys.clone(CLONE_NEWUTS | SIGCHLD, child, (ready, done))
    await sys.read(ready[0], 1)
    await say(sys, await sys.readlink(f"/proc/{pid}/ns/uts"))
    fd = await sys.open(f"/proc/{pid}/ns/uts")
    await say(sys, f"read: {await errno_of(sys.read(fd, 10))}")
    await say(sys, f"fd link: {await sys.readlink(f'/proc/self/fd/{fd}')}")
    await say(sys, f"wrong nstype: {await errno_of(sys.setns(fd, CLONE_NEWIPC))}")
    await say(sys, f"not a namespace: {await errno_of(sys.setns(r, 0))}")
    await sys.setns(fd, CLONE_NEWUTS)
    await say(sys, f"after setns: {(await sys.uname())['nodename']}")
    await sys.close(fd)
    await sys.write(w, b"!")
    await sys.waitpid(pid)
"""


async def test_setns_round_trip_into_a_childs_uts_namespace(run):
    r = await run(PRELUDE + SETNS_UTS)
    assert out(r) == [
        "uts:[4026532000]",
        "read: EINVAL",
        "fd link: uts:[4026532000]",
        "wrong nstype: EINVAL",
        "not a namespace: EINVAL",
        "after setns: inner",
    ]
    assert nested_route_of(r.trace, "setns", nth=2) == [
        ("kernel", "vfs", "ns_of_fd"),
        ("kernel", "namespaces", "setns"),
        ("namespaces", "vfs", "get_mnt_ns"),
        ("namespaces", "pid", "get_pid_ns"),
        ("kernel", "namespaces", "put_nsproxy"),
    ]


async def test_setns_pid_only_downwards_and_mnt_resets_root_and_cwd(run):
    lines = await run_ns(
        run,
        """
async def child(sys, pipes):
    await sys.unshare(CLONE_NEWNS)
    await sys.mount("none", "/mnt", "tmpfs")
    await sys.close(await sys.open("/mnt/only-here", O_CREAT | O_WRONLY))
    await sys.write(pipes[0][1], b"!")
    await sys.read(pipes[1][0], 1)
    await sys.umount("/mnt")

async def grandchild(sys, arg):
    await say(sys, f"grandchild pid {await sys.getpid()}")

async def main(sys, argv):
    ready, done = await sys.pipe(), await sys.pipe()
    w = done[1]
    pid = await sys.clone(CLONE_NEWPID | SIGCHLD, child, (ready, done))
    await sys.read(ready[0], 1)
    pidfd = await sys.open(f"/proc/{pid}/ns/pid")
    await sys.setns(pidfd, CLONE_NEWPID)
    await say(sys, f"getpid still {await sys.getpid()}")
    gc = await sys.clone(SIGCHLD, grandchild)
    await sys.waitpid(gc)
    await say(sys, f"outside it is {gc}")
    up = await sys.open("/proc/self/ns/pid")
    await say(sys, f"back to our own: {await errno_of(sys.setns(up, 0))}")
    await sys.mkdir("/tmp/d")
    await sys.chdir("/tmp/d")
    mnt = await sys.open(f"/proc/{pid}/ns/mnt")
    await sys.setns(mnt, CLONE_NEWNS)
    await say(sys, f"cwd {await sys.getcwd()}, sees file: {await errno_of(sys.access('/mnt/only-here'))}")
    for fd in (pidfd, up, mnt):
        await sys.close(fd)
    await sys.write(w, b"!")
    await sys.waitpid(pid)
    await sys.rmdir("/tmp/d")
""",
    )
    assert lines == [
        "getpid still 2",
        "grandchild pid 2",
        "outside it is 4",
        "back to our own: ok",
        "cwd /, sees file: ok",
    ]


async def test_setns_into_an_ancestor_pid_namespace_is_einval(run):
    lines = await run_ns(
        run,
        """
async def child(sys, fd):
    await say(sys, f"up: {await errno_of(sys.setns(fd, CLONE_NEWPID))}")

async def main(sys, argv):
    fd = await sys.open("/proc/self/ns/pid")
    await sys.waitpid(await sys.clone(CLONE_NEWPID | SIGCHLD, child, fd))
    await sys.close(fd)
""",
    )
    assert lines == ["up: EINVAL"]


# --- SysV semaphores ----------------------------------------------------------------------------
async def test_semaphores_block_wake_and_ipc_nowait(run):
    lines = await run_ns(
        run,
        """
async def waiter(sys, semid):
    await sys.semop(semid, [(0, -1, 0)])  # sleeps until the parent posts
    await say(sys, "child got it")

async def main(sys, argv):
    semid = await sys.semget(IPC_PRIVATE, 2)
    await say(sys, f"nowait: {await errno_of(sys.semop(semid, [(0, -1, IPC_NOWAIT)]))}")
    await say(sys, f"bad semnum: {await errno_of(sys.semop(semid, [(5, 1, 0)]))}")
    pid = await sys.clone(SIGCHLD, waiter, semid)
    for _ in range(5):
        await sys.sched_yield()
    await say(sys, "posting")
    await sys.semop(semid, [(0, 1, 0)])
    await sys.waitpid(pid)
    await sys.semctl(semid, 1, SETVAL, 7)
    await say(sys, f"values {await sys.semctl(semid, 0, GETVAL)} {await sys.semctl(semid, 1, GETVAL)}")
    await sys.semctl(semid, 0, IPC_RMID)
    await say(sys, f"removed: {await errno_of(sys.semctl(semid, 0, GETVAL))}")
""",
    )
    assert lines == [
        "nowait: EAGAIN",
        "bad semnum: EFBIG",
        "posting",
        "child got it",
        "values 0 7",
        "removed: EINVAL",
    ]


async def test_ipc_rmid_wakes_sleepers_with_eidrm(run):
    lines = await run_ns(
        run,
        """
async def waiter(sys, semid):
    await say(sys, f"child: {await errno_of(sys.semop(semid, [(0, -1, 0)]))}")

async def main(sys, argv):
    semid = await sys.semget(IPC_PRIVATE, 1)
    pid = await sys.clone(SIGCHLD, waiter, semid)
    for _ in range(5):
        await sys.sched_yield()
    await sys.semctl(semid, 0, IPC_RMID)
    await sys.waitpid(pid)
""",
    )
    assert lines == ["child: EIDRM"]


SEM_UNDO_PROGRAM = """
async def child(sys, semid):
    await sys.semop(semid, [(0, 5, SEM_UNDO)])
    await say(sys, f"child raised it to {await sys.semctl(semid, 0, GETVAL)}")

async def main(sys, argv):
    flags = int(argv[1], 0)
    semid = await sys.semget(IPC_PRIVATE, 1)
    pid = await sys.clone(flags | SIGCHLD, child, semid)
    await sys.waitpid(pid)
    await say(sys, f"after the child's exit: {await sys.semctl(semid, 0, GETVAL)}")
    await sys.semop(semid, [(0, 1, SEM_UNDO)])  # the parent's own undo list (or the shared one)
    await sys.semctl(semid, 0, IPC_RMID)
"""


async def test_sem_undo_is_applied_at_exit_and_clone_sysvsem_shares_the_list(run):
    alone = await run(PRELUDE + SEM_UNDO_PROGRAM, ["t", "0"])
    assert out(alone) == ["child raised it to 5", "after the child's exit: 0"]
    exits = [e for e in alone.trace if e["type"] == "request" and e["op"] == "exit_sem"]
    assert [e["pid"] for e in exits] == [3, 2]  # the child's undo list, then the parent's
    shared = await run(PRELUDE + SEM_UNDO_PROGRAM, ["t", hex(abi.CLONE_SYSVSEM)])
    # One list for both: the child's exit leaves it to the parent, whose exit undoes both.
    assert out(shared) == ["child raised it to 5", "after the child's exit: 5"]
    assert route_of(shared.trace, "clone")[1] == ("namespaces", "copy_semundo")


# --- userland/container.py ------------------------------------------------------------------------
NSINFO = (
    PRELUDE
    + """
async def main(sys, argv):
    u = await sys.uname()
    fd = await sys.open("/proc")
    procs = [n for n in await sys.getdents(fd) if n.isdigit()]
    await say(sys, f"pid {await sys.getpid()} ppid {await sys.getppid()} host {u['nodename']} procs {procs}")
    net = (await read_file(sys, "/proc/net/dev")).splitlines()[2:]
    await say(sys, f"links {[line.split(':')[0].strip() for line in net]}")
"""
)


async def test_container_runs_its_command_as_pid_1_of_a_new_world(run):
    r = await run(
        "async def main(sys, argv):\n    await sys.execve('/bin/container', ['container', 'nsinfo'])\n",
        files={"/bin/nsinfo": NSINFO.encode()},
    )
    assert out(r) == ["pid 1 ppid 0 host container procs ['1']", "links ['lo']"]
    assert route_of(r.trace, "clone")[6] == ("namespaces", "copy_namespaces")


async def test_container_runs_sh_reading_stdin(run):
    r = await run(
        "async def main(sys, argv):\n    await sys.execve('/bin/container', ['container'])\n",
        files={"/bin/nsinfo": NSINFO.encode()},
        stdin=b"nsinfo\n",
    )
    assert out(r) == ["pid 2 ppid 1 host container procs ['1', '2']", "links ['lo']"]


async def test_mount_on_proc_stacks_and_inside_proc_is_eacces(run):
    lines = await run_ns(
        run,
        """
async def main(sys, argv):
    await sys.unshare(CLONE_NEWNS)
    await sys.mount("proc", "/proc", "proc")
    await say(sys, f"inside: {await errno_of(sys.mount('none', '/proc/self', 'tmpfs'))}")
    await say(sys, f"stacked: {await sys.readlink('/proc/self/ns/uts')}")
    await sys.umount("/proc")
    await say(sys, f"unstacked: {await sys.readlink('/proc/self/ns/uts')}")
""",
    )
    assert lines == ["inside: EACCES", "stacked: uts:[4026531838]", "unstacked: uts:[4026531838]"]


async def test_container_runs_sh_as_pid_1_and_ps_sees_only_the_container():
    r = await ukernel.run_async("container", ["container", "sh", "-c", "hostname; ps; hostname inner; hostname"])
    assert r.problems == []
    assert r.stdout.decode().splitlines() == [
        "container",
        "  PID  PPID STAT CMD",
        "    1     0 S    sh -c hostname; ps; hostname inner; hostname",
        "    3     1 R    ps",
        "inner",
    ]
    outside = await ukernel.run_async("hostname", ["hostname"])
    assert outside.stdout == b"ukernel\n"
