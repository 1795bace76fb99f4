"""stateful DPOR's knowledge of the states met, shared by the tree's processes through one log.

Before, a process's report carried every state its subtree had met, each with its summary,
and every ancestor sent them on in its own: a state's summary was pickled and unpickled once
per level of the tree (20 levels on average in ``condvar 2 1``, 90 KB a report), and every
process held all of them. Now a process appends the states it learnt to one log at its end,
once (two memfds the whole tree shares: only one process runs at a time, so appends never
interleave), and a parent whose child ended indexes what that child's subtree appended
(a state and an offset each) and decodes a state's entries only when one of its runs meets it.

What a process knows is what it knew before: a state's entries fold in the order they were
written, which is the order the reports brought them in, and the fold is a join (sleep sets
meet, summaries join, ``merge_summary``), so a state's value is the same whether its entries
come raw from the log or merged one level below, as the reports had them.
"""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import dataclass
from typing import Any

from .por import Below, merge_summary

_ENTRY = struct.Struct("<qQI")  # the state digest, where its pickle starts, its length


@dataclass
class Visit:
    """stateful: what the search knows of a state it met. ``sleep``: the options no visit
    explored from it (asleep there; a visit whose sleep set holds them all needs nothing new);
    ``summary``: pid -> what that task touched in the subtree explored from it, None while
    that subtree is still being walked (a run meeting it then closes a cycle)."""

    sleep: frozenset
    summary: dict[int, Below] | None


def joined(known: Visit | None, visit: Visit) -> Visit:
    """``known`` with a later visit's entry (``visit``): their join, or the entry alone while
    ``known``'s subtree is still walked (or it is unknown)."""
    if known is None or known.summary is None:
        return visit
    return Visit(known.sleep & visit.sleep, merge_summary(dict(known.summary), visit.summary))


class Visits:
    """state -> ``Visit`` for one process of the tree: what it set itself, then the entries the
    log got since (``catch_up``), folded in when the state is asked for. A forked child
    inherits it (the log's descriptors with it) and appends to the same log."""

    def __init__(self) -> None:
        self.index = os.memfd_create("explore-visits-index")
        self.data = os.memfd_create("explore-visits")
        self.known: dict[Any, Visit] = {}
        self.unread: dict[Any, list[tuple[int, int]]] = {}  # state -> its entries not folded in yet
        self.read_to = 0  # the index's length this process has taken in

    def get(self, state: Any) -> Visit | None:
        entries = self.unread.pop(state, None)
        if entries is not None:
            visit = self.known.get(state)
            for at, size in entries:
                visit = joined(visit, pickle.loads(os.pread(self.data, size, at)))
            self.known[state] = visit
        return self.known.get(state)

    def __getitem__(self, state: Any) -> Visit:
        visit = self.get(state)
        if visit is None:
            raise KeyError(state)
        return visit

    def __setitem__(self, state: Any, visit: Visit) -> None:
        """This process's own value for ``state``: it replaces what came before."""
        self.unread.pop(state, None)
        self.known[state] = visit

    def record(self, state: Any, visit: Visit) -> None:
        """``state``'s summary is known (its subtree walked here): set, and appended to the log
        for this process's ancestors."""
        self[state] = visit
        self.catch_up()  # (a process records only at its end, after every child's entries)
        payload = pickle.dumps(visit, pickle.HIGHEST_PROTOCOL)
        at = os.fstat(self.data).st_size
        _write_at(self.data, payload, at)
        _write_at(self.index, _ENTRY.pack(state, at, len(payload)), self.read_to)
        self.read_to += _ENTRY.size

    def catch_up(self) -> None:
        """Index what the log got since this process last looked (its child's subtree wrote it)."""
        end = os.fstat(self.index).st_size
        if end <= self.read_to:
            return
        table = os.pread(self.index, end - self.read_to, self.read_to)
        for state, at, size in _ENTRY.iter_unpack(table):
            self.unread.setdefault(state, []).append((at, size))
        self.read_to = end


def _write_at(fd: int, data: bytes, at: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n
