"""The pid service, driven only through messages (as the kernel would)."""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.pid import PidService
from ukernel import abi
from ukernel.testing import service_client

ROOT = 1
CLEAN = {"faults": 0, "pids": 0, "numbers": 0, "namespaces": 1, "refs": 0}


async def alloc(c, ns=ROOT, **kw):
    return await c.call("alloc_pid", ns=ns, **kw)


async def expect_errno(err, c, op, **args):
    with pytest.raises(OSError) as info:
        await c.call(op, **args)
    assert info.value.errno == err, f"{op}({args}) gave {errno.errorcode.get(info.value.errno)}"


async def test_cyclic_order_and_no_reuse_before_wrap():
    async with service_client(PidService(pid_max=10)) as c:
        got = [await alloc(c) for _ in range(3)]
        assert [g["numbers"] for g in got] == [[1], [2], [3]]
        assert await c.call("free_pid", pid=got[0]["pid"]) == 0
        assert (await alloc(c))["numbers"] == [4]  # 1 is free but the cursor is past it
        assert await c.call("ns_last_pid", ns=ROOT) == 4
        rest = [(await alloc(c))["numbers"][0] for _ in range(5)]
        assert rest == [5, 6, 7, 8, 9]
        assert (await alloc(c))["numbers"] == [1]  # wrapped (below 300: back to 1)
        await expect_errno(abi.EAGAIN, c, "alloc_pid", ns=ROOT)


async def test_wrap_restarts_at_reserved_pids_and_eagain_when_full():
    async with service_client(PidService(pid_max=310)) as c:
        handles = {}
        for nr in range(1, 310):
            got = await alloc(c)
            assert got["numbers"] == [nr]
            handles[nr] = got["pid"]
        await expect_errno(abi.EAGAIN, c, "alloc_pid", ns=ROOT)
        assert await c.call("ns_last_pid", ns=ROOT) == 309  # a failure leaves the cursor alone
        for nr in (5, 300, 305):
            await c.call("free_pid", pid=handles[nr])
        assert (await alloc(c))["numbers"] == [300]
        assert (await alloc(c))["numbers"] == [305]
        # 5 is free, but past the first wrap numbers below RESERVED_PIDS are not used.
        await expect_errno(abi.EAGAIN, c, "alloc_pid", ns=ROOT)
        acct = await c.call("accounting")
        assert acct["pids"] == acct["numbers"] == acct["refs"] == 308


async def test_nested_namespaces_number_every_level():
    async with service_client(PidService(pid_max=100)) as c:
        outer = [await alloc(c) for _ in range(4)]
        a = await c.call("create_pid_ns", parent=ROOT)
        assert a["level"] == 1
        b = await c.call("create_pid_ns", parent=a["ns"])
        assert b["level"] == 2
        init_b = await alloc(c, b["ns"])
        assert init_b["numbers"] == [5, 1, 1]  # level 0, level 1, level 2: init of both
        child = await alloc(c, b["ns"])
        assert child["numbers"] == [6, 2, 2]
        in_a = await alloc(c, a["ns"])
        assert in_a["numbers"] == [7, 3]
        info = await c.call("pid_info", pid=child["pid"])
        assert info == {"numbers": [6, 2, 2], "level": 2, "ns": b["ns"]}

        # visibility: an outer ns sees inner pids; an inner ns sees no outer ones
        assert await c.call("pid_nr_ns", pid=child["pid"], ns=ROOT) == 6
        assert await c.call("pid_nr_ns", pid=child["pid"], ns=a["ns"]) == 2
        assert await c.call("pid_nr_ns", pid=child["pid"], ns=b["ns"]) == 2
        assert await c.call("pid_nr_ns", pid=in_a["pid"], ns=b["ns"]) == 0
        assert await c.call("pid_nr_ns", pid=outer[0]["pid"], ns=a["ns"]) == 0
        sibling = await c.call("create_pid_ns", parent=ROOT)
        assert await c.call("pid_nr_ns", pid=child["pid"], ns=sibling["ns"]) == 0

        assert await c.call("find_pid", ns=a["ns"], nr=2) == child["pid"]
        assert await c.call("find_pid", ns=ROOT, nr=7) == in_a["pid"]
        assert await c.call("find_pid", ns=b["ns"], nr=3) is None
        assert await c.call("ns_last_pid", ns=b["ns"]) == 2


