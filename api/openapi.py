"""The OpenAPI 3.1 document: paths from Litestar, every body schema from msgspec.

Litestar builds the paths, parameters and responses from the handlers. The schemas of the documents
themselves come from msgspec (`msgspec.json.schema_components`), the same library that encodes and decodes
them, so the document says exactly what goes over the wire: decimals as strings, `additionalProperties:
false` where unknown fields are refused, nullable cursors as nullable, tagged unions with a discriminator.
A Litestar schema plugin answers every struct of the ledger with a `$ref`, and `finish` adds the
components once the app is built.

Request bodies are decoded strictly by hand, so their handlers take raw bytes; `finish` documents the
real bodies (`REQUEST_BODIES`). Posted events get their own `…Input` schemas without the fields the ledger
sets (`event_id`, `posted_by`, `policy_version` and computed payload fields), which a client may not send.

`finish` also makes the document one that client generators can trust: each operation gets its name
(`OPERATION_IDS`), the error responses it really answers — every one a problem document
(`application/problem+json`), 503 with `Retry-After`, no 400 where no body is read — a request and a
response example (`openapi_examples.json`, real answers of the demo city, trimmed), and every property of
every schema a description (`PROPERTY_DESCRIPTIONS`, by name, as most names mean one thing everywhere).

The browsable reference at `/schema` is Swagger UI served from the package's own files (`static/`), so the
page renders offline and loads nothing from another origin; its Content-Security-Policy says so.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Awaitable, Callable, Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Litestar, Request
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
    Tag,
)
from litestar.openapi.spec.base import BaseSchemaObject
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope
from litestar.typing import FieldDefinition

from ledger.api.openapi_descriptions import (
    PROPERTY_DESCRIPTIONS,
    SCHEMA_DESCRIPTIONS,
    SCHEMA_PROPERTY_DESCRIPTIONS,
)
from ledger.api.problems import PROBLEM_MEDIA_TYPE, Problem, problem_for
from ledger.api.schemas import EventsBody, PolicyBody
from ledger.domain.events import EVENT_TYPES, POSTABLE_EVENT_TYPES, SERVER_FIELDS, UNIT_EVENT_TYPES
from ledger.domain.points import POINTS_PATTERN

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = [
    "BEARER",
    "DOCUMENT_PATH",
    "DOWNLOAD_MEDIA_TYPES",
    "DOWNLOAD_TAG",
    "OPERATION_IDS",
    "SECURITY",
    "ApiReference",
    "StructSchemas",
    "docs_headers",
    "finish",
    "openapi_config",
    "static_directory",
]

REF_TEMPLATE: Final = "#/components/schemas/{name}"
BEARER: Final = "bearerAuth"
# The security requirement of every protected operation.
SECURITY: Final[list[dict[str, list[str]]]] = [{BEARER: []}]
INPUT_SUFFIX: Final = "Input"
API_VERSION: Final = "1"

# Routes whose body is decoded by hand: the body each one really takes.
REQUEST_BODIES: Final[dict[tuple[str, str], tuple[type[msgspec.Struct], str]]] = {
    ("/v1/events", "post"): (EventsBody, "A batch of 1 to 1,000 events, recorded atomically."),
    ("/v1/policies", "post"): (PolicyBody, "A TOML rulebook to publish as `policy.published`."),
}

TAGS: Final = [
    Tag(name="events", description="Post events; read the log (auditors)."),
    Tag(name="cadres", description="A cadre's profile, standing, history and eligibility."),
    Tag(name="read models", description="Rankings, the promotion shortlist, recalls, boards, escalations."),
    Tag(
        name="units",
        description="Units rated by enterprises (市场主体评部门): rankings, the ladder, a unit's history.",
    ),
    Tag(name="audit", description="Verify the hash chain; take a checkpoint."),
    Tag(
        name="downloads",
        description="The reads as files for people: XLSX workbooks, or CSV for Excel (`/v1/exports/…`).",
    ),
    Tag(name="policies", description="The rulebooks."),
    Tag(name="health", description="Liveness and readiness."),
]

DESCRIPTION: Final = """\
The audit API of cadre-ledger: an append-only, hash-chained log of cadre points events, its read models,
and its verification.

