"""Tamper evidence (SPEC §8) on every store: changes made behind the ledger's back are caught by `verify`
at their position, and truncation or a consistent rewrite by a checkpoint.

Method: post a small log, then alter the database directly with SQL, as an insider would.
"""

from __future__ import annotations

from datetime import date

import pytest

from ledger import Ledger
from ledger.domain.events import MeritAwarded
from ledger.integrity.chain import GENESIS_HASH, canonical_bytes, chain_hash
from tests.conftest import fixed_clock, registration, source
from tests.support import alter_state, raw_sql


def build(url: str, cadres: int = 3, merits: int = 3) -> Ledger:
    ledger = Ledger.open(url, clock=fixed_clock)
    for index in range(cadres):
        cadre_id = f"C{index}"
        ledger.post(
            [registration(cadre_id)]
            + [
                MeritAwarded(
                    cadre_id=cadre_id,
                    effective_on=date(2024, 2, 1 + day),
                    source=source(),
                    award="citation",
                    level="unit",
                )
                for day in range(merits)
            ]
        )
    return ledger


@pytest.fixture
def built(store_url: str):
    ledger = build(store_url)
    yield store_url, ledger
    ledger.close()


def test_an_untouched_log_verifies(built) -> None:
    _url, ledger = built
    report = ledger.verify()
    assert report.ok and report.verified_through == ledger.head() == 13
    assert report.first_bad_position is None and report.reason is None


def test_one_changed_byte_in_a_stored_event_is_caught_at_its_position(built) -> None:
    url, ledger = built
    alter_state(url, 7, b'"unit"', b'"unix"')
    report = ledger.verify()
    assert not report.ok
    assert report.first_bad_position == 7 and report.verified_through == 6
    assert report.reason == "altered" and report.detail


def test_a_deleted_event_is_caught_as_missing(built) -> None:
    url, ledger = built
    raw_sql(url, "DELETE FROM {events} WHERE {pos} = 4")
    report = ledger.verify()
    assert (report.first_bad_position, report.reason) == (4, "missing")


def test_an_event_deleted_with_its_chain_row_is_caught_as_a_gap(built) -> None:
    url, ledger = built
    raw_sql(url, "DELETE FROM {events} WHERE {pos} = 4")
    raw_sql(url, "DELETE FROM ledger_chain WHERE position = 4")
    report = ledger.verify()
    assert (report.first_bad_position, report.reason) == (4, "missing")


def test_two_swapped_events_are_caught_as_reordered(built) -> None:
    url, ledger = built
    (state_3,) = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 3")[0]
    (state_4,) = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 4")[0]
    # The unique source index refuses the half-done swap: an insider moves one row aside first.
    raw_sql(url, "UPDATE {events} SET state = ? WHERE {pos} = 3", (b'{"source":{}}',))
    raw_sql(url, "UPDATE {events} SET state = ? WHERE {pos} = 4", (state_3,))
    raw_sql(url, "UPDATE {events} SET state = ? WHERE {pos} = 3", (state_4,))
    report = ledger.verify()
    assert (report.first_bad_position, report.reason) == (3, "reordered")
    assert report.findings == []


def test_a_forged_event_without_a_chain_row_is_caught_as_inserted(built) -> None:
    url, ledger = built
    state = bytes(raw_sql(url, "SELECT state FROM {events} WHERE {pos} = 13")[0][0])
    # A copy under a source of its own (the unique source index refuses a second event with the same).
    state = state.replace(b'"source":{"system":"', b'"source":{"system":"x')
    raw_sql(
        url,
        "INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}) "
        "VALUES ('C2', 99, 'x', ?, 14)",
        (state,),
    )
    report = ledger.verify()
    assert (report.first_bad_position, report.reason) == (14, "inserted")


def test_a_changed_recording_time_is_caught(built) -> None:
    url, ledger = built
    raw_sql(url, "UPDATE ledger_chain SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE position = 9")
    assert ledger.verify().first_bad_position == 9


def test_a_changed_stream_column_is_caught(built) -> None:
    url, ledger = built
    raw_sql(url, "UPDATE {events} SET topic = 'forged' WHERE {pos} = 10")
    report = ledger.verify()
    assert (report.first_bad_position, report.reason) == (10, "altered")


def test_deleting_the_newest_events_is_caught_against_an_earlier_checkpoint(built) -> None:
    url, ledger = built
    checkpoint = ledger.checkpoint()
    raw_sql(url, "DELETE FROM {events} WHERE {pos} > 10")
    raw_sql(url, "DELETE FROM ledger_chain WHERE position > 10")
    left = ledger.verify()
    assert left.verified_through == 10 and left.first_bad_position is None
    assert [(f.table, f.row, f.reason) for f in left.findings] == [
        ("ledger_merkle", "position 11", "inserted")
    ], "the tree's rows past the cut show it"
    raw_sql(url, "DELETE FROM ledger_merkle WHERE position > 10")
    assert ledger.verify().ok, "a truncated chain and tree are consistent on their own"
    report = ledger.verify(checkpoint)
    assert not report.ok and report.first_bad_position == 11
    assert report.reason == "missing" and "truncated" in (report.detail or "")


def test_a_consistent_rewrite_is_caught_against_a_checkpoint(built) -> None:
    url, ledger = built
    checkpoint = ledger.checkpoint()
    alter_state(url, 5, b'"unit"', b'"national"')
    rows = raw_sql(
        url,
        "SELECT c.position, c.recorded_at, e.state FROM ledger_chain c "
        "JOIN {events} e ON e.{pos} = c.position ORDER BY c.position",
    )
    previous = GENESIS_HASH
    for position, recorded_at, state in rows:
        previous = chain_hash(previous, canonical_bytes(position, recorded_at, bytes(state)))
        raw_sql(url, "UPDATE ledger_chain SET hash = ? WHERE position = ?", (previous, position))
    tree = ledger.verify()
    assert tree.first_bad_position is None and [(f.table, f.row) for f in tree.findings] == [
        ("ledger_merkle", "position 5")
    ], "the stored tree still holds the old leaf"
    ledger.rebuild_tree()
    assert ledger.verify().ok, "the insider recomputed every hash and the tree"
    report = ledger.verify(checkpoint)
    assert not report.ok and report.first_bad_position == checkpoint.tree_size
    assert report.reason == "altered" and "rewritten" in (report.detail or "")


def test_a_checkpoint_of_another_ledger_does_not_verify(built, tmp_path) -> None:
    _url, ledger = built
    with Ledger.open(f"sqlite:///{tmp_path / 'other.db'}", clock=fixed_clock) as other:
        foreign = other.checkpoint()
    assert not ledger.verify(foreign).ok
