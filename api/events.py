"""Posting events (posters) and reading the log (auditors).

A posted body is decoded twice over, strictly: first its envelope `{"events": [...]}` with each item kept
as raw JSON, then each item with `ledger.wire.decode_event_json`, which refuses unknown fields, numbers
for points and anything msgspec would otherwise coerce, and names the item and field. Litestar's own body
conversion is lenient (`"7"` would become 7), so these handlers read the raw body instead.
"""

from __future__ import annotations

import codecs
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from ledger.access import ApiKey, Role
from ledger.api.auth import check_may_post, key_of, requires
from ledger.api.openapi import SECURITY
from ledger.api.params import DEFAULT_LIMIT, AfterQuery, LimitQuery
from ledger.api.problems import MalformedBody, NotAllowed, problem_for
from ledger.api.responses import errors, success
from ledger.api.schemas import DryRunDocument, DryRunItem, EventDocument, EventsPage
from ledger.api.services import Services
from ledger.domain.errors import InvalidInput
from ledger.domain.events import EventBase
from ledger.ledger import BATCH_SIZE_MAX, CheckedItem, LoggedEvent
from ledger.results import PostResult
from ledger.wire import NotUtf8, check_utf8, decode_event_json, invalid_from

__all__ = ["EventsController", "check_body", "decode_batch"]


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_batch_decoder = msgspec.json.Decoder(_Batch, strict=True)


def check_body(body: bytes, expected: str) -> None:
    """Refuse, as MalformedBody (400), a body that is empty, not UTF-8 or opens with a byte order mark."""
    if not body.strip():
        raise MalformedBody(f"the body is empty: send {expected}")
    try:
        check_utf8(body)
    except NotUtf8 as error:
        raise MalformedBody(error.message, rule=error.rule, offset=error.offset) from None
    if body.startswith(codecs.BOM_UTF8):
        # RFC 8259 §8.1: JSON text carries no byte order mark.
        raise MalformedBody("the body starts with a byte order mark (EF BB BF): send JSON without one")


def _items(body: bytes) -> list[msgspec.Raw]:
    """The raw items of a posted body; MalformedBody (400) or InvalidInput (422) for its shape."""
    check_body(body, '{"events": [...]}')
    try:
        batch = _batch_decoder.decode(body)
    except msgspec.ValidationError as error:
        raise invalid_from(error) from None
    except msgspec.DecodeError as error:
        raise MalformedBody(f"the body is not well-formed JSON: {error}") from None
    except RecursionError:
        raise MalformedBody("the body nests too deeply to be a batch of events") from None
    if not batch.events:
        raise InvalidInput("a batch holds at least one event", field="events", rule="batch_must_not_be_empty")
    if len(batch.events) > BATCH_SIZE_MAX:
        raise InvalidInput(
            f"a batch holds at most {BATCH_SIZE_MAX} events, not {len(batch.events)}",
            field="events",
            rule="batch_too_large",
        )
    return batch.events


def decode_batch(body: bytes) -> list[EventBase]:
    """The events of a posted body; MalformedBody (400) or InvalidInput (422) naming the item and field."""
    return [decode_event_json(bytes(raw), item=index) for index, raw in enumerate(_items(body))]


def _post(services: Services, key: ApiKey, body: bytes) -> PostResult:
    events = decode_batch(body)
    check_may_post(key, events)
    result = services.ledger.post(events, posted_by=key.principal)
    return result


def _check_post_query(request: Request[Any, Any, Any]) -> None:
    """A post takes one query parameter, `dry_run`, once: a misspelt `dryrun=true` or a repeated
    `dry_run=true&dry_run=false` would otherwise record the batch the client meant only to check."""
    for name in request.query_params:
        if name != "dry_run":
            raise InvalidInput(
                f"a post takes no query parameter {name!r}; did you mean dry_run?",
                field=name,
                rule="query_parameter_unknown",
            )
    if len(request.query_params.getall("dry_run", [])) > 1:
        raise InvalidInput(
            "dry_run is given more than once: give it once", field="dry_run", rule="query_parameter_repeated"
        )


def _dry_run(services: Services, key: ApiKey, body: bytes) -> DryRunDocument:
    """Every item decided as a post would decide it, none recorded. The body's shape is refused as in a
    post (400, 422); an item that does not decode is reported with the others, not refused alone; what the
    key may not post is refused (403) as in a post."""
    decoded: list[tuple[int, EventBase]] = []
    refused: dict[int, InvalidInput] = {}
    raws = _items(body)
    for index, raw in enumerate(raws):
        try:
            decoded.append((index, decode_event_json(bytes(raw), item=index)))
        except InvalidInput as error:
            refused[index] = error
    for index, event in decoded:
        try:
            check_may_post(key, [event])
        except NotAllowed as error:
            detail = error.detail.removeprefix("item 0: ")
            raise NotAllowed(
                f"item {index}: {detail}", rule=error.rule, item=index, field=error.field
            ) from None
    position = services.ledger.head()
    checked: dict[int, CheckedItem] = {}
    if decoded:
        result = services.ledger.check([event for _, event in decoded], posted_by=key.principal)
        position = result.position
        # The check numbers the decoded items; the answer numbers the body's, those that failed included.
        checked = {
            decoded[item.item][0]: item
            if item.replay_of is None
            else msgspec.structs.replace(item, replay_of=decoded[item.replay_of][0])
            for item in result.items
        }
    items = [_dry_run_item(index, checked.get(index), refused.get(index)) for index in range(len(raws))]
    return DryRunDocument(valid=all(item.error is None for item in items), position=position, items=items)


