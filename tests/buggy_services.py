"""Services with the bugs students write, to plug into a run (tests/test_service_bugs.py).

Each class overrides one op of a built-in service and marks it ``@op`` again, as a
student's replacement would; the line of each bug ends with ``# BUG`` so a test can
find it. A test plugs one in as a student would (``services=``, ``--service
pid=tests/buggy_services.py:SpinningPid``); ``plug(monkeypatch, cls)`` makes one the
built-in class of its slot instead (a bug in ukernel's own service).
"""

from __future__ import annotations

from pathlib import Path

import trio

import services
from services.pid import PidService
from services.sched.classes import RoundRobin
from services.vfs import VfsService
from ukernel.ipc.service import DEFERRED, Call, Service, op


class RaisingPid(PidService):
    """An exception in a handler."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        if self.pids:  # init's pid is fine; the program's fork meets the bug
            raise RuntimeError("the allocator lost its place")  # BUG
        return await PidService.alloc_pid(self, req, ns, set_tid)


class RaisingAtBootPid(PidService):
    """An exception in a handler the kernel needs at boot: init's own pid."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        raise KeyError(ns)  # BUG


class WrongShapePid(PidService):
    """A reply of the wrong shape: the numbers as a string."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:  # BUG
        reply = await PidService.alloc_pid(self, req, ns, set_tid)
        return {"pid": reply["pid"], "numbers": str(reply["numbers"][0])}


class DuplicatePid(PidService):
    """An allocator that forgets which numbers it gave: every process is pid 1."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:  # BUG
        reply = await PidService.alloc_pid(self, req, ns, set_tid)
        return reply | {"numbers": [1]}  # every process gets init's number


class SpinningPid(PidService):
    """A handler that loops for ever."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        if not self.pids:
            return await PidService.alloc_pid(self, req, ns, set_tid)
        nr = self.namespaces[ns].last
        while nr == self.namespaces[ns].last:  # BUG: nothing in the loop moves last
            nr += 0  # BUG


class AwaitingPid(PidService):
    """A handler that waits for something that never happens."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        if not self.pids:
            return await PidService.alloc_pid(self, req, ns, set_tid)
        await trio.Event().wait()  # BUG: nobody sets it
        return {}


class DeferringPid(PidService):
    """A handler that defers its reply and never gives it."""

    @op
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:  # BUG
        if not self.pids:
            return await PidService.alloc_pid(self, req, ns, set_tid)
        req.defer()
        return DEFERRED  # nothing keeps the deferred reply to answer it


class NoRefcountVfs(VfsService):
    """dup_files without the f_count++ of each open file."""

    @op
    async def dup_files(self, req: Call, files: int) -> dict:  # BUG
        old = self._fst(files)
        table = {fd: list(entry) for fd, entry in old.fds.items()}  # no f_count += 1 for each file
        return {"files": self.new_handle(self.files_structs, type(old)(table))}


class RaisingPickNext(RoundRobin):
    """A scheduling class whose pick_next raises once a second task is queued."""

    def pick_next(self):  # noqa: ANN201 (SchedClass's signature)
        if len(self.queue) > 1:
            raise IndexError("pick_next: the queue went out of order")  # BUG
        return super().pick_next()


class LeakyVfs(VfsService):
    """A consistency check that finds a hundred problems (a leak report must stay short)."""

    @op
    async def check(self, req: Call) -> list[str]:
        return [f"vfs: inode {ino} has i_count 1, 0 open files" for ino in range(100, 200)]


def plug(monkeypatch, cls: type[Service]) -> None:  # noqa: ANN001 (pytest's fixture)
    """The next boot builds ``cls`` for its slot."""
    monkeypatch.setitem(services.SERVICES, cls.name, cls)


def bug_lines(cls: type) -> list[str]:
    """``tests/buggy_services.py:N`` for each ``# BUG`` line of ``cls``: where its bug is
    (a loop has two: the report names the one it was stopped on)."""
    lines = Path(__file__).read_text().splitlines()
    start = next(i for i, text in enumerate(lines) if text.startswith(f"class {cls.__name__}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("class ")), len(lines))
    return [f"tests/buggy_services.py:{i + 1}" for i in range(start, end) if "# BUG" in lines[i]]
