"""The coreutils in userland/: cat, echo, ls, mkdir, rm, pwd, ps, pstree, kill, filedemo.

Each test boots a kernel, runs the program (most through sh, under init), and
checks the exact output and that nothing leaked (Result.problems is what
kernel.check_invariants() found after the run).
"""

from __future__ import annotations

import textwrap

import pytest
import trio

import ukernel

TIMEOUT = 30


async def run(program: str, *args: str, stdin: bytes = b"", files: dict | None = None, **settings) -> ukernel.Result:
    with trio.fail_after(TIMEOUT):
        r = await ukernel.run_async(program, [program, *args], stdin=stdin, files=files or {}, **settings)
    assert r.problems == []  # kernel.check_invariants() after the run
    return r


async def sh(script: str, files: dict | None = None, **settings) -> ukernel.Result:
    return await run("sh", stdin=textwrap.dedent(script).lstrip().encode(), files=files, **settings)


def out(r: ukernel.Result) -> list[str]:
    return r.stdout.decode().splitlines()


# --- cat, echo, pwd -------------------------------------------------------------------------
async def test_cat_copies_stdin_without_arguments():
    r = await run("cat", stdin=b"one\ntwo\n")
    assert (r.stdout, r.exit_code) == (b"one\ntwo\n", 0)


async def test_cat_concatenates_files_and_dash_is_stdin():
    r = await run("cat", "/etc/a", "-", "/etc/b", stdin=b"middle\n", files={"/etc/a": b"A\n", "/etc/b": b"B\n"})
    assert (r.stdout, r.exit_code) == (b"A\nmiddle\nB\n", 0)


async def test_cat_reports_missing_files_and_goes_on():
    r = await run("cat", "/nope", "/etc/a", "/tmp", files={"/etc/a": b"A\n"})
    assert r.stdout == b"cat: /nope: No such file or directory\nA\ncat: /tmp: Is a directory\n"
    assert r.exit_code == 1


async def test_cat_copies_a_file_larger_than_one_block():
    data = bytes(range(256)) * 40  # 10 KiB: three reads of 4096
    r = await run("cat", "/etc/big", files={"/etc/big": data})
    assert r.stdout == data


async def test_echo_joins_arguments_and_n_drops_the_newline():
    r = await sh("echo hello   world\necho -n no newline\necho\necho '  quoted  '\n")
    assert r.stdout == b"hello world\nno newline\n  quoted  \n"


async def test_pwd_program_prints_the_inherited_cwd():
    r = await sh("cd /tmp\n/bin/pwd\ncd ..\n/bin/pwd\n")
    assert r.stdout == b"/tmp\n/\n"


# --- ls -----------------------------------------------------------------------------------
async def test_ls_lists_sorted_names_and_hides_dotfiles():
    files = {"/etc/b": b"", "/etc/a": b"", "/etc/.hidden": b""}
    r = await sh("ls /etc\nls -a /etc\n", files=files)
    assert out(r) == ["a", "b", ".", "..", ".hidden", "a", "b"]


async def test_ls_root():
    r = await run("ls", "/")
    assert out(r) == ["bin", "dev", "etc", "mnt", "proc", "tmp"]


async def test_ls_long_shows_mode_nlink_size_and_symlink_targets():
    r = await run(
        "sh",
        stdin=b"mkdir /tmp/d\nls -l /tmp /dev/null\n",
        files={"/tmp/f": b"12345", "/tmp/big": b"x" * 1000},
    )
    assert out(r) == [
        "crw-rw-rw-  1     0 /dev/null",
        "",
        "/tmp:",
        "-rw-r--r--  1  1000 big",
        "drwxr-xr-x  2     0 d",
        "-rw-r--r--  1     5 f",
    ]


async def test_ls_long_symlink_shows_its_target():
    r = await run(
        "t",
        files={
            "/bin/t": textwrap.dedent(
                """
                async def main(sys, argv):
                    await sys.symlink("/etc/motd", "/tmp/link")
                    await sys.symlink("/tmp", "/tmp/up")
                    await sys.execve("/bin/ls", ["ls", "-l", "/tmp"])
                """
            ).encode(),
            "/etc/motd": b"hi\n",
        },
    )
    assert out(r) == [
        "lrwxrwxrwx  1     9 link -> /etc/motd",
        "lrwxrwxrwx  1     4 up -> /tmp",
    ]


async def test_ls_of_a_missing_path_fails_with_2():
    r = await run("ls", "/nope", "/etc")
    assert r.stdout == b"ls: cannot access '/nope': No such file or directory\n/etc:\n"  # /etc is empty
    assert r.exit_code == 2


async def test_ls_proc_shows_pids_and_self():
    r = await run("ls", "/proc")
    assert out(r) == [
        "1",
        "2",
        "loadavg",
        "meminfo",
        "mounts",
        "net",
        "self",
        "sys",
        "thread-self",
        "uptime",
    ]  # init and ls


