"""The documents the HTTP API adds to the library's own (`ledger.results`, `ledger.projections.results`).

Request bodies are decoded strictly by hand (see `ledger.api.events`); the request structs here describe
them for the OpenAPI document, with unknown fields forbidden.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ledger.api.problems import Problem
from ledger.domain.events import POLICY_BODY_LENGTH_MAX, Event
from ledger.ledger import BATCH_SIZE_MAX
from ledger.results import InclusionProof

__all__ = [
    "DryRunDocument",
    "DryRunItem",
    "EventDocument",
    "EventsBody",
    "EventsPage",
    "Health",
    "PoliciesView",
    "PolicyBody",
    "PolicyDocument",
    "PolicySummary",
]


class EventsBody(msgspec.Struct, forbid_unknown_fields=True):
    """A batch of events to post, recorded atomically (all or nothing)."""

    events: Annotated[list[Event], Meta(min_length=1, max_length=BATCH_SIZE_MAX)]


class DryRunItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a dry run (`POST /v1/events?dry_run=true`): what posting it would do, or its error."""

    item: Annotated[int, Meta(description="The item's index in the batch, from 0.")]
    outcome: Annotated[
        Literal["new", "replay", "invalid", "conflict"],
        Meta(
            description="`new`: it would be recorded; `replay`: its source is already recorded (or earlier "
            "in the batch) with the same content; `invalid`, `conflict`: it would be refused (see `error`)."
        ),
    ]
    points: Annotated[
        Decimal | None,
        Meta(description="What it would count (new) or counts (replay); null when refused."),
    ] = None
    event_id: Annotated[
        uuid.UUID | None,
        Meta(description="The recorded event a replay answers with; null otherwise (nothing is recorded)."),
    ] = None
    position: Annotated[
        int | None, Meta(description="The log position of the recorded event a replay answers with.")
    ] = None
    error: Annotated[
        Problem | None,
        Meta(
            description="Why it would be refused: a problem (422 or 409) with `rule`, `field` and `detail`."
        ),
    ] = None


class DryRunDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a dry run: every item decided as posting the batch would, none recorded."""

    valid: Annotated[bool, Meta(description="True when no item would be refused: posting it would succeed.")]
    position: Annotated[int, Meta(description="The log head the items were decided against.")]
    items: Annotated[list[DryRunItem], Meta(description="One entry per item of the batch, in order.")]


class PolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    """A rulebook to publish: its TOML text."""

    body: Annotated[str, Meta(min_length=1, max_length=POLICY_BODY_LENGTH_MAX)]


class EventDocument(msgspec.Struct, frozen=True):
    """One recorded event with its place in the log, its recording time, its hash and the previous hash."""

    position: int
    recorded_at: datetime
    hash: str
    prev_hash: str
    event: Event
    # With `proof=true`: the event's inclusion proof against the tree head of the log at that moment.
    proof: InclusionProof | None = None


class EventsPage(msgspec.Struct, frozen=True):
    """A page of the log in position order; pass `next_after` back as `after` for the next page."""

    position: int
    events: list[EventDocument]
    next_after: int | None


class PolicySummary(msgspec.Struct, frozen=True):
    """A published rulebook without its text."""

    version: str
    effective_from: date
    published_on: date
    posted_by: str


class PolicyDocument(msgspec.Struct, frozen=True):
    """A published rulebook with its TOML text."""

    version: str
    effective_from: date
    published_on: date
    posted_by: str
    body: str


class PoliciesView(msgspec.Struct, frozen=True):
    """Every published rulebook, in publication order."""

    policies: list[PolicySummary]


class Health(msgspec.Struct, frozen=True):
    """Whether the process is alive, or ready to answer; `position` is the log head when ready."""

    status: Literal["live", "ready"]
    position: int | None = None
    read_models_position: int | None = None
