"""What one read computed, kept for the next: snapshots and the orders ranked from them, bounded.

A read at (as_of, known_at, since) is a pure function of the first `known_at` events of the log: the index
only ever appends facts after its position, and what it marks later (a reversal, a veto's candidates, a
sanction) is recorded at a later position, which a read known at `known_at` does not see. So a snapshot or
a ranking computed once for a key is the answer for that key until the index itself is replaced (a reload,
a rebuild, a log that went backwards): the cache holds the index weakly and empties when it changes. And
it is the answer at every later position up to the next fact that can change it: `known_at` is replaced in
every key by the earliest position that reads the same (`Index.settled`), so a read after a post of
today's scores finds what a read before it kept for an earlier day.

What is kept, and why:

- snapshots, by (as_of, settled position, since, cadres): the page of a ranking after the first reuses its
  first page's snapshot instead of folding a million scores again; a period's snapshot serves its boards,
  recalls and escalations alike. Each costs about 100 bytes per cadre, and 300 more once its components
  are read as Python integers (counted from the start), so they are bounded by count and by bytes;
- what is computed from them (the pooled orders, each period's bottom, a shortlist's eligible cadres, the
  lists of recalls, boards and escalations): small, bounded by count and by bytes.

The number of cadres is part of every key: a snapshot computed after a registration has longer arrays than
one computed before it, and code that looks a cadre up by code must find it.

A miss recomputes from the key's parameters and gives the identical answer, so nothing depends on an entry
being there; entries are least recently used first out. Thread-safe: the server reads in threads.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar

import numpy as np

from ledger.projections.facts import Kind
from ledger.projections.index import Array, Index, Snapshot

__all__ = ["ReadCache", "cadres_with_recalls", "size_of"]

# A few paging clients need two snapshots each (a ranking and the one it compares with); the period views
# keep their answers among the derived entries and need none once computed. At most 48 MB in all, per
# process (a snapshot of the demo city is about 1.7 MB, a pooled order of it 94 KB).
SNAPSHOTS_MAX: Final = 16
SNAPSHOT_BYTES_MAX: Final = 32 * 1024 * 1024
DERIVED_MAX: Final = 256
DERIVED_BYTES_MAX: Final = 16 * 1024 * 1024
# A row of `Snapshot.components_list` (built lazily): a list of six Python integers (most above the small
# integers Python shares).
COMPONENTS_LIST_ROW_BYTES: Final = 56 + 6 * (8 + 32)
# What a Python object held in a derived entry costs, roughly (a tuple, an int, a frozenset slot), and
# an entry of a view (a struct of a few strings, integers and Decimals, shared with other entries).
OBJECT_BYTES: Final = 64
ENTRY_BYTES: Final = 320

Value = TypeVar("Value")


def size_of(value: Any) -> int:
    """The bytes a cached value holds, roughly: its arrays' buffers and a fixed cost per Python object."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, Snapshot):
        arrays = sum(int(item.nbytes) for item in vars(value).values() if isinstance(item, np.ndarray))
        # Counted whether built yet or not: a read may build it after the snapshot was kept.
        return arrays + value.count * COMPONENTS_LIST_ROW_BYTES
    if isinstance(value, tuple):
        return OBJECT_BYTES + sum(size_of(item) for item in value)
    if isinstance(value, frozenset | set):
        return OBJECT_BYTES * (1 + len(value))  # of codes: not walked one by one
    if isinstance(value, list):
        return OBJECT_BYTES + ENTRY_BYTES * len(value)  # of a view's entries
    return OBJECT_BYTES


