"""A buggy files.py (tests/test_lab_pid_files.py): the reference solution, except that
dup_files copies the fd table without taking a reference on each open file (no
f_count++), so the child's exit closes the parent's files."""

from pathlib import Path

import ukernel
from services.vfs.inode import FilesStruct
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "files" / "solution" / "files.py")


class Files(reference.Files):
    async def dup_files(self, req, files: int) -> dict:
        table = {fd: list(entry) for fd, entry in self._fst(files).fds.items()}  # BUG: no f_count++
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}
