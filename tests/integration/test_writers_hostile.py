"""The optimistic writer and its persisted knowledge attacked as a hostile user and an unlucky operator would
(issue 11, items 1-2), on both stores, with real processes where it matters: the knowledge must never diverge
from a fold of the log, a damaged, stale or unwritable state row must cost a fold (never a wrong decision, a
hang or a slow post), the append session must be bounded and freed by a killed holder, and a large batch
against single-event posters must win within LOST_RACES_MAX + 1 attempts.

Each test named after a way it failed was written failing, as a strict xfail naming the bug, and passes
since the fix (issue 11's review). Points are worked out by hand from
the illustrative policy: a 30.00 merit cap a year; national honorary title 25.00, commendation 6.00,
citation 4.00.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eventsourcing.persistence import PersistenceError

import ledger.writer as writer_module
from ledger import Ledger
from ledger.domain.errors import IntegrityFailure, InvalidInput, StoreUnavailable
from ledger.domain.events import MeritAwarded, PolicyPublished, Source
from ledger.knowledge import _DECODER, _ENCODER, PERSIST_EVERY_EVENTS, _Persisted
from ledger.store import recorders
from tests.conftest import fixed_clock, registration
from tests.integration import test_rules_scenarios as scenario
from tests.integration.test_store_faults import is_postgres, rewind, write_lock_held
from tests.integration.test_writers import encoded, folded_from_the_log, interfere, merit
from tests.support import raw_sql

REPO = Path(__file__).resolve().parents[2]


def points(result: Any) -> list[Decimal]:
    return [item.points for item in result.results]


def agrees_with_the_log(ledger: Ledger) -> bool:
    ledger.load_all()
    return encoded(ledger._writer.knowledge) == encoded(folded_from_the_log(ledger.url))


def kept_row(url: str) -> tuple[Any, ...] | None:
    rows = raw_sql(url, "SELECT position, hash, format, digest, state FROM ledger_writer_state")
    return rows[0] if rows else None


def honorary_kept(url: str) -> Ledger:
    """A ledger whose C1 used 25.00 of 2025's cap, its state kept at the head; left open."""
    ledger = Ledger.open(url, clock=fixed_clock)
    ledger.post([registration("C1"), merit("C1", "honorary_title")])
    assert ledger.keep_writer_state()
    return ledger


