"""Read models that cannot silently disagree with the log (issue 10: items 1, 4, 6, 12 and 14, read side).

Goal: whatever happens to the read-model tables or to the log under them, a process never serves facts that
disagree with the log: it logs a CRITICAL line on `ledger.projections`, rebuilds from the log (a server
answers 503 meanwhile), and `verify --read-models` names the first difference. Method: a small seeded
ledger (the API tests' three cadres), changed behind its back by SQL as an insider or a bad restore would,
on SQLite and PostgreSQL; every expected total is computed by hand from the illustrative policy (county
citation 1.00, county third-class merit 2.00, excellent 5.00, competent 2.00):

    position 1 policy · 2–4 registrations C1, C2, C3 · 5 merit C1 · 6 excellent C1 · 7 merit C2 ·
    8 competent C2 · 9 merit C3 · 10 competent C3        → C1 6.00, C2 3.00, C3 3.00
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from ledger import Ledger
from ledger.access import KeyStore, Role
from ledger.api import ApiSettings, create_app
from ledger.api.services import ReadModels, Services
from ledger.cli import app as cli_app
from ledger.domain.errors import InvalidInput
from ledger.domain.events import MeritAwarded, Source
from ledger.projections.facts import FACTS_FORMAT
from ledger.projections.integrity import read_model_findings
from ledger.projections.service import Projections
from ledger.projections.store import FactStore
from ledger.results import TableFinding
from tests.api.conftest import seed
from tests.conftest import fixed_clock
from tests.integration.test_concurrency_more import run_processes
from tests.support import raw_sql

SEEDED = {"C1": Decimal("6.00"), "C2": Decimal("3.00"), "C3": Decimal("3.00")}
# After positions 9 and 10 are cut and two county third-class merits of C2 (2.00 each) take their places.
REWRITTEN = {"C1": Decimal("6.00"), "C2": Decimal("7.00"), "C3": Decimal("0.00")}
CUT = {"C1": Decimal("6.00"), "C2": Decimal("3.00"), "C3": Decimal("0.00")}
OPEN_SECONDS = 60.0
runner = CliRunner()


@pytest.fixture
def seeded(store_url: str) -> Iterator[Ledger]:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        seed(ledger)
        yield ledger


def totals(projections: Projections) -> dict[str, Decimal]:
    return {entry.cadre_id: entry.total for entry in projections.rankings("all").entries}


def critical_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "ledger.projections" and record.levelno == logging.CRITICAL
    ]


def current_version(url: str) -> int:
    return int(raw_sql(url, "SELECT value FROM projection_meta WHERE name = 'current_version'")[0][0])


def open_bounded(ledger: Ledger) -> Projections:
    """Projections.open in a thread, failing the test if it does not return in time (item 12 looped)."""
    opened: list[Any] = []

    def run() -> None:
        try:
            opened.append(Projections.open(ledger))
        except BaseException as error:  # pragma: no cover - reported below
            opened.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(OPEN_SECONDS)
    assert not thread.is_alive(), f"Projections.open did not return within {OPEN_SECONDS} s"
    if isinstance(opened[0], BaseException):
        raise opened[0]
    projections: Projections = opened[0]
    return projections


def merits_of_c2(keys: tuple[str, ...]) -> list[MeritAwarded]:
    return [
        MeritAwarded(
            cadre_id="C2",
            effective_on=date(2024, 7, 1),
            source=Source(system="hr", key=key),
            award="merit_third_class",
            level="county",
        )
        for key in keys
    ]


def cut_log(url: str, keep: int) -> None:
    """Delete every event after `keep` with its chain row, as a restore of an older backup would."""
    raw_sql(url, "DELETE FROM {events} WHERE {pos} > ?", (keep,))
    raw_sql(url, "DELETE FROM ledger_chain WHERE position > ?", (keep,))
    with contextlib.suppress(Exception):  # older layouts kept source keys in a table of their own
        raw_sql(url, "DELETE FROM ledger_sources WHERE position > ?", (keep,))


def rewrite_log(url: str, keep: int = 8) -> None:
    """Cut the last two events (C3's citation and appraisal, at `keep` + 1 and + 2) and append two other
    events at the same positions, through a fresh ledger."""
    cut_log(url, keep)
    with Ledger.open(url, clock=fixed_clock) as other:
        result = other.post(merits_of_c2(("rewrite-1", "rewrite-2")), posted_by="restore")
    assert [item.position for item in result.results] == [keep + 1, keep + 2]


# The digest (item 1b).


def test_each_version_stores_the_digest_of_its_facts_and_the_logs_hash_at_its_position(
    seeded: Ledger, store_url: str
) -> None:
    """The tracking row holds SHA-256 over the MessagePack arrays of the fact rows in position order and
    the chain hash of the log at the tracked position — recomputed here from the raw rows."""
    Projections.open(seeded).close()
    version = current_version(store_url)
    rows = raw_sql(
        store_url,
        "SELECT position, kind, cadre, effective_on, counts_from, cents, target, detail, award "
        f"FROM projection_facts_v{version} ORDER BY position",
    )
    assert [row[0] for row in rows] == list(range(1, 11))
    digest = hashlib.sha256()
    for row in rows:
        detail = msgspec.msgpack.decode(bytes(row[7])) if row[7] is not None else []
        digest.update(msgspec.msgpack.encode([*row[:7], detail, row[8]]))
    position, stored_digest, log_hash = raw_sql(
        store_url, "SELECT position, digest, log_hash FROM projection_tracking WHERE version = ?", (version,)
    )[0]
    (chain_hash,) = raw_sql(store_url, "SELECT hash FROM ledger_chain WHERE position = 10")[0]
    assert position == 10
    assert bytes(stored_digest) == digest.digest()
    assert bytes(log_hash) == bytes(chain_hash)


def test_a_changed_cents_is_refused_at_load_logged_and_rebuilt_from_the_log(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 item 1: one UPDATE of `cents` (C1's citation, position 5, 100 → 500100) made a restarted
    process rank C1 first with 5,006.00. Now verify names the row and the value, and a restarted process
    refuses the facts (CRITICAL: version, position, what differed) and serves the log's totals."""
    first = Projections.open(seeded)
    assert totals(first) == SEEDED
    first.close()
    raw_sql(store_url, "UPDATE projection_facts_v1 SET cents = 500100 WHERE position = 5")
    store = FactStore(store_url)
    try:
        assert read_model_findings(seeded, store) == [
            TableFinding("projection_facts_v1", "position 5", "altered", "cents: stored 500100, log 100")
        ]
    finally:
        store.close()
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    restarted = Projections.open(seeded)
    try:
        (line,) = critical_lines(caplog)
        assert "version 1, position 10" in line and "digest" in line
        assert totals(restarted) == SEEDED
        assert restarted.version == 2
        assert restarted.verify_read_models() == []
    finally:
        restarted.close()


def test_facts_deleted_under_the_tracking_row_are_rebuilt_not_looped_over(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 item 12: with facts deleted under the tracking row, `ledger rankings` looped for 7 minutes.
    Now opening returns at once, logs what is missing, and answers the log's totals — in the library and
    from the CLI."""
    Projections.open(seeded).close()
    raw_sql(store_url, "DELETE FROM projection_facts_v1 WHERE position > 4")
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    projections = open_bounded(seeded)
    try:
        (line,) = critical_lines(caplog)
        assert "position 10" in line and "facts end at position 4" in line
        assert totals(projections) == SEEDED
    finally:
        projections.close()
    raw_sql(store_url, f"DELETE FROM projection_facts_v{current_version(store_url)} WHERE position > 4")
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    result = runner.invoke(cli_app, ["rankings", "--format", "json"])
    assert result.exit_code == 0, result.output
    answered = msgspec.json.decode(result.stdout)
    assert {entry["cadre_id"]: Decimal(entry["total"]) for entry in answered["entries"]} == SEEDED


def test_a_tracking_row_deleted_or_moved_back_under_a_live_process_makes_it_rebuild(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A compare-and-set that can never succeed (the row gone) or a row behind what was folded used to
    leave catch-up spinning; now each is a disagreement: logged, rebuilt, answered right."""
    projections = Projections.open(seeded)
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    try:
        seeded.post(merits_of_c2(("late-1",)), posted_by="test")  # something to write at the next read
        raw_sql(store_url, "DELETE FROM projection_tracking")
        assert totals(projections) == SEEDED | {"C2": Decimal("5.00")}
        assert "tracking row" in critical_lines(caplog)[-1]
        version = current_version(store_url)
        raw_sql(store_url, "UPDATE projection_tracking SET position = 4 WHERE version = ?", (version,))
        seeded.post(merits_of_c2(("late-2",)), posted_by="test")
        assert totals(projections) == SEEDED | {"C2": Decimal("7.00")}
        assert "went back to position 4" in critical_lines(caplog)[-1]
        assert projections.verify_read_models() == []
    finally:
        projections.close()


def test_facts_another_process_wrote_are_checked_before_they_are_folded(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Process A serves; process B posts two merits and writes their facts (positions 11, 12); someone
    changes B's fact at 11. A's next read folds B's page only after checking it: refused, rebuilt."""
    a = Projections.open(seeded)
    with Ledger.open(store_url, clock=fixed_clock) as other:
        b = Projections.open(other)
        other.post(merits_of_c2(("b-1", "b-2")), posted_by="b")
        b.catch_up()
        b.close()
    raw_sql(store_url, "UPDATE projection_facts_v1 SET cents = 90000 WHERE position = 11")
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    try:
        assert totals(a) == SEEDED | {"C2": Decimal("7.00")}
        (line,) = critical_lines(caplog)
        assert "version 1, position 12" in line and "digest" in line
        assert a.version == 2
    finally:
        a.close()


def test_a_rebuild_by_another_process_is_followed_without_a_critical_line(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A legitimate switch (`ledger rebuild` elsewhere drops the version this process folded) is not a
    disagreement: the process loads the new version, checks it, and logs nothing critical."""
    a = Projections.open(seeded)
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    try:
        with Ledger.open(store_url, clock=fixed_clock) as other:
            b = Projections(other, FactStore(store_url))
            other.post(merits_of_c2(("elsewhere-1",)), posted_by="b")
            b.rebuild()
            b.close()
        assert totals(a) == SEEDED | {"C2": Decimal("5.00")}
        assert a.version == 2 and critical_lines(caplog) == []
    finally:
        a.close()


# A log that went backwards (item 6, read side).


def test_a_live_process_refolds_a_log_cut_back_and_rewritten_at_the_same_positions(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The log is cut back to position 8 and two other events recorded at 9 and 10 (the head is where it
    was, with another hash): the live read models notice at the next read, log it, and refold."""
    projections = Projections.open(seeded)
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    try:
        assert totals(projections) == SEEDED
        rewrite_log(store_url)
        assert totals(projections) == REWRITTEN
        (line,) = critical_lines(caplog)
        assert "position 10" in line and "the log was rewritten" in line
        assert projections.verify_read_models() == []
    finally:
        projections.close()


def test_a_live_process_refolds_a_log_cut_back_behind_what_it_folded(
    seeded: Ledger, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    projections = Projections.open(seeded)
    try:
        cut_log(store_url, 8)
        caplog.set_level(logging.CRITICAL, logger="ledger.projections")
        assert totals(projections) == CUT
        (line,) = critical_lines(caplog)
        assert "the log ends at position 8, before the position 10" in line
        assert projections.position() == 8
    finally:
        projections.close()


# The server: 503 while rebuilding.


# Served ledgers hold the auditor's key before the seed (keys are events in the log): the seed's last two
# events, C3's citation and appraisal, are at 10 and 11.
SERVED_KEEP = 9


@contextlib.contextmanager
def served(url: str) -> Iterator[tuple[TestClient[Any], dict[str, str], ReadModels]]:
    """A seeded ledger at `url` served in-process, with an auditor's headers (auditors may read too)."""
    with Ledger.open(url, clock=fixed_clock) as ledger, KeyStore.open(url) as keys:
        fresh = ledger.head() == 1
        token = keys.create(f"auditor-{uuid.uuid4().hex[:8]}", Role.auditor).token
        if fresh:
            seed(ledger)
        read_models = ReadModels(ledger)
        app = create_app(ApiSettings(database_url=url), services=Services(ledger, keys, read_models))
        with TestClient(app) as client:
            assert read_models.wait(OPEN_SECONDS), read_models.failure
            yield client, {"Authorization": f"Bearer {token}"}, read_models


def served_totals(client: TestClient[Any], headers: dict[str, str]) -> dict[str, Decimal]:
    response = client.get("/v1/rankings", headers=headers)
    assert response.status_code == 200, response.text
    return {entry["cadre_id"]: Decimal(entry["total"]) for entry in response.json()["entries"]}


def test_a_server_answers_503_and_not_ready_while_it_refolds_a_log_that_went_back(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A served app over a log restored and rewritten in place: `/health/ready` finds it (without any read
    first), read-model routes answer 503 with Retry-After while the rebuild runs (held here by taking the
    rebuild claim first, so the 503s are not a race), then the new totals."""
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == SEEDED
        assert client.get("/health/ready").status_code == 200
        rewrite_log(store_url, SERVED_KEEP)
        blocker = FactStore(store_url)
        assert blocker.claim_upgrade(time.time(), 600.0)
        caplog.set_level(logging.CRITICAL, logger="ledger.projections")
        try:
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
            assert "rewritten" in ready.json()["detail"]
            refused = client.get("/v1/rankings", headers=headers)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert refused.headers["Content-Type"].startswith("application/problem+json")
            assert refused.json()["type"].endswith(":read-models-unavailable")
            assert len(critical_lines(caplog)) == 1
        finally:
            blocker.release_upgrade()
            blocker.close()
        opened = read_models.opened()
        assert opened is not None and opened.wait_until_available(OPEN_SECONDS)
        assert client.get("/health/ready").status_code == 200
        assert served_totals(client, headers) == REWRITTEN


def test_a_server_detecting_a_cut_log_in_a_read_answers_503_then_the_log(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The read that finds the disagreement is answered 503 too (never with the stale facts)."""
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == SEEDED
        cut_log(store_url, SERVED_KEEP)
        blocker = FactStore(store_url)
        assert blocker.claim_upgrade(time.time(), 600.0)
        try:
            refused = client.get("/v1/cadres/C3", headers=headers)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert client.get("/health/ready").status_code == 503
        finally:
            blocker.release_upgrade()
            blocker.close()
        opened = read_models.opened()
        assert opened is not None and opened.wait_until_available(OPEN_SECONDS)
        assert served_totals(client, headers) == CUT


def test_a_server_opened_over_altered_facts_serves_the_logs_totals(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with served(store_url) as (client, headers, _read_models):
        assert served_totals(client, headers) == SEEDED
    raw_sql(store_url, "UPDATE projection_facts_v1 SET cents = 500100 WHERE position = 6")  # C1's citation
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    with served(store_url) as (client, headers, _read_models):
        assert served_totals(client, headers) == SEEDED
        assert client.get("/health/ready").status_code == 200
    assert len(critical_lines(caplog)) == 1


# verify --read-models (item 1a, 4).


def test_verify_read_models_reports_the_first_difference_from_the_cli(
    seeded: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Projections.open(seeded).close()
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    assert runner.invoke(cli_app, ["verify", "--read-models"]).exit_code == 0
    raw_sql(store_url, "UPDATE projection_facts_v1 SET cents = 524353 WHERE position = 7")
    plain = runner.invoke(cli_app, ["verify"])
    assert plain.exit_code == 0, "without the flag, verify checks the chain only"
    failed = runner.invoke(cli_app, ["verify", "--read-models"])
    assert failed.exit_code == 1
    assert "projection_facts_v1 position 7: altered: cents: stored 524353, log 100" in failed.output
    as_json = runner.invoke(cli_app, ["verify", "--read-models", "--format", "json"])
    assert as_json.exit_code == 1
    report = msgspec.json.decode(as_json.stdout)
    assert report["ok"] is False and report["first_bad_position"] is None
    assert report["findings"] == [
        {
            "table": "projection_facts_v1",
            "row": "position 7",
            "reason": "altered",
            "detail": "cents: stored 524353, log 100",
        }
    ]
    (kept,) = raw_sql(store_url, "SELECT * FROM projection_facts_v1 WHERE position = 7")
    raw_sql(store_url, "DELETE FROM projection_facts_v1 WHERE position = 7")
    missing = msgspec.json.decode(runner.invoke(cli_app, ["verify", "--read-models", "-f", "json"]).stdout)
    assert [(f["row"], f["reason"]) for f in missing["findings"]] == [("position 7", "missing")]
    restored = (7, *kept[1:5], 100, *kept[6:])  # the row as it was before its cents were changed
    for row in (restored, (11, *restored[1:])):
        raw_sql(store_url, "INSERT INTO projection_facts_v1 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    inserted = msgspec.json.decode(runner.invoke(cli_app, ["verify", "--read-models", "-f", "json"]).stdout)
    assert [(f["row"], f["reason"]) for f in inserted["findings"]] == [("position 11", "inserted")]


def test_verify_read_models_over_http_compares_the_servers_index_too(store_url: str) -> None:
    """`GET /v1/audit/verify?read_models=true` adds the findings; without the flag the chain only. The
    server's own index is compared at its position: after the log is rewritten under it, before any read,
    its standings of C2 disagree with the log's."""
    with served(store_url) as (client, headers, _read_models):
        assert client.get("/v1/audit/verify", headers=headers, params={"read_models": "true"}).json()["ok"]
        rewrite_log(store_url, SERVED_KEEP)
        plain = client.get("/v1/audit/verify", headers=headers).json()
        assert plain["ok"] is True and plain["findings"] == []
        report = client.get("/v1/audit/verify", headers=headers, params={"read_models": "true"}).json()
        assert report["ok"] is False
        assert {
            "table": "projection_facts_v1",
            "row": "cadre C2",
            "reason": "index_mismatch",
            "detail": "total cents: in memory 300, log 700",
        } in report["findings"]


# Older databases (FACTS_FORMAT 3, tracking without the digest columns).


def open_old_database(url: str, number: int, barrier: Any, results: Any) -> None:
    try:
        with Ledger.open(url, clock=fixed_clock) as ledger:
            barrier.wait(OPEN_SECONDS)
            projections = Projections.open(ledger)
            answer = msgspec.json.encode({k: str(v) for k, v in totals(projections).items()})
            projections.close()
    except BaseException:
        barrier.abort()
        results.put((number, traceback.format_exc()))
        raise
    results.put((number, answer))


def test_processes_opening_an_older_database_at_once_add_the_digest_columns_and_rebuild(
    seeded: Ledger, store_url: str
) -> None:
    """A database written before digests: tracking `(version, position)` only, facts of format 3. Three
    processes open it at the same moment: all succeed, the table gains each column once, and the rebuilt
    version carries a digest."""
    Projections.open(seeded).close()
    version = current_version(store_url)
    raw_sql(store_url, "DROP TABLE projection_tracking")
    raw_sql(
        store_url, "CREATE TABLE projection_tracking (version INTEGER PRIMARY KEY, position BIGINT NOT NULL)"
    )
    raw_sql(store_url, "INSERT INTO projection_tracking VALUES (?, 10)", (version,))
    raw_sql(
        store_url,
        "UPDATE projection_meta SET value = ? WHERE name = 'facts_format'",
        (str(FACTS_FORMAT - 1),),
    )
    answers = run_processes(open_old_database, store_url, 3)
    expected = msgspec.json.encode({k: str(v) for k, v in SEEDED.items()})
    assert set(answers.values()) == {expected}
    rows = raw_sql(store_url, "SELECT version, position, digest, log_hash FROM projection_tracking")
    assert len(rows) == 1 and rows[0][1] == 10 and rows[0][2] is not None and rows[0][3] is not None
    assert raw_sql(store_url, "SELECT value FROM projection_meta WHERE name = 'facts_format'") == [
        (str(FACTS_FORMAT),)
    ]


# Cursors (item 14).


def encoded(values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def forged_cursors(position: int) -> dict[str, str]:
    """Cursors this ledger never gave out, by what is wrong with them."""
    good = ["rankings", "all", "total", "", "2025-12-15", position, 1]
    return {
        "empty list": encoded([]),
        "two numbers": encoded([1, 2]),
        "one item short": encoded(good[:-1]),
        "one item more": encoded([*good, 0]),
        "a position as text": encoded([*good[:5], str(position), 1]),
        "a boolean offset": encoded([*good[:6], True]),
        "a negative position": encoded([*good[:5], -1, 1]),
        "offset zero": encoded([*good[:6], 0]),
        "another route": encoded(["shortlist", "all", "2025-12-15", position, 1]),
        "an unknown basis": encoded(["rankings", "all", "sideways", "", "2025-12-15", position, 1]),
        "a scope that is not one": encoded(["rankings", "everyone", "total", "", "2025-12-15", position, 1]),
        "an unknown unit": encoded(["rankings", "unit:U9", "total", "", "2025-12-15", position, 1]),
        "a period ending on another day": encoded(
            ["rankings", "all", "total", "2025Q3", "2025-12-15", position, 1]
        ),
        "past the end": encoded([*good[:6], 3]),
        "a position beyond the head": encoded([*good[:5], position + 99_999_999, 1]),
        "a quarter's cursor beyond the head": encoded(
            ["rankings", "all", "total", "2025Q3", "2025-09-30", position + 1, 1]
        ),
        "not base64 of JSON": "not a cursor",
    }


def test_forged_cursors_are_refused_by_the_library(seeded: Ledger) -> None:
    projections = Projections.open(seeded)
    try:
        for why, cursor in forged_cursors(projections.position()).items():
            with pytest.raises(InvalidInput) as refused:
                projections.rankings(cursor=cursor, limit=1)
            assert (refused.value.field, refused.value.rule) == ("cursor", "cursor_invalid"), why
        with pytest.raises(InvalidInput) as refused:
            projections.shortlist(cursor=forged_cursors(10)["empty list"])
        assert refused.value.rule == "cursor_invalid"
        beyond = encoded(["shortlist", "all", "2025-12-15", projections.position() + 1, 1])
        with pytest.raises(InvalidInput) as refused:
            projections.shortlist(cursor=beyond)
        assert refused.value.rule == "cursor_invalid" and "beyond the log's head" in str(refused.value)
    finally:
        projections.close()


def test_a_cursor_is_refused_beside_another_scope_basis_period_or_route(seeded: Ledger) -> None:
    """A cursor of unit:U1 (C1 and C2) pages on as unit:U1 when the scope is left out (or the default), and
    is refused beside another scope, basis, period or date, and by the shortlist."""
    projections = Projections.open(seeded)
    try:
        first = projections.rankings("unit:U1", limit=1)
        cursor = first.next_cursor
        assert cursor is not None
        assert [e.cadre_id for e in projections.rankings(cursor=cursor, limit=1).entries] == ["C2"]
        assert projections.rankings("unit:U1", cursor=cursor).entries[0].cadre_id == "C2"
        for contradiction in (
            {"scope": "unit:U2"},
            {"basis": "period"},
            {"period": "2025Q3"},
            {"as_of": date(2025, 1, 1)},
        ):
            with pytest.raises(InvalidInput) as refused:
                projections.rankings(cursor=cursor, **contradiction)
            assert refused.value.rule == "cursor_invalid", contradiction
        with pytest.raises(InvalidInput) as refused:
            projections.shortlist(cursor=cursor)
        assert refused.value.rule == "cursor_invalid"
        quarter = projections.rankings("all", period="2025Q4", basis="period", limit=1)
        assert quarter.next_cursor is not None
        with pytest.raises(InvalidInput):
            projections.rankings(period="2025Q3", cursor=quarter.next_cursor)
        assert projections.rankings(period="2025Q4", cursor=quarter.next_cursor).basis == "period"
    finally:
        projections.close()


def test_forged_and_misused_cursors_are_422_over_http(store_url: str) -> None:
    with served(store_url) as (client, headers, read_models):
        position = read_models.position()
        assert position is not None
        cases = {why: {"cursor": cursor} for why, cursor in forged_cursors(position).items()}
        first = client.get("/v1/rankings", headers=headers, params={"scope": "unit:U1", "limit": 1}).json()
        cases["a unit's cursor beside another unit"] = {"cursor": first["next_cursor"], "scope": "unit:U2"}
        for why, params in cases.items():
            response = client.get("/v1/rankings", headers=headers, params=params)
            assert response.status_code == 422, why
            problem = response.json()
            assert (problem["field"], problem["rule"]) == ("cursor", "cursor_invalid"), why
        shortlist = client.get("/v1/eligibility", headers=headers, params={"cursor": first["next_cursor"]})
        assert shortlist.status_code == 422 and shortlist.json()["rule"] == "cursor_invalid"


# The review of issue 10: what verify, a load and a live process find in projection_meta and beyond.


def blocked_rebuild(url: str) -> FactStore:
    """Take the rebuild claim as a live claimant would, so that the 503s while it is held are no race."""
    blocker = FactStore(url)
    assert blocker.claim_upgrade(time.time())
    return blocker


def wait_rebuilt(read_models: ReadModels, blocker: FactStore) -> None:
    blocker.release_upgrade()
    blocker.close()
    opened = read_models.opened()
    assert opened is not None and opened.wait_until_available(OPEN_SECONDS)


def forge_with_digest(url: str, position: int, cents: int) -> None:
    """Change a fact's cents and write the digest of the changed facts into its tracking row, as an
    insider who knows the digest's recipe (SHA-256 over the rows' MessagePack arrays) would."""
    raw_sql(url, "UPDATE projection_facts_v1 SET cents = ? WHERE position = ?", (cents, position))
    rows = raw_sql(url, "SELECT * FROM projection_facts_v1 ORDER BY position")
    digest = hashlib.sha256()
    for row in rows:
        detail = row[7]
        decoded = list(msgspec.msgpack.decode(bytes(detail))) if detail is not None else []
        digest.update(msgspec.msgpack.encode([*row[:7], decoded, row[8]]))
    raw_sql(url, "UPDATE projection_tracking SET digest = ? WHERE version = 1", (digest.digest(),))


def test_a_forged_fact_with_a_recomputed_digest_is_found_by_verify_which_rebuilds(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 1: the forgery passes the load (inherent: the digest is unkeyed), so the restarted server
    serves C1 at 6.00 + 100.00; `verify?read_models=true` reports it and the server stops serving (503)
    and rebuilds: C1 is 6.00 again."""
    with served(store_url) as (client, headers, _read_models):
        assert served_totals(client, headers) == SEEDED
    forge_with_digest(store_url, 6, 10_100)  # C1's county citation, 1.00 → 101.00
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == {**SEEDED, "C1": Decimal("106.00")}
        blocker = blocked_rebuild(store_url)
        report = client.get("/v1/audit/verify", headers=headers, params={"read_models": "true"}).json()
        assert report["ok"] is False
        assert {
            "table": "projection_facts_v1",
            "row": "position 6",
            "reason": "altered",
            "detail": "cents: stored 10100, log 100",
        } in report["findings"]
        assert client.get("/v1/rankings", headers=headers).status_code == 503
        assert client.get("/health/ready").status_code == 503
        (line,) = critical_lines(caplog)
        assert "verify found projection_facts_v1 position 6" in line
        wait_rebuilt(read_models, blocker)
        assert served_totals(client, headers) == SEEDED
        assert client.get("/v1/audit/verify", headers=headers, params={"read_models": "true"}).json()["ok"]


@pytest.mark.parametrize("value", ["abc", "99", "0"])
def test_a_current_version_that_names_no_version_is_damage_rebuilt_never_a_500(
    store_url: str, value: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2: under a live server, reads and ready answer 503 (not 500 and 200) while the rebuild runs,
    verify reports `projection_meta current_version`, and the rebuild writes a version with its tracking
    row; over a stopped server, `ledger verify --read-models` reports it (exit 1, no traceback) and the
    next start serves the log's totals."""
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    meta = "UPDATE projection_meta SET value = ? WHERE name = 'current_version'"
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == SEEDED
        blocker = blocked_rebuild(store_url)
        raw_sql(store_url, meta, (value,))
        refused = client.get("/v1/rankings", headers=headers)
        assert refused.status_code == 503, refused.text
        assert client.get("/health/ready").status_code == 503
        report = client.get("/v1/audit/verify", headers=headers, params={"read_models": "true"}).json()
        assert next((f["table"], f["row"], f["reason"]) for f in report["findings"]) == (
            "projection_meta",
            "current_version",
            "altered",
        )
        wait_rebuilt(read_models, blocker)
        assert served_totals(client, headers) == SEEDED
        version = current_version(store_url)
        assert raw_sql(store_url, "SELECT position FROM projection_tracking WHERE version = ?", (version,))
    raw_sql(store_url, meta, (value,))
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    checked = runner.invoke(cli_app, ["verify", "--read-models"])
    no_traceback = checked.exception is None or isinstance(checked.exception, SystemExit)
    assert checked.exit_code == 1 and no_traceback
    assert "projection_meta current_version: altered" in checked.output, checked.output
    with served(store_url) as (client, headers, _read_models):
        assert served_totals(client, headers) == SEEDED
        assert client.get("/health/ready").status_code == 200
    assert str(current_version(store_url)) != value


def test_a_facts_table_dropped_under_a_live_server_is_rebuilt_and_reads_answer_503(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 3: ready finds the table gone (503, not 200); a read after a post answers 503 (not 500); the
    rebuild restores it, with the posted merit (C2 3.00 + 2.00). Dropped while stopped, the next start
    rebuilds instead of failing for good."""
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == SEEDED
        blocker = blocked_rebuild(store_url)
        raw_sql(store_url, "DROP TABLE projection_facts_v1")
        assert client.get("/health/ready").status_code == 503
        with Ledger.open(store_url, clock=fixed_clock) as other:
            other.post(merits_of_c2(("after-drop",)), posted_by="hr")
        refused = client.get("/v1/rankings", headers=headers)
        assert refused.status_code == 503, refused.text
        wait_rebuilt(read_models, blocker)
        assert served_totals(client, headers) == {**SEEDED, "C2": Decimal("5.00")}
        assert "is missing" in critical_lines(caplog)[0]
    raw_sql(store_url, f"DROP TABLE projection_facts_v{current_version(store_url)}")
    with served(store_url) as (client, headers, _read_models):
        assert served_totals(client, headers) == {**SEEDED, "C2": Decimal("5.00")}


def test_a_facts_format_that_is_not_a_number_is_reported_and_rebuilt(
    seeded: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 4: verify reports it; the next open rebuilds (another shape) and writes this ledger's."""
    Projections.open(seeded).close()
    raw_sql(store_url, "UPDATE projection_meta SET value = 'x' WHERE name = 'facts_format'")
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    checked = runner.invoke(cli_app, ["verify", "--read-models"])
    assert checked.exit_code == 1
    assert "projection_meta facts_format: altered" in checked.output, checked.output
    projections = open_bounded(seeded)
    try:
        assert totals(projections) == SEEDED
    finally:
        projections.close()
    (stored,) = raw_sql(store_url, "SELECT value FROM projection_meta WHERE name = 'facts_format'")
    assert stored == (str(FACTS_FORMAT),)
    assert runner.invoke(cli_app, ["verify", "--read-models"]).exit_code == 0


STALE_CLAIMS = {"in the future": "9e12", "not a number": "abc", "of a dead claimant": "dead"}


@pytest.mark.parametrize("why", list(STALE_CLAIMS))
@pytest.mark.parametrize("path", ["upgrade", "repair"])
def test_a_stale_upgrade_claim_is_taken_over_at_once_with_a_warning(
    seeded: Ledger, store_url: str, why: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 5: a claim in the future, not a number, or not refreshed for 31 s is reported by verify and
    taken over by the next rebuild (of an older shape, or of damage) with a WARNING naming it, instead of
    being waited on for 600 s."""
    Projections.open(seeded).close()
    claim = STALE_CLAIMS[why] if why != "of a dead claimant" else repr(time.time() - 31)
    raw_sql(store_url, "INSERT INTO projection_meta VALUES ('upgrade_claim', ?)", (claim,))
    store = FactStore(store_url)
    try:
        assert [(f.table, f.row, f.reason) for f in read_model_findings(seeded, store)] == [
            ("projection_meta", "upgrade_claim", "stale")
        ]
    finally:
        store.close()
    if path == "upgrade":
        raw_sql(store_url, "UPDATE projection_meta SET value = '3' WHERE name = 'facts_format'")
    else:
        raw_sql(store_url, "UPDATE projection_facts_v1 SET cents = 500100 WHERE position = 5")
    caplog.set_level(logging.WARNING, logger="ledger.projections")
    started = time.monotonic()
    projections = open_bounded(seeded)
    try:
        assert time.monotonic() - started < 10.0, "the stale claim was waited on"
        assert totals(projections) == SEEDED
    finally:
        projections.close()
    assert any(
        "taking over the stale rebuild claim" in record.getMessage() and claim in record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING
    )
    assert raw_sql(store_url, "SELECT value FROM projection_meta WHERE name = 'upgrade_claim'") == []


def test_ledger_rebuild_clears_a_claim_it_supersedes(
    seeded: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Projections.open(seeded).close()
    raw_sql(store_url, "INSERT INTO projection_meta VALUES ('upgrade_claim', '9e12')")
    monkeypatch.setenv("LEDGER_DATABASE_URL", store_url)
    assert runner.invoke(cli_app, ["rebuild"]).exit_code == 0
    assert raw_sql(store_url, "SELECT value FROM projection_meta WHERE name = 'upgrade_claim'") == []
    assert runner.invoke(cli_app, ["verify", "--read-models"]).exit_code == 0


def test_a_rebuild_refreshes_its_claim_at_every_page(seeded: Ledger, store_url: str) -> None:
    """Item 5: the claimant shows it is alive while it folds, so a 30 s stale window is enough: a claim
    written 25 s ago is fresher after the repair's pages (observed through the rebuild's progress)."""
    projections = Projections.open(seeded)
    seen: list[float] = []
    old = time.time() - 25
    raw_sql(store_url, "INSERT INTO projection_meta VALUES ('upgrade_claim', ?)", (repr(old),))
    try:

        def watch(events: int) -> None:
            projections._refresh_claim(events)
            seen.append(
                float(
                    raw_sql(
                        store_url, "SELECT value FROM projection_meta WHERE name = ?", ("upgrade_claim",)
                    )[0][0]
                )
            )

        projections.rebuild(progress=watch)
    finally:
        projections.close()
    assert seen and all(value > old + 20 for value in seen)


def test_closing_a_server_does_not_wait_for_a_repair_blocked_on_a_live_claim(store_url: str) -> None:
    """Item 5: the repair thread waits on another process's (fresh) claim; closing abandons it at its next
    poll instead of joining it for 30 s."""
    with served(store_url) as (client, headers, read_models):
        assert served_totals(client, headers) == SEEDED
        blocker = blocked_rebuild(store_url)
        try:
            cut_log(store_url, SERVED_KEEP)
            assert client.get("/health/ready").status_code == 503
            opened = read_models.opened()
            assert opened is not None and not opened.wait_until_available(0.5)
            started = time.monotonic()
            opened.close()
            assert time.monotonic() - started < 5.0
        finally:
            blocker.release_upgrade()
            blocker.close()


@pytest.mark.postgres
def test_schema_changes_of_ledgers_in_other_schemas_do_not_wait_for_each_other(postgres_url: str) -> None:
    """Item 7 (PostgreSQL only: SQLite has no schemas): while one schema's read-model tables are being
    changed (its schema lock held), a ledger in another schema creates its own at once."""
    other_url = postgres_url.replace("schema=", "schema=o")
    Ledger.open(postgres_url).close()
    Ledger.open(other_url).close()
    mine, theirs = FactStore(postgres_url), FactStore(other_url)
    try:
        with mine._schema_change():
            theirs.create_version(7)  # waited for `mine` (then failed on lock_timeout) with one key
        assert theirs.has_facts(7)
    finally:
        mine.close()
        theirs.close()
        from tests.conftest import drop_schema, require_postgres

        drop_schema(require_postgres(), other_url.split("schema=")[1])


def test_facts_another_process_tracked_between_the_two_reads_of_a_load_are_not_damage(store_url: str) -> None:
    """A load reads the tracking row, then the facts' extent: in between, another process's catch-up may
    commit facts past the first read and the tracking row that covers them (two snapshots). That is not
    damage; facts past a tracking row that still does not cover them are."""
    from tests.conftest import fixed_clock, registration
    from tests.support import raw_sql

    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        first = Projections.open(ledger)
        before = first.store.tracking(first.version)
        assert before is not None
        ledger.post([registration("C2"), registration("C3")])
        other = Projections.open(ledger)  # catches up: facts at 3 and 4, tracking moved to 4
        other.close()
        first._check_extent(before)  # the stale read of the tracking row: no damage
        table = f"projection_facts_v{first.version}"
        raw_sql(store_url, f"UPDATE projection_tracking SET position = {before.position}")
        with pytest.raises(Exception, match="outside the positions"):
            first._check_extent(before)
        first.close()
        assert raw_sql(store_url, f"SELECT COUNT(*) FROM {table}")[0][0] >= 2
