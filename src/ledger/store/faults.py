"""What a database error means for the caller: busy, read-only, connection lost — or a bug.

eventsourcing and SQLAlchemy wrap the drivers' errors in their own types; the cause is in the message
(SQLite has no error codes in Python's `sqlite3` before 3.11's `sqlite_errorname`, and PostgreSQL's SQLSTATE
does not survive eventsourcing's wrapping). `store_fault` turns the errors an operator can fix or wait out
into `StoreUnavailable` (503 with Retry-After on the API); anything else stays an error.
"""

from __future__ import annotations

from typing import Final

from ledger.domain.errors import StoreUnavailable

__all__ = ["store_fault"]

_CAUSES: Final = (
    # (cause, retry after seconds, what the message says, fragments of the driver's message)
    (
        "read_only",
        30,
        "the database cannot be written: the file or its directory is read-only, or the server is a "
        "read-only standby",
        (
            "readonly database",
            "read-only transaction",
            "read only transaction",
            "attempt to write a readonly",
            "unable to open database file",
            "disk i/o error",
        ),
    ),
    (
        "disk_full",
        60,
        "the database's disk is full: free space (or grow the volume); nothing was recorded",
        ("database or disk is full", "no space left on device", "could not extend file", "disk_full"),
    ),
    (
        "lock_busy",
        1,
        "another process holds the database's write lock; nothing was recorded",
        ("database is locked", "database table is locked", "lock timeout", "canceling statement due to lock"),
    ),
    (
        "connection_lost",
        2,
        "the connection to the database was lost",
        (
            "terminating connection",
            "server closed the connection",
            "connection is closed",
            "connection already closed",
            "consuming input failed",
            "connection refused",
            "could not connect",
            "the connection is lost",
            "connection timeout expired",
            "couldn't get a connection",
            "sending query failed",
            "admin_shutdown",
            "connection failed",
        ),
    ),
)


def store_fault(error: BaseException) -> StoreUnavailable | None:
    """`error` as a StoreUnavailable naming its cause, or None if it is not a fault of the store."""
    if isinstance(error, StoreUnavailable):
        return error
    text = f"{type(error).__name__}: {error}".lower()
    cause_error = error.__cause__
    if cause_error is not None:
        text += f" {type(cause_error).__name__}: {cause_error}".lower()
    for cause, retry_after, meaning, fragments in _CAUSES:
        if any(fragment in text for fragment in fragments):
            detail = str(cause_error or error).strip().splitlines()[0] if str(cause_error or error) else ""
            return StoreUnavailable(f"{meaning} ({detail})", cause=cause, retry_after=retry_after)
    return None