Authenticate with `Authorization: Bearer <key>` (keys are created with `ledger keys create`). Roles:
`poster` posts events as the one source system its key is bound to; `reader` reads; `auditor` also reads
the log and verifies it; `admin` also publishes policies. Errors are RFC 9457 problem documents
(`application/problem+json`). Decimals travel as strings (`"12.50"`), dates as `YYYY-MM-DD`, instants as
RFC 3339.
"""

# Each operation's name for client generators: camelCase, unique and stable (a rename breaks their code).
OPERATION_IDS: Final[Mapping[tuple[str, str], str]] = {
    ("/v1/events", "post"): "postEvents",
    ("/v1/events", "get"): "listEvents",
    ("/v1/events/{event_id}", "get"): "getEvent",
    ("/v1/cadres/{cadre_id}", "get"): "getCadre",
    ("/v1/cadres/{cadre_id}/history", "get"): "getCadreHistory",
    ("/v1/cadres/{cadre_id}/eligibility", "get"): "getCadreEligibility",
    ("/v1/rankings", "get"): "listRankings",
    ("/v1/eligibility", "get"): "listShortlist",
    ("/v1/recalls", "get"): "listRecalls",
    ("/v1/boards", "get"): "getBoards",
    ("/v1/escalations", "get"): "listEscalations",
    ("/v1/units/rankings", "get"): "listUnitRankings",
    ("/v1/units/escalations", "get"): "listUnitEscalations",
    ("/v1/units/{unit_id}", "get"): "getUnit",
    ("/v1/exports/rankings", "get"): "downloadRankings",
    ("/v1/exports/eligibility", "get"): "downloadShortlist",
    ("/v1/exports/recalls", "get"): "downloadRecalls",
    ("/v1/exports/boards", "get"): "downloadBoards",
    ("/v1/exports/escalations", "get"): "downloadEscalations",
    ("/v1/exports/cadres/{cadre_id}/history", "get"): "downloadCadreHistory",
    ("/v1/exports/cadres/{cadre_id}/eligibility", "get"): "downloadCadreEligibility",
    ("/v1/exports/units/rankings", "get"): "downloadUnitRankings",
    ("/v1/exports/units/escalations", "get"): "downloadUnitEscalations",
    ("/v1/exports/units/{unit_id}", "get"): "downloadUnit",
    ("/v1/audit/verify", "get"): "verifyLog",
    ("/v1/audit/checkpoint", "get"): "getCheckpoint",
    ("/v1/audit/proofs/inclusion", "get"): "getInclusionProof",
    ("/v1/audit/proofs/consistency", "get"): "getConsistencyProof",
    ("/v1/policies", "get"): "listPolicies",
    ("/v1/policies", "post"): "publishPolicy",
    ("/v1/policies/{version}", "get"): "getPolicy",
    ("/health/live", "get"): "getLiveness",
    ("/health/ready", "get"): "getReadiness",
}
# Downloads (`ledger.api.exports`): files, not JSON — a workbook (binary) or a CSV (text), as `format`
# asks — with the headers of an attachment. The CSV example of each is in `openapi_examples.json` (under
# `csv`); a workbook's bytes have no place in a JSON document, so it has none.
DOWNLOAD_PREFIX: Final = "/v1/exports/"
DOWNLOAD_TAG: Final = "downloads"
DOWNLOAD_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
}
DOWNLOAD_HEADERS: Final[Mapping[str, str]] = {
    "Content-Disposition": "`attachment` with the file's name after the view "
    "(`rankings-unit-U001-2025Q3.xlsx`); with RFC 5987 `filename*` (UTF-8) when the name holds Chinese.",
    "Cache-Control": "`no-store`: a file of cadres' points is kept by no cache.",
}
# The one route that touches neither the database nor the read models, so never answers 503.
LIVENESS_PATH: Final = "/health/live"
RETRY_AFTER_HEADER: Final = "Retry-After"
UNAVAILABLE_DESCRIPTION: Final = (
    "Try again after `Retry-After` seconds: the database cannot answer or record now (`unavailable`, "
    "`rule` naming the cause), or the read models are loading or have not reached `min_position` "
    "(`read-models-unavailable`, `not-caught-up`)."
)
EXAMPLES_FILE: Final = "openapi_examples.json"
# What the API answers for a parameter that does not convert, in the order a 422 example picks them.
PARAMETER_MESSAGES: Final[Mapping[str, str]] = {
    "as_of": "Invalid RFC3339 encoded date",
    "period": "expected a period such as 2025, 2025Q3, 2025-07 or 2025-W27 (nothing before or after it)",
    "limit": "Expected `int` >= 1",
    "after": "Expected `int` >= 0",
    "position": "Expected `int` >= 1",
    "first": "Expected `int` >= 1",
    "version": "expected 1 to 32 of A-Z a-z 0-9 . _ - (no spaces, no line breaks)",
    "read_models": "Expected `bool`, got `str`",
    "proof": "Expected `bool`, got `str`",
}
# Values for the path parameters of the problem examples' `instance`, as in `openapi_examples.json`.
EXAMPLE_PATH_VALUES: Final[Mapping[str, str]] = {
    "{cadre_id}": "C00017",
    "{unit_id}": "U003",
    "{version}": "illustrative-3",
    "{event_id}": "01a23a8e-d18c-7ca9-8bb5-8476205b3db9",
}

# The document at `/schema/openapi.json`, the browsable reference at `/schema`.
DOCUMENT_PATH: Final = "/schema"
# The browsable reference: where its files are served, under the document's path (`/schema`).
ASSETS_PATH: Final = "/assets"
ASSETS_CACHE_SECONDS: Final = 3600
SWAGGER_UI_DIRECTORY: Final = "swagger-ui"
# The page loads only from its own origin; Swagger UI sets inline styles, never inline scripts, and draws
# its icons from `data:` URLs. The page carries this policy in a `<meta>` element too, so that a copy saved
# or served elsewhere keeps it.
DOCS_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'"
)
DOCS_HEADERS: Final[Mapping[str, str]] = {
    # No frame may hold the page, as people paste bearer keys into it; only a header can say so.
    "content-security-policy": DOCS_CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def _is_ledger_struct(value: Any) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__.split(".", maxsplit=1)[0] == "ledger"
    )


class StructSchemas(OpenAPISchemaPlugin):
    """Answers each of the ledger's structs with a `$ref` to the component msgspec will generate."""

    def __init__(self) -> None:
        self.types: set[type[msgspec.Struct]] = set()

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return _is_ledger_struct(value)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        annotation = field_definition.annotation
        self.types.add(annotation)
        # A placeholder component, registered so that Litestar refers to it by `$ref`; `finish` replaces its
        # content with msgspec's schema under the same name.
        schema = schema_creator.schema_registry.get_schema_for_field_definition(field_definition)
        schema.title = annotation.__name__
        schema.type = OpenAPIType.OBJECT
        return schema


