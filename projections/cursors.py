"""Cursors of the paged read models (rankings, the promotion shortlist): what the first page was read at.

A cursor is the base64url text (no padding) of a JSON array naming the route that gave it out, the first
page's inputs and where the next page starts:

    ["rankings", scope, basis, period, as_of, position, offset]      period "" when read by as_of
    ["shortlist", scope, as_of, position, offset]

A later page recomputes its dates from these exactly as the first page did, so a cursor carries nothing a
client could not have asked for itself. Decoding refuses (`cursor_invalid`) any other shape: another route's
cursor, missing or extra items, wrong types, negative positions, an offset of 0 (a next page never starts
at the top). The reads refuse a cursor whose scope, basis, period or date contradicts one given beside it,
and one that points past the end of its ranking.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Annotated, Literal, TypeVar

import msgspec

from ledger.domain.errors import InvalidInput

__all__ = ["RankingsCursor", "ShortlistCursor", "cursor_invalid", "decode_cursor", "encode_cursor"]

Position = Annotated[int, msgspec.Meta(ge=0)]
Offset = Annotated[int, msgspec.Meta(ge=1)]


class RankingsCursor(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    route: Literal["rankings"]
    scope: str
    basis: str
    period: str
    as_of: date
    position: Position
    offset: Offset


class ShortlistCursor(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    route: Literal["shortlist"]
    scope: str
    as_of: date
    position: Position
    offset: Offset


Cursor = TypeVar("Cursor", RankingsCursor, ShortlistCursor)


def cursor_invalid(why: str = "not a cursor this ledger gave out") -> InvalidInput:
    return InvalidInput(why, field="cursor", rule="cursor_invalid")


def encode_cursor(cursor: RankingsCursor | ShortlistCursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str, kind: type[Cursor]) -> Cursor:
    """The cursor of `kind` that `text` encodes; InvalidInput (`cursor_invalid`) for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (ValueError, msgspec.MsgspecError):
        raise cursor_invalid() from None


def agree(given: object, default: object, pinned: object, name: str) -> None:
    """Refuse a parameter given beside a cursor (other than its default, which counts as left out) that
    differs from what the cursor pins."""
    if given is not None and given not in (default, pinned):
        raise cursor_invalid(f"this cursor was given out for {name} {pinned}, not {given}")
