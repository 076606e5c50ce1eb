"""Exhaustive tamper evidence (SPEC §8, §12 Tamper): on a 120-event log, every single-row alteration,
deletion, swap and insertion an insider can make with SQL is caught by `verify` at its position with a
fitting reason; truncation and a consistent rewrite are caught against a checkpoint.

Method: post a 120-event log (a policy, registrations, merits and their reversals, deductions, evaluations,
transfers, recalls, investigations, appraisals, vetoes, a grade change), copy its two tables (events and
chain) into pristine tables of the same database, then for each case restore the rows the previous case
touched from the pristine ones, make one change behind the ledger's back in the same transaction, and ask
the ledger to verify. The insider first drops the unique index over the events' sources, which would
refuse some of these changes (malformed JSON, a copied source); `verify` reports the missing index as a
finding (tests/contract/test_tamper.py), and the chain must still name each change. Cases are counted by
kind; every one must be detected at the expected position with one of the expected reasons. Each test
prints its counts by kind, with the reasons `verify` gave (run with `-s`), and records them as the junit
property `tamper_counts`; docs/reliability.md quotes them.

The cases, for every position p of the log (1 … 120) unless said otherwise:
- `state byte`: one byte inside a string value of the stored JSON (the source key, the event id or
  `posted_by`, in turn), so the JSON stays valid → altered at p;
- `every byte`: each byte of two stored events in turn, XOR 0x01 → altered at that event (on SQLite only:
  the byte-level check is the same code on every store);
- `hash`, `recorded_at`, `chain event_id`: the chain row's columns → altered at p;
- `originator_id`, `originator_version`, `topic`: the stream columns of the event row → altered at p;
- `delete event`: the event row → missing at p; `delete chain row`: the chain row only → inserted at p
  (an event without a chain entry; the verifier cannot tell a lost chain row from a forged event);
- `delete event and chain row`: both → missing at p (at the head the log is a consistent shorter log:
  caught against a checkpoint as missing at 120);
- `swap events`: the event rows of p and p+1, and of 100 random pairs → reordered at the first;
- `swap events with chain rows`: both rows of p and p+1 exchange places → reordered or altered at p;
- `insert chained`: a forged event with a correctly chained chain row inserted before p, the rows from p
  on renumbered → the forged row chains, the event after it does not: caught at p+1;
- `insert at the end`: a forged event without a chain row, with a chain row whose hash is wrong, and a
  chain row without an event → inserted, altered, missing at 201;
- `truncate`: every event after t (0 ≤ t < 120) with its chain row → consistent on its own, missing at
  t+1 against a checkpoint at 120;
- `consistent rewrite`: one byte of event p changed and every hash from p on recomputed → verifies on
  its own, altered at the checkpoint's position against it;
- `consistent insertion`: a forged event inserted before p with every later row renumbered and rehashed
  → altered at the checkpoint's position against it.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from ledger import Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    CadreGradeChanged,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    RecallCompleted,
    RecallOrdered,
    Scores,
    Source,
    VetoApplied,
)
from ledger.integrity.chain import GENESIS_HASH, canonical_bytes, chain_hash
from ledger.integrity.verify import Checkpoint
from ledger.store.mapper import topic_of
from tests.conftest import fixed_clock

LOG_SIZE = 120
CADRES = 12
RANDOM_SWAPS = 100
EVERY_BYTE_POSITIONS = (100, LOG_SIZE)
VACUUM_EVERY = 100


# The 120-event log.


def _events() -> Iterator[list[EventBase]]:
    """Batches of valid events of most kinds, for `CADRES` cadres, until the log holds `LOG_SIZE`."""
    keys = iter(range(1, 10**6))
    start = date(2023, 1, 2)

    def source() -> Source:
        return Source(system="tamper", key=f"k{next(keys)}")

    cadre_ids = [f"C{number:02d}" for number in range(CADRES)]
    units = {cadre_id: f"U{number % 3 + 1}" for number, cadre_id in enumerate(cadre_ids)}
    yield [
        CadreRegistered(
            cadre_id=cadre_id,
            effective_on=start,
            source=source(),
            name=f"干部{number}",
            unit_id=units[cadre_id],
            grade="一级科员",
            leadership=number % 2 == 0,
            principal=number % 4 == 0,
            service_started_on=date(2010, 3, 1),
            grade_since=date(2020, 1, 1),
        )
        for number, cadre_id in enumerate(cadre_ids)
    ]
    round_ = 0
    while True:
        batch: list[EventBase] = []
        on = start + timedelta(days=30 * round_ + 1)
        for number, cadre_id in enumerate(cadre_ids):
            common: dict[str, Any] = {"cadre_id": cadre_id, "effective_on": on, "source": source()}
            kind = (round_ + number) % 8
            if kind == 0:
                batch.append(MeritAwarded(**common, award="citation", level="county", document="文号 1"))
            elif kind == 1:
                batch.append(DeductionApplied(**common, kind="criticism", level="unit"))
            elif kind == 2:
                scores = Scores(self=Decimal("80"), section=Decimal("75.5"), leadership=Decimal("90"))
                # One evaluation per cadre and period: the ISO week of the round (rounds are 30 days apart).
                week = on.isocalendar()
                period = f"{week.year}-W{week.week:02d}"
                batch.append(EvaluationRecorded(**common, period=period, scores=scores, note="评议"))
            elif kind == 3:
                unit = f"U{(int(units[cadre_id][1]) % 3) + 1}"
                units[cadre_id] = unit
                batch.append(CadreTransferred(**common, unit_id=unit))
            elif kind == 4:
                batch.append(RecallOrdered(**common, period="2023Q2", reason="bottom"))
                batch.append(
                    RecallCompleted(**{**common, "source": source()}, outcome="passed"),
                )
            elif kind == 5:
                reference = f"R{round_}"
                batch.append(InvestigationOpened(**common, reference=reference))
                batch.append(InvestigationClosed(**{**common, "source": source()}, reference=reference))
            elif kind == 6:
                batch.append(AppraisalRecorded(**common, year=on.year - 1 + round_ // 8, result="competent"))
            else:
                batch.append(VetoApplied(**common, year=on.year, reason="一票否决"))
        if round_ == 1:
            grade_change = CadreGradeChanged(
                cadre_id="C01", effective_on=on, source=source(), grade="四级主任科员"
            )
            batch.append(grade_change)
        yield batch
        round_ += 1


def build_log(url: str) -> Ledger:
    """A ledger at `url` holding exactly `LOG_SIZE` events, with reversals among them."""
    ledger = Ledger.open(url, clock=fixed_clock)
    merits: list[tuple[uuid.UUID, MeritAwarded]] = []
    for batch in _events():
        room = LOG_SIZE - ledger.head()
        if room <= 0:
            break
        reversals = [
            EntryReversed(
                cadre_id=merit.cadre_id,
                effective_on=merit.effective_on + timedelta(days=3),
                source=Source(system="tamper", key=f"reverse-{event_id}"),
                target_event_id=event_id,
                reason="appeal",
            )
            for event_id, merit in merits[:2]
        ]
        merits = merits[2:]
        posted = (reversals + batch)[:room]
        result = ledger.post(posted)
        merits += [
            (item.event_id, event)
            for item, event in zip(result.results, posted, strict=True)
            if isinstance(event, MeritAwarded)
        ]
    assert ledger.head() == LOG_SIZE
    assert ledger.verify().ok
    return ledger


# Changing the database behind the ledger's back.


class Database:
    """One connection to the ledger's database, with the pristine rows kept beside the live ones."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.postgres = parts.scheme != "sqlite"
        if self.postgres:
            import psycopg

            schema = parse_qs(parts.query)["schema"][0]
            base = parts._replace(query="").geturl()
            self.connection: Any = psycopg.connect(base, options=f"-c search_path={schema}")
            # Each case is restored anyway: no need to wait for the write-ahead log to reach the disk.
            self.connection.execute("SET synchronous_commit = off")
            self.connection.commit()
            self.events, self.pos = "ledger_events", "notification_id"
        else:
            self.connection = sqlite3.connect(parts.path[1:], isolation_level=None)
            # Each case is restored anyway: no need to sync to disk.
            self.connection.execute("PRAGMA synchronous = OFF")
            self.events, self.pos = "stored_events", "rowid"
        self.begin()
        self.execute("DROP INDEX ledger_events_source")
        self.execute(
            "CREATE TABLE pristine_events AS SELECT {pos} AS position, originator_id, originator_version, "
            "topic, state FROM {events}"
        )
        self.execute("CREATE TABLE pristine_chain AS SELECT * FROM ledger_chain")
        self.commit()
        self.event_rows: dict[int, tuple[str, int, str, bytes]] = {
            row[0]: (row[1], row[2], row[3], bytes(row[4]))
            for row in self.query("SELECT * FROM pristine_events")
        }
        self.chain_rows: dict[int, tuple[str, str, bytes]] = {
            row[0]: (row[1], row[2], bytes(row[3])) for row in self.query("SELECT * FROM pristine_chain")
        }
        self.restored = 0

    def sql(self, statement: str) -> str:
        statement = statement.replace("{events}", self.events).replace("{pos}", self.pos)
        return statement.replace("?", "%s") if self.postgres else statement

    def begin(self) -> None:
        if not self.postgres:
            self.connection.execute("BEGIN")

    def commit(self) -> None:
        if self.postgres:
            self.connection.commit()
        else:
            self.connection.execute("COMMIT")

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self.connection.execute(self.sql(statement), params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self.postgres:
            with self.connection.cursor() as cursor:
                cursor.executemany(self.sql(statement), rows)
        else:
            self.connection.executemany(self.sql(statement), rows)

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.connection.execute(self.sql(statement), params).fetchall())

    def restore(self, rows: tuple[int, int]) -> None:
        """Put the pristine rows of positions `rows` (first, last) back, inside the current transaction."""
        self.restored += 1
        if self.postgres and self.restored % VACUUM_EVERY == 0:
            # Thousands of rewrites of the same rows leave dead tuples that slow every later scan.
            self.connection.commit()
            self.connection.autocommit = True
            self.execute("VACUUM {events}")
            self.execute("VACUUM ledger_chain")
            self.connection.autocommit = False
        self.execute("DELETE FROM {events} WHERE {pos} BETWEEN ? AND ?", rows)
        self.execute("DELETE FROM ledger_chain WHERE position BETWEEN ? AND ?", rows)
        self.execute(
            "INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
            "SELECT position, originator_id, originator_version, topic, state FROM pristine_events "
            "WHERE position BETWEEN ? AND ?",
            rows,
        )
        self.execute(
            "INSERT INTO ledger_chain SELECT * FROM pristine_chain WHERE position BETWEEN ? AND ?", rows
        )

    def close(self) -> None:
        self.connection.close()

    # Mutations an insider makes.

    def set_event(self, position: int, column: str, value: Any) -> None:
        self.execute(f"UPDATE {{events}} SET {column} = ? WHERE {{pos}} = ?", (value, position))

    def set_chain(self, position: int, column: str, value: Any) -> None:
        self.execute(f"UPDATE ledger_chain SET {column} = ? WHERE position = ?", (value, position))

    def insert_event(self, position: int, row: tuple[str, int, str, bytes]) -> None:
        self.execute(
            "INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            (position, *row),
        )

    def insert_chain(self, position: int, row: tuple[str, str, bytes]) -> None:
        self.execute("INSERT INTO ledger_chain VALUES (?, ?, ?, ?)", (position, *row))

    def shift_from(self, position: int) -> None:
        """Renumber every event and chain row from `position` on one place up (through negative numbers,
        so that no two rows hold the same position on the way)."""
        for table, column in (("{events}", "{pos}"), ("ledger_chain", "position")):
            self.execute(f"UPDATE {table} SET {column} = -({column} + 1) WHERE {column} >= ?", (position,))
            self.execute(f"UPDATE {table} SET {column} = -{column} WHERE {column} < 0")

    def rehash_from(self, position: int) -> None:
        """Recompute every chain hash from `position` on, as an insider covering their tracks would."""
        rows = self.query(
            "SELECT c.position, c.recorded_at, e.state FROM ledger_chain c "
            "JOIN {events} e ON e.{pos} = c.position WHERE c.position >= ? ORDER BY c.position",
            (position - 1,),
        )
        previous = GENESIS_HASH
        if position > 1:
            (previous,) = self.query("SELECT hash FROM ledger_chain WHERE position = ?", (position - 1,))[0]
            previous = bytes(previous)
        updates = []
        for row_position, recorded_at, state in rows:
            if row_position < position:
                continue
            previous = chain_hash(previous, canonical_bytes(row_position, recorded_at, bytes(state)))
            updates.append((previous, row_position))
        self.executemany("UPDATE ledger_chain SET hash = ? WHERE position = ?", updates)


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def change_inside_value(state: bytes, variant: int) -> bytes:
    """`state` with one byte changed inside a string value (the source key, the event id or `posted_by`,
    by `variant`), keeping the JSON valid."""
    marker = (b'"key":"', b'"event_id":"', b'"posted_by":"')[variant % 3]
    offset = state.index(marker) + len(marker)
    replacement = b"f" if state[offset : offset + 1] != b"f" else b"e"
    altered = state[:offset] + replacement + state[offset + 1 :]
    msgspec.json.decode(altered)  # still JSON
    return altered


