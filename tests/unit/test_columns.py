"""`Columns.last_at_most` against a plain scan: blocks of minima, the partial last block, appends after.

The property tests' logs never reach one block of 4,096 rows, so the block path is drawn here directly:
columns of several blocks, in date order with stragglers or in any order, searched at every prefix length
that matters (block edges and their neighbours), then appended to and searched again.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections.columns import MINIMA_BLOCK, Columns
from ledger.projections.facts import NEVER
from ledger.projections.index import Index


def plain(values: list[int], value: int, rows: int) -> int:
    return max((row for row in range(rows) if values[row] <= value), default=-1)


def column_of(values: list[int]) -> Columns:
    columns = Columns({"position": np.int64, "day": np.int32})
    columns.append({"position": list(range(1, len(values) + 1)), "day": values})
    return columns


def draw_days(draw: st.DrawFn, count: int) -> list[int]:
    if draw(st.booleans()):  # in date order, with a few stragglers dated far before or after
        days = np.sort(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 3_000, count))
        for _ in range(draw(st.integers(0, 5))):
            days[draw(st.integers(0, count - 1))] = draw(st.integers(-100, 3_100))
        return [int(day) for day in days]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return [int(day) for day in rng.integers(0, 3_000, count)]


@st.composite
def searches(draw: st.DrawFn) -> tuple[list[int], list[int], list[int], list[int]]:
    # Sizes at and around the block edges (drawn freely, hypothesis keeps to a few hundred rows).
    count = draw(
        st.sampled_from(
            (
                1,
                7,
                MINIMA_BLOCK - 1,
                MINIMA_BLOCK,
                MINIMA_BLOCK + 1,
                2 * MINIMA_BLOCK + 17,
                3 * MINIMA_BLOCK + 5,
            )
        )
    )
    days = draw_days(draw, count)
    later = draw_days(draw, draw(st.integers(1, MINIMA_BLOCK + 5)))
    values = draw(st.lists(st.integers(-200, 3_200), min_size=1, max_size=6))
    edges = {0, count, count - 1, 1}
    for block in range(1, count // MINIMA_BLOCK + 1):
        edges |= {block * MINIMA_BLOCK - 1, block * MINIMA_BLOCK, block * MINIMA_BLOCK + 1}
    rows = sorted(row for row in edges if 0 <= row <= count)
    return days, later, values, rows


@settings(max_examples=60, deadline=None)
@given(searches())
def test_the_last_row_at_most_a_value_is_the_plain_scans(drawn) -> None:
    days, later, values, rows = drawn
    columns = column_of(days)
    for value in values:
        for prefix in rows:
            assert columns.last_at_most("day", value, prefix) == plain(days, value, prefix)
    # Appended after the minima were kept: the new whole blocks are taken in.
    columns.append({"position": list(range(len(days) + 1, len(days) + len(later) + 1)), "day": later})
    both = days + later
    for value in values:
        for prefix in (len(days), len(both) - 1, len(both)):
            assert columns.last_at_most("day", value, prefix) == plain(both, value, prefix)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    blocks=st.integers(1, 48),
    tail=st.sampled_from((0, 1, MINIMA_BLOCK - 1)),
    low=st.integers(-100, 3_100),
    width=st.integers(0, 3_200),
)
def test_ranges_between_hold_every_row_in_range_and_no_excluded_block(
    seed: int, blocks: int, tail: int, low: int, width: int
) -> None:
    # Days in no order (every block may be chosen, so more runs than RANGES_MAX are joined) or sorted.
    rng = np.random.default_rng(seed)
    count = blocks * MINIMA_BLOCK + tail
    days = rng.integers(0, 3_000, count)
    if seed % 2:
        days = np.sort(days)
    columns = column_of([int(day) for day in days])
    excluded = rng.random(blocks) < 0.3
    high = low + width
    ranges = columns.ranges_between("day", low, high, count, excluded=excluded)
    held = np.zeros(count, dtype=bool)
    for start, end in ranges:
        assert not held[start:end].any(), "ranges overlap"
        held[start:end] = True
    in_excluded = np.repeat(excluded, MINIMA_BLOCK).tolist() + [False] * tail
    wanted = (days >= low) & (days <= high) & ~np.array(in_excluded)
    assert held[wanted].all()
    assert not held[np.array(in_excluded)].any()
    assert ranges == sorted(ranges)


def test_scattered_runs_are_joined_only_between_excluded_blocks() -> None:
    # Blocks alternate between day 0 and day 1,000: a read of day 0 chooses every other block, 20 runs.
    days = [1_000 * (block % 2) for block in range(40) for _ in range(MINIMA_BLOCK)]
    columns = column_of(days)
    assert columns.ranges_between("day", 0, 0, len(days)) == [(0, 39 * MINIMA_BLOCK)]
    excluded = np.zeros(40, dtype=bool)
    excluded[20] = True  # a block of day 0, counted elsewhere
    ranges = columns.ranges_between("day", 0, 0, len(days), excluded=excluded)
    # Ten runs before it and nine after: each side is few enough to keep its runs apart.
    assert len(ranges) == 19
    assert all(not (start < 21 * MINIMA_BLOCK and end > 20 * MINIMA_BLOCK) for start, end in ranges)
    excluded[:] = False
    excluded[38] = True
    ranges = columns.ranges_between("day", 0, 0, len(days), excluded=excluded)
    # 19 runs before it (joined into one), none after.
    assert ranges == [(0, 37 * MINIMA_BLOCK)]


def test_the_rows_in_force_follow_every_reversal_marked() -> None:
    # Kept per position: a reversal marked after a read (here at a position the read already knew, as a
    # log rebuilt from a backup could) must not leave the kept rows stale.
    changes = Index().units  # empty columns of lifecycle changes
    changes.append(
        {
            "position": [1, 2, 3, 4],
            "cadre": [1, 0, 1, 0],
            "day": [10, 20, 5, 30],
            "order_day": [10, 20, 5, 30],
            "value": [7, 8, 9, 6],
            "reversed_at": [NEVER] * 4,
        }
    )
    rows, cadres, days = changes.in_force_by_cadre(3)
    assert (rows.tolist(), cadres.tolist(), days.tolist()) == ([1, 2, 0], [0, 1, 1], [20, 5, 10])
    changes.mark_reversed(0, 3)
    rows, cadres, days = changes.in_force_by_cadre(3)
    assert (rows.tolist(), cadres.tolist(), days.tolist()) == ([1, 2], [0, 1], [20, 5])
    assert changes.in_force_by_cadre(2)[0].tolist() == [1, 0]