def _dry_run_item(index: int, checked: CheckedItem | None, refused: InvalidInput | None) -> DryRunItem:
    if refused is not None:
        problem = problem_for(
            "invalid-input", refused.message, rule=refused.rule, item=index, field=refused.field
        )
        return DryRunItem(item=index, outcome="invalid", error=problem)
    assert checked is not None
    if checked.outcome == "conflict":
        first = "" if checked.replay_of is None else f" (first as item {checked.replay_of})"
        event_error = problem_for(
            "conflict",
            (checked.message or "") + first,
            rule=checked.rule,
            item=index,
            field=checked.field,
        )
        return DryRunItem(item=index, outcome="conflict", error=event_error)
    if checked.outcome == "invalid":
        event_error = problem_for(
            "invalid-input", checked.message or "", rule=checked.rule, item=index, field=checked.field
        )
        return DryRunItem(item=index, outcome="invalid", error=event_error)
    return DryRunItem(
        item=index,
        outcome=checked.outcome,
        points=checked.points,
        event_id=checked.event_id,
        position=checked.position,
    )


def _document(logged: LoggedEvent) -> EventDocument:
    return EventDocument(
        position=logged.position,
        recorded_at=logged.recorded_at,
        hash=logged.hash,
        prev_hash=logged.prev_hash,
        event=logged.event,  # type: ignore[arg-type]
    )


class EventsController(Controller):
    """`/v1/events`: one controller for the path's methods, so that OPTIONS lists them all."""

    path = "/v1/events"

    @post(
        "/",
        opt=requires(Role.poster),
        tags=["events"],
        summary="Post a batch of events",
        description=(
            "Record 1 to 1,000 events atomically. Each item answers with its `event_id`, `position`, "
            "`points`, `hash` and `replayed`. 201 when anything is new, 200 when every item replays an "
            "earlier post (same `source.system` and `source.key`, same content). The same key with other "
            "content is a 409; invalid content a 422 naming the item and field; either way nothing is "
            "recorded. A poster key posts only as its own `source.system`, only its event types (else 403). "
            "With `dry_run=true` nothing is recorded and the answer (200) is a dry-run document: every "
            "item's would-be result or error."
        ),
        security=SECURITY,
        status_code=HTTP_201_CREATED,
        responses={
            HTTP_200_OK: success(
                PostResult | DryRunDocument,  # type: ignore[arg-type]
                "Every item replays an earlier post, nothing new was recorded; or, with `dry_run=true`, "
                "the dry run (a DryRunDocument).",
            )
        }
        | errors(400, 401, 403, 409, 413, 422),
    )
    async def post_events(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        dry_run: Annotated[
            bool,
            QueryParameter(
                description=(
                    "Check the batch and record nothing: 200 with every item's would-be result "
                    "(`outcome` new or replay, with its `points`) or its error (a problem with `rule`, "
                    "`field` and `detail`), all items decided in one answer; `valid` when none is refused."
                )
            ),
        ] = False,
    ) -> Response[PostResult | DryRunDocument]:
        _check_post_query(request)
        body = await request.body()
        if dry_run:
            checked = await sync_to_thread(_dry_run, services, key_of(request), body)
            return Response(checked, status_code=HTTP_200_OK)
        result = await sync_to_thread(_post, services, key_of(request), body)
        status = HTTP_200_OK if all(item.replayed for item in result.results) else HTTP_201_CREATED
        return Response(result, status_code=status)

    @get(
        "/",
        opt=requires(Role.auditor),
        tags=["events"],
        summary="Read the log in order",
        description=(
            "Events in position order after `after`, each with its recording time, hash and previous hash. "
            "`next_after` is null on the last page; an `after` beyond the log's head is refused (422)."
        ),
        security=SECURITY,
        sync_to_thread=True,
        responses=errors(401, 403, 422),
    )
    def list_events(
        self, services: NamedDependency[Services], after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
    ) -> EventsPage:
        head = services.ledger.head()
        if after > head:
            # Not "the end of the log": a position no page gave out (or a log that went back since).
            raise InvalidInput(
                f"position {after} is beyond the log's head {head}: page from 0 or a page's `next_after`",
                field="after",
                rule="after_beyond_log",
            )
        logged = services.ledger.events(after=after, limit=limit)
        documents = [_document(entry) for entry in logged]
        next_after = documents[-1].position if documents and documents[-1].position < head else None
        return EventsPage(position=head, events=documents, next_after=next_after)

    @get(
        "/{event_id:uuid}",
        opt=requires(Role.auditor),
        tags=["events"],
        summary="Read one event",
        description=(
            "One event with its position, recording time, hash and the previous event's hash. With "
            "`proof=true`, also its inclusion proof (RFC 9162) against the log's tree head now: `proof` as "
            "`GET /v1/audit/proofs/inclusion` answers it, checked by `ledger-verify inclusion` against a "
            "checkpoint of the same tree size."
        ),
        security=SECURITY,
        sync_to_thread=True,
        responses=errors(401, 403, 404, 422),
    )
    def get_event(
        self,
        services: NamedDependency[Services],
        event_id: Annotated[uuid.UUID, PathParameter(description="The event's id.")],
        proof: Annotated[
            bool, QueryParameter(description="Also give the event's inclusion proof against the head.")
        ] = False,
    ) -> EventDocument:
        document = _document(services.ledger.event(event_id))
        if not proof:
            return document
        return msgspec.structs.replace(document, proof=services.ledger.inclusion_proof(document.position))
