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
    "RankingEntry",
    "RankingsView",
    "RecallCandidate",
    "RecallsView",
    "ShortlistEntry",
    "ShortlistView",
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
