"""Test helpers that reach under the ledger, as someone with database access would."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import parse_qs, urlsplit


def raw_sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the ledger's database behind its back.

    `{events}` names the events table and `{pos}` its position column on either engine; `?` is the
    placeholder.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        statement = statement.replace("{events}", "stored_events").replace("{pos}", "rowid")
        connection = sqlite3.connect(parts.path[1:])
        try:
            cursor = connection.execute(statement, params)
            rows = cursor.fetchall()
            connection.commit()
            return rows
        finally:
            connection.close()
    import psycopg

    schema = parse_qs(parts.query)["schema"][0]
    statement = (
        statement.replace("{events}", "ledger_events").replace("{pos}", "notification_id").replace("?", "%s")
    )
    base = parts._replace(query="").geturl()
    with psycopg.connect(base, autocommit=True, options=f"-c search_path={schema}") as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def alter_state(url: str, position: int, old: bytes, new: bytes) -> None:
    """Replace bytes inside the stored event at `position`."""
    (state,) = raw_sql(url, "SELECT state FROM {events} WHERE {pos} = ?", (position,))[0]
    altered = bytes(state).replace(old, new, 1)
    assert altered != bytes(state), "nothing to alter"
    raw_sql(url, "UPDATE {events} SET state = ? WHERE {pos} = ?", (altered, position))
