"""A process's whole life: the shell loop, fork limits, orphans, vfork, threads, futexes, exec."""

from __future__ import annotations

import textwrap

import pytest

import ukernel
from ukernel import abi


def syscalls(trace: list[dict], pid: int | None = None, kind: str = "syscall_exit") -> list[dict]:
    return [e for e in trace if e["type"] == kind and (pid is None or e["pid"] == pid)]


# --- sh: read, fork, exec, wait ------------------------------------------------------------
async def test_sh_runs_builtins_and_programs():
    r = await ukernel.run_async("sh", ["sh"], stdin=b"hello\npwd\ncd /tmp\npwd\nnosuch\nexit 3\n")
    assert r.problems == []
    assert r.stdout == (b"hello from pid 3 (parent 2)\n/\n/tmp\nsh: nosuch: No such file or directory\n")
    assert r.exit_code == 3
    # the failed command was a forked child (pid 4) that exited 127
    waits = [e["result"][:2] for e in syscalls(r.trace, 2) if e["op"] == "wait4"]
    assert waits == [[3, 0], [4, abi.W_EXITCODE(127)]]


async def test_sh_exits_with_the_last_foreground_status_at_eof():
    r = await ukernel.run_async("sh", ["sh"], stdin=b"pwd\nnosuch\n")
    assert (r.stdout, r.exit_code, r.problems) == (b"/\nsh: nosuch: No such file or directory\n", 127, [])


async def test_sh_background_job_is_reported_and_reaped():
    slow = b"""
async def main(sys, argv):
    for _ in range(40):
        await sys.sched_yield()
    await sys.write(1, f"slow {await sys.getpid()}: finished\\n".encode())
    return 7
"""
    r = await ukernel.run_async("sh", ["sh"], stdin=b"slow &\nhello\n", files={"/bin/slow": slow})
    assert r.problems == []
    assert r.stdout.decode().splitlines() == [
        "[3]",
        "hello from pid 4 (parent 2)",
        "slow 3: finished",
        "[3] done 7",
    ]
    assert r.exit_code == 0  # hello's status: a background job's does not count


async def test_sh_reaps_finished_jobs_before_the_next_prompt():
    r = await ukernel.run_async("sh", ["sh", "-i"], stdin=b"hello &\necho x\ncd /nope\n")
    assert r.problems == []
    assert r.stdout == (  # -i: job control, bash's words; hello ends while echo runs
        b"$ [1] 3\n$ hello from pid 3 (parent 2)\nx\n[1]+  Done                    hello\n"
        b"$ sh: cd: /nope: No such file or directory\n$ "
    )
    assert r.exit_code == 1  # the failed cd


# --- forktest: RLIMIT_NPROC, EAGAIN, every child reaped once ------------------------------
@pytest.mark.parametrize(("limit", "forks"), [(20, 18), (5, 3)])
async def test_forktest_forks_until_eagain_and_reaps_them_all(limit, forks):
    r = await ukernel.run_async("forktest", ["forktest", str(limit)])
    assert r.problems == []
    # the limit counts every task: init and forktest itself are two of them
    assert r.stdout == f"forktest: {forks} forks, {forks} reaped, ok\n".encode()
    assert r.exit_code == 0
    clones = [e for e in syscalls(r.trace, 2) if e["op"] == "clone"]
    assert [e.get("errno") for e in clones] == [None] * forks + ["EAGAIN"]
    waits = [e for e in syscalls(r.trace, 2) if e["op"] == "wait4"]
    assert sorted(e["result"][0] for e in waits[:-1]) == [e["result"] for e in clones[:-1]]
    assert waits[-1]["errno"] == "ECHILD"


# --- orphans: reparented to init ------------------------------------------------------------
async def test_orphans_are_adopted_and_reaped_by_init():
    r = await ukernel.run_async("orphans")
    assert r.problems == []
    assert (r.exit_code, r.stdout.decode().splitlines()) == (
        0,
        ["orphan 0: pid 3, parent 1", "orphan 1: pid 4, parent 1", "orphan 2: pid 5, parent 1"],
    )
    reaped_by_init = [e["result"][0] for e in syscalls(r.trace, 1) if e["op"] == "wait4" and "result" in e]
    assert reaped_by_init == [2, 3, 4, 5]  # the parent first: it exited before its children


