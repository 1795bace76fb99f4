"""The memory syscalls (mm/mmap.c, mm/mprotect.c) and the CPU's loads and stores.

Each is one message to mm with the task's mm handle. peek, poke and cmpxchg
are the CPU touching memory: a fault mm cannot fix is a signal (SIGSEGV, or
SIGKILL from the OOM killer), not an errno.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import abi
from .signal import k_kill
from .task import TaskExit, TaskStruct

if TYPE_CHECKING:
    from .core import Kernel


async def sys_mmap(
    k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int, prot: int, flags: int, fd: int, offset: int
) -> int:
    if fd != -1 and not flags & abi.MAP_ANONYMOUS:
        raise abi.kernel_error(abi.ENOSYS, "file mappings are not built yet; use MAP_ANONYMOUS")
    return await k.call(
        "mm", "mmap", {"mm": task.mm, "addr": addr, "length": length, "prot": prot, "flags": flags}, meta
    )


async def sys_munmap(k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int) -> None:
    await k.call("mm", "munmap", {"mm": task.mm, "addr": addr, "length": length}, meta)


async def sys_mprotect(k: Kernel, task: TaskStruct, meta: dict, addr: int, length: int, prot: int) -> None:
    await k.call("mm", "mprotect", {"mm": task.mm, "addr": addr, "length": length, "prot": prot}, meta)


async def sys_brk(k: Kernel, task: TaskStruct, meta: dict, addr: int) -> int:
    """brk(0) asks; a failed move answers the old break (Linux's brk, not glibc's -1)."""
    return await k.call("mm", "brk", {"mm": task.mm, "addr": addr}, meta)


async def _user_access(k: Kernel, task: TaskStruct, meta: dict, op: str, args: dict) -> Any:
    """The CPU's load or store: a fault the mm cannot fix is a signal, not an errno:
    SIGSEGV for a bad address, SIGKILL when no frame is left (the OOM killer, aimed
    at the faulting task)."""
    try:
        return await k.call("mm", op, {"mm": task.mm, **args}, meta)
    except OSError as exc:
        sig = {abi.EFAULT: abi.SIGSEGV, abi.ENOMEM: abi.SIGKILL}.get(exc.errno)
        if sig is None:
            raise
        k_kill(task, sig)
        raise TaskExit(abi.W_EXITCODE(0, sig)) from None


async def sys_peek(k: Kernel, task: TaskStruct, meta: dict, addr: int, n: int) -> bytes:
    return await _user_access(k, task, meta, "read_mem", {"addr": addr, "n": n})


async def sys_cmpxchg(k: Kernel, task: TaskStruct, meta: dict, addr: int, old: int, new: int) -> int:
    return await _user_access(k, task, meta, "cmpxchg", {"addr": addr, "old": old, "new": new})


async def sys_poke(k: Kernel, task: TaskStruct, meta: dict, addr: int, data: bytes) -> int:
    return await _user_access(k, task, meta, "write_mem", {"addr": addr, "data": data})