def static_directory() -> Path:
    """The package's `static/` directory (a real directory: the wheel installs unzipped)."""
    return Path(str(files("ledger.api") / "static"))


class ApiReference(OpenAPIRenderPlugin):
    """The browsable reference at `/schema`: Swagger UI from the package's files, started by `docs.js`.

    Not Litestar's Scalar or Swagger plugins: they load their scripts and a favicon from CDNs, and start
    the UI with an inline script, which a Content-Security-Policy without `'unsafe-inline'` forbids.
    """

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        document_url = self.get_openapi_json_route(request)
        assets = html.escape(document_url.rsplit("/", 1)[0] + ASSETS_PATH)
        ui = f"{assets}/{SWAGGER_UI_DIRECTORY}"
        title = html.escape(str(openapi_schema["info"]["title"]))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{DOCS_CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API reference</title>
<link rel="icon" type="image/png" href="{ui}/favicon-32x32.png">
<link rel="stylesheet" href="{ui}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(document_url)}"></div>
<script src="{ui}/swagger-ui-bundle.js"></script>
<script src="{assets}/docs.js"></script>
</body>
</html>
"""
        return page.encode()

    def receive_router(self, router: Router) -> None:
        """Serve the page's files beside it (`/schema/assets/…`), outside the OpenAPI document."""
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[static_directory()],
                name="api-reference-assets",
                include_in_schema=False,
                cache_control=CacheControlHeader(max_age=ASSETS_CACHE_SECONDS),
            )
        )


