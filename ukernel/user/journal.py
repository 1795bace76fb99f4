"""The journal of an address space: every syscall result since exec, for a fork child's replay.

A fork child's journal *shares* its parent's entries up to the fork instead of copying
them (a ``Segment``: the parent's list and how many of its entries are the child's) and
appends its own after them, so a fork costs the same whatever the history, and a read's
data is held once however many children replay it. Within one journal, equal large
results (the same page read again) are stored once too. Why fork cannot replay a
journal (another thread wrote in it, a handler is still running) is kept up to date
from the entries added since the last fork, never by a pass over the whole journal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: The journal's entries besides syscalls: (tid, HANDLE_SIGNAL, token, handler args) when a
#: handler is entered; (tid, RT_SIGRETURN, returned normally?, sig) when it is left.
HANDLE_SIGNAL, RT_SIGRETURN = "handle_signal", "rt_sigreturn"

#: One entry: (task id, syscall or HANDLE_SIGNAL/RT_SIGRETURN, ok, value).
Entry = tuple[int, str, Any, Any]

#: Results at least this long are looked up before they are stored (a short one costs
#: less to keep twice than to hash).
SHARED_DATA_MIN = 256

THREADED = "fork in a multi-threaded program: replaying the other threads is not built yet; use clone(fn)"
IN_HANDLER = (
    "fork inside a signal handler: the child's replay would return into a syscall not journaled yet; use clone(fn)"
)

#: The writers of a journal none wrote in yet (one object for every clone(fn) child's).
NO_WRITERS: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Segment:
    """The first ``count`` entries of an ancestor's list, after the segments before it."""

    prev: Segment | None
    entries: list[Entry]
    count: int
    end: int  # entries up to the end of this segment, from the oldest
    data: dict[bytes, bytes]  # that ancestor's stored results, so a child shares them too


class Journal:
    """An append-only journal whose prefix is shared with the journals it was forked from."""

    __slots__ = ("entries", "prefix", "prefix_len", "owner", "data", "shared", "_seen", "_writers", "_depth")

    def __init__(self, prefix: Segment | None = None, owner: int | None = None):
        self.entries: list[Entry] = []  # this journal's own entries, after the prefix
        self.prefix = prefix
        self.prefix_len = 0 if prefix is None else prefix.end
        self.owner = owner  # the task whose history the prefix is (the fork child)
        self.data: dict[bytes, bytes] = {}  # large results stored here, each once
        self.shared = 0  # how many own entries a child's segment holds: what outlives this journal
        self._seen = 0  # own entries folded into _writers and _depth so far
        self._writers = NO_WRITERS if owner is None else frozenset((owner,))  # (replaced, not grown: most never change)
        self._depth = 0  # handlers entered and not yet left

    def record(self, tid: int, name: str, ok: Any, value: Any) -> None:
        """Append one entry; a large bytes result equal to one held already is that one."""
        if type(value) is bytes and len(value) >= SHARED_DATA_MIN:
            value = self._stored(value)
        self.entries.append((tid, name, ok, value))

    def _stored(self, value: bytes) -> bytes:
        """The one object for this value: this journal's own, else an ancestor's (then this
        journal's own too, so it stays one object whatever happens to the ancestor)."""
        known = self.data.get(value)
        if known is not None:
            return known
        segment = self.prefix
        while segment is not None and known is None:
            known = segment.data.get(value)
            segment = segment.prev
        if known is None:
            known = value
        self.data[known] = known
        return known

    def __len__(self) -> int:
        return self.prefix_len + len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        """Every entry in order; the prefix's are the owner's (the forking thread became it)."""
        owner = self.owner
        for entries, count in self.segments()[:-1]:
            for _who, name, ok, value in entries[:count]:
                yield (owner, name, ok, value)
        yield from self.entries

    def segments(self) -> list[tuple[list[Entry], int]]:
        """(list, how many of its entries) from the oldest, this journal's own last."""
        out = [(self.entries, len(self.entries))]
        segment = self.prefix
        while segment is not None:
            out.append((segment.entries, segment.count))
            segment = segment.prev
        out.reverse()
        return out

    def fork_refusal(self, tid: int) -> str | None:
        """Why fork cannot replay this journal for ``tid``, or None (looks only at the entries
        added since it was last asked). A fork inside a handler would need the interrupted
        syscall's result, which is journaled only after the handler returns."""
        for who, name, _ok, _value in self.entries[self._seen :]:
            if who not in self._writers:
                self._writers |= {who}
            if name == HANDLE_SIGNAL:
                self._depth += 1
            elif name == RT_SIGRETURN:
                self._depth -= 1
        self._seen = len(self.entries)
        if self._writers - {tid}:
            return THREADED
        if self._depth:
            return IN_HANDLER
        return None

    def fork(self, child: int, syscall: str) -> Journal:
        """The child's journal: this one's entries (shared, not copied), then fork returning 0."""
        self.shared = len(self.entries)
        journal = Journal(Segment(self.prefix, self.entries, self.shared, len(self), self.data), owner=child)
        journal.record(child, syscall, True, 0)
        return journal

    def __del__(self) -> None:
        # what was journaled after the last fork is no child's: it goes with this journal
        # (the list and the data dict are the children's segments' own objects: in place)
        del self.entries[self.shared :]
        if self.data:
            kept = {id(value) for _who, _name, _ok, value in self.entries if type(value) is bytes}
            for value in [value for value in self.data if id(value) not in kept]:
                del self.data[value]
