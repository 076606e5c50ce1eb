"""API keys are events in the chained log; the key table is their projection and is checked against it.

Each test runs on SQLite and PostgreSQL. Changes to `ledger_keys` are made with SQL behind the ledger's
back (`tests.support.raw_sql`), as an insider with database access would.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.services import ReadModels, Services
from ledger.domain.cadre import KEYS_STREAM, OWN_STREAMS, stream_named
from ledger.domain.events import (
    CADRE_EVENT_TYPES,
    EVENT_TYPES,
    KeyCreated,
    KeyRevoked,
    MeritAwarded,
    Source,
)
from ledger.projections.facts import fact_of, facts_of_stored
from ledger.projections.service import Projections
from ledger.projections.store import facts_table
from tests.conftest import TODAY, fixed_clock, registration
from tests.support import raw_sql

READ_MODELS_OPEN_SECONDS = 30.0
HR = "hr"


def secret_of(token: str) -> str:
    return token.split("_", 2)[2]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def forged_token(key_id: str, secret: str = "F" * 43) -> str:
    return f"cl_{key_id}_{secret}"


@dataclass
class KeyApi:
    url: str
    ledger: Ledger
    keys: KeyStore
    client: TestClient[Litestar]

    def status(self, path: str, token: str) -> int:
        return int(self.client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code)


@pytest.fixture
def key_api(store_url: str) -> Iterator[KeyApi]:
    """An app over a small ledger whose key store records through the app's ledger (one writer)."""
    with (
        Ledger.open(store_url, clock=fixed_clock) as ledger,
        KeyStore.open(store_url, ledger=ledger, operator="ops", clock=fixed_clock) as keys,
    ):
        ledger.post([registration("C1", key="reg-C1")], posted_by="seed")
        read_models = ReadModels(ledger)
        app = create_app(ApiSettings(database_url=store_url), services=Services(ledger, keys, read_models))
        with TestClient(app) as client:
            assert read_models.wait(READ_MODELS_OPEN_SECONDS), read_models.failure
            yield KeyApi(store_url, ledger, keys, client)


def key_events(ledger: Ledger) -> list[Any]:
    return [logged for logged in ledger.events(after=0, limit=1_000) if logged.event.type.startswith("key.")]


# Recording.


def test_every_event_type_about_no_cadre_has_a_stream_of_its_own() -> None:
    # A unit's details and ratings live in the unit's own stream, `$unit:<unit_id>`.
    unit_streams = {"unit.registered", "unit.rated"}
    assert set(OWN_STREAMS) == set(EVENT_TYPES) - CADRE_EVENT_TYPES - unit_streams
    assert OWN_STREAMS["key.created"] == OWN_STREAMS["key.revoked"] == "$keys"
    assert {stream_named(name, None, "U1") for name in unit_streams} == {"$unit:U1"}


def test_creating_and_revoking_a_key_records_events_with_its_hash_and_never_its_token(
    key_api: KeyApi,
) -> None:
    head = key_api.ledger.head()
    issued = key_api.keys.create("hr-sync", Role.poster, system=HR, event_types=["merit.awarded"])
    key_api.keys.revoke("hr-sync", by="zhang.wei")
    created, revoked = (logged.event for logged in key_events(key_api.ledger))
    assert isinstance(created, KeyCreated) and isinstance(revoked, KeyRevoked)
    assert (created.key_id, created.principal, created.role, created.system, created.event_types) == (
        issued.key.key_id,
        "hr-sync",
        "poster",
        HR,
        ("merit.awarded",),
    )
    assert created.secret_sha256 == sha256(secret_of(issued.token))
    assert (created.demo, created.adopted, revoked.key_id) == (False, False, issued.key.key_id)
    assert (created.posted_by, revoked.posted_by) == ("ops", "zhang.wei")
    assert created.source == Source(system="ledger.keys", key="created:hr-sync:1")
    assert revoked.source == Source(system="ledger.keys", key=f"revoked:{issued.key.key_id}")
    assert created.effective_on == revoked.effective_on == TODAY
    assert key_api.ledger.head() == head + 2
    streams = raw_sql(key_api.url, "SELECT originator_id FROM {events} WHERE {pos} > ?", (head,))
    assert [row[0] for row in streams] == [KEYS_STREAM, KEYS_STREAM]
    states = raw_sql(key_api.url, "SELECT state FROM {events}")
    assert all(secret_of(issued.token).encode() not in bytes(row[0]) for row in states)
    assert key_api.ledger.verify().ok
    assert key_api.keys.check_against_log() == []


