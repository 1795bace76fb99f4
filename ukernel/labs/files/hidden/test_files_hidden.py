"""The files lab's hidden tests: pipes' EOF, exec and close-on-exec, and the counts themselves."""

from ukernel import abi
from ukernel.lab import test


def with_probe(lab) -> dict:
    return {"/bin/probe": lab.helper("probe.py").read_bytes()}


@test(points=2)
def pipe_eof_comes_when_every_write_end_is_closed(lab):
    # A write end left open anywhere (a missing put_files or fput) leaves the reader waiting
    # for ever: the run ends as a deadlock, reported with each task's wait channel.
    r = lab.run(lab.helper("pipeeof.py"), ["pipeeof"])
    lab.check(not r.hung, f"the run hung: {r.error}")
    lab.expect_output(r, ["reader got b'hello', then EOF", "both reaped"])


@test(points=2)
def exec_closes_only_close_on_exec_fds(lab):
    r = lab.run(lab.helper("cloexec.py"), ["cloexec"], files=with_probe(lab))
    lab.expect_output(
        r,
        [
            "probe: fd 3 EBADF",  # opened O_CLOEXEC: dup_files copies the bit
            "probe: fd 4 open",
            "probe: fd 5 EBADF",  # the child set FD_CLOEXEC on its own fd
            "parent: FD_CLOEXEC [1, 0, 0], O_APPEND on b True",  # the bit is per table, O_APPEND per file
        ],
    )


@test(points=1)
def exec_unshares_a_clone_files_table(lab):
    r = lab.run(lab.helper("execfiles.py"), ["execfiles"], files=with_probe(lab))
    lab.expect_output(r, ["probe opened fd 4", "parent: fd 4 EBADF, write to fd 3: 1"])


# --- straight to the vfs, as the kernel would send (ukernel.testing.service_client) ---


def counts(accounting: dict) -> tuple:
    return tuple(accounting[k] for k in ("files_structs", "files_refs", "open_files", "f_count", "fds"))


@test(points=2)
def dup_files_takes_a_reference_per_fd(lab):
    async def script(call, attempt):
        files = (await call("init_files"))["files"]  # 0, 1, 2: one open /dev/console
        fs = (await call("init_fs"))["fs"]
        fd = await call("open", files=files, fs=fs, path="/tmp/x", flags=abi.O_WRONLY | abi.O_CREAT)
        await call("dup2", files=files, old=fd, new=7)  # two fds, one open file
        child = (await call("dup_files", files=files))["files"]
        said = {"new table": child != files, "after dup_files": counts(await call("accounting"))}
        said["put_files"] = await attempt("put_files", files=child)
        said["after put_files"] = counts(await call("accounting"))
        said["write to fd 7"] = await attempt("write", files=files, fd=7, data=b"ok")
        said["last put_files"] = await attempt("put_files", files=files)
        said["at the end"] = counts(await call("accounting"))
        return said

    said, _ = lab.talk("vfs", script)
    # (files_structs, files_refs, open_files, f_count, fds): 0 1 2 7 on the console, 3 on /tmp/x
    want = {
        "new table": True,
        "after dup_files": (2, 2, 2, 10, 10),
        "put_files": {"count": 0},
        "after put_files": (1, 1, 2, 5, 5),
        "write to fd 7": 2,
        "last put_files": {"count": 0},
        "at the end": (0, 0, 0, 0, 0),
    }
    for what, value in want.items():
        lab.check(
            said[what] == value,
            f"{what}: {said[what]}, expected {value} (counts are files_structs, files_refs, open_files, f_count, fds)",
        )


@test(points=1)
def share_files_counts_the_tasks_sharing(lab):
    async def script(call, attempt):
        files = (await call("init_files"))["files"]
        said = [await call("share_files", files=files) == {"files": files} for _ in range(2)]  # the very table
        said.append(counts(await call("accounting")))
        said += [await call("put_files", files=files) for _ in range(3)]
        said.append(counts(await call("accounting")))
        said.append(await attempt("put_files", files=files))  # no such table any more
        return said

    said, _ = lab.talk("vfs", script)
    want = [True, True, (1, 3, 1, 3, 3), {"count": 2}, {"count": 1}, {"count": 0}]
    want += [(0, 0, 0, 0, 0), "EINVAL"]
    lab.check(
        said == want,
        f"share_files twice (the same table?), accounting, put_files three times, accounting, put_files: {said}, expected {want}",
    )
