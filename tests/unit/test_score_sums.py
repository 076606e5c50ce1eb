"""`ScoreSums` against a plain mask and bincount over the known rows, on columns of several blocks.

A window's recorded sums are read forward (only the blocks that can hold one of its days) or, for a window
from the start of the record, back from the sums of every row held (less the rows not yet known, less the
known rows dated after the window). Either way the answer must be the plain one, exactly: columns in date
order with stragglers dated far before or after (where the blocks skip most and the read back wins), in no
order at all (where nothing can be skipped), read at positions and days at the edges, then appended to.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections.columns import MINIMA_BLOCK
from ledger.projections.facts import NEVER
from ledger.projections.index import COMPONENT_COUNT, Index

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
)
def test_recorded_sums_are_the_plain_sums(seed: int, count: int, ordered: bool, stragglers: int) -> None:
    rng = np.random.default_rng(seed)
    index = Index()
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
    # Appended after the sums of every row were kept: they are extended, not stale.
    append(index, days_of(rng, MINIMA_BLOCK + 1, ordered, stragglers), rng)
    for as_of, since in ((last, None), (3_200, None), (1_500, 1_000)):
        assert index.sums.recorded(as_of, index.position, CADRES, since).tolist() == plain(
            index, as_of, index.position, since
        )