def counted(target: Any, name: str) -> list[object]:
    """Record each call of `target.name` (which still runs)."""
    calls: list[object] = []
    original = getattr(target, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    setattr(target, name, spy)
    return calls


# Commits that fail after the append ran: nothing of the batch may reach the knowledge.


@contextlib.contextmanager
def commit_fails(url: str) -> Iterator[None]:
    """The next commit fails as on a full disk: on SQLite the write-ahead log cannot grow (a file size
    limit, as a full file system), on PostgreSQL a deferred trigger raises `disk_full` at COMMIT."""
    if is_postgres(url):
        raw_sql(
            url,
            "CREATE FUNCTION h6_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING "
            "ERRCODE = 'disk_full', MESSAGE = 'could not extend file \"base/1/2\": No space left on device'; "
            "END $$; CREATE CONSTRAINT TRIGGER h6_full AFTER INSERT ON ledger_chain DEFERRABLE INITIALLY "
            "DEFERRED FOR EACH ROW EXECUTE FUNCTION h6_full()",
        )
        try:
            yield
        finally:
            raw_sql(url, "DROP TRIGGER h6_full ON ledger_chain")
        return
    wal = urlsplit(url).path[1:] + "-wal"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(wal), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("path", ["optimistic", "session"])
def test_a_commit_that_fails_installs_nothing_of_the_batch(
    store_url: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "session":  # every attempt in the append session, whose commit is at the block's end
        monkeypatch.setattr(writer_module, "LOST_RACES_MAX", 0)
    with honorary_kept(store_url) as ledger:
        head = ledger.head()
        with commit_fails(store_url), pytest.raises((StoreUnavailable, PersistenceError)) as refused:
            ledger.post([merit("C1", "commendation")])
        assert "No space left" in str(refused.value) or "disk I/O" in str(refused.value)
        assert ledger.head() == head
        # Had the failed 5.00 reached the knowledge, the cap would be spent and this would count 0.00.
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]
        assert agrees_with_the_log(ledger)
        assert ledger.verify().ok


def test_postgres_a_full_disk_at_commit_is_refused_as_a_store_fault(postgres_url: str) -> None:
    with honorary_kept(postgres_url) as ledger, commit_fails(postgres_url):
        with pytest.raises(StoreUnavailable) as refused:
            ledger.post([merit("C1", "commendation")])
        assert refused.value.cause == "disk_full"


# Lost races.


def test_a_policy_another_writer_published_meanwhile_is_refused_on_the_retry_and_the_book_is_the_logs(
    store_url: str,
) -> None:
    mine, other = Ledger.open(store_url, clock=fixed_clock), Ledger.open(store_url, clock=fixed_clock)
    with mine, other:
        mine.post([registration("C1")])

        def capped(cap: str) -> PolicyPublished:
            body = scenario.custom_policy("race-1", (r'^annual_cap = "30\.00"', f'annual_cap = "{cap}"'))
            return PolicyPublished(
                effective_on=date(2025, 1, 1),
                source=Source(system="test", key=f"race-1-{cap}"),
                version="race-1",
                effective_from=date(2020, 1, 1),
                body=body,
            )

        def the_other_publishes_first(attempt: int) -> None:
            if attempt == 1:
                other.post([capped("20.00")])

        interfere(mine, the_other_publishes_first)
        with pytest.raises(InvalidInput) as refused:
            mine.post([capped("12.00"), merit("C1", "honorary_title")])
        assert refused.value.rule == "policy_version_exists" and refused.value.item == 0
        # The book is the other writer's: an honorary title is capped at its 20.00, not at the lost 12.00.
        assert points(mine.post([merit("C1", "honorary_title")])) == [Decimal("20.00")]
        assert agrees_with_the_log(mine)


# A unique key refuses the append although the head is the expected one.


def test_an_event_row_without_its_chain_row_is_reported_after_one_refold(ledger: Ledger) -> None:
    ledger.post([registration("C1"), merit("C1", "citation")])
    head = ledger.head()
    raw_sql(ledger.url, "DELETE FROM ledger_chain WHERE position = ?", (head,))  # the event row stays
    folds = counted(ledger._writer.knowledge, "_fold")
    with pytest.raises(IntegrityFailure):
        ledger.post([merit("C1", "commendation")])
    assert len(folds) <= 2 * head


def forge_version(url: str, cadre_id: str, change: int) -> None:
    """Rewrite the kept state with `cadre_id`'s stream version changed, and its digest recomputed."""
    (blob,) = raw_sql(url, "SELECT state FROM ledger_writer_state")[0]
    persisted = _DECODER.decode(bytes(blob))
    version, state = persisted.cadres[cadre_id]
    persisted.cadres[cadre_id] = (version + change, state)
    forged = _ENCODER.encode(_Persisted(persisted.cadres, persisted.versions, persisted.units))
    raw_sql(
        url, "UPDATE ledger_writer_state SET state = ?, digest = ?", (forged, hashlib.sha256(forged).digest())
    )


def test_a_kept_state_that_a_unique_key_refuses_is_set_aside_for_a_fold_of_the_log(store_url: str) -> None:
    honorary_kept(store_url).close()
    forge_version(store_url, "C1", -1)  # the next C1 event would reuse a version the stream holds
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]
        assert agrees_with_the_log(ledger)


# The kept position no longer holds its event.


def test_a_deleted_event_at_the_kept_position_is_refused_not_looped_on(store_url: str) -> None:
    with honorary_kept(store_url) as first:
        kept = first.head()
        first.post([merit("C1", "citation")])
    raw_sql(store_url, "DELETE FROM {events} WHERE {pos} = ?", (kept,))
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        knowledge = ledger._writer.knowledge
        original = knowledge._rewound
        turns: list[object] = []

        def rewound(found: Any) -> None:
            turns.append(found)
            assert len(turns) <= 3, "catch-up keeps refolding the same state"
            original(found)

        knowledge._rewound = rewound  # type: ignore[method-assign]
        with pytest.raises(IntegrityFailure):
            ledger.post([merit("C1", "commendation")])


