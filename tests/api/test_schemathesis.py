"""schemathesis against the app's own OpenAPI document, in process (SPEC §12 Bad input).

Goal: no request schemathesis can build — valid by the document or deliberately not — makes the API answer
5xx, answer outside what the document promises (status, content type, body schema), or accept what it
should refuse. Method: `from_asgi` loads /schema/openapi.json from an app over a seeded ledger; each
operation gets a bounded number of generated requests, sent with a key of the role it requires (a poster
key for POST /v1/events, an admin key elsewhere); schemathesis also re-sends some without the key.

Every check of schemathesis runs but one: `positive_data_acceptance` expects any request the document
allows to succeed, and the document cannot say which cursors were given out, which TOML is a valid policy,
which cadres are registered, which log positions exist or which years have an ISO week 53 — the API rightly
refuses those with a 422 naming the field, which the other tests check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ledger.api import ApiSettings, create_app
from tests.api.conftest import Api, open_api

EXAMPLES_PER_OPERATION = 60


def _already_started(app: Any) -> Any:
    """The app behind a lifespan that answers at once: the fixture's client has started the app already."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)

    return asgi


@pytest.fixture(scope="module")
def schemathesis_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(tmp_path_factory.mktemp("schemathesis")) as api:
        yield api


@pytest.fixture(scope="module")
def api_schema(schemathesis_api: Api) -> Any:
    return schemathesis.openapi.from_asgi("/schema/openapi.json", _already_started(schemathesis_api.app))


def _operations() -> list[tuple[str, str]]:
    """Every operation of the document (building the app opens no database)."""
    document = create_app(ApiSettings()).openapi_schema.to_schema()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in ("get", "post", "put", "patch", "delete")
        if method in item
    ]


# schemathesis's own pytest integration (`from_fixture`) reaches into pytest internals that pytest 9 moved:
# drive each operation's hypothesis strategy directly instead.
@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_request_makes_the_api_fail_or_break_its_document(
    api_schema: Any, schemathesis_api: Api, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    who = "poster" if (method, path) == ("POST", "/v1/events") else "admin"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=schemathesis_api.auth(who), excluded_checks=[positive_data_acceptance])

    check()
