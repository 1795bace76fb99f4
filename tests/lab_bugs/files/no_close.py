"""A buggy files.py (tests/test_lab_pid_files.py): the reference solution, except that
put_files forgets the last table without closing its fds, so no file in it is ever
released (a pipe's write end stays open for ever)."""

from pathlib import Path

import ukernel
from ukernel.plugin import load_file

reference = load_file(Path(ukernel.__file__).parent / "labs" / "files" / "solution" / "files.py")


class Files(reference.Files):
    async def put_files(self, req, files: int) -> dict:
        fst = self._fst(files)
        fst.count -= 1
        if fst.count == 0:
            del self.files_structs[files]  # BUG: the fds are never closed (no fput)
        return {"count": fst.count}