# --- mkdir, rm ------------------------------------------------------------------------------
async def test_mkdir_p_makes_parents_and_accepts_existing():
    r = await sh(
        """
        mkdir -p /a/b/c
        mkdir -p /a/b
        ls /a /a/b
        mkdir /a
        mkdir /x/y
        """
    )
    assert out(r) == [
        "/a:",
        "b",
        "",
        "/a/b:",
        "c",
        "mkdir: cannot create directory '/a': File exists",
        "mkdir: cannot create directory '/x/y': No such file or directory",
    ]
    assert r.exit_code == 1


async def test_mkdir_p_relative_path():
    r = await sh("cd /tmp\nmkdir -p x/y\nls x\n")
    assert r.stdout == b"y\n"


async def test_rm_files_dirs_and_force():
    r = await sh(
        """
        mkdir -p /tmp/d/e
        echo x > /tmp/d/e/f
        echo y > /tmp/g
        rm /tmp/g
        rm /tmp/d
        rm /tmp/nope
        rm -f /tmp/nope
        rm -r /tmp/d
        ls -a /tmp
        """
    )
    assert out(r) == [
        "rm: cannot remove '/tmp/d': Is a directory",
        "rm: cannot remove '/tmp/nope': No such file or directory",
        ".",
        "..",
    ]
    assert r.exit_code == 0  # ls's


async def test_rm_r_removes_a_symlink_not_its_target():
    r = await run(
        "t",
        files={
            "/bin/t": textwrap.dedent(
                """
                async def main(sys, argv):
                    await sys.mkdir("/tmp/keep")
                    await sys.symlink("/tmp/keep", "/tmp/link")
                    await sys.execve("/bin/sh", ["sh", "-c", "rm -r /tmp/link\\nls /tmp"])
                """
            ).encode(),
        },
    )
    assert r.stdout == b"keep\n"


# --- ps, pstree -----------------------------------------------------------------------------
async def test_ps_shows_init_sh_and_itself_with_their_parents():
    r = await sh("ps\n")
    assert out(r) == [
        "  PID  PPID STAT CMD",
        "    1     0 S    init /bin/sh sh",  # init waits in wait4
        "    2     1 S    sh",  # so does the shell
        "    3     2 R    ps",  # ps is the one running
    ]


async def test_ps_shows_a_background_job():
    spin = b"async def main(sys, argv):\n    for _ in range(int(argv[1])):\n        await sys.sched_yield()\n    return 0\n"
    r = await sh("spin 1000 &\nps\nkill -9 3\n", files={"/bin/spin": spin})
    lines = out(r)
    assert lines[0] == "[3]"
    assert lines[1:6] == [
        "  PID  PPID STAT CMD",
        "    1     0 S    init /bin/sh sh",
        "    2     1 S    sh",
        "    3     2 R    spin 1000",
        "    4     2 R    ps",
    ]
    assert lines[6:] == ["[3] done 137"]


async def test_ps_shows_an_unreaped_child_as_a_zombie_without_cmdline():
    # the shell reaps background jobs before each line: echo ends, unreaped, while ps runs
    r = await sh("echo z & spin 30; ps\n", files={"/bin/spin": SPIN})
    assert out(r) == [
        "[3]",
        "z",
        "  PID  PPID STAT CMD",
        "    1     0 S    init /bin/sh sh",
        "    2     1 S    sh",
        "    3     2 Z    [echo]",
        "    5     2 R    ps",
        "[3] done 0",
    ]


async def test_ps_in_a_new_pid_namespace_sees_only_its_own_numbers():
    program = b"""
from ukernel.abi import CLONE_NEWPID, SIGCHLD

async def child(sys, arg):
    await sys.execve("/bin/ps", ["ps"])

async def main(sys, argv):
    pid = await sys.clone(CLONE_NEWPID | SIGCHLD, child)
    await sys.waitpid(pid, 0)
    return 0
"""
    r = await run("t", files={"/bin/t": program})
    assert out(r) == ["  PID  PPID STAT CMD", "    1     0 R    ps"]


async def test_pstree_draws_a_chain():
    r = await sh("pstree\npstree -p\n")
    assert out(r) == ["init───sh───pstree", "init(1)───sh(2)───pstree(4)"]


