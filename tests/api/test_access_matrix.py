"""Every route × every credential: no key, malformed, unknown, wrong secret, a revoked key of each role,
each role, and a poster of another system (SPEC §12 Access).

Each route is called with a request it would accept from the right key; the table says which role that
is. Credentials that do not authenticate get 401 with `WWW-Authenticate`; keys of a role that may not call
the route get 403; the right roles get a 2xx. A route added to the app without a row here fails
`test_every_v1_route_is_in_the_matrix`.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.access import Role
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.policy.load import illustrative_policy_text
from tests.api.conftest import HR, Api

ROLES_ALLOWED = {
    "poster": {"poster"},
    "reader": {"reader", "auditor", "admin"},
    "auditor": {"auditor", "admin"},
    "admin": {"admin"},
}
NOT_AUTHENTICATED = ("none", "malformed", "unknown", "wrong_secret", "revoked")
AUTHENTICATED = ("poster", "other_system", "reader", "auditor", "admin")

MERIT = {
    "type": "merit.awarded",
    "cadre_id": "C1",
    "effective_on": "2025-03-01",
    "source": {"system": HR, "key": "matrix-merit"},
    "award": "citation",
    "level": "unit",
}

# (method, path template, required role, query or body)
ROUTES: list[tuple[str, str, str, Any]] = [
    ("POST", "/v1/events", "poster", {"events": [MERIT]}),
    ("GET", "/v1/events", "auditor", {"limit": 5}),
    ("GET", "/v1/events/{event_id}", "auditor", {}),
    ("GET", "/v1/cadres/C1", "reader", {}),
    ("GET", "/v1/cadres/C1/history", "reader", {}),
    ("GET", "/v1/cadres/C1/eligibility", "reader", {}),
    ("GET", "/v1/rankings", "reader", {"scope": "unit:U1"}),
    ("GET", "/v1/eligibility", "reader", {}),
    ("GET", "/v1/recalls", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/boards", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/escalations", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/units/rankings", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/units/escalations", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/units/U1", "reader", {}),
    ("GET", "/v1/exports/rankings", "reader", {"scope": "unit:U1"}),
    ("GET", "/v1/exports/eligibility", "reader", {}),
    ("GET", "/v1/exports/recalls", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/exports/boards", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/exports/escalations", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/exports/cadres/C1/history", "reader", {}),
    ("GET", "/v1/exports/cadres/C1/eligibility", "reader", {"format": "csv"}),
    ("GET", "/v1/exports/units/rankings", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/exports/units/escalations", "reader", {"period": "2025Q3"}),
    ("GET", "/v1/exports/units/U1", "reader", {}),
    ("GET", "/v1/audit/verify", "auditor", {}),
    ("GET", "/v1/audit/checkpoint", "auditor", {}),
    ("GET", "/v1/audit/proofs/inclusion", "auditor", {"position": 2}),
    ("GET", "/v1/audit/proofs/consistency", "auditor", {"first": 1}),
    ("GET", "/v1/policies", "reader", {}),
    ("GET", "/v1/policies/illustrative-3", "reader", {}),
    ("POST", "/v1/policies", "admin", {"body": illustrative_policy_text()}),
]


def call(api: Api, method: str, template: str, payload: Any, who: str) -> Any:
    path = template.format(event_id=api.ledger.events(after=1, limit=1)[0].event.event_id)
    if method == "POST":
        return api.post(path, who, payload)
    return api.get(path, who, **payload)


@pytest.mark.parametrize("who", NOT_AUTHENTICATED)
@pytest.mark.parametrize(
    ("method", "template", "role", "payload"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_a_request_without_a_valid_active_key_is_refused_with_401(
    shared_api: Api, method: str, template: str, role: str, payload: Any, who: str
) -> None:
    head = shared_api.ledger.head()
    response = call(shared_api, method, template, payload, who)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401
    assert shared_api.ledger.head() == head


@pytest.mark.parametrize("who", AUTHENTICATED)
@pytest.mark.parametrize(
    ("method", "template", "role", "payload"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_a_key_answers_2xx_where_its_role_allows_and_403_elsewhere(
    shared_api: Api, method: str, template: str, role: str, payload: Any, who: str
) -> None:
    response = call(shared_api, method, template, payload, who)
    held = "poster" if who == "other_system" else who
    allowed = held in ROLES_ALLOWED[role] and not (who == "other_system" and template == "/v1/events")
    if allowed:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        problem = response.json()
        assert problem["status"] == 403
        expected_rule = (
            "system_not_allowed" if who == "other_system" and role == "poster" else "role_not_allowed"
        )
        assert problem["rule"] == expected_rule


@pytest.fixture(scope="module")
def revoked_of_every_role(shared_api: Api) -> Api:
    """The shared app with a revoked key of every role as credential `revoked_<role>` (the fixtures revoke
    a reader's only); the poster's had the grants the matrix's merit needs."""
    for role in Role:
        grants: dict[str, Any] = (
            {"system": HR, "event_types": ["merit.awarded"]} if role is Role.poster else {}
        )
        issued = shared_api.keys.create(f"revoked-{role.value}", role, **grants)
        shared_api.keys.revoke(issued.key.key_id)
        shared_api.tokens[f"revoked_{role.value}"] = issued.token
    return shared_api


@pytest.mark.parametrize("role", [role.value for role in Role])
@pytest.mark.parametrize(
    ("method", "template", "required", "payload"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_a_revoked_key_of_any_role_is_refused_with_401_even_where_its_role_was_allowed(
    revoked_of_every_role: Api, method: str, template: str, required: str, payload: Any, role: str
) -> None:
    api = revoked_of_every_role
    head = api.ledger.head()
    response = call(api, method, template, payload, f"revoked_{role}")
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.ledger.head() == head


def test_every_v1_route_is_in_the_matrix(shared_api: Api) -> None:
    served = {
        (method, route.path.replace("{event_id:uuid}", "{event_id}").replace(":str}", "}"))
        for route in shared_api.app.routes
        if route.path.startswith("/v1")
        for method in getattr(route, "methods", ())
        if method != "OPTIONS"
    }
    listed = {(method, _generic(template)) for method, template, _, _ in ROUTES}
    assert served == listed


def _generic(template: str) -> str:
    return (
        template.replace("/C1", "/{cadre_id}")
        .replace("/units/U1", "/units/{unit_id}")
        .replace("illustrative-3", "{version}")
    )


@pytest.mark.parametrize(
    ("method", "template", "role", "payload"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES]
)
def test_options_answers_every_route_without_a_key(
    shared_api: Api, method: str, template: str, role: str, payload: Any
) -> None:
    path = template.format(event_id=shared_api.ledger.events(after=1, limit=1)[0].event.event_id)
    response = shared_api.client.options(path)
    assert response.status_code == 204
    assert method in response.headers["allow"]


def test_public_routes_need_no_key(shared_api: Api) -> None:
    for path in ("/health/live", "/health/ready", "/schema/openapi.json", "/schema"):
        assert shared_api.client.get(path).status_code == 200, path


def test_a_poster_key_cannot_post_an_event_type_it_was_not_granted(shared_api: Api) -> None:
    deduction = {
        "type": "deduction.applied",
        "cadre_id": "C1",
        "effective_on": "2025-03-01",
        "source": {"system": HR, "key": "matrix-deduction"},
        "kind": "criticism",
        "level": "unit",
    }
    head = shared_api.ledger.head()
    response = shared_api.post("/v1/events", "poster", {"events": [MERIT, deduction]})
    assert response.status_code == 403
    problem = response.json()
    assert (problem["rule"], problem["item"], problem["field"]) == ("event_type_not_allowed", 1, "type")
    assert shared_api.ledger.head() == head


def test_a_poster_key_cannot_post_as_another_system_even_for_one_item(shared_api: Api) -> None:
    other = {**MERIT, "source": {"system": "discipline", "key": "matrix-other"}}
    head = shared_api.ledger.head()
    response = shared_api.post("/v1/events", "poster", {"events": [MERIT, other]})
    assert response.status_code == 403
    assert (response.json()["rule"], response.json()["item"]) == ("system_not_allowed", 1)
    assert shared_api.ledger.head() == head


def test_a_key_sent_with_another_scheme_is_refused(shared_api: Api) -> None:
    token = shared_api.tokens["reader"]
    for header in (f"Basic {token}", token, "Bearer ", "Bearer " + "x" * 300):
        response = shared_api.client.get("/v1/policies", headers={"Authorization": header})
        assert response.status_code == 401, header
