"""The production store: PostgreSQL through eventsourcing's recorder, with the ledger's append.

Tables live in the datastore's schema: `ledger_events` (eventsourcing's, named after the application),
`ledger_chain`, `ledger_meta`. The append takes eventsourcing's `LOCK TABLE … IN EXCLUSIVE MODE` on the
events table, so appends are serialized and readers are never blocked; the recording time is the database
server's `clock_timestamp()`, read after the lock is taken.

The unique source index is built on `ledger_source_part(state, part)`, an IMMUTABLE SQL function of the
stored JSON (`convert_from` is only STABLE because of the client encoding, but the state is always UTF-8).

At par with SQLite (issue 11): an append (and so an import) writes its rows by COPY in the binary format;
reads take their results in the binary format, outside a transaction; the reads that join or look up many
keys are written so that no plan over a whole table fits them, whatever the statistics (which appends
refresh as the log grows, for servers whose autovacuum is off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed

from ledger.store.batch import BatchWrite
from ledger.store.recorders import SOURCE_INDEX, WRITE_LOCK_WAIT_SECONDS, LedgerRecorder, logger

__all__ = ["LedgerPostgresRecorder"]

# An arbitrary constant naming the advisory lock under which tables are created ("LEDGER" in hex, roughly);
# the second key is the schema's hash, so that ledgers in different schemas do not wait for each other.
SCHEMA_LOCK_KEY = 0x1ED6E2
# How long opening waits for another process creating the same tables (a first index build takes seconds).
SCHEMA_LOCK_WAIT_SECONDS = 60
SOURCE_PART_BODY = " SELECT convert_from(state, 'UTF8')::json -> 'source' ->> part "
# An append ANALYZEs the log's tables when the log has grown to this many times the rows their last
# ANALYZE counted, and to this many rows at least (see `_refresh_statistics`).
STATISTICS_GROWTH = 2.0
STATISTICS_FIRST_ROWS = 10_000
# The column types of the rows an append COPYs, in the binary format (which sends each value as the server
# stores it, without quoting or escaping: bytea travels as raw bytes instead of hex text). They must match
# the tables exactly: the events' originator_id is text (ORIGINATOR_ID_TYPE), positions are bigint.
EVENT_COPY_TYPES = ["text", "int8", "text", "bytea", "int8"]
CHAIN_COPY_TYPES = ["int8", "text", "text", "bytea"]
TREE_COPY_TYPES = ["int8", "bytea"]


class LedgerPostgresRecorder(LedgerRecorder, PostgresApplicationRecorder):
    placeholder = "%s"
    position_column = "notification_id"

    def __init__(self, datastore: Any, *, events_table_name: str = "ledger_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = self.datastore.schema
        self.events_table = f'"{schema}"."{events_table_name}"'
        self.chain_table = f'"{schema}".ledger_chain'
        self.legacy_sources_table = f'"{schema}".ledger_sources'
        self.meta_table = f'"{schema}".ledger_meta'
        self.writer_state_table = f'"{schema}".ledger_writer_state'
        self.merkle_table = f'"{schema}".ledger_merkle'
        self.schema = schema
        self.events_table_name = events_table_name
        # The log's size when this process last asked for fresh statistics (`_refresh_statistics`).
        self._statistics_tried_at = 0
        statements = self.ledger_tables("BYTEA", "BIGINT PRIMARY KEY")
        # Index names are not schema-qualified in PostgreSQL.
        statements[1] = statements[1].replace(f"{self.chain_table}_recorded_at", "ledger_chain_recorded_at")
        statements.append(
            f'CREATE OR REPLACE FUNCTION "{schema}".ledger_source_part(state bytea, part text) RETURNS text '
            "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
            f"AS $${SOURCE_PART_BODY}$$"
        )
        statements.append(
            f'CREATE OR REPLACE FUNCTION "{schema}".ledger_json_valid(state bytea) RETURNS boolean '
            "LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$ BEGIN "
            "PERFORM convert_from(state, 'UTF8')::json; RETURN true; "
            "EXCEPTION WHEN others THEN RETURN false; END $$"
        )
        statements.append(self.source_index())
        self.sql_create_statements.extend(cast(Composed, SQL(statement)) for statement in statements)
        # `CREATE INDEX IF NOT EXISTS` takes its lock on the events table before it finds the index there:
        # behind an append lock held elsewhere, opening fails after the same bounded wait, never hangs.
        self.sql_create_statements.insert(
            0, cast(Composed, SQL(f"SET LOCAL lock_timeout = '{WRITE_LOCK_WAIT_SECONDS}s'"))
        )

    def source_of(self, alias: str, part: str) -> str:
        return f""""{self.schema}".ledger_source_part({alias}state, '{part}')"""

    def scanned_source_of(self, part: str) -> str:
        # Inline, not through ledger_source_part: verify looks for duplicates when that may be redefined.
        return f"(convert_from(state, 'UTF8')::json -> 'source' ->> '{part}')"

    def source_index_problem(self) -> str | None:
        with self._cursor(write=False) as cursor:
            cursor.execute(
                "SELECT i.indisunique, i.indpred IS NULL, i.indnatts, t.relname, "
                "pg_get_indexdef(i.indexrelid, 1, true), pg_get_indexdef(i.indexrelid, 2, true), "
                "pg_get_indexdef(i.indexrelid) "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = %s AND n.nspname = %s",
                (SOURCE_INDEX, self.schema),
            )
            row = cursor.fetchone()
            cursor.execute(
                "SELECT p.prosrc, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE p.proname = 'ledger_source_part' AND n.nspname = %s",
                (self.schema,),
            )
            function = cursor.fetchone()
        if row is None:
            return "missing"
        unique, whole, columns, table, first, second, definition = row
        parts = [
            str(first or "").replace(f'"{self.schema}".', "").replace(f"{self.schema}.", ""),
            str(second or ""),
        ]
        expected = ("ledger_source_part(state, 'system'::text)", "ledger_source_part(state, 'key'::text)")
        if not (
            unique
            and whole
            and columns == 2
            and table == self.events_table_name
            and parts[0].endswith(expected[0])
            and parts[1].endswith(expected[1])
        ):
            return f"altered: it is `{definition}`"
        if function is None or function[0].strip() != SOURCE_PART_BODY.strip() or function[1] != "i":
            return "altered: the function it is built on, ledger_source_part, was redefined"
        return None

    def sources(
        self, keys: Sequence[tuple[str, str]], cursor: Any = None
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """As `LedgerRecorder.sources`, in one statement per call whatever the planner's statistics.

        The keys travel as two arrays, and each is looked up by its own probe of the unique source index
        (a LATERAL subquery with LIMIT 1, which the planner cannot turn into a join). A plain join of the
        keys with the events lets the planner pick a hash join over the whole table — it does on a table
        never analyzed, or analyzed when it was small — which parses the JSON of every event at every
        append: 186 ms at 14,000 events instead of 7 ms, growing with the log.
        """
        found: dict[tuple[str, str], tuple[int, bytes]] = {}
        if not keys:
            return found
        system, key = self.source_of("e.", "system"), self.source_of("e.", "key")
        with self._reading(cursor) as reading:
            reading.execute(
                "SELECT wanted.system, wanted.key, e.notification_id, e.state "
                "FROM unnest(%s::text[], %s::text[]) AS wanted (system, key) CROSS JOIN LATERAL "
                f"(SELECT e.notification_id, e.state FROM {self.events_table} e "
                f"WHERE {system} = wanted.system AND {key} = wanted.key LIMIT 1) e",
                ([pair[0] for pair in keys], [pair[1] for pair in keys]),
            )
            for found_system, found_key, position, state in reading.fetchall():
                found[(found_system, found_key)] = (int(position), bytes(state))
        return found

    # Reads by position, with the range on both sides of the join. PostgreSQL does not carry
    # `e.notification_id >= p` over to `c.position` through the join's equality, and then merges the events
    # from p with the whole chain index read from position 1: a catch-up of 1,000 events at the end of the
    # city read 991,000 chain entries (431 ms instead of 2 ms), a page of an export half-way 510,000.

    def stream_rows(self, stream: str) -> list[tuple[int, bytes, str, bytes]]:
        # Each event's chain row by its own probe of the chain's key (LIMIT 1 keeps the planner from
        # turning it into a join): without statistics the planner guesses that a stream is 0.5 % of the
        # log and hashes the whole chain table for it (74 ms at a million events against 3 ms).
        with self._cursor(write=False) as cursor:
            cursor.execute(
                self._sql(
                    "SELECT e.{pos}, e.state, c.recorded_at, c.hash FROM {events} e CROSS JOIN LATERAL "
                    "(SELECT c.recorded_at, c.hash FROM {chain} c WHERE c.position = e.{pos} LIMIT 1) c "
                    "WHERE e.originator_id = ? ORDER BY e.originator_version"
                ),
                (stream,),
            )
            return [(row[0], bytes(row[1]), row[2], bytes(row[3])) for row in cursor.fetchall()]

    def valid_json(self, column: str) -> str:
        return f'"{self.schema}".ledger_json_valid({column})'

    def analyze(self) -> None:
        with self.datastore.get_connection() as connection:
            connection.execute(f"ANALYZE {self.events_table}")
            connection.execute(f"ANALYZE {self.chain_table}")

    def check_writable(self, wait_seconds: float) -> None:
        with (
            self.datastore.get_connection() as connection,
            connection.transaction(force_rollback=True),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET LOCAL lock_timeout = '{int(wait_seconds * 1000)}ms'")
            cursor.execute(f"LOCK TABLE {self.events_table} IN EXCLUSIVE MODE")
            # A standby or a read-only session takes the lock but cannot write.
            cursor.execute(f"DELETE FROM {self.meta_table} WHERE name = 'ledger.write_probe'")

    def _database_now(self, cursor: Any) -> datetime:
        """The database server's clock, read inside the append transaction after the lock: every
        replica stamps the log from one clock."""
        cursor.execute("SELECT clock_timestamp()")
        now: datetime = cursor.fetchone()[0]
        return now.astimezone(UTC)

    def create_table(self) -> None:
        """Create the tables, one process at a time: concurrent `CREATE … IF NOT EXISTS` and
        `CREATE OR REPLACE FUNCTION` statements fail with "tuple concurrently updated"."""
        with self.datastore.get_connection() as connection:
            connection.execute(f"SET lock_timeout = '{SCHEMA_LOCK_WAIT_SECONDS}s'")
            connection.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (SCHEMA_LOCK_KEY, self.schema))
            try:
                connection.execute("RESET lock_timeout")
                self._drop_altered_source_index()
                super().create_table()
            finally:
                connection.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))", (SCHEMA_LOCK_KEY, self.schema)
                )

    def _drop_altered_source_index(self) -> None:
        """An index of the right name but another definition (or built on a redefined function, whose
        entries may all be NULL) would survive `CREATE … IF NOT EXISTS`: drop it, to be built again."""
        try:
            problem = self.source_index_problem()
        except PersistenceError:
            return  # a new schema: nothing to check yet
        if problem is not None and problem.startswith("altered"):
            with self._cursor(write=True) as cursor:
                cursor.execute(f'DROP INDEX "{self.schema}".{SOURCE_INDEX}')
            logger.critical("the unique source index had been altered (%s); rebuilding it", problem)

    def _lock_for_append(self, cursor: Any) -> None:
        for statement in self.lock_table_statements:
            cursor.execute(statement)

    @contextmanager
    def _cursor(self, *, write: bool, while_waiting: Callable[[], None] | None = None) -> Iterator[Any]:
        """A cursor in a transaction that commits (`write`), or for reads on the pool's autocommit
        connection: each read is one statement, or statements that need no common snapshot (under READ
        COMMITTED each statement of a transaction takes its own anyway), so a read spares BEGIN and
        ROLLBACK, two round trips of its four (a cadre's history makes four reads).

        Results come in the binary format: a stored event's bytea arrives as its bytes, not as hex text
        twice the size that the client then decodes — reading the log runs 2.5× faster (300k → 750k
        rows/s).

        `while_waiting` is not called: PostgreSQL queues the waiters for the append lock and grants it
        first come, first served, so a writer waits in the queue rather than trying again."""
        with self.datastore.get_connection() as connection:
            if not write:
                with connection.cursor(row_factory=tuple_row, binary=True) as cursor:
                    yield cursor
                return
            with connection.transaction(), connection.cursor(row_factory=tuple_row, binary=True) as cursor:
                yield cursor

    def _insert_rows(
        self,
        cursor: Any,
        event_rows: Sequence[tuple[str, int, str, bytes, int]],
        chain_rows: Sequence[tuple[int, str, str, bytes]],
    ) -> None:
        """COPY the events and their chain rows in (binary format), inside the append's transaction.

        COPY checks every constraint an INSERT does — the primary keys, the unique source index, the
        chain's unique event id — so a duplicate fails the COPY, the transaction rolls back and nothing of
        the batch is recorded (eventsourcing's connection turns psycopg's error into its IntegrityError).
        The position column is written explicitly, as by the INSERT it replaces: the positions are dense.
        """
        with cursor.copy(
            f"COPY {self.events_table} (originator_id, originator_version, topic, state, notification_id) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(EVENT_COPY_TYPES)
            for event_row in event_rows:
                copy.write_row(event_row)
        with cursor.copy(
            f"COPY {self.chain_table} (position, event_id, recorded_at, hash) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(CHAIN_COPY_TYPES)
            for chain_row in chain_rows:
                copy.write_row(chain_row)

    def _insert_tree_rows(self, cursor: Any, rows: Sequence[tuple[int, bytes]]) -> None:
        with cursor.copy(f"COPY {self.merkle_table} (position, hashes) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(TREE_COPY_TYPES)
            for row in rows:
                copy.write_row(row)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        batch: BatchWrite | None = kwargs.get("batch")
        if batch is None:
            raise IntegrityError("appends go through the ledger, which chains them")
        session = kwargs.get("cursor")
        if session is not None:  # the append session holds the lock already
            positions = self._append(session, stored_events, batch, kwargs.get("imported"))
            self._notify_channel(session)
            return positions
        with self._cursor(write=True) as cursor:
            self._lock_for_append(cursor)
            positions = self._append(cursor, stored_events, batch, kwargs.get("imported"))
            self._notify_channel(cursor)
        if positions and kwargs.get("imported") is None:  # an import analyzes once, at its end
            self._refresh_statistics(positions[-1])
        return positions

    def committed(self, head: int) -> None:
        self._refresh_statistics(head)

    def _refresh_statistics(self, head: int) -> None:
        """ANALYZE the log's tables, after an append has committed, once the log has grown to
        STATISTICS_GROWTH times the rows the last ANALYZE counted (and to STATISTICS_FIRST_ROWS at least).

        A ledger that grows by appends alone on a server whose autovacuum is off (as on the test server)
        never gets statistics otherwise, and the planner guesses: that a cadre's stream is 0.5 % of the log,
        that a join of a few thousand keys is best done by hashing the whole table. The reads the ledger
        makes are written not to depend on statistics; this keeps the others (and eventsourcing's) from
        meeting a table never analyzed. The count is the catalog's (`reltuples`, which ANALYZE sets):
        every writer process sees the same, at once. Doubling keeps the cost to a few ANALYZEs over a
        whole log (ANALYZE samples 30,000 rows: about a second at a million, once per doubling).
        Each process tries once per growth step, so a role that may not ANALYZE (not the tables' owner:
        PostgreSQL skips with a warning) does not try at every append. A failure is logged: statistics only
        speed reads up, and the append has committed.
        """
        if head < max(STATISTICS_FIRST_ROWS, STATISTICS_GROWTH * self._statistics_tried_at):
            return
        try:
            with self.datastore.get_connection() as connection:
                row = connection.execute(
                    "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (self.events_table,)
                ).fetchone()
            counted = max(0.0, float(row["reltuples"])) if row is not None else 0.0
            if head >= max(STATISTICS_FIRST_ROWS, STATISTICS_GROWTH * counted):
                self._statistics_tried_at = head
                with self.datastore.get_connection() as connection:
                    # The columns reads filter, join and sort on; not the states and hashes (wide, and
                    # the expression index's statistics would decode every sampled state: 2.3 s → 0.9 s
                    # for the events of the city). `analyze` after bulk loads takes everything.
                    connection.execute(
                        f"ANALYZE {self.events_table} (originator_id, originator_version, notification_id)"
                    )
                    connection.execute(f"ANALYZE {self.chain_table} (position, event_id, recorded_at)")
            else:
                # Another process analyzed the tables meanwhile: wait for growth from its count.
                self._statistics_tried_at = int(counted)
        except PersistenceError as error:
            logger.warning("could not refresh the log's statistics (ANALYZE): %s", error)
