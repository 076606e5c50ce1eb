"""Input faults over HTTP, on SQLite and PostgreSQL (issue 10, items 7, 8, 13 and 14): bytes that are not
UTF-8, policies nested too deeply to parse, names with a trailing line break, forged cursors, and a
hostile pass over the POST routes. Each is refused with a 4xx problem document that names what is wrong,
and the log in the database itself (not the ledger's idea of its head) does not move.

Method: one app per store for the module, over the seeded ledger of tests/api/conftest.py (three cadres,
an award and an appraisal each), with a poster key that may post every cadre event type. Expected offsets,
fields and cursors are written out by hand from the bodies sent.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest
from litestar.testing import TestClient

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.api.services import ReadModels, Services
from ledger.domain.events import CADRE_EVENT_TYPES
from tests.api.conftest import HR, Api, issue_keys, seed
from tests.conftest import drop_schema, fixed_clock, require_postgres
from tests.support import raw_sql

TODAY = "2025-12-15"  # the fixed clock's date in Asia/Shanghai


@contextmanager
def serve(url: str) -> Iterator[Api]:
    """An app over a seeded ledger at `url`. The routes tried here read the log, not the read models, so
    the test does not wait for those to open."""
    with Ledger.open(url, clock=fixed_clock) as ledger, KeyStore.open(url) as keys:
        seed(ledger)
        tokens = issue_keys(keys)
        tokens["any"] = keys.create(
            "faults-sync", Role.poster, system=HR, event_types=sorted(CADRE_EVENT_TYPES)
        ).token
        app = create_app(ApiSettings(database_url=url), services=Services(ledger, keys, ReadModels(ledger)))
        with TestClient(app) as client:
            yield Api(url, ledger, keys, app, client, tokens)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if request.param == "sqlite":
        with serve(f"sqlite:///{tmp_path_factory.mktemp('faults') / 'ledger.db'}") as served:
            yield served
        return
    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    try:
        with serve(f"{base}{separator}schema={schema}") as served:
            yield served
    finally:
        drop_schema(base, schema)


def stored_log(api: Api) -> tuple[int, int]:
    """How many events the database holds and its highest position, read behind the ledger's back."""
    ((count, last),) = raw_sql(api.url, "SELECT COUNT(*), COALESCE(MAX({pos}), 0) FROM {events}")
    return int(count), int(last)


def post(api: Api, route: str, body: bytes, who: str = "any", content_type: str = "application/json") -> Any:
    headers = {**api.auth(who), "Content-Type": content_type}
    return api.client.post(route, content=body, headers=headers)


def refused(api: Api, response: Any, before: tuple[int, int], status: int | set[int]) -> dict[str, Any]:
    """The problem document of a refusal with `status` (or one of them), after checking the database
    holds what it did."""
    statuses = status if isinstance(status, set) else {status}
    assert response.status_code in statuses, response.text[:400]
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert stored_log(api) == before, "a refused request recorded something"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    return problem


_keys = iter(range(1, 10**9))


def merit(**fields: Any) -> dict[str, Any]:
    return {
        "type": "merit.awarded",
        "cadre_id": "C1",
        "effective_on": "2025-03-01",
        "source": {"system": HR, "key": f"f{next(_keys)}"},
        "award": "citation",
        "level": "unit",
        **fields,
    }


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}, ensure_ascii=False).encode()


# Item 7: bodies that are not UTF-8.

# Sequences Python's strict decoder refuses (and msgspec, where it reads them at all, does not name).
NOT_UTF8 = {
    "a stray byte 0xff": b"\xff",
    "a lone continuation byte": b"\x80",
    "an overlong '/' (C0 AF)": b"\xc0\xaf",
    "an overlong three-byte '/'": b"\xe0\x80\xaf",
    "an encoded surrogate U+D800": b"\xed\xa0\x80",
    "a code point past U+10FFFF": b"\xf4\x90\x80\x80",
    "a truncated sequence": b"\xe2\x82",
    "latin-1 é": b"\xe9",
}
MARK = "@@"  # where the bad bytes go, in a body otherwise UTF-8


def _events_bodies() -> dict[str, bytes]:
    """Events bodies with MARK inside a string msgspec decodes, one it skips and a key."""
    return {
        "in a document": batch(merit(document=f"组通{MARK}号")),
        "in an unknown field": batch(merit(unread=f"x{MARK}")),
        "in a field name": batch(merit()).replace(b'"award"', f'"aw{MARK}ard"'.encode()),
        "in the second event": batch(merit(), merit(note=f"说明{MARK}")),
    }


