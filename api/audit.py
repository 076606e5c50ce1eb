"""Verification of the hash chain, the read models and checkpoints (auditors)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.integrity.verify import Checkpoint
from ledger.projections.integrity import read_model_findings
from ledger.projections.store import FactStore
from ledger.results import VerifyReport

__all__ = ["get_checkpoint", "verify"]


@get(
    "/v1/audit/verify",
    opt=requires(Role.auditor),
    tags=["audit"],
    summary="Verify the hash chain (and the read models)",
    description=(
        "Recompute the whole chain: `ok` with the position verified through and the head hash, or the first "
        "position that fails and why (altered, missing, reordered, inserted, time_reversed), and the side "
        "tables the chain allows checking (the unique source index, the key table) as `findings`. With "
        "`read_models=true`, also refold the log and compare it with the persisted read models, the "
        "persisted writer state and this server's in-memory standings: each disagreement is a `findings` "
        "item (table, row, reason, detail) and makes `ok` false. A failed verification is still a 200: the "
        "answer is the report."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 422),
)
def verify(
    services: NamedDependency[Services],
    read_models: Annotated[
        bool,
        QueryParameter(
            description=(
                "Also compare the read models (persisted facts, tracking row, in-memory standings) with a "
                "refold of the log."
            )
        ),
    ] = False,
) -> VerifyReport:
    report = services.ledger.verify().with_findings(services.keys.check_against_log())
    if not read_models:
        return report
    report = report.with_findings(services.ledger.writer_state_findings())
    projections = services.read_models.opened()
    if projections is not None:
        return report.with_findings(projections.verify_read_models())
    # Not open yet (loading): the persisted tables can still be checked.
    store = FactStore(services.ledger.url)
    try:
        return report.with_findings(read_model_findings(services.ledger, store))
    finally:
        store.close()


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
