"""Pipes (fs/pipe.c): a bounded buffer between two open files.

A read of an empty pipe never blocks the vfs: it answers ``{"wait": N, "ino": I}``,
a wait-queue entry (ukernel/ipc/waitq.py) and the pipe's inode (the kernel names
it in the sleeper's wait channel); the kernel sleeps the task in sched and asks
again when a writer wakes the queue. Up to PIPE_BUF bytes are written
whole or not at all; a longer write puts in what fits and waits for room.
"""

from __future__ import annotations

import stat as st

from ukernel import abi
from ukernel.ipc.service import Call, op, touches

from . import footprint as fp
from .inode import NR_OPEN_DEFAULT, File, FilesStruct, Pipe


class PipeOps:
    """The vfs's pipe ops (mixed into VfsService)."""

    async def _pipe_read(self, file: File, n: int) -> object:
        """pipe_read: data if there is any, EOF once no writer is left, else wait."""
        pipe = file.inode.pipe
        if pipe.buffer or not n:
            data = pipe.read(n)
            await self._wake(pipe.wr_wait)
            return data
        if pipe.writers == 0:
            return b""
        if file.flags & abi.O_NONBLOCK:
            raise abi.kernel_error(abi.EAGAIN, "the pipe is empty (O_NONBLOCK)")
        return self._prepare_to_wait(pipe.rd_wait) | {"ino": file.inode.ino}

    async def _pipe_write(self, file: File, data: bytes) -> object:
        """pipe_write: EPIPE with no reader; up to PIPE_BUF bytes go in whole or not at
        all; otherwise what fits goes in and the writer waits for room for the rest."""
        pipe = file.inode.pipe
        if pipe.readers == 0:
            raise abi.kernel_error(abi.EPIPE, "no process has the pipe open for reading")
        room = pipe.room()
        take = len(data) if len(data) <= room else (0 if len(data) <= abi.PIPE_BUF else room)
        if take:
            pipe.buffer += data[:take]
            await self._wake(pipe.rd_wait)
        if take == len(data):
            return take
        if file.flags & abi.O_NONBLOCK:
            if take:
                return take
            raise abi.kernel_error(abi.EAGAIN, "the pipe is full (O_NONBLOCK)")
        return {"written": take, "ino": file.inode.ino} | self._prepare_to_wait(pipe.wr_wait)

    async def _fifo_open(self, fst: FilesStruct, file: File, cloexec: bool) -> object:
        """fifo_open: a reader waits for a writer and a writer for a reader
        (wait_for_partner: answered ``{"fd": fd, "wait": N, "ino": I}``), unless O_NONBLOCK,
        where a writer with no reader is ENXIO; O_RDWR never waits."""
        pipe, access = file.inode.pipe, file.flags & abi.O_ACCMODE
        nonblock = file.flags & abi.O_NONBLOCK
        if access == abi.O_WRONLY and nonblock and pipe.readers == 0:
            raise abi.kernel_error(abi.ENXIO, "no process has the FIFO open for reading (O_NONBLOCK)")
        fd = self._install_new(fst, file, cloexec)
        waiting = {"fd": fd, "ino": file.inode.ino}
        if file.readable:
            await self._wake(pipe.wr_open_wait)
        if file.writable:
            await self._wake(pipe.rd_open_wait)
        if access == abi.O_RDONLY and not pipe.writers and not nonblock:
            return waiting | self._prepare_to_wait(pipe.rd_open_wait)
        if access == abi.O_WRONLY and not pipe.readers:
            return waiting | self._prepare_to_wait(pipe.wr_open_wait)
        return fd

    @op
    @touches(fp.pipe2)
    async def pipe2(self, req: Call, files: int, flags: int = 0) -> list[int]:
        """pipe2: a pipe inode and two open files on it, read end first."""
        fst = self._fst(files)
        if flags & ~(abi.O_CLOEXEC | abi.O_NONBLOCK):
            raise abi.kernel_error(abi.EINVAL, f"pipe2 flags {flags!r}: only O_CLOEXEC and O_NONBLOCK")
        if sum(fd not in fst.fds for fd in range(NR_OPEN_DEFAULT)) < 2:
            raise abi.kernel_error(abi.EMFILE, "two free fds are needed")
        inode = self._new_inode(st.S_IFIFO | 0o600, pipe=Pipe())
        status = flags & abi.O_NONBLOCK
        cloexec = bool(flags & abi.O_CLOEXEC)
        rfd = self._install_new(fst, File(inode, abi.O_RDONLY | status, name=f"pipe:[{inode.ino}]"), cloexec)
        wfd = self._install_new(fst, File(inode, abi.O_WRONLY | status, name=f"pipe:[{inode.ino}]"), cloexec)
        return [rfd, wfd]
