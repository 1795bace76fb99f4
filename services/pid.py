"""pid: process numbers, the way kernel/pid.c hands them out.

A process is not its number. Linux gives each task a ``struct pid``, and the
struct pid carries one number (a ``struct upid``) for every pid namespace it
can be seen from: its own namespace and each ancestor up to the initial one.
A task in a container is 1 inside and, say, 4242 outside; both are the same
struct pid. This service owns those structs and the per-namespace number maps,
and nothing else: the kernel asks it for numbers and gives them back.

Each namespace keeps its numbers the way Linux 2.6 did (kernel/pid.c,
``alloc_pidmap``): a bitmap, one bit per pid, in pages of 4 KiB = 32,768 bits
(``struct pidmap``: the page and ``nr_free``, its zero bits), a page allocated
only when a pid in its range is first taken. Taking a pid is
``find_next_zero_bit`` from the cursor; a full page is skipped by its
``nr_free`` without looking at its bits, so a fork costs the same with 30
processes or 30,000. Finding the struct pid of a number is a separate hash
(Linux's ``pid_hash``; ``used`` here). Linux today keeps an IDR (a radix tree)
instead; the numbers it gives are the same.

Numbers are handed out cyclically: the next free number after the last one
given, wrapping when pid_max is reached. That way a pid that just died is not
given to a new process straight away, so a stale ``kill(pid)`` is unlikely to
hit a stranger. After the first wrap the search restarts at RESERVED_PIDS
(300), not 1: the low numbers belong to daemons started at boot.

Handles (for struct pids and namespaces alike) are small ints from a single
counter, so a pid handle can never be mistaken for a namespace handle.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from ukernel import abi
from ukernel.ipc.service import Call, Service, get, op, touches

INIT_PID_NS = 1  # handle of init_pid_ns, the initial namespace (level 0)


#: BITS_PER_PAGE (include/linux/pid_namespace.h): the pids one pidmap page holds.
BITS_PER_PAGE = abi.PAGE_SIZE * 8
BITS_PER_LONG = 64
WORD_FULL = (1 << BITS_PER_LONG) - 1
WORDS_PER_PAGE = BITS_PER_PAGE // BITS_PER_LONG


@dataclass
class PidMap:
    """struct pidmap: one page of the bitmap and ``nr_free``, its zero bits.

    ``page`` is the 4 KiB page as Linux has it, 512 unsigned longs (bit i of word w:
    pid ``page_base + 64 * w + i`` is taken), None until a pid in its range is taken
    (Linux allocates the page then). ``full`` is ukernel's own addition, one bit per
    word, set while that word is all ones: Linux's find_next_zero_bit walks the words
    in a C loop that costs nanoseconds; the same walk in Python would cost more than
    the whole fork, so the full words are skipped through ``full`` instead."""

    page: array | None = None
    nr_free: int = BITS_PER_PAGE
    full: int = 0


def lowest_zero_bit(x: int) -> int:
    """The number of x's lowest zero bit: the carry of ``x + 1`` stops there, so
    ``~x & (x + 1)`` is that bit alone."""
    return (~x & (x + 1)).bit_length() - 1


def find_next_zero_bit(pidmap: PidMap, offset: int) -> int:
    """The first zero bit of the page at or after ``offset`` (BITS_PER_PAGE: none)."""
    index = offset // BITS_PER_LONG
    word = pidmap.page[index] | ((1 << offset % BITS_PER_LONG) - 1)  # bits below offset: taken
    if word != WORD_FULL:
        return index * BITS_PER_LONG + lowest_zero_bit(word)
    index += 1 + lowest_zero_bit(pidmap.full >> (index + 1))  # the next word not full
    if index >= WORDS_PER_PAGE:
        return BITS_PER_PAGE
    return index * BITS_PER_LONG + lowest_zero_bit(pidmap.page[index])


def find_next_offset(pidmap: PidMap, offset: int) -> int:
    """find_next_offset(map, off): the next free offset in one page (a page never
    allocated is all free)."""
    return offset if pidmap.page is None else find_next_zero_bit(pidmap, offset)


def new_page() -> array:
    """A zeroed page: 4 KiB of unsigned longs."""
    return array("Q", bytes(abi.PAGE_SIZE))


def mk_pid(index: int, offset: int) -> int:
    """mk_pid(ns, map, off): the pid at ``offset`` in page ``index``."""
    return index * BITS_PER_PAGE + offset


@dataclass
class PidNamespace:
    """struct pid_namespace: a number space, nested in its parent's."""

    level: int
    parent: int | None
    last: int = 0  # last_pid: the last number alloc_pidmap gave (/proc/sys/kernel/ns_last_pid)
    used: dict[int, int] = field(default_factory=dict)  # the pid_hash: nr -> pid handle (find_pid_ns)
    refcount: int = 1
    adding: bool = True  # PIDNS_ADDING: cleared once the namespace's init is gone
    inum: int = abi.INIT_NS_INUMS["pid"]  # ns.inum: what /proc/PID/ns/pid names
    pidmap: list[PidMap] = field(default_factory=list)  # pidmap[PIDMAP_ENTRIES], pages made lazily


