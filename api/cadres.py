"""A cadre: profile and standing (read models), history (the log itself, always current), eligibility."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.params import (
    HISTORY_LIMIT_DEFAULT,
    AsOfQuery,
    CadreIdPath,
    CursorQuery,
    KnownAtQuery,
    LimitQuery,
    MinPositionQuery,
    ScopeQuery,
    parse_known_at,
)
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.projections.results import CadreView, EligibilityView
from ledger.results import HistoryPage

__all__ = ["get_cadre", "get_eligibility", "get_history"]


@get(
    "/v1/cadres/{cadre_id:str}",
    opt=requires(Role.reader),
    tags=["cadres"],
    summary="A cadre's profile and standing",
    description="Unit, grade, status and total with its components, as of a date, as known at a moment.",
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 404, 422, 503),
)
def get_cadre(
    *,
    services: NamedDependency[Services],
    cadre_id: CadreIdPath,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> CadreView:
    return services.projections(min_position).cadre(
        cadre_id, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )


@get(
    "/v1/cadres/{cadre_id:str}/history",
    opt=requires(Role.reader),
    tags=["cadres"],
    summary="A cadre's history",
    description=(
        "Entries in valid-time order (ties by position) with running totals, who posted each, its source, "
        "document, reversal links and hash. Read from the log itself: always current, so `min_position` "
        "is not needed. `next_cursor` is null on the last page."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 404, 422),
)
def get_history(
    *,
    services: NamedDependency[Services],
    cadre_id: CadreIdPath,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = HISTORY_LIMIT_DEFAULT,
) -> HistoryPage:
    return services.ledger.history(
        cadre_id, as_of=as_of, known_at=parse_known_at(known_at), cursor=cursor, limit=limit
    )


@get(
    "/v1/cadres/{cadre_id:str}/eligibility",
    opt=requires(Role.reader),
    tags=["cadres"],
    summary="A cadre's promotion eligibility",
    description=(
        "The verdict and every check that decided it; the standing check compares the cadre within `scope`."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 404, 422, 503),
)
def get_eligibility(
    *,
    services: NamedDependency[Services],
    cadre_id: CadreIdPath,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    scope_name: ScopeQuery = "all",
) -> EligibilityView:
    return services.projections(min_position).eligibility(
        cadre_id,
        as_of=as_of,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        scope=scope_name,
    )
