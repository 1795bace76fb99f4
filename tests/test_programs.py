"""The demo programs, the syscall surface's errors, and a kernel that keeps running."""

from __future__ import annotations

import pytest

import ukernel
from ukernel import abi


async def test_hello():
    r = await ukernel.run_async("hello")
    assert (r.exit_code, r.status, r.stdout, r.problems) == (0, 0, b"hello from pid 2 (parent 1)\n", [])


async def test_nginx_workers_exit_with_distinct_codes():
    r = await ukernel.run_async("userland/nginx.py", ["nginx", "4"])
    assert r.problems == []
    assert r.stdout.decode().splitlines() == [
        "master 2: starting 4 workers",
        "worker 0: pid 3, parent 2",
        "worker 1: pid 4, parent 2",
        "worker 2: pid 5, parent 2",
        "worker 3: pid 6, parent 2",
        "master 2: worker 0 exited 10, worker 1 exited 11, worker 2 exited 12, worker 3 exited 13",
    ]


async def test_threads_share_one_counter():
    r = await ukernel.run_async("threads", ["threads", "3"])
    assert r.problems == []
    lines = r.stdout.decode().splitlines()
    assert sorted(lines[:3]) == ["thread 0: tid 3, pid 2", "thread 1: tid 4, pid 2", "thread 2: tid 5, pid 2"]
    assert lines[3] == "main 2: 3 threads, counter = 9, finished [0, 1, 2]"


async def test_forkdemo_shows_who_sees_whose_writes():
    r = await ukernel.run_async("forkdemo")
    assert r.problems == []
    assert r.stdout.decode().splitlines() == [
        "fork child: box = fork child's, page = forkc",
        "after fork:  box = parent's, page = start",
        "after clone: box = clone child's, page = clone",
    ]


async def test_exit_status_encoding(run):
    r = await run("async def main(sys, argv):\n    return 300\n")
    assert (r.exit_code, r.status) == (300 & 0xFF, abi.W_EXITCODE(300))


async def test_uncaught_exception_goes_to_fd2_with_status_1(run):
    r = await run("async def main(sys, argv):\n    raise ValueError('boom')\n")
    assert r.exit_code == 1
    assert r.stdout.decode().endswith("ValueError: boom\n")
    assert 'File "/bin/t", line 2, in main' in r.stdout.decode()


async def test_segv_kills_with_signal_11(run):
    r = await run("async def main(sys, argv):\n    await sys.peek(16, 4)\n    return 0\n")
    assert r.exit_code is None
    assert abi.WIFSIGNALED(r.status) and abi.WTERMSIG(r.status) == abi.SIGSEGV


ERRNO_CASES = [
    ("await sys.close(99)", abi.EBADF),
    ("await sys.read(7, 10)", abi.EBADF),
    ("await sys.write(55, b'x')", abi.EBADF),
    ("await sys.waitpid(-1, 0)", abi.ECHILD),
    ("await sys.waitpid(12345, 0)", abi.ECHILD),
    ("await sys.waitpid(-1, 0x7)", abi.EINVAL),
    ("await sys.open('/no/such/file')", abi.ENOENT),
    ("await sys.execve('/no/such', ['x'])", abi.ENOENT),
    ("await sys.execve('/dev', ['x'])", abi.EACCES),
    ("await sys.execve('/etc/motd', ['x'])", abi.EACCES),
    ("await sys.execve('/bin/notaprogram', ['x'])", abi.ENOEXEC),
    ("await sys._call('no_such_syscall')", abi.ENOSYS),
    ("await sys.clone(abi.SIGCHLD, 42)", abi.EINVAL),
    ("await sys.clone('x')", abi.EINVAL),
    ("await sys.mmap(0, 0, abi.PROT_READ, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS)", abi.EINVAL),
    ("await sys.sethostname('x' * 65)", abi.EINVAL),
    ("await sys.prlimit(99)", abi.ENOSYS),
]


