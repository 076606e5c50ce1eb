"""The points of every cadre over a window of valid days, as known at a log position: the pass over the
score columns that every snapshot makes.

A read sees the scores known at `known_at` (a prefix of the columns, in position order) whose valid day
lies in the window, less the reversed scores whose reversal it knows, then counted by the counting rules
(`counting_rules.py`). Points are summed as integer cents: `bincount` adds in float64, exact for integers
below 2**53 (about 9 × 10**13 points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ledger.projections.facts import COMPONENTS

if TYPE_CHECKING:
    from ledger.projections.index import Index, Window

__all__ = ["ScoreSums"]

COMPONENT_COUNT: Final = len(COMPONENTS)
# The sums `ScoreSums.recorded_of_windows` holds at once (float64, per bucket and running): 16 MB.
WINDOW_CELLS_MAX: Final = 2_000_000

# Below every valid day (a window from the start of the record).
NO_DAY: Final = -(2**40)

Array = npt.NDArray[Any]


def _rows_in(ranges: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in ranges)


class ScoreSums:
    """The sums of one index's score columns (see the module)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._reversed_rows_cache: tuple[int, Array] | None = None
        self._all_rows_cache: tuple[int, Array] | None = None

    def counted(
        self, as_of_day: int, known_at: int, count: int, since_day: int | None = None
    ) -> tuple[Array, Array]:
        """Totals and components (cents) per cadre code, as counted (see `count_adjusted`).

        Reversed scores are few: they are summed like the others, then taken back where their reversal is
        known, so the hot loop over every score is one comparison, one multiplication and one bincount.
        With `since_day`, only scores whose valid date lies in [since_day, as_of_day] count.
        """
        return self.counted_from(
            self.recorded(as_of_day, known_at, count, since_day),
            (as_of_day, since_day),
            known_at,
            count,
        )

    def recorded(self, as_of_day: int, known_at: int, count: int, since_day: int | None) -> Array:
        """The recorded sums of one window (float cents per cell), by the cheaper of two exact ways.

        Forward: the known rows of the blocks that can hold a day of the window (`Columns.ranges_between`),
        masked by the window. Back, for a window from the start of the record: the sums of every row held
        (`_all_rows`, kept), less the rows not yet known at `known_at`, less the known rows dated after
        `as_of_day` (the blocks that can hold one). A log is posted roughly in date order, so a read late in
        both dates reads few rows back, and an early one few forward."""
        scores = self.index.scores
        cells = count * COMPONENT_COUNT
        known = scores.known(known_at)
        low = NO_DAY if since_day is None else since_day
        forward = scores.ranges_between("counts_from", low, as_of_day, known)
        if since_day is None:
            later = scores.ranges_between("counts_from", as_of_day + 1, -NO_DAY, known)
            if _rows_in(later) + scores.size - known < _rows_in(forward):
                recorded = self._all_rows(cells).copy()
                recorded -= self._masked([(known, scores.size)], NO_DAY, -NO_DAY, cells)
                recorded -= self._masked(later, as_of_day + 1, -NO_DAY, cells)
                return recorded
        return self._masked(forward, low, as_of_day, cells)

    def _masked(self, ranges: list[tuple[int, int]], low: int, high: int, cells: int) -> Array:
        """The sums per cell of the rows in `ranges` whose valid day lies in [low, high]."""
        keys, dates, cents = self._gathered(ranges)
        in_window = dates <= high
        if low != NO_DAY:
            in_window &= dates >= low
        sums: Array = np.bincount(keys, weights=cents * in_window, minlength=cells)[:cells]
        return sums

    def _gathered(self, ranges: list[tuple[int, int]]) -> tuple[Array, Array, Array]:
        """The keys, valid days and cents of the score rows in `ranges` (views for one range)."""
        scores = self.index.scores
        if len(ranges) == 1:
            start, end = ranges[0]
            return (
                scores["key"][start:end],
                scores["counts_from"][start:end],
                scores["cents_float"][start:end],
            )
        keys, dates, cents = (
            np.concatenate([scores[name][start:end] for start, end in ranges] or [scores[name][:0]])
            for name in ("key", "counts_from", "cents_float")
        )
        return keys, dates, cents

    def _all_rows(self, cells: int) -> Array:
        """The sums per cell of every score row held (reversed or not, known or not), kept and extended as
        rows are appended: exact, as every term is a whole number of cents in float64."""
        scores = self.index.scores
        held, sums = self._all_rows_cache or (0, np.zeros(0))
        if held < scores.size or len(sums) < cells:
            added = np.bincount(scores["key"][held:], weights=scores["cents_float"][held:], minlength=cells)
            grown = np.zeros(max(len(sums), len(added)))
            grown[: len(sums)] += sums
            grown[: len(added)] += added
            sums = grown
            self._all_rows_cache = (scores.size, sums)
        return sums[:cells]

    def recorded_of_windows(self, windows: Sequence[Window], known_at: int, count: int) -> list[Array]:
        """The recorded sums of each (as_of_day, since_day) window (float cents per cell, before the
        reversals and the counting rules: `counted_from`), in one pass over the scores.

        Each score falls in one bucket between consecutive edges (every window's `as_of_day` and the day
        before its `since_day`), one bincount sums every (bucket, cell): a window of one bucket (a period
        read on its own points, beside the periods next to it) is that bucket, and a running sum over the
        buckets gives the others, each the difference of two edges. Cents are integers, in
        float64 exactly (below 2**53), so the differences are exact. An escalation reads twelve periods
        this way for about the cost of one and a half single sums (performance.md, 2026-12-04)."""
        if len(windows) == 1:
            return [self.recorded(windows[0][0], known_at, count, windows[0][1])]
        results: list[Array] = []
        cells = count * COMPONENT_COUNT
        # Bounded memory: a group of g windows has at most 2g edges, so 2g + 1 buckets of `cells` sums.
        per_group = max(1, (WINDOW_CELLS_MAX // max(cells, 1) - 1) // 2)
        for start in range(0, len(windows), per_group):
            results += self._of_some_windows(windows[start : start + per_group], known_at, count)
        return results

    def _of_some_windows(self, windows: Sequence[Window], known_at: int, count: int) -> list[Array]:
        ends = {as_of for as_of, _since in windows}
        scores = self.index.scores
        # Only the blocks that can hold a day some window counts: below the earliest window start (when
        # every window has one) a day falls in the first bucket, which no window reads.
        starts = [since for _as_of, since in windows]
        low = NO_DAY if None in starts else min(since for since in starts if since is not None)
        ranges = scores.ranges_between("counts_from", low, max(ends), scores.known(known_at))
        # One stretch from the first block to the last: copying scattered runs together costs more than
        # reading the blocks between them.
        ranges = [(ranges[0][0], ranges[-1][1])] if ranges else []
        keys, dates, cents = self._gathered(ranges)
        edges = sorted(ends | {since - 1 for _as_of, since in windows if since is not None})
        cells = count * COMPONENT_COUNT
        # The bucket of each day from the first edge to one past the last, as an offset into the cells:
        # a lookup per score (searchsorted over a million dates is five times slower).
        first_edge, past_edges = edges[0], edges[-1] + 1
        bucket_of_day = np.searchsorted(
            np.array(edges, dtype=np.int64), np.arange(first_edge, past_edges + 1, dtype=np.int64)
        )
        offsets = bucket_of_day * cells
        flat = offsets[np.clip(dates, first_edge, past_edges) - first_edge] + keys
        by_bucket = np.bincount(flat, weights=cents, minlength=(len(edges) + 1) * cells)
        buckets = by_bucket[: len(edges) * cells].reshape(len(edges), cells)
        through: Array | None = None  # the running sum over the buckets, when a window spans several
        row_of_edge = {edge: row for row, edge in enumerate(edges)}
        results = []
        for as_of, since in windows:
            # The window holds the buckets first … last (bucket b: the days after edge b - 1 through b).
            last = row_of_edge[as_of]
            first = 0 if since is None else row_of_edge[since - 1] + 1
            if first > last:
                components = np.zeros(cells)  # an empty window: it ends before it starts
            elif first == last:
                components = buckets[last].copy()  # one bucket: consecutive periods, one each
            else:
                if through is None:
                    through = np.cumsum(buckets, axis=0)
                components = through[last] - through[first - 1] if first else through[last].copy()
            results.append(components)
        return results

    def counted_from(
        self, components: Array, window: Window, known_at: int, count: int
    ) -> tuple[Array, Array]:
        """From the recorded sums (float cents per cell) of a window: the reversed scores known at
        `known_at` taken back, then the counting rules applied; (totals, components) per cadre."""
        as_of_day, since_day = window
        if self.index.reversed_rows:
            known = self.index.scores.known(known_at)
            rows = self._reversed_rows_array()
            rows = rows[rows < known]
            dates = self.index.scores["counts_from"][rows]
            in_window = dates <= as_of_day
            if since_day is not None:
                in_window &= dates >= since_day
            rows = rows[(self.index.scores["reversed_at"][rows] <= known_at) & in_window]
            np.subtract.at(components, self.index.scores["key"][rows], self.index.scores["cents_float"][rows])
        counted = np.rint(components).astype(np.int64).reshape(count, COMPONENT_COUNT)
        self.index.counting.count_adjusted(counted, as_of_day, known_at, since_day)
        # Summed by einsum: NumPy's sum over a short last axis is four times slower (70 µs on the city).
        return np.einsum("ij->i", counted), counted

    def _reversed_rows_array(self) -> Array:
        """`reversed_rows` as an array, made again only when a reversal was folded since."""
        cached = self._reversed_rows_cache
        if cached is None or cached[0] != len(self.index.reversed_rows):
            rows = np.array(self.index.reversed_rows, dtype=np.int64)
            cached = self._reversed_rows_cache = (len(self.index.reversed_rows), rows)
        return cached[1]
