"""The query parameters the read routes share, with their limits and their OpenAPI descriptions.

`known_at` is either a log position (an integer) or an RFC 3339 instant; it travels as a string and is
parsed here, so that a bad value is refused with the parameter's name.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Final, Literal

from litestar.params import PathParameter, QueryParameter

from ledger.api.settings import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, VIEW_PAGE_SIZE_MAX
from ledger.domain.errors import InvalidInput
from ledger.domain.events import CADRE_ID_PATTERN, UNIT_ID_PATTERN
from ledger.domain.periods import PERIOD_PATTERN
from ledger.wire import whole

__all__ = [
    "AfterQuery",
    "AsOfQuery",
    "BasisQuery",
    "CadreIdPath",
    "CursorQuery",
    "KnownAtQuery",
    "LimitQuery",
    "MinPositionQuery",
    "PeriodQuery",
    "PoolScopeQuery",
    "PositionQuery",
    "RequiredPeriodQuery",
    "ScopeQuery",
    "TreeSizeQuery",
    "UnitIdPath",
    "ViewLimitQuery",
    "parse_known_at",
]

POSITION_DIGITS_MAX: Final = 18
# Log positions are stored as 64-bit integers; anything larger is refused before it reaches SQL.
POSITION_MAX: Final = 10**POSITION_DIGITS_MAX - 1
CURSOR_LENGTH_MAX: Final = 512
SCOPE_LENGTH_MAX: Final = 100
KNOWN_AT_LENGTH_MAX: Final = 64
# Whole strings (see POINTS_PATTERN in ledger.domain.points for why `$(?!\n)`).
SCOPE_PATTERN: Final = (
    r"^(all|unit:[A-Za-z0-9._-]{1,64}|grade:\S{1,20}|cohort:(principal|left_leadership))$(?!\n)"
)
# Recalls and escalations also take `unit:*`: every unit, each ranked on its own (their default).
POOL_SCOPE_PATTERN: Final = (
    r"^(all|unit:\*|unit:[A-Za-z0-9._-]{1,64}|grade:\S{1,20}|cohort:(principal|left_leadership))$(?!\n)"
)
EACH_UNIT: Final = "unit:*"
_LEAP_SECOND = re.compile(r"(T\d\d:\d\d:)60")
_POSITION = re.compile(rf"[0-9]{{1,{POSITION_DIGITS_MAX}}}")

AsOfQuery = Annotated[
    date | None,
    QueryParameter(description="Valid date `YYYY-MM-DD`: events effective on or before it (default today)."),
]
KnownAtQuery = Annotated[
    str | None,
    QueryParameter(
        description=(
            "As known at: an RFC 3339 instant (`2025-12-31T16:00:00Z`) or a log position (`12345`); "
            "only events recorded by then count (default: now)."
        ),
        max_length=KNOWN_AT_LENGTH_MAX,
        schema_extra={
            "anyOf": [
                {"type": "string", "pattern": f"^[0-9]{{1,{POSITION_DIGITS_MAX}}}$(?!\\n)"},
                {"type": "string", "format": "date-time"},
            ]
        },
    ),
]
MinPositionQuery = Annotated[
    int | None,
    QueryParameter(
        description=(
            "Wait (at most a few seconds, then 503) until the read models reach this log position, e.g. "
            "the `position` of a post result, to read your own writes. A position the log has not "
            "reached is refused (422)."
        ),
        ge=0,
        le=POSITION_MAX,
    ),
]
CursorQuery = Annotated[
    str | None,
    QueryParameter(
        description="The `next_cursor` of the previous page; absent for the first page.",
        max_length=CURSOR_LENGTH_MAX,
    ),
]
LimitQuery = Annotated[
    int,
    QueryParameter(description=f"Entries per page, 1 to {PAGE_SIZE_MAX}.", ge=1, le=PAGE_SIZE_MAX),
]
# Rankings and shortlists: a city's whole ranking fits in one page.
ViewLimitQuery = Annotated[
    int,
    QueryParameter(
        description=(
            f"Entries per page, 1 to {VIEW_PAGE_SIZE_MAX} (a city's whole ranking in one page). The next "
            "pages are read from the first page's snapshot."
        ),
        ge=1,
        le=VIEW_PAGE_SIZE_MAX,
    ),
]
AfterQuery = Annotated[
    int,
    QueryParameter(
        description="Events after this log position (0: from the start); pass the last page's `next_after`.",
        ge=0,
        le=POSITION_MAX,
    ),
]
PositionQuery = Annotated[
    int,
    QueryParameter(
        description="A log position (1 …): the event's leaf is position − 1.", ge=1, le=POSITION_MAX
    ),
]
TreeSizeQuery = Annotated[
    int | None,
    QueryParameter(
        description="The size of the tree to prove against (a checkpoint's `tree_size`); default the head.",
        ge=1,
        le=POSITION_MAX,
    ),
]
# `scope` is a name Litestar reserves for the ASGI scope: handlers take it as `scope_name`.
ScopeQuery = Annotated[
    str,
    QueryParameter(
        name="scope",
        description="`all`, `unit:<unit_id>`, `grade:<grade>`, `cohort:principal`, `cohort:left_leadership`.",
        max_length=SCOPE_LENGTH_MAX,
        pattern=SCOPE_PATTERN,
    ),
]
PoolScopeQuery = Annotated[
    str,
    QueryParameter(
        name="scope",
        description=(
            "`unit:*` (every unit, each on its own), `all`, `unit:<unit_id>`, `grade:<grade>`, "
            "`cohort:principal` or `cohort:left_leadership`."
        ),
        max_length=SCOPE_LENGTH_MAX,
        pattern=POOL_SCOPE_PATTERN,
    ),
]
PeriodQuery = Annotated[
    str | None,
    QueryParameter(
        description="A period, read as of its last day: `2025`, `2025Q3`, `2025-07` or `2025-W27`.",
        pattern=whole(PERIOD_PATTERN),
    ),
]
BasisQuery = Annotated[
    Literal["total", "period"],
    QueryParameter(
        name="basis",
        description=(
            "`total` ranks cumulative totals; `period` ranks the points whose valid date falls in the period "
            "(with `as_of` and no `period`: in its quarter, through `as_of`), as known at `known_at`."
        ),
    ),
]
RequiredPeriodQuery = Annotated[
    str,
    QueryParameter(
        description="The period: `2025`, `2025Q3`, `2025-07` or `2025-W27`.",
        pattern=whole(PERIOD_PATTERN),
    ),
]
UnitIdPath = Annotated[
    str,
    PathParameter(description="The unit's id.", pattern=whole(UNIT_ID_PATTERN)),
]
CadreIdPath = Annotated[
    str,
    PathParameter(description="The cadre's personnel number.", pattern=whole(CADRE_ID_PATTERN)),
]

DEFAULT_LIMIT: Final = PAGE_SIZE_DEFAULT
# A cadre's history is a few hundred entries over years: by default one page holds it all.
HISTORY_LIMIT_DEFAULT: Final = PAGE_SIZE_MAX


def parse_known_at(text: str | None) -> int | datetime | None:
    """A `known_at` parameter: a log position or an aware instant."""
    if text is None:
        return None
    if _POSITION.fullmatch(text):
        return int(text)
    # RFC 3339 allows a lower-case `t` and `z`, and a leap second, which Python cannot hold: it reads as
    # the second before.
    normalized = _LEAP_SECOND.sub(r"\g<1>59", text.upper().replace("Z", "+00:00"))
    try:
        instant = datetime.fromisoformat(normalized)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is neither a log position nor an RFC 3339 instant",
            field="known_at",
            rule="known_at_invalid",
        ) from None
    if instant.tzinfo is None:
        raise InvalidInput(
            "an instant needs a time zone offset (RFC 3339), e.g. 2025-12-31T16:00:00Z",
            field="known_at",
            rule="known_at_must_be_aware",
        )
    return instant
