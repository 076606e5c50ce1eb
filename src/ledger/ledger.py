"""The Python face of the ledger: `Ledger.open(url)`, then post, read history, verify, export, import.

A face over three parts, each in its own module: the writer (`ledger.writer`: posting, decided against the
writer's knowledge, `ledger.knowledge`), the reader (`ledger.reader`: history and events from the log) and
the audit operations (`ledger.audit`: verify, checkpoint, export, import). This module opens the store,
wires them together and adds the operations built on posting (publishing a policy, accruing tenure).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import IO, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.persistence import PersistenceError

from ledger.audit import Audit, ExportHeader
from ledger.domain.errors import IntegrityFailure, InvalidInput, NotFound, StoreUnavailable
from ledger.domain.events import EventBase, PolicyPublished, Source, TenureAccrued, recorded_id
from ledger.domain.periods import parse_period
from ledger.domain.points import ZERO
from ledger.dry_run import CHECK_SIZE_MAX, CheckedItem, DryRun
from ledger.integrity.chain import GENESIS_HASH
from ledger.integrity.verify import Checkpoint, SigningKeyRecord
from ledger.policy.load import illustrative_policy_text, load_policy
from ledger.proofs import Proofs
from ledger.reader import CATCH_UP_PAGE, LoggedEvent, Reader
from ledger.results import (
    ConsistencyProof,
    HistoryPage,
    InclusionProof,
    PostedItem,
    PostResult,
    TableFinding,
    VerifyReport,
)
from ledger.signing import Signer, SigningKeys
from ledger.store.application import (
    DEFAULT_DATABASE_URL,
    LedgerApplication,
    environment_for,
    require_postgres_driver,
)
from ledger.store.faults import store_fault
from ledger.writer import BATCH_SIZE_MAX, POSTS_WAITING_MAX, Writer
from ledger_verify.checkpoint import CheckpointDocument

__all__ = [
    "BATCH_SIZE_MAX",
    "CHECK_SIZE_MAX",
    "POSTS_WAITING_MAX",
    "CheckedItem",
    "DryRun",
    "ExportHeader",
    "Ledger",
    "LoggedEvent",
]

DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
ACCRUAL_SYSTEM: Final = "ledger.accrue"
POLICY_SYSTEM: Final = "ledger.policy"

logger = logging.getLogger("ledger")


def _today_in(zone: ZoneInfo, clock: Callable[[], datetime]) -> date:
    return clock().astimezone(zone).date()


class Ledger:
    """One ledger: its log, the writer's knowledge, and every operation on them."""

    def __init__(
        self, application: LedgerApplication, *, url: str, clock: Callable[[], datetime], timezone: str
    ) -> None:
        self._application = application
        self._recorder = application.ledger_recorder
        self._clock = clock
        self._zone = ZoneInfo(timezone)
        self.url = url
        self._reader = Reader(application, self.today)
        self._writer = Writer(application, self._reader, self.today)
        self._audit = Audit(application, self._writer, self.analyze)
        self._proofs = Proofs(self._recorder)

    # Opening and closing.

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        timezone: str | None = None,
        publish_illustrative: bool = True,
        create: bool = True,
    ) -> Ledger:
        """Open the ledger at `url`, default `LEDGER_DATABASE_URL`, creating it unless `create` is False.

        A new, empty ledger gets the packaged illustrative policy published, so it can score at once;
        opening with `create=False` (for reads) refuses a SQLite file that does not exist and writes nothing.
        """
        url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL
        zone_name = timezone or os.environ.get("LEDGER_TIMEZONE") or DEFAULT_TIMEZONE
        try:
            ZoneInfo(zone_name)
        except (ValueError, ZoneInfoNotFoundError):
            raise InvalidInput(
                f"unknown time zone {zone_name!r}: use an IANA name such as Asia/Shanghai",
                field="LEDGER_TIMEZONE",
                rule="timezone_unknown",
            ) from None
        if not create:
            _require_existing(url)
        else:
            _ensure_postgres_schema(url)
        ledger = cls(
            LedgerApplication(url, create=create),
            url=url,
            clock=clock or (lambda: datetime.now(UTC)),
            timezone=zone_name,
        )
        ledger._complete_tree()
        if create and publish_illustrative and ledger.head() == 0:
            body = illustrative_policy_text()
            policy = load_policy(body)
            ledger.publish_policy(
                body, posted_by="ledger", effective_on=min(ledger.today(), policy.effective_from)
            )
        return ledger

    def _complete_tree(self) -> None:
        """Give a ledger made before the Merkle tree its tree, once (`MerkleTable.complete`). A store that
        cannot be written now (read-only, locked, a reader's PostgreSQL role that may not create the
        table) is logged, not an error: the next append completes the tree under its own lock, and
        meanwhile `verify` names what is missing and proofs are refused."""
        try:
            self._recorder.tree.complete()
        except (PersistenceError, IntegrityFailure) as error:
            logger.warning("could not complete the Merkle tree now (%s); the next append will", error)

    def close(self) -> None:
        """Keep the writer's knowledge for the next process (if it folded enough since it was last kept),
        then close the store."""
        try:
            self._writer.close()
        finally:
            self._application.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def ledger_id(self) -> str:
        return self._audit.ledger_id

    def now(self) -> datetime:
        """The ledger's clock (UTC-aware)."""
        return self._clock()

    def today(self) -> date:
        """Today in the ledger's time zone (events may not be dated later)."""
        return _today_in(self._zone, self._clock)

    def head(self) -> int:
        """The newest position of the log (0 when empty)."""
        return self._recorder.head().position

    def head_and_hash(self) -> tuple[int, bytes]:
        """The newest position and its chain hash (the genesis hash when empty), read together: what shows
        a log cut back and written again to the same length."""
        head = self._recorder.head()
        return head.position, head.hash

    def hash_at(self, position: int) -> bytes | None:
        """The chain hash at `position` (the genesis hash at 0; None past the head)."""
        return GENESIS_HASH if position == 0 else self._recorder.hash_at(position)

    def analyze(self) -> None:
        """Refresh the database's statistics of the log after a bulk load (demo, import, rebuild). The
        statistics only speed reads up: a store that cannot take them now is logged, not an error."""
        try:
            self._recorder.analyze()
        except PersistenceError as error:
            logger.warning("could not refresh the log's statistics (ANALYZE): %s", error)

    def write_problem(self, wait_seconds: float = 1.0) -> StoreUnavailable | None:
        """Why this process cannot record now (the lock held elsewhere, a read-only store, a lost
        connection), or None: what `/health/ready` reports. Records nothing."""
        try:
            self._recorder.check_writable(wait_seconds)
        except PersistenceError as error:
            fault = store_fault(error)
            if fault is None:
                raise
            return fault
        return None

    # Posting (`ledger.writer`).

    def post(self, events: Sequence[EventBase], *, posted_by: str = "library") -> PostResult:
        """Record a batch atomically; replays return their original result; see SPEC §6.

        Raises InvalidInput (naming the item and field) or Conflict; then nothing is recorded.
        """
        return self._writer.post(events, posted_by=posted_by)

    def check(self, events: Sequence[EventBase], *, posted_by: str = "library") -> DryRun:
        """A dry run: what posting `events` in order would do, item by item — what each would count, a
        replay of an already recorded source, a conflict, or the refusal (field, rule, message) — with
        every item decided, past the ones refused. Records nothing. Up to CHECK_SIZE_MAX events, decided
        as one sequence: what posting them in batches, in order, would do; see `Writer.check`.
        """
        return self._writer.check(events, posted_by=posted_by)

    def record_own(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
        """Record events of the ledger's own streams (`$keys`); see `Writer.record_own`."""
        return self._writer.record_own(events, posted_by=posted_by)

    def load_all(self) -> None:
        """Bring the writer's knowledge of every cadre up to the head of the log."""
        self._writer.load_all()

    def keep_writer_state(self) -> bool:
        """Persist the writer's knowledge now (after a bulk load), so that the next process starts warm;
        True if kept."""
        with self._writer.lock:
            self._writer.knowledge.catch_up()
            return self._writer.knowledge.persist(at_least=0)

    def writer_state_findings(self) -> list[TableFinding]:
        """How the persisted writer knowledge differs from a fold of the log ([] if it agrees)."""
        table = self._recorder.writer_state_table.split(".")[-1].strip('"')
        return self._writer.knowledge.findings(table)

    def publish_policy(
        self, body: str, *, posted_by: str = "library", effective_on: date | None = None
    ) -> PostResult:
        """Publish a TOML rulebook; publishing the same version and text again is a replay."""
        policy = load_policy(body)
        key = f"{policy.version}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"
        earlier = self._recorder.sources([(POLICY_SYSTEM, key)]).get((POLICY_SYSTEM, key))
        if earlier is not None:
            # The same text was published before (on any day): answer with that publication.
            logged = self._reader.logged(earlier[0])
            return PostResult(
                self.head(), [PostedItem(recorded_id(logged.event), logged.position, ZERO, logged.hash, True)]
            )
        event = PolicyPublished(
            effective_on=effective_on or self.today(),
            # Other text under a known version is refused by rule (policy_version_exists).
            source=Source(system=POLICY_SYSTEM, key=key),
            version=policy.version,
            effective_from=policy.effective_from,
            body=body,
        )
        return self.post([event], posted_by=posted_by)

    def accrue(
        self,
        period: str,
        *,
        posted_by: str = "library",
        progress: Callable[[int], None] | None = None,
    ) -> PostResult:
        """Post `tenure.accrued` for `period` for every cadre active during it (idempotent per cadre
        and period: accruing a period twice replays)."""
        try:
            span = parse_period(period)
        except ValueError as error:
            raise InvalidInput(str(error), field="period", rule="period_invalid") from None
        if span.last_day > self.today():
            raise InvalidInput(
                f"{period} has not ended (it ends {span.last_day})",
                field="period",
                rule="period_must_have_ended",
            )
        events: list[EventBase] = []
        # Read under the writer's lock: a post in another thread folds into the same states.
        with self._writer.lock:
            self._writer.knowledge.catch_up()
            cadres = self._writer.knowledge.cadres
            for cadre_id in sorted(cadres):
                state = cadres[cadre_id].state
                departed_on = state.departed_on
                if state.registered_on > span.last_day or (departed_on and departed_on < span.first_day):
                    continue
                effective_on = min(span.last_day, departed_on) if departed_on else span.last_day
                events.append(
                    TenureAccrued(
                        cadre_id=cadre_id,
                        effective_on=effective_on,
                        period=span.name,
                        source=Source(system=ACCRUAL_SYSTEM, key=f"{span.name}:{cadre_id}"),
                    )
                )
        items: list[PostedItem] = []
        position = self.head()
        for start in range(0, len(events), BATCH_SIZE_MAX):
            result = self.post(events[start : start + BATCH_SIZE_MAX], posted_by=posted_by)
            items.extend(result.results)
            position = result.position
            if progress is not None:
                progress(len(result.results))
        return PostResult(position, items)

    # Reads from the log.

    # Reads from the log (`ledger.reader`).

    def known_position(self, known_at: int | datetime | None) -> int:
        """The log position a read `known_at` an instant or position sees."""
        return self._reader.known_position(known_at)

    def history(
        self,
        cadre_id: str,
        *,
        as_of: date | None = None,
        known_at: int | datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        """A cadre's entries with running totals, as of a date, as known at a moment (SPEC §4); see
        `Reader.history` for cursors."""
        return self._reader.history(cadre_id, as_of=as_of, known_at=known_at, cursor=cursor, limit=limit)

    def event(self, event_id: uuid.UUID | str) -> LoggedEvent:
        """One event with its place, hash and previous hash."""
        return self._reader.event(event_id)

    def events(self, *, after: int = 0, limit: int = 100) -> list[LoggedEvent]:
        """The log in order, after a position."""
        return self._reader.events(after=after, limit=limit)

    def records(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, EventBase]]:
        """`(position, event)` of up to `limit` events after a position: the log for folds to read."""
        return self._reader.records(after=after, limit=limit)

    def stored(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, bytes]]:
        """`(position, stored JSON)` of up to `limit` events after a position, undecoded."""
        return self._reader.stored(after=after, limit=limit)

    def policies(self) -> list[PolicyPublished]:
        """Every published rulebook, in publication order."""
        return self._reader.policies()

    def stream_version(self, stream: str) -> int:
        """How many events the stream holds (0: none)."""
        return self._reader.stream_version(stream)

    def stream_head(self, stream: str) -> tuple[int, int, bytes] | None:
        """`(version, position, hash)` of the stream's newest event, or None when it has none."""
        return self._reader.stream_head(stream)

    def stream_records(self, stream: str) -> list[tuple[int, str, EventBase]]:
        """`(position, recorded_at, event)` of every event of one stream, in stream order."""
        return self._reader.stream_records(stream)

    # Audit (`ledger.audit`).

    def verify(
        self,
        against: Checkpoint | CheckpointDocument | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute the whole chain and the Merkle tree; with a checkpoint (as `checkpoint` gives it, or
        as `ledger_verify.checkpoint.parse_checkpoint` reads either shape), also prove the log still
        extends it, and that a signed one is signed by a key this log publishes. `progress` is told how
        many events each page verified."""
        if isinstance(against, Checkpoint):
            against = CheckpointDocument(
                against.ledger_id,
                against.tree_size,
                against.root_hash,
                against.chain_hash,
                against.recorded_at,
                against.key_id,
                against.signature,
            )
        published = None

        def signing_key_of(key_id: str) -> SigningKeyRecord | None:
            nonlocal published
            if published is None:
                published = self.signing_keys.published()
            key = published.get(key_id)
            if key is None:
                return None
            return SigningKeyRecord(bytes.fromhex(key.public_key), key.position, key.retired_position)

        return self._audit.verify(against, signing_key_of, progress=progress)

    def checkpoint(self, signer: Signer | None = None) -> Checkpoint:
        """The head of the log as a checkpoint, signed by `signer` when given (a key the log publishes and
        has not retired, else InvalidInput); the chain and the tree are verified first (IntegrityFailure)."""
        if signer is not None:
            self.signing_keys.usable(signer)
        return self._audit.checkpoint(signer)

    @property
    def signing_keys(self) -> SigningKeys:
        """The checkpoint signing keys this log publishes (`ledger.signing`)."""
        return SigningKeys(self)

    def inclusion_proof(self, position: int, tree_size: int | None = None) -> InclusionProof:
        """The event at `position` is in the tree of `tree_size` events (default the head): RFC 9162."""
        return self._proofs.inclusion(position, tree_size)

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """The tree of `second` events (default the head) extends the tree of `first`: RFC 9162."""
        return self._proofs.consistency(first, second)

    def rebuild_tree(self) -> int:
        """Recompute the stored Merkle tree from the log (after `verify` found it changed by hand)."""
        return self._recorder.tree.complete(rebuild=True)

    def export(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Write the log as JSONL: a header line, then each event with position, time and hashes."""
        return self._audit.export(stream, progress=progress)

    def import_(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Load an export into an empty ledger; the number of events imported (see `Audit.import_`)."""
        return self._audit.import_(stream, progress=progress)


def _require_existing(url: str) -> None:
    """Refuse to open a ledger that does not exist (a read must not create one): a SQLite file that is
    not there, a PostgreSQL schema without the ledger's tables."""
    settings = environment_for(url)
    path = settings.get("SQLITE_DBNAME")
    if path is not None and not os.path.exists(path):
        raise NotFound(f"no ledger at {path}: create one with `ledger init` (or check LEDGER_DATABASE_URL)")
    if settings["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return
    from urllib.parse import urlsplit

    import psycopg

    schema = settings["POSTGRES_SCHEMA"] or "public"
    try:
        with psycopg.connect(urlsplit(url)._replace(query="").geturl(), connect_timeout=5) as connection:
            row = connection.execute(
                "SELECT to_regclass(%s), to_regclass(%s)",
                (f'"{schema}".ledger_events', f'"{schema}".ledger_chain'),
            ).fetchone()
    except psycopg.Error as error:
        fault = store_fault(error)
        if fault is None:
            raise
        raise fault from error
    if row is None or row[0] is None or row[1] is None:
        raise NotFound(
            f"no ledger in schema {schema}: create one with `ledger init` (or check LEDGER_DATABASE_URL)"
        )


def _ensure_postgres_schema(url: str) -> None:
    """Create the schema named in a PostgreSQL URL (`?schema=`) if it does not exist yet."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return
    schema = parse_qs(parts.query).get("schema", [""])[0]
    if not schema:
        return
    require_postgres_driver()  # before psycopg's import fails with a traceback on the plain install
    import psycopg
    from psycopg import sql

    connection_url = parts._replace(query="").geturl()
    # Another process may create it at the same moment.
    with (
        psycopg.connect(connection_url, autocommit=True) as connection,
        contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema),
    ):
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