def test_a_retried_key_event_replays_and_records_nothing(key_api: KeyApi) -> None:
    issued = key_api.keys.create("reader", Role.reader)
    (created,) = (logged for logged in key_events(key_api.ledger))
    head = key_api.ledger.head()
    submission = KeyRevoked(
        effective_on=TODAY,
        source=Source(system="ledger.keys", key=f"revoked:{issued.key.key_id}"),
        key_id=issued.key.key_id,
        revoked_at=fixed_clock(),
    )
    first = key_api.ledger.record_own([submission], posted_by="ops")
    again = key_api.ledger.record_own([submission], posted_by="ops")
    assert (first.results[0].replayed, again.results[0].replayed) == (False, True)
    assert again.results[0].position == first.results[0].position == head + 1
    assert key_api.ledger.head() == head + 1
    assert created.position < head + 1


def test_key_events_count_nothing_and_the_read_models_fold_past_them(key_api: KeyApi) -> None:
    key_api.keys.create("reader", Role.reader)
    key_api.ledger.post(
        [
            MeritAwarded(
                cadre_id="C1",
                effective_on=TODAY,
                source=Source(system=HR, key="merit-1"),
                award="citation",
                level="county",
            )
        ],
        posted_by="seed",
    )
    key_api.keys.create("auditor", Role.auditor)
    head = key_api.ledger.head()
    # position 1 the policy, 2 the registration, 3 key, 4 merit, 5 key
    assert head == 5
    projections = Projections.open(key_api.ledger)
    try:
        assert projections.position() == head
        facts = raw_sql(
            key_api.url,
            f"SELECT position, kind, cadre, cents FROM {facts_table(projections.version)} ORDER BY position",
        )
        assert [tuple(row) for row in facts if row[0] in (3, 5)] == [(3, 17, None, 0), (5, 17, None, 0)]
    finally:
        projections.close()
    history = key_api.ledger.history("C1")
    assert [entry.position for entry in history.entries] == [2, 4]
    stored, records = key_api.ledger.stored(after=0, limit=head), key_api.ledger.records(after=0, limit=head)
    assert facts_of_stored(stored) == [fact_of(position, event) for position, event in records]


def test_export_and_import_carry_the_keys_and_rebuild_restores_the_table(
    key_api: KeyApi, tmp_path: Any
) -> None:
    issued = key_api.keys.create("auditor", Role.auditor)
    exported = io.BytesIO()
    key_api.ledger.export(exported)
    exported.seek(0)
    target = f"sqlite:///{tmp_path / 'imported.db'}"
    with Ledger.open(target, publish_illustrative=False) as imported:
        imported.import_(exported)
        assert imported.verify().ok
    with KeyStore.open(target) as keys:
        assert keys.authenticate(issued.token) is None, "the log has the key, the table has no row yet"
        assert [(f.row, f.reason) for f in keys.check_against_log()] == [
            (f"key {issued.key.key_id}", "missing")
        ]
        assert [f.reason for f in keys.rebuild()] == ["missing"]
        authenticated = keys.authenticate(issued.token)
        assert authenticated is not None and authenticated.role is Role.auditor
        assert keys.check_against_log() == []


# Changes behind the ledger's back: refused at the next request, reported by check_against_log.

VERIFY = "/v1/audit/verify"  # auditor
POLICIES = "/v1/policies"  # reader


def test_a_role_changed_by_sql_is_refused_and_reported(
    key_api: KeyApi, caplog: pytest.LogCaptureFixture
) -> None:
    issued = key_api.keys.create("reader", Role.reader)
    assert (key_api.status(POLICIES, issued.token), key_api.status(VERIFY, issued.token)) == (200, 403)
    raw_sql(key_api.url, "UPDATE ledger_keys SET role = 'admin' WHERE key_id = ?", (issued.key.key_id,))
    with caplog.at_level(logging.WARNING, logger="ledger.access"):
        assert (key_api.status(POLICIES, issued.token), key_api.status(VERIFY, issued.token)) == (401, 401)
    assert f"API key {issued.key.key_id} refused" in caplog.text
    assert "role: table says admin, log says reader" in caplog.text
    findings = key_api.keys.check_against_log()
    assert [(f.table, f.row, f.reason, f.detail) for f in findings] == [
        (
            "ledger_keys",
            f"key {issued.key.key_id}",
            "index_mismatch",
            "role: table says admin, log says reader",
        )
    ]


