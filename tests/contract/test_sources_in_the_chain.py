"""Idempotency rests on the chained events (issue 10, items 2 and 4): `(system, key)` is unique because of a
unique index over the source inside each event row, and a retry is answered from the event the log holds.

Before, a side table `ledger_sources` held `(system, key) → fingerprint, position`: deleting one row made
the next retry record a second event; changing a row's position made a retry answer with another event's
id. Now no side table exists to damage; what an insider can still do to the events is caught by `verify`.
"""

from __future__ import annotations

from datetime import date

import pytest

from ledger import Ledger
from ledger.domain.errors import Conflict
from ledger.domain.events import MeritAwarded, Source
from ledger.integrity.chain import GENESIS_HASH, canonical_bytes, chain_hash
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql


def merit(key: str, *, cadre_id: str = "C1", level: str = "county") -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=date(2024, 6, 1),
        source=Source(system="hr", key=key),
        award="citation",
        level=level,  # type: ignore[arg-type]
    )


@pytest.fixture
def posted(ledger: Ledger) -> Ledger:
    ledger.post([registration("C1", key="reg-C1"), merit("m-1"), merit("m-2")])
    return ledger


def count_source(url: str, key: str) -> int:
    rows = raw_sql(url, "SELECT state FROM {events}")
    return sum(b'"key":"%s"' % key.encode() in bytes(row[0]) for row in rows)


def test_there_is_no_side_table_of_sources_to_damage(posted: Ledger) -> None:
    tables = raw_sql(
        posted.url,
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if posted.url.startswith("sqlite")
        else "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    assert "ledger_sources" not in {row[0] for row in tables}


def test_a_legacy_sources_table_is_dropped_when_the_ledger_opens(store_url: str) -> None:
    Ledger.open(store_url, clock=fixed_clock).close()
    raw_sql(
        store_url,
        "CREATE TABLE ledger_sources (system TEXT, key TEXT, fingerprint BYTEA, position INT)"
        if not store_url.startswith("sqlite")
        else "CREATE TABLE ledger_sources (system TEXT, key TEXT, fingerprint BLOB, position INT)",
    )
    with Ledger.open(store_url, clock=fixed_clock):
        pass
    with pytest.raises(Exception, match="ledger_sources"):
        raw_sql(store_url, "SELECT * FROM ledger_sources")


def test_a_retry_is_answered_from_the_event_itself(posted: Ledger) -> None:
    first = posted.post([merit("m-3")]).results[0]
    again = posted.post([merit("m-3")]).results[0]
    assert again.replayed and (again.event_id, again.position, again.hash) == (
        first.event_id,
        first.position,
        first.hash,
    )
    with pytest.raises(Conflict):
        posted.post([merit("m-3", level="municipal")])


def test_a_second_event_with_the_same_source_cannot_be_stored(posted: Ledger) -> None:
    """An insider copying an event row (a duplicate source) is refused by the database itself."""
    url = posted.url
    state = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 3")[0][0]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        raw_sql(
            url,
            "INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}) "
            "VALUES ('C1', 99, 'x', ?, 99)",
            (state,),
        )
    assert count_source(url, "m-2") == 1


def test_without_the_index_a_retry_still_replays_and_verify_reports_the_missing_index(
    posted: Ledger,
) -> None:
    url = posted.url
    raw_sql(url, "DROP INDEX ledger_events_source")
    again = posted.post([merit("m-2")]).results[0]
    assert again.replayed and again.position == 4
    assert count_source(url, "m-2") == 1
    report = posted.verify()
    assert not report.ok and report.first_bad_position is None  # the chain itself is intact
    assert [(f.reason, f.row) for f in report.findings] == [("index_missing", "index ledger_events_source")]
    # Reopening rebuilds the index: verify is clean again.
    with Ledger.open(url, clock=fixed_clock) as reopened:
        assert reopened.verify().ok


def test_a_duplicate_source_stored_while_the_index_was_gone_is_reported(posted: Ledger) -> None:
    url = posted.url
    raw_sql(url, "DROP INDEX ledger_events_source")
    state = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 3")[0][0]
    raw_sql(
        url,
        "INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}) "
        "VALUES ('C1', 99, 'x', ?, 5)",
        (state,),
    )
    report = posted.verify()
    assert (report.first_bad_position, report.reason) == (5, "inserted")
    reasons = {(f.reason, f.row, f.detail) for f in report.findings}
    assert ("duplicate", "source hr/m-1", "recorded 2 times") in reasons
    assert any(reason == "index_missing" for reason, _row, _detail in reasons)