class _Bounded:
    """Least recently used entries first out, at most `entries_max` of them and `bytes_max` bytes."""

    def __init__(self, entries_max: int, bytes_max: int) -> None:
        self.entries_max = entries_max
        self.bytes_max = bytes_max
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: Hashable) -> tuple[bool, Any]:
        found = self.entries.get(key)
        if found is None:
            return False, None
        self.entries.move_to_end(key)
        return True, found[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.bytes_max:
            return  # larger than the whole budget: answered, not kept
        previous = self.entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
        self.entries[key] = (value, size)
        self.bytes += size
        while len(self.entries) > self.entries_max or self.bytes > self.bytes_max:
            _key, (_value, evicted) = self.entries.popitem(last=False)
            self.bytes -= evicted

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


class ReadCache:
    """Snapshots and derived orders of one index (see the module's docstring)."""

    def __init__(
        self,
        *,
        snapshots_max: int = SNAPSHOTS_MAX,
        snapshot_bytes_max: int = SNAPSHOT_BYTES_MAX,
        derived_max: int = DERIVED_MAX,
        derived_bytes_max: int = DERIVED_BYTES_MAX,
    ) -> None:
        self._lock = threading.Lock()
        self._index: weakref.ref[Index] | None = None
        self._snapshots = _Bounded(snapshots_max, snapshot_bytes_max)
        self._derived = _Bounded(derived_max, derived_bytes_max)
        self.hits = 0
        self.misses = 0

    def _follow(self, index: Index) -> None:
        """Empty the cache when the index it was filled from was replaced (called under the lock)."""
        if self._index is None or self._index() is not index:
            self._snapshots.clear()
            self._derived.clear()
            self._index = weakref.ref(index)

    def snapshot(
        self,
        index: Index,
        as_of_day: int,
        known_at: int,
        since_day: int | None,
        *,
        recorded: Array | None = None,
    ) -> Snapshot:
        """`index.snapshot(as_of_day, known_at, since_day, recorded=…)`, computed once per key: the
        settled position's (`Index.settled`), which every position up to `known_at` reads the same."""
        key = (as_of_day, index.settled(as_of_day, known_at), since_day, len(index.cadres))
        snapshot: Snapshot = self._get(
            self._snapshots,
            index,
            key,
            lambda: _frozen(index.snapshot(as_of_day, known_at, since_day, recorded=recorded)),
        )
        return snapshot

    def kept(self, index: Index, key: Hashable) -> bool:
        """Whether `derived(index, key, …)` would find its value kept (no hit or miss counted)."""
        with self._lock:
            self._follow(index)
            return key in self._derived.entries

    def derived(self, index: Index, key: Hashable, compute: Callable[[], Value]) -> Value:
        """`compute()`, once per `key` (which must name everything the value depends on)."""
        value: Value = self._get(self._derived, index, key, compute)
        return value

    def _get(self, store: _Bounded, index: Index, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            self._follow(index)
            found, value = store.get(key)
            if found:
                self.hits += 1
                return value
            self.misses += 1
        # Computed outside the cache's lock: a slow read must not hold up a fast one. Two threads missing
        # the same key both compute it, and give the same value.
        value = compute()
        size = size_of(value)
        with self._lock:
            if self._index is not None and self._index() is index:  # not replaced meanwhile
                store.put(key, value, size)
        return value

    def clear(self) -> None:
        """Forget everything (what the next reads compute is the same)."""
        with self._lock:
            self._snapshots.clear()
            self._derived.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "snapshots": len(self._snapshots.entries),
                "snapshot_bytes": self._snapshots.bytes,
                "derived": len(self._derived.entries),
                "derived_bytes": self._derived.bytes,
            }


def _frozen(snapshot: Snapshot) -> Snapshot:
    """A snapshot whose arrays refuse writes: it is shared by the reads that find it kept."""
    for value in vars(snapshot).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return snapshot


def cadres_with_recalls(index: Index) -> frozenset[int]:
    """Codes of the cadres with a recall ordered (in force or not): the only ones a recall can be open for."""
    return frozenset(
        index.cadre_codes[fact.cadre]
        for fact in index.sparse.values()
        if fact.kind == Kind.RECALL_ORDERED and fact.cadre is not None
    )
