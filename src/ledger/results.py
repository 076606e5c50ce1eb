"""The documents the ledger answers with (SPEC §10 shapes); HTTP bodies and `--format json` are these."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import msgspec

from ledger.domain.events import Source

__all__ = ["HistoryEntry", "HistoryPage", "PostResult", "PostedItem", "VerifyReport"]


class PostedItem(msgspec.Struct, frozen=True):
    """One posted event: where it landed and what it counted; `replayed` if it was already recorded."""

    event_id: uuid.UUID
    position: int
    points: Decimal
    hash: str
    replayed: bool


class PostResult(msgspec.Struct, frozen=True):
    """The answer to a batch: the log position after it and one item per posted event, in order."""

    position: int
    results: list[PostedItem]


class HistoryEntry(msgspec.Struct, frozen=True):
    event_id: uuid.UUID
    position: int
    type: str
    effective_on: date
    counts_from: date
    recorded_at: datetime
    points: Decimal  # as recorded
    counted_points: Decimal  # what the entry counts in this read (ledger.policy.counting)
    adjustment: str | None  # why counted_points differs from points
    running_total: Decimal  # of counted_points
    posted_by: str
    source: Source
    document: str | None
    reverses: uuid.UUID | None
    reversed_by: uuid.UUID | None
    hash: str


class HistoryPage(msgspec.Struct, frozen=True):
    cadre_id: str
    as_of: date
    known_at: int | datetime
    position: int
    total: Decimal
    entries: list[HistoryEntry]
    next_cursor: str | None


class VerifyReport(msgspec.Struct, frozen=True):
    """The chain's verdict: `reason` is one word (altered, missing, reordered, inserted), `detail` more."""

    ok: bool
    verified_through: int
    head_hash: str
    first_bad_position: int | None
    reason: str | None
    detail: str | None = None