def docs_headers(prefix: str) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook: `DOCS_HEADERS` on every answer under `prefix` (the page, its files, the
    document).

    The header adds to the page's `<meta>` policy what a meta element cannot say (`frame-ancestors`).
    """
    encoded = [(name.encode(), value.encode()) for name, value in DOCS_HEADERS.items()]

    async def add(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path = scope.get("path", "")
        if path != prefix and not path.startswith(prefix + "/"):
            return
        names = {name for name, _ in encoded}
        headers = [(name, value) for name, value in message.get("headers", []) if name.lower() not in names]
        message["headers"] = [*headers, *encoded]

    return add


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="cadre-ledger",
        version=API_VERSION,
        description=DESCRIPTION,
        path=DOCUMENT_PATH,
        tags=TAGS,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key, `cl_<key id>_<secret>`, from `ledger keys create`.",
                )
            }
        ),
        # The JSON document at /schema/openapi.json; the browsable UI at /schema.
        render_plugins=[ApiReference()],
        create_examples=False,
    )


def _input_components(components: dict[str, Any]) -> dict[str, Any]:
    """`…Input` copies of the cadre events' schemas, without the fields the ledger sets."""
    inputs: dict[str, Any] = {}
    for type_name in sorted(POSTABLE_EVENT_TYPES):
        name = EVENT_TYPES[type_name].__name__
        schema = copy.deepcopy(components[name])
        for field in (*SERVER_FIELDS[type_name], "points"):
            schema["properties"].pop(field, None)
            if field in schema.get("required", []):
                schema["required"].remove(field)
        if type_name in UNIT_EVENT_TYPES:  # units' events count no points and take no override
            schema["properties"].pop("override_reason", None)
            schema["title"] = name + INPUT_SUFFIX
            inputs[name + INPUT_SUFFIX] = schema
            continue
        # A client may send points only as an override the policy allows, with `override_reason`.
        schema["properties"]["points"] = {
            "type": "string",
            "pattern": POINTS_PATTERN,
            "description": "Only where the policy allows an override, within bounds, with override_reason.",
        }
        schema["title"] = name + INPUT_SUFFIX
        inputs[name + INPUT_SUFFIX] = schema
    return inputs


def _events_body(components: dict[str, Any]) -> None:
    """Point the batch's items at the input schemas (cadre events only: policies go to /v1/policies)."""
    names = sorted(
        (EVENT_TYPES[type_name].__name__ + INPUT_SUFFIX, type_name) for type_name in POSTABLE_EVENT_TYPES
    )
    events = components[EventsBody.__name__]["properties"]["events"]
    events["items"] = {
        "anyOf": [{"$ref": REF_TEMPLATE.format(name=name)} for name, _ in names],
        "discriminator": {
            "propertyName": "type",
            "mapping": {type_name: REF_TEMPLATE.format(name=name) for name, type_name in names},
        },
    }


def _describe(components: dict[str, Any]) -> None:
    """Give every schema and every property without a description the one of the tables above.

    A property no table names is left without one: the OpenAPI tests name it, so that a new field gets
    its description where the others are (a missing description is no reason to refuse to serve).
    """
    for name, schema in components.items():
        base = name.removesuffix(INPUT_SUFFIX)
        if not schema.get("description") and base in SCHEMA_DESCRIPTIONS:
            schema["description"] = SCHEMA_DESCRIPTIONS[base]
        overrides = SCHEMA_PROPERTY_DESCRIPTIONS.get(base, {})
        for property_name, value in schema.get("properties", {}).items():
            if value.get("description"):
                continue
            description = overrides.get(property_name) or PROPERTY_DESCRIPTIONS.get(property_name)
            if description:
                value["description"] = description


class _Verbatim(BaseSchemaObject):
    """An example as it is: Litestar's `to_schema` drops every null of a plain dict, the nulls that an
    example of a nullable field must show."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def to_schema(self) -> dict[str, Any]:
        return self.value


def _examples() -> dict[str, Any]:
    """Each operation's examples: `{operation id: {"request": body, "responses": {status: body}}}`."""
    examples: dict[str, Any] = msgspec.json.decode((files("ledger.api") / EXAMPLES_FILE).read_bytes())
    return examples


