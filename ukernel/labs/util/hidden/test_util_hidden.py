"""The util lab's hidden tests: edge cases the handout states but tests/ does not show."""

from ukernel.lab import test

PRIMES_TO_100 = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]


@test(points=1)
def pingpong_parent_reaps_its_child(lab):
    r = lab.run("/bin/pingpong")
    lab.exited(r, 0)
    waits = [w for w in lab.syscalls(r, "wait4") if w["pid"] == 2 and "result" in w]
    lab.check([w["result"][0] for w in waits] == [3], f"pingpong's wait4 calls returned {waits}")
    lab.clean(r)


@test(points=2)
def primes_runs_a_process_per_prime(lab):
    r = lab.run("/bin/primes")
    lab.exited(r, 0)
    printers = {w["pid"] for w in lab.syscalls(r, "write") if w["args"].get("data", b"").startswith(b"prime")}
    lab.check(len(printers) == 11, f"{len(printers)} processes printed the 11 primes; each prime is one process")
    lab.clean(r)


@test(points=1)
def primes_up_to_100(lab):
    r = lab.run("/bin/primes", ["primes", "100"])
    lab.exited(r, 0)
    lab.check(r.stdout == "".join(f"prime {p}\n" for p in PRIMES_TO_100).encode(), f"stdout was {r.stdout!r}")
    lab.clean(r)


@test(points=1)
def find_a_name_that_is_also_a_directory(lab):
    files = {"/d/x/x": b"", "/d/x/y/x": b"", "/d/q": b""}
    r = lab.run("/bin/find", ["find", "/d", "x"], files=files)
    lab.exited(r, 0)
    found = sorted(r.stdout.decode().splitlines())
    lab.check(found == ["/d/x", "/d/x/x", "/d/x/y/x"], f"found {found}")
    lab.clean(r)


@test(points=1)
def find_in_a_missing_directory_fails(lab):
    r = lab.run("/bin/find", ["find", "/nowhere", "x"])
    lab.check(r.exit_code == 1, f"find /nowhere exited {r.exit_code}, expected 1")
    lab.check(r.stdout.startswith(b"find: "), f"stderr was {r.stdout!r}, expected 'find: ...'")
    lab.clean(r)


@test(points=1)
def xargs_n1_runs_the_command_per_word(lab):
    r = lab.run("/bin/xargs", ["xargs", "-n", "1", "echo", "w"], stdin=b"1 2\n3\n\n4\n")
    lab.exited(r, 0)
    lab.check(r.stdout == b"w 1\nw 2\nw 3\nw 4\n", f"stdout was {r.stdout!r}")
    lab.clean(r)


@test(points=1)
def xargs_in_a_pipeline(lab):
    r = lab.run("/bin/sh", ["sh", "-c", "echo hello too | xargs echo bye"])
    lab.exited(r, 0)
    lab.check(r.stdout == b"bye hello too\n", f"stdout was {r.stdout!r}")
    lab.clean(r)
