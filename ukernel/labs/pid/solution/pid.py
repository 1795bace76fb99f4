"""The pid lab: alloc_pid and free_pid, as Linux's kernel/pid.c has them.

``Pid`` takes the place of the kernel's pid service (``services/pid.py``).
It keeps the base class's data structures, so every other op (get_pid,
create_pid_ns, pid_nr_ns, find_pid, ns_last_pid, accounting, ...) keeps
working on what you build:

- ``self.namespaces``: handle -> PidNamespace (struct pid_namespace). Its
  ``used`` dict is the namespace's IDR (number -> pid handle), ``last`` is
  the last number the cyclic allocator gave, ``adding`` is PIDNS_ADDING.
- ``self.pids``: handle -> StructPid (struct pid): ``numbers[i]`` is its
  number at level i, in namespace ``nss[i]``; ``refcount`` counts holders.
"""

from __future__ import annotations

from services.pid import INIT_PID_NS, PidNamespace, PidService
from services.pid import Pid as StructPid
from ukernel import abi
from ukernel.ipc.service import Call, get


class Pid(PidService):
    """The pid service with your own allocator."""

    def idr_alloc_cyclic(self, ns: PidNamespace, handle: int, pid_min: int) -> int:
        """The first free number at or after ``ns.last + 1`` in [pid_min, pid_max), else
        the first free one from pid_min (the wrap); ENOSPC when every one is taken."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("idr_alloc_cyclic: your code here (handout, the task, step 1)")
        start = max(ns.last + 1, pid_min)
        for nr in [*range(start, self.pid_max), *range(pid_min, start)]:
            if nr not in ns.used:
                ns.used[nr] = handle
                ns.last = nr  # the cursor moves only when a number is given
                return nr
        raise abi.kernel_error(abi.ENOSPC, f"every pid in [{pid_min}, {self.pid_max}) is taken at level {ns.level}")
        # END SOLUTION

    def idr_alloc(self, ns: PidNamespace, handle: int, tid: int) -> int:
        """Exactly number ``tid`` (clone3's set_tid); the cursor does not move."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("idr_alloc: your code here (handout, the task, step 2)")
        if not 1 <= tid < self.pid_max:
            raise abi.kernel_error(abi.EINVAL, f"set_tid {tid} is outside [1, {self.pid_max})")
        if tid in ns.used:
            raise abi.kernel_error(abi.EEXIST, f"pid {tid} is taken at level {ns.level}")
        ns.used[tid] = handle
        return tid
        # END SOLUTION

    def alloc_upid(self, ns: PidNamespace, handle: int, tid: int | None) -> int:
        """One level of alloc_pid's loop: number ``tid`` if one was asked for (None: not),
        else the next one cyclically, never below RESERVED_PIDS once the cursor passed it."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("alloc_upid: your code here (handout, the task, step 3)")
        if tid is not None:
            return self.idr_alloc(ns, handle, tid)
        pid_min = abi.RESERVED_PIDS if ns.last + 1 > abi.RESERVED_PIDS else 1
        try:
            return self.idr_alloc_cyclic(ns, handle, pid_min)
        except OSError as exc:
            if exc.errno != abi.ENOSPC:
                raise
            # a full pid space is EAGAIN to fork's caller: try again once a process is reaped
            raise abi.kernel_error(
                abi.EAGAIN, f"no free pid below pid_max {self.pid_max} at level {ns.level}"
            ) from None
        # END SOLUTION

    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        """alloc_pid(ns, set_tid): a new struct pid with one number at every level, from
        ``ns``'s own level out to level 0. ``set_tid[0]`` is wanted in ``ns`` itself,
        ``set_tid[1]`` in its parent, and so on. Reply: {"pid": handle, "numbers": [...]},
        numbers[0] being the number at level 0."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("alloc_pid: your code here (handout, the task, step 4)")
        top = get(self.namespaces, ns, "pid namespace")
        set_tid = list(set_tid or [])
        if len(set_tid) > top.level + 1:
            raise abi.kernel_error(abi.EINVAL, f"{len(set_tid)} set_tid entries for {top.level + 1} levels")
        handle = self._handle()
        chain = self._chain(ns)  # chain[i]: the namespace at level i
        numbers = [0] * len(chain)
        taken: list[tuple[PidNamespace, int]] = []
        try:
            for i in range(top.level, -1, -1):
                tmp = self.namespaces[chain[i]]
                k = top.level - i
                numbers[i] = self.alloc_upid(tmp, handle, set_tid[k] if k < len(set_tid) else None)
                taken.append((tmp, numbers[i]))
            if not top.adding:  # checked last, as Linux does under pidmap_lock
                raise abi.kernel_error(abi.ENOMEM, f"pid namespace {ns} is dying (its init has exited)")
        except OSError:
            for tmp, nr in taken:  # out_free: give back what was taken, the cursors stay
                del tmp.used[nr]
            if top.adding and not top.used:
                top.last = 0  # the namespace's first pid failed: the next try is its init, 1
            raise
        self.pids[handle] = StructPid(numbers, chain)
        if ns != INIT_PID_NS:
            top.refcount += 1  # get_pid_ns: a struct pid keeps its namespace alive
        return {"pid": handle, "numbers": numbers}
        # END SOLUTION

    async def free_pid(self, req: Call, pid: int) -> int:
        """Drop one reference to struct pid ``pid``; the last one gives its numbers back at
        every level and puts its namespace. Reply: the references left."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("free_pid: your code here (handout, the task, step 5)")
        p = get(self.pids, pid, "struct pid")
        p.refcount -= 1
        if p.refcount:
            return p.refcount
        del self.pids[pid]
        for nr, handle in zip(p.numbers, p.nss, strict=True):
            tmp = self.namespaces[handle]
            del tmp.used[nr]  # idr_remove: free now, reused only after the cursor wraps
            if not tmp.used and handle != INIT_PID_NS:
                tmp.adding = False  # its last process is gone: no one can join it again
        self._put_ns(p.nss[-1])
        return 0
        # END SOLUTION