# The kept state, damaged, stale or unwritable.


@pytest.mark.parametrize("edit", ["name", "digest", "position_behind", "bytes_appended_with_their_digest"])
def test_every_single_column_edit_of_the_kept_state_costs_a_fold_not_a_wrong_decision(
    store_url: str, edit: str
) -> None:
    with honorary_kept(store_url) as first:
        first.post([registration("C2")])  # a tail after the kept position
    position, _hash, _format, _digest, blob = kept_row(store_url)  # type: ignore[misc]
    if edit == "name":
        raw_sql(store_url, "UPDATE ledger_writer_state SET name = 'writer-old'")
    elif edit == "digest":
        raw_sql(store_url, "UPDATE ledger_writer_state SET digest = ?", (hashlib.sha256(b"x").digest(),))
    elif edit == "position_behind":
        raw_sql(store_url, "UPDATE ledger_writer_state SET position = ?", (position - 1,))
    else:
        longer = bytes(blob) + b"\x00" * 64
        digest = hashlib.sha256(longer).digest()
        raw_sql(store_url, "UPDATE ledger_writer_state SET state = ?, digest = ?", (longer, digest))
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]
        assert ledger._writer.knowledge._kept_at == 0  # folded from the log, the row not used
        assert agrees_with_the_log(ledger)


def rebind_to_the_registration(url: str) -> None:
    """Bind the state kept at 3 (C1 with 25.00) to position 2, C1's registration, with two values copied
    from the chain: no byte of the state and no digest is rewritten (the digest must cover the binding)."""
    honorary_kept(url).close()
    (earlier_hash,) = raw_sql(url, "SELECT hash FROM ledger_chain WHERE position = 2")[0]
    raw_sql(url, "UPDATE ledger_writer_state SET position = 2, hash = ?", (bytes(earlier_hash),))


def test_a_kept_state_rebound_to_an_earlier_position_is_found_by_verify(store_url: str) -> None:
    rebind_to_the_registration(store_url)
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        findings = ledger.writer_state_findings()
    assert [(f.row, f.reason) for f in findings] == [("writer", "unusable")]
    assert "digest" in findings[0].detail


def test_a_kept_state_rebound_to_an_earlier_position_is_not_decided_from(store_url: str) -> None:
    rebind_to_the_registration(store_url)
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]


def test_a_log_cut_back_and_grown_again_to_the_same_length_is_folded_not_restored(store_url: str) -> None:
    with honorary_kept(store_url) as first:
        kept = first.head()
        rewind(store_url, kept - 1)  # the honorary title is lost, the kept state still holds it
        with Ledger.open(store_url, clock=fixed_clock) as second:
            assert second.post([merit("C1", "citation")]).results[0].position == kept  # same length again
        # The running writer (it kept the state) and a new one both decide from the log: 4.00 of the cap
        # is used, so a commendation counts 6.00 in full (5.00 if the honorary title were still counted).
        assert points(first.post([merit("C1", "commendation")])) == [Decimal("6.00")]
        assert agrees_with_the_log(first)
    with Ledger.open(store_url, clock=fixed_clock) as third:
        assert points(third.post([merit("C1", "commendation")])) == [Decimal("6.00")]
        assert third._writer.knowledge._kept_at == 0
        assert third.keep_writer_state()
        assert kept_row(store_url)[0] == third.head()  # type: ignore[index]


def test_an_import_keeps_its_fold_over_a_kept_state_of_the_log_it_replaced(
    store_url: str, tmp_path: Path
) -> None:
    with Ledger.open(f"sqlite:///{tmp_path / 'other.db'}", clock=fixed_clock) as other:
        other.post([registration("X1"), merit("X1", "citation")])
        export = io.BytesIO()
        other.export(export)
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{number}") for number in range(10)])
        assert ledger.keep_writer_state()
    raw_sql(store_url, "DELETE FROM {events}")
    raw_sql(store_url, "DELETE FROM ledger_chain")
    with Ledger.open(store_url, clock=fixed_clock, publish_illustrative=False) as ledger:
        export.seek(0)
        assert ledger.import_(export) == 3
        head = ledger.head()
    assert kept_row(store_url)[0] == head  # type: ignore[index]
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.load_all()
        assert ledger._writer.knowledge._kept_at == head


