"""What one append carries besides the events: the head it was decided against and the event ids.

The recorder fills in the outcome (positions, recording time, hashes) inside the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AppendOutcome", "BatchWrite", "StaleHead"]


class StaleHead(Exception):
    """Raised inside the append transaction when the log moved on since the batch was decided."""


@dataclass(slots=True)
class BatchWrite:
    """One atomic append."""

    expected_head: int
    event_ids: list[str]
    outcome: AppendOutcome | None = None


@dataclass(slots=True)
class AppendOutcome:
    first_position: int
    recorded_at: str
    hashes: list[bytes] = field(default_factory=list)
