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
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
    Tag,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from ledger.api.schemas import EventsBody, PolicyBody
from ledger.domain.events import EVENT_TYPES, POSTABLE_EVENT_TYPES, SERVER_FIELDS, UNIT_EVENT_TYPES
from ledger.domain.points import POINTS_PATTERN

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = ["BEARER", "SECURITY", "StructSchemas", "finish", "openapi_config"]

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


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="cadre-ledger",
        version=API_VERSION,
        description=DESCRIPTION,
        path="/schema",
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
        render_plugins=[ScalarRenderPlugin(path="/")],
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


def finish(app: Litestar, plugin: StructSchemas) -> None:
    """Complete Litestar's document: msgspec's components, the hand-decoded request bodies."""
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
    _, components = msgspec.json.schema_components(
        sorted(plugin.types, key=lambda cls: cls.__name__), ref_template=REF_TEMPLATE
    )
    components.update(_input_components(components))
    _events_body(components)
    missing = {cls.__name__ for cls in plugin.types} - set(components)
    if missing:  # two structs with one name: msgspec would have qualified them
        raise RuntimeError(f"OpenAPI components missing for {sorted(missing)}")
    if document.components is None:
        document.components = Components()
    existing = dict(document.components.schemas or {})
    # Litestar's own schemas (none expected) yield to msgspec's, which match the wire exactly.
    existing.update(components)
    document.components.schemas = dict(sorted(existing.items()))
