"""The documents the ledger answers with (SPEC §10 shapes); HTTP bodies and `--format json` are these."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import msgspec

from ledger.domain.events import Source

__all__ = [
    "ConsistencyProof",
    "HistoryEntry",
    "HistoryPage",
    "InclusionProof",
    "PostResult",
    "PostedItem",
    "TableFinding",
    "VerifyReport",
]


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


class TableFinding(msgspec.Struct, frozen=True):
    """A side table (idempotency, keys, read models) that disagrees with the chained log.

    `table` names the table, `row` the row (its key, as text), `reason` one word (`index_mismatch`,
    `missing`, `inserted`, `altered`, `duplicate`, `out_of_order`), `detail` says what differs.
    """

    table: str
    row: str
    reason: str
    detail: str


class VerifyReport(msgspec.Struct, frozen=True):
    """The chain's verdict: `reason` is one word (altered, missing, reordered, inserted), `detail` more.

    `findings` lists the side tables' disagreements with the log; `ok` is false if there is any.
    """

    ok: bool
    verified_through: int
    head_hash: str
    first_bad_position: int | None
    reason: str | None
    detail: str | None = None
    findings: list[TableFinding] = msgspec.field(default_factory=list)
    # The Merkle tree head (RFC 9162) recomputed from the log through `verified_through`.
    root_hash: str | None = None

    def with_findings(self, findings: list[TableFinding]) -> VerifyReport:
        """This report with `findings` added (and `ok` false if there are any)."""
        if not findings:
            return self
        return msgspec.structs.replace(self, ok=False, findings=[*self.findings, *findings])


class InclusionProof(msgspec.Struct, frozen=True):
    """The event at `position` is leaf `position − 1` of the tree of `tree_size` leaves whose head is
    `root_hash` (RFC 9162 §2.1.3): `audit_path` from the leaf's sibling up, hashes in lowercase hex; `leaf`
    is the event's canonical bytes (UTF-8 JSON), so that `leaf_hash` = SHA-256(0x00 ‖ leaf)."""

    position: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str]
    leaf: str


class ConsistencyProof(msgspec.Struct, frozen=True):
    """The tree of `second` leaves extends the tree of `first` leaves (RFC 9162 §2.1.4)."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]
