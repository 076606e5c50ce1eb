"""Whole reads over HTTP, on both stores: a city's ranking (5,000 cadres) in one answer, cursors that stay on
their first page's snapshot while events are posted, and the limits in the OpenAPI document.

The city and its hand-sorted ranking come from `tests/integration/test_whole_reads.py` (see there how
the expected answers are computed without the code under test).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.problems import PROBLEM_MEDIA_TYPE
from ledger.api.services import ReadModels, Services
from ledger.api.settings import PAGE_SIZE_MAX, VIEW_PAGE_SIZE_MAX
from tests.conftest import drop_schema, fixed_clock, require_postgres
from tests.integration.test_whole_reads import (
    CADRES,
    Expected,
    Planned,
    city_events,
    expected_ranking,
    expected_shortlist,
    plan,
    post_all,
)

READ_MODELS_OPEN_SECONDS = 60.0
RANKINGS, SHORTLIST = "/v1/rankings", "/v1/eligibility"


@dataclass
class HttpCity:
    client: TestClient[Litestar]
    read_models: ReadModels
    cadres: list[Planned]
    position: int
    reader: dict[str, str]
    poster: dict[str, str]
    auditor: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.reader)


def _serve(url: str) -> Iterator[HttpCity]:
    cadres = plan()
    with Ledger.open(url, clock=fixed_clock) as ledger, KeyStore.open(url) as keys:
        position = post_all(ledger, city_events(cadres))
        tokens = {
            "reader": keys.create("reader", Role.reader).token,
            "poster": keys.create(
                "hr-sync", Role.poster, system="hr", event_types=["cadre.registered", "merit.awarded"]
            ).token,
            "auditor": keys.create("auditor", Role.auditor).token,
        }
        position = ledger.head()  # keys are recorded in the log too
        read_models = ReadModels(ledger)
        app = create_app(ApiSettings(database_url=url), services=Services(ledger, keys, read_models))
        with TestClient(app) as client:
            assert read_models.wait(READ_MODELS_OPEN_SECONDS), read_models.failure
            yield HttpCity(
                client,
                read_models,
                cadres,
                position,
                *({"Authorization": f"Bearer {tokens[who]}"} for who in ("reader", "poster", "auditor")),
            )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpCity]:
    """The city on each store behind an app, once per module (only the last test posts)."""
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path_factory.mktemp('whole-api') / 'ledger.db'}")
        return
    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    try:
        yield from _serve(f"{base}{separator}schema={schema}")
    finally:
        drop_schema(base, schema)


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    document: dict[str, Any] = response.json()
    return document


def wire(expected: list[Expected]) -> list[tuple[int, str, str, str]]:
    """The expected entries as they travel: decimals as strings with two places."""
    return [(entry.rank, entry.cadre_id, entry.unit_id, f"{entry.total:.2f}") for entry in expected]


def rows(entries: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    return [(entry["rank"], entry["cadre_id"], entry["unit_id"], entry["total"]) for entry in entries]


def pages(city: HttpCity, path: str, limit: int, **first: Any) -> list[list[dict[str, Any]]]:
    answer = ok(city.get(path, limit=limit, **first))
    found = [answer["entries"]]
    while answer["next_cursor"] is not None:
        answer = ok(city.get(path, cursor=answer["next_cursor"], limit=limit))
        found.append(answer["entries"])
    return found


def joined(found: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [entry for page in found for entry in page]


def test_the_view_limit_is_the_librarys() -> None:
    from ledger.projections.service import PAGE_SIZE_MAX as LIBRARY_PAGE_SIZE_MAX

    assert VIEW_PAGE_SIZE_MAX == LIBRARY_PAGE_SIZE_MAX == CADRES == 5_000
    assert PAGE_SIZE_MAX == 1_000  # the log and histories keep theirs


def test_a_whole_city_ranking_is_one_answer(city: HttpCity) -> None:
    answer = ok(city.get(RANKINGS, limit=VIEW_PAGE_SIZE_MAX, known_at=str(city.position)))
    assert answer["next_cursor"] is None and answer["position"] == city.position
    assert rows(answer["entries"]) == wire(expected_ranking(city.cadres))
    assert all(isinstance(entry["components"]["merit"], str) for entry in answer["entries"])


@pytest.mark.parametrize("limit", [7, 1_000])
def test_pages_of_a_ranking_concatenate_to_the_whole_answer(city: HttpCity, limit: int) -> None:
    found = pages(city, RANKINGS, limit, known_at=str(city.position))
    assert [len(page) for page in found[:-1]] == [limit] * (len(found) - 1)
    whole = ok(city.get(RANKINGS, limit=VIEW_PAGE_SIZE_MAX, known_at=str(city.position)))["entries"]
    assert joined(found) == whole
    assert rows(joined(found)) == wire(expected_ranking(city.cadres))


def test_a_whole_shortlist_is_one_answer_and_its_pages(city: HttpCity) -> None:
    expected = wire(expected_shortlist(expected_ranking(city.cadres)))
    whole = ok(city.get(SHORTLIST, limit=VIEW_PAGE_SIZE_MAX, known_at=str(city.position)))
    assert whole["next_cursor"] is None
    assert [(e["rank"], e["cadre_id"], e["unit_id"], e["total"]) for e in whole["entries"]] == expected
    assert joined(pages(city, SHORTLIST, 250, known_at=str(city.position))) == whole["entries"]


@pytest.mark.parametrize("path", [RANKINGS, SHORTLIST])
@pytest.mark.parametrize("limit", ["5001", "0", "100000"])
def test_a_view_limit_outside_1_to_5000_is_a_422_naming_limit(city: HttpCity, path: str, limit: str) -> None:
    problem = problem_of(city.get(path, limit=limit), 422)
    assert problem["field"] == "limit"


def test_the_log_and_histories_keep_their_limit_of_1000(city: HttpCity) -> None:
    history = city.client.get("/v1/cadres/C00001/history", params={"limit": "1001"}, headers=city.reader)
    assert problem_of(history, 422)["field"] == "limit"
    log = city.client.get("/v1/events", params={"limit": "1001"}, headers=city.auditor)
    assert problem_of(log, 422)["field"] == "limit"


def test_the_openapi_document_states_each_routes_limit(city: HttpCity) -> None:
    document = ok(city.client.get("/schema/openapi.json"))

    def limit_of(path: str) -> dict[str, Any]:
        parameters = document["paths"][path]["get"]["parameters"]
        found: dict[str, Any] = next(p for p in parameters if p["name"] == "limit")["schema"]
        return found

    for path in (RANKINGS, SHORTLIST):
        assert (limit_of(path)["minimum"], limit_of(path)["maximum"]) == (1, 5_000)
    for path in ("/v1/cadres/{cadre_id}/history", "/v1/events"):
        assert (limit_of(path)["minimum"], limit_of(path)["maximum"]) == (1, 1_000)


def test_a_cursor_after_the_servers_cache_is_cleared_gives_the_same_page(city: HttpCity) -> None:
    first = ok(city.get(RANKINGS, limit=600, known_at=str(city.position), scope="unit:U2"))
    kept = ok(city.get(RANKINGS, cursor=first["next_cursor"], limit=600))
    assert kept["next_cursor"] is None and kept["scope"] == "unit:U2"
    projections = city.read_models.get()
    projections.read_cache.clear()
    assert ok(city.get(RANKINGS, cursor=first["next_cursor"], limit=600)) == kept
    in_u2 = [entry for entry in expected_ranking(city.cadres) if entry.unit_id == "U2"]
    assert len(in_u2) == CADRES // 5 == len(first["entries"]) + len(kept["entries"])


def test_z_pages_read_while_events_are_posted_stay_on_the_first_pages_snapshot(city: HttpCity) -> None:
    first = ok(city.get(RANKINGS, limit=1_000))
    assert first["position"] == city.position, "no other test posts"
    expected = expected_ranking(city.cadres)
    bottom_id = expected[-1].cadre_id
    found, cursor = [first["entries"]], first["next_cursor"]
    for step in range(4):
        events = [
            {
                "type": "merit.awarded",
                "cadre_id": bottom_id,
                "effective_on": "2025-03-02",
                "source": {"system": "hr", "key": f"http-jump-{step}-{n}"},
                "award": "commendation",
                "level": "unit",
            }
            for n in range(3)
        ]
        posted = city.client.post("/v1/events", json={"events": events}, headers=city.poster)
        assert posted.status_code == 201, posted.text
        if step == 3:
            city.read_models.get().read_cache.clear()
        page = ok(city.get(RANKINGS, cursor=cursor, limit=1_000))
        assert page["position"] == city.position
        found.append(page["entries"])
        cursor = page["next_cursor"]
    assert cursor is None
    assert rows(joined(found)) == wire(expected)
    # Not vacuous: twelve commendations (9.60) take the last cadre to the top when read afresh.
    now = ok(city.get(RANKINGS, limit=1))
    assert now["entries"][0]["cadre_id"] == bottom_id
    assert Decimal(now["entries"][0]["total"]) == expected[-1].total + Decimal("9.60")
