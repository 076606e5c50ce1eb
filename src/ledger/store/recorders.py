"""Application recorders for SQLite and PostgreSQL that append events, chain and source keys atomically.

eventsourcing's recorders store the events (`stored_events` on SQLite, `ledger_events` on PostgreSQL) and
read them back; these subclasses replace the append so that one transaction, holding the write lock:

1. reads the head of the chain and refuses to go on (`StaleHead`) if the log moved since the batch was
   decided — every rule (idempotency, lifecycle, caps) was checked against a complete log;
2. gives the events dense positions head+1 … head+n (SQLite rowid, PostgreSQL notification_id), so that
   a gap in positions always means a deleted row;
3. writes each event's chain row (position, event id, recording time, hash) in position order;
4. writes each event's source key with the fingerprint of its content (`ledger_sources`), whose primary
   key makes `(system, key)` unique for ever.

SQLite takes its write lock with `BEGIN IMMEDIATE`; PostgreSQL with eventsourcing's `LOCK TABLE … IN
EXCLUSIVE MODE`, which lets readers go on. Both serialize appends, so commit order is position order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.integrity.chain import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    format_recorded_at,
)
from ledger.integrity.verify import LogRow
from ledger.store.batch import AppendOutcome, BatchWrite, StaleHead

__all__ = ["Head", "LedgerRecorder", "LedgerSQLiteRecorder"]

VERIFY_PAGE_ROWS = 20_000
SOURCE_KEYS_PER_QUERY = 1_000  # 2,000 parameters: within SQLite's and PostgreSQL's limits
WAL_CHECKPOINT_PAGES = 16_384  # 64 MiB of 4 KiB pages


class Head:
    """The newest position of the log, its hash and recording time (position 0: the empty log)."""

    __slots__ = ("hash", "position", "recorded_at")

    def __init__(self, position: int, hash_: bytes, recorded_at: str) -> None:
        self.position = position
        self.hash = hash_
        self.recorded_at = recorded_at


EMPTY_HEAD = Head(0, GENESIS_HASH, "")


class LedgerRecorder:
    """The SQL the ledger needs beyond eventsourcing's, written once for both engines.

    Subclasses set `placeholder`, `position_column`, the table names and `_cursor()`.
    """

    placeholder = "?"
    position_column = "rowid"
    events_table = "stored_events"
    chain_table = "ledger_chain"
    sources_table = "ledger_sources"
    meta_table = "ledger_meta"

    def _cursor(self, *, write: bool) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return (
            text.replace("?", self.placeholder)
            .replace("{events}", self.events_table)
            .replace("{chain}", self.chain_table)
            .replace("{sources}", self.sources_table)
            .replace("{meta}", self.meta_table)
            .replace("{pos}", self.position_column)
        )

    def ledger_tables(self, blob: str, position_key: str) -> list[str]:
        """The ledger's own tables. `position_key` is the chain's key type: on SQLite `INTEGER PRIMARY KEY`
        makes the position the rowid itself, so reading events joined to their chain rows (verify) costs one
        B-tree seek a row instead of two."""
        return [
            self._sql(statement)
            for statement in (
                "CREATE TABLE IF NOT EXISTS {chain} (position " + position_key + ", "
                "event_id TEXT NOT NULL UNIQUE, recorded_at TEXT NOT NULL, hash " + blob + " NOT NULL)",
                "CREATE INDEX IF NOT EXISTS {chain}_recorded_at ON {chain} (recorded_at)",
                "CREATE TABLE IF NOT EXISTS {sources} (system TEXT NOT NULL, key TEXT NOT NULL, fingerprint "
                + blob
                + " NOT NULL, position BIGINT NOT NULL, "
                "PRIMARY KEY (system, key))",
                "CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            )
        ]

    # The append, inside a transaction that holds the write lock.

    def _append(
        self,
        cursor: Any,
        stored_events: Sequence[StoredEvent],
        batch: BatchWrite,
        imported: Sequence[tuple[str, bytes]] | None,
    ) -> list[int]:
        head = self._read_head(cursor)
        if head.position != batch.expected_head:
            raise StaleHead(f"log head is {head.position}, expected {batch.expected_head}")
        first = head.position + 1
        previous = head.hash
        hashes: list[bytes] = []
        chain_rows = []
        if imported is None:
            now = format_recorded_at(datetime.now(UTC))
            # recorded_at never decreases with position, whatever the clocks of the writers say.
            recorded_at = max(now, head.recorded_at)
            recorded = [recorded_at] * len(stored_events)
        else:
            recorded = [row[0] for row in imported]
        for offset, stored in enumerate(stored_events):
            position = first + offset
            current = chain_hash(previous, canonical_bytes(position, recorded[offset], stored.state))
            if imported is not None and current != imported[offset][1]:
                raise IntegrityError(f"imported event at position {position} does not chain")
            hashes.append(current)
            chain_rows.append((position, batch.event_ids[offset], recorded[offset], current))
            previous = current
        cursor.executemany(
            self._sql(
                "INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            [
                (str(s.originator_id), s.originator_version, s.topic, s.state, first + offset)
                for offset, s in enumerate(stored_events)
            ],
        )
        cursor.executemany(self._sql("INSERT INTO {chain} VALUES (?, ?, ?, ?)"), chain_rows)
        cursor.executemany(
            self._sql("INSERT INTO {sources} VALUES (?, ?, ?, ?)"),
            [
                (system, key, fingerprint, first + offset)
                for offset, (system, key, fingerprint) in enumerate(batch.sources)
            ],
        )
        batch.outcome = AppendOutcome(first, recorded[0] if recorded else "", hashes)
        return list(range(first, first + len(stored_events)))

    def _read_head(self, cursor: Any) -> Head:
        cursor.execute(
            self._sql("SELECT position, hash, recorded_at FROM {chain} ORDER BY position DESC LIMIT 1")
        )
        row = cursor.fetchone()
        if row is None:
            return EMPTY_HEAD
        return Head(row[0], bytes(row[1]), row[2])

    # Reads.

    def head(self) -> Head:
        with self._cursor(write=False) as cursor:
            return self._read_head(cursor)

    def sources(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[bytes, int]]:
        """The recorded fingerprint and position of each `(system, key)` that exists (one query per
        batch: the keys are joined as a VALUES list against the primary key)."""
        found: dict[tuple[str, str], tuple[bytes, int]] = {}
        if not keys:
            return found
        with self._cursor(write=False) as cursor:
            for start in range(0, len(keys), SOURCE_KEYS_PER_QUERY):
                chunk = keys[start : start + SOURCE_KEYS_PER_QUERY]
                values = ", ".join(["(?, ?)"] * len(chunk))
                cursor.execute(
                    self._sql(
                        f"WITH wanted (system, key) AS (VALUES {values}) "
                        "SELECT s.system, s.key, s.fingerprint, s.position FROM wanted "
                        "JOIN {sources} s ON s.system = wanted.system AND s.key = wanted.key"
                    ),
                    [value for pair in chunk for value in pair],
                )
                for system, key, fingerprint, position in cursor.fetchall():
                    found[(system, key)] = (bytes(fingerprint), position)
        return found

    def stream_rows(self, stream: str) -> list[tuple[int, bytes, str, bytes]]:
        """`(position, state, recorded_at, hash)` of every event of one stream, in stream order."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT e.{pos}, e.state, c.recorded_at, c.hash FROM {events} e "
                    "JOIN {chain} c ON c.position = e.{pos} WHERE e.originator_id = ? "
                    "ORDER BY e.originator_version"
                ),
                (stream,),
            )
            return [(row[0], bytes(row[1]), row[2], bytes(row[3])) for row in cursor.fetchall()]

    def events_after(self, position: int, limit: int) -> list[tuple[int, bytes, str, bytes]]:
        """`(position, state, recorded_at, hash)` of up to `limit` events after `position`."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT e.{pos}, e.state, c.recorded_at, c.hash FROM {events} e "
                    "JOIN {chain} c ON c.position = e.{pos} WHERE e.{pos} > ? "
                    "ORDER BY e.{pos} LIMIT ?"
                ),
                (position, limit),
            )
            return [(row[0], bytes(row[1]), row[2], bytes(row[3])) for row in cursor.fetchall()]

    def states_after(self, position: int, limit: int) -> list[tuple[int, bytes]]:
        """`(position, state)` of up to `limit` events after `position` (no chain columns)."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql("SELECT {pos}, state FROM {events} WHERE {pos} > ? ORDER BY {pos} LIMIT ?"),
                (position, limit),
            )
            return [(row[0], bytes(row[1])) for row in cursor.fetchall()]

    def event_at(self, position: int) -> tuple[int, bytes, str, bytes] | None:
        rows = self.events_after(position - 1, 1)
        return rows[0] if rows and rows[0][0] == position else None

    def position_of_event(self, event_id: str) -> int | None:
        with self._cursor(write=False) as cursor:
            cursor.execute(self._sql("SELECT position FROM {chain} WHERE event_id = ?"), (event_id,))
            row = cursor.fetchone()
            return None if row is None else int(row[0])

    def hash_at(self, position: int) -> bytes | None:
        with self._cursor(write=False) as cursor:
            cursor.execute(self._sql("SELECT hash FROM {chain} WHERE position = ?"), (position,))
            row = cursor.fetchone()
            return None if row is None else bytes(row[0])

    def position_known_at(self, recorded_at: str) -> int:
        """The newest position recorded at or before `recorded_at` (0 if none)."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql("SELECT MAX(position) FROM {chain} WHERE recorded_at <= ?"),
                (recorded_at,),
            )
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def log_rows(self) -> Iterator[LogRow]:
        """Every position of the log in order, event and chain sides joined (see LogRow), as plain tuples.

        Events are read with their chain rows (a LEFT JOIN: an event without one shows as such; a deleted
        event shows as a gap in positions); chain rows past the last event come at the end.
        """
        start = 0
        while True:
            with self._cursor(write=False) as cursor:
                cursor.execute(
                    self._sql(
                        "SELECT e.{pos}, e.state, e.originator_id, e.originator_version, e.topic, "
                        "c.event_id, c.recorded_at, c.hash FROM {events} e "
                        "LEFT JOIN {chain} c ON c.position = e.{pos} "
                        "WHERE e.{pos} > ? ORDER BY e.{pos} LIMIT ?"
                    ),
                    (start, VERIFY_PAGE_ROWS),
                )
                rows = cursor.fetchall()
            if not rows:
                break
            if isinstance(rows[0][1], memoryview):  # PostgreSQL's bytea
                rows = [
                    (r[0], bytes(r[1]), r[2], r[3], r[4], r[5], r[6], None if r[7] is None else bytes(r[7]))
                    for r in rows
                ]
            yield from rows
            start = rows[-1][0]
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT position, event_id, recorded_at, hash FROM {chain} WHERE position > ? "
                    "ORDER BY position LIMIT 1"
                ),
                (start,),
            )
            trailing = cursor.fetchone()
        if trailing is not None:
            yield LogRow(trailing[0], None, None, None, None, trailing[1], trailing[2], bytes(trailing[3]))

    def meta(self, name: str) -> str | None:
        with self._cursor(write=False) as cursor:
            cursor.execute(self._sql("SELECT value FROM {meta} WHERE name = ?"), (name,))
            row = cursor.fetchone()
            return None if row is None else str(row[0])

    def set_meta_if_absent(self, name: str, value: str) -> str:
        """Store `value` under `name` unless one is there; the stored value either way.

        Reads first, so that opening an existing ledger does not wait for the write lock.
        """
        stored = self.meta(name)
        if stored is not None:
            return stored
        with self._cursor(write=True) as cursor:
            cursor.execute(self._sql("SELECT value FROM {meta} WHERE name = ?"), (name,))
            row = cursor.fetchone()
            if row is not None:
                return str(row[0])
            cursor.execute(self._sql("INSERT INTO {meta} VALUES (?, ?)"), (name, value))
            return value


class _SQLiteCursorContext:
    def __init__(self, recorder: LedgerSQLiteRecorder, *, write: bool) -> None:
        self.recorder = recorder
        self.write = write

    def __enter__(self) -> Any:
        self._manager = self.recorder.datastore.get_connection(commit=self.write)
        self.connection = self._manager.__enter__()
        self.cursor = self.connection.cursor()
        if self.write:
            # Per connection, and only outside a transaction: set them on every write (they cost nothing).
            self.cursor.execute(f"PRAGMA synchronous = {self.recorder.synchronous}")
            # A batch of a thousand events writes more pages than the default checkpoint interval (1,000
            # pages): checkpoint, and sync the database file, every few batches rather than every batch.
            self.cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        self.cursor.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        return self.cursor

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc is None and self.write:
                self.connection.commit()
            else:
                self.connection.rollback()
        finally:
            self._manager.__exit__(exc_type, exc, traceback)


class LedgerSQLiteRecorder(LedgerRecorder, SQLiteApplicationRecorder):
    """The embedded store: one SQLite file in WAL mode.

    `synchronous` is FULL unless the URL says `?synchronous=normal`: FULL syncs the write-ahead log at
    every commit, so an acknowledged batch survives a power loss; NORMAL syncs only at checkpoints, which
    survives a crash of the process but may lose the last commits to a power loss — for bulk loads.
    """

    synchronous = "FULL"

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        return statements + self.ledger_tables("BLOB", "INTEGER PRIMARY KEY")

    def _cursor(self, *, write: bool) -> Any:
        return _SQLiteCursorContext(self, write=write)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        batch: BatchWrite | None = kwargs.get("batch")
        if batch is None:
            raise IntegrityError("appends go through the ledger, which chains them")
        try:
            with self._cursor(write=True) as cursor:
                return self._append(cursor, stored_events, batch, kwargs.get("imported"))
        except Exception as error:
            import sqlite3

            if isinstance(error, sqlite3.IntegrityError):
                raise IntegrityError(error) from error
            raise
