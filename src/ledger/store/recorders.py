"""Application recorders for SQLite and PostgreSQL that append events and their chain atomically.

eventsourcing's recorders store the events (`stored_events` on SQLite, `ledger_events` on PostgreSQL) and
read them back; these subclasses replace the append so that one transaction, holding the write lock:

1. reads the head of the chain and refuses to go on (`StaleHead`) if the log moved since the batch was
   decided — every rule (idempotency, lifecycle, caps) was checked against a complete log;
2. takes the recording time from one clock (the database server's on PostgreSQL) and refuses
   (`StoreUnavailable`, cause `clock_skew`) when that clock, the writer's and the head disagree by more
   than `CLOCK_SKEW_MAX_SECONDS`;
3. gives the events dense positions head+1 … head+n (SQLite rowid, PostgreSQL notification_id), so that
   a gap in positions always means a deleted row;
4. writes each event's chain row (position, event id, recording time, hash) in position order.

`(system, key)` is unique for ever because of a unique index over the source *inside each event row*
(`source_index`): the chained events themselves, not a side table, decide what was recorded. A deleted or
altered index entry cannot exist without the row; a dropped index is rebuilt at the next open (and
reported by `ledger verify` meanwhile).

SQLite takes its write lock with `BEGIN IMMEDIATE`; PostgreSQL with eventsourcing's `LOCK TABLE … IN
EXCLUSIVE MODE`, which lets readers go on. Both serialize appends, so commit order is position order; both
wait at most `WRITE_LOCK_WAIT_SECONDS` for the lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from eventsourcing import persistence
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.domain.errors import StoreUnavailable
from ledger.integrity.chain import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    format_recorded_at,
    parse_recorded_at,
)
from ledger.integrity.verify import LogRow
from ledger.store.batch import AppendOutcome, BatchWrite, StaleHead
from ledger.store.tree import TREE_TABLE, MerkleTable

__all__ = [
    "CLOCK_SKEW_MAX_SECONDS",
    "WRITE_LOCK_WAIT_SECONDS",
    "CatchUpRow",
    "Head",
    "LedgerRecorder",
    "LedgerSQLiteRecorder",
]

VERIFY_PAGE_ROWS = 20_000
SOURCE_KEYS_PER_QUERY = 1_000  # 2,000 parameters: within SQLite's and PostgreSQL's limits
WAL_CHECKPOINT_PAGES = 16_384  # 64 MiB of 4 KiB pages
# How long an append waits for another process's write lock before answering "busy, try again".
WRITE_LOCK_WAIT_SECONDS: Final = 5
# How often a SQLite writer waiting for the write lock tries again (see `_begin_immediate`).
SQLITE_LOCK_POLL_SECONDS: Final = 0.001
# How far the clocks that stamp the log (the writer's, the database's, the head's) may disagree.
CLOCK_SKEW_MAX_SECONDS: Final = int(os.environ.get("LEDGER_CLOCK_SKEW_MAX_SECONDS", "300"))
SOURCE_INDEX: Final = "ledger_events_source"

logger = logging.getLogger("ledger.store")

# `(position, originator_id, originator_version, state, hash)` of one event, for the writer's catch-up.
CatchUpRow = tuple[int, str, int, bytes, bytes]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


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
    legacy_sources_table = "ledger_sources"
    meta_table = "ledger_meta"
    writer_state_table = "ledger_writer_state"
    merkle_table = TREE_TABLE
    # The largest position a bound may name (positions are 64-bit integers in both stores).
    POSITION_MAX: Final = 2**63 - 1
    # The writer's clock, compared with the database's; a seam for tests of a clock that runs ahead.
    wall_clock: Callable[[], datetime] = staticmethod(_wall_clock)

    def _cursor(self, *, write: bool, while_waiting: Callable[[], None] | None = None) -> Any:
        raise NotImplementedError  # pragma: no cover - abstract

    def committed(self, head: int) -> None:
        """Told after an append made in an append session committed, the log's head now `head`: upkeep
        that must not run inside the append's transaction (PostgreSQL refreshes its statistics)."""

    def _sql(self, text: str) -> str:
        return (
            text.replace("?", self.placeholder)
            .replace("{events}", self.events_table)
            .replace("{chain}", self.chain_table)
            .replace("{legacy_sources}", self.legacy_sources_table)
            .replace("{meta}", self.meta_table)
            .replace("{writer_state}", self.writer_state_table)
            .replace("{merkle}", self.merkle_table)
            .replace("{pos}", self.position_column)
        )

    def source_of(self, alias: str, part: str) -> str:  # pragma: no cover - abstract
        """The SQL expression of `source.<part>` (system or key) inside the event row `alias`: the
        expression the unique source index is built on, so that lookups written with it use the index."""
        raise NotImplementedError

    def scanned_source_of(self, part: str) -> str:
        """`source.<part>` for a scan that must not trust the index's own definition (verify)."""
        return self.source_of("", part)

    def source_index(self) -> str:
        return self._sql(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {SOURCE_INDEX} ON {{events}} "
            f"({self.source_of('', 'system')}, {self.source_of('', 'key')})"
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
                # Before the unique index over the events' sources, `(system, key)` lived in a side table
                # that a deleted row could silently void; nothing reads it any more.
                "DROP TABLE IF EXISTS {legacy_sources}",
                "CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                # The writer's knowledge, persisted (`ledger.knowledge`): a cache bound to a position.
                "CREATE TABLE IF NOT EXISTS {writer_state} (name TEXT PRIMARY KEY, position BIGINT NOT NULL, "
                "hash " + blob + " NOT NULL, format TEXT NOT NULL, digest " + blob + " NOT NULL, "
                "state " + blob + " NOT NULL)",
                # The Merkle tree over the log (`ledger.store.tree`): kept in the append transaction.
                "CREATE TABLE IF NOT EXISTS {merkle} (position " + position_key + ", "
                "hashes " + blob + " NOT NULL)",
            )
        ]

    @functools.cached_property
    def tree(self) -> MerkleTable:
        """The Merkle tree over this log."""
        return MerkleTable(self)

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
        leaves: list[bytes] = []
        chain_rows = []
        if imported is None:
            now = format_recorded_at(self._checked_now(cursor, head))
            # recorded_at never decreases with position (the clocks agree within the bound).
            recorded_at = max(now, head.recorded_at)
            recorded = [recorded_at] * len(stored_events)
        else:
            recorded = [row[0] for row in imported]
        for offset, stored in enumerate(stored_events):
            position = first + offset
            leaf = canonical_bytes(position, recorded[offset], stored.state)
            leaves.append(leaf)
            current = chain_hash(previous, leaf)
            if imported is not None and current != imported[offset][1]:
                raise IntegrityError(f"imported event at position {position} does not chain")
            hashes.append(current)
            chain_rows.append((position, batch.event_ids[offset], recorded[offset], current))
            previous = current
        event_rows = [
            (str(s.originator_id), s.originator_version, s.topic, s.state, first + offset)
            for offset, s in enumerate(stored_events)
        ]
        self._insert_rows(cursor, event_rows, chain_rows)
        if leaves:
            self._insert_tree_rows(cursor, self.tree.rows_for_append(cursor, head, leaves, previous))
        batch.outcome = AppendOutcome(first, recorded[0] if recorded else "", hashes)
        return list(range(first, first + len(stored_events)))

    def _insert_rows(
        self,
        cursor: Any,
        event_rows: Sequence[tuple[str, int, str, bytes, int]],
        chain_rows: Sequence[tuple[int, str, str, bytes]],
    ) -> None:
        """Write the events `(originator_id, originator_version, topic, state, position)` and their chain
        rows `(position, event_id, recorded_at, hash)`; PostgreSQL overrides it with COPY."""
        cursor.executemany(
            self._sql(
                "INSERT INTO {events} (originator_id, originator_version, topic, state, {pos}) "
                "VALUES (?, ?, ?, ?, ?)"
            ),
            event_rows,
        )
        cursor.executemany(self._sql("INSERT INTO {chain} VALUES (?, ?, ?, ?)"), chain_rows)

    def _insert_tree_rows(self, cursor: Any, rows: Sequence[tuple[int, bytes]]) -> None:
        """Write rows `(position, hashes)` of the Merkle tree; PostgreSQL overrides it with COPY."""
        cursor.executemany(self._sql("INSERT INTO {merkle} VALUES (?, ?)"), rows)

    def _database_now(self, cursor: Any) -> datetime:
        """The clock that stamps the log: on SQLite (one host) the writer's own."""
        return self.wall_clock()

    def _checked_now(self, cursor: Any, head: Head) -> datetime:
        """The recording time of an append, after checking that the clocks agree (else StoreUnavailable).

        A writer whose clock runs ahead would stamp its batch in the future, and since recorded_at never
        decreases, every later event too, so that reads "as known now" would leave them out: refuse
        instead, loudly, saying which clock is off and which way.
        """
        now = self._database_now(cursor)
        writer = self.wall_clock()
        bound = CLOCK_SKEW_MAX_SECONDS
        skew = (writer - now).total_seconds()
        if abs(skew) > bound:
            self._refuse_skew(
                f"this writer's clock ({format_recorded_at(writer)}) is {_span(skew)} "
                f"{'ahead of' if skew > 0 else 'behind'} the database server's ({format_recorded_at(now)})"
            )
        if head.recorded_at:
            ahead = (parse_recorded_at(head.recorded_at) - now).total_seconds()
            if ahead > bound:
                self._refuse_skew(
                    f"the log's head (position {head.position}) was recorded at {head.recorded_at}, "
                    f"{_span(ahead)} ahead of the database clock ({format_recorded_at(now)}): a clock "
                    "ran ahead or was set back"
                )
        return now

    @staticmethod
    def _refuse_skew(what: str) -> None:
        message = (
            f"refusing to record: {what}; the clocks may differ by at most {CLOCK_SKEW_MAX_SECONDS} s "
            "(LEDGER_CLOCK_SKEW_MAX_SECONDS). Fix the clock (NTP); nothing was recorded"
        )
        logger.error(message)
        raise StoreUnavailable(message, cause="clock_skew", retry_after=60)

    def _read_head(self, cursor: Any) -> Head:
        cursor.execute(
            self._sql("SELECT position, hash, recorded_at FROM {chain} ORDER BY position DESC LIMIT 1")
        )
        row = cursor.fetchone()
        if row is None:
            return EMPTY_HEAD
        return Head(row[0], bytes(row[1]), row[2])

    # The append session: the write lock taken before deciding.

    @contextlib.contextmanager
    def append_session(self, while_waiting: Callable[[], None] | None = None) -> Iterator[Any]:
        """A transaction holding the write lock (waiting at most `WRITE_LOCK_WAIT_SECONDS`), committed when
        the block ends without error: a writer catches up and appends inside it (after lost races it
        decides inside it too), so that nobody can append in between. Pass the cursor to `catch_up_rows`,
        `sources` and the append (`insert_events(..., cursor=)`). Where the store waits by trying again
        (SQLite), `while_waiting` is called between tries: the writer folds what the lock's holders
        append meanwhile, so that little is left to fold once it holds the lock."""
        with self._cursor(write=True, while_waiting=while_waiting) as cursor:
            self._lock_for_append(cursor)
            yield cursor

    def _lock_for_append(self, cursor: Any) -> None:
        """Take the append lock inside the transaction (SQLite's `BEGIN IMMEDIATE` already holds it)."""

    @contextlib.contextmanager
    def _reading(self, cursor: Any) -> Iterator[Any]:
        if cursor is not None:
            yield cursor
            return
        with self._cursor(write=False) as fresh:
            yield fresh

    # The writer's persisted knowledge (`ledger.knowledge`).

    def writer_state(self) -> tuple[int, bytes, str, bytes, bytes] | None:
        """`(position, hash, format, digest, state)` of the persisted writer knowledge, or None."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql("SELECT position, hash, format, digest, state FROM {writer_state} WHERE name = ?"),
                ("writer",),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return int(row[0]), bytes(row[1]), str(row[2]), bytes(row[3]), bytes(row[4])

    def save_writer_state(
        self, position: int, hash_: bytes, format_: str, digest: bytes, state: bytes
    ) -> bool:
        """Keep the writer knowledge folded through `position`, unless one of a later position of this log
        is kept already (several processes save theirs); a kept state the log no longer holds at its
        position, as after an import or a restore in place, is replaced. True if it was kept."""
        with self._cursor(write=True) as cursor:
            cursor.execute(
                self._sql(
                    "INSERT INTO {writer_state} AS kept (name, position, hash, format, digest, state) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "position = excluded.position, hash = excluded.hash, format = excluded.format, "
                    "digest = excluded.digest, "
                    "state = excluded.state WHERE excluded.position > kept.position "
                    "OR excluded.format != kept.format OR NOT EXISTS (SELECT 1 FROM {chain} c "
                    "WHERE c.position = kept.position AND c.hash = kept.hash)"
                ),
                ("writer", position, hash_, format_, digest, state),
            )
            cursor.execute(self._sql("SELECT position, hash FROM {writer_state} WHERE name = ?"), ("writer",))
            row = cursor.fetchone()
            return row is not None and int(row[0]) == position and bytes(row[1]) == hash_

    def drop_writer_state(self) -> None:
        """Forget the persisted writer knowledge (an import replaces the log it was folded from)."""
        with self._cursor(write=True) as cursor:
            cursor.execute(self._sql("DELETE FROM {writer_state}"))

    # Reads.

    def head(self) -> Head:
        with self._cursor(write=False) as cursor:
            return self._read_head(cursor)

    def sources(
        self, keys: Sequence[tuple[str, str]], cursor: Any = None
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """`(position, stored state)` of the event recorded under each `(system, key)` that exists — read
        through the unique source index of the event rows (one query per thousand keys); inside the
        append session `cursor` when given."""
        found: dict[tuple[str, str], tuple[int, bytes]] = {}
        if not keys:
            return found
        system, key = self.source_of("e.", "system"), self.source_of("e.", "key")
        with self._reading(cursor) as reading:
            for start in range(0, len(keys), SOURCE_KEYS_PER_QUERY):
                chunk = keys[start : start + SOURCE_KEYS_PER_QUERY]
                values = ", ".join(["(?, ?)"] * len(chunk))
                reading.execute(
                    self._sql(
                        f"WITH wanted (system, key) AS (VALUES {values}) "
                        f"SELECT wanted.system, wanted.key, e.{{pos}}, e.state FROM wanted "
                        f"JOIN {{events}} e ON {system} = wanted.system AND {key} = wanted.key"
                    ),
                    [value for pair in chunk for value in pair],
                )
                for found_system, found_key, position, state in reading.fetchall():
                    found[(found_system, found_key)] = (int(position), bytes(state))
        return found

    def duplicate_sources(self, limit: int = 10) -> list[tuple[str, str, int]]:
        """`(system, key, count)` of sources recorded more than once (possible only without the index)."""
        system, key = self.scanned_source_of("system"), self.scanned_source_of("key")
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    f"SELECT {system}, {key}, COUNT(*) FROM {{events}} WHERE {self.valid_json('state')} "
                    f"AND {system} IS NOT NULL GROUP BY {system}, {key} HAVING COUNT(*) > 1 "
                    "ORDER BY 1, 2 LIMIT ?"
                ),
                (limit,),
            )
            return [(str(row[0]), str(row[1]), int(row[2])) for row in cursor.fetchall()]

    def valid_json(self, column: str) -> str:  # pragma: no cover - abstract
        """A condition true where `column` holds well-formed JSON (altered rows may not)."""
        raise NotImplementedError

    def analyze(self) -> None:  # pragma: no cover - abstract
        """Refresh the planner's statistics after a bulk load (a demo, an import, a rebuild): without them
        PostgreSQL scans the whole chain table for one cadre's history (74 ms against 16 ms on the city)."""
        raise NotImplementedError

    def check_writable(self, wait_seconds: float) -> None:  # pragma: no cover - abstract
        """Take the write lock (waiting at most `wait_seconds`) and give it back at once, recording
        nothing: raises what an append would raise if the store cannot record now."""
        raise NotImplementedError

    def source_index_problem(self) -> str | None:  # pragma: no cover - abstract
        """What is wrong with the unique index over the events' sources — `missing`, or `altered: …` when
        an index of that name is not the one the ledger builds (another expression, not unique, partial) —
        or None. Verify reports it; the next open rebuilds it."""
        raise NotImplementedError

    def catch_up_rows(self, position: int, limit: int, cursor: Any = None) -> list[CatchUpRow]:
        """The event at `position` (if > 0) and up to `limit` after it, with their chain hashes: the
        writer checks that the log still holds what it folded last before folding what follows."""
        with self._reading(cursor) as reading:
            reading.execute(
                self._sql(
                    "SELECT e.{pos}, e.originator_id, e.originator_version, e.state, c.hash FROM {events} e "
                    # The chain side bounded too, so that PostgreSQL does not merge-join from its first row.
                    "JOIN {chain} c ON c.position = e.{pos} WHERE e.{pos} >= ? AND c.position >= ? "
                    "ORDER BY e.{pos} LIMIT ?"
                ),
                (max(position, 1), max(position, 1), limit + (1 if position > 0 else 0)),
            )
            return [(row[0], str(row[1]), row[2], bytes(row[3]), bytes(row[4])) for row in reading.fetchall()]

    def stream_head(self, stream: str) -> tuple[int, int, bytes] | None:
        """`(version, position, hash)` of the newest event of one stream (None: no event): one indexed
        lookup that tells a stream that changed from one that only kept its length."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT e.originator_version, e.{pos}, c.hash FROM {events} e "
                    "JOIN {chain} c ON c.position = e.{pos} WHERE e.originator_id = ? "
                    "ORDER BY e.originator_version DESC LIMIT 1"
                ),
                (stream,),
            )
            row = cursor.fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))

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
                    "JOIN {chain} c ON c.position = e.{pos} WHERE e.{pos} > ? AND c.position > ? "
                    "ORDER BY e.{pos} LIMIT ?"
                ),
                (position, position, limit),
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

    def hashes_at(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The chain hash at each of `positions` that exists (one query per thousand positions)."""
        found: dict[int, bytes] = {}
        wanted = sorted(set(positions))
        with self._cursor(write=False) as cursor:
            for start in range(0, len(wanted), SOURCE_KEYS_PER_QUERY):
                chunk = wanted[start : start + SOURCE_KEYS_PER_QUERY]
                cursor.execute(
                    self._sql(
                        "SELECT position, hash FROM {chain} WHERE position IN ("
                        + ", ".join(["?"] * len(chunk))
                        + ")"
                    ),
                    chunk,
                )
                found.update((int(row[0]), bytes(row[1])) for row in cursor.fetchall())
        return found

    def position_known_at(self, recorded_at: str) -> int:
        """The newest position recorded at or before `recorded_at` (0 if none)."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql("SELECT MAX(position) FROM {chain} WHERE recorded_at <= ?"),
                (recorded_at,),
            )
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def log_extent(self) -> int:
        """The last position either side of the log holds (events or chain rows), read in one statement."""
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT MAX(p) FROM (SELECT MAX(e.{pos}) AS p FROM {events} e "
                    "UNION ALL SELECT MAX(c.position) AS p FROM {chain} c) extent"
                )
            )
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def log_rows(self, until: int | None = None) -> Iterator[LogRow]:
        """Every position of the log in order, event and chain sides joined (see LogRow), as plain tuples.

        Events are read with their chain rows (a LEFT JOIN: an event without one shows as such; a deleted
        event shows as a gap in positions); chain rows past the last event come at the end. `until` bounds
        every read (verify passes `log_extent()` read first): events appended while the pages are read are
        left for the next verification, instead of showing as a chain row whose event is not there yet.
        """
        bound = self.POSITION_MAX if until is None else until
        start = 0
        while True:
            with self._cursor(write=False) as cursor:
                cursor.execute(
                    self._sql(
                        "SELECT e.{pos}, e.state, e.originator_id, e.originator_version, e.topic, "
                        "c.event_id, c.recorded_at, c.hash FROM {events} e "
                        # The chain side bounded too: without it PostgreSQL merge-joins from the
                        # chain's first row on every page (verify grew with the square of the log).
                        "LEFT JOIN {chain} c ON c.position = e.{pos} AND c.position > ? "
                        "WHERE e.{pos} > ? AND e.{pos} <= ? ORDER BY e.{pos} LIMIT ?"
                    ),
                    (start, start, bound, VERIFY_PAGE_ROWS),
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
                    "AND position <= ? ORDER BY position LIMIT 1"
                ),
                (start, bound),
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
    def __init__(
        self,
        recorder: LedgerSQLiteRecorder,
        *,
        write: bool,
        lock_wait: float | None = None,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.write = write
        self.lock_wait = WRITE_LOCK_WAIT_SECONDS if lock_wait is None else lock_wait
        self.while_waiting = while_waiting

    def __enter__(self) -> Any:
        self._manager = self.recorder.datastore.get_connection(commit=self.write)
        self.connection = self._manager.__enter__()
        self.cursor = self.connection.cursor()
        try:
            if self.write:
                # Per connection, and only outside a transaction: set them on every write (they cost
                # nothing). A batch of a thousand events writes more pages than the default checkpoint
                # interval (1,000 pages): checkpoint, and sync the file, every few batches instead.
                self.cursor.execute(f"PRAGMA synchronous = {self.recorder.synchronous}")
                self.cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
                _begin_immediate(self.cursor, self.lock_wait, self.while_waiting)
            else:
                self.cursor.execute("BEGIN")
        except BaseException as error:
            self._manager.__exit__(type(error), error, error.__traceback__)
            raise _persistence_error(error) from error
        return self.cursor

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc is None and self.write:
                self.connection.commit()
            else:
                self.connection.rollback()
        except sqlite3.Error as error:
            raise _persistence_error(error) from error
        finally:
            self._manager.__exit__(exc_type, exc, traceback)
        if isinstance(exc, sqlite3.Error):
            raise _persistence_error(exc) from exc


def _begin_immediate(cursor: Any, wait_seconds: float, while_waiting: Callable[[], None] | None) -> None:
    """Begin a write transaction, waiting at most `wait_seconds` for SQLite's write lock, calling
    `while_waiting` (if given) between tries.

    SQLite's own busy handler sleeps longer after each failed try (up to 100 ms), so the writer that has
    waited longest sleeps longest and writers arriving later take the lock first: with four processes
    posting, one batch waited thirty times its time alone. Trying again every millisecond gives every
    waiter the same chance at each release. Statements inside the transaction keep the usual busy wait.
    """
    deadline = time.monotonic() + wait_seconds
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
            if while_waiting is not None:
                while_waiting()
            time.sleep(SQLITE_LOCK_POLL_SECONDS)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {WRITE_LOCK_WAIT_SECONDS * 1000}")


def _persistence_error(error: BaseException) -> BaseException:
    """sqlite3's errors as eventsourcing's (which its own transactions raise): callers catch one family.

    The cause (locked, read-only, …) stays in the message; see `ledger.store.faults`.
    """
    if not isinstance(error, sqlite3.Error):
        return error
    kinds: dict[type[Exception], type[persistence.PersistenceError]] = {
        sqlite3.IntegrityError: persistence.IntegrityError,
        sqlite3.OperationalError: persistence.OperationalError,
        sqlite3.ProgrammingError: persistence.ProgrammingError,
        sqlite3.DatabaseError: persistence.DatabaseError,
    }
    return kinds.get(type(error), persistence.PersistenceError)(str(error))


class LedgerSQLiteRecorder(LedgerRecorder, SQLiteApplicationRecorder):
    """The embedded store: one SQLite file in WAL mode.

    `synchronous` is FULL unless the URL says `?synchronous=normal`: FULL syncs the write-ahead log at
    every commit, so an acknowledged batch survives a power loss; NORMAL syncs only at checkpoints, which
    survives a crash of the process but may lose the last commits to a power loss — for bulk loads.
    """

    synchronous = "FULL"

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        return [*statements, *self.ledger_tables("BLOB", "INTEGER PRIMARY KEY"), self.source_index()]

    def source_of(self, alias: str, part: str) -> str:
        # The state is a BLOB of JSON text: cast, so that SQLite ≥ 3.45 does not read it as JSONB.
        return f"json_extract(CAST({alias}state AS TEXT), '$.source.{part}')"

    def valid_json(self, column: str) -> str:
        return f"json_valid(CAST({column} AS TEXT))"

    def analyze(self) -> None:
        with self.datastore.get_connection(commit=True) as connection:
            try:
                connection.cursor().execute("PRAGMA optimize")
            except sqlite3.Error as error:
                raise _persistence_error(error) from error

    def check_writable(self, wait_seconds: float) -> None:
        with self.datastore.get_connection(commit=False) as connection:
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(wait_seconds * 1000)}")
            try:
                # BEGIN IMMEDIATE takes the lock; on a read-only file only a write fails, so write
                # something the rollback takes back.
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(self._sql("DELETE FROM {meta} WHERE name = 'ledger.write_probe'"))
            except sqlite3.Error as error:
                raise _persistence_error(error) from error
            finally:
                connection.rollback()
                cursor.execute(f"PRAGMA busy_timeout = {WRITE_LOCK_WAIT_SECONDS * 1000}")

    def source_index_problem(self) -> str | None:
        with self._cursor(write=False) as cursor:
            cursor.execute(
                "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' AND name = ?", (SOURCE_INDEX,)
            )
            row = cursor.fetchone()
        if row is None:
            return "missing"
        # SQLite keeps the statement as written, without IF NOT EXISTS.
        expected = _normalized(self.source_index().replace("IF NOT EXISTS ", ""))
        if row[0] != self.events_table or _normalized(row[1] or "") != expected:
            return f"altered: it is `{row[1]}`"
        return None

    def create_table(self) -> None:
        # An index of the right name but the wrong definition would survive CREATE … IF NOT EXISTS.
        with contextlib.suppress(persistence.PersistenceError, sqlite3.Error):
            if (self.source_index_problem() or "").startswith("altered"):
                with self.datastore.get_connection(commit=True) as connection:
                    connection.cursor().execute(f"DROP INDEX {SOURCE_INDEX}")
                    connection.commit()
                logger.critical("the unique source index had been altered; rebuilt it")
        super().create_table()

    def _cursor(self, *, write: bool, while_waiting: Callable[[], None] | None = None) -> Any:
        return _SQLiteCursorContext(self, write=write, while_waiting=while_waiting)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        batch: BatchWrite | None = kwargs.get("batch")
        if batch is None:
            raise IntegrityError("appends go through the ledger, which chains them")
        session = kwargs.get("cursor")
        if session is not None:
            return self._append(session, stored_events, batch, kwargs.get("imported"))
        # An optimistic append may ask to wait only briefly (`lock_wait`): SQLite's busy wait is not first
        # come, first served, so a long wait often ends in a lost race anyway. Busy then is a lost race.
        lock_wait = kwargs.get("lock_wait")
        try:
            with _SQLiteCursorContext(self, write=True, lock_wait=lock_wait) as cursor:
                return self._append(cursor, stored_events, batch, kwargs.get("imported"))
        except persistence.OperationalError as error:
            if lock_wait is not None and lock_wait < WRITE_LOCK_WAIT_SECONDS and "locked" in str(error):
                raise StaleHead(f"the write lock stayed busy for {lock_wait} s") from error
            raise


def _normalized(statement: str) -> str:
    return " ".join(statement.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split()).lower()


def _span(seconds: float) -> str:
    """A duration for people: `5 years`, `3 days`, `12 minutes`, `40 s`."""
    seconds = abs(seconds)
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
