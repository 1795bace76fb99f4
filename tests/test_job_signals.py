"""Job-control signals as Linux does them, each rule run twice: a host Python program on the
real kernel, and its ukernel twin line for line, and both must print the same events.
Rules a host program cannot show cite POSIX (IEEE Std 1003.1-2017) in their docstring."""

from __future__ import annotations

import subprocess
import sys as host_sys
import textwrap

from ukernel import abi

HOST = """
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)

def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(") ")[2][0]

def in_read(pid):  # asleep in read(2), syscall 0 on x86-64: not on its way there
    while state(pid) != "S" or not open(f"/proc/{pid}/syscall").read().startswith("0 "):
        time.sleep(0.001)

def delivered(pid):  # no signal pending any more, and asleep in read(2) again
    while any(line.split()[1] != "0" * 16 for line in open(f"/proc/{pid}/status") if line.endswith("Pnd:")):
        time.sleep(0.001)
    in_read(pid)

def say(*words):
    print(*words, flush=True)

def report(fd):
    out = b""
    while b";" not in out:
        out += os.read(fd, 100)
    return out.decode().strip(".")
"""

TWIN = """
from ukernel import abi as os
import signal

async def state(sys, pid):
    fd = await sys.open(f"/proc/{pid}/stat")
    data = await sys.read(fd, 4096)
    await sys.close(fd)
    return data.decode().rpartition(") ")[2][0]

async def in_read(sys, pid):  # ukernel runs one CPU here: asleep is asleep in the read
    while await state(sys, pid) != "S":
        await sys.sched_yield()

async def delivered(sys, pid):  # as the host's: no signal pending, asleep in the read again
    while True:
        fd = await sys.open(f"/proc/{pid}/status")
        status = (await sys.read(fd, 4096)).decode()
        await sys.close(fd)
        pending = [line.split()[1] for line in status.splitlines() if line.split(":")[0].endswith("Pnd")]
        if all(int(mask, 16) == 0 for mask in pending):
            return await in_read(sys, pid)
        await sys.sched_yield()

async def say(sys, *words):
    await sys.write(1, " ".join(map(str, words)) + "\\n")

async def report(sys, fd):
    out = b""
    while b";" not in out:
        out += await sys.read(fd, 100)
    return out.decode().strip(".")
"""


