"""Decoding what clients send (JSONL lines, HTTP bodies) strictly, with errors that name the field.

Every event is decoded with msgspec in strict mode against the tagged union of SPEC §3: an unknown `type`,
an unknown field, a malformed date or a value of the wrong type is refused. Points travel as strings
("12.50"); msgspec would accept a JSON number for a Decimal, so a small probe refuses a number first —
a float never becomes points.

Bytes are checked to be UTF-8 before any JSON is read (`check_utf8`): msgspec skips what it does not
decode (a `Raw` item, an unknown field) without looking at it, and raises a bare UnicodeDecodeError,
with an offset into one string, for what it does.

Names match whole strings (`check_names`): msgspec applies a pattern with `re.search`, and in Python `$`
also matches before a final line break, so its check lets "C00001\\n" — which looks like C00001 and is not
— through. The patterns stay as they are because msgspec applies them to stored events too, and a log
must always read; the whole-string rule is checked here, for input only. Free-form text that identifies
something (the source key, the document number, a deed, a reference, a name) is one line: a line break or
another control character in it is refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    CADRE_ID_PATTERN,
    RATER_ID_PATTERN,
    SCORE_PATTERN,
    SYSTEM_PATTERN,
    UNIT_ID_PATTERN,
    VERSION_PATTERN,
    Event,
    EventBase,
)
from ledger.domain.periods import PERIOD_PATTERN
from ledger.domain.points import POINTS_PATTERN

__all__ = [
    "LINE_FIELDS",
    "PATTERN_FIELDS",
    "PATTERN_WORDS",
    "NotUtf8",
    "check_event",
    "check_names",
    "check_utf8",
    "decode_event_json",
    "decode_jsonl",
    "field_of",
    "invalid_from",
    "plain_message",
    "refuse_nul",
    "whole",
]

LINE_LENGTH_MAX: Final = 256 * 1024

_event_decoder = msgspec.json.Decoder(Event, strict=True)


class _PointsProbe(msgspec.Struct):
    points: Annotated[str, Meta(pattern=POINTS_PATTERN)] | UnsetType = UNSET


_probe_decoder = msgspec.json.Decoder(_PointsProbe, strict=True)
_PATH = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")
_FIELD_IN_MESSAGE = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")
UTF8_RULE: Final = "text_must_be_utf8"
LINE_RULE: Final = "text_must_be_one_line"
# The patterned names of an event (as paths into it), each matched as a whole string.
PATTERN_FIELDS: Final = (
    ("cadre_id", CADRE_ID_PATTERN),
    ("unit_id", UNIT_ID_PATTERN),
    ("source.system", SYSTEM_PATTERN),
    ("period", PERIOD_PATTERN),
    ("version", VERSION_PATTERN),
)
# The bytes that start what a control character or line break leaves in JSON: an escape (`\n`, `\u0085`),
# DEL, and the lead bytes of C1 controls and of U+2028/U+2029 in UTF-8.
_CONTROL_LEADS: Final = b"\\\x7f\xc2\xe2"
_CONTROL_IN_JSON: Final = re.compile(rb"[\\\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
# The text fields that name or identify something (as paths into an event); free text — `note`,
# `reason`, `override_reason`, a policy's `body` — may hold line breaks.
LINE_FIELDS: Final = ("source.key", "document", "name", "deed", "reference", "method", "seed")
# C0 controls (line feed, carriage return, tab …), DEL, C1 controls (NEL …) and the Unicode line and
# paragraph separators: each either breaks a line or cannot be seen. (NUL is `refuse_nul`'s.)
_NOT_ONE_LINE = re.compile("[\x01-\x1f\x7f-\x9f\u2028\u2029]")


def whole(pattern: str) -> str:
    r"""`pattern` (written `^…$`) matching the whole string only, for a parameter or a schema.

    In Python `$` also matches before a final line break; `(?!\n)` after it refuses that. `\Z` would say
    the same in Python, but parameter patterns are published in the OpenAPI document, whose patterns are
    ECMA-262 regular expressions: there `\Z` does not exist, `$` already means the end, and `$(?!\n)`
    means what it means here.
    """
    return pattern if pattern.endswith(r"(?!\n)") else pattern + r"(?!\n)"


_WORDS: Final = {
    CADRE_ID_PATTERN: "1 to 64 of A-Z a-z 0-9 . _ - (no spaces, no line breaks)",
    UNIT_ID_PATTERN: "1 to 64 of A-Z a-z 0-9 . _ - (no spaces, no line breaks)",
    SYSTEM_PATTERN: "1 to 64 of A-Z a-z 0-9 . _ : - (no spaces, no line breaks)",
    VERSION_PATTERN: "1 to 32 of A-Z a-z 0-9 . _ - (no spaces, no line breaks)",
    PERIOD_PATTERN: "a period such as 2025, 2025Q3, 2025-07 or 2025-W27 (nothing before or after it)",
    POINTS_PATTERN: 'a decimal string with at most two places, such as "12.50"',
    SCORE_PATTERN: 'a score from 0 to 100 as a decimal string with at most two places, such as "87.5"',
    RATER_ID_PATTERN: "1 to 64 of A-Z a-z 0-9 . _ : - (no spaces, no line breaks)",
}
# What each pattern means, in words, for the messages msgspec writes as "matching regex '…'" (a pattern
# and its `whole` form alike).
PATTERN_WORDS: Final[Mapping[str, str]] = _WORDS | {
    whole(pattern): words for pattern, words in _WORDS.items()
}
_REGEX_IN_MESSAGE = re.compile(r"Expected `str` matching regex ('(?:[^'\\]|\\.)*')")


class NotUtf8(InvalidInput):
    """Raised when bytes that should be UTF-8 text are not; `offset` is the first bad byte's (from 0).

    Python's strict decoder decides, so overlong forms (`C0 AF`), encoded surrogates (`ED A0 80`), code
    points past U+10FFFF and truncated sequences are refused like any stray byte.
    """

    def __init__(
        self, offset: int, byte: int, *, where: str = "the body", of: str = "", item: int | None = None
    ) -> None:
        self.offset = offset
        self.byte = byte
        super().__init__(
            f"{where} is not UTF-8: invalid byte 0x{byte:02x} at offset {offset}{of}",
            rule=UTF8_RULE,
            item=item,
        )


def check_utf8(raw: bytes, *, where: str = "the body", of: str = "", item: int | None = None) -> None:
    """Refuse bytes that are not UTF-8 (JSON is UTF-8, RFC 8259 §8.1) with NotUtf8 naming the offset."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotUtf8(error.start, raw[error.start], where=where, of=of, item=item) from None


