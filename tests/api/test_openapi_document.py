"""The OpenAPI document is one that client generators can trust (issue 13, point 7).

Goal: a generator reading `/schema/openapi.json` gets named operations, every response the API really
answers — problem documents for every error, 503 with `Retry-After` — no response it never answers, a
description on every property and an example of every request and response that validates against its own
schema. Method: read the document from the app, check it with `openapi-spec-validator`, walk it, and ask
the app itself which statuses it answers where the document says so.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from ledger.api.openapi import OPERATION_IDS
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from tests.api.conftest import Api

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
OPERATION_ID = re.compile(r"^[a-z][A-Za-z]+$")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BINARY = {"type": "string", "format": "binary"}


@pytest.fixture(scope="module")
def spec(shared_api: Api) -> dict[str, Any]:
    response = shared_api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def properties(name: str, schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of `schema`, nested ones included, as (`Schema.path`, property schema)."""
    if isinstance(schema, dict):
        for key, value in schema.get("properties", {}).items():
            yield f"{name}.{key}", value
            yield from properties(f"{name}.{key}", value)
        for key, value in schema.items():
            if key != "properties":
                yield from properties(name, value)
    elif isinstance(schema, list):
        for value in schema:
            yield from properties(name, value)


def validate(spec: dict[str, Any], instance: Any, schema: dict[str, Any]) -> None:
    """`instance` against `schema` with the document's components to resolve `$ref`s (JSON Schema 2020-12)."""
    resolving = {**schema, "components": spec["components"]}
    jsonschema.Draft202012Validator(resolving).validate(instance)


def test_the_document_validates_without_a_single_error(spec: dict[str, Any]) -> None:
    errors = [error.message for error in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []
    assert spec["openapi"].startswith("3.1")


def test_every_operation_has_its_own_stable_camel_case_name(spec: dict[str, Any]) -> None:
    found = {(path, method): operation.get("operationId") for path, method, operation in operations(spec)}
    # Every route is named in the table (a new route needs its name there), and only those routes.
    assert found == dict(OPERATION_IDS)
    for name in found.values():
        assert name is not None and OPERATION_ID.match(name), name
    assert [name for name, count in Counter(found.values()).items() if count > 1] == []
    assert found[("/v1/cadres/{cadre_id}/history", "get")] == "getCadreHistory"
    assert found[("/v1/rankings", "get")] == "listRankings"
    assert found[("/v1/events", "post")] == "postEvents"
    assert found[("/v1/audit/verify", "get")] == "verifyLog"


def test_every_error_response_is_a_problem_document(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            where = f"{method} {path} {status}"
            assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], where
            media = response["content"][PROBLEM_MEDIA_TYPE]
            assert media["schema"] == PROBLEM_REF, where
            assert media["example"]["status"] == int(status), where
            assert media["example"]["type"].startswith("urn:cadre-ledger:problem:"), where
            validate(spec, media["example"], media["schema"])
    assert "Problem" in spec["components"]["schemas"]


def test_every_route_but_liveness_documents_503_with_retry_after(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        if path == "/health/live":
            assert "503" not in responses  # it touches neither the database nor the read models
            continue
        assert "503" in responses, f"{method} {path}"
        header = responses["503"]["headers"]["Retry-After"]
        assert header["schema"]["type"] == "integer" and header["required"] is True
        if path.startswith("/v1/"):
            assert "WWW-Authenticate" in responses["401"]["headers"], f"{method} {path}"


def test_400_is_documented_exactly_where_a_body_is_read(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        assert ("400" in operation["responses"]) == ("requestBody" in operation), f"{method} {path}"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/policies"])
def test_a_body_that_is_not_json_is_the_400_the_document_promises(shared_api: Api, path: str) -> None:
    who = "poster" if path == "/v1/events" else "admin"
    response = shared_api.post(path, who, b"not JSON at all")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/rankings", {"as_of": "2025-13-01"}),
        ("/v1/cadres/C1/history", {"limit": "0"}),
        ("/v1/audit/verify", {"read_models": "maybe"}),
        ("/v1/events", {"after": "-1"}),
    ],
)
def test_a_parameter_that_does_not_convert_is_a_422_not_the_400_litestar_documents(
    shared_api: Api, path: str, params: dict[str, str]
) -> None:
    response = shared_api.get(path, "auditor", **params)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["field"] == next(iter(params))


def test_every_schema_and_every_property_has_a_description(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert [name for name, schema in schemas.items() if not schema.get("description")] == []
    found = [(where, value) for name, schema in schemas.items() for where, value in properties(name, schema)]
    assert len(found) > 500
    undescribed = [where for where, value in found if not str(value.get("description", "")).strip()]
    assert undescribed == [], "add them to PROPERTY_DESCRIPTIONS in api/openapi.py"


def test_every_parameter_has_a_description(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), f"{method} {path} {parameter['name']}"


def test_every_request_and_response_has_an_example_that_fits_its_schema(spec: dict[str, Any]) -> None:
    for path, method, operation in operations(spec):
        where = f"{method} {path}"
        if "requestBody" in operation:
            media = operation["requestBody"]["content"]["application/json"]
            assert "example" in media, where
            validate(spec, media["example"], media["schema"])
        successes = [status for status in operation["responses"] if int(status) < 400]
        assert successes, where
        for status in successes:
            for media_type, media in operation["responses"][status].get("content", {}).items():
                if media["schema"] == BINARY and not media_type.startswith(("text/", "application/json")):
                    # A workbook's bytes have no place in a JSON document; every JSON or text answer has one.
                    assert "example" not in media, f"{where} {status} {media_type}"
                    continue
                assert "example" in media, f"{where} {status}"
                validate(spec, media["example"], media["schema"])


def test_the_examples_use_the_words_of_the_wire(spec: dict[str, Any]) -> None:
    """Points are decimal strings with two places; ids look like the demo city's."""
    cadre = spec["paths"]["/v1/cadres/{cadre_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    example = cadre["example"]
    assert re.fullmatch(r"C\d{5}", example["cadre_id"])
    assert re.fullmatch(r"U\d{3}", example["unit_id"])
    assert re.fullmatch(r"-?\d+\.\d{2}", example["total"])
    posted = spec["paths"]["/v1/events"]["post"]
    batch = posted["requestBody"]["content"]["application/json"]["example"]
    assert all("points" not in event and "event_id" not in event for event in batch["events"])
    result = posted["responses"]["201"]["content"]["application/json"]["example"]
    assert len(result["results"]) == len(batch["events"])
    assert all(re.fullmatch(r"-?\d+\.\d{2}", item["points"]) for item in result["results"])
