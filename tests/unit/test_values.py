"""Points, periods and the strict decoding of what clients send."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from ledger.domain.errors import InvalidInput
from ledger.domain.events import MeritAwarded
from ledger.domain.periods import parse_period
from ledger.domain.points import points
from ledger.wire import decode_event_json, decode_jsonl

MERIT = (
    b'{"type":"merit.awarded","cadre_id":"C1","effective_on":"2025-03-01",'
    b'"source":{"system":"hr","key":"1"},"award":"citation","level":"unit"%s}'
)


def test_points_have_two_places_and_never_come_from_a_float() -> None:
    assert points("12.5") == Decimal("12.50")
    assert str(points(3)) == "3.00"
    assert points("-0.01") == Decimal("-0.01")
    with pytest.raises(TypeError):
        points(12.5)  # type: ignore[arg-type]
    for text in ("12.505", "1e3", "NaN", "", "12,5"):
        with pytest.raises(ValueError):
            points(text)


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("2025", date(2025, 1, 1), date(2025, 12, 31)),
        ("2025Q3", date(2025, 7, 1), date(2025, 9, 30)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2025-W27", date(2025, 6, 30), date(2025, 7, 6)),
    ],
)
def test_periods_span_their_days(name: str, first: date, last: date) -> None:
    period = parse_period(name)
    assert (period.first_day, period.last_day) == (first, last)
    assert period.previous().last_day == first - timedelta(days=1)


def test_previous_period_is_the_one_just_before() -> None:
    assert parse_period("2025Q1").previous().name == "2024Q4"
    assert parse_period("2025-01").previous().name == "2024-12"
    assert parse_period("2025-W01").previous().name == "2024-W52"


@pytest.mark.parametrize("name", ["2025Q5", "2025-13", "25Q1", "2025-W54", "2021-W53", "Q1"])
def test_malformed_periods_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        parse_period(name)


def test_a_client_event_decodes_strictly() -> None:
    event = decode_event_json(MERIT % b"")
    assert isinstance(event, MeritAwarded) and event.effective_on == date(2025, 3, 1)


@pytest.mark.parametrize(
    ("extra", "field", "rule"),
    [
        (b',"points":12.5,"override_reason":"x"', "points", "points_must_be_decimal_string"),
        (b',"points":"12.505","override_reason":"x"', "points", "points_must_be_decimal_string"),
        (b',"colour":"red"', "colour", "field_invalid"),
        (b',"document":' + b'"' + b"x" * 201 + b'"', "document", "field_invalid"),
    ],
)
def test_bad_fields_are_named(extra: bytes, field: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_event_json(MERIT % extra)
    assert (caught.value.field, caught.value.rule) == (field, rule)


def test_wrong_types_and_shapes_name_the_field() -> None:
    cases = {
        b'{"type":"merit.nope","cadre_id":"C1"}': ("type", "event_type_unknown"),
        MERIT.replace(b"2025-03-01", b"2025-02-30") % b"": ("effective_on", "field_invalid"),
        MERIT.replace(b'"C1"', b'"C 1"') % b"": ("cadre_id", "field_invalid"),
        MERIT.replace(b'"key":"1"', b'"key":1') % b"": ("source.key", "field_invalid"),
        MERIT.replace(b',"level":"unit"', b"") % b"": ("level", "field_invalid"),
        b'{"type":"merit.awarded",': (None, "json_malformed"),
    }
    for raw, (field, rule) in cases.items():
        with pytest.raises(InvalidInput) as caught:
            decode_event_json(raw)
        assert (caught.value.field, caught.value.rule) == (field, rule), raw


def test_jsonl_errors_name_the_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_jsonl([MERIT % b"", b"\n", MERIT % b',"x":1'])
    assert "line 3" in caught.value.message and caught.value.field == "x"


def test_a_client_event_fingerprints_as_the_event_recorded_from_it() -> None:
    import uuid

    import msgspec

    from ledger.posting import check_client_fields, client_fingerprint, fingerprint

    client = decode_event_json(MERIT % b"")
    check_client_fields(client)
    recorded = msgspec.structs.replace(
        client, event_id=uuid.uuid4(), posted_by="hr", points=Decimal("1.00"), policy_version="v1"
    )
    assert client_fingerprint(client) == fingerprint(client) == fingerprint(recorded)
    overridden = decode_event_json(MERIT % b',"points":"2.50","override_reason":"committee"')
    check_client_fields(overridden)
    assert client_fingerprint(overridden) == fingerprint(
        msgspec.structs.replace(overridden, event_id=uuid.uuid4(), posted_by="hr", policy_version="v1")
    )


def test_a_period_past_the_calendar_is_refused_as_invalid() -> None:
    with pytest.raises(ValueError, match="within the calendar"):
        parse_period("9999-W52")


def test_text_with_a_nul_character_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_event_json(MERIT.replace(b'"key":"1"', b'"key":"a\\u0000b"') % b"")
    assert (caught.value.field, caught.value.rule) == ("source.key", "text_must_not_contain_nul")
