"""Every error as an RFC 9457 problem document (`application/problem+json`), from one mapping.

`PROBLEMS` says, for each kind of failure, the status, the `type` URI and the `title`; `problem_for`
builds the document, and `exception_handlers` wires it into Litestar for every exception — the ledger's
own (`InvalidInput` → 422, `Conflict` → 409, `NotFound` → 404 …), Litestar's (401, 403, 404 route, 405,
413, query parameters that do not convert → 422) and anything unexpected (500, logged with its traceback,
never shown to the client).

`type` is a URN per kind (`urn:cadre-ledger:problem:invalid-input`) that clients can switch on; `rule`
names the rule a refusal protects (`effective_on_must_not_be_in_future`), `item` the index of the
offending event in a batch, `field` the path of the offending value, `offset` the byte of the body at
fault (a body that is not UTF-8).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ledger.api.params import POOL_SCOPE_PATTERN, SCOPE_PATTERN
from ledger.domain.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    LedgerError,
    NotFound,
    StoreUnavailable,
)
from ledger.projections.errors import NotCaughtUp, ReadModelsRebuilding
from ledger.store.faults import store_fault
from ledger.wire import PATTERN_WORDS, plain_message

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "MalformedBody",
    "NotAllowed",
    "NotAuthenticated",
    "Problem",
    "ReadModelsUnavailable",
    "exception_handlers",
    "problem_for",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:cadre-ledger:problem:"
RETRY_AFTER_SECONDS: Final = 1

logger = logging.getLogger("ledger.api")
_MISSING = re.compile(r"Missing required \w+ parameter '([^']+)'")
_SCOPE_WORDS = (
    "all, unit:<unit_id>, grade:<grade>, cohort:principal or cohort:left_leadership (nothing after it)"
)
# What the parameters' patterns mean, for the messages that name them.
_PARAMETER_WORDS: Final = {
    **PATTERN_WORDS,
    SCOPE_PATTERN: _SCOPE_WORDS,
    POOL_SCOPE_PATTERN: "unit:* or " + _SCOPE_WORDS,
}


class Problem(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A problem document (RFC 9457) with the ledger's extension members."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    rule: str | None = None
    item: int | None = None
    field: str | None = None
    system: str | None = None
    key: str | None = None
    position: int | None = None
    min_position: int | None = None
    offset: int | None = None


class MalformedBody(Exception):
    """Raised when a request body is not JSON at all (400), as opposed to JSON with invalid content (422).

    `rule` is `json_malformed`, or `text_must_be_utf8` with the `offset` of the first byte that is not.
    """

    def __init__(self, detail: str, *, rule: str = "json_malformed", offset: int | None = None) -> None:
        self.detail = detail
        self.rule = rule
        self.offset = offset
        super().__init__(detail)


class NotAuthenticated(Exception):
    """Raised when a protected route is called without a valid, active key (401)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class NotAllowed(Exception):
    """Raised when the key is valid but may not do this (403): wrong role, system or event type."""

    def __init__(self, detail: str, *, rule: str, item: int | None = None, field: str | None = None) -> None:
        self.detail = detail
        self.rule = rule
        self.item = item
        self.field = field
        super().__init__(detail)


class ReadModelsUnavailable(Exception):
    """Raised when the read models are still loading (or failed to load) and cannot answer (503)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class _Kind(msgspec.Struct, frozen=True):
    status: int
    name: str
    title: str


# The one mapping: each kind of failure, its status, `type` (after the prefix) and title.
PROBLEMS: Final[Mapping[str, _Kind]] = {
    kind.name: kind
    for kind in (
        _Kind(400, "malformed-body", "The body is not well-formed JSON"),
        _Kind(401, "not-authenticated", "A valid API key is required"),
        _Kind(403, "not-allowed", "This key may not do that"),
        _Kind(404, "not-found", "Not found"),
        _Kind(405, "method-not-allowed", "Method not allowed"),
        _Kind(409, "conflict", "Idempotency key reused with other content"),
        _Kind(409, "integrity-failure", "The log fails verification"),
        _Kind(413, "body-too-large", "The body is too large"),
        _Kind(422, "invalid-input", "Invalid input"),
        _Kind(500, "internal-error", "Internal server error"),
        _Kind(503, "not-caught-up", "The read models have not reached the requested position"),
        _Kind(503, "read-models-unavailable", "The read models are not available yet"),
        _Kind(503, "unavailable", "The ledger cannot do this now; try again"),
    )
}


def problem_for(name: str, detail: str, **members: Any) -> Problem:
    kind = PROBLEMS[name]
    return Problem(
        type=PROBLEM_TYPE_PREFIX + kind.name, title=kind.title, status=kind.status, detail=detail, **members
    )


def _response(
    problem: Problem, request: Request[Any, Any, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    problem = msgspec.structs.replace(problem, instance=request.url.path)
    return Response(problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _invalid(error: InvalidInput) -> Problem:
    return problem_for("invalid-input", error.message, rule=error.rule, item=error.item, field=error.field)


def _http(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    """Litestar's own refusals (routing, body size, query parameters) as problems."""
    status = error.status_code
    if isinstance(error, ValidationException):
        # Query and path parameters that do not convert: invalid content, named by the parameter.
        extra = error.extra if isinstance(error.extra, list) else []
        entry = next((entry for entry in extra if isinstance(entry, dict) and entry.get("key")), None)
        field: str | None
        if entry is not None:
            field = _parameter_name(request, str(entry["key"]))
            detail = f"{field}: {plain_message(str(entry.get('message') or error.detail), _PARAMETER_WORDS)}"
        else:
            missing = _MISSING.search(error.detail or "")
            field = missing.group(1) if missing else None
            detail = f"{field}: a required parameter is missing" if field else (error.detail or "invalid")
        return _response(problem_for("invalid-input", detail, rule="parameter_invalid", field=field), request)
    names = {
        401: "not-authenticated",
        403: "not-allowed",
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }
    name = names.get(status)
    if name is None:
        if status >= 500:
            return _unexpected(request, error)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        problem = Problem(type="about:blank", title=phrase, status=status, detail=error.detail or phrase)
        return _response(problem, request, dict(error.headers or {}))
    detail = error.detail or PROBLEMS[name].title
    if status == 413:
        detail = "the body is larger than this route accepts (1 MiB)"
    return _response(problem_for(name, detail), request, dict(error.headers or {}))


