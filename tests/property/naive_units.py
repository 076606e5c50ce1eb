"""A naive model of the units' read models (issue 15): unit rankings, the bottom, streaks and ladder steps,
recomputed from the raw log with loops, straight from the rules as the issue and the brief state them.

It reads the recorded events (`Ledger.records()` gives `(position, event)`) and answers a read of period P
at (as_of A, known_at K):

- a rating counts if it is a `unit.rated` of P with position ≤ K and `effective_on` ≤ A;
- the unit rules are those of the policy in force on P's last day as known at K: of the publications with
  position ≤ K, the latest `effective_from` ≤ that day (then the latest position); before every one, the
  earliest known; with none known, the packaged illustrative policy. The `[units]` table is read here with
  `tomllib`, its absent keys taking the documented defaults (mean, ratings_min 1, fewer_dissatisfied,
  bottom 3, the Xiantao ladder);
- a unit's score is the mean of its ratings' scores, or their trimmed mean (floor(n × trim_share) dropped
  from each end), rounded half up to 0.01 once; fewer than `ratings_min` ratings (or none left): no score;
- a unit's rank is 1 + the number of scored units strictly better on (score, tie-breakers); units that have
  ratings but no score are listed after, rank None;
- a scored unit is in the bottom N iff fewer than N scored units are strictly worse than it (this takes the
  whole tied group at the edge, and every unit when there are no more than N);
- its streak in P is the number of consecutive quarters ending at P with the unit in the bottom, each
  ranked at the same (A, K) under its own rules; its step is the rung min(streak, top) of the ladder.

Only quarters are modelled. It shares nothing with `ledger.policy.units` or `ledger.projections`: only the
event structs and the packaged policy's text.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from ledger.domain.events import EventBase, PolicyPublished, UnitRated
from ledger.policy.load import illustrative_policy_text

__all__ = [
    "Escalation",
    "Row",
    "Rules",
    "UnitModel",
    "quarter_before",
    "quarter_bounds",
    "units_policy_text",
]

CENT = Decimal("0.01")
XIANTAO_LADDER = (
    (1, "commitment_speech_and_summons_talk"),
    (2, "admonishment_talk"),
    (3, "removal_from_post"),
)


def quarter_bounds(name: str) -> tuple[date, date]:
    """First and last day of quarter `name` ("2024Q3")."""
    year, quarter = int(name[:4]), int(name[5])
    first = date(year, 3 * quarter - 2, 1)
    following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return first, following - timedelta(days=1)


def quarter_before(name: str) -> str:
    year, quarter = int(name[:4]), int(name[5])
    return f"{year - 1}Q4" if quarter == 1 else f"{year}Q{quarter - 1}"


@dataclass(frozen=True)
class Rules:
    aggregation: str
    trim_share: Decimal
    ratings_min: int
    tie_breakers: tuple[str, ...]
    bottom_count: int
    ladder: tuple[tuple[int, str], ...]  # (step, action)


def rules_of(body: str) -> Rules:
    units = tomllib.loads(body).get("units", {})
    ladder = (
        tuple(sorted((rung["step"], rung["action"]) for rung in units.get("ladder", ()))) or XIANTAO_LADDER
    )
    return Rules(
        aggregation=units.get("aggregation", "mean"),
        trim_share=Decimal(units.get("trim_share", "0")),
        ratings_min=units.get("ratings_min", 1),
        tie_breakers=tuple(units.get("tie_breakers", ("fewer_dissatisfied",))),
        bottom_count=units.get("bottom_count", 3),
        ladder=ladder,
    )


@dataclass(frozen=True)
class Row:
    """A unit in a period's ranking, as the read model lists it."""

    rank: int | None
    unit_id: str
    score: Decimal | None
    ratings: int
    trimmed: int
    dissatisfied: int
    previous_rank: int | None
    movement: int | None
    in_bottom: bool


@dataclass(frozen=True)
class Escalation:
    unit_id: str
    rank: int
    score: Decimal
    streak: int
    step: int
    action: str


@dataclass(frozen=True)
class _Tally:
    unit_id: str
    score: Decimal | None
    ratings: int
    trimmed: int
    dissatisfied: int


