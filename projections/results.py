"""The documents the read models answer with (SPEC §7, §10). HTTP bodies and `--format json` are these."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import msgspec

__all__ = [
    "BoardsView",
    "CadreView",
    "Check",
    "Components",
    "EligibilityView",
    "Escalation",
    "EscalationsView",
    "Leader",
    "Panel",
    "RankingEntry",
    "RankingsView",
    "RecallCandidate",
    "RecallsView",
    "ShortlistEntry",
    "ShortlistView",
    "UnitEscalation",
    "UnitEscalationsView",
    "UnitPeriod",
    "UnitRankingEntry",
    "UnitRankingsView",
    "UnitRating",
    "UnitView",
]

KnownAt = int | datetime


class Components(msgspec.Struct, frozen=True):
    """A total split by where the points came from; veto points count with deductions."""

    tenure: Decimal
    merit: Decimal
    deductions: Decimal
    appraisal: Decimal
    evaluation: Decimal
    recall: Decimal


class CadreView(msgspec.Struct, frozen=True):
    """A cadre's profile and standing as of a date, as known at a moment."""

    cadre_id: str
    name: str
    unit_id: str
    grade: str
    status: str  # active, departed
    leadership: bool
    principal: bool
    left_leadership: bool
    registered_on: date
    departed_on: date | None
    total: Decimal
    components: Components
    as_of: date
    known_at: KnownAt
    position: int


class RankingEntry(msgspec.Struct, frozen=True):
    rank: int
    cadre_id: str
    name: str
    unit_id: str
    grade: str
    total: Decimal
    components: Components
    previous_rank: int | None
    movement: int | None  # previous_rank - rank: positive moved up


class RankingsView(msgspec.Struct, frozen=True):
    """A ranking. `basis` `total` ranks cumulative totals; `period` ranks the points whose valid date lies
    in [`since`, `as_of`] (`since` is None for `total`)."""

    scope: str
    as_of: date
    basis: str
    since: date | None
    known_at: KnownAt
    position: int
    previous_as_of: date
    entries: list[RankingEntry]
    next_cursor: str | None


class Check(msgspec.Struct, frozen=True):
    check: str
    passed: bool
    detail: str


class EligibilityView(msgspec.Struct, frozen=True):
    cadre_id: str
    as_of: date
    known_at: KnownAt
    position: int
    eligible: bool
    checks: list[Check]


class ShortlistEntry(msgspec.Struct, frozen=True):
    rank: int
    cadre_id: str
    name: str
    unit_id: str
    grade: str
    total: Decimal


class ShortlistView(msgspec.Struct, frozen=True):
    """The promotion shortlist of a scope: its eligible cadres in rank order."""

    scope: str
    as_of: date
    known_at: KnownAt
    position: int
    entries: list[ShortlistEntry]
    next_cursor: str | None


class RecallCandidate(msgspec.Struct, frozen=True):
    cadre_id: str
    name: str
    unit_id: str
    rank: int
    pool_size: int
    total: Decimal


class OpenRecall(msgspec.Struct, frozen=True):
    cadre_id: str
    ordered_on: date
    period: str
    reason: str


class RecallsView(msgspec.Struct, frozen=True):
    """The 回炉 list of a period: the bottom of each scope with a large enough pool, and open recalls."""

    period: str
    scope: str
    as_of: date
    basis: str
    known_at: KnownAt
    position: int
    candidates: list[RecallCandidate]
    open_recalls: list[OpenRecall]


class BoardEntry(msgspec.Struct, frozen=True):
    rank: int
    cadre_id: str
    name: str
    unit_id: str
    total: Decimal


class BoardsView(msgspec.Struct, frozen=True):
    """红黑榜: the top of the scope without vetoed cadres, and the bottom."""

    period: str
    scope: str
    as_of: date
    basis: str
    known_at: KnownAt
    position: int
    red: list[BoardEntry]
    black: list[BoardEntry]


class Escalation(msgspec.Struct, frozen=True):
    cadre_id: str
    name: str
    unit_id: str
    streak: int
    step: int
    action: str
    label: str


class EscalationsView(msgspec.Struct, frozen=True):
    period: str
    scope: str
    as_of: date
    basis: str
    known_at: KnownAt
    position: int
    escalations: list[Escalation]


# Units rated by enterprises (市场主体评部门).


class Panel(msgspec.Struct, frozen=True):
    """The panel drawn for a period: how many raters, and how they were drawn (to draw again and compare)."""

    rater_kind: str
    size: int
    method: str
    seed: str
    drawn_on: date
    position: int


class UnitRankingEntry(msgspec.Struct, frozen=True):
    """A unit in a period's ranking. `rank` is null when the unit had fewer ratings than the policy's
    minimum; `score` is the aggregated score (two places); `trimmed` ratings were dropped from each end."""

    rank: int | None
    unit_id: str
    name: str | None
    score: Decimal | None
    ratings: int
    trimmed: int
    dissatisfied: int
    previous_rank: int | None
    movement: int | None  # previous_rank - rank: positive moved up
    in_bottom: bool


class UnitRankingsView(msgspec.Struct, frozen=True):
    """A period's ranking of units by their ratings, as of `as_of` (ratings dated by then) as known at
    `known_at`, under the unit rules of `policy_version` (in force on the period's last day)."""

    period: str
    previous_period: str | None  # null for the calendar's first period
    as_of: date
    known_at: KnownAt
    position: int
    policy_version: str
    aggregation: str
    ratings_min: int
    bottom_count: int
    panel: Panel | None
    entries: list[UnitRankingEntry]


class Leader(msgspec.Struct, frozen=True):
    """The cadre an action names: the unit's principal leader on the period's last day."""

    cadre_id: str
    name: str


class UnitEscalation(msgspec.Struct, frozen=True):
    """A unit in the bottom for `streak` consecutive periods up to this one, the ladder step it reaches and
    its action — a proposal. `consequence` is what the step asks to be posted for the leader
    (`deduction:<kind>` or `removal`), null when it asks nothing; `consequence_posted` tells whether the
    department posted it after the period's end (by `as_of`, as known at `known_at`)."""

    unit_id: str
    name: str | None
    rank: int
    score: Decimal
    streak: int
    step: int
    action: str
    label: str
    leader: Leader | None
    consequence: str | None
    consequence_posted: bool | None


class UnitEscalationsView(msgspec.Struct, frozen=True):
    period: str
    as_of: date
    known_at: KnownAt
    position: int
    policy_version: str
    bottom_count: int
    escalations: list[UnitEscalation]


class UnitPeriod(msgspec.Struct, frozen=True):
    """A unit's standing in one period it was rated in: rank of `of` ranked units, streak and step."""

    period: str
    rank: int | None
    of: int
    score: Decimal | None
    ratings: int
    dissatisfied: int
    in_bottom: bool
    streak: int
    step: int | None
    action: str | None


class UnitRating(msgspec.Struct, frozen=True):
    position: int
    effective_on: date
    period: str
    rater_kind: str
    rater_id: str
    score: Decimal
    verdict: str


class UnitView(msgspec.Struct, frozen=True):
    """A unit: its details (null until a `unit.registered` gives them), its periods and its ratings."""

    unit_id: str
    name: str | None
    kind: str | None
    parent: str | None
    as_of: date
    known_at: KnownAt
    position: int
    periods: list[UnitPeriod]
    ratings: list[UnitRating]