def _operations(app: Litestar) -> Iterator[tuple[str, str, Operation]]:
    for path, item in (app.openapi_schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation = getattr(item, method, None)
            if isinstance(operation, Operation):
                yield path, method, operation


def _not_found(path: str) -> str:
    if "{event_id}" in path:
        return "no event 01a23a8e-d18c-7ca9-8bb5-8476205b3d00"
    if "{version}" in path:
        return "no policy xiantao-2030"
    if "{cadre_id}" in path:
        return "no cadre C00999 as of 2026-12-03 known at position 22342"
    return "unit U999 is not known: no cadre serves in it and nothing rates or registers it"


def _invalid_parameter(parameters: list[str]) -> tuple[str, str]:
    """The parameter a 422 example names (the first of `PARAMETER_MESSAGES` the route takes), its message."""
    for name, message in PARAMETER_MESSAGES.items():
        if name in parameters:
            return name, message
    name = parameters[0] if parameters else "known_at"
    return name, "expected a log position or an RFC 3339 instant with an offset"


def _problem_example(path: str, status: int, *, reads_body: bool, parameters: list[str]) -> dict[str, Any]:
    """A realistic problem document for `status` on this route, with the words the handlers use."""
    instance = path
    for parameter, value in EXAMPLE_PATH_VALUES.items():
        instance = instance.replace(parameter, value)
    problem: Problem
    if status == 400:
        problem = problem_for(
            "malformed-body",
            "the body is not well-formed JSON: JSON is malformed: trailing characters (byte 17)",
            rule="json_malformed",
        )
    elif status == 401:
        problem = problem_for("not-authenticated", "the API key is unknown, wrong or revoked")
    elif status == 403:
        problem = problem_for(
            "not-allowed",
            "a reader key may not call this route (it needs an auditor key or above)",
            rule="role_not_allowed",
        )
    elif status == 404:
        problem = problem_for("not-found", _not_found(path))
    elif status == 409 and reads_body:
        problem = problem_for(
            "conflict",
            "item 0: source hr/hr-award-2025-0917 was recorded before with other content",
            rule="exists_with_different_content",
            item=0,
            field="source.key",
            system="hr",
            key="hr-award-2025-0917",
        )
    elif status == 409:
        problem = problem_for(
            "integrity-failure",
            "the log fails verification at position 1187: altered",
            rule="altered",
            position=1187,
        )
    elif status == 413:
        problem = problem_for("body-too-large", "the body is larger than this route accepts (1 MiB)")
    elif status == 422 and reads_body:
        problem = problem_for(
            "invalid-input",
            'points are a decimal string with at most two places, such as "12.50" (numbers and floats are '
            "refused)",
            rule="points_must_be_decimal_string",
            item=0,
            field="points",
        )
    elif status == 422:
        field, message = _invalid_parameter(parameters)
        problem = problem_for("invalid-input", f"{field}: {message}", rule="parameter_invalid", field=field)
    elif status == 503:
        problem = problem_for(
            "not-caught-up",
            "the read models reached position 22338, not yet min_position 22341",
            position=22338,
            min_position=22341,
        )
    else:
        problem = problem_for("internal-error", "the server failed to answer; the error is logged")
    example: dict[str, Any] = msgspec.to_builtins(msgspec.structs.replace(problem, instance=instance))
    return example


def _header(description: str, schema: Schema) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema, description=description, required=True, name="", param_in="header")


def _responses(path: str, operation: Operation, *, reads_body: bool) -> None:
    """Document what the route really answers: problem documents for every error, 503 with Retry-After.

    Litestar adds a 400 `ValidationException` body to every route with parameters, but the ledger answers
    parameters that do not convert with a 422 problem (`ledger.api.problems`); it answers 400 only for a
    body that is not JSON, so only where a body is read.
    """
    responses = dict(operation.responses or {})
    if not reads_body:
        responses.pop("400", None)
    if path != LIVENESS_PATH and "503" not in responses:
        responses["503"] = OpenAPIResponse(description=UNAVAILABLE_DESCRIPTION)
    problem = Reference(ref=REF_TEMPLATE.format(name=Problem.__name__))
    parameters = [
        parameter.name for parameter in operation.parameters or [] if isinstance(parameter, Parameter)
    ]
    for status, response in responses.items():
        code = int(status)
        if code < 400 or not isinstance(response, OpenAPIResponse):
            continue
        response.content = {
            PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                schema=problem,
                example=_Verbatim(_problem_example(path, code, reads_body=reads_body, parameters=parameters)),
            )
        }
        headers = dict(response.headers or {})
        if code == 503:
            response.description = UNAVAILABLE_DESCRIPTION
            headers[RETRY_AFTER_HEADER] = _header(
                "Seconds to wait before trying again.", Schema(type=OpenAPIType.INTEGER, minimum=1)
            )
        if code == 401:
            headers["WWW-Authenticate"] = _header(
                'The scheme to authenticate with: `Bearer realm="cadre-ledger"`.',
                Schema(type=OpenAPIType.STRING),
            )
        response.headers = headers or None
    operation.responses = dict(sorted(responses.items()))


