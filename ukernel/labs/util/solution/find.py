"""find DIR NAME: print every path under DIR whose last component is NAME (xv6's find lab).

Files and directories both match; the walk goes into every directory (a
matching one too) but never into "." or "..", and does not follow symlinks
(lstat). Paths are printed as DIR/sub/NAME, one a line.
"""

import stat

from ukernel.abi import O_DIRECTORY, O_RDONLY


async def complain(sys, text):
    await sys.write(2, f"find: {text}\n")


async def listdir(sys, path):
    """The names in a directory, without "." and ".."."""
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("listdir: your code here (handout: 4. find)")
    fd = await sys.open(path, O_RDONLY | O_DIRECTORY)
    names = []
    try:
        while batch := await sys.getdents(fd):
            names += batch
    finally:
        await sys.close(fd)
    return [n for n in names if n not in (".", "..")]
    # END SOLUTION


async def find(sys, path, name):
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("find: your code here (handout: 4. find)")
    for entry in await listdir(sys, path):
        full = f"{path.rstrip('/')}/{entry}"
        if entry == name:
            await sys.write(1, full + "\n")
        if stat.S_ISDIR((await sys.lstat(full)).st_mode):
            await find(sys, full, name)
    # END SOLUTION


async def main(sys, argv):
    if len(argv) != 3:
        await sys.write(2, "usage: find DIR NAME\n")
        return 1
    # BEGIN SOLUTION
    # STUB: raise NotImplementedError("find: your code here (handout: 4. find)")
    try:
        if not stat.S_ISDIR((await sys.stat(argv[1])).st_mode):
            await complain(sys, f"{argv[1]}: not a directory")
            return 1
        await find(sys, argv[1], argv[2])
    except OSError as exc:
        await complain(sys, f"{argv[1]}: {exc.strerror}")
        return 1
    return 0
    # END SOLUTION