def _parameter_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name a parameter has in the URL (`scope`), from the handler's argument name (`scope_name`)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except (AttributeError, KeyError):  # no route matched: no handler to ask
        return key
    name = getattr(parameter.kwarg_definition, "name", None) if parameter is not None else None
    return name or key


def _unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """An error nobody planned for: logged in full here, reported to the client without details."""
    logger.error(
        "unhandled error in %s %s",
        request.method,
        request.url.path,
        exc_info=(type(error), error, error.__traceback__),
    )
    return _response(
        problem_for("internal-error", "the server failed to answer; the error is logged"), request
    )


def _is_database_error(error: Exception) -> bool:
    """An error of the database layer (eventsourcing's or SQLAlchemy's wrapping of the driver's)."""
    from eventsourcing.persistence import PersistenceError
    from sqlalchemy.exc import DBAPIError

    return isinstance(error, (PersistenceError, DBAPIError))


def _handle(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """The mapping from every exception to its problem document."""
    if isinstance(error, InvalidInput):
        return _response(_invalid(error), request)
    if isinstance(error, MalformedBody):
        return _response(
            problem_for("malformed-body", error.detail, rule=error.rule, offset=error.offset), request
        )
    if isinstance(error, NotAuthenticated):
        return _response(
            problem_for("not-authenticated", error.detail),
            request,
            {"WWW-Authenticate": 'Bearer realm="cadre-ledger"'},
        )
    if isinstance(error, NotAllowed):
        return _response(
            problem_for("not-allowed", error.detail, rule=error.rule, item=error.item, field=error.field),
            request,
        )
    if isinstance(error, Conflict):
        return _response(
            problem_for(
                "conflict",
                str(error),
                rule=error.rule,
                item=error.item,
                field="source.key",
                system=error.system,
                key=error.key,
            ),
            request,
        )
    if isinstance(error, NotFound):
        return _response(problem_for("not-found", str(error)), request)
    if isinstance(error, IntegrityFailure):
        return _response(
            problem_for("integrity-failure", str(error), rule=error.reason or None, position=error.position),
            request,
        )
    if isinstance(error, NotCaughtUp):
        return _response(
            problem_for(
                "not-caught-up", str(error), position=error.position, min_position=error.min_position
            ),
            request,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(error, ReadModelsRebuilding):
        error = ReadModelsUnavailable(str(error))
    if isinstance(error, ReadModelsUnavailable):
        return _response(
            problem_for("read-models-unavailable", error.detail),
            request,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(error, HTTPException):
        return _http(request, error)
    if not isinstance(error, LedgerError) and _is_database_error(error):
        fault = store_fault(error)
        if fault is not None:
            error = fault
    if isinstance(error, StoreUnavailable):
        logger.warning("store unavailable in %s %s: %s", request.method, request.url.path, error)
        return _response(
            problem_for("unavailable", str(error), rule=error.cause),
            request,
            {"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, LedgerError):
        # The library's own "try again" (the log kept moving past every append attempt).
        logger.warning("ledger error in %s %s: %s", request.method, request.url.path, error)
        return _response(
            problem_for("unavailable", str(error)), request, {"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    return _unexpected(request, error)


def exception_handlers() -> dict[
    type[Exception], Callable[[Request[Any, Any, Any], Exception], Response[Any]]
]:
    """Litestar's exception handlers: everything goes through `_handle`."""
    return {Exception: _handle}
