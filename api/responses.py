"""The error responses each route documents, so that the OpenAPI document lists every status it answers."""

from __future__ import annotations

from typing import Any, Final

from litestar.openapi.datastructures import ResponseSpec

from ledger.api.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["errors", "success"]

_DESCRIPTIONS: Final = {
    400: "The body is not well-formed JSON.",
    401: "No key, or a key that is malformed, unknown, wrong or revoked.",
    403: "The key's role, system or event types do not allow this.",
    404: "Not found.",
    409: "Conflict: an idempotency key reused with other content, or a log that fails verification.",
    413: "The body is larger than 1 MiB.",
    422: "Invalid content; `item` and `field` name the offending value.",
    500: "An unexpected error; it is logged, and not described here.",
    503: "The read models are loading or have not reached `min_position`; retry after `Retry-After`.",
}


def success(document: type[Any], description: str) -> ResponseSpec:
    """A second success response (beside the handler's own), such as 200 beside 201."""
    return ResponseSpec(data_container=document, description=description, generate_examples=False)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """Problem responses for `statuses`, plus 500, which any route may answer."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({*statuses, 500})
    }
