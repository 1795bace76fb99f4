"""A student's replacements for every service, as a lab would have them: each subclasses the
built-in, overrides one op without re-marking it ``@op`` (it stays the op), counts the calls,
and answers ``counted`` with the count. Loaded by tests/test_plug.py as a host file
(``tests/plugs/counting.py:CountingPid``), embedded and in a ``ukernel serve`` process.
"""

from services.mm import MmService
from services.namespaces import NamespacesService
from services.pid import PidService
from services.sched import SchedService
from services.signals import SignalsService
from services.vfs import VfsService
from ukernel.ipc.service import Call, op
from ukernel.kernel.fork import CopyProcess


class Counting:
    """The op that says how many calls of the overridden op this instance handled."""

    count = 0

    @op
    async def counted(self, req: Call) -> int:
        return self.count


class CountingPid(Counting, PidService):
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        self.count += 1
        return await super().alloc_pid(req, ns, set_tid)


class CountingMm(Counting, MmService):
    async def dup_mm(self, req: Call, **args) -> dict:  # **args: checked as MmService.dup_mm is
        self.count += 1
        return await super().dup_mm(req, **args)


class CountingVfs(Counting, VfsService):
    async def dup_files(self, req: Call, files: int) -> dict:
        self.count += 1
        return await super().dup_files(req, files)


class CountingSched(Counting, SchedService):
    async def sched_fork(self, req: Call, task: int, parent: int = 0) -> dict:
        self.count += 1
        return await super().sched_fork(req, task, parent)


class CountingSignals(Counting, SignalsService):
    async def copy_sighand(self, req: Call, **args) -> dict:
        self.count += 1
        return await super().copy_sighand(req, **args)


class CountingNamespaces(Counting, NamespacesService):
    async def share_nsproxy(self, req: Call, nsproxy: int, vm: bool = False) -> dict:
        self.count += 1
        return await super().share_nsproxy(req, nsproxy, vm)


#: slot -> (the class's name here, the op it counts)
COUNTED = {
    "mm": ("CountingMm", "dup_mm"),
    "vfs": ("CountingVfs", "dup_files"),
    "pid": ("CountingPid", "alloc_pid"),
    "sched": ("CountingSched", "sched_fork"),
    "signals": ("CountingSignals", "copy_sighand"),
    "namespaces": ("CountingNamespaces", "share_nsproxy"),
}


class CountingUnwind(CopyProcess):
    """The fork lab's plug: a walker of its own; this one counts its unwinds."""

    unwinds = 0

    async def unwind(self) -> None:
        type(self).unwinds += 1
        await super().unwind()