def forged_row(template: bytes, cadre_id: str) -> tuple[tuple[str, int, str, bytes], str]:
    """A forged registration of a new cadre (stream version 1, the right topic): the event row and its id."""
    event_id = str(uuid.uuid4())
    event = msgspec.json.decode(template)
    event.update(event_id=event_id, cadre_id=cadre_id, source={"system": "forger", "key": event_id})
    state = msgspec.json.encode(event)
    topic = topic_of("cadre.registered")
    assert topic is not None
    return (cadre_id, 1, topic, state), event_id


# The cases.


def later_instant(recorded_at: str) -> str:
    """A recording time a microsecond or so away, in the same format."""
    return recorded_at[:-2] + ("1" if recorded_at[-2] != "1" else "2") + "Z"


def delete_event(db: Database, p: int) -> None:
    db.execute("DELETE FROM {events} WHERE {pos} = ?", (p,))


def delete_chain_row(db: Database, p: int) -> None:
    db.execute("DELETE FROM ledger_chain WHERE position = ?", (p,))


def delete_both(db: Database, p: int) -> None:
    delete_event(db, p)
    delete_chain_row(db, p)


# One change of one row at position p, for every p; each is caught at p with one of the reasons.
Mutation = Callable[["Database", int], None]
AT_EVERY_POSITION: list[tuple[str, Mutation, set[str]]] = [
    (
        "state byte",
        lambda db, p: db.set_event(p, "state", change_inside_value(db.event_rows[p][3], p)),
        {"altered"},
    ),
    ("hash", lambda db, p: db.set_chain(p, "hash", flip(db.chain_rows[p][2], p % 32)), {"altered"}),
    (
        "recorded_at",
        lambda db, p: db.set_chain(p, "recorded_at", later_instant(db.chain_rows[p][1])),
        {"altered"},
    ),
    ("chain event_id", lambda db, p: db.set_chain(p, "event_id", str(uuid.uuid4())), {"altered"}),
    (
        "originator_id",
        lambda db, p: db.set_event(p, "originator_id", db.event_rows[p][0] + "-x"),
        {"altered"},
    ),
    (
        "originator_version",
        lambda db, p: db.set_event(p, "originator_version", db.event_rows[p][1] + 1_000),
        {"altered"},
    ),
    ("topic", lambda db, p: db.set_event(p, "topic", "forged.Topic"), {"altered"}),
    ("delete event", delete_event, {"missing"}),
    # An event row without its chain row: the verifier cannot tell a lost chain row from a forged event.
    ("delete chain row", delete_chain_row, {"inserted"}),
]


