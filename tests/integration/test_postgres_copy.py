"""PostgreSQL writes by COPY (issue 11, item 4): an append, an import and a rebuild's facts are written with
COPY in the binary format instead of `executemany`; the unique source index still refuses a duplicate.

What must hold, checked against the database's own rows (read behind the ledger's back) and against the
SQLite store, which still writes with `executemany`:

- an append records exactly the rows SQLite records for the same events: same streams, versions, topics and
  stored bytes (event ids aside: they are drawn at random), dense positions, chain hashes that recompute;
- a duplicate source inside one COPY batch, or against an earlier batch, is refused by the database with
  nothing of the batch recorded — here past the writer's own check, as a faulty or hostile writer would;
- text that COPY's text format would have to escape (tabs, newlines, backslashes, `\\N`, line and paragraph
  separators, CJK, emoji) survives byte for byte;
- an import of an export verifies, and holds the very rows of the log it was exported from;
- a rebuild of the read models writes the same facts, digest and standings on PostgreSQL as on SQLite;
- a ledger that grows by appends alone gets planner statistics (ANALYZE) once it is big enough, without
  autovacuum.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from ledger import Ledger
from ledger.demo import run_demo
from ledger.domain.cadre import Recorded, stream_of
from ledger.domain.errors import IntegrityFailure
from ledger.domain.events import DeductionApplied, EventBase, MeritAwarded, Source
from ledger.projections.service import Projections
from ledger.store.batch import BatchWrite
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql

# What COPY's text format would have to escape, and what a careless encoder gets wrong: backslashes, `\N`
# (text COPY's NULL), a lone `\.` (its end of data), quotes, CJK, an emoji. Names, documents and source keys
# are one line of text (the wire refuses control characters there); a note may hold tabs and line breaks.
ODD = 'back\\slash \\N \\\\N NULL \\. end 张三 😀 "quoted" ;|,\' '
ODD_NOTE = ODD + "tab\there\nnew line\r\n\u2028sep\u2029para \x7f"


def merit(cadre_id: str, key: str, *, document: str | None = None, note: str | None = None) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=date(2024, 6, 1),
        source=Source(system="hr", key=key),
        award="citation",
        level="county",
        document=document,
        note=note,
    )


def deduction(cadre_id: str, key: str) -> DeductionApplied:
    return DeductionApplied(
        cadre_id=cadre_id,
        effective_on=date(2024, 7, 1),
        source=Source(system="discipline", key=key),
        kind="criticism",
        level="unit",
    )


def batches() -> list[list[EventBase]]:
    """Three cadres, then a batch of a thousand (one COPY of many rows), then odd text in every field that
    takes free text, and a deduction."""
    cadres = ["C1", "C2", "C3"]
    first: list[EventBase] = [registration(c, key=f"reg-{c}") for c in cadres]
    big: list[EventBase] = [merit(cadres[n % 3], f"m-{n}") for n in range(1_000)]
    odd: list[EventBase] = [
        msgspec.structs.replace(registration("C4"), name=ODD, source=Source(system="hr", key=ODD)),
        merit("C1", f"odd-{ODD}", document=ODD, note=ODD_NOTE),
        deduction("C2", "d-1"),
    ]
    return [first, big, odd]


def log_rows(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(events, chain rows) as the database holds them, by position, bytes as bytes."""
    events = raw_sql(
        url, "SELECT {pos}, originator_id, originator_version, topic, state FROM {events} ORDER BY {pos}"
    )
    chain = raw_sql(url, "SELECT position, event_id, recorded_at, hash FROM ledger_chain ORDER BY position")
    return (
        [(int(r[0]), r[1], int(r[2]), r[3], bytes(r[4])) for r in events],
        [(int(r[0]), r[1], r[2], bytes(r[3])) for r in chain],
    )


def recomputed_hashes(events: list[tuple[Any, ...]], chain: list[tuple[Any, ...]]) -> list[bytes]:
    """The chain hashes by SPEC §6, computed here from the rows: SHA-256 over the previous hash and the
    event's state with its position and recording time put in front."""
    previous = bytes(32)
    hashes = []
    for (position, _oid, _version, _topic, state), (_p, _id, recorded_at, _h) in zip(
        events, chain, strict=True
    ):
        canonical = b'{"position":%d,"recorded_at":"%s",' % (position, recorded_at.encode()) + state[1:]
        previous = hashlib.sha256(previous + canonical).digest()
        hashes.append(previous)
    return hashes


def without_event_id(state: bytes, event_id: str) -> bytes:
    assert state.count(event_id.encode()) == 1
    return state.replace(event_id.encode(), b"<event id>")


