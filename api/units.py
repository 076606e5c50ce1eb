"""Units rated by enterprises (市场主体评部门): a period's unit ranking, the units' escalations, one unit."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.params import (
    AsOfQuery,
    KnownAtQuery,
    MinPositionQuery,
    RequiredPeriodQuery,
    UnitIdPath,
    parse_known_at,
)
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.projections.results import UnitEscalationsView, UnitRankingsView, UnitView

__all__ = ["get_unit", "get_unit_escalations", "get_unit_rankings"]

ERRORS = errors(401, 403, 404, 422, 503)


@get(
    "/v1/units/rankings",
    opt=requires(Role.reader),
    tags=["units"],
    summary="A period's ranking of units by their ratings",
    description=(
        "Each unit's aggregated score from the period's ratings (dated by `as_of`, default today, as known "
        "at `known_at`), ratings counted, dissatisfied votes, rank with ties (1, 2, 2, 4; fewer dissatisfied "
        "first), the previous period's rank, movement and whether it is in the bottom. Units with fewer "
        "ratings than the policy's minimum are listed with `rank` null."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_unit_rankings(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> UnitRankingsView:
    return services.projections(min_position).unit_rankings(
        period, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )


@get(
    "/v1/units/escalations",
    opt=requires(Role.reader),
    tags=["units"],
    summary="The units' escalations of a period",
    description=(
        "Units in the bottom N for consecutive periods up to `period`: streak, ladder step and action (a "
        "proposal), the principal leader it names on the period's last day, and whether the consequence "
        "the step asks (a deduction, or removal from the post) was posted."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_unit_escalations(
    *,
    services: NamedDependency[Services],
    period: RequiredPeriodQuery,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> UnitEscalationsView:
    return services.projections(min_position).unit_escalations(
        period, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )


@get(
    "/v1/units/{unit_id:str}",
    opt=requires(Role.reader),
    tags=["units"],
    summary="A unit: details, standing in each period, ratings",
    description="Its details, its rank, streak and ladder step in every period it was rated in, its ratings.",
    security=SECURITY,
    sync_to_thread=True,
    responses=ERRORS,
)
def get_unit(
    *,
    services: NamedDependency[Services],
    unit_id: UnitIdPath,
    as_of: AsOfQuery = None,
    known_at: KnownAtQuery = None,
    min_position: MinPositionQuery = None,
) -> UnitView:
    return services.projections(min_position).unit(
        unit_id, as_of=as_of, known_at=parse_known_at(known_at), min_position=min_position
    )
