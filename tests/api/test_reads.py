"""The read routes: history from the log, the log itself, verification, policies, health, read models."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.policy.load import illustrative_policy_text
from tests.api.conftest import HR, Api


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    document: dict[str, Any] = response.json()
    return document


# History, from the log.


def test_history_lists_a_cadres_entries_with_running_totals_and_the_position(shared_api: Api) -> None:
    history = shared_api.get("/v1/cadres/C1/history", "reader").json()
    assert history["cadre_id"] == "C1"
    assert history["position"] == shared_api.ledger.head()
    assert [entry["type"] for entry in history["entries"]] == [
        "cadre.registered",
        "merit.awarded",
        "appraisal.recorded",
    ]
    assert history["entries"][-1]["running_total"] == history["total"]
    assert history["entries"][0]["source"] == {"system": "hr", "key": "reg-C1"}
    assert history["next_cursor"] is None


def test_history_pages_with_an_opaque_cursor_until_it_is_null(shared_api: Api) -> None:
    seen: list[int] = []
    cursor = None
    for _page in range(5):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = shared_api.get("/v1/cadres/C1/history", "reader", **params).json()
        seen += [entry["position"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    full = shared_api.get("/v1/cadres/C1/history", "reader").json()
    assert seen == [entry["position"] for entry in full["entries"]]


def test_history_as_of_a_date_and_as_known_at_a_position(shared_api: Api) -> None:
    before_award = shared_api.get("/v1/cadres/C1/history", "reader", as_of="2024-05-31").json()
    assert [entry["type"] for entry in before_award["entries"]] == ["cadre.registered"]
    registered_at = before_award["entries"][0]["position"]
    known = shared_api.get("/v1/cadres/C1/history", "reader", known_at=str(registered_at)).json()
    assert known["known_at"] == registered_at
    assert len(known["entries"]) == 1


def test_history_known_at_an_instant_before_anything_was_recorded_is_a_404(shared_api: Api) -> None:
    response = shared_api.get("/v1/cadres/C1/history", "reader", known_at="2001-01-01T00:00:00Z")
    problem_of(response, 404)


def test_an_unknown_cadre_is_a_404(shared_api: Api) -> None:
    for path in ("/v1/cadres/NOBODY/history", "/v1/cadres/NOBODY", "/v1/cadres/NOBODY/eligibility"):
        problem_of(shared_api.get(path, "reader"), 404)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"known_at": "yesterday"}, "known_at"),
        ({"known_at": "2025-01-01T00:00:00"}, "known_at"),
        ({"as_of": "2025-13-01"}, "as_of"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
    ],
)
def test_bad_query_parameters_are_a_422_naming_the_parameter(
    shared_api: Api, params: dict[str, str], field: str
) -> None:
    problem = problem_of(shared_api.get("/v1/cadres/C1/history", "reader", **params), 422)
    assert problem["field"] == field


# The log.


def test_the_log_pages_in_position_order_with_hashes_that_chain(shared_api: Api) -> None:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = shared_api.get("/v1/events", "auditor", after=after, limit=3).json()
        events += page["events"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [event["position"] for event in events] == list(range(1, shared_api.ledger.head() + 1))
    assert events[0]["prev_hash"] == "0" * 64
    for previous, event in itertools.pairwise(events):
        assert event["prev_hash"] == previous["hash"]
    assert events[1]["event"]["type"] == "cadre.registered"
    assert events[1]["event"]["posted_by"] == "seed"


def test_one_event_is_read_by_its_id_with_its_hash_and_previous_hash(shared_api: Api) -> None:
    second = shared_api.get("/v1/events", "auditor", after=1, limit=1).json()["events"][0]
    event_id = second["event"]["event_id"]
    one = shared_api.get(f"/v1/events/{event_id}", "auditor").json()
    assert one == second


def test_an_unknown_event_id_is_a_404_and_a_malformed_one_matches_no_route(shared_api: Api) -> None:
    problem_of(shared_api.get("/v1/events/1b4e28ba-2fa1-11d2-883f-0016d3cca427", "auditor"), 404)
    problem_of(shared_api.get("/v1/events/not-a-uuid", "auditor"), 404)


# Verification.


def test_verify_answers_ok_with_the_head_hash(shared_api: Api) -> None:
    report = shared_api.get("/v1/audit/verify", "auditor").json()
    assert report["ok"] is True
    assert report["verified_through"] == shared_api.ledger.head()
    assert report["first_bad_position"] is None


def test_a_checkpoint_names_the_ledger_and_the_head(shared_api: Api) -> None:
    checkpoint = shared_api.get("/v1/audit/checkpoint", "auditor").json()
    assert checkpoint["ledger_id"] == shared_api.ledger.ledger_id
    report = shared_api.get("/v1/audit/verify", "auditor").json()
    assert checkpoint["tree_size"] == shared_api.ledger.head()
    assert (checkpoint["chain_hash"], checkpoint["root_hash"]) == (report["head_hash"], report["root_hash"])
    assert checkpoint["key_id"] is None and checkpoint["signature"] is None, "no signing key configured"


# Policies.


def test_policies_are_listed_and_read_with_their_text(shared_api: Api) -> None:
    listed = shared_api.get("/v1/policies", "reader").json()["policies"]
    assert [policy["version"] for policy in listed] == ["illustrative-3"]
    policy = shared_api.get("/v1/policies/illustrative-3", "reader").json()
    assert policy["body"] == illustrative_policy_text()
    problem_of(shared_api.get("/v1/policies/no-such-version", "reader"), 404)


def test_an_admin_publishes_a_policy_once_and_replays_it_after(api: Api) -> None:
    body = illustrative_policy_text().replace('version = "illustrative-3"', 'version = "local-2"')
    assert body != illustrative_policy_text()
    first = api.post("/v1/policies", "admin", {"body": body})
    assert first.status_code == 201, first.text
    again = api.post("/v1/policies", "admin", {"body": body})
    assert again.status_code == 200
    assert again.json()["results"][0]["replayed"] is True
    listed = api.get("/v1/policies", "reader").json()["policies"]
    assert listed[-1] == {
        "version": "local-2",
        "effective_from": listed[-1]["effective_from"],
        "published_on": "2025-12-15",
        "posted_by": "admin",
    }


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"body": ', 400, None),
        ({"body": "this is not toml ["}, 422, None),
        ({"body": "x", "version": "2"}, 422, "version"),
        ({"body": 7}, 422, "body"),
        ({}, 422, "body"),
    ],
)
def test_a_bad_policy_is_refused_and_nothing_is_published(
    api: Api, body: Any, status: int, field: str | None
) -> None:
    head = api.ledger.head()
    problem = problem_of(api.post("/v1/policies", "admin", body), status)
    assert problem.get("field") == field
    assert api.ledger.head() == head


# Health.


def test_health_answers_live_and_ready_with_the_positions(shared_api: Api) -> None:
    assert shared_api.client.get("/health/live").json()["status"] == "live"
    ready = shared_api.client.get("/health/ready").json()
    assert ready["status"] == "ready"
    assert ready["position"] == shared_api.ledger.head()


# The read models.


def test_a_cadre_reads_with_profile_and_standing(shared_api: Api) -> None:
    cadre = shared_api.get("/v1/cadres/C1", "reader").json()
    assert (cadre["cadre_id"], cadre["unit_id"], cadre["status"]) == ("C1", "U1", "active")
    history = shared_api.get("/v1/cadres/C1/history", "reader").json()
    assert cadre["total"] == history["total"]


def test_a_cadres_eligibility_lists_its_checks(shared_api: Api) -> None:
    verdict = shared_api.get("/v1/cadres/C1/eligibility", "reader").json()
    assert isinstance(verdict["eligible"], bool)
    assert verdict["checks"] and all(
        {"check", "passed", "detail"} <= check.keys() for check in verdict["checks"]
    )


def test_rankings_of_a_unit_page_with_a_cursor(shared_api: Api) -> None:
    first = shared_api.get("/v1/rankings", "reader", scope="unit:U1", limit=1).json()
    assert first["scope"] == "unit:U1"
    assert len(first["entries"]) == 1
    assert first["next_cursor"] is not None
    second = shared_api.get("/v1/rankings", "reader", cursor=first["next_cursor"], limit=1).json()
    assert second["next_cursor"] is None
    ids = {first["entries"][0]["cadre_id"], second["entries"][0]["cadre_id"]}
    assert ids == {"C1", "C2"}


def test_rankings_of_last_quarter_read_as_of_its_last_day(shared_api: Api) -> None:
    ranking = shared_api.get("/v1/rankings", "reader", scope="all", period="2025Q3").json()
    assert ranking["as_of"] == "2025-09-30"
    assert len(ranking["entries"]) == 3


def test_rankings_on_the_period_basis_count_only_the_points_of_the_period(shared_api: Api) -> None:
    """2025Q1 holds only the 2024 appraisals, dated 2025-01-10: C1 excellent 5.00, C2 and C3 competent 2.00
    each (tied on every tie-breaker: rank 2, 2). On the total basis the 2024 citations (1.00 each) count
    too: 6.00, 3.00, 3.00."""
    period = shared_api.get("/v1/rankings", "reader", period="2025Q1", basis="period").json()
    assert (period["basis"], period["since"], period["as_of"]) == ("period", "2025-01-01", "2025-03-31")
    assert [(e["rank"], e["cadre_id"], e["total"]) for e in period["entries"]] == [
        (1, "C1", "5.00"),
        (2, "C2", "2.00"),
        (2, "C3", "2.00"),
    ]
    total = shared_api.get("/v1/rankings", "reader", period="2025Q1").json()
    assert (total["basis"], total["since"]) == ("total", None)
    assert [e["total"] for e in total["entries"]] == ["6.00", "3.00", "3.00"]
    assert problem_of(shared_api.get("/v1/rankings", "reader", basis="gain"), 422)["field"] == "basis"


def test_an_unknown_unit_is_a_404_and_a_bad_scope_a_422(shared_api: Api) -> None:
    problem_of(shared_api.get("/v1/rankings", "reader", scope="unit:NOWHERE"), 404)
    assert problem_of(shared_api.get("/v1/rankings", "reader", scope="planet:mars"), 422)["field"] == "scope"


def test_the_shortlist_recalls_boards_and_escalations_answer_for_a_period(shared_api: Api) -> None:
    shortlist = shared_api.get("/v1/eligibility", "reader").json()
    assert shortlist["scope"] == "all"
    recalls = shared_api.get("/v1/recalls", "reader", period="2025Q3").json()
    assert recalls["scope"] == "unit:*"
    boards = shared_api.get("/v1/boards", "reader", period="2025Q3").json()
    assert {"red", "black"} <= boards.keys()
    assert (recalls["basis"], boards["basis"]) == ("period", "period"), "the illustrative policy's bases"
    assert not {e["cadre_id"] for e in boards["red"]} & {e["cadre_id"] for e in boards["black"]}
    escalations = shared_api.get("/v1/escalations", "reader", period="2025Q3", scope="all").json()
    assert escalations["escalations"] == [] or "step" in escalations["escalations"][0]


def test_a_period_is_required_and_must_be_well_formed(shared_api: Api) -> None:
    assert problem_of(shared_api.get("/v1/boards", "reader"), 422)["field"] == "period"
    assert problem_of(shared_api.get("/v1/boards", "reader", period="2025Q5"), 422)["field"] == "period"


def test_a_read_waits_for_min_position_and_sees_a_post_it_follows(api: Api) -> None:
    posted = api.post(
        "/v1/events",
        "poster",
        {
            "events": [
                {
                    "type": "merit.awarded",
                    "cadre_id": "C2",
                    "effective_on": "2025-03-01",
                    "source": {"system": HR, "key": "fresh"},
                    "award": "merit_first_class",
                    "level": "national",
                }
            ]
        },
    ).json()
    cadre = api.get("/v1/cadres/C2", "reader", min_position=posted["position"]).json()
    assert cadre["position"] >= posted["position"]
    history = api.get("/v1/cadres/C2/history", "reader").json()
    assert cadre["total"] == history["total"]


def test_a_min_position_the_log_has_not_reached_is_a_422_at_once(shared_api: Api) -> None:
    response = shared_api.get("/v1/rankings", "reader", min_position=shared_api.ledger.head() + 100)
    problem = problem_of(response, 422)
    assert (problem["field"], problem["rule"]) == ("min_position", "min_position_beyond_log")


def test_read_models_that_do_not_catch_up_in_time_answer_503_with_retry_after(
    shared_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.projections.service as service

    head = shared_api.ledger.head()
    projections = shared_api.app.state["services"].read_models.get()
    monkeypatch.setattr(service, "MIN_POSITION_WAIT_SECONDS_MAX", 0.05)
    # Read models stuck behind the log: catching up finds nothing new.
    monkeypatch.setattr(projections, "catch_up", lambda: head - 1)
    response = shared_api.get("/v1/rankings", "reader", min_position=head)
    problem = problem_of(response, 503)
    assert (problem["min_position"], problem["position"]) == (head, head - 1)
    assert response.headers["retry-after"] == "1"
