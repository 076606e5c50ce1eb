"""Tamper evidence for the read-model tables (issue 10, items 1 and 4; SPEC §8: every table beside the log is
derived from it and checked against it, or harmless when altered).

Goal: no single-row change an insider can make to `projection_facts_v<N>`, `projection_tracking` or
`projection_meta` (nor dropping the facts table) makes a process serve reads that differ from the log.
Method: a small ledger (three cadres, thirteen events: the API tests' seed plus a deduction, a transfer and
a reversal), its read models persisted once; the pristine rows are kept, and for each case the tables are
put back, one row is altered, deleted or inserted by SQL, then (1) the read models are verified against a
refold of the log (`read_model_findings`, which is what `ledger verify --read-models` runs) and (2) a fresh
`Projections.open` answers a set of reads (rankings of three scopes and bases, every cadre's standing and
eligibility, boards and recalls). Each case must be

- **detected**: verify reports it, and the open refuses the facts (a CRITICAL line) and rebuilds, so the
  reads equal those of a from-scratch fold of the log; or
- **harmless**: the open serves the tables as they are and the reads are unchanged (verify may report
  the change all the same: a tracking row of a version that does not exist).

A refusal at load that verify does not report is a miss too.

In both cases the reads must equal the fold of the log: a case whose reads differ fails the test. The
from-scratch fold is a rebuild before any tampering, held to totals computed by hand from the illustrative
policy (C1 1.00 + 5.00 − 1.00, C2 1.00 + 2.00, C3 2.00 after its citation is reversed). Each test prints
one line per table (run with `-s`) and records the counts as the junit property `tamper_counts`;
docs/reliability.md quotes them.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from ledger import Ledger
from ledger.domain.events import CadreTransferred, DeductionApplied, EntryReversed, Source
from ledger.projections.facts import FACTS_FORMAT
from ledger.projections.integrity import read_model_findings
from ledger.projections.service import Projections
from ledger.projections.store import FactStore
from tests.api.conftest import seed
from tests.conftest import fixed_clock

CADRES = ("C1", "C2", "C3")
HAND_TOTALS = {"C1": Decimal("5.00"), "C2": Decimal("3.00"), "C3": Decimal("2.00")}
FACT_COLUMNS = (
    "position",
    "kind",
    "cadre",
    "effective_on",
    "counts_from",
    "cents",
    "target",
    "detail",
    "award",
)
TRACKING_COLUMNS = ("version", "position", "digest", "log_hash")
KINDS = 17


def build(url: str) -> Ledger:
    ledger = Ledger.open(url, clock=fixed_clock)
    seed(ledger)
    citation_of_c3 = ledger.events(after=8, limit=1)[0].event
    assert isinstance(citation_of_c3.event_id, uuid.UUID)
    ledger.post(
        [
            DeductionApplied(
                cadre_id="C1",
                effective_on=date(2025, 3, 1),
                source=Source(system="discipline", key="d-1"),
                kind="criticism",
                level="unit",
            ),
            CadreTransferred(
                cadre_id="C2",
                effective_on=date(2025, 2, 1),
                source=Source(system="hr", key="t-1"),
                unit_id="U2",
            ),
            EntryReversed(
                cadre_id="C3",
                effective_on=date(2025, 2, 3),
                source=Source(system="hr", key="r-1"),
                target_event_id=citation_of_c3.event_id,
                reason="appeal",
            ),
        ],
        posted_by="tamper",
    )
    return ledger


def reads(projections: Projections) -> Any:
    """Every kind of read, as plain data."""
    return msgspec.to_builtins(
        [
            projections.rankings("all"),
            projections.rankings("unit:U1"),
            projections.rankings("all", period="2024Q2", basis="period"),
            [projections.cadre(cadre_id) for cadre_id in CADRES],
            [projections.eligibility(cadre_id) for cadre_id in CADRES],
            projections.boards("2024"),
            projections.recalls("2024", scope="all"),
        ]
    )


class Database:
    """A raw connection to the ledger's database, for restoring and tampering in one transaction."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.postgres = parts.scheme != "sqlite"
        if self.postgres:
            import psycopg

            schema = parse_qs(parts.query)["schema"][0]
            self.connection: Any = psycopg.connect(
                parts._replace(query="").geturl(), options=f"-c search_path={schema}"
            )
        else:
            self.connection = sqlite3.connect(parts.path[1:])

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cursor = self.connection.cursor()
        cursor.execute(self.sql(statement), params)
        rows = cursor.fetchall() if cursor.description else []
        self.connection.commit()
        return rows

    def facts_tables(self) -> list[str]:
        if self.postgres:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return [row[0] for row in self.execute(query) if row[0].startswith("projection_facts_v")]

    def restore(self, ddl: str, facts: list[tuple[Any, ...]], tracking: list[tuple[Any, ...]]) -> None:
        cursor = self.connection.cursor()
        for table in self.facts_tables():
            cursor.execute(f"DROP TABLE {table}")
        cursor.execute(ddl)
        cursor.executemany(
            self.sql("INSERT INTO projection_facts_v1 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), facts
        )
        cursor.execute("DELETE FROM projection_tracking")
        cursor.executemany(self.sql("INSERT INTO projection_tracking VALUES (?, ?, ?, ?)"), tracking)
        cursor.execute(
            "DELETE FROM projection_meta WHERE name IN ('current_version', 'facts_format', 'upgrade_claim')"
        )
        cursor.execute("INSERT INTO projection_meta VALUES ('current_version', '1')")
        cursor.execute(
            self.sql("INSERT INTO projection_meta VALUES ('facts_format', ?)"), (str(FACTS_FORMAT),)
        )
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def other_detail(detail: bytes | None) -> bytes:
    """A plausible other detail: one item changed (a number plus one, a text or null replaced)."""
    if detail is None:
        return msgspec.msgpack.encode(["U1"])
    items = list(msgspec.msgpack.decode(bytes(detail)))
    first = items[0]
    if isinstance(first, bool) or not isinstance(first, int):
        items[0] = "changed" if first != "changed" else "other"
    else:
        items[0] = first + 1
    return msgspec.msgpack.encode(items)


def fact_alterations(row: tuple[Any, ...], free_position: int) -> Iterator[tuple[str, Any]]:
    """`(column, new value)`: each column of a fact row changed to another plausible value."""
    _position, kind, cadre, effective_on, counts_from, cents, target, detail, award = row
    yield "position", free_position
    yield "kind", (kind + 1) % KINDS
    yield "cadre", "C1" if cadre != "C1" else "C2"
    yield "effective_on", effective_on + 1
    yield "counts_from", counts_from - 1
    yield "cents", cents + 100
    yield "target", target + 1 if target == 0 else target - 1
    yield "detail", other_detail(detail)
    yield "award", award + 1


def tracking_alterations(row: tuple[Any, ...], hashes: list[bytes]) -> Iterator[tuple[str, Any]]:
    """`(column, new value)`: each column of the tracking row changed to other plausible values."""
    version, position, digest, _log_hash = row
    yield "version", version + 1
    yield "version", 0
    yield "position", position - 1
    yield "position", position + 1
    yield "position", 0
    flipped = bytes([bytes(digest)[0] ^ 1]) + bytes(digest)[1:]
    yield "digest", flipped
    yield "digest", None
    yield "log_hash", hashes[position - 2]  # the hash of the position before
    yield "log_hash", None


class Tally:
    def __init__(self) -> None:
        self.tried: Counter[str] = Counter()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.reported: Counter[str] = Counter()  # harmless cases that verify reports all the same
        self.misses: list[str] = []


@contextmanager
def bench(url: str) -> Iterator[tuple[Ledger, Database]]:
    ledger = build(url)
    database = Database(url)
    try:
        yield ledger, database
    finally:
        database.close()
        ledger.close()


def run_store(
    url: str, store: str, caplog: pytest.LogCaptureFixture, record_property: Callable[[str, object], None]
) -> None:
    caplog.set_level(logging.CRITICAL, logger="ledger.projections")
    with bench(url) as (ledger, database):
        Projections.open(ledger).close()
        # The from-scratch fold of the log, before anything is touched: a rebuild.
        fresh = Projections(ledger, FactStore(url))
        fresh.rebuild()
        expected = reads(fresh)
        assert {entry.cadre_id: entry.total for entry in fresh.rankings("all").entries} == HAND_TOTALS
        fresh.close()
        # Put the tables in the layout every case starts from: version 1, as a first open leaves them.
        facts = [
            tuple(row) for row in database.execute("SELECT * FROM projection_facts_v2 ORDER BY position")
        ]
        tracking = [
            (1, row[1], row[2], row[3])
            for row in database.execute("SELECT version, position, digest, log_hash FROM projection_tracking")
        ]
        ddl = read_ddl(database)
        hashes = [
            bytes(row[0]) for row in database.execute("SELECT hash FROM ledger_chain ORDER BY position")
        ]
        head = len(facts)
        tally = Tally()

        def case(table: str, kind: str, mutate: str, params: tuple[Any, ...] = ()) -> None:
            database.restore(ddl, facts, tracking)
            database.execute(mutate, params)
            caplog.clear()
            store_ = FactStore(url)
            try:
                findings = read_model_findings(ledger, store_)
            finally:
                store_.close()
            projections = Projections.open(ledger)
            try:
                answered = reads(projections)
            finally:
                projections.close()
            refused = any(record.levelno == logging.CRITICAL for record in caplog.records)
            label = f"{table} {kind}: {mutate} {params!r}"
            tally.tried[table] += 1
            if answered != expected:
                tally.misses.append(f"{label}: reads differ from the log's (findings {findings})")
                return
            if refused and not findings:
                tally.misses.append(f"{label}: refused at load but verify reported nothing")
                return
            if refused:
                tally.outcomes[(table, "detected")] += 1
            else:
                tally.outcomes[(table, "harmless")] += 1
                tally.reported[table] += bool(findings)

        facts_table = "projection_facts_v1"
        for row in _rows_to_alter(facts, store):
            position = row[0]
            for column, value in fact_alterations(row, head + 1):
                case(
                    facts_table,
                    f"alter {column}",
                    f"UPDATE {facts_table} SET {column} = ? WHERE position = ?",
                    (value, position),
                )
            case(facts_table, "delete", f"DELETE FROM {facts_table} WHERE position = ?", (position,))
            case(
                facts_table,
                "insert",
                f"INSERT INTO {facts_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (head + 1, *row[1:]),
            )
        for position in (0, -1):
            case(
                facts_table,
                "insert",
                f"INSERT INTO {facts_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (position, *facts[-1][1:]),
            )
        (row,) = tracking
        for column, value in tracking_alterations(row, hashes):
            case(
                "projection_tracking",
                f"alter {column}",
                f"UPDATE projection_tracking SET {column} = ?",
                (value,),
            )
        case("projection_tracking", "delete", "DELETE FROM projection_tracking")
        for version in (2, 0):
            case(
                "projection_tracking",
                "insert",
                "INSERT INTO projection_tracking VALUES (?, ?, ?, ?)",
                (version, *row[1:]),
            )
        meta = "projection_meta"
        for value in ("2", "0", "-1", "abc", ""):
            case(
                meta,
                "alter current_version",
                "UPDATE projection_meta SET value = ? WHERE name = ?",
                (value, "current_version"),
            )
        for value in (str(FACTS_FORMAT - 1), str(FACTS_FORMAT + 1), "x", ""):
            case(
                meta,
                "alter facts_format",
                "UPDATE projection_meta SET value = ? WHERE name = ?",
                (value, "facts_format"),
            )
        for name in ("current_version", "facts_format"):
            case(meta, f"delete {name}", "DELETE FROM projection_meta WHERE name = ?", (name,))
        for claim in ("9e12", "abc", "0"):
            case(
                meta,
                "insert upgrade_claim",
                "INSERT INTO projection_meta VALUES ('upgrade_claim', ?)",
                (claim,),
            )
        case(meta, "insert another name", "INSERT INTO projection_meta VALUES ('current_versions', '2')")
        case(facts_table, "drop the table", f"DROP TABLE {facts_table}")
    record_property(
        "tamper_counts",
        {
            table: {
                "tried": tally.tried[table],
                **{o: tally.outcomes[(table, o)] for o in ("detected", "harmless")},
            }
            for table in tally.tried
        },
    )
    for table in tally.tried:
        print(
            f"\nread-model tamper cases on {store}, {table}: {tally.tried[table]} tried, "
            f"{tally.outcomes[(table, 'detected')]} detected (reported by verify, refused at load), "
            f"{tally.outcomes[(table, 'harmless')]} harmless (reads unchanged; "
            f"{tally.reported[table]} of them reported by verify all the same)"
        )
    assert not tally.misses, "\n".join(tally.misses[:40])
    assert sum(tally.tried.values()) == sum(tally.outcomes.values())
    # Nine columns, a deletion and an insertion for each of the 13 facts, two insertions below position 1;
    # nine tracking alterations, its deletion and two insertions.
    # projection_meta: five current_version values, four facts_format values, two deletions, three
    # upgrade claims and an unknown name; and the facts table dropped.
    assert tally.tried == {
        "projection_facts_v1": len(_rows_to_alter(facts, store)) * 11 + 3,
        "projection_tracking": 12,
        "projection_meta": 15,
    }


def _rows_to_alter(facts: list[tuple[Any, ...]], store: str) -> list[tuple[Any, ...]]:
    """SQLite alters every fact. PostgreSQL runs the same checks over the same code with other SQL, so it
    alters one fact of each kind the seed has, and the last (all 13 cost a minute of CI)."""
    if store == "sqlite":
        return facts
    first_of_kind = {row[1]: row for row in reversed(facts)}
    return sorted({*first_of_kind.values(), facts[-1]}, key=lambda row: row[0])


def read_ddl(database: Database) -> str:
    """The CREATE TABLE of version 1's facts (as `FactStore.create_version` writes it)."""
    blob = "BYTEA" if database.postgres else "BLOB"
    key = "BIGINT PRIMARY KEY" if database.postgres else "INTEGER PRIMARY KEY"
    return (
        f"CREATE TABLE projection_facts_v1 (position {key}, kind SMALLINT NOT NULL, cadre VARCHAR(64), "
        "effective_on INTEGER NOT NULL, counts_from INTEGER NOT NULL, cents BIGINT NOT NULL, "
        f"target BIGINT NOT NULL, detail {blob}, award SMALLINT NOT NULL)"
    )


def test_every_single_row_change_to_sqlite_read_models_is_detected_or_harmless(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, record_property: Callable[[str, object], None]
) -> None:
    run_store(sqlite_url, "sqlite", caplog, record_property)


@pytest.mark.postgres
def test_every_single_row_change_to_postgresql_read_models_is_detected_or_harmless(
    postgres_url: str, caplog: pytest.LogCaptureFixture, record_property: Callable[[str, object], None]
) -> None:
    run_store(postgres_url, "postgres", caplog, record_property)
