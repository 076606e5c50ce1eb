"""Fixtures of the API tests: a small seeded ledger, keys of every kind, and an in-process client.

The ledger has a fixed clock (today is 2025-12-15 in Asia/Shanghai) and three cadres in two units with a
few scored events, so every route has something to answer with. Keys: one per role, a poster of another
system, and a revoked reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.services import ReadModels, Services
from ledger.domain.events import AppraisalRecorded, MeritAwarded, Source
from tests.conftest import fixed_clock, registration

READ_MODELS_OPEN_SECONDS = 30.0
HR = "hr"
DISCIPLINE = "discipline"
POSTER_TYPES = ("cadre.registered", "merit.awarded", "appraisal.recorded")


@dataclass
class Api:
    """An app over a seeded ledger, a client of it, and a key of every kind."""

    url: str
    ledger: Ledger
    keys: KeyStore
    app: Litestar
    client: TestClient[Litestar]
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        """Headers for a named credential (`reader`, `poster`, … or `none`)."""
        if who == "none":
            return {}
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, path: str, who: str, **params: Any) -> Any:
        return self.client.get(path, params=params or None, headers=self.auth(who))

    def post(self, path: str, who: str, body: Any) -> Any:
        if isinstance(body, bytes):
            return self.client.post(
                path, content=body, headers={**self.auth(who), "Content-Type": "application/json"}
            )
        return self.client.post(path, json=body, headers=self.auth(who))


def seed(ledger: Ledger) -> None:
    """Three cadres in two units, an award and an appraisal each."""
    events: list[Any] = [
        registration("C1", unit_id="U1", key="reg-C1"),
        registration("C2", unit_id="U1", key="reg-C2", leadership=False),
        registration("C3", unit_id="U2", key="reg-C3", principal=True),
    ]
    for number, cadre_id in enumerate(("C1", "C2", "C3"), start=1):
        events.append(
            MeritAwarded(
                cadre_id=cadre_id,
                effective_on=date(2024, 6, number),
                source=Source(system=HR, key=f"merit-{cadre_id}"),
                award="citation",
                level="county",
            )
        )
        events.append(
            AppraisalRecorded(
                cadre_id=cadre_id,
                effective_on=date(2025, 1, 10),
                source=Source(system=HR, key=f"appraisal-{cadre_id}"),
                year=2024,
                result="excellent" if number == 1 else "competent",
            )
        )
    ledger.post(events, posted_by="seed")


def issue_keys(keys: KeyStore) -> dict[str, str]:
    tokens = {
        "poster": keys.create("hr-sync", Role.poster, system=HR, event_types=POSTER_TYPES).token,
        "other_system": keys.create(
            "discipline-sync", Role.poster, system=DISCIPLINE, event_types=["deduction.applied"]
        ).token,
        "reader": keys.create("reader", Role.reader).token,
        "auditor": keys.create("auditor", Role.auditor).token,
        "admin": keys.create("admin", Role.admin).token,
    }
    revoked = keys.create("former-reader", Role.reader)
    keys.revoke(revoked.key.key_id)
    tokens["revoked"] = revoked.token
    # Well-formed, but no such key; and a real key id with a wrong secret.
    tokens["unknown"] = "cl_0123456789abcdef_" + "A" * 43
    reader_id = tokens["reader"].split("_")[1]
    tokens["wrong_secret"] = f"cl_{reader_id}_" + "B" * 43
    tokens["malformed"] = "not-a-key"
    return tokens


@contextmanager
def open_api(directory: Path, **settings: Any) -> Iterator[Api]:
    """A seeded ledger in `directory`, its keys, and a client of an app over it (read models open)."""
    url = f"sqlite:///{directory / 'ledger.db'}"
    with Ledger.open(url, clock=fixed_clock) as ledger, KeyStore.open(url) as keys:
        seed(ledger)
        tokens = issue_keys(keys)
        read_models = ReadModels(ledger)
        app = create_app(
            ApiSettings(database_url=url, **settings), services=Services(ledger, keys, read_models)
        )
        with TestClient(app) as client:
            assert read_models.wait(READ_MODELS_OPEN_SECONDS), read_models.failure
            yield Api(url, ledger, keys, app, client, tokens)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A fresh app for tests that post."""
    with open_api(tmp_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app for a module of tests that only read (or post only replays)."""
    with open_api(tmp_path_factory.mktemp("api")) as opened:
        yield opened
