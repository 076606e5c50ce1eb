"""Faults of the store answer with `StoreUnavailable` (503 on the API) in bounded time, never an unexplained
error or a hang (issue 10, items 5, 6, 9, 10, 11), on SQLite and PostgreSQL:

- clocks: the recording time comes from one clock; a writer whose clock disagrees with the database's, or
  a head stamped in the future, is refused, saying which way;
- a log that went backwards (a restore in place, a standby promoted without its last commits): the writer
  notices at its next catch-up, logs a critical line and refolds, instead of refusing every post;
- the write lock held by someone else: a post is refused after a short, named wait; reads go on; posts
  waiting inside one process are bounded;
- PostgreSQL backends terminated: idle ones are replaced by the pool, a post whose connection dies before
  it committed is retried once;
- a read-only database: posts are refused naming the cause, and the readiness probe says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ledger import Ledger
from ledger.domain.errors import InvalidInput, StoreUnavailable
from ledger.domain.events import MeritAwarded, Source
from ledger.ledger import POSTS_WAITING_MAX
from ledger.store import recorders
from tests.conftest import fixed_clock, registration
from tests.support import raw_sql

CONDITION_WAIT_SECONDS = 30.0  # how long a test waits for a condition it polls (never reached when green)


def merit(cadre_id: str = "C1", key: str | None = None) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id,
        effective_on=date(2024, 6, 1),
        source=Source(system="hr", key=key or uuid.uuid4().hex),
        award="citation",
        level="county",
    )


def wait_until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + CONDITION_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def is_postgres(url: str) -> bool:
    return not url.startswith("sqlite")


def schema_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["schema"][0]


def base_of(url: str) -> str:
    return urlsplit(url)._replace(query="").geturl()


# Clocks (item 5).


def test_postgres_stamps_the_log_with_the_server_clock_and_refuses_a_writer_clock_far_off(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Ledger.open(postgres_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
        for years, way in ((5, "ahead of"), (-5, "behind")):
            skewed = datetime.now(UTC) + timedelta(days=365 * years)
            ledger._recorder.wall_clock = lambda skewed=skewed: skewed  # type: ignore[misc]
            with caplog.at_level(logging.ERROR, "ledger.store"), pytest.raises(StoreUnavailable) as refused:
                ledger.post([merit()])
            assert refused.value.cause == "clock_skew"
            assert "this writer's clock" in str(refused.value) and way in str(refused.value)
            assert "5 years" in str(refused.value)
            assert ledger.head() == head
            assert any("refusing to record" in record.message for record in caplog.records)
        ledger._recorder.wall_clock = recorders._wall_clock  # type: ignore[misc]
        ledger.post([merit()])
        (server_now,) = raw_sql(postgres_url, "SELECT clock_timestamp()")[0]
        recorded = ledger.events(after=head, limit=1)[0].recorded_at
        assert abs((server_now - recorded).total_seconds()) < recorders.CLOCK_SKEW_MAX_SECONDS


def test_a_head_stamped_in_the_future_stops_appends_until_the_clocks_agree(store_url: str) -> None:
    """On SQLite every writer shares the host's clock; a clock that ran ahead and came back leaves a head
    in the future, which would stamp every later event in the future too."""
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
        future = datetime.now(UTC) + timedelta(days=365 * 5)
        stamp = future.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # The head as a clock five years ahead would have stamped it (rehashed: the chain stays valid).
        from ledger.integrity.chain import canonical_bytes, chain_hash

        (state,) = raw_sql(store_url, "SELECT state FROM {events} WHERE {pos} = ?", (head,))[0]
        (previous,) = raw_sql(store_url, "SELECT hash FROM ledger_chain WHERE position = ?", (head - 1,))[0]
        new_hash = chain_hash(bytes(previous), canonical_bytes(head, stamp, bytes(state)))
        raw_sql(
            store_url,
            "UPDATE ledger_chain SET recorded_at = ?, hash = ? WHERE position = ?",
            (stamp, new_hash, head),
        )
        ledger.rebuild_tree()  # the insider's rewrite recomputes the Merkle tree too
        assert ledger.verify().ok
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        with pytest.raises(StoreUnavailable) as refused:
            ledger.post([merit()])
        assert refused.value.cause == "clock_skew"
        assert f"position {head}" in str(refused.value) and "ahead of the database clock" in str(
            refused.value
        )
        assert ledger.head() == head


# A log that went backwards (item 6, the writer's side).


def rewind(url: str, position: int) -> None:
    """What a restore in place or a promoted standby does: the log ends at `position` again."""
    raw_sql(url, "DELETE FROM {events} WHERE {pos} > ?", (position,))
    raw_sql(url, "DELETE FROM ledger_chain WHERE position > ?", (position,))
    if is_postgres(url):  # the positions are handed out by a sequence; a restored one is behind too
        raw_sql(
            url,
            "SELECT setval(pg_get_serial_sequence('ledger_events', 'notification_id'), ?)",
            (position,),
        )


def test_a_writer_that_saw_a_lost_head_refolds_and_goes_on(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as writer:
        writer.post([registration("C1")])
        kept = writer.head()
        writer.post([registration("C2"), merit("C2")])  # lost by the rewind
        rewind(store_url, kept)
        with Ledger.open(store_url, clock=fixed_clock) as other:
            other.post([registration("C3")])  # reuses the lost position with another event
        assert writer.head() == kept + 1
        with caplog.at_level(logging.CRITICAL, "ledger"):
            result = writer.post([merit("C3")])
        assert result.results[0].position == kept + 2
        assert any("went backwards" in record.message for record in caplog.records)
        with pytest.raises(InvalidInput, match="C2"):
            writer.post([merit("C2")])  # its registration was lost with the rewind
        assert writer.verify().ok


def test_a_writer_whose_head_is_now_beyond_the_log_posts_at_the_new_end(store_url: str) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as writer:
        writer.post([registration("C1")])
        kept = writer.head()
        writer.post([merit("C1"), merit("C1")])
        rewind(store_url, kept)
        assert writer.post([merit("C1")]).results[0].position == kept + 1
        assert writer.verify().ok


# The write lock held by someone else (item 9).


@contextlib.contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """Another process's transaction holding the log's write lock."""
    if is_postgres(url):
        import psycopg

        with psycopg.connect(base_of(url), options=f"-c search_path={schema_of(url)}") as connection:
            connection.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
            yield
            connection.rollback()
    else:
        connection = sqlite3.connect(urlsplit(url).path[1:], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(recorders, "WRITE_LOCK_WAIT_SECONDS", 1)
    return 1


def test_a_post_behind_a_held_lock_is_refused_after_a_short_wait_and_reads_go_on(
    store_url: str, short_lock_wait: int
) -> None:
    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1"), merit("C1")])
        head = ledger.head()
        ledger._recorder.datastore.lock_timeout = short_lock_wait  # type: ignore[attr-defined]
        with write_lock_held(store_url):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as refused:
                ledger.post([merit("C1")])
            waited = time.monotonic() - started
            assert refused.value.cause == "lock_busy" and refused.value.retry_after >= 1
            assert "write lock" in str(refused.value)
            assert waited < 30, "bounded, not the 30 s it used to take"
            assert ledger.history("C1").total > 0  # reads do not wait for the lock
            problem = ledger.write_problem(0.2)
            assert problem is not None and problem.cause == "lock_busy"
        assert ledger.head() == head
        assert ledger.write_problem() is None
        ledger.post([merit("C1")])


def test_posts_waiting_in_one_process_are_bounded(sqlite_ledger: Ledger) -> None:
    ledger = sqlite_ledger
    ledger.post([registration("C1")])
    outcomes: list[object] = []
    ledger._writer.lock.acquire()  # a post in progress
    try:
        threads = [
            threading.Thread(target=lambda: outcomes.append(ledger.post([merit("C1")])))
            for _ in range(POSTS_WAITING_MAX)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: ledger._writer.posts_waiting == POSTS_WAITING_MAX, "the posts to queue")
        with pytest.raises(StoreUnavailable, match="already waiting") as refused:
            ledger.post([merit("C1")])
        assert refused.value.cause == "lock_busy"
    finally:
        ledger._writer.lock.release()
    for thread in threads:
        thread.join()
    assert len(outcomes) == POSTS_WAITING_MAX  # the ones that waited were recorded
    assert ledger.head() == 2 + POSTS_WAITING_MAX


# PostgreSQL backends terminated (item 10).


@pytest.fixture
def role_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    """`(url, role)`: the test's schema reached through a login role of its own, so that the server
    processes serving this ledger (and no other test's) can be found by their user and terminated."""
    schema = schema_of(postgres_url)
    database = urlsplit(postgres_url).path[1:]
    role = f"ro_{uuid.uuid4().hex[:10]}"
    raw_sql(postgres_url, f"CREATE ROLE {role} LOGIN")
    raw_sql(postgres_url, f'CREATE SCHEMA "{schema}" AUTHORIZATION {role}')
    raw_sql(postgres_url, f"GRANT CREATE ON DATABASE {database} TO {role}")
    parts = urlsplit(postgres_url)
    try:
        yield parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}").geturl(), role
    finally:
        terminate_backends(postgres_url, role)
        raw_sql(postgres_url, f'ALTER SCHEMA "{schema}" OWNER TO postgres')
        raw_sql(postgres_url, f"REVOKE CREATE ON DATABASE {database} FROM {role}")
        raw_sql(postgres_url, f"REASSIGN OWNED BY {role} TO postgres")
        raw_sql(postgres_url, f"DROP OWNED BY {role}")
        raw_sql(postgres_url, f"DROP ROLE {role}")


