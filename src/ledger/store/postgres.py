"""The production store: PostgreSQL through eventsourcing's recorder, with the ledger's append.

Tables live in the datastore's schema: `ledger_events` (eventsourcing's, named after the application),
`ledger_chain`, `ledger_meta`. The append takes eventsourcing's `LOCK TABLE … IN EXCLUSIVE MODE` on the
events table, so appends are serialized and readers are never blocked; the recording time is the database
server's `clock_timestamp()`, read after the lock is taken.

The unique source index is built on `ledger_source_part(state, part)`, an IMMUTABLE SQL function of the
stored JSON (`convert_from` is only STABLE because of the client encoding, but the state is always UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
        self.schema = schema
        self.events_table_name = events_table_name
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

    def valid_json(self, column: str) -> str:
        return f'"{self.schema}".ledger_json_valid({column})'

    def analyze(self) -> None:
        with self.datastore.get_connection() as connection:
            connection.execute(f"ANALYZE {self.events_table}")
            connection.execute(f"ANALYZE {self.chain_table}")

    def check_writable(self, wait_seconds: float) -> None:
        with self._cursor(write=False) as cursor:
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

    @contextmanager
    def _cursor(self, *, write: bool) -> Iterator[Any]:
        with (
            self.datastore.get_connection() as connection,
            connection.transaction(force_rollback=not write),
            connection.cursor(row_factory=tuple_row) as cursor,
        ):
            yield cursor

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        batch: BatchWrite | None = kwargs.get("batch")
        if batch is None:
            raise IntegrityError("appends go through the ledger, which chains them")
        with self._cursor(write=True) as cursor:
            for statement in self.lock_table_statements:
                cursor.execute(statement)
            positions = self._append(cursor, stored_events, batch, kwargs.get("imported"))
            self._notify_channel(cursor)
            return positions