def test_an_unrevoked_key_stays_refused_and_is_reported(
    key_api: KeyApi, caplog: pytest.LogCaptureFixture
) -> None:
    issued = key_api.keys.create("reader", Role.reader)
    key_api.keys.revoke(issued.key.key_id)
    assert key_api.status(POLICIES, issued.token) == 401
    raw_sql(key_api.url, "UPDATE ledger_keys SET revoked_at = NULL WHERE key_id = ?", (issued.key.key_id,))
    with caplog.at_level(logging.WARNING, logger="ledger.access"):
        assert key_api.status(POLICIES, issued.token) == 401
    assert "revoked_at: table says none, log says 2025-12-15T02:00:00.000000Z" in caplog.text
    (finding,) = key_api.keys.check_against_log()
    assert (finding.reason, finding.detail.split(":")[0]) == ("index_mismatch", "revoked_at")


def test_an_inserted_row_with_a_valid_hash_is_refused_and_reported(
    key_api: KeyApi, caplog: pytest.LogCaptureFixture
) -> None:
    key_id, secret = "00000000000000ab", "S" * 43
    raw_sql(
        key_api.url,
        "INSERT INTO ledger_keys (key_id, secret_sha256, principal, role, system, event_types, created_at, "
        "revoked_at, demo) VALUES (?, ?, 'intruder', 'admin', NULL, '', '2025-12-15T02:00:00.000000Z', NULL, "
        "false)",
        (key_id, sha256(secret)),
    )
    with caplog.at_level(logging.WARNING, logger="ledger.access"):
        assert key_api.status(VERIFY, forged_token(key_id, secret)) == 401
    assert f"API key {key_id} refused: its row in ledger_keys has no key.created event" in caplog.text
    assert [(f.row, f.reason) for f in key_api.keys.check_against_log()] == [(f"key {key_id}", "inserted")]


def test_a_replaced_secret_hash_is_refused_for_both_secrets_and_reported(
    key_api: KeyApi, caplog: pytest.LogCaptureFixture
) -> None:
    issued = key_api.keys.create("auditor", Role.auditor)
    attacker = "A" * 43
    raw_sql(
        key_api.url,
        "UPDATE ledger_keys SET secret_sha256 = ? WHERE key_id = ?",
        (sha256(attacker), issued.key.key_id),
    )
    with caplog.at_level(logging.WARNING, logger="ledger.access"):
        assert key_api.status(VERIFY, forged_token(issued.key.key_id, attacker)) == 401
        assert key_api.status(VERIFY, issued.token) == 401
    assert "secret_sha256: table says" in caplog.text
    (finding,) = key_api.keys.check_against_log()
    assert finding.reason == "index_mismatch" and finding.detail.startswith("secret_sha256: table says ")


def test_a_deleted_row_refuses_its_key_until_the_table_is_rebuilt(
    key_api: KeyApi, caplog: pytest.LogCaptureFixture
) -> None:
    issued = key_api.keys.create("auditor", Role.auditor)
    raw_sql(key_api.url, "DELETE FROM ledger_keys WHERE key_id = ?", (issued.key.key_id,))
    with caplog.at_level(logging.WARNING, logger="ledger.access"):
        assert key_api.status(VERIFY, issued.token) == 401
    assert "has no row for it; `ledger keys rebuild` restores" in caplog.text
    (finding,) = key_api.keys.check_against_log()
    assert (finding.row, finding.reason) == (f"key {issued.key.key_id}", "missing")
    assert [f.reason for f in key_api.keys.rebuild()] == ["missing"]
    assert key_api.status(VERIFY, issued.token) == 200
    assert key_api.keys.check_against_log() == []