@pytest.mark.parametrize("bad", list(NOT_UTF8.values()), ids=list(NOT_UTF8))
def test_an_events_body_that_is_not_utf8_is_a_400_naming_the_offset_of_the_first_bad_byte(
    api: Api, bad: bytes
) -> None:
    for where, template in _events_bodies().items():
        body = template.replace(MARK.encode(), bad)
        offset = template.index(MARK.encode())  # the body's bytes before the mark are all UTF-8
        before = stored_log(api)
        problem = refused(api, post(api, "/v1/events", body), before, 400)
        assert (problem["rule"], problem["offset"]) == ("text_must_be_utf8", offset), where
        assert problem["detail"] == (
            f"the body is not UTF-8: invalid byte 0x{bad[0]:02x} at offset {offset}"
        ), where


@pytest.mark.parametrize("bad", list(NOT_UTF8.values()), ids=list(NOT_UTF8))
def test_a_policy_body_that_is_not_utf8_is_a_400_naming_the_offset(api: Api, bad: bytes) -> None:
    prefix = b'{"body": "version = \\"local-1\\"\\n# '
    body = prefix + bad + b' policy\\n"}'
    before = stored_log(api)
    problem = refused(api, post(api, "/v1/policies", body, who="admin"), before, 400)
    assert (problem["rule"], problem["offset"]) == ("text_must_be_utf8", len(prefix))


def test_text_of_two_three_and_four_bytes_in_utf8_is_still_recorded(api: Api) -> None:
    before = stored_log(api)
    response = post(api, "/v1/events", batch(merit(document="é 组通 😀")))
    assert response.status_code == 201, response.text[:300]
    assert stored_log(api)[0] == before[0] + 1


def test_lone_surrogates_written_as_json_escapes_are_a_400(api: Api) -> None:
    for escaped in ("\\ud800", "\\udc00", "a\\ud83dz"):
        body = batch(merit(document="MARK")).replace(b"MARK", escaped.encode())
        before = stored_log(api)
        assert refused(api, post(api, "/v1/events", body), before, 400)["rule"] == "json_malformed"


# Item 8: nesting.

DEPTH = 500


@pytest.mark.parametrize(
    "toml",
    [
        "version = " + "[" * DEPTH + "]" * DEPTH,
        "version = " + "{a = " * DEPTH + "1" + "}" * DEPTH,
        'version = "x"\nextra = ' + "[{a = " * DEPTH + "1" + "}]" * DEPTH,
        # Not recursion but time: tomllib is quadratic in a dotted key's parts (40,000 took 30 s).
        ".".join(["a"] * 99_000) + " = 1",
        "[" + ".".join(["a"] * 99_000) + "]",
    ],
    ids=["arrays", "inline tables", "arrays of inline tables", "a dotted key", "a dotted table header"],
)
def test_a_policy_nested_hundreds_of_levels_deep_is_a_422_policy_too_deep(api: Api, toml: str) -> None:
    before = stored_log(api)
    response = post(api, "/v1/policies", json.dumps({"body": toml}).encode(), who="admin")
    problem = refused(api, response, before, 422)
    assert (problem["rule"], problem["field"]) == ("policy_too_deep", "body")


DEEP = b"[" * 100_000 + b"]" * 100_000
# (route, body, status, rule): a 400 where msgspec's depth limit stops the parse, a 422 where a value of
# the wrong type stops it first.
DEEP_BODIES = [
    ("/v1/events", DEEP, 422, "field_invalid"),
    ("/v1/events", b'{"events":' + DEEP + b"}", 400, "json_malformed"),
    ("/v1/events", b'{"events":[{"note":' + DEEP + b"}]}", 400, "json_malformed"),
    ("/v1/policies", DEEP, 422, "field_invalid"),
    ("/v1/policies", b'{"body":' + DEEP + b"}", 422, "field_invalid"),
]


