"""The pid bitmap (services/pid.py's alloc_pidmap) gives the numbers the plain cyclic
search gives, for any sequence, and stays O(pages) however many pids are live."""

from __future__ import annotations

from itertools import chain

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.pid import (
    BITS_PER_PAGE,
    INIT_PID_NS,
    WORD_FULL,
    WORDS_PER_PAGE,
    PidMap,
    PidNamespace,
    PidService,
    find_next_zero_bit,
    new_page,
)
from ukernel import abi
from ukernel.testing import service_client


class ReferencePid(PidService):
    """The allocator before the bitmap: a walk over every number from the cursor (kept
    here only, as the reference the bitmap must agree with)."""

    def alloc_pidmap(self, ns: PidNamespace, handle: int) -> int:
        pid_min = abi.RESERVED_PIDS if ns.last + 1 > abi.RESERVED_PIDS else 1
        start = max(ns.last + 1, pid_min)
        for nr in chain(range(start, self.pid_max), range(pid_min, start)):
            if nr not in ns.used:
                ns.used[nr] = handle
                ns.last = nr
                return nr
        raise abi.kernel_error(abi.EAGAIN, f"no free pid below pid_max {self.pid_max} at level {ns.level}")

    def alloc_tid(self, ns: PidNamespace, handle: int, tid: int) -> int:
        if not 1 <= tid < self.pid_max:
            raise abi.kernel_error(abi.EINVAL, f"set_tid {tid} is outside [1, {self.pid_max})")
        if tid in ns.used:
            raise abi.kernel_error(abi.EEXIST, f"pid {tid} is taken at level {ns.level}")
        ns.used[tid] = handle
        return tid

    def free_pidmap(self, ns: PidNamespace, nr: int) -> None:
        del ns.used[nr]