@dataclass
class Tally:
    """Cases tried and detected, by kind; the cases that were not detected as expected; reasons seen."""

    tried: Counter[str] = field(default_factory=Counter)
    detected: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    misses: list[str] = field(default_factory=list)


class Bench:
    """Runs each case from the pristine log and checks what `verify` says."""

    def __init__(self, ledger: Ledger, database: Database) -> None:
        self.ledger = ledger
        self.db = database
        self.tally = Tally()
        self.checkpoint = ledger.checkpoint()
        assert self.checkpoint.tree_size == LOG_SIZE
        # The positions the last case changed (none yet).
        self.dirty = (0, -1)

    def case(
        self,
        kind: str,
        label: object,
        mutate: Callable[[], None],
        expected: tuple[int, set[str]],
        *,
        rows: tuple[int, int] | None = None,
        against: Checkpoint | None = None,
    ) -> None:
        """Restore, mutate, verify: `expected` is the position and the reasons that count as detected;
        `rows` the first and last positions the mutation changes (default: the expected position).

        With `against` (a checkpoint), the change must pass `verify()` alone: it is caught only against it.
        """
        self.db.begin()
        self.db.restore(self.dirty)
        mutate()
        self.db.commit()
        self.dirty = rows or (expected[0], expected[0])
        self.tally.tried[kind] += 1
        if against is not None:
            alone = self.ledger.verify()
            if alone.first_bad_position is not None:
                self.tally.misses.append(f"{kind} {label}: expected to verify alone, got {alone}")
                return
        report = self.ledger.verify(against)
        if report.reason is not None:
            self.tally.reasons[kind][report.reason] += 1
        position, reasons = expected
        if report.first_bad_position == position and report.reason in reasons:
            self.tally.detected[kind] += 1
            assert report.detail, "a failed verification says why"
        else:
            self.tally.misses.append(
                f"{kind} {label}: expected {sorted(reasons)} at {position}, got "
                f"{report.reason} at {report.first_bad_position} (ok={report.ok})"
            )

    def run_all(self) -> Tally:
        db = self.db
        for kind, mutation, reasons in AT_EVERY_POSITION:
            for p in range(1, LOG_SIZE + 1):
                self.case(kind, p, partial(mutation, db, p), (p, reasons))
        for p in range(1, LOG_SIZE):
            self.case("delete event and chain row", p, partial(delete_both, db, p), (p, {"missing"}))
        # At the head, what is left is a consistent shorter log.
        self.case(
            "delete event and chain row",
            LOG_SIZE,
            partial(delete_both, db, LOG_SIZE),
            (LOG_SIZE, {"missing"}),
            rows=(LOG_SIZE, LOG_SIZE),
            against=self.checkpoint,
        )
        # The byte-level check is the same code on every store: run it once, on SQLite.
        for p in EVERY_BYTE_POSITIONS if not db.postgres else ():
            state = db.event_rows[p][3]
            for offset in range(len(state)):
                mutate = partial(db.set_event, p, "state", flip(state, offset))
                self.case("every byte", (p, offset), mutate, (p, {"altered"}))
        self.swaps()
        self.insertions()
        self.against_checkpoints()
        return self.tally

    def swap_events(self, first: int, second: int, *, chain: bool) -> None:
        db = self.db
        db.execute("DELETE FROM {events} WHERE {pos} IN (?, ?)", (first, second))
        db.insert_event(first, db.event_rows[second])
        db.insert_event(second, db.event_rows[first])
        if chain:
            db.execute("DELETE FROM ledger_chain WHERE position IN (?, ?)", (first, second))
            db.insert_chain(first, db.chain_rows[second])
            db.insert_chain(second, db.chain_rows[first])

    def swaps(self) -> None:
        pairs = [(p, p + 1) for p in range(1, LOG_SIZE)]
        randomly = random.Random(20251215)
        random_pairs: set[tuple[int, int]] = set()
        while len(random_pairs) < RANDOM_SWAPS:
            first, second = sorted(randomly.sample(range(1, LOG_SIZE + 1), 2))
            if second > first + 1:
                random_pairs.add((first, second))
        for kind, chosen in (("swap adjacent events", pairs), ("swap random events", sorted(random_pairs))):
            for first, second in chosen:
                mutate = partial(self.swap_events, first, second, chain=False)
                self.case(kind, (first, second), mutate, (first, {"reordered"}), rows=(first, second))
        # Both rows move: the chain row says the event is where it is, only the hash disagrees.
        for first, second in pairs:
            mutate = partial(self.swap_events, first, second, chain=True)
            expected = (first, {"reordered", "altered"})
            self.case("swap events with chain rows", (first, second), mutate, expected, rows=(first, second))

    def insert_chained(self, position: int, *, rehash: bool) -> None:
        """A forged registration at `position`, chained onto the true prefix; later rows renumbered."""
        db = self.db
        row, event_id = forged_row(db.event_rows[2][3], "FORGED")
        db.shift_from(position)
        recorded_at = db.chain_rows[max(position - 1, 1)][1]
        previous = GENESIS_HASH if position == 1 else db.chain_rows[position - 1][2]
        forged_hash = chain_hash(previous, canonical_bytes(position, recorded_at, row[3]))
        db.insert_event(position, row)
        db.insert_chain(position, (event_id, recorded_at, forged_hash))
        if rehash:
            db.rehash_from(position + 1)

    def insertions(self) -> None:
        db = self.db
        # The forged row chains onto the true prefix, so the first row that fails is the one after it.
        for p in range(1, LOG_SIZE + 1):
            mutate = partial(self.insert_chained, p, rehash=False)
            expected = (p + 1, {"altered", "inserted"})
            self.case("insert chained", p, mutate, expected, rows=(p, LOG_SIZE + 1))
        end = LOG_SIZE + 1
        row, event_id = forged_row(db.event_rows[2][3], "FORGED")
        recorded_at = db.chain_rows[LOG_SIZE][1]

        def with_wrong_hash() -> None:
            db.insert_event(end, row)
            db.insert_chain(end, (event_id, recorded_at, bytes(32)))

        self.case(
            "insert at the end", "no chain row", partial(db.insert_event, end, row), (end, {"inserted"})
        )
        self.case("insert at the end", "a wrong hash", with_wrong_hash, (end, {"altered"}))
        chain_only = partial(db.insert_chain, end, (event_id, recorded_at, bytes(32)))
        self.case("insert at the end", "chain row only", chain_only, (end, {"missing"}))

    def truncate(self, kept: int) -> None:
        self.db.execute("DELETE FROM {events} WHERE {pos} > ?", (kept,))
        self.db.execute("DELETE FROM ledger_chain WHERE position > ?", (kept,))

    def rewrite(self, position: int) -> None:
        # The event id stays: the chain row names it (a rewrite that changes it must change both).
        self.db.set_event(position, "state", change_inside_value(self.db.event_rows[position][3], 0))
        self.db.rehash_from(position)

    def against_checkpoints(self) -> None:
        checkpoint = self.checkpoint
        at_checkpoint = (checkpoint.tree_size, {"altered"})
        for kept in range(LOG_SIZE):
            mutate = partial(self.truncate, kept)
            expected = (kept + 1, {"missing"})
            self.case("truncate", kept, mutate, expected, rows=(kept + 1, LOG_SIZE), against=checkpoint)
        for p in range(1, LOG_SIZE + 1):
            mutate = partial(self.rewrite, p)
            self.case("consistent rewrite", p, mutate, at_checkpoint, rows=(p, LOG_SIZE), against=checkpoint)
            mutate = partial(self.insert_chained, p, rehash=True)
            rows = (p, LOG_SIZE + 1)
            self.case("consistent insertion", p, mutate, at_checkpoint, rows=rows, against=checkpoint)


