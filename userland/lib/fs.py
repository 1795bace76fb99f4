"""Small helpers the coreutils share, written on the syscalls only (as libc is).

``listdir`` is opendir/readdir: open the directory with O_DIRECTORY and call
getdents until it returns an empty batch. ``mode_string`` is what ``ls -l``
prints in its first column: the file type letter, then rwx for owner, group
and others. ``say`` writes a whole string (write may write less than asked,
so it loops, as stdio's fflush does).
"""

import os
import stat

from ukernel.abi import O_DIRECTORY, O_RDONLY

BLOCK = 4096


def parse_flags(argv):
    """getopt-lite: the letters of every '-xyz' argument, and the other arguments."""
    flags, operands = set(), []
    for arg in argv[1:]:
        if arg.startswith("-") and len(arg) > 1:
            flags.update(arg[1:])
        else:
            operands.append(arg)
    return flags, operands


async def write_all(sys, fd, data):
    """write(2) until every byte is out."""
    if isinstance(data, str):
        data = data.encode()
    view = memoryview(data)
    while view:
        n = await sys.write(fd, bytes(view))
        view = view[n:]


async def say(sys, text, fd=1):
    await write_all(sys, fd, text)


async def complain(sys, prog, text):
    """The usual 'prog: what went wrong' line on stderr."""
    await write_all(sys, 2, f"{prog}: {text}\n")


def strerror(exc):
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def listdir(sys, path, each=None):
    """All names in a directory, '.' and '..' included, in getdents order; with
    ``each``, what ``await each(name)`` returns for each name instead, called while
    the directory is still open (as readdir loops do: ls -l stats inside it)."""
    fd = await sys.open(path, O_RDONLY | O_DIRECTORY)
    names = []
    try:
        while batch := await sys.getdents(fd):
            names += batch
        if each is not None:
            return [await each(name) for name in names]
    finally:
        await sys.close(fd)
    return names


async def read_file(sys, path):
    """A whole file's bytes (a /proc file is generated at open, so one open is one snapshot)."""
    fd = await sys.open(path, O_RDONLY)
    chunks = []
    try:
        while chunk := await sys.read(fd, BLOCK):
            chunks.append(chunk)
    finally:
        await sys.close(fd)
    return b"".join(chunks)


def join(directory, name):
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


TYPE_LETTERS = [
    (stat.S_ISDIR, "d"),
    (stat.S_ISLNK, "l"),
    (stat.S_ISCHR, "c"),
    (stat.S_ISBLK, "b"),
    (stat.S_ISFIFO, "p"),
    (stat.S_ISSOCK, "s"),
]


def mode_string(mode):
    """'drwxr-xr-x' from st_mode: a type letter, then three rwx triples (owner, group, other)."""
    kind = next((letter for test, letter in TYPE_LETTERS if test(mode)), "-")
    bits = ""
    for shift in (6, 3, 0):
        triple = (mode >> shift) & 0o7
        bits += ("r" if triple & 4 else "-") + ("w" if triple & 2 else "-") + ("x" if triple & 1 else "-")
    if mode & stat.S_ISVTX:  # the sticky bit (/tmp): 't' over others' x
        bits = bits[:-1] + ("t" if mode & 0o1 else "T")
    return kind + bits
