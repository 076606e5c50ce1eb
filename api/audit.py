"""Verification of the hash chain and checkpoints (auditors)."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.integrity.verify import Checkpoint
from ledger.results import VerifyReport

__all__ = ["get_checkpoint", "verify"]


@get(
    "/v1/audit/verify",
    opt=requires(Role.auditor),
    tags=["audit"],
    summary="Verify the hash chain",
    description=(
        "Recompute the whole chain: `ok` with the position verified through and the head hash, or the first "
        "position that fails and why (altered, missing, reordered, inserted). A failed verification is still "
        "a 200: the answer is the report."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403),
)
def verify(services: NamedDependency[Services]) -> VerifyReport:
    return services.ledger.verify()


@get(
    "/v1/audit/checkpoint",
    opt=requires(Role.auditor),
    tags=["audit"],
    summary="Take a checkpoint of the log's head",
    description=(
        "`{ledger_id, position, hash, recorded_at}` of the head, after verifying the chain (409 if it "
        "fails). Keep it away from the database; `ledger verify --against` proves the log still extends it."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 409),
)
def get_checkpoint(services: NamedDependency[Services]) -> Checkpoint:
    return services.ledger.checkpoint()
