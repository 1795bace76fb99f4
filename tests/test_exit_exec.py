"""do_exit and execve as routes, zombies, reapers and subreapers."""

from __future__ import annotations

from ukernel import abi
from ukernel.testing import route_of


def exit_route(trace: list[dict], pid: int) -> list[tuple[str, str]]:
    """The messages of pid's do_exit: those sent with syscall 'exit' by that pid."""
    return [
        (e["dst"], e["op"])
        for e in trace
        if e["type"] == "request" and e.get("syscall") == "exit" and e.get("pid") == pid
    ]


async def test_golden_exit_route(run):
    r = await run(
        """
        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                return 0
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert exit_route(r.trace, 3) == [
        ("mm", "mmput"),
        ("vfs", "put_files"),
        ("vfs", "put_fs"),
        ("signals", "put_sighand"),
        ("signals", "put_signal"),
        ("namespaces", "put_nsproxy"),
        ("signals", "sigaction"),  # do_notify_parent looks at the parent's SIGCHLD action
        ("signals", "send_signal"),  # SIGCHLD
        ("sched", "schedule"),  # do_task_dead
    ]


async def test_golden_execve_route(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.execve("/bin/hello", ["hello"])
        """
    )
    assert route_of(r.trace, "execve", pid=2) == [
        ("vfs", "kernel_read_file"),
        ("mm", "mm_init"),
        ("mm", "mmput"),
        ("vfs", "exec_files"),
        ("signals", "flush_signal_handlers"),
    ]
    assert r.stdout == b"hello from pid 2 (parent 1)\n"


async def test_zombie_is_visible_until_reaped(run):
    r = await run(
        """
        from ukernel.abi import WNOHANG

        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                return 0
            while (await sys.waitpid(pid, WNOHANG))[0] == 0:   # never reaps: WNOHANG with a live child
                await sys.sched_yield()
                break
            for _ in range(10):
                await sys.sched_yield()
            await sys.kill(pid, 0)                  # the zombie still has its pid
            await sys.write(1, b"zombie there\\n")
            await sys.waitpid(pid, 0)
            try:
                await sys.kill(pid, 0)
            except OSError as exc:
                await sys.write(1, f"reaped: {exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout == f"zombie there\nreaped: {abi.ESRCH}\n".encode()


async def test_wnohang_returns_zero_with_running_children(run):
    r = await run(
        """
        from ukernel.abi import WNOHANG

        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                for _ in range(20):
                    await sys.sched_yield()
                return 0
            first = await sys.waitpid(pid, WNOHANG)
            await sys.waitpid(pid, 0)
            await sys.write(1, repr(first).encode())
            return 0
        """
    )
    assert r.stdout == b"(0, 0)"


async def test_wall_needed_for_a_child_with_exit_signal_zero(run):
    r = await run(
        """
        from ukernel import abi

        async def main(sys, argv):
            pid = await sys.clone(0, lambda sys, arg: 4)
            try:
                await sys.waitpid(pid, 0)
            except OSError as exc:
                await sys.write(1, f"plain wait: {exc.errno}\\n".encode())
            got, status = await sys.waitpid(pid, abi.__WALL)
            await sys.write(1, f"__WALL: {got == pid} {status >> 8}\\n".encode())
            return 0
        """
    )
    assert r.stdout == f"plain wait: {abi.ECHILD}\n__WALL: True 4\n".encode()


async def test_orphan_in_a_pid_namespace_goes_to_its_init(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWPID, SIGCHLD, ECHILD

        async def container_init(sys, arg):
            pid = await sys.fork()
            if pid == 0:                      # the middle process forks a grandchild, then exits
                g = await sys.fork()
                if g == 0:
                    for _ in range(20):
                        await sys.sched_yield()
                    await sys.write(1, f"grandchild {await sys.getpid()} ppid {await sys.getppid()}\\n".encode())
                    return 0
                return 0
            reaped = []
            while True:
                try:
                    reaped.append((await sys.waitpid(-1, 0))[0])
                except OSError:
                    break
            await sys.write(1, f"init reaped {sorted(reaped)}\\n".encode())
            return 0

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, container_init)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert r.stdout == b"grandchild 3 ppid 1\ninit reaped [2, 3]\n"


async def test_subreaper_adopts_orphans(run):
    r = await run(
        """
        async def main(sys, argv):
            await sys.set_child_subreaper(True)
            me = await sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                g = await sys.fork()
                if g == 0:
                    for _ in range(20):
                        await sys.sched_yield()
                    await sys.write(1, f"ppid is subreaper: {await sys.getppid() == me}\\n".encode())
                    return 5
                return 0
            codes = sorted([(await sys.waitpid(-1, 0))[1] >> 8 for _ in range(2)])
            await sys.write(1, f"reaped {codes}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"ppid is subreaper: True\nreaped [0, 5]\n"


async def test_vfork_parent_waits_for_exec(run):
    r = await run(
        """
        async def main(sys, argv):
            pid = await sys.vfork()
            if pid == 0:
                await sys.execve("/bin/hello", ["hello"])
            await sys.write(1, b"parent resumes\\n")
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert r.stdout == b"hello from pid 3 (parent 2)\nparent resumes\n"
    events = [(e["type"], e["op"], e["pid"]) for e in r.trace if e["type"] in ("syscall_enter", "syscall_exit")]
    vfork_exit = events.index(("syscall_exit", "vfork", 2))
    exec_exit = events.index(("syscall_exit", "execve", 3))
    assert exec_exit < vfork_exit  # the parent's vfork returns only after the child's exec


async def test_when_a_namespace_init_dies_the_namespace_dies(run):
    r = await run(
        """
        from ukernel.abi import CLONE_NEWPID, SIGCHLD, WTERMSIG

        async def container_init(sys, arg):
            pid = await sys.fork()
            if pid == 0:
                for _ in range(100):
                    await sys.sched_yield()
                await sys.write(1, b"never printed\\n")
                return 0
            await sys.sched_yield()
            return 3                         # init leaves; its child is killed with it

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, container_init)
            _, status = await sys.waitpid(pid, 0)
            for _ in range(50):
                await sys.sched_yield()
            await sys.write(1, f"init exited {status >> 8}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"init exited 3\n"
    steps = [e["op"] for e in r.trace if e["type"] == "request" and e.get("step") == "zap_pid_ns_processes"]
    assert steps == ["disable_pid_allocation"]
