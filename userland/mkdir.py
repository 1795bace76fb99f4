"""mkdir [-p] DIR...: make directories; with -p, make missing parents and accept existing ones.

-p walks the path one component at a time: mkdir(2) each prefix, and treat
EEXIST as fine when what is there is a directory.
"""

import stat

from ukernel.abi import EEXIST
from userland.lib.fs import complain, strerror


async def make_parents(sys, path):
    prefix = "/" if path.startswith("/") else ""
    for part in [p for p in path.split("/") if p]:
        prefix += part
        try:
            await sys.mkdir(prefix)
        except OSError as exc:
            if exc.errno != EEXIST or not stat.S_ISDIR((await sys.stat(prefix)).st_mode):
                raise
        prefix += "/"


async def main(sys, argv):
    parents = "-p" in argv[1:]
    dirs = [a for a in argv[1:] if a != "-p"]
    if not dirs:
        await complain(sys, "mkdir", "missing operand")
        return 1
    status = 0
    for path in dirs:
        try:
            if parents:
                await make_parents(sys, path)
            else:
                await sys.mkdir(path)
        except OSError as exc:
            await complain(sys, "mkdir", f"cannot create directory '{path}': {strerror(exc)}")
            status = 1
    return status
