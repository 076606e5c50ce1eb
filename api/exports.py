"""Downloads: each read as a file, `GET /v1/exports/<the JSON route's path>?format=xlsx|csv&lang=en|zh`.

The download of `GET /v1/rankings?scope=unit:U001&period=2025Q3` is
`GET /v1/exports/rankings?scope=unit:U001&period=2025Q3&format=xlsx`: the same roles, the same parameters
with the same checks (a bad one is a 422 problem), the same view — but whole (no cursor: a download is the
whole ranking, at most `EXPORT_ROWS_MAX` rows) and written as the CLI writes it (`ledger.projections.tables`
says which columns and rows; `ledger rankings -f xlsx -o FILE` and `-f csv --excel` write the same cells).

CSV is shaped for Excel, where a browser's download opens: UTF-8 with a byte order mark and CRLF line
endings, every text cell that a spreadsheet would read as a formula neutralised. Every answer is an
attachment named after the view (`rankings-unit-U001-2025Q3.xlsx`, with an RFC 5987 `filename*` when the
name holds Chinese), and `Cache-Control: no-store`: a file of cadres' points stays out of shared caches and
the browser's.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal
from urllib.parse import quote

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import DOWNLOAD_MEDIA_TYPES, DOWNLOAD_TAG, SECURITY
from ledger.api.params import (
    EACH_UNIT,
    AsOfQuery,
    BasisQuery,
    CadreIdPath,
    KnownAtQuery,
    MinPositionQuery,
    PeriodQuery,
    PoolScopeQuery,
    RequiredPeriodQuery,
    ScopeQuery,
    UnitIdPath,
    parse_known_at,
)
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.api.settings import VIEW_PAGE_SIZE_MAX
from ledger.domain.errors import InvalidInput
from ledger.projections import tables
from ledger.projections.tables import ViewSheets
from ledger.sheets import Lang

__all__ = [
    "EXPORT_ROWS_MAX",
    "attachment",
    "download_boards",
    "download_eligibility",
    "download_escalations",
    "download_history",
    "download_rankings",
    "download_recalls",
    "download_shortlist",
    "download_unit",
    "download_unit_escalations",
    "download_unit_rankings",
]

# A download holds at most a city's whole ranking (the JSON routes' largest page); a larger view is refused
# rather than cut short, since a file that silently ends is a wrong ranking.
EXPORT_ROWS_MAX: Final = VIEW_PAGE_SIZE_MAX
CACHE_CONTROL: Final = "no-store"
# What may stand in the ASCII `filename`; anything else becomes `_` there (runs of it, one `_`).
_ASCII_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
# What may not stand even in the UTF-8 `filename*`: controls, quotes, path and shell punctuation, spaces.
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f\"'\\/:*?<>|%;,]+")

ERRORS = errors(401, 403, 404, 422, 503)
FILE_DESCRIPTION: Final = (
    " The whole view as a file: `format=xlsx` (a workbook: typed cells, points as numbers with two places, "
    "a title row and a frozen header) or `format=csv` (UTF-8 with a byte order mark and CRLF, for Excel); "
    "headers and title in `lang`. Text a spreadsheet would read as a formula is neutralised. An "
    "attachment (`Content-Disposition`), never cached (`Cache-Control: no-store`)."
)

FormatQuery = Annotated[
    Literal["xlsx", "csv"],
    QueryParameter(
        name="format",
        description="`xlsx` (a workbook) or `csv` (UTF-8 with a byte order mark and CRLF, for Excel).",
    ),
]
LangQuery = Annotated[
    Literal["en", "zh"],
    QueryParameter(
        name="lang",
        description="The headers' and the title's language: `en` or `zh` (中文); values stay as recorded.",
    ),
]


def attachment(stem: str, extension: str) -> str:
    """A `Content-Disposition` naming the file `stem.extension`: an ASCII `filename` every client reads, and
    `filename*` (RFC 5987, UTF-8) beside it when the name holds more than ASCII can say (a Chinese grade)."""
    full = f"{_UNSAFE.sub('_', stem)}.{extension}"
    plain = f"{_ASCII_UNSAFE.sub('_', stem)}.{extension}"
    header = f'attachment; filename="{plain}"'
    if full != plain:
        header += f"; filename*=UTF-8''{quote(full, safe='')}"
    return header


def _file(view: ViewSheets, file_format: str, lang: str) -> Response[bytes]:
    """The view as the file `file_format` names, with the headers of a download."""
    language = Lang(lang)
    body = view.csv(language, excel=True) if file_format == "csv" else view.xlsx(language)
    return Response(
        body,
        # Litestar adds `; charset=utf-8` to a `text/` media type.
        media_type=DOWNLOAD_MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": attachment(view.stem, file_format),
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        },
    )


def _whole(next_cursor: str | None, what: str, field: str, remedy: str) -> None:
    """Refuse a view with more than `EXPORT_ROWS_MAX` rows (its first page has a next one)."""
    if next_cursor is not None:
        raise InvalidInput(
            f"{what} holds more than {EXPORT_ROWS_MAX:,} rows, the most a download holds: {remedy}",
            field=field,
            rule="export_rows_max_exceeded",
        )


@get(
    "/v1/exports/rankings",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the rankings of a scope",
    description="`GET /v1/rankings` (the same parameters) as a file." + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_rankings(
    *,
    services: NamedDependency[Services],
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    scope_name: ScopeQuery = "all",
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
    basis: BasisQuery = "total",
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).rankings(
        scope_name,
        as_of=as_of,
        period=period,
        basis=basis,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        limit=EXPORT_ROWS_MAX,
    )
    _whole(view.next_cursor, f"the ranking of {view.scope}", "scope", "narrow the scope")
    return _file(tables.rankings_sheets(view, period=period), file_format, lang)


@get(
    "/v1/exports/eligibility",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the promotion shortlist of a scope",
    description="`GET /v1/eligibility` (the same parameters) as a file." + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_shortlist(
    *,
    services: NamedDependency[Services],
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    scope_name: ScopeQuery = "all",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).shortlist(
        scope_name,
        as_of=as_of,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        limit=EXPORT_ROWS_MAX,
    )
    _whole(view.next_cursor, f"the shortlist of {view.scope}", "scope", "narrow the scope")
    return _file(tables.shortlist_sheets(view), file_format, lang)


@get(
    "/v1/exports/recalls",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the recall (回炉) list of a period",
    description=(
        "`GET /v1/recalls` (the same parameters) as a file; a workbook has the open recalls on a second "
        "worksheet, CSV only the candidates." + FILE_DESCRIPTION
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_recalls(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    scope_name: PoolScopeQuery = EACH_UNIT,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).recalls(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.recalls_sheets(view), file_format, lang)


@get(
    "/v1/exports/boards",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the red and black boards (红黑榜) of a period",
    description="`GET /v1/boards` (the same parameters) as a file, the red board's rows first."
    + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_boards(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    scope_name: ScopeQuery = "all",
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).boards(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.boards_sheets(view), file_format, lang)


@get(
    "/v1/exports/escalations",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the escalations of a period",
    description="`GET /v1/escalations` (the same parameters) as a file." + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_escalations(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    scope_name: PoolScopeQuery = EACH_UNIT,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).escalations(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.escalations_sheets(view), file_format, lang)


@get(
    "/v1/exports/cadres/{cadre_id:str}/history",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download a cadre's history",
    description=(
        "`GET /v1/cadres/{cadre_id}/history` (the same parameters) as a file: every entry with its running "
        "total, read from the log itself." + FILE_DESCRIPTION
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 404, 422),
)
def download_history(
    *,
    services: NamedDependency[Services],
    cadre_id: CadreIdPath,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
) -> Response[bytes]:
    page = services.ledger.history(
        cadre_id, as_of=as_of, known_at=parse_known_at(known_at), limit=EXPORT_ROWS_MAX
    )
    _whole(page.next_cursor, f"the history of {cadre_id}", "cadre_id", "page it with the JSON route")
    return _file(tables.history_sheets(page), file_format, lang)


@get(
    "/v1/exports/cadres/{cadre_id:str}/eligibility",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download a cadre's promotion eligibility",
    description="`GET /v1/cadres/{cadre_id}/eligibility` (the same parameters) as a file, a row per check."
    + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_eligibility(
    *,
    services: NamedDependency[Services],
    cadre_id: CadreIdPath,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    scope_name: ScopeQuery = "all",
) -> Response[bytes]:
    view = services.projections(min_position).eligibility(
        cadre_id,
        as_of=as_of,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        scope=scope_name,
    )
    return _file(tables.eligibility_sheets(view), file_format, lang)


@get(
    "/v1/exports/units/rankings",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download a period's ranking of units",
    description="`GET /v1/units/rankings` (the same parameters) as a file." + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_unit_rankings(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).unit_rankings(
        period, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.unit_rankings_sheets(view), file_format, lang)


@get(
    "/v1/exports/units/escalations",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download the units' escalations of a period",
    description="`GET /v1/units/escalations` (the same parameters) as a file." + FILE_DESCRIPTION,
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_unit_escalations(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).unit_escalations(
        period, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.unit_escalations_sheets(view), file_format, lang)


@get(
    "/v1/exports/units/{unit_id:str}",
    opt=requires(Role.reader),
    tags=[DOWNLOAD_TAG],
    summary="Download a unit's standing in each period",
    description=(
        "`GET /v1/units/{unit_id}` (the same parameters) as a file: a row per period it was rated in (the "
        "ratings themselves are in the JSON)." + FILE_DESCRIPTION
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def download_unit(
    *,
    services: NamedDependency[Services],
    unit_id: UnitIdPath,
    file_format: FormatQuery = "xlsx",
    lang: LangQuery = "en",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> Response[bytes]:
    view = services.projections(min_position).unit(
        unit_id, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )
    return _file(tables.unit_sheets(view), file_format, lang)
