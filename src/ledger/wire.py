"""Decoding what clients send (JSONL lines, HTTP bodies) strictly, with errors that name the field.

Every event is decoded with msgspec in strict mode against the tagged union of SPEC §3: an unknown `type`,
an unknown field, a malformed date or a value of the wrong type is refused. Points travel as strings
("12.50"); msgspec would accept a JSON number for a Decimal, so a small probe refuses a number first —
a float never becomes points.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ledger.domain.errors import InvalidInput
from ledger.domain.events import Event, EventBase
from ledger.domain.points import POINTS_PATTERN

__all__ = ["decode_event_json", "decode_jsonl", "field_of", "invalid_from", "refuse_nul"]

LINE_LENGTH_MAX: Final = 256 * 1024

_event_decoder = msgspec.json.Decoder(Event, strict=True)


class _PointsProbe(msgspec.Struct):
    points: Annotated[str, Meta(pattern=POINTS_PATTERN)] | UnsetType = UNSET


_probe_decoder = msgspec.json.Decoder(_PointsProbe, strict=True)
_PATH = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")
_FIELD_IN_MESSAGE = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def field_of(message: str) -> str | None:
    """The dotted field path in a msgspec error message (`$.source.key` → `source.key`)."""
    match = _PATH.search(message)
    path = match.group(1).lstrip(".") if match else ""
    named = _FIELD_IN_MESSAGE.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None


def invalid_from(error: msgspec.MsgspecError, *, item: int | None = None, prefix: str = "") -> InvalidInput:
    """An InvalidInput naming the field msgspec complained about."""
    message = str(error)
    field = field_of(message)
    if field and prefix:
        field = f"{prefix}.{field}"
    text = _PATH.sub("", message)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return InvalidInput(
            f"malformed JSON: {text}",
            field=field or prefix or None,
            rule="json_malformed",
            item=item,
        )
    if "Invalid value" in message and field and field.endswith("type"):
        return InvalidInput(f"unknown event type: {text}", field=field, rule="event_type_unknown", item=item)
    return InvalidInput(text, field=field, rule="field_invalid", item=item)


def decode_event_json(raw: bytes, *, item: int | None = None) -> EventBase:
    """One client event from JSON bytes."""
    if len(raw) > LINE_LENGTH_MAX:
        raise InvalidInput(f"an event is at most {LINE_LENGTH_MAX} bytes", item=item, rule="event_too_large")
    try:
        _probe_decoder.decode(raw)
    except RecursionError:
        raise InvalidInput("the event nests too deeply", item=item, rule="json_malformed") from None
    except msgspec.ValidationError as error:
        if field_of(str(error)) == "points":
            raise InvalidInput(
                'points are a decimal string with at most two places, such as "12.50" '
                "(numbers and floats are refused)",
                field="points",
                rule="points_must_be_decimal_string",
                item=item,
            ) from None
    except msgspec.DecodeError as error:
        raise invalid_from(error, item=item) from None
    try:
        event: EventBase = _event_decoder.decode(raw)
    except msgspec.MsgspecError as error:
        raise invalid_from(error, item=item) from None
    except RecursionError:
        raise InvalidInput("the event nests too deeply", item=item, rule="json_malformed") from None
    if b"\\u0000" in raw:
        refuse_nul(msgspec.json.decode(raw), item)
    return event


def refuse_nul(value: Any, item: int | None, path: str = "") -> None:
    """Refuse text holding U+0000, naming the field: PostgreSQL cannot store it, and it is never meant."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(
            "text must not contain the NUL character (U+0000)",
            field=path or None,
            rule="text_must_not_contain_nul",
            item=item,
        )
    if isinstance(value, dict):
        for key, inner in value.items():
            refuse_nul(inner, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            refuse_nul(inner, item, f"{path}[{index}]")


def decode_jsonl(lines: Iterable[bytes]) -> list[EventBase]:
    """Every event of a JSONL stream; blank lines are skipped, an error names the line (from 1)."""
    events: list[EventBase] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(decode_event_json(line.strip()))
        except InvalidInput as error:
            raise InvalidInput(
                f"line {number}: {error.message}", field=error.field, rule=error.rule
            ) from None
    return events
