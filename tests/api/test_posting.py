"""POST /v1/events (SPEC §6, §9): idempotent atomic batches, strict decoding, nothing recorded on refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.api.settings import BODY_SIZE_MAX
from tests.api.conftest import HR, Api


def merit(key: str, cadre_id: str = "C1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "merit.awarded",
        "cadre_id": cadre_id,
        "effective_on": "2025-03-01",
        "source": {"system": HR, "key": key},
        "award": "citation",
        "level": "unit",
        **fields,
    }


def refused(api: Api, body: Any, status: int, *, who: str = "poster") -> dict[str, Any]:
    """Post `body`, expect a problem document with `status`, and check that nothing was recorded."""
    head = api.ledger.head()
    response = api.post("/v1/events", who, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()
    assert api.ledger.head() == head, "a refused request records nothing"
    return problem


def test_a_new_batch_is_recorded_with_201_and_each_item_placed_and_scored(api: Api) -> None:
    head = api.ledger.head()
    response = api.post("/v1/events", "poster", {"events": [merit("m1"), merit("m2", cadre_id="C2")]})
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["position"] == head + 2
    assert [item["position"] for item in document["results"]] == [head + 1, head + 2]
    assert all(item["replayed"] is False and len(item["hash"]) == 64 for item in document["results"])
    assert all(isinstance(item["points"], str) for item in document["results"])


def test_posted_events_carry_the_keys_principal_as_posted_by(api: Api) -> None:
    api.post("/v1/events", "poster", {"events": [merit("m1")]})
    history = api.get("/v1/cadres/C1/history", "reader").json()
    assert history["entries"][-1]["posted_by"] == "hr-sync"


def test_replaying_every_item_answers_200_with_the_original_results(api: Api) -> None:
    body = {"events": [merit("m1"), merit("m2")]}
    first = api.post("/v1/events", "poster", body).json()
    head = api.ledger.head()
    again = api.post("/v1/events", "poster", body)
    assert again.status_code == 200
    assert api.ledger.head() == head
    replayed = again.json()["results"]
    assert [item["replayed"] for item in replayed] == [True, True]
    assert [(i["event_id"], i["position"], i["hash"]) for i in replayed] == [
        (i["event_id"], i["position"], i["hash"]) for i in first["results"]
    ]


def test_a_batch_with_one_new_item_among_replays_answers_201(api: Api) -> None:
    api.post("/v1/events", "poster", {"events": [merit("m1")]})
    response = api.post("/v1/events", "poster", {"events": [merit("m1"), merit("m2")]})
    assert response.status_code == 201
    assert [item["replayed"] for item in response.json()["results"]] == [True, False]


def test_a_key_reused_with_other_content_is_a_409_naming_the_item(api: Api) -> None:
    api.post("/v1/events", "poster", {"events": [merit("m1")]})
    problem = refused(api, {"events": [merit("m2"), merit("m1", level="county")]}, 409)
    assert (problem["item"], problem["system"], problem["key"]) == (1, HR, "m1")
    assert problem["rule"] == "exists_with_different_content"


def test_malformed_json_is_a_400(api: Api) -> None:
    problem = refused(api, b'{"events": [', 400)
    assert problem["rule"] == "json_malformed"


def test_an_empty_body_is_a_400(api: Api) -> None:
    refused(api, b"", 400)


@pytest.mark.parametrize(
    ("event", "field", "rule"),
    [
        (merit("f", points=1.5, override_reason="x"), "points", "points_must_be_decimal_string"),
        (merit("f", points=2), "points", "points_must_be_decimal_string"),
        (merit("f", colour="red"), "colour", "field_invalid"),
        (merit("f", effective_on=0), "effective_on", "field_invalid"),
        (merit("f", effective_on="2025-02-30"), "effective_on", "field_invalid"),
        (merit("f", level="galactic"), "level", "field_invalid"),
        (merit("f", cadre_id="C 1"), "cadre_id", "field_invalid"),
        (merit("f", source={"system": HR}), "source.key", "field_invalid"),
        (merit("f", event_id="1b4e28ba-2fa1-11d2-883f-0016d3cca427"), "event_id", "server_field_not_allowed"),
        ({**merit("f"), "type": "merit.invented"}, "type", "event_type_unknown"),
        (merit("f", cadre_id="NOBODY"), "cadre_id", "cadre_must_be_registered"),
        (merit("f", effective_on="2030-01-01"), "effective_on", "effective_on_must_not_be_in_future"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_invalid_content_is_a_422_naming_the_item_and_field(
    api: Api, event: dict[str, Any], field: str, rule: str
) -> None:
    problem = refused(api, {"events": [merit("ok"), event]}, 422)
    assert problem["item"] == 1
    assert problem["field"] == field
    assert problem["rule"] == rule


def test_a_string_where_a_number_is_expected_is_not_coerced(api: Api) -> None:
    appraisal = {
        "type": "appraisal.recorded",
        "cadre_id": "C1",
        "effective_on": "2025-03-01",
        "source": {"system": HR, "key": "a1"},
        "year": "2024",
        "result": "competent",
    }
    problem = refused(api, {"events": [appraisal]}, 422)
    assert (problem["item"], problem["field"]) == (0, "year")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": [merit("a")], "extra": 1}, "extra"),
        ({}, "events"),
        ([merit("a")], None),
        ({"events": {"0": merit("a")}}, "events"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_422(api: Api, body: Any, field: str | None) -> None:
    problem = refused(api, body, 422)
    assert problem.get("field") == field


def test_a_batch_over_1000_items_is_a_422_without_decoding_them(api: Api) -> None:
    body = {"events": [merit(f"k{i}") for i in range(1_001)]}
    problem = refused(api, body, 422)
    assert (problem["field"], problem["rule"]) == ("events", "batch_too_large")


def test_a_batch_of_1000_items_is_recorded(api: Api) -> None:
    body = {"events": [merit(f"k{i}", effective_on=f"2025-{1 + i % 11:02d}-01") for i in range(1_000)]}
    response = api.post("/v1/events", "poster", body)
    assert response.status_code == 201, response.text[:500]
    assert len(response.json()["results"]) == 1_000


def test_a_body_over_1_mib_is_a_413(api: Api) -> None:
    padding = "x" * (2 * BODY_SIZE_MAX)
    body = json.dumps({"events": [merit("big", note=padding)]}).encode()
    problem = refused(api, body, 413)
    assert "1 MiB" in problem["detail"]


def test_a_refused_batch_records_none_of_its_valid_items(api: Api) -> None:
    refused(api, {"events": [merit("v1"), merit("v2"), merit("bad", cadre_id="NOBODY")]}, 422)
    again = api.post("/v1/events", "poster", {"events": [merit("v1")]})
    assert again.status_code == 201, "v1 was not recorded by the refused batch"


def test_a_reader_key_cannot_post(api: Api) -> None:
    problem = refused(api, {"events": [merit("r1")]}, 403, who="reader")
    assert problem["rule"] == "role_not_allowed"


def test_an_admin_key_cannot_post_events_either(api: Api) -> None:
    refused(api, {"events": [merit("r1")]}, 403, who="admin")