@dataclass(slots=True)
class Pid:
    """struct pid: ``numbers[i]`` is the upid at level i, seen from ``nss[i]``."""

    numbers: list[int]
    nss: list[int]
    refcount: int = 1


#: How far past its cursor an allocation's scan may go and still be told number by number
#: (the numbers it passed are taken, by clone3's set_tid); further, or round a wrap, it is
#: the whole service.
SCAN_TOLD = 64


def _number(ns: int, nr: int, mode: str) -> tuple:
    """One number's bit of a namespace's pidmap, as an object (``nr`` "NS:NR")."""
    return ("nr", f"{ns}:{nr}", mode)


def alloc_pid_touches(service: PidService, args: dict) -> list | None:
    """explore's reduction (``@touches``): alloc_pid moves the cursor of every level of the
    namespace chain (which number it takes depends on the allocations before it, so two
    allocations in one namespace conflict), reads the numbers its scan passes, from the
    cursor on, and writes the one it takes; and a new handle. A free of a number the scan
    does not reach commutes with it: an allocation never looks behind its cursor before a
    wrap. set_tid, a wrap or a long scan: the whole service."""
    if args.get("set_tid"):
        return None
    out = [("handles", 0, "w")]
    for handle in service._chain(args["ns"]):
        ns = service.namespaces[handle]
        start = ns.last + 1
        nr = service._scan_pidmap(ns, start, service.pid_max)
        if nr is None or nr - start > SCAN_TOLD:
            return None
        out += [("ns", handle, "w"), *(_number(handle, n, "r") for n in range(start, nr)), _number(handle, nr, "w")]
    return out


def free_pid_touches(service: PidService, args: dict) -> list:
    """A reference dropped (a count: commutes) or the last one: its numbers go back, one bit
    at every level (see alloc_pid_touches: an allocation whose scan passes it conflicts). In
    a nested namespace the free may end it (no one can join once its last process is gone,
    and its reference goes): its cursor and state written, as an allocation's there."""
    p = service.pids[args["pid"]]
    if p.refcount > 1:
        return [("pid", args["pid"], "c")]
    out = [("pid", args["pid"], "w"), *(_number(h, nr, "w") for nr, h in zip(p.numbers, p.nss, strict=True))]
    if any(h != INIT_PID_NS for h in p.nss):
        out += [("ns", h, "w") for h in p.nss]
    return out