@pytest.mark.parametrize(("call", "err"), ERRNO_CASES, ids=[c for c, _ in ERRNO_CASES])
async def test_bad_input_gets_the_linux_errno_and_the_kernel_goes_on(run, call, err):
    r = await run(
        f"""
        from ukernel import abi

        async def main(sys, argv):
            try:
                {call}
            except OSError as exc:
                await sys.write(1, f"{{exc.errno}} {{exc.strerror}}\\n".encode())
            await sys.write(1, f"still here {{await sys.getpid()}}\\n".encode())
            return 0
        """,
        files={"/etc/motd": b"hi", "/bin/notaprogram": b"x = 1\n"},
    )
    first, second = r.stdout.decode().splitlines()
    assert first.split()[0] == str(err), first
    assert second == "still here 2"


async def test_console_read_comes_from_stdin(run):
    r = await run(
        """
        async def main(sys, argv):
            data = await sys.read(0, 100)
            await sys.write(1, data.upper())
            return 0
        """,
        stdin=b"echo me\n",
    )
    assert r.stdout == b"ECHO ME\n"


async def test_uname_and_hostname_per_uts_namespace(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWUTS, SIGCHLD

        async def child(sys, arg):
            await sys.sethostname("box")
            await sys.write(1, f"child: {(await sys.uname())['nodename']}\\n".encode())
            return 0

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWUTS | SIGCHLD, child)
            await sys.waitpid(pid, 0)
            await sys.write(1, f"parent: {(await sys.uname())['nodename']}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"child: box\nparent: ukernel\n"


async def test_pid_namespace_child_is_pid_1(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWPID, SIGCHLD

        async def child(sys, arg):
            await sys.write(1, f"inside: pid {await sys.getpid()} ppid {await sys.getppid()}\\n".encode())
            return 0

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, child)
            await sys.waitpid(pid, 0)
            await sys.write(1, f"outside: child was {pid}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"inside: pid 1 ppid 0\noutside: child was 3\n"


async def test_orphans_are_reaped_by_init(run):
    r = await run(
        """
        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                for _ in range(30):
                    await sys.sched_yield()
                await sys.write(1, f"orphan: parent is now {await sys.getppid()}\\n".encode())
                return 0
            return 0
        """
    )
    assert r.stdout == b"orphan: parent is now 1\n"


async def test_live_kernel_runs_programs_one_after_another():
    async with ukernel.boot() as kernel:
        assert await kernel.run("/bin/hello") == 0
        assert await kernel.run("/bin/nginx", ["nginx", "2"]) == 0
        assert await kernel.check_invariants() == []


@pytest.mark.parametrize("cpus", [1, 2, 3])
async def test_several_cpus_give_the_same_output(cpus):
    r = await ukernel.run_async("nginx", ["nginx", "3"], cpus=cpus)
    assert r.problems == []
    assert r.stdout.decode().splitlines()[-1] == "master 2: worker 0 exited 10, worker 1 exited 11, worker 2 exited 12"


async def test_preemption_interleaves_cpu_bound_tasks(run):
    r = await run(
        """
        async def main(sys, argv):
            pid = await sys.fork()
            me = "child" if pid == 0 else "parent"
            for i in range(25):
                await sys.getpid()
            await sys.write(1, f"{me} done\\n".encode())
            if pid:
                await sys.waitpid(pid, 0)
            return 0
        """
    )
    switches = [
        e for e in r.trace if e["type"] == "request" and e["op"] == "schedule" and e["args"]["state"] == "preempted"
    ]
    assert len(switches) >= 4
    assert sorted(r.stdout.decode().splitlines()) == ["child done", "parent done"]


@pytest.mark.parametrize(("program", "argv"), [("nginx", ["nginx", "4"]), ("pthreads", ["pthreads", "3", "10"])])
async def test_same_program_same_trace(program, argv):
    """One CPU: two runs give the same events in the same order (dur_us is wall-clock, left out)."""

    def events(result):
        return [{k: v for k, v in e.items() if k != "dur_us"} for e in result.trace]

    first = await ukernel.run_async(program, argv)
    second = await ukernel.run_async(program, argv)
    assert events(first) == events(second)
