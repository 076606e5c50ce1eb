"""Posting: a batch decided against the writer's knowledge and appended atomically (SPEC §6).

A batch is decided outside the append lock, on a draft over the writer's knowledge (`ledger.knowledge`),
which first folds whatever other processes appended. The writer then folds what was appended since the
decision: most of it before taking the append lock (`BEGIN IMMEDIATE` on SQLite, the events table's lock
on PostgreSQL), the rest inside that transaction. When none of it touched what the draft read — its
cadres' streams, the rulebook, the batch's source keys — the decision stands and is appended as it is, at
the positions that are now next: another writer's batch of other cadres costs one small read, not a
decision. Otherwise the race is lost, and the items of the cadres it touched are decided again against
the knowledge as it now is (`ledger.planning`), never reloading a stream. After `LOST_RACES_MAX` lost
races in a row the writer takes the append lock *before* deciding, so it wins that attempt: no batch
starves behind a stream of small ones.

So every rule — idempotency, lifecycle, annual caps — is checked against the complete log, and appends
from several processes never lose, duplicate or reorder an acknowledged event.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any, Final

import msgspec
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

from ledger.domain.cadre import Recorded, points_of, stream_of
from ledger.domain.errors import Conflict, IntegrityFailure, InvalidInput, LedgerError, StoreUnavailable
from ledger.domain.events import EventBase, recorded_id
from ledger.domain.ids import new_event_id
from ledger.domain.points import ZERO
from ledger.dry_run import CHECK_SIZE_MAX, DryRun, check_items
from ledger.knowledge import PERSIST_AT_CLOSE_EVENTS, Knowledge, Moved
from ledger.planning import (
    DecideOne,
    LostRace,
    Origin,
    Plan,
    decide_event,
    decide_items,
    recorded_fingerprint,
)
from ledger.posting import check_client_fields, client_fingerprint, fingerprint
from ledger.reader import Reader
from ledger.results import PostedItem, PostResult
from ledger.store import recorders
from ledger.store.application import LedgerApplication
from ledger.store.batch import AppendOutcome, BatchWrite, StaleHead
from ledger.store.faults import store_fault
from ledger.store.mapper import decode_event

__all__ = [
    "APPEND_ATTEMPTS_MAX",
    "BATCH_SIZE_MAX",
    "LOST_RACES_MAX",
    "POSTS_WAITING_MAX",
    "Writer",
]

BATCH_SIZE_MAX: Final = 1_000
APPEND_ATTEMPTS_MAX: Final = 50
# Lost races in a row before a post takes the append lock before deciding (and so wins the next one).
LOST_RACES_MAX: Final = 2
# Posts of one process wait for each other (and then for the database's write lock) at most this long;
# beyond this many waiting, a post is refused at once, so that waiting posts never take every thread of a
# server and reads keep answering.
POSTS_WAITING_MAX: Final = 8

logger = logging.getLogger("ledger")


class Writer:
    """The one writer of a process: its lock, its knowledge, and the posts decided against it."""

    def __init__(self, application: LedgerApplication, reader: Reader, today: Callable[[], date]) -> None:
        self._application = application
        self._recorder = application.ledger_recorder
        self._reader = reader
        self._today = today
        self.knowledge = Knowledge(self._recorder)
        self.lock = threading.RLock()
        self._waiting_lock = threading.Lock()
        self.posts_waiting = 0
        self.lost_races = 0  # lost races since the process started (a figure for benchmarks and logs)

    def post(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
        """Record a batch atomically; replays return their original result.

        Raises InvalidInput (naming the item and field) or Conflict; then nothing is recorded.
        """
        if not events:
            raise InvalidInput(
                "a batch holds at least one event", field="events", rule="batch_must_not_be_empty"
            )
        if len(events) > BATCH_SIZE_MAX:
            raise InvalidInput(
                f"a batch holds at most {BATCH_SIZE_MAX} events", field="events", rule="batch_too_large"
            )
        for index, event in enumerate(events):
            try:
                check_client_fields(event)
            except InvalidInput as error:
                raise error.at_item(index) from None
        fingerprints = [client_fingerprint(event, item=index) for index, event in enumerate(events)]
        with self.writing():
            reconnected = refused = False
            lost = 0
            plan: Plan | None = None
            redo: Moved | None = None  # after a lost race: what was folded since `plan` was decided
            for _attempt in range(APPEND_ATTEMPTS_MAX):
                try:
                    if lost < LOST_RACES_MAX:
                        if plan is None or redo is not None:
                            self.knowledge.catch_up(None, redo)
                            plan = self._plan(
                                events, fingerprints, posted_by, None, previous=plan, moved=redo
                            )
                            redo = None
                        outcome = self._append_if_it_holds(plan)
                    else:
                        with self._recorder.append_session() as session:
                            self.knowledge.catch_up(session, redo)
                            plan = self._plan(
                                events, fingerprints, posted_by, session, previous=plan, moved=redo
                            )
                            redo = None
                            outcome = self._append(plan, session)
                except LostRace as lost_race:
                    lost += 1
                    self.lost_races += 1
                    if lost_race.moved is None:
                        plan = None
                    redo = lost_race.moved
                    continue
                except StaleHead:  # the log moved under an append made outside a session: decide again
                    lost += 1
                    self.lost_races += 1
                    plan, redo = None, None
                    continue
                except IntegrityError as error:
                    # The head was the expected one, yet a unique key refused the batch: the knowledge
                    # disagrees with the log (a kept state or a table changed by hand). Fold the log from
                    # its start, once; if the log itself refuses again, it is damaged.
                    if refused:
                        raise IntegrityFailure(
                            f"the log refuses an append its own fold allows ({error}): a table was changed "
                            "by hand; run `ledger verify`",
                            reason="altered",
                        ) from None
                    refused = True
                    logger.warning("an append was refused by a unique key (%s); folding the log again", error)
                    self.knowledge.forget(use_kept=False)
                    plan, redo = None, None
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
                    plan, redo = None, None
                    continue
                if outcome is not None:
                    head = outcome.first_position + len(plan.appended) - 1
                    self.knowledge.commit(plan, head, outcome.hashes[-1])
                    self._recorder.committed(head)
                    self.knowledge.persist()
                return self._results(plan.origins, plan.appended, outcome, plan.recorded_sources)
            raise LedgerError(f"the log kept moving: could not append after {APPEND_ATTEMPTS_MAX} attempts")

    def _append_if_it_holds(self, plan: Plan) -> AppendOutcome | None:
        """Append a batch decided outside the lock if what other writers appended since did not touch
        what it read (else `LostRace`). Most of that is folded, and the rows encoded, before taking the
        lock: inside it, only what was appended in the last moments is folded."""
        if not plan.appended:
            return None  # only replays: nothing to append
        if self.knowledge.head != plan.head:  # this process appended meanwhile (a post inside a post)
            raise LostRace(None)
        moved = Moved()
        self.knowledge.catch_up(None, moved)
        if moved and not plan.holds(moved, self._today()):
            raise LostRace(moved)
        stored = self._application.stored(plan.appended)

        def fold_while_waiting() -> None:
            self.knowledge.catch_up(None, moved)
            if moved and not plan.holds(moved, self._today()):
                raise LostRace(moved)

        with self._recorder.append_session(fold_while_waiting) as session:
            self.knowledge.catch_up(session, moved)
            if moved and not plan.holds(moved, self._today()):
                raise LostRace(moved)
            return self._append(plan, session, stored)

    def _append(
        self, plan: Plan, session: Any, stored: Sequence[StoredEvent] | None = None
    ) -> AppendOutcome | None:
        """Append the planned events (as `stored`, if already encoded) in the append session, after the
        knowledge's head."""
        if not plan.appended:
            return None
        batch = BatchWrite(self.knowledge.head, [str(r.event.event_id) for r in plan.appended])
        if stored is None:
            stored = self._application.stored(plan.appended)
        self._application.append_stored(stored, batch=batch, cursor=session)
        assert batch.outcome is not None
        return batch.outcome

    def check(self, events: Sequence[EventBase], *, posted_by: str) -> DryRun:
        """Decide every item as `post` would, on one draft, and record nothing: a dry run.

        Unlike `post`, a refused item does not stop the run: it is reported, left out of the draft, and
        the next item is decided. So every item's refusal is found in one run, and an item that depends
        on an earlier one (a merit for a cadre registered above it) is decided as posting the whole
        sequence would decide it. Held under the writer's lock, after catching up, like a post.
        """
        if not events:
            raise InvalidInput(
                "a batch holds at least one event", field="events", rule="batch_must_not_be_empty"
            )
        if len(events) > CHECK_SIZE_MAX:
            raise InvalidInput(
                f"a dry run holds at most {CHECK_SIZE_MAX} events", field="events", rule="batch_too_large"
            )
        refused: dict[int, InvalidInput] = {}
        fingerprints: list[bytes] = []
        for index, event in enumerate(events):
            try:
                check_client_fields(event)
                fingerprints.append(client_fingerprint(event, item=index))
            except InvalidInput as error:
                refused[index] = error
                fingerprints.append(b"")
        with self.writing():
            try:
                self.knowledge.catch_up()
                keys = [(event.source.system, event.source.key) for event in events]
                sources = self._recorder.sources([key for i, key in enumerate(keys) if i not in refused])
                plan = Plan(self.knowledge, keys, sources, self._today())
                return check_items(plan, events, fingerprints, refused, self._decider(posted_by))
            except PersistenceError as error:
                fault = store_fault(error)
                if fault is None:
                    raise
                raise fault from error

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer (one post at a time per process), waiting a bounded time, with few waiters."""
        with self._waiting_lock:
            if self.posts_waiting >= POSTS_WAITING_MAX:
                raise StoreUnavailable(
                    f"{self.posts_waiting} posts are already waiting to be recorded; try again shortly",
                    cause="lock_busy",
                )
            self.posts_waiting += 1
        try:
            acquired = self.lock.acquire(timeout=recorders.WRITE_LOCK_WAIT_SECONDS)
        finally:
            with self._waiting_lock:
                self.posts_waiting -= 1
        if not acquired:
            raise StoreUnavailable(
                f"the posts before this one did not finish within {recorders.WRITE_LOCK_WAIT_SECONDS} s; "
                "nothing was recorded",
                cause="lock_busy",
            )
        try:
            with collector_paused():
                yield
        finally:
            self.lock.release()

    def _plan(
        self,
        events: Sequence[EventBase],
        fingerprints: list[bytes],
        posted_by: str,
        session: Any,
        *,
        previous: Plan | None = None,
        moved: Moved | None = None,
    ) -> Plan:
        """Decide the batch on a draft over the knowledge (reading in `session` if given): each item is a
        replay of the log, a repeat of an earlier item, or a new event to append. Nothing is written.

        After a lost race, `previous` is the decision made before and `moved` what was folded since: the
        items of cadres nobody else touched keep their decided events (a cadre's items depend on its own
        stream and the rulebook only), and the others are decided again, in order, against the knowledge
        as it now is — as deciding the whole batch again would decide them."""
        keys = [(event.source.system, event.source.key) for event in events]
        kept = previous is not None and moved is not None and previous.keeps_part(moved, self._today())
        if kept:
            assert previous is not None and moved is not None
            plan = previous.kept_part(moved.streams)
        else:
            plan = Plan(self.knowledge, keys, self._recorder.sources(keys, session), self._today())
        decided_before = previous.decided if kept and previous is not None else None
        origins = plan.origins
        items = decide_items(
            plan, events, fingerprints, self._decider(posted_by), decided_before=decided_before
        )
        for kind, index, detail in items:
            if kind == "new":
                origins.append(("new", detail))
            elif kind == "old":
                origins.append(("old", detail[0]))
            elif kind == "repeat":
                origins.append(("new", detail[1]))
            elif kind == "invalid":
                raise detail.at_item(index) from None
            else:
                system, key = keys[index]
                how = "was recorded" if kind == "old_conflict" else "appears twice in the batch"
                raise Conflict(
                    f"item {index}: source {system}/{key} {how} with other content",
                    item=index,
                    system=system,
                    key=key,
                )
        return plan

    def _decider(self, posted_by: str) -> DecideOne:
        """Decide one item for `posted_by` (see `planning.decide_event`)."""
        event_by_id = self._reader.event_by_id
        return lambda event, plan, pending: decide_event(
            event, plan, pending, posted_by=posted_by, event_by_id=event_by_id
        )

    def _results(
        self,
        origins: list[Origin],
        plan: list[Recorded],
        outcome: AppendOutcome | None,
        recorded_sources: dict[tuple[str, str], tuple[int, bytes]],
    ) -> PostResult:
        # Replayed items are answered from the events the source index found, with their chain hashes
        # read in one query (an accrual of a whole city replays thousands).
        old_states = {position: state for position, state in recorded_sources.values()}
        old_positions = [value for origin, value in origins if origin == "old"]
        old_hashes = self._recorder.hashes_at(old_positions)
        for position in old_positions:
            if position not in old_hashes:  # a chain row deleted behind the ledger's back
                raise IntegrityFailure(
                    f"the event at position {position} has no chain entry; run `ledger verify`",
                    position=position,
                    reason="inserted",
                )
        old_events = {position: decode_event(old_states[position]) for position in set(old_positions)}
        items: list[PostedItem] = []
        first_seen: set[int] = set()
        for origin, value in origins:
            if origin == "old":
                event = old_events[value]
                items.append(
                    PostedItem(recorded_id(event), value, points_of(event), old_hashes[value].hex(), True)
                )
                continue
            assert outcome is not None
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
        head = (
            outcome.first_position + len(plan) - 1 if outcome is not None else self._recorder.head().position
        )
        return PostResult(head, items)

    def load_all(self) -> None:
        """Bring the knowledge up to the head of the log (for operations over every cadre)."""
        with self.lock, collector_paused():
            self.knowledge.catch_up()

    def close(self) -> None:
        """Keep the knowledge for the next process if enough was folded since it was last kept."""
        if self.lock.acquire(timeout=recorders.WRITE_LOCK_WAIT_SECONDS):
            try:
                self.knowledge.persist(at_least=PERSIST_AT_CLOSE_EVENTS)
            finally:
                self.lock.release()

    # The ledger's own streams (API keys: `ledger.access`, stream `$keys`). Kept apart from `post`, which
    # decides cadre events and policies: these count nothing and obey no rule but idempotency by source.

    def record_own(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult:
        """Record events of an own stream atomically; an event whose source is recorded with the same
        content replays, with other content is a Conflict. The writer folds them on its next catch-up."""
        streams = [stream_of(event) for event in events]
        if not events or any(not s.startswith("$") or s == "$policy" for s in streams):
            raise ValueError("record_own records events of the ledger's own streams ($keys), at least one")
        prints = [fingerprint(event) for event in events]
        with self.writing():
            for _attempt in range(APPEND_ATTEMPTS_MAX):
                try:
                    self.knowledge.catch_up()
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
        versions = {stream: self._reader.stream_version(stream) for stream in set(streams)}
        plan: list[Recorded] = []
        origins: list[tuple[bool, int]] = []  # (replayed, position or index into plan)
        for event, stream, key, print_ in zip(events, streams, keys, prints, strict=True):
            earlier = found.get(key)
            if earlier is not None:
                if recorded_fingerprint(earlier[1], key) != print_:
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
            batch = BatchWrite(self.knowledge.head, [str(r.event.event_id) for r in plan])
            self._application.append(plan, batch=batch)
            outcome = batch.outcome
            assert outcome is not None
        items = []
        for replayed, value in origins:
            if replayed:
                logged = self._reader.logged(value)
                items.append(PostedItem(recorded_id(logged.event), value, ZERO, logged.hash, True))
            else:
                assert outcome is not None
                position = outcome.first_position + value
                hash_ = outcome.hashes[value].hex()
                items.append(PostedItem(recorded_id(plan[value].event), position, ZERO, hash_, False))
        return PostResult(self._recorder.head().position, items)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the writer works (its lock held: never nested).

    A batch allocates hundreds of thousands of short-lived objects (drafts, events, rows), and each
    collection they set off walked the writer's long-lived knowledge too: with the collector running,
    B1's batches ingested 7.6k events/s, with it off 8.6–10.6k, on the same machine in alternated runs.
    Reference counting frees nearly all of a batch's objects as it goes; what is cyclic is collected once
    the collector runs again after the post.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
