"""A buggy files.py (tests/test_lab_pid_files.py): the reference solution, except that
dup_files takes an fd's entry ([handle, cloexec]) for the open file's handle: a
TypeError in the student's own line."""

from pathlib import Path

import ukernel
from services.vfs.inode import FilesStruct
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "files" / "solution" / "files.py")


class Files(reference.Files):
    async def dup_files(self, req, files: int) -> dict:
        old = self._fst(files)
        for entry in old.fds.values():
            self.files[entry].f_count += 1  # BUG: an fd's entry is [handle, cloexec], not the handle
        table = {fd: list(entry) for fd, entry in old.fds.items()}
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}
