"""The eventsourcing application that holds the log, configured from a database URL.

`sqlite:///ledger.db` (relative path), `sqlite:////var/lib/ledger.db` (absolute) — the embedded default;
`postgresql://user:password@host:5432/dbname?schema=name` — production (the `postgres` extra).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from ledger.domain.cadre import Recorded
from ledger.domain.errors import InvalidInput
from ledger.store.recorders import WRITE_LOCK_WAIT_SECONDS, LedgerRecorder

__all__ = ["DEFAULT_DATABASE_URL", "LedgerApplication", "environment_for", "require_postgres_driver"]

DEFAULT_DATABASE_URL = "sqlite:///ledger.db"
POSTGRES_EXTRA_HINT = "pip install 'cadre-ledger[postgres]'"
SQLITE_SYNCHRONOUS_MODES = ("FULL", "NORMAL")


def environment_for(url: str) -> dict[str, str]:
    """eventsourcing's environment for the database at `url`."""
    common = {
        "ORIGINATOR_ID_TYPE": "text",
        "MAPPER_TOPIC": "ledger.store.mapper:EventMapper",
        "CREATE_TABLE": "y",
    }
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path or path == ":memory:" or parts.netloc:
            raise InvalidInput(
                "a SQLite ledger is a file: write sqlite:///relative/path.db or sqlite:////absolute/path.db",
                field="LEDGER_DATABASE_URL",
                rule="database_url_invalid",
            )
        synchronous = parse_qs(parts.query).get("synchronous", ["full"])[0].upper()
        if synchronous not in SQLITE_SYNCHRONOUS_MODES:
            raise InvalidInput(
                f"synchronous={synchronous.lower()!r}: use full (the default) or normal",
                field="LEDGER_DATABASE_URL",
                rule="database_url_invalid",
            )
        return common | {
            "LEDGER_SQLITE_SYNCHRONOUS": synchronous,
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": os.path.abspath(path),
            "SQLITE_LOCK_TIMEOUT": str(WRITE_LOCK_WAIT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": "ledger.store.recorders:LedgerSQLiteRecorder",
        }
    if parts.scheme in ("postgresql", "postgres"):
        require_postgres_driver()
        query = parse_qs(parts.query)
        return common | {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_SCHEMA": query.get("schema", [""])[0],
            "POSTGRES_LOCK_TIMEOUT": str(WRITE_LOCK_WAIT_SECONDS),
            "POSTGRES_POOL_SIZE": "5",
            # A connection whose backend was terminated (a restart, a failover, pg_terminate_backend) is
            # noticed when it is taken from the pool, not by the request that uses it.
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "APPLICATION_RECORDER_TOPIC": "ledger.store.postgres:LedgerPostgresRecorder",
        }
    raise InvalidInput(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:/// or postgresql://",
        field="LEDGER_DATABASE_URL",
        rule="database_url_invalid",
    )


class LedgerApplication(Application[Any]):
    """The log: one stream per cadre and one for the rulebooks."""

    name = "Ledger"
    env: ClassVar[dict[str, str]] = {}

    def __init__(self, url: str, *, create: bool = True) -> None:
        # The URL decides everything: settings of eventsourcing in the process environment must not
        # leak into a ledger opened with an explicit URL.
        settings = environment_for(url)
        if not create and settings["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            # A reader creates nothing (no CREATE … IF NOT EXISTS, no CREATE OR REPLACE FUNCTION), so that
            # it can open a ledger on a read-only server, a standby.
            settings["CREATE_TABLE"] = "no"
        saved = {
            key: os.environ.pop(key)
            for key in list(os.environ)
            if key in settings
            or (
                key.startswith(("POSTGRES_", "SQLITE_", "LEDGER_POSTGRES"))
                and key not in ("LEDGER_DATABASE_URL",)
            )
        }
        try:
            super().__init__(env=settings)
        finally:
            os.environ.update(saved)
        recorder = self.recorder
        assert isinstance(recorder, LedgerRecorder)
        self.ledger_recorder: LedgerRecorder = recorder
        if "LEDGER_SQLITE_SYNCHRONOUS" in settings:
            recorder.synchronous = settings["LEDGER_SQLITE_SYNCHRONOUS"]  # type: ignore[attr-defined]

    def append(self, events: Sequence[Recorded], **kwargs: Any) -> Sequence[int]:
        """Store `events` in one transaction, in the given order (the positions follow it).

        `Application.save` would first collect events from aggregates, checking each against a runtime
        protocol — a third of the cost of a batch; the ledger hands over its events ready-made.
        """
        return self.append_stored(self.stored(events), **kwargs)

    def stored(self, events: Sequence[Recorded]) -> list[StoredEvent]:
        """The rows `events` are stored as (their bytes do not depend on where they land in the log)."""
        return [self.mapper.to_stored_event(event) for event in events]

    def append_stored(self, stored: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        """Store rows made by `stored` in one transaction, in the given order."""
        return self.recorder.insert_events(stored, **kwargs) or []

    def close(self) -> None:
        self.factory.close()


def require_postgres_driver() -> None:
    """A PostgreSQL URL on the plain install: say which extra to install, not a traceback from deep inside
    eventsourcing's import of psycopg."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise InvalidInput(
            f"a PostgreSQL ledger needs the postgres extra: {POSTGRES_EXTRA_HINT}",
            field="LEDGER_DATABASE_URL",
            rule="postgres_extra_missing",
        ) from None