def test_an_index_entry_pointing_elsewhere_is_impossible_a_changed_source_is_a_changed_event(
    posted: Ledger,
) -> None:
    """The only way to move a source is to change the event row, which breaks the chain at its position."""
    url = posted.url
    state = bytes(raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 4")[0][0])
    raw_sql(url, "UPDATE {events} SET state = ? WHERE {pos} = 4", (state.replace(b'"m-2"', b'"m-9"'),))
    report = posted.verify()
    assert (report.first_bad_position, report.reason) == (4, "altered")


def test_a_recording_time_that_goes_back_is_reported_even_when_the_chain_is_rehashed(
    posted: Ledger,
) -> None:
    """Consistent with its hashes, but earlier than the event before it: no writer stamps so."""
    url = posted.url
    rows = raw_sql(url, "SELECT position, recorded_at FROM ledger_chain ORDER BY position")
    earlier = "2000-01-01T00:00:00.000000Z"
    raw_sql(url, "UPDATE ledger_chain SET recorded_at = ? WHERE position = 4", (earlier,))
    previous = GENESIS_HASH
    for position, recorded_at in rows:
        (state,) = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = ?", (position,))[0]
        stamp = earlier if position == 4 else recorded_at
        previous = chain_hash(previous, canonical_bytes(position, stamp, bytes(state)))
        raw_sql(url, "UPDATE ledger_chain SET hash = ? WHERE position = ?", (previous, position))
    report = posted.verify()
    assert (report.first_bad_position, report.reason) == (4, "time_reversed")
    assert earlier in (report.detail or "")


def test_an_index_of_the_same_name_but_another_definition_is_reported_and_rebuilt(posted: Ledger) -> None:
    url = posted.url
    raw_sql(url, "DROP INDEX ledger_events_source")
    table = "stored_events" if url.startswith("sqlite") else "ledger_events"
    raw_sql(url, f"CREATE UNIQUE INDEX ledger_events_source ON {table} (originator_id, originator_version)")
    report = posted.verify()
    assert [(f.reason, f.row) for f in report.findings] == [("index_altered", "index ledger_events_source")]
    assert report.first_bad_position is None
    with Ledger.open(url, clock=fixed_clock) as reopened:
        assert reopened.verify().ok
        assert reopened.post([merit("m-2")]).results[0].replayed
    assert count_source(url, "m-2") == 1


def test_a_partial_index_of_the_same_name_is_reported(posted: Ledger) -> None:
    url = posted.url
    raw_sql(url, "DROP INDEX ledger_events_source")
    expression = (
        "json_extract(CAST(state AS TEXT), '$.source.system'), "
        "json_extract(CAST(state AS TEXT), '$.source.key')"
        if url.startswith("sqlite")
        else "ledger_source_part(state, 'system'), ledger_source_part(state, 'key')"
    )
    table = "stored_events" if url.startswith("sqlite") else "ledger_events"
    raw_sql(url, f"CREATE UNIQUE INDEX ledger_events_source ON {table} ({expression}) WHERE 1 = 0")
    assert [f.reason for f in posted.verify().findings] == ["index_altered"]


def test_postgres_a_redefined_source_function_is_reported_and_the_index_rebuilt(postgres_url: str) -> None:
    """Redefined to answer NULL, the function would let every later source through the unique index."""
    with Ledger.open(postgres_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="reg-C1"), merit("m-1")])
        raw_sql(
            postgres_url,
            "CREATE OR REPLACE FUNCTION ledger_source_part(state bytea, part text) RETURNS text "
            "LANGUAGE sql IMMUTABLE AS $$ SELECT NULL::text $$",
        )
        raw_sql(postgres_url, "REINDEX INDEX ledger_events_source")
        report = ledger.verify()
        assert [f.reason for f in report.findings] == ["index_altered"]
        assert "redefined" in report.findings[0].detail
    with Ledger.open(postgres_url, clock=fixed_clock) as reopened:
        assert reopened.verify().ok
        assert reopened.post([merit("m-1")]).results[0].replayed
    assert count_source(postgres_url, "m-1") == 1
