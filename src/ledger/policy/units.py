"""The unit rules (市场主体评部门): a unit's score from its ratings, the ranking of units, the bottom and the
ladder. Pure functions over plain numbers; every view of units (rankings, escalations, a unit's history)
calls these and nothing else decides them.

Scores are handled in hundredths (a rating's "87.5" is 8750), so that every figure is exact: a mean is
rounded half up to the hundredth once, at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

from msgspec import Struct

from ledger.policy.schema import UnitLadderStep, UnitRules

__all__ = ["RankedUnit", "UnitTally", "bottom_units", "ladder_step", "rank_units", "unit_score"]


class UnitTally(Struct, frozen=True):
    """What a unit's ratings of a period add up to: `score` in hundredths (None when it has fewer ratings
    than the policy's minimum), how many ratings it had, how many of those were trimmed (from each end)
    and how many said `dissatisfied`."""

    unit_id: str
    score: int | None
    ratings: int
    trimmed: int
    dissatisfied: int


class RankedUnit(Struct, frozen=True):
    tally: UnitTally
    rank: int | None  # None: not ranked (too few ratings)


def _rounded_mean(total: int, count: int) -> int:
    """`total / count` rounded half up to an integer (both non-negative, count > 0)."""
    return (2 * total + count) // (2 * count)


def unit_score(cents: Sequence[int], rules: UnitRules) -> tuple[int | None, int]:
    """A unit's score in hundredths from its ratings' scores (in hundredths), and how many ratings were
    trimmed from each end. None when there are fewer than `ratings_min` ratings (or none left to count)."""
    count = len(cents)
    if count < rules.ratings_min or count == 0:
        return None, 0
    if rules.aggregation == "mean":
        return _rounded_mean(sum(cents), count), 0
    share = rules.trim_share or Decimal(0)
    trimmed = int((Decimal(count) * share).to_integral_value(rounding=ROUND_FLOOR))
    kept = sorted(cents)[trimmed : count - trimmed]
    if not kept:
        return None, trimmed
    return _rounded_mean(sum(kept), len(kept)), trimmed


def _key(tally: UnitTally, rules: UnitRules) -> tuple[int, ...]:
    assert tally.score is not None
    key = [-tally.score]
    for breaker in rules.tie_breakers:
        key.append(tally.dissatisfied if breaker == "fewer_dissatisfied" else -tally.ratings)
    return tuple(key)


def rank_units(tallies: Sequence[UnitTally], rules: UnitRules) -> list[RankedUnit]:
    """Units in ranking order: by score (highest first), then the tie-breakers; units still equal share a
    rank (1, 2, 2, 4) and are listed by unit_id. Units without a score follow, unranked, by unit_id."""
    scored = sorted((t for t in tallies if t.score is not None), key=lambda t: (_key(t, rules), t.unit_id))
    ranked: list[RankedUnit] = []
    previous: tuple[int, ...] | None = None
    rank = 0
    for place, tally in enumerate(scored, start=1):
        key = _key(tally, rules)
        if key != previous:
            rank, previous = place, key
        ranked.append(RankedUnit(tally, rank))
    unscored = sorted((t for t in tallies if t.score is None), key=lambda t: t.unit_id)
    ranked.extend(RankedUnit(tally, None) for tally in unscored)
    return ranked


def bottom_units(ranked: Sequence[RankedUnit], count: int) -> frozenset[str]:
    """The units in the bottom `count` of a ranking: every ranked unit at or below the rank of the
    `count`-th from the bottom (ties at the edge included, so more than `count` may be listed); all ranked
    units when there are no more than `count`."""
    ranks = [unit for unit in ranked if unit.rank is not None]
    if count <= 0 or not ranks:
        return frozenset()
    if count >= len(ranks):
        return frozenset(unit.tally.unit_id for unit in ranks)
    edge = ranks[len(ranks) - count].rank
    assert edge is not None
    return frozenset(unit.tally.unit_id for unit in ranks if unit.rank is not None and unit.rank >= edge)


def ladder_step(streak: int, ladder: Sequence[UnitLadderStep]) -> UnitLadderStep:
    """The rung a streak of `streak` consecutive bottom periods reaches (the top rung beyond it)."""
    ordered = sorted(ladder, key=lambda rung: rung.step)
    return ordered[min(streak, len(ordered)) - 1]
