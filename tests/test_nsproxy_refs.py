"""nsproxy_refs in pid and vfs: the references nsproxies hold there, which RS puts for a lost
namespaces instance (restore.py), one put each, until no namespace of its is left."""

from __future__ import annotations

from services.pid import PidService
from services.vfs import VfsService
from ukernel.testing import service_client

ROOT = 1  # the initial pid and mount namespaces' handle
PID_CLEAN = {"faults": 0, "pids": 0, "numbers": 0, "namespaces": 1, "refs": 0}


async def put_all(c, op: str, arg: str) -> None:
    for handle, n in await c.call("nsproxy_refs"):
        for _ in range(n):
            await c.call(op, **{arg: handle})


async def test_pid_nsproxy_refs_are_what_no_struct_pid_or_child_namespace_holds():
    """A namespace's references but its struct pids' and its children's; none on the
    initial one (its gets are no-ops)."""
    async with service_client(PidService()) as c:
        outer = (await c.call("create_pid_ns", parent=ROOT))["ns"]  # the creating nsproxy's
        inner = (await c.call("create_pid_ns", parent=outer))["ns"]  # holds outer, not an nsproxy
        await c.call("get_pid_ns", ns=outer)  # a second nsproxy (a fork's copy)
        await c.call("get_pid_ns", ns=ROOT)
        init = await c.call("alloc_pid", ns=inner)  # holds inner, not an nsproxy
        assert await c.call("nsproxy_refs") == [[outer, 2], [inner, 1]]
        await put_all(c, "put_pid_ns", "ns")
        assert await c.call("nsproxy_refs") == []
        assert (await c.call("accounting"))["namespaces"] == 3  # init's struct pid keeps both alive
        await c.call("free_pid", pid=init["pid"])  # the last holder: both go
        assert await c.call("accounting") == PID_CLEAN


async def test_vfs_nsproxy_refs_are_every_count_but_the_initial_namespaces_own():
    async with service_client(VfsService()) as c:
        assert await c.call("nsproxy_refs") == []  # the boot nsproxy took none
        ns = (await c.call("copy_mnt_ns", mnt_ns=ROOT))["mnt_ns"]
        await c.call("get_mnt_ns", mnt_ns=ROOT)
        await c.call("get_mnt_ns", mnt_ns=ns)
        assert await c.call("nsproxy_refs") == [[ROOT, 1], [ns, 2]]
        await put_all(c, "put_mnt_ns", "mnt_ns")
        assert (await c.call("nsproxy_refs"), (await c.call("accounting"))["mnt_namespaces"]) == ([], 1)
