"""hostname [NAME]: print the uts namespace's nodename, or set it (sethostname).

In a container the name is the container's own: CLONE_NEWUTS gave it a copy.
"""


async def main(sys, argv):
    if len(argv) > 1:
        await sys.sethostname(argv[1])
        return 0
    await sys.write(1, (await sys.uname())["nodename"] + "\n")
    return 0
