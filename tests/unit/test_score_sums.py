"""`ScoreSums` against a plain mask and bincount over the known rows, on columns of several blocks.

A window's recorded sums add the kept prefix sums of the whole intervals whose valid days all lie in the
window, and read the rows of the other blocks that can hold one of its days. Either way the answer must be
the plain one, exactly: columns in date order with stragglers dated far before or after (where intervals and
blocks skip most), in no order at all (where nothing can be skipped), with intervals of one block or two and
a memory bound that makes them double, read at positions and days at the edges, then appended to.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections.columns import MINIMA_BLOCK
from ledger.projections.facts import NEVER
from ledger.projections.index import COMPONENT_COUNT, Index
from ledger.projections.sums import ScoreSums

CADRES = 7
CELLS = CADRES * COMPONENT_COUNT


def append(index: Index, days: list[int], rng: np.random.Generator) -> None:
    first = index.scores.size
    cents = rng.integers(-500, 5_000, len(days)).tolist()
    index.scores.append(
        {
            "position": [2 * (first + row) + 1 for row in range(len(days))],
            "counts_from": days,
            "key": rng.integers(0, CELLS, len(days)).tolist(),
            "cents": cents,
            "cents_float": cents,
            "reversed_at": [NEVER] * len(days),
            "award": [-1] * len(days),
        }
    )
    index.position = 2 * index.scores.size + 1


def plain(index: Index, as_of: int, known_at: int, since: int | None) -> list[float]:
    scores = index.scores
    known = scores.known(known_at)
    dates = scores["counts_from"][:known]
    chosen = (dates <= as_of) & (dates >= (since if since is not None else -(2**40)))
    return np.bincount(
        scores["key"][:known][chosen], weights=scores["cents_float"][:known][chosen], minlength=CELLS
    ).tolist()


def days_of(rng: np.random.Generator, count: int, ordered: bool, stragglers: int) -> list[int]:
    days = rng.integers(0, 3_000, count)
    if ordered:
        days = np.sort(days)
        for row in rng.integers(0, count, stragglers):
            days[row] = rng.integers(-100, 3_100)
    return [int(day) for day in days]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.sampled_from((5, MINIMA_BLOCK + 3, 3 * MINIMA_BLOCK + 100, 5 * MINIMA_BLOCK)),
    ordered=st.booleans(),
    stragglers=st.integers(0, 4),
    interval_blocks=st.sampled_from((1, 2, 16)),
    cells_max=st.sampled_from((10**9, 3 * CELLS)),
)
def test_recorded_sums_are_the_plain_sums(
    seed: int, count: int, ordered: bool, stragglers: int, interval_blocks: int, cells_max: int
) -> None:
    rng = np.random.default_rng(seed)
    index = Index()
    index.sums = ScoreSums(index, interval_blocks=interval_blocks, cells_max=cells_max)
    days = days_of(rng, count, ordered, stragglers)
    append(index, days, rng)
    last = max(days)
    reads = [
        (as_of, known_at, since)
        for as_of in (-200, 0, 1_500, last - 1, last, 3_200)
        for known_at in (0, 1, index.position // 2, index.position - 20, index.position)
        for since in (None, 1_400, as_of - 90)
    ]
    for as_of, known_at, since in reads:
        assert index.sums.recorded(as_of, known_at, CADRES, since).tolist() == plain(
            index, as_of, known_at, since
        ), (as_of, known_at, since)
    windows = [(1_500, None), (2_000, 1_501), (last, 2_001), (last, None), (100, 200)]
    for known_at in (index.position // 3, index.position):
        together = index.sums.recorded_of_windows(windows, known_at, CADRES)
        assert [sums.tolist() for sums in together] == [
            plain(index, as_of, known_at, since) if since is None or since <= as_of else [0.0] * CELLS
            for as_of, since in windows
        ]
    # Appended after the prefix sums were kept: they are extended (or their intervals doubled), not stale.
    append(index, days_of(rng, 2 * MINIMA_BLOCK + 1, ordered, stragglers), rng)
    for as_of, since in ((last, None), (3_200, None), (1_500, 1_000)):
        assert index.sums.recorded(as_of, index.position, CADRES, since).tolist() == plain(
            index, as_of, index.position, since
        )


def test_intervals_double_to_stay_within_their_memory() -> None:
    rng = np.random.default_rng(5)
    index = Index()
    index.sums = ScoreSums(index, interval_blocks=1, cells_max=3 * CELLS)
    append(index, sorted(int(day) for day in rng.integers(0, 3_000, 8 * MINIMA_BLOCK)), rng)
    for as_of in (-1, 700, 1_499, 2_999):
        assert index.sums.recorded(as_of, index.position, CADRES, None).tolist() == plain(
            index, as_of, index.position, None
        )
    # 8 blocks against a bound of 3 intervals' cells: intervals of 4 blocks, 2 of them (3 prefix rows).
    assert index.sums.interval_blocks == 4


def test_cadres_registered_after_the_sums_were_kept_get_cells() -> None:
    rng = np.random.default_rng(6)
    index = Index()
    index.sums = ScoreSums(index, interval_blocks=1)
    append(index, list(range(MINIMA_BLOCK * 2)), rng)
    assert index.sums.recorded(10**6, index.position, CADRES, None).tolist() == plain(
        index, 10**6, index.position, None
    )
    first = index.scores.size
    wider = CELLS + COMPONENT_COUNT  # an eighth cadre
    keys = [CELLS + 1] * MINIMA_BLOCK
    index.scores.append(
        {
            "position": [2 * (first + row) + 1 for row in range(MINIMA_BLOCK)],
            "counts_from": [5] * MINIMA_BLOCK,
            "key": keys,
            "cents": [100] * MINIMA_BLOCK,
            "cents_float": [100.0] * MINIMA_BLOCK,
            "reversed_at": [NEVER] * MINIMA_BLOCK,
            "award": [-1] * MINIMA_BLOCK,
        }
    )
    index.position = 2 * index.scores.size + 1
    sums = index.sums.recorded(10**6, index.position, CADRES + 1, None)
    assert len(sums) == wider
    expected = plain(index, 10**6, index.position, None)
    assert sums[CELLS + 1] == expected[CELLS + 1] == 100.0 * MINIMA_BLOCK
    assert sums.tolist() == expected + [0.0] * (wider - len(expected))


def test_many_cadres_registered_at_once_double_the_intervals_before_the_sums_widen() -> None:
    rng = np.random.default_rng(7)
    index = Index()
    index.sums = ScoreSums(index, interval_blocks=1, cells_max=100 * CELLS)
    append(index, sorted(int(day) for day in rng.integers(0, 3_000, 100 * MINIMA_BLOCK)), rng)
    index.sums.recorded(10**6, index.position, CADRES, None)
    many = 20_000  # cadres registered since, with no scores yet: their cells hold nothing
    tracemalloc.start()
    try:
        sums = index.sums.recorded(10**6, index.position, many, None)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Widened first, the 100 kept rows of 120,000 cells would have taken 96 MB on the way.
    assert peak < 20_000_000
    expected = plain(index, 10**6, index.position, None)
    assert sums.tolist() == expected + [0.0] * (many * COMPONENT_COUNT - CELLS)
    # The kept sums stay within their bound (one row of zeros aside), not 100 rows of the wider cells.
    assert index.sums._prefix_sums.size <= max(100 * CELLS, many * COMPONENT_COUNT)


def test_a_read_of_fewer_cadres_than_the_rows_name_answers_the_same_whatever_came_before() -> None:
    first, second = Index(), Index()
    for index in (first, second):
        index.sums = ScoreSums(index, interval_blocks=1)
        append(index, [5] * (2 * MINIMA_BLOCK), np.random.default_rng(8))
    second.sums.recorded(10, second.position, CADRES, None)
    assert (
        first.sums.recorded(10, first.position, 1, None).tolist()
        == second.sums.recorded(10, second.position, 1, None).tolist()
        == plain(first, 10, first.position, None)[:COMPONENT_COUNT]
    )


@pytest.mark.parametrize(("interval_blocks", "cells_max"), [(0, 10), (1, -1)])
def test_intervals_and_their_bound_are_checked(interval_blocks: int, cells_max: int) -> None:
    with pytest.raises(ValueError, match="interval"):
        ScoreSums(Index(), interval_blocks=interval_blocks, cells_max=cells_max)


def test_no_windows_have_no_sums() -> None:
    # An escalation whose every period's bottom was kept asks for none.
    rng = np.random.default_rng(9)
    index = Index()
    append(index, list(range(2 * MINIMA_BLOCK)), rng)
    assert index.sums.recorded_of_windows([], index.position, CADRES) == []


def test_windows_of_fewer_cadres_than_the_rows_name_take_only_their_own_cells() -> None:
    # Rows in no date order (the one pass over the windows' stretch) for cadres 0 and 1, read for one
    # cadre: cadre 1's cents must not spill into cadre 0's second window (found by a review).
    index = Index()
    cents = [100, 1_000, 100, 1_000]
    index.scores.append(
        {
            "position": [1, 2, 3, 4],
            "counts_from": [30, 10, 20, 5],
            "key": [0, COMPONENT_COUNT, 0, COMPONENT_COUNT],
            "cents": cents,
            "cents_float": cents,
            "reversed_at": [NEVER] * 4,
            "award": [-1] * 4,
        }
    )
    index.position = 4
    windows = [(15, None), (40, 16)]
    assert [sums[0] for sums in index.sums.recorded_of_windows(windows, 4, 1)] == [0.0, 200.0]
