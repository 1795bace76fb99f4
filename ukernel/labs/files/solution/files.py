"""The files lab: copy_files's two ops and put_files, as Linux's kernel/fork.c and
fs/file.c have them.

``Files`` takes the place of the kernel's vfs service (``services/vfs/vfs.py``)
and overrides only share_files, dup_files and put_files; open, read, write,
close, pipe, dup, exec_files and the rest stay the base class's, working on
the same objects:

- ``self.files_structs``: handle -> FilesStruct (struct files_struct). ``fds``
  maps an fd to ``[file handle, cloexec]``; ``count`` is how many tasks share
  the table.
- ``self.files``: handle -> File (struct file, an open file description), with
  its offset ``pos`` and ``f_count``, the fd entries (in every table) that
  point at it.
"""

from __future__ import annotations

from services.vfs.inode import FilesStruct
from services.vfs.vfs import VfsService
from ukernel.ipc.service import Call


class Files(VfsService):
    """The vfs with your own copy_files and put_files."""

    async def share_files(self, req: Call, files: int) -> dict:
        """copy_files with CLONE_FILES: the child uses the parent's very table.
        Reply: {"files": the handle of the table the child gets}."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("share_files: your code here (handout, the task, step 1)")
        self._fst(files).count += 1  # atomic_inc(&oldf->count)
        return {"files": files}
        # END SOLUTION

    async def dup_files(self, req: Call, files: int) -> dict:
        """dup_fd: a new table with the same fds, each pointing at the same open file
        (so the offset is shared), close-on-exec bits copied. Reply: {"files": new handle}."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("dup_files: your code here (handout, the task, step 2)")
        old = self._fst(files)
        table = {}
        for fd, (handle, cloexec) in old.fds.items():
            self.files[handle].f_count += 1  # get_file: one more fd entry holds it
            table[fd] = [handle, cloexec]
        return {"files": self.new_handle(self.files_structs, FilesStruct(table))}
        # END SOLUTION

    async def put_files(self, req: Call, files: int) -> dict:
        """put_files_struct: one task lets go of the table; the last one closes every fd
        in it (fput each file) and frees it. Reply: {"count": the holders left}."""
        # BEGIN SOLUTION
        # STUB: raise NotImplementedError("put_files: your code here (handout, the task, step 3)")
        fst = self._fst(files)
        fst.count -= 1
        if fst.count == 0:
            for fd in list(fst.fds):  # close_files
                await self._close(fst, fd)
            del self.files_structs[files]
        return {"count": fst.count}
        # END SOLUTION
