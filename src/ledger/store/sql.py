"""SQLAlchemy engines on the ledger's own database, for what lives beside the log (read models, keys)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import sqlalchemy
from sqlalchemy.engine import Engine

from ledger.store.application import environment_for
from ledger.store.recorders import WRITE_LOCK_WAIT_SECONDS

__all__ = ["engine_for", "schema_of"]

# The read models and keys wait for the write lock no longer than the log's appends do.
SQLITE_BUSY_TIMEOUT_SECONDS = WRITE_LOCK_WAIT_SECONDS


def schema_of(url: str) -> str | None:
    """The PostgreSQL schema named by `?schema=` (None for SQLite or the default schema)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return None
    return parse_qs(parts.query).get("schema", [None])[0]


def engine_for(url: str) -> Engine:
    """An engine on the database of the ledger at `url` (same SQLite file, same PostgreSQL schema)."""
    settings = environment_for(url)
    if "SQLITE_DBNAME" in settings:
        # The ledger's own connection has put the file in WAL mode. The pool hands each checkout to one
        # thread at a time, so connections may move between threads.
        return sqlalchemy.create_engine(
            f"sqlite+pysqlite:///{settings['SQLITE_DBNAME']}",
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
    parts = urlsplit(url)
    schema = schema_of(url)
    # A held lock makes a statement fail after the same bounded wait as an append, not hang.
    options = f"-c lock_timeout={WRITE_LOCK_WAIT_SECONDS}s" + (f" -c search_path={schema}" if schema else "")
    address = parts._replace(scheme="postgresql+psycopg", query="").geturl()
    return sqlalchemy.create_engine(
        address, connect_args={"options": options, "connect_timeout": 5}, pool_pre_ping=True
    )
