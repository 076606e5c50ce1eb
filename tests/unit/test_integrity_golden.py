"""Golden vectors: the stored format and the canonical bytes are pinned byte for byte.

If one of these fails, the stored format or the chain changed: every existing ledger would stop verifying.
Change them only with a new format version and a migration.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from ledger.domain.events import CadreRegistered, MeritAwarded, Source
from ledger.integrity.chain import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    format_recorded_at,
    parse_recorded_at,
)
from ledger.store.mapper import decode_event, encode_event

MERIT = MeritAwarded(
    event_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
    cadre_id="C00042",
    effective_on=date(2025, 3, 14),
    source=Source(system="merit-office", key="2025-0042"),
    posted_by="key:merit-office",
    document="仙组通〔2025〕12号",
    note=None,
    points=Decimal("2.00"),
    policy_version="illustrative-1",
    award="merit_third_class",
    level="county",
    deed="flood-2025",
)
MERIT_STATE = (
    '{"type":"merit.awarded","event_id":"00000000-0000-4000-8000-000000000001","effective_on":"2025-03-14",'
    '"source":{"system":"merit-office","key":"2025-0042"},"posted_by":"key:merit-office",'
    '"document":"仙组通〔2025〕12号","note":null,"points":"2.00","override_reason":null,'
    '"policy_version":"illustrative-1","cadre_id":"C00042","award":"merit_third_class","level":"county",'
    '"deed":"flood-2025"}'
).encode()
MERIT_CANONICAL = b'{"position":7,"recorded_at":"2025-03-15T01:02:03.000004Z",' + MERIT_STATE[1:]
MERIT_HASH_AFTER_GENESIS = "bad6f6cdee80d5ed90447eee8102f0460d4e5268bbd0617634b50dd0a6482f05"
MERIT_HASH_AFTER_ITSELF = "24d9a9052937d2b1ea12a3b63ae365968d0a788523e4cfb658e44b0d57e8c253"


def test_stored_state_is_msgspec_json_with_the_type_first_and_fields_in_declaration_order() -> None:
    assert encode_event(MERIT) == MERIT_STATE


def test_stored_state_decodes_back_to_the_same_event() -> None:
    assert decode_event(MERIT_STATE) == MERIT


def test_canonical_bytes_splice_position_and_recorded_at_before_the_stored_fields() -> None:
    assert canonical_bytes(7, "2025-03-15T01:02:03.000004Z", MERIT_STATE) == MERIT_CANONICAL


def test_chain_hash_is_sha256_of_previous_hash_and_canonical_bytes() -> None:
    assert hashlib.sha256(bytes(32) + MERIT_CANONICAL).hexdigest() == MERIT_HASH_AFTER_GENESIS
    assert chain_hash(GENESIS_HASH, MERIT_CANONICAL).hex() == MERIT_HASH_AFTER_GENESIS
    previous = bytes.fromhex(MERIT_HASH_AFTER_GENESIS)
    assert chain_hash(previous, MERIT_CANONICAL).hex() == MERIT_HASH_AFTER_ITSELF


def test_recorded_at_is_fixed_width_utc_with_microseconds() -> None:
    instant = datetime(2025, 3, 15, 1, 2, 3, 4, tzinfo=UTC)
    assert format_recorded_at(instant) == "2025-03-15T01:02:03.000004Z"
    assert format_recorded_at(datetime(2025, 3, 15, tzinfo=UTC)) == "2025-03-15T00:00:00.000000Z"
    assert parse_recorded_at("2025-03-15T01:02:03.000004Z") == instant


def test_registration_state_is_pinned() -> None:
    event = CadreRegistered(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000002"),
        cadre_id="C1",
        effective_on=date(2024, 1, 1),
        source=Source(system="hr", key="1"),
        posted_by="p",
        points=Decimal("0.00"),
        policy_version="none",
        name="张三",
        unit_id="U1",
        grade="一级科员",
        leadership=True,
        principal=False,
        service_started_on=date(2010, 3, 1),
        grade_since=date(2020, 1, 1),
    )
    assert (
        encode_event(event)
        == (
            '{"type":"cadre.registered","event_id":"00000000-0000-4000-8000-000000000002",'
            '"effective_on":"2024-01-01","source":{"system":"hr","key":"1"},"posted_by":"p","document":null,'
            '"note":null,"points":"0.00","override_reason":null,"policy_version":"none","cadre_id":"C1",'
            '"name":"张三","unit_id":"U1","grade":"一级科员","leadership":true,"principal":false,'
            '"service_started_on":"2010-03-01","grade_since":"2020-01-01"}'
        ).encode()
    )
