"""What each vfs op touches, for ``ukernel explore``'s partial-order reduction (``@touches``).

Each function answers ``[kind, id, mode]`` for an op's arguments, as the state is
before the op runs: the kernel cannot resolve an fd to its open file and inode,
the vfs can. Two steps commute unless they share an object that one of them
writes ("w"); reads ("r") commute, and so do changes of a reference count that
release nothing ("c": f_count, files_struct.count, fs_struct.users): the sums
are the same in either order. A put that drops a count to zero is a write of it
(the release closes pipe ends, wakes their waiters, frees an orphan's bytes).

Objects: ``files``/``fs`` (a files_struct, an fs_struct, by handle), ``file``
(an open file: its position and flags), ``fcount`` (its f_count), ``inode`` (by
number: data, times, i_count, a pipe's buffer and ends), ``waiter`` (a wait-queue
entry: whoever wakes or removes it names it), ``console`` (/dev/console: the
output, the line discipline, its readers), and the service's counters: ``handles``
(new handles), ``clock`` (inode times and numbers), ``tmpfs`` (bytes used), and
``names`` (the dentry tree and mounts, read by every path walk). Any op not
declared here is the whole vfs.
"""

from __future__ import annotations

from typing import Any

from ukernel import abi

Touched = list[tuple[str, Any, str]]

CONSOLE = ("console", 0, "w")
HANDLES = ("handles", 0, "w")
CLOCK = ("clock", 0, "w")
TMPFS = ("tmpfs", 0, "w")
NAMES_R = ("names", 0, "r")


def inode_objects(vfs: Any, inode: Any, mode: str = "w") -> Touched:
    """An inode as reaching it touches it: the console is one object with its readers'
    queue; a pipe is written with the waiters on its queues (a wake answers them)."""
    if inode.device in ("console", "tty"):
        return [CONSOLE, *(("waiter", h, "w") for h in vfs.console_wait)]
    if inode.pipe is not None:
        p = inode.pipe
        queues = (p.rd_wait, p.wr_wait, p.rd_open_wait, p.wr_open_wait)
        return [("inode", inode.ino, "w"), *(("waiter", h, "w") for q in queues for h in q)]
    return [("inode", inode.ino, mode)]


def fput_objects(vfs: Any, handle: int, drops: int = 1) -> Touched:
    """``drops`` references to an open file go: a count change, or its release (__fput)."""
    file = vfs.files[handle]
    if file.f_count > drops:
        return [("fcount", handle, "c")]
    out = [("fcount", handle, "w"), ("file", handle, "w"), *inode_objects(vfs, file.inode)]
    if file.inode in vfs.orphans:  # the last opener of an unlinked file frees its bytes
        out += [("names", 0, "w"), TMPFS]
    return out


def _fd(vfs: Any, args: dict) -> tuple[int | None, Any]:
    """The open file (handle, File) behind ``files``/``fd``, or (None, None)."""
    entry = vfs.files_structs[args["files"]].fds.get(args.get("fd"))
    return (None, None) if entry is None else (entry[0], vfs.files[entry[0]])


def read_write(vfs: Any, args: dict, write: bool) -> Touched:
    """read/write: the fd table (r), the open file (w where its position moves), and what it
    reaches: a regular file's inode (written: its data, times, the tmpfs's count), a pipe, the
    console (console writes conflict with each other: the output's order)."""
    out: Touched = [("files", args["files"], "r")]
    handle, file = _fd(vfs, args)
    if file is None:
        return out  # EBADF
    inode = file.inode
    if inode.pipe is not None:
        out += [("file", handle, "r"), *inode_objects(vfs, inode)]
        pipe = inode.pipe
        if write:
            data = args.get("data")
            waits = not isinstance(data, bytes) or len(data) > pipe.room()
        else:
            waits = not pipe.buffer and args.get("n") and pipe.writers
        return out + [HANDLES] if waits else out  # a wait-queue entry is a new handle
    if inode.device in ("console", "tty"):  # a read may wait for input (a new entry)
        return out + [("file", handle, "r"), *inode_objects(vfs, inode), *([] if write else [HANDLES])]
    if inode.device or inode.is_dir or inode.nsfs or (write and inode.proc is not None):
        return out + [("file", handle, "r"), ("inode", inode.ino, "r")]  # /dev/null; errors; the kernel's
    out.append(("file", handle, "w"))  # its position moves (a /proc file's too)
    return out + ([("inode", inode.ino, "w"), CLOCK, TMPFS] if write else [("inode", inode.ino, "r")])


def read(vfs: Any, args: dict) -> Touched:
    return read_write(vfs, args, False)


def write(vfs: Any, args: dict) -> Touched:
    return read_write(vfs, args, True)


def ioctl(vfs: Any, args: dict) -> Touched:
    """A terminal ioctl reads or sets the console's line discipline and owner (TCSETS wakes
    its readers); on another file it is ENOTTY."""
    handle, file = _fd(vfs, args)
    out: Touched = [("files", args["files"], "r")]
    if file is None:
        return out
    return out + [("file", handle, "r"), *inode_objects(vfs, file.inode, "r")]