async def test_set_tid():
    async with service_client(PidService(pid_max=100)) as c:
        ns = (await c.call("create_pid_ns", parent=ROOT))["ns"]
        got = await alloc(c, ns, set_tid=[1, 50])  # innermost first
        assert got["numbers"] == [50, 1]
        assert await c.call("ns_last_pid", ns=ROOT) == 0  # an exact tid does not move the cursor
        assert (await alloc(c, ns, set_tid=[7]))["numbers"] == [1, 7]  # outer level: cyclic
        await expect_errno(abi.EINVAL, c, "alloc_pid", ns=ns, set_tid=[2, 3, 4])  # more than levels
        await expect_errno(abi.EINVAL, c, "alloc_pid", ns=ns, set_tid=[0])
        await expect_errno(abi.EINVAL, c, "alloc_pid", ns=ns, set_tid=[100])
        await expect_errno(abi.EINVAL, c, "alloc_pid", ns=ns, set_tid=[9, -1])
        before = await c.call("accounting")
        await expect_errno(abi.EEXIST, c, "alloc_pid", ns=ns, set_tid=[7])
        await expect_errno(abi.EEXIST, c, "alloc_pid", ns=ns, set_tid=[8, 50])  # 8 taken, then given back
        assert await c.call("accounting") == before
        assert await c.call("find_pid", ns=ns, nr=8) is None
        assert (await alloc(c, ns, set_tid=[8, 51]))["numbers"] == [51, 8]


async def test_failed_levels_give_numbers_back():
    async with service_client(PidService(pid_max=4)) as c:
        ns = (await c.call("create_pid_ns", parent=ROOT))["ns"]
        for _ in range(3):
            await alloc(c)  # fill level 0: 1, 2, 3
        await expect_errno(abi.EAGAIN, c, "alloc_pid", ns=ns)
        acct = await c.call("accounting")
        assert acct["numbers"] == acct["pids"] == 3
        # the inner number was given back, and since it was the ns's first pid,
        # the cursor is reset: the init must still get 1
        assert await c.call("ns_last_pid", ns=ns) == 0
        await c.call("free_pid", pid=await c.call("find_pid", ns=ROOT, nr=2))
        assert (await alloc(c, ns))["numbers"] == [2, 1]


async def test_depth_limit():
    async with service_client(PidService()) as c:
        ns, chain = ROOT, []
        for level in range(1, abi.MAX_PID_NS_LEVEL + 1):
            got = await c.call("create_pid_ns", parent=ns)
            assert got["level"] == level
            ns = got["ns"]
            chain.append(ns)
        await expect_errno(abi.ENOSPC, c, "create_pid_ns", parent=ns)
        got = await alloc(c, ns)
        assert got["numbers"] == [1] * (abi.MAX_PID_NS_LEVEL + 1)
        for outer in chain[:-1]:
            assert await c.call("put_pid_ns", ns=outer) == 1  # still held by its child
        assert await c.call("put_pid_ns", ns=ns) == 1  # still held by the pid
        assert (await c.call("accounting"))["namespaces"] == abi.MAX_PID_NS_LEVEL + 1
        await c.call("free_pid", pid=got["pid"])  # and now the whole chain goes
        assert await c.call("accounting") == CLEAN


async def test_refcounts_and_accounting_return_to_start():
    async with service_client(PidService()) as c:
        assert await c.call("accounting") == CLEAN
        ns = (await c.call("create_pid_ns", parent=ROOT))["ns"]
        inner = (await c.call("create_pid_ns", parent=ns))["ns"]
        p = await alloc(c, inner)
        q = await alloc(c)
        assert await c.call("get_pid", pid=p["pid"]) == 2
        assert await c.call("accounting") == {"faults": 0, "pids": 2, "numbers": 4, "namespaces": 3, "refs": 3}
        assert await c.call("put_pid_ns", ns=inner) == 1  # the pid still holds it
        assert await c.call("put_pid_ns", ns=ns) == 1  # inner still holds it
        assert await c.call("free_pid", pid=p["pid"]) == 1
        assert await c.call("pid_nr_ns", pid=p["pid"], ns=inner) == 1
        assert await c.call("free_pid", pid=p["pid"]) == 0  # last ref: numbers, inner, ns go
        assert await c.call("free_pid", pid=q["pid"]) == 0
        assert await c.call("accounting") == CLEAN
        await expect_errno(abi.EINVAL, c, "get_pid_ns", ns=ns)
        await c.call("put_pid_ns", ns=ROOT)  # the initial namespace is never freed
        assert (await alloc(c))["numbers"] == [3]  # p had 1, q had 2


