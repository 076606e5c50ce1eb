"""HTTP faces of units rated by enterprises (市场主体评部门): a survey system's poster key posts panels and
ratings; readers read unit rankings, escalations and a unit; refusals are problem documents that record
nothing.

The seeded ledger (tests/api/conftest.py) has C1, C2 in U1 and C3 — a principal leader — in U2; today is
2025-12-15. The illustrative policy rates on service / efficiency / integrity (0.4 / 0.3 / 0.3), needs 20
ratings, trims 5 % from each end (floor(20 × 0.05) = 1) and lists the bottom three.
"""

from __future__ import annotations

from typing import Any

from ledger.access import Role
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from tests.api.conftest import Api

SURVEY = "survey"
RATERS = [f"E{number:03d}" for number in range(1, 21)]


def panel(key: str = "panel-2025Q3", period: str = "2025Q3", on: str = "2025-09-25") -> dict[str, Any]:
    return {
        "type": "rating.panel_drawn",
        "effective_on": on,
        "source": {"system": SURVEY, "key": key},
        "period": period,
        "rater_kind": "enterprise",
        "raters": RATERS,
        "method": "sha256-lottery",
        "seed": "2025Q3-city",
    }


def rating(
    unit_id: str, rater: str, score: str, *, verdict: str = "satisfied", period: str = "2025Q3"
) -> dict[str, Any]:
    return {
        "type": "unit.rated",
        "effective_on": "2025-10-08",
        "source": {"system": SURVEY, "key": f"{period}-{unit_id}-{rater}"},
        "unit_id": unit_id,
        "period": period,
        "rater": {"kind": "enterprise", "id": rater},
        "score": score,
        "scores": {"service": score, "efficiency": score, "integrity": score},
        "verdict": verdict,
    }


def with_survey_key(api: Api) -> None:
    api.tokens[SURVEY] = api.keys.create(
        "survey-system", Role.poster, system=SURVEY, event_types=["rating.panel_drawn", "unit.rated"]
    ).token


def rated_quarter(api: Api) -> None:
    """U1: 20 ratings of 90 (2 dissatisfied); U2: 20 ratings of 70 (5 dissatisfied)."""
    with_survey_key(api)
    events = [panel()]
    for number, rater in enumerate(RATERS):
        events.append(rating("U1", rater, "90", verdict="dissatisfied" if number < 2 else "satisfied"))
        events.append(rating("U2", rater, "70", verdict="dissatisfied" if number < 5 else "satisfied"))
    response = api.post("/v1/events", SURVEY, {"events": events})
    assert response.status_code == 201, response.text


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    document: dict[str, Any] = response.json()
    return document


def test_a_survey_key_posts_a_panel_and_ratings_and_readers_see_the_ranking(api: Api) -> None:
    rated_quarter(api)
    view = api.get("/v1/units/rankings", "reader", period="2025Q3").json()
    # Trimmed mean of 20 equal scores is the score; both units are ranked (≥ 20 ratings).
    assert [
        (e["rank"], e["unit_id"], e["score"], e["ratings"], e["trimmed"], e["dissatisfied"])
        for e in view["entries"]
    ] == [
        (1, "U1", "90.00", 20, 1, 2),
        (2, "U2", "70.00", 20, 1, 5),
    ]
    # Two ranked units, bottom three: both are in it (no more units than the bottom's size).
    assert [e["in_bottom"] for e in view["entries"]] == [True, True]
    assert view["panel"]["size"] == 20 and view["panel"]["method"] == "sha256-lottery"
    assert view["policy_version"] == "illustrative-3" and view["previous_period"] == "2025Q2"


def test_escalations_name_the_principal_leader_and_a_unit_shows_its_periods(api: Api) -> None:
    rated_quarter(api)
    escalations = api.get("/v1/units/escalations", "reader", period="2025Q3").json()["escalations"]
    by_unit = {e["unit_id"]: e for e in escalations}
    assert set(by_unit) == {"U1", "U2"}
    assert (by_unit["U2"]["streak"], by_unit["U2"]["step"], by_unit["U2"]["action"]) == (
        1,
        1,
        "commitment_speech_and_summons_talk",
    )
    assert by_unit["U2"]["leader"] == {"cadre_id": "C3", "name": "张三"}
    assert by_unit["U2"]["consequence"] is None and by_unit["U2"]["consequence_posted"] is None
    assert by_unit["U1"]["leader"] is None  # nobody in U1 was registered as its principal leader
    unit = api.get("/v1/units/U2", "reader").json()
    assert [(p["period"], p["rank"], p["of"], p["streak"], p["step"]) for p in unit["periods"]] == [
        ("2025Q3", 2, 2, 1, 1)
    ]
    assert len(unit["ratings"]) == 20 and {r["score"] for r in unit["ratings"]} == {"70.00"}


def test_a_read_known_before_the_ratings_sees_none(api: Api) -> None:
    before = api.ledger.head()
    rated_quarter(api)
    view = api.get("/v1/units/rankings", "reader", period="2025Q3", known_at=str(before)).json()
    assert view["entries"] == [] and view["position"] == before and view["panel"] is None


def test_a_rating_from_a_rater_off_the_panel_is_refused_naming_the_field(api: Api) -> None:
    rated_quarter(api)
    head = api.ledger.head()
    document = problem_of(api.post("/v1/events", SURVEY, {"events": [rating("U1", "E999", "80")]}), 422)
    assert document["rule"] == "rater_not_on_panel" and document["field"] == "rater.id"
    assert api.ledger.head() == head


def test_a_poster_key_without_the_rating_types_may_not_post_them(api: Api) -> None:
    problem_of(api.post("/v1/events", "poster", {"events": [panel()]}), 403)


def test_a_bad_period_is_422_and_an_unknown_unit_404(api: Api) -> None:
    assert problem_of(api.get("/v1/units/rankings", "reader", period="2025Q5"), 422)["field"] == "period"
    problem_of(api.get("/v1/units/NOPE", "reader"), 404)
    problem_of(api.get("/v1/units/rankings", "none", period="2025Q3"), 401)


def test_the_calendars_first_period_has_no_previous_period(api: Api) -> None:
    response = api.get("/v1/units/rankings", "reader", period="0001Q1")
    assert response.status_code == 200, response.text
    assert (response.json()["previous_period"], response.json()["entries"]) == (None, [])


def test_a_unit_read_known_before_anything_placed_it_is_404(api: Api) -> None:
    rated_quarter(api)
    assert api.get("/v1/units/U2", "reader").status_code == 200
    problem_of(api.get("/v1/units/U2", "reader", known_at="1"), 404)  # position 1: the policy alone
