"""`views.ranking_order` orders as the ranking rule says, checked against Python's sort of tuples.

The rule: by pool, then each compared value descending (the total first, then the policy's tie-breakers),
then cadre_id. The fast path packs the pool and the total into one integer and orders only the runs tied on
both by the rest; a total too wide to pack falls back to a lexsort. Drawn with many ties at every level
(small value ranges) and totals at the edges of the packing.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.projections.views import ranking_order


def naive(pools: list[int], values: list[list[int]], id_order: list[int]) -> list[int]:
    return sorted(
        range(len(pools)),
        key=lambda i: (pools[i], *(-column[i] for column in values), id_order[i]),
    )


@st.composite
def pooled(draw: st.DrawFn) -> tuple[list[int], list[list[int]], list[int]]:
    count = draw(st.integers(0, 60))
    pools = draw(st.lists(st.integers(0, 4), min_size=count, max_size=count))
    total_range = draw(st.sampled_from((2, 5, 10**6, 2**62, 2**63 - 1)))
    totals = draw(st.lists(st.integers(-total_range // 2, total_range // 2), min_size=count, max_size=count))
    breakers = [
        draw(st.lists(st.integers(-3, 3), min_size=count, max_size=count))
        for _ in range(draw(st.integers(0, 4)))
    ]
    id_order = draw(st.permutations(range(count)))
    return pools, [totals, *breakers], list(id_order)


@settings(max_examples=400)
@given(pooled())
def test_the_order_is_pool_then_each_value_descending_then_cadre_id(drawn) -> None:
    pools, values, id_order = drawn
    order = ranking_order(
        np.array(pools, dtype=np.int64),
        [np.array(column, dtype=np.int64) for column in values],
        np.array(id_order, dtype=np.int64),
    )
    assert order.tolist() == naive(pools, values, id_order)


def test_totals_too_wide_to_pack_are_ordered_as_well() -> None:
    pools = [1, 0, 1, 0]
    totals = [2**62, -(2**62), 2**62, 0]
    order = ranking_order(
        np.array(pools, dtype=np.int64), [np.array(totals, dtype=np.int64)], np.array([3, 2, 1, 0])
    )
    assert order.tolist() == [3, 1, 2, 0]
