"""The read models of a scope: rankings, the promotion shortlist, recalls, red/black boards, escalations."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.params import (
    DEFAULT_LIMIT,
    EACH_UNIT,
    AsOfQuery,
    BasisQuery,
    CursorQuery,
    KnownAtQuery,
    MinPositionQuery,
    PeriodQuery,
    PoolScopeQuery,
    RequiredPeriodQuery,
    ScopeQuery,
    ViewLimitQuery,
    parse_known_at,
)
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.projections.results import BoardsView, EscalationsView, RankingsView, RecallsView, ShortlistView

__all__ = ["get_boards", "get_escalations", "get_rankings", "get_recalls", "get_shortlist"]


ERRORS = errors(401, 403, 404, 422, 503)


@get(
    "/v1/rankings",
    opt=requires(Role.reader),
    tags=["read models"],
    summary="Rankings of a scope",
    description=(
        "Competition ranking (1, 2, 2, 4) with the policy's tie-breakers, each cadre's previous rank and "
        "movement; as of a date, or as of the last day of `period`; on the cumulative total or on the "
        "period's points (`basis`). `next_cursor` is null on the last page."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_rankings(
    *,
    services: NamedDependency[Services],
    scope_name: ScopeQuery = "all",
    as_of: AsOfQuery = None,
    period: PeriodQuery = None,
    basis: BasisQuery = "total",
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    cursor: CursorQuery = None,
    limit: ViewLimitQuery = DEFAULT_LIMIT,
) -> RankingsView:
    return services.projections(min_position).rankings(
        scope_name,
        as_of=as_of,
        period=period,
        basis=basis,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        cursor=cursor,
        limit=limit,
    )


@get(
    "/v1/eligibility",
    opt=requires(Role.reader),
    tags=["read models"],
    summary="The promotion shortlist of a scope",
    description="The scope's eligible cadres in rank order. `next_cursor` is null on the last page.",
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_shortlist(
    *,
    services: NamedDependency[Services],
    scope_name: ScopeQuery = "all",
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
    cursor: CursorQuery = None,
    limit: ViewLimitQuery = DEFAULT_LIMIT,
) -> ShortlistView:
    return services.projections(min_position).shortlist(
        scope_name,
        as_of=as_of,
        known_at=parse_known_at(known_at),
        min_position=min_position,
        cursor=cursor,
        limit=limit,
    )


@get(
    "/v1/recalls",
    opt=requires(Role.reader),
    tags=["read models"],
    summary="The recall (回炉) list of a period",
    description=(
        "The bottom of each pool of the scope (default: every unit) that is large enough, and the recalls "
        "open at the period's end."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_recalls(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    scope_name: PoolScopeQuery = EACH_UNIT,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> RecallsView:
    return services.projections(min_position).recalls(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )


@get(
    "/v1/boards",
    opt=requires(Role.reader),
    tags=["read models"],
    summary="The red and black boards (红黑榜) of a period",
    description="Red: the top of the scope, vetoed cadres excluded. Black: the bottom.",
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_boards(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    scope_name: ScopeQuery = "all",
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> BoardsView:
    return services.projections(min_position).boards(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )


@get(
    "/v1/escalations",
    opt=requires(Role.reader),
    tags=["read models"],
    summary="Escalations of a period",
    description="Cadres in the bottom N for consecutive periods, with the ladder step and its action.",
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_escalations(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    scope_name: PoolScopeQuery = EACH_UNIT,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> EscalationsView:
    return services.projections(min_position).escalations(
        period, scope_name, known_at=parse_known_at(known_at), min_position=min_position
    )