async def test_dying_namespace_refuses_new_pids():
    async with service_client(PidService()) as c:
        ns = (await c.call("create_pid_ns", parent=ROOT))["ns"]
        init = await alloc(c, ns)
        await c.call("disable_pid_allocation", ns=ns)
        before = await c.call("accounting")
        await expect_errno(abi.ENOMEM, c, "alloc_pid", ns=ns)
        assert await c.call("accounting") == before
        await c.call("free_pid", pid=init["pid"])
        # a namespace whose last pid is gone stays closed, even without disable
        other = (await c.call("create_pid_ns", parent=ROOT))["ns"]
        await c.call("free_pid", pid=(await alloc(c, other))["pid"])
        await expect_errno(abi.ENOMEM, c, "alloc_pid", ns=other)


async def test_bad_handles_and_unknown_op():
    async with service_client(PidService()) as c:
        p = (await alloc(c))["pid"]
        for op, args in [
            ("alloc_pid", {"ns": 99}),
            ("alloc_pid", {"ns": p}),  # a pid handle is not a namespace handle
            ("get_pid", {"pid": ROOT}),
            ("free_pid", {"pid": 99}),
            ("pid_nr_ns", {"pid": p, "ns": 99}),
            ("find_pid", {"ns": "x", "nr": 1}),
            ("create_pid_ns", {"parent": 99}),
            ("put_pid_ns", {"ns": 99}),
            ("pid_info", {"pid": None}),
            ("alloc_pid", {}),
        ]:
            await expect_errno(abi.EINVAL, c, op, **args)
        await expect_errno(abi.ENOSYS, c, "idr_alloc")
        assert (await c.call("accounting"))["faults"] == 0


# --- property: any alloc/free sequence keeps numbers unique and counts honest ---
actions = st.lists(
    st.tuples(st.sampled_from(["alloc", "alloc", "free", "get", "ns"]), st.integers(0, 50)),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
async def test_random_sequences_keep_numbers_unique(steps):
    async with service_client(PidService(pid_max=8)) as c:
        nss = {ROOT: 0}  # ns handle -> level
        my_ns_refs = []  # namespaces we created and still hold
        live = {}  # pid handle -> (numbers, ns, refcount)
        for action, k in steps:
            if action == "alloc":
                ns = sorted(nss)[k % len(nss)]
                try:
                    got = await alloc(c, ns)
                except OSError as exc:
                    assert exc.errno in (abi.EAGAIN, abi.ENOMEM)
                    continue
                assert len(got["numbers"]) == nss[ns] + 1
                live[got["pid"]] = (got["numbers"], ns, 1)
            elif action in ("free", "get") and live:
                pid = sorted(live)[k % len(live)]
                numbers, ns, refs = live[pid]
                refs += 1 if action == "get" else -1
                assert await c.call(action + "_pid", pid=pid) == refs
                if refs:
                    live[pid] = (numbers, ns, refs)
                else:
                    del live[pid]
            elif action == "ns":
                parent = sorted(nss)[k % len(nss)]
                got = await c.call("create_pid_ns", parent=parent)
                nss[got["ns"]] = got["level"]
                my_ns_refs.append(got["ns"])

            # numbers are unique per namespace, and find_pid agrees with every pid
            for ns in nss:
                seen = {}
                for pid in live:
                    nr = await c.call("pid_nr_ns", pid=pid, ns=ns)
                    if nr:
                        assert nr not in seen, f"nr {nr} twice in ns {ns}"
                        seen[nr] = pid
                        assert await c.call("find_pid", ns=ns, nr=nr) == pid
            acct = await c.call("accounting")
            assert acct["pids"] == len(live)
            assert acct["refs"] == sum(r for _, _, r in live.values())
            assert acct["numbers"] == sum(len(n) for n, _, _ in live.values())
            assert acct["faults"] == 0

        for pid, (_, _, refs) in live.items():
            for _ in range(refs):
                await c.call("free_pid", pid=pid)
        for ns in my_ns_refs:
            await c.call("put_pid_ns", ns=ns)
        assert await c.call("accounting") == CLEAN