def run_store(url: str, store: str, record_property: Callable[[str, object], None]) -> None:
    ledger = build_log(url)
    database = Database(url)
    try:
        tally = Bench(ledger, database).run_all()
    finally:
        database.close()
        ledger.close()
    tried, detected = sum(tally.tried.values()), sum(tally.detected.values())
    record_property(
        "tamper_counts",
        {kind: {"tried": tally.tried[kind], "detected": tally.detected[kind]} for kind in tally.tried},
    )
    print(f"\ntamper cases on {store}: {tried} tried, {detected} detected as expected")
    for kind in tally.tried:
        seen = ", ".join(f"{reason} {count}" for reason, count in tally.reasons[kind].most_common())
        print(f"  {kind:38} {tally.tried[kind]:5} tried {tally.detected[kind]:5} detected  ({seen})")
    assert not tally.misses, "\n".join(tally.misses[:40])
    assert tally.detected == tally.tried
    # Ten kinds at every position, two kinds of adjacent swaps, insertions and checkpoint cases.
    assert tried >= 10 * LOG_SIZE + 2 * (LOG_SIZE - 1) + 4 * LOG_SIZE


def test_every_single_row_change_to_a_sqlite_log_is_caught_at_its_position(
    sqlite_url: str, record_property: Callable[[str, object], None]
) -> None:
    run_store(sqlite_url, "sqlite", record_property)


@pytest.mark.postgres
def test_every_single_row_change_to_a_postgresql_log_is_caught_at_its_position(
    postgres_url: str, record_property: Callable[[str, object], None]
) -> None:
    run_store(postgres_url, "postgres", record_property)
