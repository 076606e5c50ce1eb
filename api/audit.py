"""Verification of the hash chain, the read models and checkpoints (auditors)."""

from __future__ import annotations

from typing import Annotated, Final

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ledger.access import Role
from ledger.api.auth import requires
from ledger.api.openapi import SECURITY
from ledger.api.params import POSITION_MAX, PositionQuery, TreeSizeQuery
from ledger.api.responses import errors
from ledger.api.services import Services
from ledger.domain.errors import InvalidInput, StoreUnavailable
from ledger.integrity.verify import Checkpoint
from ledger.projections.integrity import read_model_findings
from ledger.projections.store import FactStore
from ledger.results import ConsistencyProof, InclusionProof, VerifyReport

__all__ = ["consistency_proof", "get_checkpoint", "inclusion_proof", "verify"]

# How long a client is told to wait while the server's signing key cannot sign (an operator must act).
SIGNING_KEY_RETRY_SECONDS: Final = 300


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
        "`{ledger_id, tree_size, root_hash, chain_hash, recorded_at, key_id, signature}` of the head: its "
        "size, Merkle tree head (RFC 9162) and chain hash, after verifying the chain and the tree (409 if "
        "either fails). Signed with Ed25519 when the server has a signing key (`LEDGER_SIGNING_KEY_FILE`); "
        "`key_id` and `signature` are null otherwise. Keep it away from the database; `ledger verify "
        "--against` and `ledger-verify` prove a log still extends it."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 409, 503),
)
def get_checkpoint(services: NamedDependency[Services]) -> Checkpoint:
    try:
        return services.ledger.checkpoint(services.signer)
    except InvalidInput as error:
        if services.signer is None or not error.rule.startswith("signing_key_"):
            raise
        # The server's key was retired (by another process) since it started: the server's fault, not
        # the client's, and an operator's rotation (a new key, a restart) ends it.
        raise StoreUnavailable(
            f"this server cannot sign checkpoints now: {error}; its operator must configure a new "
            "signing key (`ledger keys signing create`) and restart it",
            cause="signing_key_unusable",
            retry_after=SIGNING_KEY_RETRY_SECONDS,
        ) from None


@get(
    "/v1/audit/proofs/inclusion",
    opt=requires(Role.auditor),
    tags=["audit"],
    summary="Prove an event is in a tree head",
    description=(
        "The inclusion proof (RFC 9162 §2.1.3) of the event at `position` in the tree of `tree_size` "
        "events (default the head): `leaf_hash` = SHA-256(0x00 ‖ leaf), where `leaf` is the event's "
        "canonical bytes, and `audit_path` from the leaf's sibling up; hashes in lowercase hex. 422 when "
        "`position` or `tree_size` is not in the log."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 409, 422),
)
def inclusion_proof(
    services: NamedDependency[Services], position: PositionQuery, tree_size: TreeSizeQuery = None
) -> InclusionProof:
    return services.ledger.inclusion_proof(position, tree_size)


@get(
    "/v1/audit/proofs/consistency",
    opt=requires(Role.auditor),
    tags=["audit"],
    summary="Prove a tree head extends an older one",
    description=(
        "The consistency proof (RFC 9162 §2.1.4) from the tree of `first` events to the tree of `second` "
        "(default the head), with both tree heads; hashes in lowercase hex. 1 ≤ first ≤ second ≤ head, "
        "else 422."
    ),
    security=SECURITY,
    sync_to_thread=True,
    responses=errors(401, 403, 409, 422),
)
def consistency_proof(
    services: NamedDependency[Services],
    first: Annotated[
        int,
        QueryParameter(
            description="The older tree's size (an earlier checkpoint's `tree_size`).", ge=1, le=POSITION_MAX
        ),
    ],
    second: Annotated[
        int | None,
        QueryParameter(description="The newer tree's size; default the head.", ge=1, le=POSITION_MAX),
    ] = None,
) -> ConsistencyProof:
    return services.ledger.consistency_proof(first, second)
