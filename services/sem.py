"""System V semaphores (ipc/sem.c), the part of an ipc namespace that makes
CLONE_NEWIPC and CLONE_SYSVSEM mean something.

An ipc namespace holds semaphore sets by id; a process's ``sem_undo_list``
holds, per set and semaphore, the adjustment that undoes its SEM_UNDO
operations when it exits (exit_sem). CLONE_SYSVSEM shares one undo list
between parent and child; without it the child's list starts empty. This
module is plain data and rules: the namespaces service owns the objects and
answers the messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ukernel import abi


@dataclass
class SemArray:
    """struct sem_array: ``nsems`` semaphores under one key, and who waits on them."""

    key: int
    values: list[int]
    waiters: list[int] = field(default_factory=list)  # wait-queue entries (ukernel.waitq)


@dataclass
class SemNamespace:
    """The semaphore half of struct ipc_namespace: sets by id, ids handed out in order."""

    arrays: dict[int, SemArray] = field(default_factory=dict)
    next_id: int = 0


@dataclass
class UndoList:
    """struct sem_undo_list: per semid, semnum -> semadj; shared under CLONE_SYSVSEM."""

    ipc: int  # the ipc namespace handle its semids belong to
    adj: dict[int, dict[int, int]] = field(default_factory=dict)
    count: int = 1


def semget(ns: SemNamespace, key: int, nsems: int, semflg: int) -> int:
    """ksys_semget: find the set with ``key`` or make it (IPC_CREAT); IPC_PRIVATE is always new."""
    found = next((i for i, a in ns.arrays.items() if a.key == key), None) if key != abi.IPC_PRIVATE else None
    if found is not None:
        if semflg & abi.IPC_CREAT and semflg & abi.IPC_EXCL:
            raise abi.kernel_error(abi.EEXIST, f"a semaphore set with key {key} exists (IPC_EXCL)")
        if nsems > len(ns.arrays[found].values):
            raise abi.kernel_error(abi.EINVAL, f"set {found} has fewer than {nsems} semaphores")
        return found
    if key != abi.IPC_PRIVATE and not semflg & abi.IPC_CREAT:
        raise abi.kernel_error(abi.ENOENT, f"no semaphore set with key {key}")
    if not 0 < nsems <= abi.SEMMSL:
        raise abi.kernel_error(abi.EINVAL, f"nsems {nsems} is not in 1..{abi.SEMMSL}")
    semid, ns.next_id = ns.next_id, ns.next_id + 1
    ns.arrays[semid] = SemArray(key, [0] * nsems)
    return semid


def array(ns: SemNamespace, semid: int) -> SemArray:
    if semid not in ns.arrays:
        raise abi.kernel_error(abi.EINVAL, f"no semaphore set {semid} in this ipc namespace")
    return ns.arrays[semid]


def check_sops(sma: SemArray, sops: list[list[int]]) -> list[tuple[int, int, int]]:
    """semop's argument checks: E2BIG for too many, EFBIG for a semaphore out of range."""
    if not sops:
        raise abi.kernel_error(abi.EINVAL, "semop with no operations")
    if len(sops) > abi.SEMOPM:
        raise abi.kernel_error(abi.E2BIG, f"{len(sops)} operations; at most {abi.SEMOPM}")
    ops = [tuple(op) for op in sops]
    if not all(len(op) == 3 for op in ops):
        raise abi.kernel_error(abi.EINVAL, "each sembuf is (sem_num, sem_op, sem_flg)")
    for num, _, _ in ops:
        if not 0 <= num < len(sma.values):
            raise abi.kernel_error(abi.EFBIG, f"sem_num {num} is not below {len(sma.values)}")
    return ops


def try_semop(sma: SemArray, ops: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """perform_atomic_semop: apply all or nothing. None when done; else the blocking
    (sem_num, sem_flg): a decrement below 0, or a wait-for-zero on a non-zero value."""
    values = list(sma.values)
    for num, sem_op, flg in ops:
        value = values[num] + sem_op
        if (sem_op < 0 and value < 0) or (sem_op == 0 and values[num] != 0):
            return num, flg
        if value > abi.SEMVMX:
            raise abi.kernel_error(abi.ERANGE, f"semaphore {num} would exceed SEMVMX ({abi.SEMVMX})")
        values[num] = value
    sma.values[:] = values
    return None


def record_undo(undo: UndoList, semid: int, ops: list[tuple[int, int, int]]) -> None:
    """SEM_UNDO: remember the opposite of each such operation, for exit_sem."""
    for num, sem_op, flg in ops:
        if flg & abi.SEM_UNDO and sem_op:
            adj = undo.adj.setdefault(semid, {})
            adj[num] = adj.get(num, 0) - sem_op
            if not adj[num]:
                del adj[num]


def apply_undo(ns: SemNamespace, undo: UndoList) -> list[int]:
    """exit_sem: add each semadj back (clamped at 0, as Linux does); the sets touched."""
    touched = []
    for semid, adj in undo.adj.items():
        sma = ns.arrays.get(semid)
        if sma is None:  # the set was removed meanwhile
            continue
        for num, delta in adj.items():
            sma.values[num] = min(max(sma.values[num] + delta, 0), abi.SEMVMX)
        touched.append(semid)
    undo.adj.clear()
    return touched
