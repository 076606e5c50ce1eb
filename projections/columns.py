"""Columns: parallel NumPy arrays of one kind of fact, one row per fact, appended in log position order."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["Columns"]

INITIAL_CAPACITY: Final = 1 << 12
# Rows per block of `Columns.last_at_most`'s minima (and `ranges_between`'s maxima): a million rows keep
# 245 of each.
MINIMA_BLOCK: Final = 4096
# The positions `Columns.in_force_by_cadre` keeps its rows for: an escalation's twelve period ends may
# each be read at a settled position of its own.
IN_FORCE_KEPT: Final = 16
# More runs of blocks than this are read as one range (the concatenation would cost more than it saves).
RANGES_MAX: Final = 16

Array = npt.NDArray[Any]


class Columns:
    """Parallel NumPy arrays that grow by doubling; rows are appended in position order."""

    def __init__(self, dtypes: dict[str, Any]) -> None:
        self.size = 0
        self._dtypes = dtypes
        self._arrays: dict[str, Array] = {
            name: np.empty(INITIAL_CAPACITY, dtype=dtype) for name, dtype in dtypes.items()
        }
        self._by_cadre: tuple[int, Array, Array, Array] | None = None
        self._block_minima: dict[str, tuple[int, Array, Array]] = {}
        # Reversals marked (`mark_reversed`): what `in_force_by_cadre` keeps is keyed by it.
        self.reversals = 0
        self._in_force: dict[tuple[int, int, int], tuple[Array, Array, Array]] = {}

    def mark_reversed(self, row: int, at: int) -> None:
        """Mark `row` reversed from position `at` on."""
        self["reversed_at"][row] = at
        self.reversals += 1

    def in_force_by_cadre(self, known_at: int) -> tuple[Array, Array, Array]:
        """The rows of `by_cadre_and_day` known at `known_at` and not reversed then, with the cadre and the
        valid day of each. They are the same for every day read at one position (an escalation reads
        twelve period ends), so they are kept for the last few positions, by the rows held and the
        reversals marked."""
        key = (self.size, self.reversals, known_at)
        found = self._in_force.get(key)
        if found is None:
            order, cadres, days = self.by_cadre_and_day()
            valid = (order < self.known(known_at)) & (self["reversed_at"][order] > known_at)
            found = (order[valid], cadres[valid], days[valid])
            if len(self._in_force) >= IN_FORCE_KEPT:
                del self._in_force[next(iter(self._in_force))]
            self._in_force[key] = found
        return found

    def by_cadre_and_day(self) -> tuple[Array, Array, Array]:
        """The rows of a column of changes sorted by (cadre, order_day), ties in position order, with the
        cadre and the valid day of each: sorted once per size of the column, not once per read (rows only
        ever append, and a reversal changes `reversed_at`, which the reads mask by, not the order)."""
        if self._by_cadre is None or self._by_cadre[0] != self.size:
            # A stable sort of rows already in position order keeps the later position last among equals.
            order = np.lexsort((self["order_day"], self["cadre"]))
            self._by_cadre = (self.size, order, self["cadre"][order], self["day"][order])
        return self._by_cadre[1], self._by_cadre[2], self._by_cadre[3]

    def append(self, columns: dict[str, list[Any]]) -> None:
        added = len(next(iter(columns.values())))
        if not added:
            return
        needed = self.size + added
        capacity = len(next(iter(self._arrays.values())))
        if needed > capacity:
            while capacity < needed:
                capacity *= 2
            for name, array in self._arrays.items():
                grown = np.empty(capacity, dtype=array.dtype)
                grown[: self.size] = array[: self.size]
                self._arrays[name] = grown
        for name, values in columns.items():
            self._arrays[name][self.size : needed] = values
        self.size = needed

    def __getitem__(self, name: str) -> Array:
        return self._arrays[name][: self.size]

    @property
    def dtypes(self) -> dict[str, Any]:
        return self._dtypes

    def adopt(self, arrays: dict[str, Array], size: int) -> None:
        """Hold `arrays` (one per column, all of one length of `size` rows or more: the rest is room to
        append into) instead of these. Arrays mapped from a persisted index (`mapped.py`) are copy-on-write:
        appending or marking a reversal writes private pages of this process, never the file."""
        capacities = {len(array) for array in arrays.values()}
        if (
            set(arrays) != set(self._dtypes)
            or len(capacities) != 1
            or min(capacities) < size
            or any(arrays[name].dtype != np.dtype(dtype) for name, dtype in self._dtypes.items())
        ):
            raise ValueError("the arrays are not these columns")
        self._arrays = dict(arrays)
        self.size = size
        self._by_cadre = None
        self._block_minima = {}
        self._in_force = {}

    def find(self, position: int) -> int | None:
        """The row holding `position`, if any."""
        positions = self["position"]
        row = int(np.searchsorted(positions, position))
        return row if row < self.size and positions[row] == position else None

    def known(self, position: int) -> int:
        """How many rows are known at `position` (positions are sorted)."""
        return int(np.searchsorted(self["position"], position, side="right"))

    def last_at_most(self, name: str, value: int, rows: int) -> int:
        """The last of the first `rows` rows whose column `name` is at most `value`, or -1.

        Rows are scanned a block at a time from the end, skipping every block whose minimum is above
        `value` (the minima kept per block; a column searched this way is never rewritten in place)."""
        column = self[name][:rows]
        full = rows // MINIMA_BLOCK
        tail = np.flatnonzero(column[full * MINIMA_BLOCK :] <= value)
        if tail.size:
            return full * MINIMA_BLOCK + int(tail[-1])
        blocks = np.flatnonzero(self._minima(name)[:full] <= value)
        if not blocks.size:
            return -1
        start = int(blocks[-1]) * MINIMA_BLOCK
        return start + int(np.flatnonzero(column[start : start + MINIMA_BLOCK] <= value)[-1])

    def ranges_between(
        self, name: str, low: int, high: int, rows: int, *, excluded: Array | None = None
    ) -> list[tuple[int, int]]:
        """Row ranges [start, end), in order, that hold every one of the first `rows` rows whose column
        `name` lies in [low, high]: the whole blocks whose minimum and maximum allow one, runs of them
        merged, and the rows after the last whole block. A column searched this way is never rewritten in
        place. Scattered runs (a column in no order) are covered by one range from the first to the last.

        `excluded` (one flag per whole block of the first `rows`) names blocks whose rows the caller counts
        another way: no range holds one, so scattered runs are joined only between excluded blocks."""
        full = rows // MINIMA_BLOCK
        minima, maxima = self._minima(name)[:full], self._maxima(name)[:full]
        chosen = (minima <= high) & (maxima >= low)
        if excluded is not None:
            chosen &= ~excluded
        edges = np.flatnonzero(np.diff(np.concatenate(([0], chosen.view(np.int8), [0]))))
        starts, ends = edges[::2], edges[1::2]
        # Runs between the same excluded blocks share a segment (the number of excluded blocks before them).
        segments = (
            np.zeros(len(starts), dtype=np.int64)
            if excluded is None
            else np.concatenate(([0], np.cumsum(excluded)))[starts]
        )
        ranges: list[tuple[int, int]] = []
        for segment in np.unique(segments):
            these = segments == segment
            runs = list(zip(starts[these].tolist(), ends[these].tolist(), strict=True))
            if len(runs) > RANGES_MAX:
                runs = [(runs[0][0], runs[-1][1])]
            ranges += [(start * MINIMA_BLOCK, end * MINIMA_BLOCK) for start, end in runs]
        if full * MINIMA_BLOCK < rows:
            if ranges and ranges[-1][1] == full * MINIMA_BLOCK:
                ranges[-1] = (ranges[-1][0], rows)
            else:
                ranges.append((full * MINIMA_BLOCK, rows))
        return ranges

    def block_bounds(self, name: str, rows: int) -> tuple[Array, Array]:
        """The minimum and maximum of `name` over each whole block of the first `rows` rows."""
        full = rows // MINIMA_BLOCK
        return self._minima(name)[:full], self._maxima(name)[:full]

    def _minima(self, name: str) -> Array:
        """The minimum of `name` over each whole block of rows, extended as rows are appended."""
        return self._block_stats(name)[0]

    def _maxima(self, name: str) -> Array:
        return self._block_stats(name)[1]

    def _block_stats(self, name: str) -> tuple[Array, Array]:
        empty = np.zeros(0, dtype=np.int64)
        covered, minima, maxima = self._block_minima.get(name, (0, empty, empty))
        full = self.size // MINIMA_BLOCK
        if full > covered:
            added = self[name][covered * MINIMA_BLOCK : full * MINIMA_BLOCK].reshape(-1, MINIMA_BLOCK)
            minima = np.concatenate([minima, added.min(axis=1).astype(np.int64)])
            maxima = np.concatenate([maxima, added.max(axis=1).astype(np.int64)])
            self._block_minima[name] = (full, minima, maxima)
        return minima, maxima
