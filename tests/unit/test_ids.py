"""Event ids are version 7 UUIDs: unique, and ordered by the millisecond they were made in."""

from __future__ import annotations

import time

from ledger.domain.ids import new_event_id


def test_event_ids_are_version_7_with_the_rfc_variant() -> None:
    event_id = new_event_id()
    assert event_id.version == 7
    assert event_id.variant == "specified in RFC 4122"


def test_event_ids_carry_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= event_id.int >> 80 <= after


def test_event_ids_made_in_later_milliseconds_sort_later_and_never_repeat() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    stamps = [event_id.int >> 80 for event_id in ids]
    assert stamps == sorted(stamps)