# --- vfork: the parent sleeps until the child execs -----------------------------------------
async def test_vforkexec_parent_runs_only_after_the_child_execed():
    r = await ukernel.run_async("vforkexec")
    assert r.problems == []
    assert r.stdout.decode().splitlines() == [
        "hello from pid 3 (parent 2)",
        "vforkexec 2: resumed after child 3 exec'd",
        "vforkexec 2: child 3 exited 0",
    ]


async def test_vfork_parent_makes_no_syscall_until_the_child_execs():
    r = await ukernel.run_async("vforkexec")
    assert r.problems == []
    events = [e for e in r.trace if e["type"] in ("syscall_enter", "syscall_exit")]
    start = events.index(next(e for e in syscalls(r.trace, 2, "syscall_enter") if e["op"] == "vfork"))
    end = events.index(next(e for e in syscalls(r.trace, 3) if e["op"] == "execve"))
    assert start < end
    between = [(e["type"], e["op"]) for e in events[start + 1 : end] if e["pid"] == 2]
    assert between == []
    # and the child ran no syscall of its own before the exec: the rest of its way there was replay
    assert [e["op"] for e in events[start:end] if e["pid"] == 3] == ["execve"]


# --- clone(fn) without CLONE_VM: a copy of the program's state ------------------------------
COPIES = b"""
from ukernel.abi import SIGCHLD

state = {"n": 0}
held = []


def child(sys, arg):
    state["n"] += 100  # the child's own copy
    return state["n"] + arg


async def main(sys, argv):
    codes = []
    for i in range(3):
        state["n"] = i
        pid = await sys.clone(SIGCHLD, child, i)
        codes.append((await sys.waitpid(pid, 0))[1] >> 8)
    held.append(x for x in [])  # a generator: no copy can hold it
    try:
        await sys.clone(SIGCHLD, child, 0)
    except OSError as exc:
        await sys.write(1, f"{exc.errno} ".encode())
    held.clear()
    state["n"] = 5
    pid = await sys.clone(SIGCHLD, child, 1)
    codes.append((await sys.waitpid(pid, 0))[1] >> 8)
    await sys.write(1, f"{codes} {state['n']}".encode())
    return 0
"""


async def test_each_clone_fn_child_copies_the_state_as_it_is_at_its_clone():
    """The copies of one namespace share a pickler (user/space.py): each child still gets
    the state of its own clone, its writes stay its own, and a copy refused half-way
    (EINVAL) leaves the next one whole."""
    r = await ukernel.run_async("/bin/copies", ["copies"], files={"/bin/copies": COPIES})
    assert (r.stdout, r.exit_code, r.problems) == (b"22 [100, 102, 104, 106] 5", 0, [])


# --- pthreads: clone, futex, join -------------------------------------------------------------
async def test_pthreads_demo_counts_every_increment():
    r = await ukernel.run_async("pthreads", ["pthreads", "4", "30"])
    assert (r.exit_code, r.stdout, r.problems) == (0, b"4 threads x 30 rounds: counter = 120 (expected 120)\n", [])