def _apply_examples(operation: Operation, examples: Mapping[str, Any]) -> None:
    """The examples of `openapi_examples.json` on the request body and the success responses."""
    if operation.operation_id is None or operation.operation_id not in examples:
        return
    entry = examples[operation.operation_id]
    body = operation.request_body
    if "request" in entry and isinstance(body, RequestBody):
        for media in body.content.values():
            media.example = _Verbatim(entry["request"])
    for status, example in entry.get("responses", {}).items():
        response = (operation.responses or {}).get(status)
        if isinstance(response, OpenAPIResponse):
            for media in (response.content or {}).values():
                media.example = _Verbatim(example)


def _download(operation: Operation, examples: Mapping[str, Any]) -> None:
    """A download's success: a workbook (binary) or a CSV (text), with the headers of an attachment."""
    response = (operation.responses or {}).get("200")
    if not isinstance(response, OpenAPIResponse):
        raise RuntimeError(f"{operation.operation_id} answers no 200")
    csv_example = examples.get(operation.operation_id or "", {}).get("csv")
    if csv_example is None:
        raise RuntimeError(f"no CSV example of {operation.operation_id} in {EXAMPLES_FILE}")
    response.description = "The view as a file, in the `format` asked for."
    # CSV is text (UTF-8), which a generated client reads as a string; a workbook is bytes.
    response.content = {
        DOWNLOAD_MEDIA_TYPES["xlsx"]: OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        ),
        DOWNLOAD_MEDIA_TYPES["csv"]: OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING), example=csv_example
        ),
    }
    response.headers = {
        name: _header(description, Schema(type=OpenAPIType.STRING))
        for name, description in DOWNLOAD_HEADERS.items()
    }


def finish(app: Litestar, plugin: StructSchemas) -> None:
    """Complete Litestar's document: msgspec's components, the hand-decoded request bodies, operation
    names, the real error responses, descriptions and examples."""
    document = app.openapi_schema
    for (path, method), (body_type, description) in REQUEST_BODIES.items():
        operation = getattr(document.paths[path], method) if document.paths else None
        if operation is None:
            raise RuntimeError(f"no {method.upper()} {path} in the OpenAPI document")
        plugin.types.add(body_type)
        operation.request_body = RequestBody(
            content={
                "application/json": OpenAPIMediaType(
                    schema=Reference(ref=REF_TEMPLATE.format(name=body_type.__name__))
                )
            },
            description=description,
            required=True,
        )
    plugin.types.add(Problem)
    _, components = msgspec.json.schema_components(
        sorted(plugin.types, key=lambda cls: cls.__name__), ref_template=REF_TEMPLATE
    )
    components.update(_input_components(components))
    _events_body(components)
    _describe(components)
    missing = {cls.__name__ for cls in plugin.types} - set(components)
    if missing:  # two structs with one name: msgspec would have qualified them
        raise RuntimeError(f"OpenAPI components missing for {sorted(missing)}")
    if document.components is None:
        document.components = Components()
    existing = dict(document.components.schemas or {})
    # Litestar's own schemas (none expected) yield to msgspec's, which match the wire exactly.
    existing.update(components)
    document.components.schemas = dict(sorted(existing.items()))
    examples = _examples()
    for path, method, operation in _operations(app):
        # A route missing from OPERATION_IDS keeps Litestar's generated id; the OpenAPI tests name it.
        operation.operation_id = OPERATION_IDS.get((path, method), operation.operation_id)
        _responses(path, operation, reads_body=(path, method) in REQUEST_BODIES)
        if path.startswith(DOWNLOAD_PREFIX):
            _download(operation, examples)
        _apply_examples(operation, examples)
