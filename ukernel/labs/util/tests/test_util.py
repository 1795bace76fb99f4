"""The util lab's visible tests: run them with `ukernel lab grade util DIR` (docs/labs.md).

Each test runs your programs as /bin/NAME in a fresh kernel; every run must
end on its own (no process left waiting on a pipe) and leave nothing behind.
"""

from ukernel.lab import test

TREE = {"/d/a/x": b"", "/d/b/c/x": b"", "/d/b/y": b"", "/d/z": b""}


@test(points=1)
def sleep_waits_the_ticks_asked(lab):
    r = lab.run("/bin/sleep", ["sleep", "30"])
    lab.exited(r, 0)
    sleeps = lab.syscalls(r, "nanosleep")
    lab.check(len(sleeps) == 1, f"sleep made {len(sleeps)} nanosleep calls, expected 1")
    slept = sleeps[0]["ts"] - sleeps[0]["start"]
    lab.check(30 <= slept < 35, f"sleep 30 slept {slept} ticks")
    lab.clean(r)


@test(points=1)
def sleep_without_argument_prints_usage_on_stderr(lab):
    r = lab.run("/bin/sh", ["sh", "-c", "sleep > /dev/null"])  # stdout thrown away: what shows is stderr
    lab.check(r.exit_code == 1, f"sleep with no argument exited {r.exit_code}, expected 1")
    lab.check(r.stdout.lower().startswith(b"usage"), f"stderr was {r.stdout!r}, expected a usage line")
    lab.clean(r)


@test(points=2)
def pingpong_exchanges_one_byte(lab):
    r = lab.run("/bin/pingpong")
    lab.exited(r, 0)
    lab.check(r.stdout == b"3: received ping\n2: received pong\n", f"stdout was {r.stdout!r}")
    lab.clean(r)


@test(points=2)
def primes_up_to_35(lab):
    r = lab.run("/bin/primes")
    lab.exited(r, 0)
    expected = "".join(f"prime {p}\n" for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31)).encode()
    lab.check(r.stdout == expected, f"stdout was {r.stdout!r}")
    lab.clean(r)


@test(points=2)
def find_in_nested_directories(lab):
    r = lab.run("/bin/find", ["find", "/d", "x"], files=TREE)
    lab.exited(r, 0)
    found = sorted(r.stdout.decode().splitlines())
    lab.check(found == ["/d/a/x", "/d/b/c/x"], f"found {found}")
    lab.clean(r)


@test(points=2)
def xargs_runs_the_command_once_per_line(lab):
    r = lab.run("/bin/xargs", ["xargs", "echo", "line"], stdin=b"1 2\n3\n")
    lab.exited(r, 0)
    lab.check(r.stdout == b"line 1 2\nline 3\n", f"stdout was {r.stdout!r}")
    lab.clean(r)
