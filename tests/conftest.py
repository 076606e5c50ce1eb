"""Shared fixtures: a ledger on each store, a fixed clock, and builders of events.

PostgreSQL tests read `LEDGER_TEST_POSTGRES_URL`; each test gets its own schema, dropped afterwards.
Without a reachable server they skip with the reason, unless `LEDGER_REQUIRE_POSTGRES=1` (CI), where
they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.domain.events import CadreRegistered, Source

NOW = datetime(2025, 12, 15, 2, 0, tzinfo=UTC)  # 2025-12-15 10:00 in Asia/Shanghai
TODAY = date(2025, 12, 15)


def fixed_clock() -> datetime:
    return NOW


def _postgres_base_url() -> str | None:
    return os.environ.get("LEDGER_TEST_POSTGRES_URL")


def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    url = _postgres_base_url()
    if not url:
        return "LEDGER_TEST_POSTGRES_URL is not set"
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (extra `postgres`)"
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {url} is not reachable: {error}"
    return None


_POSTGRES_REASON: list[str | None] = []


def require_postgres() -> str:
    """The base URL of the test server; skips (or fails in CI) when there is none."""
    if not _POSTGRES_REASON:
        _POSTGRES_REASON.append(_postgres_unavailable())
    reason = _POSTGRES_REASON[0]
    if reason is not None:
        if os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LEDGER_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    url = _postgres_base_url()
    assert url is not None
    return url


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(autouse=True)
def _index_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's persisted read-model indexes (`projections/mapped.py`) under a temporary directory of
    its own: a PostgreSQL ledger's would otherwise go to the user's cache directory and stay there."""
    monkeypatch.setenv("LEDGER_INDEX_DIR", str(tmp_path_factory.mktemp("indexes")))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of a fresh, empty PostgreSQL schema."""
    base = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}schema={schema}"
    drop_schema(base, schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty ledger on each store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    with Ledger.open(store_url, clock=fixed_clock) as opened:
        yield opened


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    with Ledger.open(sqlite_url, clock=fixed_clock) as opened:
        yield opened


_counter = iter(range(1, 10**9))


def source(system: str = "hr", key: str | None = None) -> Source:
    return Source(system=system, key=key or f"k{next(_counter)}")


def registration(
    cadre_id: str = "C1",
    *,
    on: date = date(2024, 1, 1),
    unit_id: str = "U1",
    grade: str = "一级科员",
    leadership: bool = True,
    principal: bool = False,
    key: str | None = None,
) -> CadreRegistered:
    return CadreRegistered(
        cadre_id=cadre_id,
        effective_on=on,
        source=source(key=key),
        name="张三",
        unit_id=unit_id,
        grade=grade,  # type: ignore[arg-type]
        leadership=leadership,
        principal=principal,
        service_started_on=date(2010, 3, 1),
        grade_since=date(2020, 1, 1),
    )


Builder = Callable[..., object]
