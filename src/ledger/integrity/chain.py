"""The hash chain (SPEC §8): every recorded event is bound to all the events before it.

    hash(n) = SHA-256( hash(n-1) ‖ canonical_bytes(event n) ),    hash(0) = 32 zero bytes

`canonical_bytes` is the event's stored JSON (msgspec's encoding of its struct: the `type` tag first, then
the fields in declaration order, no whitespace, decimals as strings, dates `YYYY-MM-DD`) with the two
fields assigned at recording spliced in front:

    {"position":<int>,"recorded_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ",<the stored JSON without its opening brace>

so the hash covers the whole event — envelope, payload, server fields, position and recording time — and
the exact bytes kept in the database. Golden vectors in `tests/unit/test_integrity_golden.py` pin it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "GENESIS_HASH",
    "RECORDED_AT_LENGTH",
    "canonical_bytes",
    "chain_hash",
    "format_recorded_at",
    "parse_recorded_at",
]

GENESIS_HASH: Final = bytes(32)
RECORDED_AT_LENGTH: Final = len("2025-01-01T00:00:00.000000Z")


def format_recorded_at(instant: datetime) -> str:
    """`instant` in UTC as a fixed-width RFC 3339 string (microseconds, `Z`); text order is time order."""
    if instant.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_recorded_at(text: str) -> datetime:
    """The instant written by `format_recorded_at` (`fromisoformat` reads it fifty times faster than
    `strptime`, which a history of hundreds of entries felt)."""
    if len(text) != RECORDED_AT_LENGTH or text[10] != "T" or not text.endswith("Z"):
        raise ValueError(f"not a recorded_at instant: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def canonical_bytes(position: int, recorded_at: str, state: bytes) -> bytes:
    """The bytes hashed for the event at `position`: see the module docstring."""
    if not state.startswith(b"{") or len(state) < 2:
        raise ValueError("the stored state of an event is a JSON object")
    return b'{"position":%d,"recorded_at":"%s",%s' % (position, recorded_at.encode(), state[1:])


def chain_hash(previous: bytes, canonical: bytes) -> bytes:
    """The chain hash of an event whose predecessor hashed to `previous`."""
    return hashlib.sha256(previous + canonical).digest()