async def test_pstree_branches_and_threads():
    # t: two pthreads blocked on a pipe, a forked child blocked on it too, then pstree
    program = b"""
from ukernel.abi import O_CLOEXEC, PTHREAD_CLONE_FLAGS, SIGCHLD

async def reader(sys, fd):
    await sys.read(fd, 1)
    return 0

async def pstree(sys, arg):
    await sys.execve("/bin/pstree", ["pstree", "-p"])

async def main(sys, argv):
    r, w = await sys.pipe2(O_CLOEXEC)
    for _ in range(2):
        await sys.clone(PTHREAD_CLONE_FLAGS, reader, r)
    kid = await sys.clone(SIGCHLD, reader, r)
    pid = await sys.clone(SIGCHLD, pstree)
    await sys.waitpid(pid, 0)
    await sys.write(w, b"xxx")
    await sys.waitpid(kid, 0)
    return 0
"""
    r = await sh("t\n", files={"/bin/t": program})
    assert out(r) == [
        "init(1)───sh(2)───t(3)─┬─t(6)",
        "                       ├─pstree(7)",
        "                       ├─{t}(4)",
        "                       └─{t}(5)",
    ]


async def test_pstree_of_one_subtree():
    r = await sh("pstree 2\npstree 99\n")
    assert out(r) == ["sh───pstree", "pstree: no such process: 99"]


def test_pstree_draw_nests_continuation_lines():
    from userland.pstree import draw

    b = draw("b", [["x"], ["y"]])
    assert draw("init", [draw("a", [["z"]]), b, ["c"]]) == [
        "init─┬─a───z",
        "     ├─b─┬─x",
        "     │   └─y",
        "     └─c",
    ]


def test_parse_stat_cuts_comm_at_the_last_paren():
    from userland.lib.proc import parse_stat

    assert parse_stat("7 (a (b) c) S 2 7 1 0 -1") == (7, "a (b) c", "S", 2, 7, 1)


# --- kill -----------------------------------------------------------------------------------
SPIN = b"async def main(sys, argv):\n    for _ in range(int(argv[1])):\n        await sys.sched_yield()\n    return 0\n"


@pytest.mark.parametrize(
    ("args", "sig"), [("", 15), ("-TERM", 15), ("-SIGUSR2", 12), ("-9", 9), ("-s USR1", 10), ("-s hup", 1)]
)
async def test_kill_sends_the_named_signal(args, sig):
    r = await sh(f"spin 1000 &\n/bin/kill {args} 3\n", files={"/bin/spin": SPIN})  # /bin/kill: not sh's built-in
    assert out(r) == ["[3]", f"[3] done {128 + sig}"]


async def test_kill_errors():
    r = await sh("/bin/kill -FOO 1\n/bin/kill 99\n/bin/kill abc\n/bin/kill\n")
    assert out(r) == [
        "kill: FOO: invalid signal specification",
        "kill: (99) - No such process",
        "kill: abc: arguments must be process ids",
        "kill: usage: kill [-SIG | -s SIG] PID... | kill -l",
    ]
    assert r.exit_code == 1


async def test_kill_l_lists_signals():
    r = await run("kill", "-l")
    lines = out(r)
    assert lines[0] == " 1) SIGHUP" and lines[14] == "15) SIGTERM" and len(lines) == 31


async def test_kill_0_checks_that_a_process_exists():
    r = await sh("kill -0 1\nexit\n")
    assert (r.stdout, r.exit_code) == (b"", 0)


# --- filedemo -------------------------------------------------------------------------------
async def test_filedemo_shows_shared_offsets_and_clone_files():
    r = await run("filedemo")
    assert r.exit_code == 0
    assert out(r) == [
        "1. fork shares the open file description, and with it the offset",
        "  parent: open(/tmp/filedemo.txt) = fd 3, offset 0, contents 0123456789abcdefghij",
        "  child:  read(fd 3, 5) = 01234",
        "  parent: read(fd 3, 5) = 56789  <- after the child's 5 bytes; offset now 10",
        "2. clone(SIGCHLD), like fork, copies the fd table: a close in the child leaves the parent's fd open",
        "  child 4: close(3)",
        "  parent: fd 3 is still open",
        "3. clone(CLONE_FILES) shares the fd table: a close in the child closes it for the parent",
        "  child 5: close(3)",
        "  parent: fd 3 is closed (Bad file descriptor, EBADF)",
    ]


async def test_filedemo_leaves_no_file_behind():
    async with ukernel.boot() as kernel:
        assert await kernel.run("/bin/filedemo") == 0
        assert await kernel.run("/bin/ls", ["ls", "-a", "/tmp"]) == 0
        assert (await kernel.call("vfs", "console_output", {})).endswith(b"\n.\n..\n")
        assert await kernel.check_invariants() == []


def test_lib_mode_string():
    from userland.lib.fs import mode_string

    assert mode_string(0o40755) == "drwxr-xr-x"
    assert mode_string(0o41777) == "drwxrwxrwt"
    assert mode_string(0o100640) == "-rw-r-----"
    assert mode_string(0o120777) == "lrwxrwxrwx"
    assert mode_string(0o20666) == "crw-rw-rw-"
