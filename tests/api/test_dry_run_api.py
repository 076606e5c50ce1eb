"""`POST /v1/events?dry_run=true`: every item decided as a post would, every error listed, none recorded."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


def merit(cadre_id: str, key: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "merit.awarded",
        "cadre_id": cadre_id,
        "effective_on": "2025-03-01",
        "source": {"system": "hr", "key": key},
        "award": "merit_third_class",
        "level": "county",
    } | changes


def test_a_dry_run_with_three_bad_items_of_five_lists_the_three_and_records_nothing(api: Api) -> None:
    head = api.ledger.head()
    events = [
        merit("C1", "dry-1"),
        merit("C1", "dry-2", effective_on="2025-02-30"),  # no such day: does not decode
        merit("C404", "dry-3"),  # a cadre never registered
        merit("C2", "merit-C2"),  # the seed's source, with other content
        merit("C2", "dry-5", award="citation", level="municipal"),
    ]
    response = api.post("/v1/events?dry_run=true", "poster", {"events": events})
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["valid"] is False and document["position"] == head
    outcomes = [(item["item"], item["outcome"], item["points"]) for item in document["items"]]
    # merit_third_class at county counts 2.00, a citation at municipal level 2.00 (the packaged policy).
    assert outcomes == [
        (0, "new", "2.00"),
        (1, "invalid", None),
        (2, "invalid", None),
        (3, "conflict", None),
        (4, "new", "2.00"),
    ]
    errors = [
        (i["item"], i["error"]["rule"], i["error"]["field"], i["error"]["status"])
        for i in document["items"]
        if i["error"] is not None
    ]
    assert errors == [
        (1, "field_invalid", "effective_on", 422),
        (2, "cadre_must_be_registered", "cadre_id", 422),
        (3, "exists_with_different_content", "source.key", 409),
    ]
    assert document["items"][0]["error"] is None and document["items"][0]["event_id"] is None
    assert api.ledger.head() == head


def test_a_valid_dry_run_says_what_the_post_then_records(api: Api) -> None:
    events = [
        merit("C1", "dry-a"),
        merit("C3", "dry-b", award="citation"),
        merit("C1", "merit-C1", award="citation"),
    ]
    # The last item is the seed's own merit of C1 again (a citation at county level, 2024-06-01).
    events[2] |= {"effective_on": "2024-06-01"}
    dry = api.post("/v1/events?dry_run=true", "poster", {"events": events}).json()
    assert dry["valid"] is True
    assert [(i["outcome"], i["points"]) for i in dry["items"]] == [
        ("new", "2.00"),
        ("new", "1.00"),
        ("replay", "1.00"),
    ]
    replayed = api.ledger.event(dry["items"][2]["event_id"])
    assert replayed.position == dry["items"][2]["position"]
    posted = api.post("/v1/events", "poster", {"events": events})
    assert posted.status_code == 201, posted.text
    assert [(i["points"], i["replayed"]) for i in posted.json()["results"]] == [
        ("2.00", False),
        ("1.00", False),
        ("1.00", True),
    ]


def test_a_dry_run_as_another_system_is_refused_as_a_post_is(api: Api) -> None:
    head = api.ledger.head()
    response = api.post("/v1/events?dry_run=true", "other_system", {"events": [merit("C1", "dry-x")]})
    assert response.status_code == 403, response.text
    assert response.json()["rule"] == "system_not_allowed" and response.json()["item"] == 0
    assert api.ledger.head() == head


def test_a_dry_run_of_a_body_that_is_not_json_is_a_400_as_a_post_is(api: Api) -> None:
    response = api.post("/v1/events?dry_run=true", "poster", b'{"events": [')
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_dry_run_needs_a_poster_key(api: Api) -> None:
    response = api.post("/v1/events?dry_run=true", "reader", {"events": [merit("C1", "dry-r")]})
    assert response.status_code == 403


def test_a_misspelt_or_repeated_dry_run_records_nothing_and_is_refused(api: Api) -> None:
    head = api.ledger.head()
    body = {"events": [merit("C1", "typo-1")]}
    for query, field, rule in [
        ("dryrun=true", "dryrun", "query_parameter_unknown"),
        ("dry-run=true", "dry-run", "query_parameter_unknown"),
        ("DRY_RUN=true", "DRY_RUN", "query_parameter_unknown"),
        ("dry_run=true&dry_run=false", "dry_run", "query_parameter_repeated"),
    ]:
        response = api.post(f"/v1/events?{query}", "poster", body)
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert (response.json()["field"], response.json()["rule"]) == (field, rule), query
    assert api.ledger.head() == head


def test_a_source_key_twice_in_a_body_names_the_body_item_that_has_it_first(api: Api) -> None:
    # Item 0 does not decode: items 1 and 2 are the check's 0th and 1st; the answer numbers the body.
    events = [
        merit("C1", "twice-0", effective_on="2025-02-30"),
        merit("C1", "twice-1"),
        merit("C1", "twice-1", award="citation"),
    ]
    document = api.post("/v1/events?dry_run=true", "poster", {"events": events}).json()
    conflict = document["items"][2]
    assert conflict["outcome"] == "conflict"
    assert conflict["error"]["detail"].endswith("(first as item 1)"), conflict
