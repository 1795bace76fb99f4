"""Signals through real programs: kill, handlers, masks, SIGCHLD, stop and continue."""

from __future__ import annotations

from ukernel import abi


async def test_kill_terminates_with_the_signal_status(run):
    r = await run(
        """
        from ukernel.abi import SIGTERM, WIFSIGNALED, WTERMSIG

        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                while True:
                    await sys.sched_yield()
            await sys.kill(pid, SIGTERM)
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"{WIFSIGNALED(status)} {WTERMSIG(status)}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"True 15\n"


async def test_handler_runs_before_the_syscall_returns(run):
    r = await run(
        """
        from ukernel.abi import SIGUSR1, SIG_DFL

        got = []

        async def on_usr1(sys, sig):
            got.append(sig)
            await sys.write(1, b"handler\\n")

        async def main(sys, argv):
            old = await sys.sigaction(SIGUSR1, on_usr1)
            assert old == (SIG_DFL, 0)
            assert (await sys.sigaction(SIGUSR1))[0] is on_usr1
            await sys.kill(await sys.getpid(), SIGUSR1)
            await sys.write(1, f"after kill: {got}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"handler\nafter kill: [10]\n"


async def test_blocked_signal_waits_for_unblock(run):
    r = await run(
        """
        from ukernel.abi import SIG_BLOCK, SIG_UNBLOCK, SIGUSR1

        async def main(sys, argv):
            seen = []
            await sys.sigaction(SIGUSR1, lambda sys, sig: seen.append(sig))
            await sys.sigprocmask(SIG_BLOCK, {SIGUSR1})
            await sys.kill(0, SIGUSR1)
            await sys.write(1, f"blocked: {seen}\\n".encode())
            old = await sys.sigprocmask(SIG_UNBLOCK, {SIGUSR1})
            await sys.write(1, f"unblocked: {seen} old={sorted(old)}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"blocked: []\nunblocked: [10] old=[10]\n"


async def test_sigkill_and_sigstop_cannot_be_caught(run):
    r = await run(
        """
        from ukernel.abi import SIGKILL, SIGSTOP, SIG_IGN

        async def main(sys, argv):
            for sig in (SIGKILL, SIGSTOP):
                try:
                    await sys.sigaction(sig, SIG_IGN)
                except OSError as exc:
                    await sys.write(1, f"{exc.errno}\\n".encode())
            for bad in ((await sys.getpid(), 99), (99999, 0)):
                try:
                    await sys.kill(*bad)
                except OSError as exc:
                    await sys.write(1, f"{exc.errno}\\n".encode())
            return 0
        """
    )
    assert r.stdout.decode().split() == [str(abi.EINVAL), str(abi.EINVAL), str(abi.EINVAL), str(abi.ESRCH)]


async def test_sigchld_reaches_the_parent_and_ignoring_it_autoreaps(run):
    r = await run(
        """
        from ukernel.abi import SIGCHLD, SIG_IGN, ECHILD

        async def main(sys, argv):
            got = []
            await sys.sigaction(SIGCHLD, lambda sys, sig: got.append(sig))
            pid = await sys.fork()
            if pid == 0:
                return 0
            await sys.waitpid(pid, 0)
            await sys.write(1, f"sigchld: {got}\\n".encode())
            await sys.sigaction(SIGCHLD, SIG_IGN)
            pid = await sys.fork()
            if pid == 0:
                return 0
            try:
                await sys.waitpid(pid, 0)
            except OSError as exc:
                await sys.write(1, f"autoreaped: {exc.errno == ECHILD}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"sigchld: [17]\nautoreaped: True\n"


async def test_sleeping_wait_is_interrupted_unless_sa_restart(run):
    source = """
        from ukernel.abi import SIGUSR1, SA_RESTART

        async def main(sys, argv):
            flags = int(argv[1])
            await sys.sigaction(SIGUSR1, lambda sys, sig: None, flags)
            parent = await sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                await sys.kill(parent, SIGUSR1)
                for _ in range(5):
                    await sys.sched_yield()
                return 7
            try:
                _, status = await sys.waitpid(pid, 0)
                await sys.write(1, f"restarted, child {status >> 8}\\n".encode())
            except OSError as exc:
                await sys.write(1, f"errno {exc.errno}\\n".encode())
                await sys.waitpid(pid, 0)
            return 0
        """
    plain = await run(source, ["t", "0"])
    restart = await run(source, ["t", str(abi.SA_RESTART)])
    assert plain.stdout == f"errno {abi.EINTR}\n".encode()
    assert restart.stdout == b"restarted, child 7\n"


async def test_handler_shared_under_clone_sighand(run):
    r = await run(
        """
        from ukernel.abi import SIGUSR1, PTHREAD_CLONE_FLAGS
        from userland.lib.pthread import pthread_create, pthread_join

        hits = []

        async def installer(sys, arg):
            await sys.sigaction(SIGUSR1, lambda sys, sig: hits.append(sig))
            return 0

        async def main(sys, argv):
            await pthread_join(sys, await pthread_create(sys, installer))
            await sys.kill(await sys.getpid(), SIGUSR1)   # the other sibling is signalled
            await sys.write(1, f"{hits}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"[10]\n"


async def test_stop_and_continue_seen_by_wait(run):
    r = await run(
        """
        from ukernel.abi import SIGSTOP, SIGCONT, WUNTRACED, WCONTINUED, WIFSTOPPED, WSTOPSIG, WIFCONTINUED

        async def main(sys, argv):
            pid = await sys.fork()
            if pid == 0:
                for _ in range(40):
                    await sys.sched_yield()
                return 3
            await sys.kill(pid, SIGSTOP)
            _, status = await sys.waitpid(pid, WUNTRACED)
            await sys.write(1, f"stopped {WIFSTOPPED(status)} {WSTOPSIG(status)}\\n".encode())
            await sys.kill(pid, SIGCONT)
            _, status = await sys.waitpid(pid, WCONTINUED)
            await sys.write(1, f"continued {WIFCONTINUED(status)}\\n".encode())
            _, status = await sys.waitpid(pid, 0)
            await sys.write(1, f"exited {status >> 8}\\n".encode())
            return 0
        """
    )
    assert r.stdout == b"stopped True 19\ncontinued True\nexited 3\n"


async def test_pause_returns_eintr_after_a_handler(run):
    r = await run(
        """
        from ukernel.abi import SIGUSR2

        async def main(sys, argv):
            await sys.sigaction(SIGUSR2, lambda sys, sig: None)
            parent = await sys.getpid()
            pid = await sys.fork()
            if pid == 0:
                await sys.kill(parent, SIGUSR2)
                return 0
            try:
                await sys.pause()
            except OSError as exc:
                await sys.write(1, f"pause: {exc.errno}\\n".encode())
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert r.stdout == f"pause: {abi.EINTR}\n".encode()


async def test_init_ignores_signals_it_has_no_handler_for(run):
    r = await run(
        """
        from ukernel.abi import SIGTERM, CLONE_NEWPID, SIGCHLD

        async def container_init(sys, arg):
            await sys.kill(1, SIGTERM)         # pid 1 of its own namespace: unkillable
            await sys.write(1, b"init survived\\n")
            return 0

        async def main(sys, argv):
            pid = await sys.clone(CLONE_NEWPID | SIGCHLD, container_init)
            await sys.waitpid(pid, 0)
            return 0
        """
    )
    assert r.stdout == b"init survived\n"


async def test_execve_resets_caught_handlers(run):
    r = await run(
        """
        from ukernel.abi import SIGUSR1, SIGUSR2, SIG_IGN

        async def main(sys, argv):
            await sys.sigaction(SIGUSR1, lambda sys, sig: None)
            await sys.sigaction(SIGUSR2, SIG_IGN)
            await sys.execve("/bin/p", ["p"])
        """,
        files={
            "/bin/p": b"from ukernel.abi import SIGUSR1, SIGUSR2\n"
            b"async def main(sys, argv):\n"
            b"    await sys.write(1, repr([await sys.sigaction(SIGUSR1), await sys.sigaction(SIGUSR2)]).encode())\n"
        },
    )
    assert r.stdout == b"[('SIG_DFL', 0), ('SIG_IGN', 0)]"
