"""Liveness and readiness, for load balancers and process supervisors; no key needed."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.api.responses import errors
from ledger.api.schemas import Health
from ledger.api.services import Services

__all__ = ["live", "ready"]

# How long the readiness probe waits for the write lock (a post holds it for milliseconds).
READY_LOCK_WAIT_SECONDS = 1.0


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
        "The database answers, can record (its write lock can be taken within a second, it is not "
        "read-only), and the read models are open and agree with the log: route traffic here. 503 naming "
        "the cause otherwise: while the read models load (or if they failed to), while they are rebuilt "
        "because the persisted facts or the log no longer agree with what they folded, and while the "
        "database cannot record."
    ),
    sync_to_thread=True,
    responses=errors(503),
)
def ready(services: NamedDependency[Services]) -> Health:
    head = services.ledger.head()
    position = services.read_models.ready()
    problem = services.ledger.write_problem(READY_LOCK_WAIT_SECONDS)
    if problem is not None:
        raise problem
    return Health(status="ready", position=head, read_models_position=position)