def plain_message(message: str, words: Mapping[str, str] = PATTERN_WORDS) -> str:
    """msgspec's "Expected `str` matching regex '…'" in `words`, for the patterns the ledger defines."""
    meanings = {repr(pattern): meaning for pattern, meaning in words.items()}

    def in_words(match: re.Match[str]) -> str:
        meaning = meanings.get(match.group(1))
        return f"expected {meaning}" if meaning else match.group(0)

    return _REGEX_IN_MESSAGE.sub(in_words, message)


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
    text = plain_message(_PATH.sub("", message))
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
    check_utf8(raw, where="the event", item=item)
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
    check_names(event, raw, item)
    return event


def check_event(event: EventBase, encoded: bytes, *, item: int | None = None) -> None:
    """Refuse an event that breaks what decoding it would have refused, naming the field.

    msgspec checks patterns, lengths and ranges when it decodes, not when a struct is built in Python;
    decoding the event's own bytes (`encoded`) again holds an event built by a library caller to the same
    rules as one posted over HTTP. Then `check_names`.
    """
    try:
        _event_decoder.decode(encoded)
    except msgspec.MsgspecError as error:
        raise invalid_from(error, item=item) from None
    check_names(event, encoded, item)


def _value_at(event: EventBase, path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def _may_hold_control(data: bytes) -> bool:
    """Whether JSON `data` may hold a control character or line break in a string. Most events hold none
    of the lead bytes, which one pass of `translate` tells; the search runs only when one is there."""
    if len(data.translate(None, _CONTROL_LEADS)) == len(data):
        return False
    return _CONTROL_IN_JSON.search(data) is not None


def check_names(event: EventBase, data: bytes, item: int | None = None) -> None:
    """Refuse a patterned name that matches only up to a final line break (`field_invalid`), and a line
    break or control character in a field of LINE_FIELDS (`text_must_be_one_line`), naming the field.

    `event` is one msgspec decoded, so each patterned field matched its pattern by `re.search`: it fails
    a whole-string match only by a final line break. `data` is its JSON, which tells in one scan whether a
    field may hold a control character at all.
    """
    if not _may_hold_control(data):
        return
    for path, pattern in PATTERN_FIELDS:
        value = _value_at(event, path)
        if isinstance(value, str) and value.endswith("\n"):
            raise InvalidInput(
                f"expected {PATTERN_WORDS[pattern]}, not {value!r}",
                field=path,
                rule="field_invalid",
                item=item,
            )
    for path in LINE_FIELDS:
        value = _value_at(event, path)
        if isinstance(value, str) and (found := _NOT_ONE_LINE.search(value)):
            raise InvalidInput(
                f"must be one line of text: it holds the control character U+{ord(found.group()):04X} "
                f"at character {found.start()}",
                field=path,
                rule=LINE_RULE,
                item=item,
            )


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
        # Before anything else, so that the offset counts from the line's first byte.
        check_utf8(line, where=f"line {number}", of=" of the line")
        if not line.strip():
            continue
        try:
            events.append(decode_event_json(line.strip()))
        except InvalidInput as error:
            raise InvalidInput(
                f"line {number}: {error.message}", field=error.field, rule=error.rule
            ) from None
    return events
