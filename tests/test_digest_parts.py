"""state_digest's parts (Service.DIGEST_APART, @changes, DIGEST_DERIVED): a part's cached
digest is kept only while no op changes it, so a cached digest is always a fresh walk's."""

from __future__ import annotations

import pytest

import ukernel
from services.vfs.namei import MntNamespace
from ukernel.ipc.canonical import canonical
from ukernel.ipc.service import Service

PARTS_CHECKED: dict[str, int] = {}  # part -> how many times a cached digest of it was checked
LAST: dict[str, str] = {}  # service -> the op it started last


def checking_start(start):
    """Service.start that first compares every part still cached with a fresh walk (what
    the ops since it was cached left), then caches every part before the op drops what it
    declares: each op's @changes declaration is checked by the next op's start."""

    def checked(self, req, op_name, args):
        for part, cached in self._digests.items():
            changed = f"{self.name}.{LAST.get(self.name)} changed {part or 'the rest'!r} undeclared"
            assert cached == self.digest_part(part), changed
            PARTS_CHECKED[part] = PARTS_CHECKED.get(part, 0) + 1
        for part in ("", *self.DIGEST_APART):  # the state the ops before left
            self._digests.setdefault(part, self.digest_part(part))
        LAST[self.name] = op_name
        return start(self, req, op_name, args)

    return checked


@pytest.mark.parametrize(
    "argv",
    [["hello"], ["forkbuf", "1"], ["tocttou"], ["waitrace"], ["filedemo"], ["pthreads"], ["mkfifo"]],
)
def test_every_part_kept_cached_is_what_a_fresh_walk_gives(argv, monkeypatch):
    monkeypatch.setattr(Service, "start", checking_start(Service.start))
    PARTS_CHECKED.clear()
    result = ukernel.run(argv[0], argv)
    assert result.error == "" and result.problems == [], (result.error, result.problems)
    assert PARTS_CHECKED.get("", 0) > 0 and PARTS_CHECKED.get("output", 0) > 0


async def test_a_console_write_keeps_the_rest_cached_and_a_file_write_drops_it(run, monkeypatch):
    """The console write's declaration saves the walk of the tree; any other write may change it."""
    seen: list[tuple[str, bool]] = []
    start = Service.start

    def watching(self, req, op_name, args):
        if self.name == "vfs":
            self._digests[""] = self.digest_part("")
        error = start(self, req, op_name, args)
        if self.name == "vfs" and op_name == "write":
            seen.append((bytes(args["data"]).decode(), "" in self._digests))
        return error

    src = """
from ukernel.abi import O_CREAT, O_WRONLY


async def main(sys, argv):
    await sys.write(1, b"console")
    fd = await sys.open("/tmp/f", O_CREAT | O_WRONLY, 0o644)
    await sys.write(fd, b"file")
    return 0
"""
    monkeypatch.setattr(Service, "start", watching)
    result = await run(src)
    assert result.stdout == b"console"
    assert seen == [("console", True), ("file", False)]


def test_a_mount_namespace_digest_leaves_out_its_indexes_and_keeps_its_mounts():
    """_on and _roots are made from mounts: equal mounts, equal digests; other mounts, other ones."""
    from services.vfs.inode import Inode
    from services.vfs.namei import Mount

    root, mnt = Inode(1, 0o40755), Inode(2, 0o40755)
    one = MntNamespace([Mount("tmpfs", "none", root, None, 1), Mount("proc", "proc", mnt, root, 2)])
    same = MntNamespace([Mount("tmpfs", "none", root, None, 1)])
    same.add(Mount("proc", "proc", mnt, root, 2))
    other = MntNamespace([Mount("tmpfs", "none", root, None, 1), Mount("proc", "proc", mnt, mnt, 2)])
    assert canonical(one) == canonical(same)
    assert canonical(one) != canonical(other)
    assert "_on" not in repr(canonical(one))