async def test_pthread_join_sleeps_until_the_tid_word_clears(run):
    r = await run(
        """
        from userland.lib.pthread import pthread_create, pthread_join


        async def worker(sys, arg):
            for _ in range(20):
                await sys.sched_yield()
            await sys.write(1, b"thread: exiting\\n")
            return 0


        class Watch:
            # sys, but pthread_join's munmap of the tid word first records what the word holds
            def __init__(self, sys):
                self.sys, self.words = sys, []

            def __getattr__(self, name):
                return getattr(self.sys, name)

            async def munmap(self, addr, length):
                self.words.append(int.from_bytes(await self.sys.peek(addr, 4), "little"))
                await self.sys.munmap(addr, length)


        async def main(sys, argv):
            thread = await pthread_create(sys, worker)
            watch = Watch(sys)
            await pthread_join(watch, thread)
            await sys.write(1, f"main: joined {thread.tid}, word {watch.words}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"thread: exiting\nmain: joined 3, word [0]\n"
    joiner = [e for e in syscalls(r.trace, 2) if e["op"] in ("peek", "futex")]
    # one look at the word (the tid), one FUTEX_WAIT that is woken (0, not EAGAIN), one look (0)
    assert [(e["op"], e["result"]) for e in joiner[-4:-1]] == [
        ("peek", b"\x03\x00\x00\x00"),
        ("futex", 0),
        ("peek", b"\x00\x00\x00\x00"),
    ]
    wait = next(e for e in syscalls(r.trace, 2, "syscall_enter") if e["op"] == "futex")
    assert wait["args"]["op"] == abi.FUTEX_WAIT and wait["args"]["val"] == 3
    # the wake is the thread's exit: CLONE_CHILD_CLEARTID's mm_release, then the joiner returns
    cleared = next(e for e in r.trace if e["type"] == "request" and e["op"] == "mm_release" and e["pid"] == 3)
    woken = next(e for e in syscalls(r.trace, 2) if e["op"] == "futex")
    last_of_thread = syscalls(r.trace, 3)[-1]
    assert last_of_thread["seq"] < cleared["seq"] < woken["seq"]


async def test_futex_wait_is_eagain_when_the_word_differs_and_wake_counts_waiters(run):
    r = await run(
        """
        from ukernel.abi import EAGAIN, FUTEX_WAIT, FUTEX_WAKE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
        from userland.lib.pthread import pthread_create, pthread_join


        async def main(sys, argv):
            word = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            await sys.poke(word, (5).to_bytes(4, "little"))
            try:
                await sys.futex(word, FUTEX_WAIT, 6)
            except OSError as exc:
                await sys.write(1, f"wait on 5 expecting 6: errno {exc.errno}\\n".encode())
            await sys.write(1, f"wake with no waiter: {await sys.futex(word, FUTEX_WAKE, 1)}\\n".encode())

            async def waiter(sys, i):
                await sys.futex(word, FUTEX_WAIT, 5)
                await sys.write(1, f"waiter {i} woken\\n".encode())
                return 0

            threads = [await pthread_create(sys, waiter, i) for i in range(3)]
            for _ in range(30):  # let all three reach FUTEX_WAIT
                await sys.sched_yield()
            await sys.write(1, f"wake 1: {await sys.futex(word, FUTEX_WAKE, 1)}\\n".encode())
            await sys.write(1, f"wake 10: {await sys.futex(word, FUTEX_WAKE, 10)}\\n".encode())
            await sys.write(1, f"wake 10 again: {await sys.futex(word, FUTEX_WAKE, 10)}\\n".encode())
            for thread in threads:
                await pthread_join(sys, thread)
            return 0
        """
    )
    lines = r.stdout.decode().splitlines()
    assert lines[:5] == [
        f"wait on 5 expecting 6: errno {abi.EAGAIN}",
        "wake with no waiter: 0",
        "wake 1: 1",
        "wake 10: 2",
        "wake 10 again: 0",
    ]
    assert sorted(lines[5:]) == ["waiter 0 woken", "waiter 1 woken", "waiter 2 woken"]
    assert r.exit_code == 0


async def test_set_tid_address_returns_the_tid_and_the_word_clears_at_exit(run):
    r = await run(
        """
        from ukernel.abi import EAGAIN, FUTEX_WAIT, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
        from userland.lib.pthread import pthread_create


        async def main(sys, argv):
            page = await sys.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            mine = await sys.set_tid_address(page)
            await sys.write(1, f"main: set_tid_address = {mine}, gettid = {await sys.gettid()}\\n".encode())
            await sys.poke(page + 4, b"\\xff\\xff\\xff\\xff")

            async def worker(sys, arg):
                tid = await sys.set_tid_address(page + 4)  # instead of pthread's tid word
                await sys.write(1, f"thread: set_tid_address = {tid}, gettid = {await sys.gettid()}\\n".encode())
                return 0

            await pthread_create(sys, worker)  # not pthread_join: its word is no longer cleared
            while (word := int.from_bytes(await sys.peek(page + 4, 4), "little")) != 0:
                try:
                    await sys.futex(page + 4, FUTEX_WAIT, word)
                except OSError as exc:
                    if exc.errno != EAGAIN:
                        raise
            await sys.write(1, b"main: the thread's exit cleared the new word\\n")
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        "main: set_tid_address = 2, gettid = 2",
        "thread: set_tid_address = 3, gettid = 3",
        "main: the thread's exit cleared the new word",
    ]


# --- exit and exit_group in threads ---------------------------------------------------------------
THREAD_ENDS = """
from userland.lib.pthread import pthread_create, pthread_join


async def worker(sys, arg):
    await sys.write(1, b"thread: running\\n")
    {how}
    await sys.write(1, b"thread: still here\\n")
    return 0


async def main(sys, argv):
    thread = await pthread_create(sys, worker)
    await pthread_join(sys, thread)
    await sys.write(1, b"main: joined\\n")
    return 9
"""