@pytest.mark.parametrize(
    ("route", "body", "status", "rule"),
    DEEP_BODIES,
    ids=[f"{case[0]} {case[1][:12]!r}" for case in DEEP_BODIES],
)
def test_json_nested_a_hundred_thousand_levels_deep_is_a_400_or_a_422(
    api: Api, route: str, body: bytes, status: int, rule: str
) -> None:
    before = stored_log(api)
    who = "any" if route == "/v1/events" else "admin"
    assert refused(api, post(api, route, body, who=who), before, status)["rule"] == rule


# Item 13: names match whole strings.

REGISTRATION = {
    "type": "cadre.registered",
    "cadre_id": "N1",
    "effective_on": "2024-01-01",
    "name": "王五",
    "unit_id": "U1",
    "grade": "一级科员",
    "leadership": False,
    "principal": False,
    "service_started_on": "2010-01-01",
    "grade_since": "2020-01-01",
}
# (event, the path of the field, its valid value): every field that names or identifies something.
NAME_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    (REGISTRATION, "cadre_id", "N1"),
    (REGISTRATION, "unit_id", "U1"),
    (REGISTRATION, "grade", "一级科员"),
    (REGISTRATION, "name", "王五"),
    ({"type": "merit.awarded", "award": "citation", "level": "unit"}, "cadre_id", "C1"),
    ({"type": "merit.awarded", "award": "citation", "level": "unit"}, "source.system", HR),
    ({"type": "merit.awarded", "award": "citation", "level": "unit"}, "source.key", "key-1"),
    ({"type": "merit.awarded", "award": "citation", "level": "unit"}, "document", "组通〔2025〕3号"),
    ({"type": "merit.awarded", "award": "citation", "level": "unit"}, "deed", "flood-2025"),
    ({"type": "cadre.transferred", "unit_id": "U2"}, "unit_id", "U2"),
    ({"type": "tenure.accrued", "period": "2025Q1", "effective_on": "2025-03-31"}, "period", "2025Q1"),
    ({"type": "recall.ordered", "period": "2025", "reason": "bottom"}, "period", "2025"),
    (
        {
            "type": "evaluation.recorded",
            "period": "2025-02",
            "scores": {"self": "90", "section": "80", "leadership": "85"},
        },
        "period",
        "2025-02",
    ),
    ({"type": "investigation.opened", "reference": "纪-2025-7"}, "reference", "纪-2025-7"),
]
# A pattern refuses spaces too; the free-form names (source key, document …) refuse only line breaks.
PATTERNED = {"cadre_id", "unit_id", "source.system", "period", "grade"}


