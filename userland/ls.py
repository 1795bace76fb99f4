"""ls [-l] [-a] [PATH...]: list directories (default '.'), one name a line, sorted.

A directory is read with getdents (userland/lib/fs.py: listdir); names that
start with '.' are hidden unless -a. Each entry is lstat(2)ed, so a symlink
is shown as itself, not as what it points to. -l prints one line per entry:

    MODE NLINK SIZE NAME[ -> TARGET]      e.g.  drwxr-xr-x  2     0 tmp

MODE is the type letter and rwx bits (lib/fs.py: mode_string); a symlink
shows its target, read with readlink(2). With several PATHs each directory
gets a 'PATH:' header and a blank line between them, as GNU ls does.
"""

import stat

from userland.lib.fs import complain, join, listdir, mode_string, parse_flags, strerror, write_all


async def entry_line(sys, path, name, long):
    if not long:
        return name
    info = await sys.lstat(path)
    line = f"{mode_string(info.st_mode)} {info.st_nlink:>2} {info.st_size:>5} {name}"
    if stat.S_ISLNK(info.st_mode):
        line += f" -> {await sys.readlink(path)}"
    return line


async def list_dir(sys, path, show_all, long):
    """The lines for one directory; each entry is lstat()ed while the directory is
    open, as GNU ls does (so /proc/self/fd shows the fd reading it)."""

    async def line(name):
        try:
            return name, await entry_line(sys, join(path, name), name, long)
        except OSError as exc:
            await complain(sys, "ls", f"cannot access '{join(path, name)}': {strerror(exc)}")
            return name, None

    lines = await listdir(sys, path, line)
    return [text for name, text in sorted(lines) if text is not None and (show_all or not name.startswith("."))]


async def main(sys, argv):
    flags, paths = parse_flags(argv)
    long, show_all = "l" in flags, "a" in flags
    status = 0
    files, dirs = [], []
    for path in paths or ["."]:
        try:
            info = await sys.lstat(path)
            if stat.S_ISLNK(info.st_mode) and not long:
                info = await sys.stat(path)  # a link to a directory lists the directory (without -l)
        except OSError as exc:
            await complain(sys, "ls", f"cannot access '{path}': {strerror(exc)}")
            status = 2
            continue
        (dirs if stat.S_ISDIR(info.st_mode) else files).append(path)
    out = [await entry_line(sys, path, path, long) for path in files]
    for i, path in enumerate(dirs):
        try:
            lines = await list_dir(sys, path, show_all, long)
        except OSError as exc:
            await complain(sys, "ls", f"cannot open directory '{path}': {strerror(exc)}")
            status = 2
            continue
        if len(paths) > 1:
            if out or i:
                out.append("")
            out.append(f"{path}:")
        out += lines
    if out:
        await write_all(sys, 1, "\n".join(out) + "\n")
    return status
