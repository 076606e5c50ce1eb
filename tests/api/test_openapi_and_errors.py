"""The OpenAPI document says what the API does; errors are problem documents; CORS; logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from ledger.api.problems import PROBLEM_MEDIA_TYPE
from tests.api.conftest import Api, open_api


def document(api: Api) -> dict[str, Any]:
    response = api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str):
                yield inner
            else:
                yield from refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from refs(inner)


def test_the_document_is_a_valid_openapi_3_1_document(shared_api: Api) -> None:
    schema = schemathesis.openapi.from_dict(document(shared_api))
    schema.validate()
    assert document(shared_api)["openapi"].startswith("3.1")


def test_every_reference_in_the_document_resolves(shared_api: Api) -> None:
    spec = document(shared_api)
    names = set(spec["components"]["schemas"])
    for ref in set(refs(spec)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in names, ref


def test_security_is_declared_on_protected_operations_only(shared_api: Api) -> None:
    spec = document(shared_api)
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            protected = path.startswith("/v1/")
            assert ("security" in operation) == protected, f"{method} {path}"
            if protected:
                assert {"401", "403", "500"} <= operation["responses"].keys(), f"{method} {path}"


def test_request_bodies_refuse_unknown_fields_and_server_fields(shared_api: Api) -> None:
    schemas = document(shared_api)["components"]["schemas"]
    assert schemas["EventsBody"]["additionalProperties"] is False
    assert schemas["PolicyBody"]["additionalProperties"] is False
    merit = schemas["MeritAwardedInput"]
    assert merit["additionalProperties"] is False
    assert not {"event_id", "posted_by", "policy_version"} & merit["properties"].keys()
    assert merit["properties"]["points"]["type"] == "string"
    items = schemas["EventsBody"]["properties"]["events"]["items"]
    assert "policy.published" not in items["discriminator"]["mapping"]
    assert schemas["EventsBody"]["properties"]["events"]["maxItems"] == 1000


def test_cursors_are_documented_as_nullable_and_decimals_as_strings(shared_api: Api) -> None:
    schemas = document(shared_api)["components"]["schemas"]
    for name in ("HistoryPage", "RankingsView", "ShortlistView"):
        cursor = schemas[name]["properties"]["next_cursor"]
        assert {"type": "null"} in cursor["anyOf"], name
    assert {"type": "null"} in schemas["EventsPage"]["properties"]["next_after"]["anyOf"]
    assert schemas["PostedItem"]["properties"]["points"]["type"] == "string"


def test_errors_are_documented_as_problem_documents(shared_api: Api) -> None:
    operation = document(shared_api)["paths"]["/v1/events"]["post"]
    for status in ("400", "401", "403", "409", "413", "422", "500"):
        content = operation["responses"][status]["content"]
        assert content[PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert {"200", "201"} <= operation["responses"].keys()


def test_the_browsable_documentation_is_served_at_schema(shared_api: Api) -> None:
    response = shared_api.client.get("/schema")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/nowhere", 404), ("PUT", "/v1/events", 405), ("DELETE", "/v1/policies", 405)],
)
def test_routing_errors_are_problem_documents(shared_api: Api, method: str, path: str, status: int) -> None:
    response = shared_api.client.request(method, path, headers=shared_api.auth("admin"))
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["status"] == status
    if status == 405:
        assert "GET" in response.headers["allow"]


def test_an_unhandled_error_is_logged_and_not_leaked(
    shared_api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "database password is hunter2"

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError(secret)

    monkeypatch.setattr(shared_api.ledger, "verify", explode)
    with caplog.at_level(logging.ERROR, logger="ledger.api"):
        response = shared_api.get("/v1/audit/verify", "auditor")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert secret not in response.text
    assert "Traceback" not in response.text
    logged = [record for record in caplog.records if record.name == "ledger.api"]
    assert logged and logged[0].exc_info is not None
    assert secret in str(logged[0].exc_info[1])


def test_each_request_is_logged_with_its_status_and_principal(
    shared_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ledger.api.access"):
        shared_api.get("/v1/policies", "reader")
        shared_api.client.get("/v1/nowhere")
    lines = [record.getMessage() for record in caplog.records if record.name == "ledger.api.access"]
    assert any('"GET /v1/policies" 200' in line and line.endswith(" reader") for line in lines), lines
    assert any('"GET /v1/nowhere" 404' in line for line in lines), lines


def test_a_path_with_a_line_break_cannot_forge_a_line_of_the_access_log(
    shared_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    forged = '/nothing\n2026-12-03 08:09:00,000 INFO ledger.api.access: 10.9.9.9 "GET /v1/events" 200'
    with caplog.at_level(logging.INFO, logger="ledger.api.access"):
        shared_api.client.get(forged.replace("\n", "%0a").replace(" ", "%20").replace('"', "%22"))
        shared_api.client.get("/nothing%00")
    lines = [record.getMessage() for record in caplog.records if record.name == "ledger.api.access"]
    assert len(lines) == 2, lines
    assert all("\n" not in line and "\x00" not in line for line in lines), lines
    assert '"GET /nothing%0A2026-12-03' in lines[0] and "%22GET%20" not in lines[0], lines
    assert '"GET /nothing%00" 404' in lines[1], lines


@pytest.fixture(scope="module")
def cors_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(Path(tmp_path_factory.mktemp("cors")), cors_origins=("https://audit.example",)) as api:
        yield api


def test_a_cors_preflight_from_a_configured_origin_is_allowed_on_every_route(cors_api: Api) -> None:
    for path in ("/v1/events", "/v1/cadres/C1/history", "/v1/audit/verify", "/health/ready"):
        response = cors_api.client.options(
            path,
            headers={
                "Origin": "https://audit.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert response.status_code == 204, path
        assert response.headers["access-control-allow-origin"] == "https://audit.example"
        assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_a_cors_request_gets_the_origin_header_and_another_origin_does_not(cors_api: Api) -> None:
    allowed = cors_api.client.get(
        "/v1/policies", headers={**cors_api.auth("reader"), "Origin": "https://audit.example"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://audit.example"
    other = cors_api.client.get(
        "/v1/policies", headers={**cors_api.auth("reader"), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_without_configured_origins_no_cors_headers_are_sent(shared_api: Api) -> None:
    response = shared_api.client.get("/health/live", headers={"Origin": "https://audit.example"})
    assert "access-control-allow-origin" not in response.headers
