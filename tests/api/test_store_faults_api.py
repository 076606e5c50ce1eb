"""Store faults over HTTP (issue 10, items 9, 11): a 503 problem document with `Retry-After`, in bounded
time, never a 500 or a hang; reads keep answering; `/health/ready` says what is wrong.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from ledger import Ledger
from ledger.access import KeyStore
from ledger.api import ApiSettings, create_app
from ledger.api.services import ReadModels, Services
from ledger.domain.events import MeritAwarded, Source
from ledger.ledger import POSTS_WAITING_MAX
from ledger.store import recorders
from tests.api.conftest import READ_MODELS_OPEN_SECONDS, Api, open_api
from tests.conftest import fixed_clock
from tests.integration.test_store_faults import read_only_file, write_lock_held

MERIT = {
    "type": "merit.awarded",
    "cadre_id": "C1",
    "effective_on": "2024-07-01",
    "source": {"system": "hr", "key": "fault-1"},
    "award": "citation",
    "level": "county",
}


def merit(key: str) -> dict[str, Any]:
    return {**MERIT, "source": {"system": "hr", "key": key}}


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setattr(recorders, "WRITE_LOCK_WAIT_SECONDS", 1)
    with open_api(tmp_path) as opened:
        yield opened


def test_a_post_behind_a_held_write_lock_answers_503_with_retry_after_and_reads_answer(api: Api) -> None:
    head = api.ledger.head()
    with write_lock_held(api.url):
        answer = api.post("/v1/events", "poster", {"events": [merit("behind-lock")]})
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.json()["rule"] == "lock_busy"
        assert api.get("/v1/cadres/C1/history", "reader").status_code == 200
        ready = api.client.get("/health/ready")
        assert ready.status_code == 503 and "write lock" in ready.json()["detail"]
    assert api.ledger.head() == head
    assert api.client.get("/health/ready").status_code == 200
    assert api.post("/v1/events", "poster", {"events": [merit("behind-lock")]}).status_code == 201


def test_a_read_that_needs_a_catch_up_answers_behind_a_held_lock_from_what_is_folded(api: Api) -> None:
    """The read models cannot persist what they would fold while the lock is held: the read answers at
    once from the position they reached, saying which (instead of waiting 30 s and answering 500)."""
    folded = api.get("/v1/rankings", "reader", scope="all").json()["position"]
    api.ledger.post([_merit_event("unfolded")])
    with write_lock_held(api.url):
        answer = api.get("/v1/rankings", "reader", scope="all")
        assert answer.status_code == 200, answer.text
        assert answer.json()["position"] == folded < api.ledger.head()
    assert api.get("/v1/rankings", "reader", scope="all").json()["position"] == api.ledger.head()


def _merit_event(key: str) -> MeritAwarded:
    return MeritAwarded(
        cadre_id="C1",
        effective_on=date(2024, 7, 1),
        source=Source(system="hr", key=key),
        award="citation",
        level="county",
    )


def test_many_posts_behind_a_held_lock_leave_threads_for_reads(api: Api) -> None:
    """Twice as many posts as may wait: the rest are refused at once, and a read is answered meanwhile."""
    statuses: list[int] = []
    with write_lock_held(api.url):
        posters = [
            threading.Thread(
                target=lambda n=n: statuses.append(
                    api.post("/v1/events", "poster", {"events": [merit(f"crowd-{n}")]}).status_code
                )
            )
            for n in range(2 * POSTS_WAITING_MAX)
        ]
        for poster in posters:
            poster.start()
        assert api.get("/v1/cadres/C2/history", "reader").status_code == 200
        for poster in posters:
            poster.join()
    assert statuses and set(statuses) == {503}


def test_a_server_on_a_read_only_database_file_answers_503_naming_the_cause_and_ready_says_so(
    tmp_path: Path,
) -> None:
    """The file was made read-only (a full or remounted disk, wrong permissions) before the server started:
    posts answer 503 `read_only`, readiness says so, reads answer from what the read models hold."""
    with open_api(tmp_path) as seeded:
        url, tokens = seeded.url, seeded.tokens
        head = seeded.ledger.head()
    path = Path(url.removeprefix("sqlite:///"))
    with read_only_file(path), Ledger.open(url, clock=fixed_clock) as ledger:
        keys = KeyStore.open(url, ledger=ledger, adopt=False)
        read_models = ReadModels(ledger)
        app = create_app(ApiSettings(database_url=url), services=Services(ledger, keys, read_models))
        with TestClient(app) as client:
            assert read_models.wait(READ_MODELS_OPEN_SECONDS), read_models.failure
            reader = {"Authorization": f"Bearer {tokens['reader']}"}
            poster = {"Authorization": f"Bearer {tokens['poster']}"}
            answer = client.post("/v1/events", json={"events": [merit("read-only")]}, headers=poster)
            assert answer.status_code == 503, answer.text
            assert answer.json()["rule"] == "read_only" and "read-only" in answer.json()["detail"]
            assert "retry-after" in answer.headers
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and "read-only" in ready.json()["detail"]
            assert client.get("/v1/cadres/C1/history", headers=reader).status_code == 200
            assert client.get("/v1/rankings", headers=reader).status_code == 200
        keys.close()
        assert ledger.head() == head
