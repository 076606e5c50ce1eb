"""The Python face of the ledger: `Ledger.open(url)`, then post, read history, verify, export, import.

Posting is optimistic. A batch is decided against the writer's in-memory knowledge (one `Cadre` aggregate
per cadre, the policy book), which first catches up with whatever other processes appended; the append
then succeeds only if the log head is still the one the batch was decided against (see
`ledger.store.recorders`). Otherwise the writer catches up and decides again. So every rule — idempotency,
lifecycle, annual caps — is checked against the complete log, and appends from several processes never
lose, duplicate or reorder an acknowledged event.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import IO, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger.counted import counted_points
from ledger.domain.cadre import (
    POLICY_STREAM,
    Cadre,
    Recorded,
    apply,
    points_of,
    register,
    stream_of,
)
from ledger.domain.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    LedgerError,
    NotFound,
    StoreUnavailable,
)
from ledger.domain.events import (
    CadreEvent,
    CadreRegistered,
    EntryReversed,
    Event,
    EventBase,
    PolicyPublished,
    Source,
    TenureAccrued,
    recorded_id,
    type_of,
)
from ledger.domain.ids import new_event_id
from ledger.domain.periods import parse_period
from ledger.domain.points import ZERO
from ledger.integrity.chain import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    format_recorded_at,
    parse_recorded_at,
)
from ledger.integrity.verify import Checkpoint, VerifyOutcome, check_checkpoint, verify_rows
from ledger.policy.book import PolicyBook
from ledger.policy.load import illustrative_policy_text, load_policy
from ledger.policy.schema import Policy
from ledger.posting import check_client_fields, client_fingerprint, decide, decide_policy, fingerprint
from ledger.results import (
    HistoryEntry,
    HistoryPage,
    PostedItem,
    PostResult,
    TableFinding,
    VerifyReport,
)
from ledger.store import recorders
from ledger.store.application import DEFAULT_DATABASE_URL, LedgerApplication, environment_for
from ledger.store.batch import BatchWrite, StaleHead
from ledger.store.faults import store_fault
from ledger.store.mapper import decode_event, encode_event, topic_of
from ledger.store.recorders import SOURCE_INDEX, LedgerRecorder

__all__ = ["BATCH_SIZE_MAX", "ExportHeader", "Ledger", "LoggedEvent"]

BATCH_SIZE_MAX: Final = 1_000
APPEND_ATTEMPTS_MAX: Final = 50
CATCH_UP_PAGE: Final = 10_000
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
EXPORT_FORMAT: Final = "cadre-ledger-export/1"
ACCRUAL_SYSTEM: Final = "ledger.accrue"
POLICY_SYSTEM: Final = "ledger.policy"
# Posts of one process wait for each other (and then for the database's write lock) at most this long;
# beyond this many waiting, a post is refused at once, so that waiting posts never take every thread of a
# server and reads keep answering.
POSTS_WAITING_MAX: Final = 8

logger = logging.getLogger("ledger")


class LoggedEvent(msgspec.Struct, frozen=True):
    """An event as the log holds it: its place, recording time, hash and predecessor's hash."""

    position: int
    recorded_at: datetime
    hash: str
    prev_hash: str
    event: EventBase


class ExportHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The first line of an export: which ledger, and the head it was taken at."""

    format: str
    ledger_id: str
    position: int
    head_hash: str


class _ExportLine(msgspec.Struct):
    """The server fields an export line carries beside the event."""

    position: int
    recorded_at: str
    hash: str
    prev_hash: str


def _today_in(zone: ZoneInfo, clock: Callable[[], datetime]) -> date:
    return clock().astimezone(zone).date()


class _HistoryCursor(msgspec.Struct, frozen=True, array_like=True):
    """What a history cursor pins: the read it continues (route, cadre, `as_of`, the log position the first
    page was read at) and the last entry given out (its `counts_from` and position)."""

    route: Literal["history"]
    cadre_id: str
    as_of: date
    position: int
    counts_from: date
    entry_position: int


_history_cursor_decoder = msgspec.json.Decoder(_HistoryCursor, strict=True)


def _cursor_invalid(why: str) -> InvalidInput:
    return InvalidInput(
        f"not a cursor this ledger gave out for this read: {why}", field="cursor", rule="cursor_invalid"
    )


def _encode_cursor(cursor: _HistoryCursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def _decode_cursor(text: str) -> _HistoryCursor:
    """The history cursor `text`, exactly as `_encode_cursor` writes it; else `cursor_invalid`."""
    try:
        padded = text + "=" * (-len(text) % 4)
        cursor = _history_cursor_decoder.decode(base64.b64decode(padded, altchars=b"-_", validate=True))
    except (ValueError, msgspec.MsgspecError):
        raise _cursor_invalid("it is not a history cursor") from None
    # One spelling per cursor: stray characters, other padding or another date form are not ours.
    if _encode_cursor(cursor) != text or cursor.position < 0 or cursor.entry_position < 1:
        raise _cursor_invalid("it is not a history cursor") from None
    return cursor


class Ledger:
    """One ledger: its log, the writer's knowledge, and every operation on them."""

    def __init__(
        self, application: LedgerApplication, *, url: str, clock: Callable[[], datetime], timezone: str
    ) -> None:
        self._application = application
        self._recorder: LedgerRecorder = application.ledger_recorder
        self._clock = clock
        self._zone = ZoneInfo(timezone)
        self._lock = threading.RLock()
        self._waiting_lock = threading.Lock()
        self._head = 0
        self._head_hash = GENESIS_HASH
        self._posts_waiting = 0
        self._cadres: dict[str, Cadre] = {}
        self._cache_complete = False
        self._book = PolicyBook()
        self._read_policies: dict[str, Policy] = {}
        self._stream_versions: dict[str, int] = {}
        self.ledger_id = self._recorder.set_meta_if_absent("ledger_id", str(uuid.uuid4()))
        self.url = url

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
        _ensure_postgres_schema(url)
        ledger = cls(
            LedgerApplication(url), url=url, clock=clock or (lambda: datetime.now(UTC)), timezone=zone_name
        )
        if create and publish_illustrative and ledger.head() == 0:
            body = illustrative_policy_text()
            policy = load_policy(body)
            ledger.publish_policy(
                body, posted_by="ledger", effective_on=min(ledger.today(), policy.effective_from)
            )
        return ledger

    def close(self) -> None:
        self._application.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

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

    # Posting.

    def post(self, events: Sequence[EventBase], *, posted_by: str = "library") -> PostResult:
        """Record a batch atomically; replays return their original result; see SPEC §6.

        Raises InvalidInput (naming the item and field) or Conflict; then nothing is recorded.
        """
        if not events:
            raise InvalidInput(
                "a batch holds at least one event", field="events", rule="batch_must_not_be_empty"
            )
        if len(events) > BATCH_SIZE_MAX:
            raise InvalidInput(
                f"a batch holds at most {BATCH_SIZE_MAX} events",
                field="events",
                rule="batch_too_large",
            )
        for index, event in enumerate(events):
            try:
                check_client_fields(event)
            except InvalidInput as error:
                raise error.at_item(index) from None
        fingerprints = [client_fingerprint(event, item=index) for index, event in enumerate(events)]
        with self._writing():
            reconnected = False
            for _attempt in range(APPEND_ATTEMPTS_MAX):
                try:
                    self._catch_up()
                    return self._post_once(events, fingerprints, posted_by)
                except StaleHead:
                    continue
                except IntegrityError:
                    # Another writer won a race our stale knowledge could not see: start afresh.
                    self._forget_knowledge()
                    continue
                except PersistenceError as error:
                    fault = store_fault(error)
                    if fault is None:
                        raise
                    # A connection lost before anything was committed is retried once, on a fresh one.
                    if fault.cause != "connection_lost" or reconnected:
                        logger.error("a post was refused: %s", fault)
                        raise fault from error
                    # Whether or not the lost attempt committed, the retry is right: it catches up first,
                    # and finds the batch's sources recorded if it did (then it answers as a replay).
                    reconnected = True
                    logger.warning("the database connection was lost during a post; retrying once: %s", error)
            raise LedgerError(f"the log kept moving: could not append after {APPEND_ATTEMPTS_MAX} attempts")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer (one post at a time per process), waiting a bounded time, with few waiters."""
        with self._waiting_lock:
            if self._posts_waiting >= POSTS_WAITING_MAX:
                raise StoreUnavailable(
                    f"{self._posts_waiting} posts are already waiting to be recorded; try again shortly",
                    cause="lock_busy",
                )
            self._posts_waiting += 1
        try:
            acquired = self._lock.acquire(timeout=recorders.WRITE_LOCK_WAIT_SECONDS)
        finally:
            with self._waiting_lock:
                self._posts_waiting -= 1
        if not acquired:
            raise StoreUnavailable(
                f"the posts before this one did not finish within {recorders.WRITE_LOCK_WAIT_SECONDS} s; "
                "nothing was "
                "recorded",
                cause="lock_busy",
            )
        try:
            yield
        finally:
            self._lock.release()

    def _post_once(
        self, events: Sequence[EventBase], fingerprints: list[bytes], posted_by: str
    ) -> PostResult:
        keys = [(event.source.system, event.source.key) for event in events]
        recorded_sources = self._recorder.sources(keys)
        plan: list[Recorded] = []
        # Where each item's result comes from: ("new", index into plan) or ("old", position).
        origins: list[tuple[str, int]] = []
        in_batch: dict[tuple[str, str], tuple[bytes, int]] = {}
        pending: dict[uuid.UUID, tuple[int, EventBase]] = {}
        touched: set[str] = set()
        today = self.today()
        try:
            for index, (event, key, print_) in enumerate(zip(events, keys, fingerprints, strict=True)):
                earlier = recorded_sources.get(key)
                if earlier is not None:
                    if _recorded_fingerprint(earlier[1], key) != print_:
                        raise Conflict(
                            f"item {index}: source {key[0]}/{key[1]} was recorded with other content",
                            item=index,
                            system=key[0],
                            key=key[1],
                        )
                    origins.append(("old", earlier[0]))
                    continue
                if key in in_batch:
                    if in_batch[key][0] != print_:
                        raise Conflict(
                            f"item {index}: source {key[0]}/{key[1]} appears twice in "
                            "the batch with other content",
                            item=index,
                            system=key[0],
                            key=key[1],
                        )
                    origins.append(("new", in_batch[key][1]))
                    continue
                try:
                    recorded = self._decide(event, posted_by, today, pending)
                except InvalidInput as error:
                    raise error.at_item(index) from None
                stream = stream_of(recorded)
                touched.add(stream)
                version = self._stream_versions.get(stream, 0) + 1
                self._stream_versions[stream] = version
                self._apply_known(stream, recorded, self._head + len(plan) + 1)
                pending[recorded_id(recorded)] = (self._head + len(plan) + 1, recorded)
                in_batch[key] = (print_, len(plan))
                origins.append(("new", len(plan)))
                plan.append(Recorded(stream, version, recorded))
            if plan:
                batch = BatchWrite(self._head, [str(r.event.event_id) for r in plan])
                self._application.append(plan, batch=batch)
                assert batch.outcome is not None
                self._head = batch.outcome.first_position + len(plan) - 1
                self._head_hash = batch.outcome.hashes[-1]
        except BaseException:
            self._forget(touched)
            raise
        return self._results(origins, plan, batch.outcome if plan else None)

    def _results(self, origins: list[tuple[str, int]], plan: list[Recorded], outcome: Any) -> PostResult:
        old_positions = [value for origin, value in origins if origin == "old"]
        old = {position: self._logged(position) for position in old_positions}
        items: list[PostedItem] = []
        first_seen: set[int] = set()
        for origin, value in origins:
            if origin == "old":
                logged = old[value]
                items.append(
                    PostedItem(
                        recorded_id(logged.event),
                        value,
                        points_of(logged.event),
                        logged.hash,
                        True,
                    )
                )
            else:
                event = plan[value].event
                items.append(
                    PostedItem(
                        recorded_id(event),
                        outcome.first_position + value,
                        points_of(event),
                        outcome.hashes[value].hex(),
                        value in first_seen,
                    )
                )
                first_seen.add(value)
        return PostResult(self._head if plan else self.head(), items)

    def _decide(
        self, event: EventBase, posted_by: str, today: date, pending: dict[uuid.UUID, tuple[int, EventBase]]
    ) -> EventBase:
        event_id = new_event_id()
        if isinstance(event, PolicyPublished):
            return decide_policy(event, book=self._book, today=today, posted_by=posted_by, event_id=event_id)
        if not isinstance(event, CadreEvent):  # key events are recorded by the key store only
            raise InvalidInput(
                f"{type_of(event)} is recorded by `ledger keys`, not posted",
                field="type",
                rule="event_type_not_postable",
            )
        cadre = self._cadre(event.cadre_id)
        target: tuple[int, EventBase] | None = None
        if isinstance(event, EntryReversed):
            target = pending.get(event.target_event_id) or self._event_by_id(event.target_event_id)
        return decide(
            event,
            state=cadre.state if cadre else None,
            book=self._book,
            today=today,
            posted_by=posted_by,
            event_id=event_id,
            target=target[1] if target else None,
            target_position=target[0] if target else None,
        )

    # The writer's knowledge.

    def _apply_known(self, stream: str, event: EventBase, position: int) -> None:
        """Fold a recorded (or about to be recorded) event into the writer's knowledge."""
        if isinstance(event, PolicyPublished):
            self._book.add(event.version, event.effective_from, position, load_policy(event.body))
            return
        if isinstance(event, CadreRegistered):
            registered = Cadre(stream, register(event))
            registered.version = self._stream_versions.get(stream, 1)
            self._cadres[stream] = registered
            return
        cadre = self._cadres.get(stream)
        if cadre is not None:
            apply(cadre.state, event)
            cadre.version = self._stream_versions.get(stream, cadre.version + 1)

    def _catch_up(self) -> None:
        """Fold every event appended since the writer last looked (by any process).

        First check that the log still holds the position and hash folded last: a log restored in place or
        a standby promoted without its last commits reuses positions for other events. Then the writer
        drops its knowledge, logs a critical line, and folds the log as it now is.
        """
        while True:
            rows = self._recorder.catch_up_rows(self._head, CATCH_UP_PAGE)
            if self._head > 0:
                if not rows or rows[0][0] != self._head or rows[0][4] != self._head_hash:
                    self._rewound(rows[0] if rows and rows[0][0] == self._head else None)
                    continue
                rows = rows[1:]
            if not rows:
                return
            for position, stream, version, state, hash_ in rows:
                if position != self._head + 1:
                    raise IntegrityFailure(
                        f"the log jumps from {self._head} to {position}; run `ledger verify`",
                        position=self._head + 1,
                        reason="missing",
                    )
                event = decode_event(state)
                if (
                    stream in self._stream_versions
                    or stream == POLICY_STREAM
                    or self._cache_complete
                    or isinstance(event, CadreRegistered)
                ):
                    self._stream_versions[stream] = version
                self._apply_known(stream, event, position)
                self._head = position
                self._head_hash = hash_

    def _rewound(self, found: tuple[Any, ...] | None) -> None:
        head = self._recorder.head()
        logger.critical(
            "the log no longer holds what this writer folded: position %d had hash %s, the log now %s "
            "(head %d). It went backwards (a restore in place, or a standby promoted without its last "
            "commits); events acknowledged after position %d may be lost. Refolding the log as it is now.",
            self._head,
            self._head_hash.hex(),
            f"holds hash {found[4].hex()} there" if found is not None else "ends before it",
            head.position,
            head.position if found is None else self._head - 1,
        )
        complete = self._cache_complete
        self._forget_knowledge()
        self._cache_complete = complete

    def _cadre(self, cadre_id: str) -> Cadre | None:
        cadre = self._cadres.get(cadre_id)
        if cadre is not None or self._cache_complete:
            return cadre
        try:
            loaded: object = self._application.repository.get(cadre_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(loaded, Cadre):
            return None
        # The stream was read after the catch-up: it may be newer than the writer's head; the append's
        # head check then fails and the next attempt starts from a consistent view.
        self._cadres[cadre_id] = loaded
        self._stream_versions[cadre_id] = loaded.version
        return loaded

    def _forget(self, streams: Iterable[str]) -> None:
        for stream in streams:
            self._cadres.pop(stream, None)
            self._stream_versions.pop(stream, None)
            if stream == POLICY_STREAM:
                self._forget_knowledge()
                return
        self._cache_complete = False

    def _forget_knowledge(self) -> None:
        self._cadres.clear()
        self._stream_versions.clear()
        self._cache_complete = False
        self._book = PolicyBook()
        self._head = 0
        self._head_hash = GENESIS_HASH

    def load_all(self) -> None:
        """Fold the whole log into the writer's knowledge (for operations over every cadre)."""
        with self._lock:
            if not self._cache_complete:
                self._forget_knowledge()
                self._cache_complete = True
            self._catch_up()

    # Operations built on posting.

    def publish_policy(
        self, body: str, *, posted_by: str = "library", effective_on: date | None = None
    ) -> PostResult:
        """Publish a TOML rulebook; publishing the same version and text again is a replay."""
        policy = load_policy(body)
        key = f"{policy.version}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"
        earlier = self._recorder.sources([(POLICY_SYSTEM, key)]).get((POLICY_SYSTEM, key))
        if earlier is not None:
            # The same text was published before (on any day): answer with that publication.
            logged = self._logged(earlier[0])
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
        self.load_all()
        events: list[EventBase] = []
        for cadre_id in sorted(self._cadres):
            state = self._cadres[cadre_id].state
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

    def known_position(self, known_at: int | datetime | None) -> int:
        """The log position a read `known_at` an instant or position sees."""
        head = self.head()
        if known_at is None:
            return head
        if isinstance(known_at, datetime):
            if known_at.tzinfo is None:
                raise InvalidInput(
                    "an instant needs a time zone (RFC 3339)",
                    field="known_at",
                    rule="known_at_must_be_aware",
                )
            try:
                instant = format_recorded_at(known_at)
            except OverflowError:
                raise InvalidInput(
                    "the instant lies outside the calendar once in UTC",
                    field="known_at",
                    rule="known_at_out_of_range",
                ) from None
            return self._recorder.position_known_at(instant)
        if known_at < 0:
            raise InvalidInput("a position is 0 or more", field="known_at", rule="known_at_out_of_range")
        return min(known_at, head)

    def history(
        self,
        cadre_id: str,
        *,
        as_of: date | None = None,
        known_at: int | datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> HistoryPage:
        """A cadre's entries with running totals, as of a date, as known at a moment (SPEC §4).

        A `cursor` (a page's `next_cursor`) pins the cadre, `as_of` and the log position of the first page,
        so the pages stay consistent while the log grows; `as_of` and `known_at` may be left out, and if
        given must name the same date and position. A cursor of another read is refused (`cursor_invalid`).
        """
        pinned = _decode_cursor(cursor) if cursor is not None else None
        if pinned is None:
            as_of = as_of or self.today()
            position = self.known_position(known_at)
        else:
            as_of, position = self._pinned_read(pinned, cadre_id, as_of, known_at)
        rows = self._recorder.stream_rows(cadre_id)
        if not rows:
            raise NotFound(f"no cadre {cadre_id}")
        visible = [(row, decode_event(row[1])) for row in rows if row[0] <= position]
        if not visible:
            raise NotFound(f"cadre {cadre_id} was not known at position {position}")
        reversed_by: dict[uuid.UUID, uuid.UUID] = {}
        for _row, event in visible:
            if isinstance(event, EntryReversed):
                reversed_by[event.target_event_id] = recorded_id(event)
        counted = counted_points([(row[0], event) for row, event in visible], as_of, self._policy_of_version)
        entries: list[tuple[date, int, tuple[int, bytes, str, bytes], EventBase]] = []
        for row, event in visible:
            counts_from = event.effective_on
            if isinstance(event, EntryReversed) and isinstance(event.target_effective_on, date):
                counts_from = event.target_effective_on
            if counts_from <= as_of:
                entries.append((counts_from, row[0], row, event))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        running = ZERO
        built: list[HistoryEntry] = []
        for counts_from, _position, row, event in entries:
            points, adjustment = counted[recorded_id(event)]
            running += points
            built.append(
                HistoryEntry(
                    event_id=recorded_id(event),
                    position=row[0],
                    type=type_of(event),
                    effective_on=event.effective_on,
                    counts_from=counts_from,
                    recorded_at=parse_recorded_at(row[2]),
                    points=points_of(event),
                    counted_points=points,
                    adjustment=adjustment,
                    running_total=running,
                    posted_by=str(event.posted_by),
                    source=event.source,
                    document=event.document,
                    reverses=event.target_event_id if isinstance(event, EntryReversed) else None,
                    reversed_by=reversed_by.get(recorded_id(event)),
                    hash=row[3].hex(),
                )
            )
        start = 0
        if pinned is not None:
            last_given = (pinned.counts_from, pinned.entry_position)
            start = next(
                (
                    index + 1
                    for index, entry in enumerate(built)
                    if (entry.counts_from, entry.position) == last_given
                ),
                -1,
            )
            if start < 0:
                raise _cursor_invalid("it names no entry of this history")
        end = len(built) if limit is None else min(len(built), start + limit)
        next_cursor = None
        if end < len(built):
            last = built[end - 1]
            next_cursor = _encode_cursor(
                _HistoryCursor("history", cadre_id, as_of, position, last.counts_from, last.position)
            )
        known: int | datetime = known_at.astimezone(UTC) if isinstance(known_at, datetime) else position
        return HistoryPage(
            cadre_id=cadre_id,
            as_of=as_of,
            known_at=known,
            position=position,
            total=running,
            entries=built[start:end],
            next_cursor=next_cursor,
        )

    def _pinned_read(
        self, pinned: _HistoryCursor, cadre_id: str, as_of: date | None, known_at: int | datetime | None
    ) -> tuple[date, int]:
        """The `as_of` and position a history cursor pins, checked against the read it is used with."""
        if pinned.cadre_id != cadre_id:
            raise _cursor_invalid(f"it pages the history of another cadre, not {cadre_id}'s")
        if as_of is not None and as_of != pinned.as_of:
            raise _cursor_invalid(f"it pages the history as of {pinned.as_of}, not {as_of}")
        if known_at is not None and self.known_position(known_at) != pinned.position:
            raise _cursor_invalid(f"it pages the history as known at position {pinned.position}")
        if pinned.position > self.head():
            raise _cursor_invalid(f"it was read at position {pinned.position}, beyond the log's head")
        return pinned.as_of, pinned.position

    def _policy_of_version(self, version: str) -> Policy | None:
        """The rulebook published as `version` (None if there is none), read from the log: a history may
        name a policy another process published after this one last posted."""
        if version in self._read_policies:
            return self._read_policies[version]
        for _position, state, _recorded_at, _hash in self._recorder.stream_rows(POLICY_STREAM):
            event = decode_event(state)
            if isinstance(event, PolicyPublished) and event.version not in self._read_policies:
                self._read_policies[event.version] = load_policy(event.body)
        return self._read_policies.get(version)

    def _logged(self, position: int) -> LoggedEvent:
        row = self._recorder.event_at(position)
        if row is None:
            raise NotFound(f"no event at position {position}")
        previous = self._recorder.hash_at(position - 1) if position > 1 else GENESIS_HASH
        return LoggedEvent(
            position=row[0],
            recorded_at=parse_recorded_at(row[2]),
            hash=row[3].hex(),
            prev_hash=(previous or b"").hex(),
            event=decode_event(row[1]),
        )

    def event(self, event_id: uuid.UUID | str) -> LoggedEvent:
        """One event with its place, hash and previous hash."""
        position = self._recorder.position_of_event(str(event_id))
        if position is None:
            raise NotFound(f"no event {event_id}")
        return self._logged(position)

    def _event_by_id(self, event_id: uuid.UUID) -> tuple[int, EventBase] | None:
        position = self._recorder.position_of_event(str(event_id))
        if position is None:
            return None
        row = self._recorder.event_at(position)
        return None if row is None else (position, decode_event(row[1]))

    def events(self, *, after: int = 0, limit: int = 100) -> list[LoggedEvent]:
        """The log in order, after a position."""
        rows = self._recorder.events_after(after, limit)
        result = []
        previous = (self._recorder.hash_at(after) if after > 0 else GENESIS_HASH) or b""
        for position, state, recorded_at, hash_ in rows:
            result.append(
                LoggedEvent(
                    position,
                    parse_recorded_at(recorded_at),
                    hash_.hex(),
                    previous.hex(),
                    decode_event(state),
                )
            )
            previous = hash_
        return result

    def records(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, EventBase]]:
        """`(position, event)` of up to `limit` events after a position: the log for folds to read."""
        return [(row[0], decode_event(row[1])) for row in self._recorder.events_after(after, limit)]

    def stored(self, *, after: int = 0, limit: int = CATCH_UP_PAGE) -> list[tuple[int, bytes]]:
        """`(position, stored JSON)` of up to `limit` events after a position, undecoded (the stored format
        of `ledger.store.mapper`): for folds that read only a few fields of many events."""
        return self._recorder.states_after(after, limit)

    def policies(self) -> list[PolicyPublished]:
        """Every published rulebook, in publication order."""
        return [
            event for _row, event in self._stream_events(POLICY_STREAM) if isinstance(event, PolicyPublished)
        ]

    def _stream_events(self, stream: str) -> list[tuple[Any, EventBase]]:
        return [(row, decode_event(row[1])) for row in self._recorder.stream_rows(stream)]

    # Integrity.

    def _verify(self) -> VerifyOutcome:
        return verify_rows(
            self._recorder.log_rows(),
            topic_of=topic_of,
            position_of_event=self._recorder.position_of_event,
        )

    def verify(self, against: Checkpoint | None = None) -> VerifyReport:
        """Recompute the whole chain; with a checkpoint, also prove the log still extends it."""
        outcome = self._verify()
        if against is not None:
            outcome = check_checkpoint(against, self.ledger_id, outcome, self._recorder.hash_at)
        return VerifyReport(
            ok=outcome.ok,
            verified_through=outcome.verified_through,
            head_hash=outcome.head_hash.hex(),
            first_bad_position=outcome.first_bad_position,
            reason=outcome.reason,
            detail=outcome.detail,
        ).with_findings(self._source_findings())

    def _source_findings(self) -> list[TableFinding]:
        """Every `(system, key)` recorded once: guaranteed by the unique index over the events' sources
        while it exists, so check that it does, and look for duplicates the hard way when it does not."""
        problem = self._recorder.source_index_problem()
        if problem is None:
            return []
        table = self._recorder.events_table.split(".")[-1].strip('"')
        findings = [
            TableFinding(
                table,
                f"index {SOURCE_INDEX}",
                "index_missing" if problem == "missing" else "index_altered",
                f"the unique index over the events' sources is {problem}, so a retry could record a "
                "second event with the same (system, key); reopening the ledger rebuilds it",
            )
        ]
        findings += [
            TableFinding(table, f"source {system}/{key}", "duplicate", f"recorded {count} times")
            for system, key, count in self._recorder.duplicate_sources()
        ]
        return findings

    def checkpoint(self) -> Checkpoint:
        """The head of the log as a checkpoint (verify first: a checkpoint of a broken log is refused)."""
        outcome = self._verify()
        if not outcome.ok:
            raise IntegrityFailure(
                f"the log fails verification at {outcome.first_bad_position} "
                f"({outcome.reason}); no checkpoint taken",
                position=outcome.first_bad_position,
                reason=outcome.reason or "",
            )
        head = self._recorder.head()
        return Checkpoint(
            ledger_id=self.ledger_id,
            position=head.position,
            hash=head.hash.hex(),
            recorded_at=head.recorded_at,
        )

    # Export and import.

    def export(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Write the log as JSONL: a header line, then each event with position, time and hashes."""
        head = self._recorder.head()
        header = ExportHeader(EXPORT_FORMAT, self.ledger_id, head.position, head.hash.hex())
        stream.write(msgspec.json.encode(header) + b"\n")
        previous = GENESIS_HASH
        written = 0
        after = 0
        while after < head.position:
            rows = self._recorder.events_after(after, CATCH_UP_PAGE)
            rows = [row for row in rows if row[0] <= head.position]
            if not rows:
                break
            for position, state, recorded_at, hash_ in rows:
                line = canonical_bytes(position, recorded_at, state)[:-1] + (
                    b',"hash":"%s","prev_hash":"%s"}\n' % (hash_.hex().encode(), previous.hex().encode())
                )
                stream.write(line)
                previous = hash_
                written += 1
            after = rows[-1][0]
            if progress is not None:
                progress(len(rows))
        return written

    def import_(self, stream: IO[bytes], *, progress: Callable[[int], None] | None = None) -> int:
        """Load an export into an empty ledger; the number of events imported.

        The whole file is verified before anything is written — consecutive positions, every hash
        recomputed from the re-encoded event, the header's head — so a damaged or truncated file records
        nothing (IntegrityFailure or InvalidInput). Then it is appended in batches, which the store chains
        again. The ledger takes over the export's `ledger_id`, so checkpoints of the original still apply.
        The stream must be seekable (a file).
        """
        header = self._read_export_header(stream)
        if self.head() != 0:
            raise InvalidInput(
                "an export is imported into an empty ledger",
                field="database",
                rule="import_target_must_be_empty",
            )
        start = stream.tell()
        self._verify_export(stream, header)
        stream.seek(start)
        with self._lock:
            self._force_ledger_id(header.ledger_id)
            imported = 0
            versions: dict[str, int] = {}
            batch_lines: list[tuple[int, str, bytes, bytes, EventBase]] = []
            try:
                for number, raw in enumerate(stream, start=2):
                    batch_lines.append(self._parse_export_line(raw, number))
                    if len(batch_lines) == BATCH_SIZE_MAX:
                        imported += self._import_batch(batch_lines, versions)
                        batch_lines = []
                        if progress is not None:
                            progress(BATCH_SIZE_MAX)
                if batch_lines:
                    imported += self._import_batch(batch_lines, versions)
                    if progress is not None:
                        progress(len(batch_lines))
            finally:
                # The writer learns the imported log from the log itself.
                self._forget_knowledge()
            self.analyze()
            return imported

    @staticmethod
    def _read_export_header(stream: IO[bytes]) -> ExportHeader:
        try:
            header = msgspec.json.decode(stream.readline(), type=ExportHeader)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise InvalidInput(
                f"not a ledger export: {error}", field="line 1", rule="export_header_invalid"
            ) from None
        if header.format != EXPORT_FORMAT:
            raise InvalidInput(
                f"unknown export format {header.format!r}", field="line 1", rule="export_header_invalid"
            )
        return header

    def _verify_export(self, stream: IO[bytes], header: ExportHeader) -> None:
        """Recompute an export's chain from the genesis hash; raise at the first line that breaks it."""
        previous = GENESIS_HASH
        position = 0
        for number, raw in enumerate(stream, start=2):
            line_position, recorded_at, hash_, prev_hash, event = self._parse_export_line(raw, number)
            position += 1
            if line_position != position:
                raise IntegrityFailure(
                    f"line {number} holds position {line_position}, expected {position}",
                    position=position,
                    reason="missing" if line_position > position else "reordered",
                )
            recomputed = chain_hash(previous, canonical_bytes(position, recorded_at, encode_event(event)))
            if prev_hash != previous or recomputed != hash_:
                raise IntegrityFailure(
                    f"line {number} (position {position}) does not chain: it was altered",
                    position=position,
                    reason="altered",
                )
            previous = hash_
        if position != header.position or previous.hex() != header.head_hash:
            raise IntegrityFailure(
                f"the export ends at position {position} but its header says {header.position}: "
                "the file is incomplete or its header was changed",
                position=position + 1,
                reason="missing",
            )

    def _force_ledger_id(self, ledger_id: str) -> None:
        stored = self._recorder.meta("ledger_id")
        if stored != ledger_id:
            with self._recorder._cursor(write=True) as cursor:
                cursor.execute(
                    self._recorder._sql("UPDATE {meta} SET value = ? WHERE name = ?"),
                    (ledger_id, "ledger_id"),
                )
        self.ledger_id = ledger_id

    @staticmethod
    def _parse_export_line(raw: bytes, number: int) -> tuple[int, str, bytes, bytes, EventBase]:
        try:
            server = msgspec.json.decode(raw, type=_ExportLine)
            fields = msgspec.json.decode(raw)
            for name in ("position", "recorded_at", "hash", "prev_hash"):
                fields.pop(name)
            event: EventBase = msgspec.convert(fields, type=Event, strict=False)
            parse_recorded_at(server.recorded_at)
            return (
                server.position,
                server.recorded_at,
                bytes.fromhex(server.hash),
                bytes.fromhex(server.prev_hash),
                event,
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError) as error:
            raise InvalidInput(
                f"line {number} is not an exported event: {error}",
                field=f"line {number}",
                rule="export_line_invalid",
            ) from None

    def _import_batch(
        self, lines: list[tuple[int, str, bytes, bytes, EventBase]], versions: dict[str, int]
    ) -> int:
        """Append one batch of an export; `versions` carries each stream's version from batch to batch."""
        head = self._recorder.head()
        if lines[0][0] != head.position + 1 or lines[0][3] != head.hash:
            raise IntegrityFailure(
                f"the export's position {lines[0][0]} does not continue this log at {head.position}",
                position=lines[0][0],
                reason="missing",
            )
        plan = []
        for _position, _recorded_at, _hash, _previous, event in lines:
            stream = stream_of(event)
            versions[stream] = version = versions.get(stream, 0) + 1
            plan.append(Recorded(stream, version, event))
        batch = BatchWrite(head.position, [str(r.event.event_id) for r in plan])
        try:
            self._application.append(plan, batch=batch, imported=[(line[1], line[2]) for line in lines])
        except IntegrityError as error:
            raise IntegrityFailure(
                f"the import breaks the chain or repeats an event: {error}",
                position=lines[0][0],
                reason="altered",
            ) from None
        return len(lines)

    # The ledger's own streams (API keys: `ledger.access`, stream `$keys`). Kept apart from `post`, which
    # decides cadre events and policies: these count nothing and obey no rule but idempotency by source.

    def record_own(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
        """Record events of an own stream atomically; an event whose source is recorded with the same
        content replays, with other content is a Conflict. The writer folds them on its next catch-up."""
        streams = [stream_of(event) for event in events]
        if not events or any(not s.startswith("$") or s == POLICY_STREAM for s in streams):
            raise ValueError("record_own records events of the ledger's own streams ($keys), at least one")
        prints = [fingerprint(event) for event in events]
        with self._writing():
            for _attempt in range(APPEND_ATTEMPTS_MAX):
                try:
                    self._catch_up()
                    return self._record_own_once(events, streams, prints, posted_by)
                except (StaleHead, IntegrityError):
                    continue  # another process appended meanwhile: read the sources and versions again
                except PersistenceError as error:
                    fault = store_fault(error)
                    if fault is None:
                        raise
                    raise fault from error
            raise LedgerError(f"the log kept moving: could not append after {APPEND_ATTEMPTS_MAX} attempts")

    def _record_own_once(
        self, events: Sequence[EventBase], streams: list[str], prints: list[bytes], posted_by: str
    ) -> PostResult:
        keys = [(event.source.system, event.source.key) for event in events]
        found = self._recorder.sources(keys)
        versions = {stream: self.stream_version(stream) for stream in set(streams)}
        plan: list[Recorded] = []
        origins: list[tuple[bool, int]] = []  # (replayed, position or index into plan)
        for event, stream, key, print_ in zip(events, streams, keys, prints, strict=True):
            earlier = found.get(key)
            if earlier is not None:
                if _recorded_fingerprint(earlier[1], key) != print_:
                    raise Conflict(
                        f"source {key[0]}/{key[1]} was recorded with other content", system=key[0], key=key[1]
                    )
                origins.append((True, earlier[0]))
                continue
            versions[stream] += 1
            recorded = msgspec.structs.replace(event, event_id=new_event_id(), posted_by=posted_by)
            origins.append((False, len(plan)))
            plan.append(Recorded(stream, versions[stream], recorded))
        outcome = None
        if plan:
            batch = BatchWrite(self._head, [str(r.event.event_id) for r in plan])
            self._application.append(plan, batch=batch)
            outcome = batch.outcome
            assert outcome is not None
        items = []
        for replayed, value in origins:
            if replayed:
                logged = self._logged(value)
                items.append(PostedItem(recorded_id(logged.event), value, ZERO, logged.hash, True))
            else:
                assert outcome is not None
                position = outcome.first_position + value
                hash_ = outcome.hashes[value].hex()
                items.append(PostedItem(recorded_id(plan[value].event), position, ZERO, hash_, False))
        return PostResult(self.head(), items)

    def stream_version(self, stream: str) -> int:
        """How many events the stream holds (0: none): one indexed lookup, cheap enough for every request."""
        newest = self._application.recorder.select_events(stream, desc=True, limit=1)
        return newest[0].originator_version if newest else 0

    def stream_records(self, stream: str) -> list[tuple[int, str, EventBase]]:
        """`(position, recorded_at, event)` of every event of one stream, in stream order."""
        return [(row[0], row[2], decode_event(row[1])) for row in self._recorder.stream_rows(stream)]


def _recorded_fingerprint(state: bytes, key: tuple[str, str]) -> bytes:
    """The fingerprint of the submission the event recorded under `key` came from (read from the event
    itself, so that what answers a retry is what the chain holds)."""
    event = decode_event(state)
    if (event.source.system, event.source.key) != key:  # the index and the row disagree: a damaged store
        raise IntegrityFailure(
            f"the source index finds {key[0]}/{key[1]} at an event recorded under another source; "
            "run `ledger verify`",
            reason="index_mismatch",
        )
    return fingerprint(event)


def _require_existing(url: str) -> None:
    """Refuse to open a SQLite ledger whose file does not exist (a read must not create one)."""
    settings = environment_for(url)
    path = settings.get("SQLITE_DBNAME")
    if path is not None and not os.path.exists(path):
        raise NotFound(f"no ledger at {path}: create one with `ledger init` (or check LEDGER_DATABASE_URL)")


def _ensure_postgres_schema(url: str) -> None:
    """Create the schema named in a PostgreSQL URL (`?schema=`) if it does not exist yet."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return
    schema = parse_qs(parts.query).get("schema", [""])[0]
    if not schema:
        return
    import psycopg
    from psycopg import sql

    connection_url = parts._replace(query="").geturl()
    # Another process may create it at the same moment.
    with (
        psycopg.connect(connection_url, autocommit=True) as connection,
        contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema),
    ):
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
