"""Liveness and readiness, for load balancers and process supervisors; no key needed."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.api.problems import ReadModelsUnavailable
from ledger.api.responses import errors
from ledger.api.schemas import Health
from ledger.api.services import Services

__all__ = ["live", "ready"]


@get(
    "/health/live",
    tags=["health"],
    summary="Liveness",
    description="The process answers. Nothing else is checked.",
    sync_to_thread=False,
    responses=errors(),
)
def live() -> Health:
    return Health(status="live")


@get(
    "/health/ready",
    tags=["health"],
    summary="Readiness",
    description=(
        "The database answers and the read models are open: route traffic here. 503 while the read models "
        "load (or if they failed to)."
    ),
    sync_to_thread=True,
    responses=errors(503),
)
def ready(services: NamedDependency[Services]) -> Health:
    head = services.ledger.head()
    position = services.read_models.position()
    if position is None:
        raise ReadModelsUnavailable(services.read_models.failure or "the read models are loading")
    return Health(status="ready", position=head, read_models_position=position)