def dup_files(vfs: Any, args: dict) -> Touched:
    """dup_fd: the old table read, a new handle, one more reference to each open file."""
    fds = vfs.files_structs[args["files"]].fds
    return [("files", args["files"], "r"), HANDLES, *(("fcount", h, "c") for h in {h for h, _ in fds.values()})]


def share_files(vfs: Any, args: dict) -> Touched:
    return [("files", args["files"], "c")]


def put_files(vfs: Any, args: dict) -> Touched:
    """The last user closes every fd (each open file losing as many references as fds)."""
    fst = vfs.files_structs[args["files"]]
    if fst.count > 1:
        return [("files", args["files"], "c")]
    return [("files", args["files"], "w"), *_closes(vfs, [h for h, _ in fst.fds.values()])]


def _closes(vfs: Any, handles: list[int]) -> Touched:
    out: Touched = []
    for handle in set(handles):
        out += fput_objects(vfs, handle, handles.count(handle))
    return out


def exec_files(vfs: Any, args: dict) -> Touched:
    """A shared table is copied first (every file one more reference, closed again below:
    no release); then the FD_CLOEXEC fds close."""
    fst = vfs.files_structs[args["files"]]
    out: Touched = [("files", args["files"], "w")]
    if fst.count > 1:
        return out + [HANDLES, *(("fcount", h, "c") for h in {h for h, _ in fst.fds.values()})]
    return out + _closes(vfs, [h for h, cloexec in fst.fds.values() if cloexec])


def close(vfs: Any, args: dict) -> Touched:
    handle, _ = _fd(vfs, args)
    out: Touched = [("files", args["files"], "w")]
    return out if handle is None else out + fput_objects(vfs, handle)


def dup(vfs: Any, args: dict) -> Touched:
    handle, _ = _fd(vfs, args)
    out: Touched = [("files", args["files"], "w")]
    return out if handle is None else out + [("fcount", handle, "c")]


def copy_fs(vfs: Any, args: dict) -> Touched:
    return [("fs", args["fs"], "r"), HANDLES]


def share_fs(vfs: Any, args: dict) -> Touched:
    return [("fs", args["fs"], "c")]


def put_fs(vfs: Any, args: dict) -> Touched:
    return [("fs", args["fs"], "c" if vfs.fs_structs[args["fs"]].users > 1 else "w")]


def pipe2(vfs: Any, args: dict) -> Touched:
    """A new pipe inode (its number and times from the counters) and two open files."""
    return [("files", args["files"], "w"), HANDLES, CLOCK]


def _found(vfs: Any, fs: int, path: str, follow: bool = True) -> Any:
    """The path walk's answer (a /proc path raises: the op is then the whole vfs)."""
    return vfs._walk(vfs.fs_structs[fs], path, follow)


def stat(vfs: Any, args: dict, follow: bool = True) -> Touched:
    """A path walk reads the names and the fs_struct; the stat reads the inode (its times)."""
    out: Touched = [("fs", args["fs"], "r"), NAMES_R]
    try:
        found = _found(vfs, args["fs"], args["path"], follow)
    except OSError:
        return out
    return out if found.inode is None else out + [("inode", found.inode.ino, "r")]


def lstat(vfs: Any, args: dict) -> Touched:
    return stat(vfs, args, False)


def fstat(vfs: Any, args: dict) -> Touched:
    handle, file = _fd(vfs, args)
    out: Touched = [("files", args["files"], "r")]
    return out if file is None else out + [("inode", file.inode.ino, "r")]


def open_(vfs: Any, args: dict) -> Touched:
    """open: the walk, a new open file in the table, the inode it opens (its i_count, a FIFO's
    ends and waiters, the console's owner); O_CREAT of a new name writes the names, O_TRUNC the data."""
    flags = args.get("flags", 0)
    out: Touched = [("files", args["files"], "w"), ("fs", args["fs"], "r"), NAMES_R, HANDLES]
    try:
        found = _found(vfs, args["fs"], args["path"], not flags & (abi.O_NOFOLLOW | abi.O_EXCL))
    except OSError:
        return out
    if found.inode is None:
        return out + ([("names", 0, "w"), CLOCK] if flags & abi.O_CREAT else [])
    out += inode_objects(vfs, found.inode)
    return out + [CLOCK, TMPFS] if flags & abi.O_TRUNC else out


def kernel_read_file(vfs: Any, args: dict) -> Touched:
    """execve reads a program's bytes: the walk and the inode's data."""
    return stat(vfs, args)


def finish_wait(vfs: Any, args: dict) -> Touched:
    """A sleeper leaves its queue: the entry, and the pipe or console whose queue holds it
    (a wake that came first would have answered it)."""
    waiter = args["waiter"]
    out: Touched = [("waiter", waiter, "w")]
    if waiter in vfs.console_wait:
        return out + [CONSOLE]
    for file in vfs.files.values():
        p = file.inode.pipe
        if p is not None and any(waiter in q for q in (p.rd_wait, p.wr_wait, p.rd_open_wait, p.wr_open_wait)):
            return out + [("inode", file.inode.ino, "w")]
    return out