def test_an_append_by_copy_records_what_executemany_records(postgres_url: str, sqlite_url: str) -> None:
    for url in (sqlite_url, postgres_url):
        with Ledger.open(url, clock=fixed_clock) as ledger:
            for batch in batches():
                ledger.post(batch, posted_by="clerk")
            assert ledger.verify().ok
    lite_events, lite_chain = log_rows(sqlite_url)
    pg_events, pg_chain = log_rows(postgres_url)
    count = 1 + 3 + 1_000 + 3  # the policy, the registrations, the merits, the odd batch
    assert [row[0] for row in pg_events] == [row[0] for row in pg_chain] == list(range(1, count + 1))
    assert [row[1:4] for row in pg_events] == [row[1:4] for row in lite_events]
    assert [without_event_id(e[4], c[1]) for e, c in zip(pg_events, pg_chain, strict=True)] == [
        without_event_id(e[4], c[1]) for e, c in zip(lite_events, lite_chain, strict=True)
    ]
    assert [row[3] for row in pg_chain] == recomputed_hashes(pg_events, pg_chain)
    assert len({row[1] for row in pg_chain}) == count
    recorded = [row[2] for row in pg_chain]
    assert recorded == sorted(recorded)


def test_odd_text_survives_copy_byte_for_byte(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        results = ledger.post(batches()[0] + batches()[2], posted_by="clerk").results
        by_position = {
            int(r[0]): bytes(r[1]) for r in raw_sql(store_url, "SELECT {pos}, state FROM {events}")
        }
        registered = json.loads(by_position[results[3].position])
        awarded = json.loads(by_position[results[4].position])
        assert (registered["name"], registered["source"]["key"]) == (ODD, ODD)
        assert (awarded["document"], awarded["note"], awarded["source"]["key"]) == (
            ODD,
            ODD_NOTE,
            f"odd-{ODD}",
        )
        # The raw bytes hold the JSON text of the one-line string: UTF-8, JSON's two escapes, nothing else
        # (the byte-for-byte comparison with SQLite's rows is in the first test, which posts this batch).
        assert (
            b'"document":' + json.dumps(ODD, ensure_ascii=False).encode() in by_position[results[4].position]
        )
        history = ledger.history("C1")
        assert [e.document for e in history.entries if e.source.key == f"odd-{ODD}"] == [ODD]
        # A retry with the same odd key is recognized (the source index holds the key exactly).
        again = ledger.post([merit("C1", f"odd-{ODD}", document=ODD, note=ODD_NOTE)], posted_by="clerk")
        assert again.results[0].replayed and again.results[0].position == results[4].position
        assert ledger.verify().ok


# Past the writer: only the database's unique source index stands between a duplicate and the log.


def recorded_events(ledger: Ledger) -> list[EventBase]:
    return [event for _position, event in ledger.records(limit=10_000)]


def append_directly(ledger: Ledger, events: list[EventBase]) -> None:
    """Append events whose server fields are set, as the writer would, without its checks."""
    versions: dict[str, int] = {}
    plan = []
    for event in events:
        stream = stream_of(event)
        versions[stream] = versions.get(stream, ledger.stream_version(stream)) + 1
        plan.append(Recorded(stream, versions[stream], event))
    application: Any = ledger._application
    batch = BatchWrite(ledger.head(), [str(event.event_id) for event in events])
    application.append(plan, batch=batch)


def fresh(event: EventBase, key: str) -> EventBase:
    """A copy of a recorded event with a new id and the source key `key`."""
    return msgspec.structs.replace(event, event_id=uuid.uuid4(), source=Source(system="hr", key=key))


@pytest.fixture
def small(store_url: str) -> Iterator[Ledger]:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="reg-C1"), merit("C1", "m-1"), merit("C1", "m-2")])
        yield ledger


def test_the_database_takes_a_fresh_event_past_the_writer(small: Ledger) -> None:
    """The baseline of the two refusals below: the same direct append without a duplicate is recorded."""
    template = recorded_events(small)[-1]
    append_directly(small, [fresh(template, "m-3"), fresh(template, "m-4")])
    assert small.head() == 6 and small.verify().ok
    assert [e.source.key for e in recorded_events(small)[-2:]] == ["m-3", "m-4"]


@pytest.mark.parametrize("duplicate", ["inside the batch", "of an earlier batch"])
def test_a_duplicate_source_is_refused_by_the_index_with_nothing_recorded(
    small: Ledger, duplicate: str
) -> None:
    before = log_rows(small.url)
    template = recorded_events(small)[-1]
    events = [fresh(template, "m-3"), fresh(template, "m-4"), fresh(template, "m-5")]
    events[2] = fresh(template, "m-3" if duplicate == "inside the batch" else "m-1")
    with pytest.raises(IntegrityError, match=r"(?i)unique|duplicate"):
        append_directly(small, events)
    assert log_rows(small.url) == before
    assert small.verify().ok
    # The ledger goes on: the next post lands right after the head.
    assert small.post([merit("C1", "m-3")]).results[0].position == 5


