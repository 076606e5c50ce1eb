"""The points of every cadre over a window of valid days, as known at a log position: the pass over the
score columns that every snapshot makes.

A read sees the scores known at `known_at` (a prefix of the columns, in position order) whose valid day
lies in the window, less the reversed scores whose reversal it knows, then counted by the counting rules
(`counting_rules.py`). Points are summed as integer cents: `bincount` adds in float64, exact for integers
below 2**53 (about 9 × 10**13 points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from ledger.projections.columns import MINIMA_BLOCK
from ledger.projections.facts import COMPONENTS

if TYPE_CHECKING:
    from ledger.projections.index import Index, Window

__all__ = ["ScoreSums"]

COMPONENT_COUNT: Final = len(COMPONENTS)
# The sums `ScoreSums._of_some_windows` holds at once (float64, per bucket and running): 16 MB.
WINDOW_CELLS_MAX: Final = 2_000_000

# Blocks per interval of the kept prefix sums (`ScoreSums._prefix`), at first: 65,536 rows.
INTERVAL_BLOCKS: Final = 16
# The prefix sums keep at most this many cells (float64: 32 MB); intervals double to stay below.
PREFIX_CELLS_MAX: Final = 4_000_000

# Below every valid day (a window from the start of the record).
NO_DAY: Final = -(2**40)

Array = npt.NDArray[Any]


def _rows_in(ranges: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in ranges)


class _Plan(NamedTuple):
    """One window's sums before reading: the runs of whole intervals added from the prefix sums (as
    [first, past) rows of `prefix`) and the row ranges masked by [low, high]."""

    prefix: Array
    runs: list[tuple[int, int]]
    ranges: list[tuple[int, int]]
    low: int
    high: int
    cells: int

    @property
    def rows(self) -> int:
        return _rows_in(self.ranges)


class ScoreSums:
    """The sums of one index's score columns (see the module)."""

    def __init__(
        self, index: Index, *, interval_blocks: int = INTERVAL_BLOCKS, cells_max: int = PREFIX_CELLS_MAX
    ) -> None:
        if interval_blocks < 1 or cells_max < 0:
            raise ValueError("an interval holds one block or more; the bound on the prefix sums is 0 or more")
        self.index = index
        self._reversed_rows_cache: tuple[int, Array] | None = None
        self.interval_blocks = interval_blocks
        self.cells_max = cells_max
        self._prefix_sums = np.zeros((1, 0))

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
        """The recorded sums of one window (float cents per cell): the whole intervals of rows whose valid
        days all lie in the window from the kept prefix sums (`_prefix`), and the known rows of the other
        blocks that can hold a day of the window (`Columns.ranges_between`), masked by the window.

        A log is posted roughly in date order, so a read reads about one interval and the blocks of its
        stragglers (scores dated far from their neighbours), not the whole prefix of the log; in a log in no
        order every interval spans every day and this is the plain masked pass."""
        return self._read(self._plan(as_of_day, known_at, count, since_day))

    def _plan(self, as_of_day: int, known_at: int, count: int, since_day: int | None) -> _Plan:
        """What `recorded` adds from the prefix sums and which rows it reads, without reading them."""
        scores = self.index.scores
        cells = count * COMPONENT_COUNT
        known = scores.known(known_at)
        low = NO_DAY if since_day is None else since_day
        prefix, blocks = self._prefix(known, cells)
        intervals = len(prefix) - 1
        minima, maxima = scores.block_bounds("counts_from", intervals * blocks * MINIMA_BLOCK)
        inside = (minima.reshape(intervals, blocks).min(axis=1) >= low) & (
            maxima.reshape(intervals, blocks).max(axis=1) <= as_of_day
        )
        edges = np.flatnonzero(np.diff(np.concatenate(([0], inside.view(np.int8), [0]))))
        runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
        excluded = np.zeros(known // MINIMA_BLOCK, dtype=bool)
        excluded[: intervals * blocks] = np.repeat(inside, blocks)
        ranges = scores.ranges_between("counts_from", low, as_of_day, known, excluded=excluded)
        return _Plan(prefix, runs, ranges, low, as_of_day, cells)

    def _read(self, plan: _Plan) -> Array:
        recorded = np.zeros(plan.cells)
        for first, past in plan.runs:
            recorded += plan.prefix[past, : plan.cells]
            recorded -= plan.prefix[first, : plan.cells]
        recorded += self._masked(plan.ranges, plan.low, plan.high, plan.cells)
        return recorded

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

    def _prefix(self, rows: int, cells: int) -> tuple[Array, int]:
        """The kept prefix sums over the whole intervals of the first `rows` score rows, and the blocks per
        interval: row i sums every row of intervals 0 … i − 1 per cell (row 0 is zeros), reversed or not.

        Rows only ever append, and a score's key, day and cents never change, so each interval is summed
        once. Exact while every running sum of a cell stays below 2**53 cents (9 × 10**13 points): every
        term is a whole number of cents in float64. The intervals double (every other row kept) whenever
        the sums would pass `cells_max`, before the sums widen for new cadres, so that their memory stays
        about that bound as the log grows."""
        scores = self.index.scores
        width = max(cells, self._prefix_sums.shape[1])
        while (scores.size // (self.interval_blocks * MINIMA_BLOCK)) * width > self.cells_max:
            self.interval_blocks *= 2
            self._prefix_sums = self._prefix_sums[::2].copy()
        self._widen(width)
        interval_rows = self.interval_blocks * MINIMA_BLOCK
        held = len(self._prefix_sums) - 1
        wanted = rows // interval_rows
        if wanted > held:
            rows_of = slice(held * interval_rows, wanted * interval_rows)
            # A key past the cadres asked for (no caller asks so) is held all the same.
            width = max(width, int(scores["key"][rows_of].max()) + 1)
            self._widen(width)
            added = np.empty((wanted - held + 1, width))
            added[0] = self._prefix_sums[-1]
            for offset in range(wanted - held):
                # One interval at a time: its `width` sums stay in the CPU's cache while they are added to
                # (one bincount over every interval's cells at once was three times slower at 10M).
                part = slice((held + offset) * interval_rows, (held + offset + 1) * interval_rows)
                added[offset + 1] = np.bincount(
                    scores["key"][part], weights=scores["cents_float"][part], minlength=width
                )
            self._prefix_sums = np.concatenate([self._prefix_sums, np.cumsum(added, axis=0)[1:]])
        return self._prefix_sums[: wanted + 1], self.interval_blocks

    def _widen(self, width: int) -> None:
        """Cells for cadres registered since the sums were kept: the rows summed held nothing for them."""
        held = self._prefix_sums.shape[1]
        if width > held:
            grown = np.zeros((len(self._prefix_sums), width))
            grown[:, :held] = self._prefix_sums
            self._prefix_sums = grown

    def recorded_of_windows(self, windows: Sequence[Window], known_at: int, count: int) -> list[Array]:
        """The recorded sums of each (as_of_day, since_day) window (float cents per cell, before the
        reversals and the counting rules: `counted_from`), by the cheaper of two exact ways.

        By edges: each window is the difference of two sums from the start of the record, through its
        `as_of_day` and through the day before its `since_day`; consecutive periods share their edges, so
        twelve periods cost thirteen such sums, each about one interval's rows in a log in date order
        (`recorded`). In one pass (`_of_some_windows`), when the edges would read more rows than the one
        stretch of blocks every window's days can fall in: a log in no order, or stragglers in every
        interval. Cents are integers, in float64 exactly (below 2**53), so the differences are exact."""
        if not windows:  # every period's answer was kept
            return []
        edges = sorted(
            {as_of for as_of, _since in windows}
            | {since - 1 for as_of, since in windows if since is not None and since <= as_of}
        )
        plans = {edge: self._plan(edge, known_at, count, None) for edge in edges}
        if sum(plan.rows for plan in plans.values()) > _rows_in(self._stretch(windows, known_at)):
            results: list[Array] = []
            cells = count * COMPONENT_COUNT
            # Bounded memory: a group of g windows has at most 2g edges, so 2g + 1 buckets of `cells` sums.
            per_group = max(1, (WINDOW_CELLS_MAX // max(cells, 1) - 1) // 2)
            for start in range(0, len(windows), per_group):
                results += self._of_some_windows(windows[start : start + per_group], known_at, count)
            return results
        through = {edge: self._read(plan) for edge, plan in plans.items()}
        return [
            through[as_of].copy()
            if since is None
            else np.zeros(count * COMPONENT_COUNT)  # an empty window: it ends before it starts
            if since > as_of
            else through[as_of] - through[since - 1]
            for as_of, since in windows
        ]

    def _stretch(self, windows: Sequence[Window], known_at: int) -> list[tuple[int, int]]:
        """The one stretch of rows, from the first block to the last, that holds every day the windows
        count: below the earliest window start (when every window has one) a day counts in none."""
        scores = self.index.scores
        starts = [since for _as_of, since in windows]
        low = NO_DAY if None in starts else min(since for since in starts if since is not None)
        high = max(as_of for as_of, _since in windows)
        ranges = scores.ranges_between("counts_from", low, high, scores.known(known_at))
        # One stretch: copying scattered runs together costs more than reading the blocks between them.
        return [(ranges[0][0], ranges[-1][1])] if ranges else []

    def _of_some_windows(self, windows: Sequence[Window], known_at: int, count: int) -> list[Array]:
        """The windows' recorded sums in one pass over their stretch of rows: each score falls in one bucket
        between consecutive edges, one bincount sums every (bucket, cell), and a running sum over the
        buckets gives each window as the difference of two edges (one bucket: consecutive periods)."""
        ends = {as_of for as_of, _since in windows}
        # Below the stretch's first day a score falls in the first bucket, which no window reads.
        keys, dates, cents = self._gathered(self._stretch(windows, known_at))
        edges = sorted(ends | {since - 1 for _as_of, since in windows if since is not None})
        cells = count * COMPONENT_COUNT
        # The bucket of each day from the first edge to one past the last, as an offset into the cells:
        # a lookup per score (searchsorted over a million dates is five times slower).
        first_edge, past_edges = edges[0], edges[-1] + 1
        bucket_of_day = np.searchsorted(
            np.array(edges, dtype=np.int64), np.arange(first_edge, past_edges + 1, dtype=np.int64)
        )
        # Each bucket's cells are `stride` apart: a key past the cadres asked for (no caller asks so) stays
        # in its own bucket and is cut off below, as `_masked` cuts it.
        stride = max(cells, int(keys.max()) + 1) if keys.size else cells
        offsets = bucket_of_day * stride
        flat = offsets[np.clip(dates, first_edge, past_edges) - first_edge] + keys
        by_bucket = np.bincount(flat, weights=cents, minlength=(len(edges) + 1) * stride)
        buckets = by_bucket[: len(edges) * stride].reshape(len(edges), stride)[:, :cells]
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