class PidService(Service):
    """Allocates struct pids and their numbers in nested pid namespaces."""

    name = "pid"
    calls = frozenset()
    takes = {"pid_max": "pid_max"}  # Config field -> keyword of __init__ (services.build)
    never_waits = True  # no handler waits: a node may run requests in its reader

    def __init__(self, pid_max: int = abi.PID_MAX_DEFAULT):
        super().__init__()
        if pid_max < 2:
            raise ValueError("pid_max must leave room for pid 1")
        self.pid_max = pid_max
        self._next_handle = INIT_PID_NS
        self.namespaces: dict[int, PidNamespace] = {self._handle(): self._new_ns(level=0, parent=None)}
        self.pids: dict[int, Pid] = {}

    def _handle(self) -> int:
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        return handle

    def next_handle(self) -> int:
        """pid numbers its own handles (namespaces and struct pids share one counter)."""
        return self._next_handle

    def handles_from(self, first: int) -> None:
        self._next_handle = max(self._next_handle, first)

    def _new_ns(self, **kw: object) -> PidNamespace:
        """create_pid_namespace's pidmap: PIDMAP_ENTRIES pages for pid_max, none allocated
        but the first, whose bit 0 is set: pid 0 is the idle task's, never handed out."""
        ns = PidNamespace(**kw)
        ns.pidmap = [PidMap() for _ in range((self.pid_max + BITS_PER_PAGE - 1) // BITS_PER_PAGE)]
        ns.pidmap[0] = PidMap(page=new_page(), nr_free=BITS_PER_PAGE - 1)
        ns.pidmap[0].page[0] = 1
        return ns

    def _chain(self, ns: int) -> list[int]:
        """The namespace handles from level 0 down to ``ns``."""
        handles = []
        while ns is not None:
            handles.append(ns)
            ns = self.namespaces[ns].parent
        return handles[::-1]

    # --- numbers ------------------------------------------------------------
    def alloc_pidmap(self, ns: PidNamespace, handle: int) -> int:
        """alloc_pidmap: the first free number after ``last``, else (the wrap) the first
        from RESERVED_PIDS; EAGAIN when every one is taken.

        Linux never lets pid_max below RESERVED_PIDS + 1; ukernel does (a lab with pid_max
        8), and there the wrap goes back to 1 as long as the cursor has not passed
        RESERVED_PIDS, as today's IDR allocator does (``idr_get_cursor > RESERVED_PIDS``)."""
        start = ns.last + 1
        pid_min = abi.RESERVED_PIDS if start > abi.RESERVED_PIDS else 1
        nr = self._scan_pidmap(ns, start, self.pid_max)
        if nr is None:
            nr = self._scan_pidmap(ns, pid_min, start)
        if nr is None:
            raise abi.kernel_error(abi.EAGAIN, f"no free pid below pid_max {self.pid_max} at level {ns.level}")
        self._set_pidmap(ns, nr, handle)
        ns.last = nr
        return nr

    def _scan_pidmap(self, ns: PidNamespace, nr: int, end: int) -> int | None:
        """The first zero bit in [nr, end): page by page, full pages skipped by nr_free."""
        while nr < end:
            index, offset = divmod(nr, BITS_PER_PAGE)
            pidmap = ns.pidmap[index]
            if pidmap.nr_free:
                offset = find_next_offset(pidmap, offset)
                if offset < BITS_PER_PAGE:
                    nr = mk_pid(index, offset)
                    return nr if nr < end else None
            nr = mk_pid(index + 1, 0)
        return None

    def _set_pidmap(self, ns: PidNamespace, nr: int, handle: int) -> None:
        """test_and_set_bit on a bit known clear; the page is allocated on first use."""
        index, offset = divmod(nr, BITS_PER_PAGE)
        pidmap = ns.pidmap[index]
        if pidmap.page is None:
            pidmap.page = new_page()
        word, bit = divmod(offset, BITS_PER_LONG)
        pidmap.page[word] |= 1 << bit
        if pidmap.page[word] == WORD_FULL:
            pidmap.full |= 1 << word
        pidmap.nr_free -= 1
        ns.used[nr] = handle

    def free_pidmap(self, ns: PidNamespace, nr: int) -> None:
        """free_pidmap: clear the bit (the page stays, as Linux keeps it) and unhash the number."""
        index, offset = divmod(nr, BITS_PER_PAGE)
        pidmap = ns.pidmap[index]
        word, bit = divmod(offset, BITS_PER_LONG)
        pidmap.full &= ~(1 << word)
        pidmap.page[word] &= ~(1 << bit) & WORD_FULL
        pidmap.nr_free += 1
        del ns.used[nr]

    def alloc_tid(self, ns: PidNamespace, handle: int, tid: int) -> int:
        """clone3's set_tid: exactly this number; the cursor does not move."""
        if not 1 <= tid < self.pid_max:
            raise abi.kernel_error(abi.EINVAL, f"set_tid {tid} is outside [1, {self.pid_max})")
        if tid in ns.used:
            raise abi.kernel_error(abi.EEXIST, f"pid {tid} is taken at level {ns.level}")
        self._set_pidmap(ns, tid, handle)
        return tid

    @op
    @touches(alloc_pid_touches)
    async def alloc_pid(self, req: Call, ns: int, set_tid: list[int] | None = None) -> dict:
        """alloc_pid: one number per level, from ``ns``'s own level out to level 0.

        ``set_tid[0]`` is wanted in ``ns`` itself, ``set_tid[1]`` in its parent,
        and so on (clone3, used by checkpoint/restore). If any level fails, the
        numbers already taken are given back, but the cursors stay advanced.
        """
        top = get(self.namespaces, ns, "pid namespace")
        set_tid = list(set_tid or [])
        if len(set_tid) > top.level + 1:
            raise abi.kernel_error(abi.EINVAL, f"{len(set_tid)} set_tid entries for {top.level + 1} levels")
        handle = self._handle()
        chain_ = self._chain(ns)
        numbers = [0] * len(chain_)
        taken: list[tuple[PidNamespace, int]] = []
        try:
            for i in range(top.level, -1, -1):
                tmp = self.namespaces[chain_[i]]
                k = top.level - i
                nr = self.alloc_tid(tmp, handle, set_tid[k]) if k < len(set_tid) else self.alloc_pidmap(tmp, handle)
                taken.append((tmp, nr))
                numbers[i] = nr
            # Checked last, as Linux does under the lock: a dying namespace takes no one new.
            if not top.adding:
                raise abi.kernel_error(abi.ENOMEM, f"pid namespace {ns} is dying (its init has exited)")
        except BaseException:
            for tmp, nr in taken:
                self.free_pidmap(tmp, nr)
            if top.adding and not top.used:
                top.last = 0  # the first pid failed: the next try must still get 1, the init
            raise
        self.pids[handle] = Pid(numbers, chain_)
        if ns != INIT_PID_NS:
            top.refcount += 1  # a struct pid keeps its namespace alive (get_pid_ns)
        return {"pid": handle, "numbers": numbers}

    @op
    @touches(lambda service, args: [("pid", args["pid"], "c")])
    async def get_pid(self, req: Call, pid: int) -> int:
        """get_pid: one more holder (a task, a pidfd, a process group)."""
        p = get(self.pids, pid, "struct pid")
        p.refcount += 1
        return p.refcount

    @op
    @touches(free_pid_touches)
    async def free_pid(self, req: Call, pid: int) -> int:
        """Drop one reference; the last one gives the numbers back at every level.

        (Linux splits this: free_pid unhashes the numbers, put_pid frees the
        struct. Here both happen when the last holder lets go.) A number given
        back is not reused before the cursor wraps round to it.
        """
        p = get(self.pids, pid, "struct pid")
        p.refcount -= 1
        if p.refcount:
            return p.refcount
        del self.pids[pid]
        for nr, handle in zip(p.numbers, p.nss, strict=True):
            ns = self.namespaces[handle]
            self.free_pidmap(ns, nr)
            if not ns.used and handle != INIT_PID_NS:
                ns.adding = False  # its last process is gone: no one can join it again
        self._put_ns(p.nss[-1])
        return 0

    # --- namespaces -------------------------------------------------------
    @op
    async def create_pid_ns(self, req: Call, parent: int, inum: int = 0) -> dict:
        """create_pid_namespace: a child of ``parent``, nested one level deeper; ``inum``
        is the number the namespaces service gave it (its /proc/PID/ns/pid name)."""
        up = get(self.namespaces, parent, "pid namespace")
        if up.level + 1 > abi.MAX_PID_NS_LEVEL:
            raise abi.kernel_error(abi.ENOSPC, f"pid namespaces nest at most {abi.MAX_PID_NS_LEVEL} deep")
        if parent != INIT_PID_NS:
            up.refcount += 1
        handle = self._handle()
        self.namespaces[handle] = self._new_ns(level=up.level + 1, parent=parent, inum=inum)
        return {"ns": handle, "level": up.level + 1}

    @op
    async def get_pid_ns(self, req: Call, ns: int) -> int:
        """get_pid_ns (a no-op on the initial namespace, which is never freed)."""
        n = get(self.namespaces, ns, "pid namespace")
        if ns != INIT_PID_NS:
            n.refcount += 1
        return n.refcount

    @op
    async def put_pid_ns(self, req: Call, ns: int) -> int:
        """put_pid_ns: the last reference frees it and drops its ref on the parent."""
        get(self.namespaces, ns, "pid namespace")
        return self._put_ns(ns)

    @op
    async def nsproxy_refs(self, req: Call) -> list[list[int]]:
        """[ns, n]: the references to each pid namespace that its struct pids and child
        namespaces do not hold, so nsproxies do (get_pid_ns, create_pid_ns, pidns_install).
        RS puts them for a namespaces instance lost with its nsproxies (restore.py)."""
        held = {handle: ns.refcount for handle, ns in self.namespaces.items() if handle != INIT_PID_NS}
        for p in self.pids.values():
            if p.nss[-1] in held:
                held[p.nss[-1]] -= 1
        for ns in self.namespaces.values():
            if ns.parent in held:
                held[ns.parent] -= 1
        return [[handle, n] for handle, n in held.items() if n > 0]

    def _put_ns(self, ns: int) -> int:
        while ns != INIT_PID_NS:
            n = self.namespaces[ns]
            n.refcount -= 1
            if n.refcount:
                return n.refcount
            del self.namespaces[ns]
            ns = n.parent
        return self.namespaces[INIT_PID_NS].refcount

    @op
    async def pid_ns_inum(self, req: Call, ns: int) -> int:
        """The inode number of a pid namespace (the ``pid:[N]`` of /proc/PID/ns/pid)."""
        return get(self.namespaces, ns, "pid namespace").inum

    @op
    async def pidns_install(self, req: Call, active: int, inum: int) -> int:
        """setns to the pid namespace numbered ``inum``: only the caller's active one or a
        descendant of it (pidns_install), so no one can see pids from above; a new
        reference for pid_ns_for_children."""
        handle = next((h for h, n in self.namespaces.items() if n.inum == inum), None)
        if handle is None:
            raise abi.kernel_error(abi.EINVAL, f"pid namespace {inum} is gone")
        level = get(self.namespaces, active, "pid namespace").level
        ancestor = handle
        while self.namespaces[ancestor].level > level:
            ancestor = self.namespaces[ancestor].parent
        if ancestor != active:
            raise abi.kernel_error(abi.EINVAL, f"pid namespace {inum} is not the caller's or below it")
        await self.get_pid_ns(req, handle)
        return handle

    @op
    async def disable_pid_allocation(self, req: Call, ns: int) -> None:
        """Clear PIDNS_ADDING: the namespace's init died, later forks in it get ENOMEM."""
        get(self.namespaces, ns, "pid namespace").adding = False

    # --- lookups ------------------------------------------------------------
    @op
    async def pid_nr_ns(self, req: Call, pid: int, ns: int) -> int:
        """The number ``pid`` has in ``ns``; 0 if ns cannot see it (deeper, or a stranger)."""
        p = get(self.pids, pid, "struct pid")
        level = get(self.namespaces, ns, "pid namespace").level
        if level < len(p.nss) and p.nss[level] == ns:
            return p.numbers[level]
        return 0

    @op
    async def find_pid(self, req: Call, ns: int, nr: int) -> int | None:
        """find_pid_ns: the struct pid that has number ``nr`` in ``ns``, if any."""
        return get(self.namespaces, ns, "pid namespace").used.get(nr)

    @op
    async def ns_last_pid(self, req: Call, ns: int) -> int:
        """/proc/sys/kernel/ns_last_pid: the last number handed out in ``ns``."""
        return get(self.namespaces, ns, "pid namespace").last

    @op
    async def pid_info(self, req: Call, pid: int) -> dict:
        p = get(self.pids, pid, "struct pid")
        return {"numbers": list(p.numbers), "level": len(p.numbers) - 1, "ns": p.nss[-1]}

    @op
    async def accounting(self, req: Call) -> dict:
        return {
            "faults": len(self.faults),
            "pids": len(self.pids),
            "numbers": sum(len(ns.used) for ns in self.namespaces.values()),
            "namespaces": len(self.namespaces),
            "refs": sum(p.refcount for p in self.pids.values()),
        }