@pytest.mark.parametrize(
    ("how", "code", "lines"),
    [
        ("await sys.exit_group(5)", 5, ["thread: running"]),
        ("raise ValueError('in a thread')", 1, ["thread: running", "ValueError: in a thread"]),
        ("await sys.exit(0)", 9, ["thread: running", "main: joined"]),
        ("return 4", 9, ["thread: running", "main: joined"]),
    ],
    ids=["exit_group", "uncaught", "exit", "return"],
)
async def test_a_thread_ends_the_process_only_with_exit_group(run, how, code, lines):
    r = await run(THREAD_ENDS.replace("{how}", how))
    out = r.stdout.decode().splitlines()
    assert [line for line in out if not line.startswith(("Traceback", "  "))] == lines
    assert r.exit_code == code


async def test_leader_exit_waits_for_the_last_thread(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD, WEXITSTATUS
        from userland.lib.pthread import pthread_create


        async def worker(sys, arg):
            for _ in range(30):
                await sys.sched_yield()
            await sys.write(1, f"thread {await sys.gettid()}: last one out\\n".encode())
            return 0


        async def child(sys, arg):
            await pthread_create(sys, worker)
            await sys.write(1, b"leader: exit(4)\\n")
            await sys.exit(4)


        async def main(sys, argv):
            pid = await sys.clone(SIGCHLD, child)
            got, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"parent: {got} exited {WEXITSTATUS(status)}\\n".encode())
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        "leader: exit(4)",
        "thread 4: last one out",
        "parent: 3 exited 4",  # the leader's code, reported once the group is empty
    ]
    assert r.exit_code == 0


# --- execve: close-on-exec, exit_signal ----------------------------------------------------------
async def test_execve_closes_only_close_on_exec_fds(run):
    p = textwrap.dedent(
        """
        async def main(sys, argv):
            for fd in map(int, argv[1:]):
                try:
                    await sys.write(fd, b"x")
                    await sys.write(1, f"fd {fd}: written\\n".encode())
                except OSError as exc:
                    await sys.write(1, f"fd {fd}: errno {exc.errno}\\n".encode())
            fd = await sys.open("/tmp/b")
            await sys.write(1, b"/tmp/b holds " + await sys.read(fd, 10) + b"\\n")
            return 0
        """
    ).encode()
    r = await run(
        """
        from ukernel.abi import O_CLOEXEC, O_CREAT, O_WRONLY


        async def main(sys, argv):
            a = await sys.open("/tmp/a", O_CREAT | O_WRONLY | O_CLOEXEC)
            b = await sys.open("/tmp/b", O_CREAT | O_WRONLY)
            await sys.execve("/bin/p", ["p", str(a), str(b)])
        """,
        files={"/bin/p": p},
    )
    assert r.stdout.decode().splitlines() == [f"fd 3: errno {abi.EBADF}", "fd 4: written", "/tmp/b holds x"]
    assert r.exit_code == 0


async def test_execve_resets_the_exit_signal_to_sigchld(run):
    r = await run(
        """
        from ukernel import abi


        async def plain(sys, arg):
            return 3


        async def execs(sys, arg):
            await sys.execve("/bin/hello", ["hello"])


        async def main(sys, argv):
            quiet = await sys.clone(0, plain)  # exit_signal 0: only __WCLONE waits for it
            try:
                await sys.waitpid(quiet, 0)
            except OSError as exc:
                await sys.write(1, f"no exec, plain wait: errno {exc.errno}\\n".encode())
            got, status = await sys.waitpid(quiet, getattr(abi, "__WCLONE"))
            await sys.write(1, f"no exec, __WCLONE: {got} exited {abi.WEXITSTATUS(status)}\\n".encode())
            pid = await sys.clone(abi.CLONE_VM | abi.CLONE_VFORK, execs)  # back once it has exec'd
            got, status = await sys.waitpid(pid, 0)  # exec made its exit signal SIGCHLD
            await sys.write(1, f"after exec, plain wait: {got} exited {abi.WEXITSTATUS(status)}\\n".encode())
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        f"no exec, plain wait: errno {abi.ECHILD}",
        "no exec, __WCLONE: 3 exited 3",
        "hello from pid 4 (parent 2)",
        "after exec, plain wait: 4 exited 0",
    ]


async def test_a_threads_child_stays_in_the_process_after_the_thread_exits(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD, WEXITSTATUS
        from userland.lib.pthread import pthread_create, pthread_join


        async def kid(sys, arg):
            for _ in range(40):
                await sys.sched_yield()
            await sys.write(1, f"kid {await sys.getpid()}: parent {await sys.getppid()}\\n".encode())
            return 5


        async def worker(sys, arg):
            pid = await sys.clone(SIGCHLD, kid)
            await sys.write(1, f"thread {await sys.gettid()}: made {pid}, exiting\\n".encode())
            return 0


        async def main(sys, argv):
            await pthread_join(sys, await pthread_create(sys, worker))
            got, status = await sys.waitpid(-1, 0)  # any thread may wait for any thread's children
            await sys.write(1, f"main: reaped {got}, status {WEXITSTATUS(status)}\\n".encode())
            return 0
        """
    )
    assert r.stdout.decode().splitlines() == [
        "thread 3: made 4, exiting",
        "kid 4: parent 2",
        "main: reaped 4, status 5",
    ]