# Imports.


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The small demo city (about 20,000 events: every kind of event), exported from SQLite."""
    path: Path = tmp_path_factory.mktemp("demo") / "demo.db"
    with Ledger.open(f"sqlite:///{path}", clock=fixed_clock) as ledger:
        run_demo(ledger, seed=3, scale="small", today=date(2025, 12, 15))
        stream = io.BytesIO()
        ledger.export(stream)
    return stream.getvalue()


def test_an_import_by_copy_verifies_and_holds_the_exported_rows(
    demo_export: bytes, postgres_url: str, sqlite_url: str
) -> None:
    for url in (sqlite_url, postgres_url):
        with Ledger.open(url, clock=fixed_clock, publish_illustrative=False) as ledger:
            imported = ledger.import_(io.BytesIO(demo_export))
            report = ledger.verify()
            assert report.ok and report.verified_through == imported
            exported = io.BytesIO()
            ledger.export(exported)
            assert exported.getvalue() == demo_export
    assert log_rows(postgres_url) == log_rows(sqlite_url)
    events, chain = log_rows(postgres_url)
    assert [row[3] for row in chain] == recomputed_hashes(events, chain)
    assert imported > 10_000  # many COPY batches of 1,000


def rechained(lines: list[bytes], first: int) -> list[bytes]:
    """Export lines from index `first` on with hashes recomputed after an edit (what an export that was
    built on purpose would carry)."""
    previous = bytes.fromhex(json.loads(lines[first - 1])["hash"]) if first > 1 else bytes(32)
    for index in range(first, len(lines)):
        line = json.loads(lines[index])
        body = lines[index][: lines[index].rindex(b',"hash":')]
        line["hash"] = hashlib.sha256(previous + body + b"}").hexdigest()
        lines[index] = body + b',"hash":"%s","prev_hash":"%s"}\n' % (
            line["hash"].encode(),
            previous.hex().encode(),
        )
        previous = bytes.fromhex(line["hash"])
    header = json.loads(lines[0])
    header["head_hash"] = previous.hex()
    lines[0] = json.dumps(header, separators=(",", ":")).encode() + b"\n"
    return lines


@pytest.mark.parametrize(
    ("copy_of", "into"), [(500, 1_500), (1_200, 1_500)], ids=["earlier-batch", "same-batch"]
)
def test_an_import_repeating_a_source_is_refused_at_that_batch(
    demo_export: bytes, postgres_url: str, copy_of: int, into: int
) -> None:
    """An export whose chain is intact but that repeats a source: the batch holding the repeat (the second
    thousand) is refused by the index; the first thousand stays, nothing of the second."""
    lines = demo_export.splitlines(keepends=True)
    source = json.loads(lines[copy_of])["source"]
    target = json.loads(lines[into])
    old = json.dumps({"source": target["source"]}, ensure_ascii=False, separators=(",", ":"))[1:-1]
    new = json.dumps({"source": source}, ensure_ascii=False, separators=(",", ":"))[1:-1]
    assert lines[into].count(old.encode()) == 1 and source != target["source"]
    lines[into] = lines[into].replace(old.encode(), new.encode())
    crafted = b"".join(rechained(lines, into))
    with Ledger.open(postgres_url, clock=fixed_clock, publish_illustrative=False) as ledger:
        with pytest.raises(IntegrityFailure, match="repeats an event"):
            ledger.import_(io.BytesIO(crafted))
        assert ledger.head() == 1_000
        assert ledger.verify().ok
    events, chain = log_rows(postgres_url)
    assert len(events) == len(chain) == 1_000


# Rebuilds.


def facts_of(url: str, version: int) -> list[tuple[Any, ...]]:
    rows = raw_sql(url, f"SELECT * FROM projection_facts_v{version} ORDER BY position")
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def test_a_rebuild_on_postgres_equals_a_rebuild_on_sqlite(
    demo_export: bytes, postgres_url: str, sqlite_url: str
) -> None:
    outcome: dict[str, Any] = {}
    for store, url in (("sqlite", sqlite_url), ("postgres", postgres_url)):
        with Ledger.open(url, clock=fixed_clock, publish_illustrative=False) as ledger:
            head = ledger.import_(io.BytesIO(demo_export))
            projections = Projections.open(ledger)
            try:
                assert projections.rebuild() == head
                version = projections.version
                ranking = projections.rankings(as_of=date(2025, 12, 15), limit=5_000)
                tracking = raw_sql(
                    url,
                    "SELECT position, digest, log_hash FROM projection_tracking WHERE version = ?",
                    (version,),
                )
            finally:
                projections.close()
        outcome[store] = (
            facts_of(url, version),
            [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in tracking],
            ranking,
        )
    lite, pg = outcome["sqlite"], outcome["postgres"]
    assert len(pg[0]) == head and [row[0] for row in pg[0]] == list(range(1, head + 1))
    assert pg[0] == lite[0]
    assert pg[1] == lite[1] and pg[1][0][0] == head
    assert msgspec.to_builtins(pg[2].entries) == msgspec.to_builtins(lite[2].entries)


def test_a_duplicate_fact_written_by_copy_is_reported_as_damage(postgres_url: str) -> None:
    from ledger.projections.errors import ReadModelsDamaged
    from ledger.projections.facts import facts_of_stored
    from ledger.projections.store import FactStore

    with Ledger.open(postgres_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1", key="reg-C1"), merit("C1", "m-1")])
        projections = Projections.open(ledger)
        try:
            version = projections.version
            facts = facts_of_stored(ledger.stored())
        finally:
            projections.close()
        store = FactStore(postgres_url)
        try:
            position = store.tracking(version)
            assert position is not None and position.position == 3
            # Move the tracking back so that the compare and set passes and the COPY meets the rows.
            raw_sql(postgres_url, "UPDATE projection_tracking SET position = 1 WHERE version = ?", (version,))
            with pytest.raises(ReadModelsDamaged, match="already holds a row"):
                store.write(version, facts[1:], 1, 3, digest=b"x", log_hash=b"y")
            after = store.tracking(version)
            assert after is not None and after.position == 1  # the failed write moved nothing
            raw_sql(postgres_url, f"DROP TABLE projection_facts_v{version}")
            with pytest.raises(ReadModelsDamaged, match="is missing"):
                store.write(version, facts[1:], 1, 3, digest=b"x", log_hash=b"y")
        finally:
            store.close()


# Statistics.


def test_a_ledger_growing_by_appends_alone_gets_statistics(postgres_url: str) -> None:
    """Autovacuum is off on the test server (and may be on others): an append analyzes the log's tables
    once the log passes 10,000 events, then again when it has doubled the rows the last ANALYZE counted.
    Seen in `pg_class.reltuples`, which ANALYZE sets (exactly, for tables this small)."""

    def counted() -> tuple[float, float]:
        rows = dict(
            raw_sql(
                postgres_url,
                "SELECT relname, reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                "AND relname IN ('ledger_events', 'ledger_chain')",
            )
        )
        # -1 (never analyzed) and 0 (counted when the indexes were built on the empty tables) alike.
        return max(0.0, float(rows["ledger_events"])), max(0.0, float(rows["ledger_chain"]))

    seen = []
    with Ledger.open(postgres_url, clock=fixed_clock) as ledger:
        ledger.post([registration(f"C{n}", key=f"reg-{n}") for n in range(10)])
        position = ledger.head()
        assert position == 11  # the policy and ten registrations
        while position < 21_000:
            result = ledger.post([merit(f"C{n % 10}", f"m-{position}-{n}") for n in range(1_000)])
            position = result.results[-1].position
            seen.append((position, counted()))
    # 1,011 … 9,011: never analyzed; 10,011: analyzed; 11,011 … 20,011: below 2 × 10,011 = 20,022, not
    # again; 21,011: analyzed again.
    expected = [(head, (0.0, 0.0)) for head in range(1_011, 10_000, 1_000)]
    expected += [(head, (10_011.0, 10_011.0)) for head in range(10_011, 21_000, 1_000)]
    assert seen == [*expected, (21_011, (21_011.0, 21_011.0))]


def test_notify_is_still_sent_after_an_append_by_copy(postgres_url: str) -> None:
    """Followers (eventsourcing's LISTEN) learn of an append: the NOTIFY goes in the append's transaction.

    A channel is the database's, not a schema's, and other tests append in their own schemas at the same
    time: this one gets a database of its own, so that the one notification it hears is its append's."""
    from urllib.parse import urlsplit

    from psycopg import sql

    from tests.conftest import require_postgres

    base = require_postgres()
    name = f"notify_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    own = urlsplit(base)._replace(path=f"/{name}", query="").geturl()
    try:
        with (
            Ledger.open(own, clock=fixed_clock) as ledger,
            psycopg.connect(own, autocommit=True) as listener,
        ):
            listener.execute("LISTEN ledger_events")
            ledger.post([registration("C1", key="reg-C1"), merit("C1", "m-1")])
            received = list(listener.notifies(timeout=10, stop_after=1))
            assert list(listener.notifies(timeout=0.5)) == []  # one append, one notification
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    assert [note.channel for note in received] == ["ledger_events"]