def test_a_key_revoked_by_another_process_is_refused_at_the_next_request(key_api: KeyApi) -> None:
    issued = key_api.keys.create("auditor", Role.auditor)
    assert key_api.status(VERIFY, issued.token) == 200  # this process has folded the key
    revoked = subprocess.run(
        [sys.executable, "-m", "ledger.cli_access", "keys", "revoke", issued.key.key_id, "-d", key_api.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    assert key_api.status(VERIFY, issued.token) == 401
    assert key_api.keys.authenticate(issued.token) is None
    (event,) = (logged.event for logged in key_events(key_api.ledger) if isinstance(logged.event, KeyRevoked))
    assert event.posted_by == "cli"
    assert key_api.keys.check_against_log() == []


def test_two_stores_creating_a_key_for_one_principal_record_only_one(key_api: KeyApi) -> None:
    with KeyStore.open(key_api.url) as other:
        other.logged()  # both have folded the log before either creates
        key_api.keys.create("hr-sync", Role.reader)
        with pytest.raises(Exception) as refused:
            # The other store's fold is refreshed first, so it sees the active key.
            other.create("hr-sync", Role.reader)
        assert getattr(refused.value, "rule", None) == "principal_has_active_key"
    assert len(key_events(key_api.ledger)) == 1


# Keys made before keys were recorded in the log.


def insert_legacy_row(url: str, key_id: str, secret: str, principal: str, role: str, revoked: bool) -> None:
    raw_sql(
        url,
        "INSERT INTO ledger_keys (key_id, secret_sha256, principal, role, system, event_types, created_at, "
        "revoked_at, demo) VALUES (?, ?, ?, ?, NULL, '', '2025-01-02T03:04:05.000006Z', ?, false)",
        (key_id, sha256(secret), principal, role, "2025-02-01T00:00:00.000000Z" if revoked else None),
    )


def test_keys_of_an_older_ledger_are_adopted_once_and_later_rows_are_not(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        KeyStore.open(store_url, ledger=ledger, adopt=False).close()  # the table, as an older ledger had it
        insert_legacy_row(store_url, "1111111111111111", "a" * 43, "old-admin", "admin", revoked=False)
        insert_legacy_row(store_url, "2222222222222222", "b" * 43, "old-reader", "reader", revoked=True)
        head = ledger.head()
        with KeyStore.open(store_url, ledger=ledger) as keys:
            events = [logged.event for logged in key_events(ledger)]
            assert [(e.type, e.key_id) for e in events] == [
                ("key.created", "1111111111111111"),
                ("key.created", "2222222222222222"),
                ("key.revoked", "2222222222222222"),
            ]
            assert all(e.posted_by == "ledger" for e in events)
            assert [getattr(e, "adopted", None) for e in events[:2]] == [True, True]
            assert ledger.head() == head + 3
            admin = keys.authenticate(forged_token("1111111111111111", "a" * 43))
            assert admin is not None and admin.role is Role.admin
            assert keys.authenticate(forged_token("2222222222222222", "b" * 43)) is None
            assert keys.check_against_log() == []
        insert_legacy_row(store_url, "3333333333333333", "c" * 43, "late", "admin", revoked=False)
        with KeyStore.open(store_url, ledger=ledger) as keys:
            assert ledger.head() == head + 3, "adoption happens once"
            assert keys.authenticate(forged_token("3333333333333333", "c" * 43)) is None
            assert [(f.row, f.reason) for f in keys.check_against_log()] == [
                ("key 3333333333333333", "inserted")
            ]


def test_demo_keys_are_recorded_and_revoked_through_the_log(key_api: KeyApi) -> None:
    first = key_api.keys.issue_demo_keys()
    second = key_api.keys.issue_demo_keys()
    events = [logged.event for logged in key_events(key_api.ledger)]
    assert [e.type for e in events] == ["key.created"] * 4 + ["key.revoked"] * 4 + ["key.created"] * 4
    assert {e.key_id for e in events if isinstance(e, KeyRevoked)} == {k.key.key_id for k in first}
    assert all(e.demo for e in events if isinstance(e, KeyCreated))
    assert all(key_api.keys.authenticate(k.token) is None for k in first)
    assert all(key_api.keys.authenticate(k.token) is not None for k in second)
    assert key_api.keys.check_against_log() == []
