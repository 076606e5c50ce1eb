"""Event ids: UUID version 7 (RFC 9562) — a millisecond timestamp, then 74 random bits.

Random (version 4) ids land on random pages of every index that holds them; a ledger appends, so its ids
should arrive in order. Version 7 ids are as unique and unguessable as version 4 for our purposes (74
random bits per millisecond) and sort by the time they were made, so the index of event ids grows at its
end like the log does. Nothing relies on their order: positions order the log.
"""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_event_id"]

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RANDOM_A_MASK = (1 << 12) - 1
_RANDOM_B_MASK = (1 << 62) - 1


def new_event_id() -> uuid.UUID:
    """A new version 7 UUID."""
    milliseconds = time.time_ns() // 1_000_000
    randomness = int.from_bytes(os.urandom(10), "big")
    value = (
        (milliseconds & ((1 << 48) - 1)) << 80
        | _VERSION_7
        | ((randomness >> 62) & _RANDOM_A_MASK) << 64
        | _VARIANT_RFC
        | (randomness & _RANDOM_B_MASK)
    )
    return uuid.UUID(int=value)