def bits_agree(svc: PidService) -> None:
    """Every namespace's bitmap holds exactly its hashed numbers (and pid 0); nr_free and
    the summary of full words agree with the bits."""
    for ns in svc.namespaces.values():
        for index, pidmap in enumerate(ns.pidmap):
            want = [0] * WORDS_PER_PAGE
            for nr in [*ns.used, 0]:
                if nr // BITS_PER_PAGE == index:
                    want[nr % BITS_PER_PAGE // 64] |= 1 << nr % 64
            assert list(pidmap.page or [0] * WORDS_PER_PAGE) == want
            assert pidmap.nr_free == BITS_PER_PAGE - sum(word.bit_count() for word in want)
            assert pidmap.full == sum(1 << w for w, word in enumerate(want) if word == WORD_FULL)


def page_of(bits: int) -> PidMap:
    """A pidmap page holding ``bits`` (bit i: pid i), its summary of full words made as it is."""
    pidmap = PidMap(page=new_page(), nr_free=BITS_PER_PAGE - bits.bit_count())
    for w in range(WORDS_PER_PAGE):
        pidmap.page[w] = bits >> (64 * w) & WORD_FULL
        pidmap.full |= (pidmap.page[w] == WORD_FULL) << w
    return pidmap


def test_find_next_zero_bit_on_words():
    assert find_next_zero_bit(page_of(0), 0) == 0
    assert find_next_zero_bit(page_of(0b1011), 0) == 2
    assert find_next_zero_bit(page_of(0b1011), 3) == 4
    assert find_next_zero_bit(page_of((1 << BITS_PER_PAGE) - 1), 0) == BITS_PER_PAGE  # full: none in the page
    assert find_next_zero_bit(page_of((1 << 200) - 1 - (1 << 135)), 5) == 135  # past two full words
    assert find_next_zero_bit(page_of((1 << 200) - 1 - (1 << 135)), 136) == 200
    assert find_next_zero_bit(page_of((1 << BITS_PER_PAGE) - 1 - (1 << 32767)), 9) == 32767  # the last bit
    assert find_next_zero_bit(page_of((1 << BITS_PER_PAGE) - 1 - 1), 1) == BITS_PER_PAGE  # only below offset


# --- property: the bitmap against the reference, through the same messages ---------------------
#: Numbers near the edges that matter: the first pids, RESERVED_PIDS, a page boundary, pid_max.
EDGES = [1, 2, 299, 300, 301, BITS_PER_PAGE - 1, BITS_PER_PAGE, BITS_PER_PAGE + 1]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 7)),
        st.tuples(st.just("free"), st.integers(0, 63)),
        st.tuples(st.just("set_tid"), st.sampled_from(EDGES), st.integers(-2, 2), st.integers(0, 7)),
        st.tuples(st.just("seek"), st.sampled_from(EDGES), st.integers(-2, 2), st.integers(0, 7)),
        st.tuples(st.just("ns"), st.integers(0, 7)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(pid_max=301, steps=[("seek", 299, 0, 0), ("set_tid", 300, 0, 0), ("alloc", 0)])  # cursor at 300: wrap to 1
@example(pid_max=8, steps=[("alloc", 0)] * 8)  # the last page's bits past pid_max are never given
@given(pid_max=st.sampled_from([3, 8, 301, 310, BITS_PER_PAGE + 5, 2 * BITS_PER_PAGE + 3]), steps=ops)
async def test_bitmap_gives_the_reference_numbers(pid_max, steps):
    """Same replies (numbers, errnos, ns_last_pid) for alloc, free, set_tid (clone3), a
    write of ns_last_pid (checkpoint/restore's way to move the cursor) and new namespaces."""
    real, ref = PidService(pid_max=pid_max), ReferencePid(pid_max=pid_max)
    async with service_client(real) as a, service_client(ref) as b:
        nss, live = [INIT_PID_NS], []

        async def both(op, **args):
            got = []
            for c in (a, b):
                try:
                    got.append(("ok", await c.call(op, **args)))
                except OSError as exc:
                    got.append(("err", exc.errno, str(exc)))
            assert got[0] == got[1], f"{op}({args}): bitmap {got[0]}, reference {got[1]}"
            return got[0]

        for step in steps:
            kind, ns = step[0], nss[step[-1] % len(nss)]
            if kind == "alloc":
                done = await both("alloc_pid", ns=ns)
            elif kind == "set_tid":
                level = real.namespaces[ns].level
                tid = max(1, min(step[1] + step[2], pid_max + 1))
                done = await both("alloc_pid", ns=ns, set_tid=[tid] * min(level + 1, 2))
            elif kind == "free" and live:
                await both("free_pid", pid=live.pop(step[1] % len(live)))
                done = None
            elif kind == "seek":
                last = max(0, min(step[1] + step[2], pid_max - 1))
                real.namespaces[ns].last = ref.namespaces[ns].last = last
                done = None
            elif kind == "ns" and real.namespaces[ns].level < 3:
                made = await both("create_pid_ns", parent=ns)
                nss.append(made[1]["ns"])
                done = None
            else:
                done = None
            if done and done[0] == "ok":
                live.append(done[1]["pid"])
            for h in nss:
                if h in real.namespaces:
                    await both("ns_last_pid", ns=h)
            bits_agree(real)
        assert await a.call("accounting") == await b.call("accounting")
        for pid in live:
            await both("free_pid", pid=pid)
        bits_agree(real)


# --- the cost: flat in the number of live pids ------------------------------------------------
async def test_a_wrap_past_32000_live_pids_takes_the_first_free_one():
    """The number is right after a wrap past a nearly full page (what it costs is
    bench/scale.py's figure: tests never time)."""
    live, svc = 32000, PidService()
    ns = svc.namespaces[INIT_PID_NS]
    for nr in range(abi.RESERVED_PIDS, abi.RESERVED_PIDS + live):
        svc.alloc_tid(ns, 0, nr)
    ns.last = svc.pid_max - 1
    got = await svc.alloc_pid(None, INIT_PID_NS)
    assert got["numbers"] == [abi.RESERVED_PIDS + live]
    assert ns.pidmap[0].nr_free == BITS_PER_PAGE - live - 2  # pid 0, the 32,000 and the new one
    bits_agree(svc)


async def test_pages_are_made_on_first_use_and_full_ones_skipped():
    svc = PidService(pid_max=3 * BITS_PER_PAGE)
    ns = svc.namespaces[INIT_PID_NS]
    assert [m.page is None for m in ns.pidmap] == [False, True, True]  # page 0 holds pid 0's bit
    for nr in range(1, BITS_PER_PAGE):  # fill page 0
        svc.alloc_tid(ns, 0, nr)
    assert ns.pidmap[0].nr_free == 0
    ns.last = 5  # the search starts in a full page: nr_free says skip it, page 1 is made
    got = await svc.alloc_pid(None, INIT_PID_NS)
    assert got["numbers"] == [BITS_PER_PAGE] and ns.last == BITS_PER_PAGE
    assert ns.pidmap[1].page == page_of(1).page and ns.pidmap[2].page is None
    assert ns.pidmap[0].full == (1 << WORDS_PER_PAGE) - 1  # every word of page 0 is full
    await svc.free_pid(None, got["pid"])
    assert ns.pidmap[1].page == page_of(0).page and ns.pidmap[1].nr_free == BITS_PER_PAGE  # freed, the page kept
    bits_agree(svc)