def _with(event: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    built = merit() | {key: value for key, value in event.items()}
    if built["type"] != "merit.awarded":
        built.pop("award"), built.pop("level")
    built["source"] = dict(built["source"])
    if path.startswith("source."):
        built["source"][path.removeprefix("source.")] = value
    else:
        built[path] = value
    return built


def _name_cases() -> Iterator[Any]:
    for event, path, valid in NAME_FIELDS:
        variants = [valid + "\n", valid + "\r\n", valid + "\r", valid + "\u2028", "\n" + valid]
        if path in PATTERNED:
            variants += [valid + " ", " " + valid]
        for value in variants:
            yield pytest.param(event, path, value, id=f"{event['type']} {path} {value!r}")


@pytest.mark.parametrize(("event", "path", "value"), list(_name_cases()))
def test_a_name_with_a_line_break_or_a_space_at_its_edge_is_a_422_naming_the_field(
    api: Api, event: dict[str, Any], path: str, value: str
) -> None:
    before = stored_log(api)
    problem = refused(api, post(api, "/v1/events", batch(_with(event, path, value))), before, 422)
    assert (problem["field"], problem["item"]) == (path, 0), problem


def test_the_same_names_without_the_line_break_are_recorded(api: Api) -> None:
    """The control for the test above: each event, with its valid values, is accepted."""
    for event, path, valid in NAME_FIELDS:
        if event is REGISTRATION and path != "cadre_id":
            continue  # one registration of N1 is enough
        response = post(api, "/v1/events", batch(_with(event, path, valid)))
        assert response.status_code in {200, 201}, (path, response.text[:300])


def test_c1_with_a_trailing_line_break_is_not_a_second_cadre(api: Api) -> None:
    """The defect of issue 10: "C1\\n" registered beside C1 and was readable at /v1/cadres/C1%0A."""
    before = stored_log(api)
    registration = _with(REGISTRATION, "cadre_id", "C1\n")
    assert refused(api, post(api, "/v1/events", batch(registration)), before, 422)["field"] == "cadre_id"
    for cadre_id in ("C1\n", "C1\r\n", "C1 ", " C1", "C1\t"):
        for suffix in ("", "/history", "/eligibility"):
            response = api.get("/v1/cadres/" + quote(cadre_id, safe="") + suffix, "reader")
            problem = refused(api, response, before, 422)
            assert problem["field"] == "cadre_id", (cadre_id, suffix, problem)


def test_query_and_path_names_with_a_trailing_line_break_are_a_422_naming_the_parameter(api: Api) -> None:
    before = stored_log(api)
    for route, parameters, field in (
        ("/v1/rankings", {"scope": "unit:U1\n"}, "scope"),
        ("/v1/rankings", {"scope": "all\n"}, "scope"),
        ("/v1/rankings", {"period": "2025\n"}, "period"),
        ("/v1/recalls", {"period": "2025Q3\n"}, "period"),
        ("/v1/cadres/C1/history", {"known_at": "5\n"}, "known_at"),
        ("/v1/cadres/C1/eligibility", {"scope": "all\n"}, "scope"),
        ("/v1/policies/illustrative-3%0A", {}, "version"),
    ):
        problem = refused(api, api.get(route, "admin", **parameters), before, 422)
        assert problem["field"] == field, (route, parameters, problem)


def test_an_event_id_with_a_trailing_line_break_is_not_found(api: Api) -> None:
    """Event ids route as UUIDs: anything else, a trailing line break included, matches no route."""
    event_id = api.get("/v1/events", "auditor", limit=1).json()["events"][0]["event"]["event_id"]
    assert api.get(f"/v1/events/{event_id}", "auditor").status_code == 200
    before = stored_log(api)
    refused(api, api.get(f"/v1/events/{event_id}%0A", "auditor"), before, 404)


# Item 14: cursors.


def cursor_of(values: Any) -> str:
    """A cursor written by hand: URL-safe base64 of JSON, without padding."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def history(api: Api, cadre_id: str = "C1", **parameters: Any) -> Any:
    return api.get(f"/v1/cadres/{cadre_id}/history", "reader", **parameters)


def test_forged_history_cursors_are_a_422_cursor_invalid_not_an_empty_last_page(api: Api) -> None:
    first = history(api, limit=1).json()
    position = first["position"]
    registered = first["entries"][0]
    real = first["next_cursor"]
    assert real == cursor_of(["history", "C1", TODAY, position, "2024-01-01", registered["position"]])
    forged = {
        "an empty list": cursor_of([]),
        "two numbers": cursor_of([1, 2]),
        "the old shape": cursor_of(["2024-01-01", registered["position"]]),
        "an object": cursor_of({}),
        "null": cursor_of(None),
        "a rankings cursor": cursor_of(["all", TODAY, "2025-09-30", position, 1, "total", "", ""]),
        "no such entry": cursor_of(
            ["history", "C1", TODAY, position, "2024-01-01", registered["position"] + 1]
        ),
        "a position beyond the log": cursor_of(["history", "C1", TODAY, 10**9, "2024-01-01", 2]),
        "a negative position": cursor_of(["history", "C1", TODAY, -1, "2024-01-01", 2]),
        "another date spelling": cursor_of(["history", "C1", "20251215", position, "2024-01-01", 2]),
        "the real one padded": real + "=" * (-len(real) % 4) if len(real) % 4 else real + "====",
        "the real one with a line break": real + "\n",
        "not base64": "!!!!",
        "base64 of nothing": "",
    }
    before = stored_log(api)
    for name, cursor in forged.items():
        problem = refused(api, history(api, cursor=cursor), before, 422)
        assert (problem["rule"], problem["field"]) == ("cursor_invalid", "cursor"), name


def test_a_history_cursor_is_refused_for_another_cadre_date_or_position(api: Api) -> None:
    first = history(api, limit=1, as_of="2025-06-30").json()
    cursor = first["next_cursor"]
    before = stored_log(api)
    for cadre_id, parameters in (
        ("C2", {}),
        ("C1", {"as_of": "2025-07-01"}),
        ("C1", {"known_at": str(first["position"] - 1)}),
    ):
        problem = refused(api, history(api, cadre_id, cursor=cursor, **parameters), before, 422)
        assert problem["rule"] == "cursor_invalid", (cadre_id, parameters)
    # The same cadre, date and position, given again, are accepted.
    again = history(api, cursor=cursor, as_of="2025-06-30", known_at=str(first["position"]))
    assert again.status_code == 200, again.text[:300]


def test_history_pages_keep_the_date_and_position_of_the_first_page_while_the_log_grows(api: Api) -> None:
    """Page one of C1's history, then an award dated before page one's last entry is recorded, then page
    two: it continues the first read (its position, its date), so the new award shows on neither."""
    first = history(api, limit=1).json()
    assert [entry["type"] for entry in first["entries"]] == ["cadre.registered"]
    earlier = merit(effective_on="2024-01-02")
    assert post(api, "/v1/events", batch(earlier)).status_code == 201
    rest = history(api, cursor=first["next_cursor"]).json()
    assert (rest["position"], rest["known_at"], rest["as_of"]) == (first["position"],) * 2 + (TODAY,)
    assert earlier["source"]["key"] not in {entry["source"]["key"] for entry in rest["entries"]}
    whole_then = history(api, known_at=str(first["position"])).json()
    assert first["entries"] + rest["entries"] == whole_then["entries"]
    assert rest["next_cursor"] is None


def test_the_log_listing_refuses_an_after_beyond_the_head(api: Api) -> None:
    head = stored_log(api)[1]
    at_head = api.get("/v1/events", "auditor", after=str(head)).json()
    assert (at_head["events"], at_head["next_after"]) == ([], None)
    before = stored_log(api)
    for after in (head + 1, 10**17):
        problem = refused(api, api.get("/v1/events", "auditor", after=str(after)), before, 422)
        assert (problem["rule"], problem["field"]) == ("after_beyond_log", "after")


# A hostile pass over the POST routes: never a 5xx, never a record.

# Each route's smallest document of the right shape, with TEXT where a string goes.
DOCUMENTS = {"/v1/events": b'{"events": [{"note": "TEXT"}]}', "/v1/policies": b'{"body": "TEXT"}'}
# name: (body, with DOCUMENTS[route] for DOC, and the status expected)
HOSTILE_BODIES: dict[str, tuple[bytes, int]] = {
    "empty": (b"", 400),
    "only whitespace": (b" \r\n\t", 400),
    "null": (b"null", 422),
    "a number": (b"123", 422),
    "a string": (b'"a string"', 422),
    "an array": (b"[]", 422),
    "an empty object": (b"{}", 422),
    "a NUL byte": (b"\x00", 400),
    "a NUL byte inside a string": (b"DOC", 400),
    "a NUL byte after the document": (b"DOC\x00", 400),
    "a byte order mark": (b"\xef\xbb\xbfDOC", 400),
    "UTF-16 with its byte order mark": (b"UTF16-BOM", 400),
    "UTF-16 without one": (b"UTF16-LE", 400),
    "two documents": (b"DOCDOC", 400),
    "trailing garbage": (b"DOC x", 400),
    "10 MB": (b"DOC", 413),
}


def hostile_body(name: str, route: str) -> bytes:
    body, _status = HOSTILE_BODIES[name]
    text = {"a NUL byte inside a string": b"a\x00b", "10 MB": b" " * (10 * 1024 * 1024)}.get(name, b"a")
    document = DOCUMENTS[route].replace(b"TEXT", text)
    if body.startswith(b"UTF16"):
        return document.decode().encode("utf-16" if body == b"UTF16-BOM" else "utf-16-le")
    return body.replace(b"DOC", document)


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
@pytest.mark.parametrize("route", ["/v1/events", "/v1/policies"])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
def test_a_malformed_body_on_a_post_route_is_a_4xx_problem_and_records_nothing(
    api: Api, route: str, name: str, content_type: str
) -> None:
    before = stored_log(api)
    who = "any" if route == "/v1/events" else "admin"
    response = post(api, route, hostile_body(name, route), who=who, content_type=content_type)
    refused(api, response, before, HOSTILE_BODIES[name][1])


def test_a_json_body_under_another_declared_type_is_read_as_json(api: Api) -> None:
    """The handlers read the raw body whatever Content-Type says (curl -d sends a form type)."""
    before = stored_log(api)
    response = post(api, "/v1/events", batch(merit()), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201, response.text[:300]
    assert stored_log(api)[0] == before[0] + 1