async def test_execve_from_a_thread_takes_over_the_leaders_pid(run):
    who = b"""
async def main(sys, argv):
    await sys.write(1, f"who: pid {await sys.getpid()} tid {await sys.gettid()} ppid {await sys.getppid()}\\n".encode())
    return 6
"""
    r = await run(
        """
        from userland.lib.pthread import pthread_create, pthread_join


        async def worker(sys, arg):
            await sys.write(1, f"thread {await sys.gettid()} of {await sys.getpid()}: execve\\n".encode())
            await sys.execve("/bin/who", ["who"])


        async def sleeper(sys, arg):
            for _ in range(200):
                await sys.sched_yield()
            await sys.write(1, b"sleeper: never\\n")
            return 0


        async def main(sys, argv):
            await pthread_create(sys, sleeper)
            await pthread_join(sys, await pthread_create(sys, worker))
            await sys.write(1, b"main: never\\n")
            return 0
        """,
        files={"/bin/who": who},
    )
    assert r.stdout.decode().splitlines() == ["thread 4 of 2: execve", "who: pid 2 tid 2 ppid 1"]
    assert (r.exit_code, r.status) == (6, abi.W_EXITCODE(6))


#: execve from a thread while the leader sleeps in pthread_join; the new program reaps the child.
EXEC_WHILE_JOINING = """
from ukernel import abi
from userland.lib.pthread import pthread_create, pthread_join


async def child(sys, r):
    await sys.read(r, 1)  # "alive": until the new program writes
    return 3


async def worker(sys, arg):
    await sys.execve("/bin/reaper", ["reaper", *arg])


async def main(sys, argv):
    r, w = await sys.pipe()
    arg = []
    if argv[1] != "none":
        pid = await sys.clone(abi.SIGCHLD, child, r)
        if argv[1] == "zombie":
            await sys.write(w, b"x")
            await sys.waitid(abi.P_PID, pid, abi.WEXITED | abi.WNOWAIT)  # a zombie, not reaped
        arg = [str(pid), str(w)]
    await pthread_join(sys, await pthread_create(sys, worker, arg))
    await sys.write(1, b"main: never\\n")
    return 0
"""
REAPER = b"""
async def main(sys, argv):
    line = f"pid {await sys.getpid()} tid {await sys.gettid()}"
    if len(argv) > 1:
        await sys.write(int(argv[2]), b"x")
        got, status = await sys.waitpid(-1, 0)
        line += f": reaped {got == int(argv[1])} {status >> 8}"
    await sys.write(1, (line + "\\n").encode())
    return 6
"""


@pytest.mark.parametrize("cpus", [1, 2])
@pytest.mark.parametrize("kid", ["none", "alive", "zombie"])
async def test_execve_from_a_thread_ends_the_leaders_pthread_join(run, kid, cpus):
    """de_thread's SIGKILL must wake the leader's futex sleep (it hung: killed but never
    queued, while the thread yielded for ever), and the pid is taken only once the leader
    is through exit_notify (on 2 CPUs it was released twice: nr_threads -1)."""
    r = await run(EXEC_WHILE_JOINING, ["t", kid], files={"/bin/reaper": REAPER}, cpus=cpus)
    reaped = "" if kid == "none" else ": reaped True 3"
    assert r.stdout.decode() == f"pid 2 tid 2{reaped}\n"
    assert (r.exit_code, r.status) == (6, abi.W_EXITCODE(6))
