"""rm [-r] [-f] PATH...: remove files; -r removes directories and what they hold; -f ignores missing ones.

unlink(2) removes a name (the inode goes when its last link and last open
file are gone); a directory needs rmdir(2), and only once it is empty, so -r
empties it first, depth first. lstat, not stat: a symlink to a directory is
removed itself, never followed.
"""

import stat

from ukernel.abi import ENOENT
from userland.lib.fs import complain, join, listdir, parse_flags, strerror


async def remove(sys, path, recursive):
    mode = (await sys.lstat(path)).st_mode
    if not stat.S_ISDIR(mode):
        await sys.unlink(path)
        return
    if not recursive:
        raise IsADirectoryError(21, "Is a directory")
    for name in await listdir(sys, path):  # the whole listing first, then remove
        if name not in (".", ".."):
            await remove(sys, join(path, name), recursive)
    await sys.rmdir(path)


async def main(sys, argv):
    flags, paths = parse_flags(argv)
    recursive, force = bool(flags & {"r", "R"}), "f" in flags
    if not paths and not force:
        await complain(sys, "rm", "missing operand")
        return 1
    status = 0
    for path in paths:
        try:
            await remove(sys, path, recursive)
        except OSError as exc:
            if force and exc.errno == ENOENT:
                continue
            await complain(sys, "rm", f"cannot remove '{path}': {strerror(exc)}")
            status = 1
    return status
