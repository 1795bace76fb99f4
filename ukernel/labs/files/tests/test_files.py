"""The files lab's visible tests; `ukernel lab grade files DIR` runs them and the hidden ones.

Each test runs one of the programs beside this file with your ``Files`` as the
kernel's vfs service (lab.toml's [plug]). Run one yourself, with its messages:

    ukernel run --service vfs=files.py:Files -v tests/offset.py
    ukernel run --service vfs=files.py:Files -v tests/tables.py clone_files

The program under test is pid 2 (init is 1), so its first child is 3.
"""

from ukernel.lab import test
from ukernel.testing import route_of


def replies(result, op: str, pid: int) -> list:
    """What the vfs answered to each ``op`` sent for ``pid``, in order."""
    return [e.get("result") for e in result.trace if e["type"] == "reply" and e["op"] == op and e["pid"] == pid]


@test(points=2)
def fork_shares_the_file_offset(lab):
    r = lab.run(lab.helper("offset.py"), ["offset"])
    lab.expect_output(r, ["offset after the child wrote: 6", "/tmp/log holds b'child\\nparent\\n'"])


@test(points=2)
def fork_gives_the_child_its_own_fd_table(lab):
    r = lab.run(lab.helper("tables.py"), ["tables", "fork"])
    lab.expect_output(r, ["child opened fd 4", "child closed fd 3: EBADF", "parent: fd 4 EBADF, fd 3 open"])


@test(points=2)
def clone_files_shares_the_fd_table(lab):
    r = lab.run(lab.helper("tables.py"), ["tables", "clone_files"])
    lab.expect_output(r, ["child opened fd 4", "child closed fd 3: EBADF", "parent: fd 4 open, fd 3 EBADF"])


@test(points=2)
def routes_say_dup_files_or_share_files(lab):
    r = lab.run(lab.helper("tables.py"), ["tables", "fork"])
    lab.ran(r)
    route = route_of(r.trace, "clone", pid=2)
    lab.check(("vfs", "dup_files") in route, f"the route of a clone without CLONE_FILES has no vfs dup_files: {route}")
    lab.check(
        ("vfs", "share_files") not in route, f"the route of a clone without CLONE_FILES has vfs share_files: {route}"
    )
    exit_route = route_of(r.trace, "exit", pid=3)
    lab.check(("vfs", "put_files") in exit_route, f"the child's exit has no vfs put_files: {exit_route}")
    lab.check(
        replies(r, "put_files", 3) == [{"count": 0}],
        f"put_files at the child's exit answered {replies(r, 'put_files', 3)}",
    )

    r = lab.run(lab.helper("tables.py"), ["tables", "clone_files"])
    lab.ran(r)
    route = route_of(r.trace, "clone", pid=2)
    lab.check(("vfs", "share_files") in route, f"clone(CLONE_FILES)'s route has no vfs share_files: {route}")
    lab.check(("vfs", "dup_files") not in route, f"clone(CLONE_FILES)'s route has vfs dup_files: {route}")
    asked = [e["args"] for e in r.trace if e["type"] == "request" and e["op"] == "share_files" and e["pid"] == 2]
    shared = replies(r, "share_files", 2)
    lab.check(shared == asked, f"share_files was asked {asked} and answered {shared}: the same table, please")
    # the child lets go of the shared table while the parent still holds it
    lab.check(
        replies(r, "put_files", 3) == [{"count": 1}],
        f"put_files at the child's exit answered {replies(r, 'put_files', 3)}",
    )