class UnitModel:
    """Answers from the raw log, recomputed at every call."""

    def __init__(self, records: list[tuple[int, EventBase]]) -> None:
        self.records = records
        self.policies = [
            (position, event.effective_from, rules_of(event.body))
            for position, event in records
            if isinstance(event, PolicyPublished)
        ]

    def rules(self, period: str, known_at: int) -> Rules:
        last_day = quarter_bounds(period)[1]
        known = [policy for policy in self.policies if policy[0] <= known_at]
        if not known:
            return rules_of(illustrative_policy_text())
        in_force = [policy for policy in known if policy[1] <= last_day]
        if in_force:
            return max(in_force, key=lambda policy: (policy[1], policy[0]))[2]
        return min(known, key=lambda policy: (policy[1], policy[0]))[2]

    def _tallies(self, period: str, as_of: date, known_at: int) -> list[_Tally]:
        rules = self.rules(period, known_at)
        by_unit: dict[str, list[UnitRated]] = {}
        for position, event in self.records:
            if (
                isinstance(event, UnitRated)
                and event.period == period
                and position <= known_at
                and event.effective_on <= as_of
            ):
                by_unit.setdefault(event.unit_id, []).append(event)
        tallies = []
        for unit_id, ratings in sorted(by_unit.items()):
            scores = sorted(Decimal(rating.score) for rating in ratings)
            count = len(scores)
            trimmed = 0
            score: Decimal | None = None
            if count >= rules.ratings_min:
                if rules.aggregation == "trimmed_mean":
                    trimmed = int(Decimal(count) * rules.trim_share // 1)
                    scores = scores[trimmed : count - trimmed]
                if scores:
                    score = (sum(scores, Decimal(0)) / len(scores)).quantize(CENT, rounding=ROUND_HALF_UP)
            dissatisfied = sum(1 for rating in ratings if rating.verdict == "dissatisfied")
            tallies.append(_Tally(unit_id, score, count, trimmed, dissatisfied))
        return tallies

    @staticmethod
    def _better(a: _Tally, b: _Tally, rules: Rules) -> bool:
        """Whether scored unit `a` ranks strictly above scored unit `b`."""
        assert a.score is not None and b.score is not None
        if a.score != b.score:
            return a.score > b.score
        for breaker in rules.tie_breakers:
            if breaker == "fewer_dissatisfied" and a.dissatisfied != b.dissatisfied:
                return a.dissatisfied < b.dissatisfied
            if breaker == "more_ratings" and a.ratings != b.ratings:
                return a.ratings > b.ratings
        return False

    def _ranked(self, period: str, as_of: date, known_at: int) -> list[tuple[int | None, _Tally, bool]]:
        """(rank, tally, in_bottom) in listing order."""
        rules = self.rules(period, known_at)
        tallies = self._tallies(period, as_of, known_at)
        scored = [tally for tally in tallies if tally.score is not None]
        rows: list[tuple[int | None, _Tally, bool]] = []
        for tally in scored:
            rank = 1 + sum(1 for other in scored if self._better(other, tally, rules))
            worse = sum(1 for other in scored if self._better(tally, other, rules))
            rows.append((rank, tally, worse < rules.bottom_count))
        rows.sort(key=lambda row: (row[0], row[1].unit_id))
        rows.extend((None, tally, False) for tally in tallies if tally.score is None)
        return rows

    def bottom(self, period: str, as_of: date, known_at: int) -> set[str]:
        return {
            tally.unit_id for _rank, tally, in_bottom in self._ranked(period, as_of, known_at) if in_bottom
        }

    def rankings(self, period: str, as_of: date, known_at: int) -> list[Row]:
        previous = {
            tally.unit_id: rank for rank, tally, _ in self._ranked(quarter_before(period), as_of, known_at)
        }
        rows = []
        for rank, tally, in_bottom in self._ranked(period, as_of, known_at):
            previous_rank = previous.get(tally.unit_id)
            movement = None if previous_rank is None or rank is None else previous_rank - rank
            rows.append(
                Row(
                    rank,
                    tally.unit_id,
                    tally.score,
                    tally.ratings,
                    tally.trimmed,
                    tally.dissatisfied,
                    previous_rank,
                    movement,
                    in_bottom,
                )
            )
        return rows

    def streak(self, unit_id: str, period: str, as_of: date, known_at: int) -> int:
        streak = 0
        while unit_id in self.bottom(period, as_of, known_at):
            streak += 1
            period = quarter_before(period)
        return streak

    def escalations(self, period: str, as_of: date, known_at: int) -> list[Escalation]:
        """The bottom's units, by longest streak, then lowest rank, then unit_id."""
        ladder = self.rules(period, known_at).ladder
        escalations = []
        for rank, tally, in_bottom in self._ranked(period, as_of, known_at):
            if not in_bottom:
                continue
            assert rank is not None and tally.score is not None
            streak = self.streak(tally.unit_id, period, as_of, known_at)
            step, action = ladder[min(streak, len(ladder)) - 1]
            escalations.append(Escalation(tally.unit_id, rank, tally.score, streak, step, action))
        escalations.sort(key=lambda item: (-item.streak, -item.rank, item.unit_id))
        return escalations


def units_policy_text(
    version: str,
    *,
    aggregation: str = "mean",
    trim_share: str | None = None,
    ratings_min: int = 1,
    tie_breakers: tuple[str, ...] = ("fewer_dissatisfied",),
    bottom_count: int = 3,
    dimensions: dict[str, str] | None = None,
) -> str:
    """The packaged illustrative policy under another `version`, its `[units]` table replaced (the Xiantao
    ladder kept; no dimensions unless given)."""
    text = illustrative_policy_text()
    text, count = re.subn(r'^version = "[^"]*"$', f'version = "{version}"', text, flags=re.MULTILINE)
    assert count == 1
    head, separator, _units = text.partition("\n[units]\n")
    assert separator, "the illustrative policy's [units] table is its last"
    lines = [
        "[units]",
        f'aggregation = "{aggregation}"',
        *([f'trim_share = "{trim_share}"'] if trim_share is not None else []),
        f"ratings_min = {ratings_min}",
        "tie_breakers = [" + ", ".join(f'"{breaker}"' for breaker in tie_breakers) + "]",
        f"bottom_count = {bottom_count}",
        'names = "principal_leader"',
    ]
    if dimensions:
        lines += ["", "[units.dimensions]", *(f'{name} = "{weight}"' for name, weight in dimensions.items())]
    lines += [
        "",
        "[[units.ladder]]",
        "step = 1",
        'action = "commitment_speech_and_summons_talk"',
        'label = "表态发言+约谈"',
        "",
        "[[units.ladder]]",
        "step = 2",
        'action = "admonishment_talk"',
        'label = "诫勉谈话"',
        'deduction = "admonishment"',
        "",
        "[[units.ladder]]",
        "step = 3",
        'action = "removal_from_post"',
        'label = "调离岗位"',
        "removes = true",
    ]
    return head + "\n" + "\n".join(lines) + "\n"
