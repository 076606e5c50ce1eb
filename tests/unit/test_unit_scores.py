"""A rating's weighted mean is checked in integers on posting; it must agree with the Decimal definition
(`weighted_score`: the weighted mean rounded half up to two places) for every score and weight."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.units import _weighted_hundredths, weighted_score

SCORES = st.integers(0, 10_000).map(lambda hundredths: str(Decimal(hundredths).scaleb(-2)))
WEIGHTS = st.lists(st.integers(1, 10_000), min_size=1, max_size=5).map(
    lambda parts: [Decimal(part).scaleb(-4) for part in parts]
)


@given(WEIGHTS, st.data())
def test_the_integer_check_agrees_with_the_decimal_mean(weights: list[Decimal], data: st.DataObject) -> None:
    names = [f"d{number}" for number in range(len(weights))]
    scores = {name: data.draw(SCORES) for name in names}
    by_name = dict(zip(names, weights, strict=True))
    assert _weighted_hundredths(scores, by_name) == int(weighted_score(scores, by_name).scaleb(2))


def test_half_a_hundredth_rounds_up() -> None:
    # 0.5 × 80.01 + 0.5 × 80.00 = 80.005 → 80.01 (half up; half even would give 80.00).
    assert _weighted_hundredths({"a": "80.01", "b": "80"}, {"a": Decimal("0.5"), "b": Decimal("0.5")}) == 8001
