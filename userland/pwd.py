"""pwd: print the working directory, as getcwd(2) rebuilds it from the task's fs_struct.

A forked child has a copy of its parent's fs_struct, so /bin/pwd run by the
shell prints the shell's directory (the shell also has pwd as a built-in).
"""

from userland.lib.fs import write_all


async def main(sys, argv):
    await write_all(sys, 1, await sys.getcwd() + "\n")
    return 0