def test_a_dropped_state_table_costs_a_warning_and_the_next_open_recreates_it(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with honorary_kept(store_url) as ledger:
        raw_sql(store_url, "DROP TABLE ledger_writer_state")
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]
        with caplog.at_level(logging.WARNING, "ledger"):
            assert not ledger.keep_writer_state()
        assert any("could not keep the writer state" in record.getMessage() for record in caplog.records)
    with Ledger.open(store_url, clock=fixed_clock) as again:
        assert points(again.post([merit("C1", "commendation")])) == [Decimal("0.00")]
        assert again.keep_writer_state()
        assert kept_row(store_url)[0] == again.head()  # type: ignore[index]


def test_a_state_that_cannot_be_kept_is_not_tried_again_at_every_post(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        ledger.load_all()
        ledger._writer.knowledge._kept_at = ledger.head() - PERSIST_EVERY_EVENTS  # as after 100,000 events
        raw_sql(store_url, "DROP TABLE ledger_writer_state")
        saves = counted(ledger._recorder, "save_writer_state")
        for _ in range(3):
            ledger.post([merit("C1", "citation")])
        assert len(saves) <= 1


def test_a_reader_only_open_of_a_sqlite_ledger_writes_nothing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with honorary_kept(sqlite_url) as ledger:
        ledger.post([merit("C1", "commendation")])  # the kept state is now behind the log
    # A writer that folded even one event would keep its state at close; a reader must not.
    monkeypatch.setattr(writer_module, "PERSIST_AT_CLOSE_EVENTS", 1)

    def dump() -> str:
        with contextlib.closing(sqlite3.connect(urlsplit(sqlite_url).path[1:])) as connection:
            return "\n".join(connection.iterdump())

    before = dump()
    with Ledger.open(sqlite_url, clock=fixed_clock, create=False) as reader:
        assert reader.history("C1").total == Decimal("30.00")
        assert reader.verify().ok and reader.writer_state_findings() == []
        reader.export(io.BytesIO())
    assert dump() == before


def test_postgres_a_reader_only_open_answers_on_a_read_only_server(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    honorary_kept(postgres_url).close()
    with monkeypatch.context() as read_only:  # undone before the schema is dropped
        read_only.setenv("PGOPTIONS", "-c default_transaction_read_only=on")  # every session read-only
        with Ledger.open(postgres_url, clock=fixed_clock, create=False) as reader:
            assert reader.history("C1").total == Decimal("25.00")


# The append session.


def test_the_append_session_answers_every_read_a_post_makes(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as first:
        setup = first.post([registration("C1"), merit("C1", "honorary_title"), merit("C1", "citation")])
        assert points(setup)[1:] == [Decimal("25.00"), Decimal("4.00")]  # 29.00 of 2025's cap
        assert first.keep_writer_state()
    monkeypatch.setattr(writer_module, "LOST_RACES_MAX", 0)  # every attempt inside the session
    with Ledger.open(store_url, clock=fixed_clock) as ledger:  # restores the kept state inside the session
        citation = setup.results[2].event_id
        commendation = merit("C1", "commendation")
        # The reversal's target is read beside the session; once it is drafted 25.00 is used, so 5.00.
        result = ledger.post([scenario.reversal("C1", citation, date(2025, 6, 1)), commendation])
        assert points(result) == [Decimal("-4.00"), Decimal("5.00")]
        replayed = ledger.post([commendation])  # replays only: nothing appended, the head read beside it
        assert replayed.results[0].replayed and replayed.position == ledger.head()
        ledger.publish_policy(
            scenario.custom_policy("session-1", (r'^annual_cap = "30\.00"', 'annual_cap = "40.00"'))
        )
        assert points(ledger.post([merit("C1", "honorary_title")])) == [Decimal("10.00")]  # 40 - 30
        assert agrees_with_the_log(ledger)
        assert ledger.verify().ok


def test_a_session_behind_a_held_lock_is_refused_in_bounded_time_as_lock_busy(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorders, "WRITE_LOCK_WAIT_SECONDS", 1)
    monkeypatch.setattr(writer_module, "LOST_RACES_MAX", 0)
    with honorary_kept(store_url) as ledger:
        recorder: Any = ledger._recorder
        if is_postgres(store_url):
            from psycopg.sql import SQL

            recorder.lock_table_statements[0] = SQL("SET LOCAL lock_timeout = '1s'")
        head = ledger.head()
        with write_lock_held(store_url), pytest.raises(StoreUnavailable) as refused:
            ledger.post([merit("C1", "commendation")])
        assert refused.value.cause == "lock_busy"
        assert ledger.head() == head
        assert points(ledger.post([merit("C1", "commendation")])) == [Decimal("5.00")]
        assert agrees_with_the_log(ledger)


KILLED_HOLDER = """
import sys
import ledger.writer as writer
from ledger import Ledger
from tests.conftest import fixed_clock
from tests.integration.test_writers import merit

appended = writer.Writer._append


def held(self, *args):  # the batch is appended, not committed: say so, then wait to be killed
    appended(self, *args)
    print("held", flush=True)
    sys.stdin.readline()


writer.Writer._append = held
Ledger.open(sys.argv[1], clock=fixed_clock).post([merit("C1", "citation") for _ in range(50)])
"""


def test_a_writer_killed_while_it_holds_the_append_session_blocks_nobody(store_url: str) -> None:
    with honorary_kept(store_url) as ledger:
        head = ledger.head()
        command = [sys.executable, "-c", KILLED_HOLDER, store_url]
        with subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as holder:
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            finally:
                holder.send_signal(signal.SIGKILL)
        assert holder.returncode == -signal.SIGKILL
        result = ledger.post([merit("C1", "commendation")])  # the lock is free again, the 50 not recorded
        assert result.results[0].position == head + 1 and points(result) == [Decimal("5.00")]
        assert ledger.verify().ok and agrees_with_the_log(ledger)


# Starvation: a large batch against processes posting single events.


POSTS_EACH = 60


def single_poster(url: str, number: int, go: Any, results: Any) -> None:
    acknowledged = []
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.load_all()
        results.put(("ready", number))
        go.wait(60)
        for step in range(POSTS_EACH):
            event = MeritAwarded(
                cadre_id=f"P{number}",
                effective_on=date(2025, 1, 1),
                source=Source(system=f"p{number}", key=str(step)),
                award="citation",
                level="unit",
            )
            item = ledger.post([event]).results[0]
            acknowledged.append((str(item.event_id), item.position))
    results.put(("done", acknowledged))


@pytest.mark.slow
def test_a_large_batch_against_single_event_posters_wins_within_the_bound(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as big:
        big.post([registration(f"B{n}") for n in range(50)] + [registration(f"P{n}") for n in range(3)])
        big.load_all()
        context = multiprocessing.get_context("spawn")
        go, results = context.Event(), context.Queue()
        posters = [context.Process(target=single_poster, args=(store_url, n, go, results)) for n in range(3)]
        for poster in posters:
            poster.start()
        try:
            assert [results.get(timeout=120)[0] for _ in posters] == ["ready"] * 3
            batch = [merit(f"B{n % 50}", "citation", on=date(2025, 1, 1 + n % 28)) for n in range(500)]
            lost_before = big._writer.lost_races
            go.set()  # the posters post while the batch is decided and appended
            result = big.post(batch)
            lost = big._writer.lost_races - lost_before
            answers = [results.get(timeout=120) for _ in posters]
        finally:
            go.set()
            for poster in posters:
                poster.join(120)
        assert lost <= writer_module.LOST_RACES_MAX  # then the session won
        first = result.results[0].position
        assert [item.position for item in result.results] == list(range(first, first + 500))
        log = {str(entry.event.event_id): entry.position for entry in big.events(after=0, limit=10_000)}
        assert sorted(log.values()) == list(range(1, len(log) + 1))
        assert len(log) == 1 + 53 + 500 + 3 * POSTS_EACH
        for _kind, acknowledged in answers:
            assert all(log[event_id] == position for event_id, position in acknowledged)
        assert big.verify().ok and agrees_with_the_log(big)
