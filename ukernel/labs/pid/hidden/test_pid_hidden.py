"""The pid lab's hidden tests: the edges of the allocator and of pid namespaces."""

from ukernel.lab import test


@test(points=2)
def wrap_restarts_at_reserved_pids(lab):
    # Past RESERVED_PIDS (300) the cursor wraps to 300, not 1: the low pids are the daemons'.
    r = lab.run(lab.helper("wrap.py"), ["wrap", "320"], pid_max=310)
    lab.expect_output(r, ["3-309 300-309 300-302"])


@test(points=2)
def full_pid_space_makes_fork_eagain(lab):
    # pid_max 12: the children hold 3 .. 11; the tenth fork finds no pid (idr's ENOSPC: EAGAIN).
    r = lab.run(lab.helper("exhaust.py"), ["exhaust"], pid_max=12)
    lab.expect_output(r, ["held 9, then fork: EAGAIN", "child getpid 3", "fork 3"])


@test(points=1)
def failed_first_pid_of_a_namespace_leaves_1_for_its_init(lab):
    # The namespace's number 1 was taken, then given back when level 0 was full: the next
    # fork into it must still be its init, 1 (alloc_pid resets the cursor).
    r = lab.run(lab.helper("exhaust.py"), ["exhaust", "newpid"], pid_max=6)
    lab.expect_output(
        r, ["held 3, then fork: EAGAIN", "fork into the new namespace: EAGAIN", "child getpid 1", "fork 3"]
    )


@test(points=1)
def namespace_whose_init_is_gone_refuses_forks(lab):
    r = lab.run(lab.helper("deadns.py"), ["deadns"])
    lab.expect_output(r, ["init getpid 1", "fork 3", "fork again: ENOMEM"])


@test(points=1)
def set_tid_in_a_new_namespace_numbers_both_levels(lab):
    r = lab.run(lab.helper("settid_ns.py"), ["settid_ns"])
    lab.expect_output(r, ["clone3 60", "clone3 again: EEXIST", "container getpid 1"])


# --- straight to the service, as the kernel would send (ukernel.testing.service_client) ---
CLEAN = {"faults": 0, "pids": 0, "numbers": 0, "namespaces": 1, "refs": 0}


@test(points=1)
def free_pid_drops_one_reference(lab):
    async def script(call, attempt):
        p = (await call("alloc_pid", ns=1))["pid"]
        said = [await call("get_pid", pid=p)]  # a second holder (a pidfd, a process group)
        said.append(await call("free_pid", pid=p))
        said.append(await call("pid_nr_ns", pid=p, ns=1))  # still there for the other holder
        said.append(await call("free_pid", pid=p))
        said.append(await call("find_pid", ns=1, nr=1))
        return said

    said, accounting = lab.talk("pid", script, pid_max=100)
    lab.check(said == [2, 1, 1, 0, None], f"get_pid, free_pid, pid_nr_ns, free_pid, find_pid gave {said}")
    lab.check(accounting == CLEAN, f"after the last free_pid the accounting was {accounting}")


@test(points=1)
def after_the_wrap_low_free_pids_stay_unused(lab):
    async def script(call, attempt):
        held = {}
        for _ in range(309):
            got = await call("alloc_pid", ns=1)
            held[got["numbers"][0]] = got["pid"]
        said = [sorted(held) == list(range(1, 310)), await attempt("alloc_pid", ns=1)]
        for nr in (5, 300, 305):
            await call("free_pid", pid=held.pop(nr))
        for _ in range(2):
            got = await call("alloc_pid", ns=1)
            said.append(got["numbers"])
            held[got["numbers"][0]] = got["pid"]
        said.append(await attempt("alloc_pid", ns=1))  # 5 is free, but below RESERVED_PIDS
        for handle in held.values():
            await call("free_pid", pid=handle)
        return said

    said, accounting = lab.talk("pid", script, pid_max=310)
    want = [True, "EAGAIN", [300], [305], "EAGAIN"]
    lab.check(
        said == want,
        f"1 .. 309 taken?, alloc_pid, then after freeing 5 300 305 three more gave {said}, expected {want}",
    )
    lab.check(accounting == CLEAN, f"after freeing everything the accounting was {accounting}")