def terminate_backends(url: str, role: str, *, waiting_on_lock: bool = False) -> int:
    """Terminate the server processes of `role` (those waiting for a lock only, if asked)."""
    condition = " AND wait_event_type = 'Lock'" if waiting_on_lock else ""
    rows = raw_sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
        f"AND usename = ?{condition}",
        (role,),
    )
    return len(rows)


def test_postgres_idle_connections_terminated_are_replaced_without_an_error(
    postgres_url: str, role_url: tuple[str, str]
) -> None:
    url, role = role_url
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        assert ledger.history("C1").entries
        assert terminate_backends(postgres_url, role) >= 1
        ledger.post([merit("C1")])
        assert len(ledger.history("C1").entries) == 2
        assert ledger.verify().ok


def test_postgres_a_post_whose_connection_dies_before_commit_is_retried_once(
    postgres_url: str, role_url: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ledger")
    url, role = role_url
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
        outcome: list[object] = []
        import psycopg

        with psycopg.connect(base_of(postgres_url), options=f"-c search_path={schema_of(url)}") as holder:
            holder.execute("LOCK TABLE ledger_events IN EXCLUSIVE MODE")
            poster = threading.Thread(target=lambda: outcome.append(ledger.post([merit("C1", "once")])))
            poster.start()
            wait_until(
                lambda: terminate_backends(postgres_url, role, waiting_on_lock=True) > 0,
                "the post to wait for the lock",
            )
            holder.rollback()
        poster.join()
        assert len(outcome) == 1, "the post succeeded on a fresh connection"
        assert any("retrying once" in record.message for record in caplog.records)
        assert ledger.head() == head + 1
        assert ledger.post([merit("C1", "once")]).results[0].replayed


# A read-only database (item 11).


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    if os.geteuid() == 0:  # root writes through permission bits; an immutable file it cannot
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot make {path} read-only as root: chattr failed: {made.stderr.decode()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)


def test_sqlite_a_read_only_file_refuses_posts_naming_the_cause(sqlite_url: str) -> None:
    path = Path(urlsplit(sqlite_url).path[1:])
    with Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
    with read_only_file(path), Ledger.open(sqlite_url, clock=fixed_clock) as ledger:
        with pytest.raises(StoreUnavailable, match="read-only") as refused:
            ledger.post([merit("C1")])
        assert refused.value.cause == "read_only"
        problem = ledger.write_problem()
        assert problem is not None and problem.cause == "read_only"
        assert ledger.history("C1").entries  # reads still answer
        assert ledger.head() == head


def test_postgres_a_read_only_server_refuses_posts_naming_the_cause(
    postgres_url: str, role_url: tuple[str, str]
) -> None:
    """A standby or a database set read-only: the ledger's sessions are read-only transactions."""
    url, role = role_url
    with Ledger.open(url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
        raw_sql(postgres_url, f"ALTER ROLE {role} SET default_transaction_read_only = on")
        terminate_backends(postgres_url, role)  # new sessions are read-only
        with pytest.raises(StoreUnavailable, match="read-only") as refused:
            ledger.post([merit("C1")])
        assert refused.value.cause == "read_only"
        problem = ledger.write_problem()
        assert problem is not None and problem.cause == "read_only"
        assert ledger.history("C1").entries
        assert ledger.head() == head


# The CLI's answer to a store fault: a message and exit 1, never a traceback.


def test_cli_post_behind_a_held_lock_exits_1_naming_the_cause(
    store_url: str, short_lock_wait: int, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from ledger.cli import app

    with Ledger.open(store_url, clock=fixed_clock) as ledger:
        ledger.post([registration("C1")])
        head = ledger.head()
    line = {
        "type": "merit.awarded",
        "cadre_id": "C1",
        "effective_on": "2024-06-01",
        "source": {"system": "hr", "key": "cli-behind-lock"},
        "award": "citation",
        "level": "county",
    }
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with write_lock_held(store_url):
        result = CliRunner().invoke(app, ["post", str(events), "--database", store_url])
    assert result.exit_code == 1, result.output
    assert "lock_busy" in result.output and "Traceback" not in result.output
    assert raw_sql(store_url, "SELECT MAX(position) FROM ledger_chain")[0][0] == head


def test_postgres_ledgers_in_other_schemas_open_while_one_schema_creates_its_tables(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock under which tables are created is one per schema, and waited for a bounded time."""
    import psycopg

    from ledger.store import postgres

    monkeypatch.setattr(postgres, "SCHEMA_LOCK_WAIT_SECONDS", 1)
    schema = schema_of(postgres_url)
    with psycopg.connect(base_of(postgres_url), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (postgres.SCHEMA_LOCK_KEY, "another"))
        with Ledger.open(postgres_url, clock=fixed_clock) as ledger:  # not blocked by the other schema
            assert ledger.head() >= 1
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (postgres.SCHEMA_LOCK_KEY, schema))
        with pytest.raises(Exception, match="lock timeout"):
            Ledger.open(postgres_url, clock=fixed_clock)