def on_host(source: str) -> list[str]:
    """The program run by the host's Python on the real kernel: its lines."""
    done = subprocess.run(
        [host_sys.executable, "-c", HOST + textwrap.dedent(source)], capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def on_ukernel(run, source: str) -> list[str]:
    r = await run(TWIN + textwrap.dedent(source))
    assert r.status == 0, r.stderr
    return r.stdout.decode().splitlines()


STOP_CONTINUE = ["CLD_STOPPED", "stopped 19", "nothing", "CLD_CONTINUED", "continued", "nothing", "CLD_KILLED",
                 "killed 15"]  # fmt: skip


async def test_a_stop_and_a_continue_send_sigchld_and_wait_reports_each_once(run):
    host = on_host(
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        pid = os.fork()
        if pid == 0:
            while True:
                signal.pause()
        def chld(why):
            info = signal.sigwaitinfo([signal.SIGCHLD])
            assert (info.si_pid, info.si_code) == (pid, why), info
            return info
        os.kill(pid, signal.SIGSTOP)
        info = chld(os.CLD_STOPPED)
        say("CLD_STOPPED" if info.si_status == signal.SIGSTOP else info)
        _, status = os.waitpid(pid, os.WUNTRACED)
        say("stopped", os.WSTOPSIG(status))
        say("nothing" if os.waitpid(pid, os.WUNTRACED | os.WNOHANG) == (0, 0) else "again")
        os.kill(pid, signal.SIGCONT)
        info = chld(os.CLD_CONTINUED)
        say("CLD_CONTINUED" if info.si_status == signal.SIGCONT else info)
        _, status = os.waitpid(pid, os.WCONTINUED)
        say("continued" if os.WIFCONTINUED(status) else status)
        say("nothing" if os.waitpid(pid, os.WCONTINUED | os.WNOHANG) == (0, 0) else "again")
        os.kill(pid, signal.SIGTERM)
        info = chld(os.CLD_KILLED)
        say("CLD_KILLED" if info.si_status == signal.SIGTERM else info)
        _, status = os.waitpid(pid, 0)
        say("killed", os.WTERMSIG(status))
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            await sys.sigprocmask(os.SIG_BLOCK, [os.SIGCHLD])
            pid = await sys.fork()
            if pid == 0:
                while True:
                    await sys.pause()
            async def chld(why):
                info = await sys.sigwaitinfo([os.SIGCHLD])
                assert (info.si_pid, info.si_code) == (pid, why), info
                return info
            await sys.kill(pid, os.SIGSTOP)
            info = await chld(os.CLD_STOPPED)
            await say(sys, "CLD_STOPPED" if info.si_status == os.SIGSTOP else info)
            _, status = await sys.waitpid(pid, os.WUNTRACED)
            await say(sys, "stopped", os.WSTOPSIG(status))
            again = await sys.waitpid(pid, os.WUNTRACED | os.WNOHANG)
            await say(sys, "nothing" if again == (0, 0) else "again")
            await sys.kill(pid, os.SIGCONT)
            info = await chld(os.CLD_CONTINUED)
            await say(sys, "CLD_CONTINUED" if info.si_status == os.SIGCONT else info)
            _, status = await sys.waitpid(pid, os.WCONTINUED)
            await say(sys, "continued" if os.WIFCONTINUED(status) else status)
            again = await sys.waitpid(pid, os.WCONTINUED | os.WNOHANG)
            await say(sys, "nothing" if again == (0, 0) else "again")
            await sys.kill(pid, os.SIGTERM)
            info = await chld(os.CLD_KILLED)
            await say(sys, "CLD_KILLED" if info.si_status == os.SIGTERM else info)
            _, status = await sys.waitpid(pid, 0)
            await say(sys, "killed", os.WTERMSIG(status))
            return 0
        """,
    )
    assert host == twin == STOP_CONTINUE


async def test_a_read_is_eintr_only_after_a_handler_without_sa_restart(run):
    """A pipe read interrupted by a handler: EINTR; by the same handler with SA_RESTART (Python's
    signal.siginterrupt(sig, False) on the host): restarted after it, and it gets the bytes
    written later; by a stop and SIGCONT, no handler run: restarted (ERESTARTSYS). The host's
    read goes through ctypes, so Python's own EINTR retry (PEP 475) is not in it."""
    host = on_host(
        """
        r, w = os.pipe()
        tell_r, tell = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGUSR1, lambda sig, frame: None)
            buf = ctypes.create_string_buffer(8)
            for step in ("handler", "SA_RESTART", "stop"):
                if step == "SA_RESTART":
                    signal.siginterrupt(signal.SIGUSR1, False)
                os.write(tell, b".")
                n = libc.read(r, buf, 8)
                os.write(tell, f"{step}: {n} {os.strerror(ctypes.get_errno()) if n < 0 else buf.raw[:n].decode()};".encode())
            os._exit(0)
        os.read(tell_r, 1); in_read(pid)
        os.kill(pid, signal.SIGUSR1)
        say(report(tell_r))
        in_read(pid)
        os.kill(pid, signal.SIGUSR1); delivered(pid)
        os.write(w, b"one")
        say(report(tell_r))
        in_read(pid)
        os.kill(pid, signal.SIGSTOP); os.waitpid(pid, os.WUNTRACED)
        os.kill(pid, signal.SIGCONT); os.waitpid(pid, os.WCONTINUED); in_read(pid)
        os.write(w, b"two")
        say(report(tell_r))
        os.waitpid(pid, 0)
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            tell_r, tell = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                handler = lambda sys, sig: None
                for step in ("handler", "SA_RESTART", "stop"):
                    await sys.sigaction(os.SIGUSR1, handler, os.SA_RESTART if step != "handler" else 0)
                    await sys.write(tell, b".")
                    try:
                        got = (await sys.read(r, 8)).decode()
                        line = f"{step}: {len(got)} {got};"
                    except OSError as exc:
                        line = f"{step}: -1 {os.strerror(exc.errno)};"
                    await sys.write(tell, line)
                return 0
            await sys.read(tell_r, 1); await in_read(sys, pid)
            await sys.kill(pid, os.SIGUSR1)
            await say(sys, await report(sys, tell_r))
            await in_read(sys, pid)
            await sys.kill(pid, os.SIGUSR1); await delivered(sys, pid)
            await sys.write(w, b"one")
            await say(sys, await report(sys, tell_r))
            await in_read(sys, pid)
            await sys.kill(pid, os.SIGSTOP); await sys.waitpid(pid, os.WUNTRACED)
            await sys.kill(pid, os.SIGCONT); await sys.waitpid(pid, os.WCONTINUED); await in_read(sys, pid)
            await sys.write(w, b"two")
            await say(sys, await report(sys, tell_r))
            await sys.waitpid(pid, 0)
            return 0
        """,
    )
    assert host == twin == ["handler: -1 Interrupted system call;", "SA_RESTART: 3 one;", "stop: 3 two;"]


SIGTIMEDWAIT = [
    "pending []",
    "pending [10]",
    "took 10 SI_USER from self",
    "pending []",
    "timed out None",
    "took 12 SI_USER from the child",
    "pending [10]",
    "took 10",
]


async def test_sigtimedwait_takes_a_blocked_pending_signal_and_sigpending_lists_them(run):
    """sigpending: the blocked signals pending; sigtimedwait takes one of its set with its
    siginfo (no handler runs), None once the timeout passes, wakes for one sent meanwhile,
    and leaves the pending signals outside its set pending."""
    host = on_host(
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGUSR2])
        pending = lambda: sorted(int(sig) for sig in signal.sigpending())
        say("pending", pending())
        os.kill(os.getpid(), signal.SIGUSR1)
        say("pending", pending())
        info = signal.sigtimedwait([signal.SIGUSR1], 1)
        say("took", info.si_signo, "SI_USER" if info.si_code == 0 else info.si_code,
            "from self" if info.si_pid == os.getpid() else info.si_pid)
        say("pending", pending())
        say("timed out", signal.sigtimedwait([signal.SIGUSR1], 0.05))
        pid = os.fork()
        if pid == 0:
            time.sleep(0.1)
            os.kill(os.getppid(), signal.SIGUSR2)
            os._exit(0)
        os.kill(os.getpid(), signal.SIGUSR1)
        info = signal.sigtimedwait([signal.SIGUSR2], 30)
        say("took", info.si_signo, "SI_USER" if info.si_code == 0 else info.si_code,
            "from the child" if info.si_pid == pid else info.si_pid)
        say("pending", pending())
        say("took", signal.sigtimedwait([signal.SIGUSR1, signal.SIGUSR2], 0).si_signo)
        os.waitpid(pid, 0)
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            await sys.sigprocmask(os.SIG_BLOCK, [os.SIGUSR1, os.SIGUSR2])
            async def pending():
                return sorted(await sys.sigpending())
            me = await sys.getpid()
            await say(sys, "pending", await pending())
            await sys.kill(me, os.SIGUSR1)
            await say(sys, "pending", await pending())
            info = await sys.sigtimedwait([os.SIGUSR1], 1)
            await say(sys, "took", info.si_signo, "SI_USER" if info.si_code == 0 else info.si_code,
                      "from self" if info.si_pid == me else info.si_pid)
            await say(sys, "pending", await pending())
            await say(sys, "timed out", await sys.sigtimedwait([os.SIGUSR1], 0.05))
            pid = await sys.fork()
            if pid == 0:
                await sys.nanosleep(0.1)
                await sys.kill(await sys.getppid(), os.SIGUSR2)
                return 0
            await sys.kill(me, os.SIGUSR1)
            info = await sys.sigtimedwait([os.SIGUSR2], 30)
            await say(sys, "took", info.si_signo, "SI_USER" if info.si_code == 0 else info.si_code,
                      "from the child" if info.si_pid == pid else info.si_pid)
            await say(sys, "pending", await pending())
            await say(sys, "took", (await sys.sigtimedwait([os.SIGUSR1, os.SIGUSR2], 0)).si_signo)
            await sys.waitpid(pid, 0)
            return 0
        """,
    )
    assert host == twin == SIGTIMEDWAIT


async def test_an_orphaned_group_with_a_stopped_member_gets_sighup_then_sigcont(run):
    """The child stops itself in a group of its own; when its parent (the group's only tie
    to another group of the session) exits, the group is orphaned: SIGHUP, then SIGCONT."""
    host = on_host(
        """
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:
            child = os.fork()
            if child == 0:
                os.setpgid(0, 0)
                for sig in (signal.SIGHUP, signal.SIGCONT):
                    signal.signal(sig, lambda sig, frame: os.write(w, f"{signal.Signals(sig).name} ".encode()))
                os.kill(os.getpid(), signal.SIGSTOP)
                os.write(w, b"ran on")
                os._exit(0)
            os.waitpid(child, os.WUNTRACED)
            os.write(w, b"stopped; parent exits; ")
            os._exit(0)
        os.close(w)
        os.waitpid(middle, 0)
        out = b""
        while chunk := os.read(r, 100):
            out += chunk
        say(out.decode())
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            r, w = await sys.pipe()
            middle = await sys.fork()
            if middle == 0:
                child = await sys.fork()
                if child == 0:
                    await sys.setpgid(0, 0)
                    async def note(sys, sig):
                        await sys.write(w, f"{signal.Signals(sig).name} ")
                    for sig in (os.SIGHUP, os.SIGCONT):
                        await sys.sigaction(sig, note)
                    await sys.kill(await sys.getpid(), os.SIGSTOP)
                    await sys.write(w, b"ran on")
                    return 0
                await sys.waitpid(child, os.WUNTRACED)
                await sys.write(w, b"stopped; parent exits; ")
                return 0
            await sys.close(w)
            await sys.waitpid(middle, 0)
            out = b""
            while chunk := await sys.read(r, 100):
                out += chunk
            await say(sys, out.decode())
            return 0
        """,
    )
    assert host == twin == ["stopped; parent exits; SIGHUP SIGCONT ran on"]


async def test_sa_nocldstop_sigsuspend_and_sa_siginfo(run):
    """POSIX sigaction: "SA_NOCLDSTOP: Do not generate SIGCHLD when children stop or stopped
    children continue"; sigsuspend "shall replace the current signal mask ... and then suspend
    the thread until delivery of a signal whose action is ... to execute a signal-catching
    function"; "If the signal-catching function returns, sigsuspend() shall return after
    restoring the signal mask to the set that existed prior to the call" with EINTR; SA_SIGINFO
    handlers get a siginfo_t (si_code CLD_EXITED, si_pid, si_status for SIGCHLD). Python's
    signal module cannot set SA_NOCLDSTOP or SA_SIGINFO, so no host twin here."""
    r = await run(
        TWIN
        + """
async def main(sys, argv):
    seen = []
    async def chld(sys, sig, info, context):
        seen.append((info.si_signo, info.si_code, info.si_pid, info.si_status, os.SIGCHLD in context["uc_sigmask"]))
    await sys.sigaction(os.SIGCHLD, chld, os.SA_SIGINFO | os.SA_NOCLDSTOP)
    await sys.sigprocmask(os.SIG_BLOCK, [os.SIGCHLD])
    pid = await sys.fork()
    if pid == 0:
        await sys.kill(await sys.getpid(), os.SIGSTOP)
        return 5
    await sys.waitpid(pid, os.WUNTRACED)
    await say(sys, "pending after stop:", sorted(await sys.sigpending()))
    await sys.kill(pid, os.SIGCONT)
    try:
        await sys.sigsuspend([])
    except OSError as exc:
        await say(sys, "sigsuspend:", os.errno_name(exc.errno))
    await say(sys, "seen:", seen == [(os.SIGCHLD, os.CLD_EXITED, pid, 5, True)])
    await say(sys, "mask back:", sorted(await sys.sigprocmask(os.SIG_BLOCK, [])))
    await sys.waitpid(pid, 0)
    return 0
"""
    )
    assert r.stdout.decode().splitlines() == [
        "pending after stop: []",
        "sigsuspend: EINTR",
        "seen: True",
        f"mask back: [{abi.SIGCHLD}]",
    ]


async def test_nanosleep_goes_on_after_a_stop_to_the_same_expiry(run):
    """nanosleep: ERESTART_RESTARTBLOCK; stopped and continued, no handler run, the sleep
    resumes to the tick it first asked for (hrtimer_nanosleep_restart): 1 s in all."""
    r = await run(
        TWIN
        + """
async def main(sys, argv):
    pid = await sys.fork()
    if pid == 0:
        start = await sys.clock_gettime()
        await sys.nanosleep(1)
        await say(sys, f"slept {await sys.clock_gettime() - start:.2f}")
        return 0
    await sys.nanosleep(0.25)
    await sys.kill(pid, os.SIGSTOP)
    await sys.waitpid(pid, os.WUNTRACED)
    await sys.nanosleep(0.25)
    await sys.kill(pid, os.SIGCONT)
    await sys.waitpid(pid, 0)
    return 0
"""
    )
    assert r.stdout == b"slept 1.00\n"


GROUP_STOP = ["stopped 19 T T T", "nothing", "CLD_STOPPED", "continued False", "killed 9"]


async def test_a_stop_signal_stops_every_thread_and_the_parent_hears_once_the_last_has_stopped(run):
    """A group stop (kernel/signal.c do_signal_stop): SIGSTOP to a process of three threads,
    one asleep in read, one in a futex wait, one spinning on syscalls, stops all three; the
    parent's WUNTRACED wait returns once, when every thread is already T; SIGCONT runs all."""
    host = on_host(
        """
        import threading
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            lock = threading.Lock()
            lock.acquire()
            threading.Thread(target=lock.acquire, daemon=True).start()  # a futex wait
            def spin():
                while True:
                    os.getpid()
            threading.Thread(target=spin, daemon=True).start()
            os.read(r, 1)
        def states():
            return sorted(state(f"{pid}/task/{tid}") for tid in os.listdir(f"/proc/{pid}/task"))
        while len(states()) != 3 or states().count("S") < 2:
            time.sleep(0.001)
        os.kill(pid, signal.SIGSTOP)
        _, status = os.waitpid(pid, os.WUNTRACED)
        say("stopped", os.WSTOPSIG(status), *states())
        say("nothing" if os.waitpid(pid, os.WUNTRACED | os.WNOHANG) == (0, 0) else "again")
        info = signal.sigwaitinfo([signal.SIGCHLD])
        say("CLD_STOPPED" if info.si_code == os.CLD_STOPPED else info)
        os.kill(pid, signal.SIGCONT)
        _, status = os.waitpid(pid, os.WCONTINUED)
        say("continued" if os.WIFCONTINUED(status) else status, "T" in states())
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        say("killed", os.WTERMSIG(status))
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            await sys.sigprocmask(os.SIG_BLOCK, [os.SIGCHLD])
            r, w = await sys.pipe()
            pid = await sys.fork()
            if pid == 0:
                word = await sys.mmap(0, 4096, os.PROT_READ | os.PROT_WRITE, os.MAP_PRIVATE | os.MAP_ANONYMOUS)
                async def waiter(sys, arg):
                    while True:
                        await sys.futex(word, os.FUTEX_WAIT, 0)
                async def spin(sys, arg):
                    while True:
                        await sys.getpid()
                await sys.clone(os.PTHREAD_CLONE_FLAGS, waiter)
                await sys.clone(os.PTHREAD_CLONE_FLAGS, spin)
                await sys.read(r, 1)
            async def states():
                fd = await sys.open(f"/proc/{pid}/task")
                tids = await sys.getdents(fd)
                await sys.close(fd)
                return sorted([await state(sys, f"{pid}/task/{tid}") for tid in tids if tid.isdigit()])
            while len(await states()) != 3 or (await states()).count("S") < 2:
                await sys.sched_yield()
            await sys.kill(pid, os.SIGSTOP)
            _, status = await sys.waitpid(pid, os.WUNTRACED)
            await say(sys, "stopped", os.WSTOPSIG(status), *await states())
            again = await sys.waitpid(pid, os.WUNTRACED | os.WNOHANG)
            await say(sys, "nothing" if again == (0, 0) else "again")
            info = await sys.sigwaitinfo([os.SIGCHLD])
            await say(sys, "CLD_STOPPED" if info.si_code == os.CLD_STOPPED else info)
            await sys.kill(pid, os.SIGCONT)
            _, status = await sys.waitpid(pid, os.WCONTINUED)
            await say(sys, "continued" if os.WIFCONTINUED(status) else status, "T" in await states())
            await sys.kill(pid, os.SIGKILL)
            _, status = await sys.waitpid(pid, 0)
            await say(sys, "killed", os.WTERMSIG(status))
        """,
    )
    assert host == twin == GROUP_STOP


WAITID = ["ECHILD", "EINVAL", "None", "stopped CLD_STOPPED 19 True True", "kept CLD_STOPPED 19", "None",
          "continued CLD_CONTINUED 18", "killed CLD_KILLED 15", "reaped 15", "exited CLD_EXITED 3", "ECHILD"]  # fmt: skip


async def test_waitid_reports_each_event_as_a_siginfo_and_wnowait_leaves_it(run):
    """waitid (kernel/exit.c kernel_waitid, the same do_wait as wait4): by pid, by group
    (0: the caller's) or any child; WNOWAIT leaves a report or a zombie for the next wait."""
    host = on_host(
        """
        import errno
        def names(r):
            return {os.CLD_STOPPED: "CLD_STOPPED", os.CLD_CONTINUED: "CLD_CONTINUED",
                    os.CLD_KILLED: "CLD_KILLED", os.CLD_EXITED: "CLD_EXITED"}[r.si_code]
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED)
        except OSError as exc:
            say(errno.errorcode[exc.errno])
        pid = os.fork()
        if pid == 0:
            while True:
                signal.pause()
        try:
            os.waitid(os.P_PID, pid, os.WNOHANG)
        except OSError as exc:
            say(errno.errorcode[exc.errno])
        say(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG))
        os.kill(pid, signal.SIGSTOP)
        r = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)
        say("stopped", names(r), r.si_status, r.si_pid == pid, r.si_signo == signal.SIGCHLD)
        r = os.waitid(os.P_PGID, os.getpgid(0), os.WSTOPPED | os.WNOHANG)
        say("kept", names(r), r.si_status)
        say(os.waitid(os.P_PGID, 0, os.WSTOPPED | os.WNOHANG))
        os.kill(pid, signal.SIGCONT)
        r = os.waitid(os.P_ALL, 0, os.WCONTINUED)
        say("continued", names(r), r.si_status)
        os.kill(pid, signal.SIGTERM)
        r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        say("killed", names(r), r.si_status)
        say("reaped", os.WTERMSIG(os.waitpid(pid, 0)[1]))
        if os.fork() == 0:
            os._exit(3)
        r = os.waitid(os.P_PGID, 0, os.WEXITED)
        say("exited", names(r), r.si_status)
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED)
        except OSError as exc:
            say(errno.errorcode[exc.errno])
        """
    )
    twin = await on_ukernel(
        run,
        """
        import errno
        def names(r):
            return {os.CLD_STOPPED: "CLD_STOPPED", os.CLD_CONTINUED: "CLD_CONTINUED",
                    os.CLD_KILLED: "CLD_KILLED", os.CLD_EXITED: "CLD_EXITED"}[r.si_code]
        async def main(sys, argv):
            await sys.sigprocmask(os.SIG_BLOCK, [os.SIGCHLD])
            try:
                await sys.waitid(os.P_ALL, 0, os.WEXITED)
            except OSError as exc:
                await say(sys, errno.errorcode[exc.errno])
            pid = await sys.fork()
            if pid == 0:
                while True:
                    await sys.pause()
            try:
                await sys.waitid(os.P_PID, pid, os.WNOHANG)
            except OSError as exc:
                await say(sys, errno.errorcode[exc.errno])
            await say(sys, await sys.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG))
            await sys.kill(pid, os.SIGSTOP)
            r = await sys.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOWAIT)
            await say(sys, "stopped", names(r), r.si_status, r.si_pid == pid, r.si_signo == os.SIGCHLD)
            r = await sys.waitid(os.P_PGID, await sys.getpgid(0), os.WSTOPPED | os.WNOHANG)
            await say(sys, "kept", names(r), r.si_status)
            await say(sys, await sys.waitid(os.P_PGID, 0, os.WSTOPPED | os.WNOHANG))
            await sys.kill(pid, os.SIGCONT)
            r = await sys.waitid(os.P_ALL, 0, os.WCONTINUED)
            await say(sys, "continued", names(r), r.si_status)
            await sys.kill(pid, os.SIGTERM)
            r = await sys.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            await say(sys, "killed", names(r), r.si_status)
            await say(sys, "reaped", os.WTERMSIG((await sys.waitpid(pid, 0))[1]))
            if await sys.fork() == 0:
                return 3
            r = await sys.waitid(os.P_PGID, 0, os.WEXITED)
            await say(sys, "exited", names(r), r.si_status)
            try:
                await sys.waitid(os.P_ALL, 0, os.WEXITED)
            except OSError as exc:
                await say(sys, errno.errorcode[exc.errno])
        """,
    )
    assert host == twin == WAITID


async def test_waitid_refuses_a_bad_idtype_or_id_with_einval(run):
    """kernel_waitid: P_PID needs a pid > 0, P_PGID one >= 0; an unknown idtype is EINVAL."""
    host = on_host(
        """
        for idtype, id in ((os.P_PID, 0), (os.P_PGID, -1), (9, 1)):
            try:
                os.waitid(idtype, id, os.WEXITED)
            except OSError as exc:
                say(os.strerror(exc.errno))
        """
    )
    twin = await on_ukernel(
        run,
        """
        async def main(sys, argv):
            for idtype, id in ((os.P_PID, 0), (os.P_PGID, -1), (9, 1)):
                try:
                    await sys.waitid(idtype, id, os.WEXITED)
                except OSError as exc:
                    await say(sys, exc.errno == os.EINVAL and "Invalid argument")
        """,
    )
    assert host == twin == ["Invalid argument"] * 3
