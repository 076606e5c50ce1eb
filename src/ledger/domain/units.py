"""Units and their ratings by enterprises (市场主体评部门): what the writer knows, and the rules a posted
panel, rating or unit registration must obey.

Each period a panel of raters is drawn by lot (`rating.panel_drawn`); each rater on it rates units
(`unit.rated`) once per unit. A unit is known from the first cadre registered or moved into it; a
`unit.registered` adds its details. `UnitsKnown` is the writer's knowledge of all that — which units exist,
the panels, which (unit, period, rater) have rated — and `UnitsDraft` is a batch's additions over it,
installed once the batch is appended. The checks are pure functions of that knowledge, the submitted event
and the unit rules of the policy in force on the event's date.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import msgspec

from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    CadreRegistered,
    CadreTransferred,
    EventBase,
    RatingPanelDrawn,
    UnitRated,
    UnitRegistered,
)
from ledger.domain.periods import parse_period

__all__ = [
    "PanelKnown",
    "UnitsDraft",
    "UnitsKnown",
    "check_unit_event",
    "panel_key",
    "rating_key",
    "weighted_score",
]

CENT: Final = Decimal("0.01")
# Parents followed at most this far when a registration is checked for a cycle (units nest a few levels).
PARENT_DEPTH_MAX: Final = 64


class PanelKnown(msgspec.Struct, array_like=True):
    """A drawn panel: the day it was drawn and its raters."""

    drawn_on: date
    raters: frozenset[str]


def panel_key(period: str, rater_kind: str) -> str:
    # Neither a period nor a rater kind can hold "|" (their patterns), so the joined key is unambiguous.
    return f"{period}|{rater_kind}"


def rating_key(unit_id: str, period: str, rater_kind: str, rater_id: str) -> str:
    return f"{unit_id}|{period}|{rater_kind}|{rater_id}"


@dataclass(slots=True)
class UnitsKnown:
    """Every unit, panel and rating the log holds (folded in position order)."""

    known: set[str] = field(default_factory=set)
    parents: dict[str, str | None] = field(default_factory=dict)  # registered units and their parents
    panels: dict[str, PanelKnown] = field(default_factory=dict)
    rated: set[str] = field(default_factory=set)

    def fold(self, event: EventBase) -> None:
        """Fold one recorded event (of any type: only units' events and cadres' units change anything)."""
        if isinstance(event, CadreRegistered | CadreTransferred):
            self.known.add(event.unit_id)
        elif isinstance(event, UnitRegistered):
            self.known.add(event.unit_id)
            self.parents[event.unit_id] = event.parent
        elif isinstance(event, RatingPanelDrawn):
            self.panels[panel_key(event.period, event.rater_kind)] = PanelKnown(
                event.effective_on, frozenset(event.raters)
            )
        elif isinstance(event, UnitRated):
            self.rated.add(rating_key(event.unit_id, event.period, event.rater.kind, event.rater.id))

    # What the checks ask (the draft answers the same over its additions).

    def knows(self, unit_id: str) -> bool:
        return unit_id in self.known

    def parent_of(self, unit_id: str) -> str | None:
        return self.parents.get(unit_id)

    def panel(self, key: str) -> PanelKnown | None:
        return self.panels.get(key)

    def has_rated(self, key: str) -> bool:
        return key in self.rated


class UnitsDraft:
    """A batch's additions over the knowledge: what its events fold, visible to the next item's checks."""

    __slots__ = ("added", "base")

    def __init__(self, base: UnitsKnown) -> None:
        self.base = base
        self.added = UnitsKnown()

    def fold(self, event: EventBase) -> None:
        self.added.fold(event)

    def knows(self, unit_id: str) -> bool:
        return unit_id in self.added.known or unit_id in self.base.known

    def parent_of(self, unit_id: str) -> str | None:
        if unit_id in self.added.parents:
            return self.added.parents[unit_id]
        return self.base.parents.get(unit_id)

    def panel(self, key: str) -> PanelKnown | None:
        return self.added.panels.get(key) or self.base.panels.get(key)

    def has_rated(self, key: str) -> bool:
        return key in self.added.rated or key in self.base.rated

    def install(self) -> None:
        """Merge the additions into the knowledge (once the batch is appended)."""
        added, base = self.added, self.base
        base.known |= added.known
        base.parents.update(added.parents)
        base.panels.update(added.panels)
        base.rated |= added.rated


def weighted_score(scores: Mapping[str, str], weights: Mapping[str, Decimal]) -> Decimal:
    """The weighted mean of dimension scores, rounded half up to two places (what `score` must be)."""
    total = sum((Decimal(scores[name]) * weight for name, weight in weights.items()), Decimal(0))
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def _weighted_hundredths(scores: Mapping[str, str], weights: Mapping[str, Decimal]) -> int:
    """`weighted_score` in hundredths, in integers: a score has at most two places and a weight at most
    four (their patterns), so each product is exact in millionths, and half up is one integer division.
    (Decimal arithmetic for every rating was a tenth of posting a quarter's ratings.)"""
    total = sum(_hundredths(scores[name]) * _ten_thousandths(weight) for name, weight in weights.items())
    return (total + 5_000) // 10_000


@functools.lru_cache(maxsize=16_384)
def _hundredths(score: str) -> int:
    return int(Decimal(score).scaleb(2))


@functools.lru_cache(maxsize=1_024)
def _ten_thousandths(weight: Decimal) -> int:
    scaled = weight.scaleb(4)
    assert scaled == scaled.to_integral_value(), "a weight has at most four places"
    return int(scaled)


def check_unit_event(
    event: EventBase,
    units: UnitsKnown | UnitsDraft,
    *,
    today: date,
    dimensions: Mapping[str, Decimal],
) -> None:
    """Refuse (InvalidInput naming the field and rule) a unit registration, panel or rating the rules do not
    allow; `dimensions` are the unit rules' dimensions in the policy in force on the event's date."""
    if event.effective_on > today:
        raise InvalidInput(
            f"{event.effective_on} is later than today ({today})",
            field="effective_on",
            rule="effective_on_must_not_be_in_future",
        )
    if isinstance(event.points, Decimal) or event.override_reason is not None:
        raise InvalidInput(
            "units' events count no points and take no override",
            field="points",
            rule="points_override_not_allowed",
        )
    if isinstance(event, UnitRegistered):
        _check_registration(event, units)
    elif isinstance(event, RatingPanelDrawn):
        _check_panel(event, units)
    elif isinstance(event, UnitRated):
        _check_rating(event, units, dimensions)


def _check_registration(event: UnitRegistered, units: UnitsKnown | UnitsDraft) -> None:
    if event.parent is None:
        return
    if event.parent == event.unit_id:
        raise InvalidInput("a unit cannot belong to itself", field="parent", rule="unit_parent_cycle")
    if not units.knows(event.parent):
        raise InvalidInput(
            f"unit {event.parent} is not known: register it (or a cadre in it) first",
            field="parent",
            rule="unit_unknown",
        )
    ancestor: str | None = event.parent
    for _ in range(PARENT_DEPTH_MAX):
        ancestor = units.parent_of(ancestor) if ancestor is not None else None
        if ancestor is None:
            return
        if ancestor == event.unit_id:
            raise InvalidInput(
                f"unit {event.parent} belongs to {event.unit_id} already: that would make a cycle",
                field="parent",
                rule="unit_parent_cycle",
            )
    raise InvalidInput(
        f"units nest at most {PARENT_DEPTH_MAX} levels deep", field="parent", rule="unit_nesting_too_deep"
    )


def _period_of(text: str) -> date:
    try:
        return _first_day(text)
    except ValueError as error:
        raise InvalidInput(str(error), field="period", rule="period_invalid") from None


@functools.lru_cache(maxsize=4096)
def _first_day(period: str) -> date:
    # Every rating of a quarter names it: parse each name once.
    return parse_period(period).first_day


def _check_panel(event: RatingPanelDrawn, units: UnitsKnown | UnitsDraft) -> None:
    _period_of(event.period)
    if units.panel(panel_key(event.period, event.rater_kind)) is not None:
        raise InvalidInput(
            f"the {event.rater_kind} panel of {event.period} is drawn already; one panel per period",
            field="period",
            rule="panel_already_drawn",
        )
    seen: set[str] = set()
    for index, rater in enumerate(event.raters):
        if rater in seen:
            raise InvalidInput(
                f"rater {rater} is listed twice", field=f"raters[{index}]", rule="rater_listed_twice"
            )
        seen.add(rater)


def _check_rating(
    event: UnitRated, units: UnitsKnown | UnitsDraft, dimensions: Mapping[str, Decimal]
) -> None:
    first_day = _period_of(event.period)
    if not units.knows(event.unit_id):
        raise InvalidInput(
            f"unit {event.unit_id} is not known: no cadre was registered in it, no unit.registered names it",
            field="unit_id",
            rule="unit_unknown",
        )
    panel = units.panel(panel_key(event.period, event.rater.kind))
    if panel is None:
        raise InvalidInput(
            f"no {event.rater.kind} panel is drawn for {event.period}: post its rating.panel_drawn first",
            field="rater",
            rule="panel_not_drawn",
        )
    if event.rater.id not in panel.raters:
        raise InvalidInput(
            f"rater {event.rater.id} is not on the {event.rater.kind} panel of {event.period}",
            field="rater.id",
            rule="rater_not_on_panel",
        )
    if event.effective_on < first_day:
        raise InvalidInput(
            f"a rating for {event.period} is given from its first day ({first_day}) on",
            field="effective_on",
            rule="rating_before_period",
        )
    if event.effective_on < panel.drawn_on:
        raise InvalidInput(
            f"the panel of {event.period} was drawn on {panel.drawn_on}: a rating cannot precede it",
            field="effective_on",
            rule="rating_before_panel",
        )
    if units.has_rated(rating_key(event.unit_id, event.period, event.rater.kind, event.rater.id)):
        raise InvalidInput(
            f"rater {event.rater.id} has rated {event.unit_id} for {event.period} already",
            field="rater.id",
            rule="unit_already_rated",
        )
    _check_scores(event, dimensions)


def _check_scores(event: UnitRated, dimensions: Mapping[str, Decimal]) -> None:
    if not dimensions:
        if event.scores is not None:
            raise InvalidInput(
                "the policy rates units on no dimensions: send `score` alone",
                field="scores",
                rule="scores_without_dimensions",
            )
        return
    if event.scores is None:
        raise InvalidInput(
            f"the policy rates units on {', '.join(sorted(dimensions))}: send `scores` for each",
            field="scores",
            rule="scores_required",
        )
    missing = sorted(set(dimensions) - set(event.scores))
    if missing:
        raise InvalidInput(
            f"`scores` lacks the dimension(s) {', '.join(missing)}", field="scores", rule="scores_incomplete"
        )
    unknown = sorted(set(event.scores) - set(dimensions))
    if unknown:
        raise InvalidInput(
            f"`scores` holds dimension(s) the policy does not rate: {', '.join(unknown)}",
            field=f"scores.{unknown[0]}",
            rule="dimension_unknown",
        )
    if _hundredths(event.score) != _weighted_hundredths(event.scores, dimensions):
        expected = weighted_score(event.scores, dimensions)
        raise InvalidInput(
            f"`score` {event.score} is not the weighted mean of `scores` ({expected})",
            field="score",
            rule="score_not_weighted_mean",
        )
