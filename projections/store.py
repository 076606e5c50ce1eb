"""Where the read models persist: their facts, by version, and how far each version has folded the log.

Tables (in the ledger's own database):
- `projection_facts_v<N>` — one row per event folded into version N: the fact (see `facts.py`). Rows are
  only inserted: a reversal is a fact of its own, applied when the facts are folded into the index.
- `projection_tracking` — `(version, position)`: the log position version N has folded.
- `projection_meta` — `current_version`: the version reads use; `facts_format`: the shape the facts were
  written in (persisted facts of another shape are rebuilt from the log when opened).

Exactly once: a page of facts and the new tracking position are written in one transaction, and the
tracking row is updated only if it still holds the position the page started from (compare and set). Two
processes folding the same version cannot both commit a page: the loser rolls back and reads the winner's
rows instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Final

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ledger.projections.facts import Fact
from ledger.store.sql import engine_for

__all__ = ["FactStore"]

LOAD_PAGE_ROWS: Final = 50_000
# An arbitrary constant naming the advisory lock under which read-model tables are created or dropped.
SCHEMA_LOCK_KEY: Final = 0x1ED6E3
_detail_encoder = msgspec.msgpack.Encoder()
_detail_decoder = msgspec.msgpack.Decoder(tuple[str | int | bool | None, ...])


def facts_table(version: int) -> str:
    return f"projection_facts_v{int(version)}"


class FactStore:
    """The persisted facts of the read models, by version."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = engine_for(url)
        postgres = self.engine.dialect.name == "postgresql"
        self.blob = "BYTEA" if postgres else "BLOB"
        # On SQLite only INTEGER PRIMARY KEY is the rowid itself; BIGINT would build a second index.
        self.position_key = "BIGINT PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY"
        with self._schema_change() as connection:
            connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS projection_meta "
                    "(name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)"
                )
            )
            connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS projection_tracking "
                    "(version INTEGER PRIMARY KEY, position BIGINT NOT NULL)"
                )
            )

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _schema_change(self) -> Iterator[Connection]:
        """A transaction for creating or dropping tables, one process at a time.

        On PostgreSQL, concurrent `CREATE TABLE IF NOT EXISTS` can both pass the check and one fails on
        the catalog's unique index; an advisory lock held to the end of the transaction serializes them.
        SQLite serializes writers anyway.
        """
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            yield connection

    def current_version(self) -> int:
        """The version reads use; version 1 is created on first use."""
        with self.engine.begin() as connection:
            row = connection.execute(text("SELECT value FROM projection_meta WHERE name = 'current_version'"))
            value = row.scalar()
            if value is not None:
                return int(value)
        self.create_version(1)
        with self.engine.begin() as connection:
            # Another process may set it first: then its value stands.
            connection.execute(
                text("INSERT INTO projection_meta VALUES ('current_version', '1') ON CONFLICT DO NOTHING")
            )
        return self.current_version()

    def create_version(self, version: int) -> None:
        with self._schema_change() as connection:
            connection.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {facts_table(version)} (position {self.position_key}, "
                    "kind SMALLINT NOT NULL, cadre VARCHAR(64), effective_on INTEGER NOT NULL, "
                    "counts_from INTEGER NOT NULL, cents BIGINT NOT NULL, target BIGINT NOT NULL, "
                    f"detail {self.blob}, award SMALLINT NOT NULL)"
                )
            )
            connection.execute(
                text("INSERT INTO projection_tracking VALUES (:v, 0) ON CONFLICT (version) DO NOTHING"),
                {"v": version},
            )

    def switch(self, version: int) -> None:
        """Make `version` the one reads use."""
        with self.engine.begin() as connection:
            connection.execute(
                text("UPDATE projection_meta SET value = :v WHERE name = 'current_version'"),
                {"v": str(version)},
            )

    def drop_version(self, version: int) -> None:
        with self._schema_change() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {facts_table(version)}"))
            connection.execute(text("DELETE FROM projection_tracking WHERE version = :v"), {"v": version})

    def facts_format(self) -> int | None:
        """The shape of the persisted facts (`FACTS_FORMAT` when they were written); None if never set."""
        with self.engine.begin() as connection:
            value = connection.execute(
                text("SELECT value FROM projection_meta WHERE name = 'facts_format'")
            ).scalar()
            return int(value) if value is not None else None

    def set_facts_format(self, facts_format: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO projection_meta VALUES ('facts_format', :f) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                ),
                {"f": str(facts_format)},
            )

    def claim_upgrade(self, now: float, stale_after: float) -> bool:
        """Claim the rebuild of facts persisted in an older shape, so that one process does it while the
        others wait. A claim older than `stale_after` seconds (its process died) may be taken over."""
        with self.engine.begin() as connection:
            taken = connection.execute(
                text("INSERT INTO projection_meta VALUES ('upgrade_claim', :now) ON CONFLICT DO NOTHING"),
                {"now": repr(now)},
            )
            if taken.rowcount == 1:
                return True
            held = connection.execute(
                text("SELECT value FROM projection_meta WHERE name = 'upgrade_claim'")
            ).scalar()
            if held is None or now - float(held) <= stale_after:
                return False
            moved = connection.execute(
                text(
                    "UPDATE projection_meta SET value = :now WHERE name = 'upgrade_claim' AND value = :held"
                ),
                {"now": repr(now), "held": held},
            )
            return bool(moved.rowcount == 1)

    def release_upgrade(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(text("DELETE FROM projection_meta WHERE name = 'upgrade_claim'"))

    def versions(self) -> list[int]:
        with self.engine.begin() as connection:
            return [
                int(row[0]) for row in connection.execute(text("SELECT version FROM projection_tracking"))
            ]

    def state(self) -> tuple[int, int] | None:
        """`(current_version, its tracked position)` in one query; None before the first version exists."""
        with self.engine.begin() as connection:
            row = connection.execute(
                text(
                    "SELECT t.version, t.position FROM projection_meta m JOIN projection_tracking t "
                    "ON t.version = CAST(m.value AS INTEGER) WHERE m.name = 'current_version'"
                )
            ).first()
            return None if row is None else (int(row[0]), int(row[1]))

    def tracking(self, version: int) -> int:
        with self.engine.begin() as connection:
            value = connection.execute(
                text("SELECT position FROM projection_tracking WHERE version = :v"), {"v": version}
            ).scalar()
            return int(value) if value is not None else 0

    def write(self, version: int, facts: Sequence[Fact], start: int, end: int) -> bool:
        """Insert `facts` and move version's tracking from `start` to `end`, in one transaction.

        False (and nothing written) if the tracking position is no longer `start`.
        """
        with self.engine.begin() as connection:
            moved = connection.execute(
                text(
                    "UPDATE projection_tracking SET position = :end WHERE version = :v AND position = :start"
                ),
                {"end": end, "v": version, "start": start},
            )
            if moved.rowcount != 1:
                connection.rollback()
                return False
            self._insert(connection, version, facts)
        return True

    def _insert(self, connection: Connection, version: int, facts: Sequence[Fact]) -> None:
        rows = [
            (
                fact.position,
                fact.kind,
                fact.cadre,
                fact.effective_on,
                fact.counts_from,
                fact.cents,
                fact.target,
                _detail_encoder.encode(fact.detail) if fact.detail else None,
                fact.award,
            )
            for fact in facts
        ]
        if not rows:
            return
        placeholder = "%s" if self.engine.dialect.name == "postgresql" else "?"
        statement = f"INSERT INTO {facts_table(version)} VALUES ({', '.join([placeholder] * 9)})"
        connection.exec_driver_sql(statement, rows)

    def load(self, version: int, after: int, until: int | None = None) -> Iterator[list[Fact]]:
        """The facts of `version` after position `after` (up to `until`), in pages, in position order."""
        while True:
            bound = "" if until is None else " AND position <= :until"
            with self.engine.begin() as connection:
                rows = connection.execute(
                    text(
                        "SELECT position, kind, cadre, effective_on, counts_from, cents, target, detail, "
                        f"award FROM {facts_table(version)} WHERE position > :after{bound} "
                        "ORDER BY position LIMIT :limit"
                    ),
                    {"after": after, "until": until, "limit": LOAD_PAGE_ROWS},
                ).all()
            if not rows:
                return
            yield [
                Fact(
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    _detail_decoder.decode(row[7]) if row[7] is not None else (),
                    row[8],
                )
                for row in rows
            ]
            after = rows[-1][0]
