"""The read models' face: one object that keeps every projection and answers every read.

    projections = Projections.open(ledger)          # loads the persisted facts, catches up with the log
    projections.rankings("unit:U01", period="2025Q4")

Keeping: `catch_up()` reads the events after the tracked position, turns each into its fact, writes the
facts and the new position in one transaction (see `store.py`) and folds them into the in-memory index.
Several processes may keep the same read models; each folds what the winner wrote.

Reading: every read takes `as_of` (a date, default today in the ledger's time zone), `known_at` (an instant
or a log position, default now) and `min_position` (wait, bounded, until the read models reach it, else
`NotCaughtUp`), and answers with the log position it reflects.

Rebuilding: `rebuild()` folds the whole log into a new version while the current one keeps serving, then
switches; every process notices the switch on its next catch-up and reloads.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final

import numpy as np
from sqlalchemy.exc import DBAPIError

from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import GRADES
from ledger.domain.periods import Period, parse_period, period_containing
from ledger.integrity.chain import GENESIS_HASH
from ledger.ledger import Ledger
from ledger.policy.schema import BASES, Policy
from ledger.projections.cursors import (
    RankingsCursor,
    ShortlistCursor,
    agree,
    cursor_invalid,
    decode_cursor,
    encode_cursor,
)
from ledger.projections.errors import NotCaughtUp, ReadModelsDamaged, ReadModelsRebuilding
from ledger.projections.facts import FACTS_FORMAT, Fact, FactsDigest, day, facts_of_stored, from_day
from ledger.projections.index import Array, Index, Snapshot
from ledger.projections.integrity import log_hash_at as _log_hash_at
from ledger.projections.integrity import log_head as _log_head
from ledger.projections.integrity import read_model_findings, standings_of
from ledger.projections.mapped import (
    Binding,
    IndexFiles,
    IndexUnusable,
    StreamDigest,
    check_binding,
)
from ledger.projections.results import (
    BoardEntry,
    BoardsView,
    CadreView,
    Components,
    EligibilityView,
    Escalation,
    EscalationsView,
    OpenRecall,
    RankingEntry,
    RankingsView,
    RecallCandidate,
    RecallsView,
    ShortlistEntry,
    ShortlistView,
    UnitEscalationsView,
    UnitRankingsView,
    UnitView,
)
from ledger.projections.snapshots import ReadCache, cadres_with_recalls
from ledger.projections.store import (
    CLAIM_STALE_SECONDS,
    POSITION_MIN,
    FactStore,
    Tracking,
    fact_of_row,
    facts_table,
)
from ledger.projections.unit_reads import UnitReads
from ledger.projections.views import (
    board_lists,
    bottom_of_groups,
    components_of,
    decimals_of,
    eligibility_checks,
    group_bounds,
    open_recalls,
    points_of_cents,
    policy_at,
    rank_pools,
    recall_count,
    vetoed,
)
from ledger.results import TableFinding
from ledger.store.faults import store_fault

__all__ = ["MIN_POSITION_WAIT_SECONDS_MAX", "PAGE_SIZE_MAX", "Projections"]

MIN_POSITION_WAIT_SECONDS_MAX: Final = 10.0
MIN_POSITION_POLL_SECONDS: Final = 0.02
# How long opening waits for another process's rebuild of read models persisted in an older shape.
UPGRADE_WAIT_SECONDS_MAX: Final = 600.0
UPGRADE_POLL_SECONDS: Final = 0.2
FOLD_PAGE_EVENTS: Final = 10_000
# How long a read waits for the write lock to persist what it folds before answering from what it has.
CATCH_UP_LOCK_WAIT_SECONDS: Final = 0.25
# Facts another process wrote are checked before they are folded, so they are held in memory meanwhile;
# further behind than this, the whole version is loaded afresh instead.
FOLD_BUFFER_FACTS: Final = 100_000
# The persisted index (`mapped.py`) is written again once the facts folded since it reach this many, or
# this share of the position (an open folds at most that many facts from the table; writing a file of ~75
# bytes per event every 1/20 of the log costs ~1.5 kB written per event folded, in large sequential writes).
PERSIST_TAIL_MIN: Final = 50_000
PERSIST_TAIL_SHARE: Final = 20
# How long closing waits for a repair thread; it stops at its next page (see `close`).
REPAIR_JOIN_SECONDS: Final = 30.0
PAGE_SIZE_MAX: Final = 5_000
ESCALATION_PERIODS_MAX: Final = 12
EACH_UNIT: Final = "unit:*"
KnownAt = int | datetime | None

logger = logging.getLogger("ledger.projections")


class Projections:
    """Standings, rankings, eligibility, recalls, boards and escalations of one ledger.

    `repair_in_background` (a server): when persisted facts or the log no longer agree with what was
    folded, reads raise ReadModelsRebuilding (503) while a thread rebuilds; otherwise (the CLI, a script)
    the read that finds the disagreement rebuilds before it answers. Either way the disagreement is logged
    at CRITICAL on `ledger.projections` and the disagreeing facts are never served.
    """

    def __init__(
        self,
        ledger: Ledger,
        store: FactStore,
        *,
        repair_in_background: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self._lock = threading.RLock()
        self._repair_in_background = repair_in_background
        self._repairer: threading.Thread | None = None
        # Why the read models may not be served (they are rebuilt), or None.
        self._damage: str | None = None
        # Set by `close` (or by the caller's `stop`, during `open`): a rebuild, or a wait for another
        # process's, is abandoned at its next page or poll.
        self._closing = stop if stop is not None else threading.Event()
        self.index = Index()
        self._digest: FactsDigest = StreamDigest()
        # The position folded and the log's hash there, as one value: `health()` reads it without the lock.
        self._folded: tuple[int, bytes] = (0, GENESIS_HASH)
        # The persisted index (a cache of `self.index` on disk): its files, the position of the one the
        # index was opened from or last written, and whether writing failed (then this process stops trying).
        self._files = IndexFiles.of(ledger.url, ledger.ledger_id)
        self._persisted = 0
        self._unwritable = False
        try:
            self.version = store.current_version()
        except ReadModelsDamaged as damage:
            self.version = 0  # no version: the rebuild that follows writes a valid one
            self._damaged(damage)
            return
        if store.facts_format() == FACTS_FORMAT:
            try:
                self._load()
            except ReadModelsDamaged as damage:
                self._damaged(damage)

    @classmethod
    def open(
        cls, ledger: Ledger, *, repair_in_background: bool = False, stop: threading.Event | None = None
    ) -> Projections:
        """The read models of `ledger`, loaded from their persisted facts and caught up with the log.

        Facts persisted in another shape (by an older version of the ledger), or that fail their checks,
        are rebuilt from the log before this returns. Setting `stop` abandons that rebuild (or the wait for
        another process's) at its next page: `open` then raises.
        """
        projections = cls(ledger, FactStore(ledger.url), repair_in_background=repair_in_background, stop=stop)
        if projections._damage is None and projections.store.facts_format() != FACTS_FORMAT:
            projections._upgrade()
        with projections._lock:
            projections._keep(repair_in_background=False)
        return projections

    def _upgrade(self) -> None:
        """Rebuild facts persisted in an older shape, once: the process that claims the upgrade rebuilds
        and drops every other version; the others wait (bounded) for its version, then load it."""
        tracking = self.store.tracking(self.version)
        if tracking is None or tracking.position == 0:
            self.store.set_facts_format(FACTS_FORMAT)  # nothing persisted yet
            return
        started = time.monotonic()
        waiting: str | None = None
        while self.store.facts_format() != FACTS_FORMAT:
            if self._claim("upgrade"):
                try:
                    if self.store.facts_format() == FACTS_FORMAT:
                        break  # another process finished between the check and the claim
                    self.rebuild(progress=self._refresh_claim)
                    for version in self.store.versions():
                        if version != self.version:
                            self.store.drop_version(version)
                finally:
                    self.store.release_upgrade()
                return
            waiting = self._waiting_on(waiting, "upgrade")
            if time.monotonic() - started > UPGRADE_WAIT_SECONDS_MAX:
                raise NotCaughtUp(self.ledger.head(), 0, UPGRADE_WAIT_SECONDS_MAX)
            if self._closing.wait(UPGRADE_POLL_SECONDS):
                raise _Abandoned()
        with self._lock:
            try:
                self.version = self.store.current_version()
                self._load()
            except ReadModelsDamaged as damage:
                self._damaged(damage)

    def _claim(self, purpose: str) -> bool:
        """Claim the rebuild on behalf of every process; a stale claim taken over is logged (WARNING)."""
        held = self.store.held_claim()
        if not self.store.claim_upgrade(time.time()):
            return False
        if held is not None:
            logger.warning(
                "read models: taking over the stale rebuild claim %r (no live claimant) for the %s",
                held,
                purpose,
            )
        return True

    def _waiting_on(self, logged: str | None, purpose: str) -> str | None:
        """Log (WARNING, once per claim value seen) that the rebuild waits on another process's claim."""
        held = self.store.held_claim()
        if held is not None and held != logged:
            logger.warning(
                "read models: the %s waits on the rebuild claim %r of another process (stale after %.0f s "
                "without a refresh)",
                purpose,
                held,
                CLAIM_STALE_SECONDS,
            )
        return held if held is not None else logged

    def _refresh_claim(self, _events: int) -> None:
        """The rebuild's progress: refresh the claim (the claimant is alive) and stop if closing."""
        if self._closing.is_set():
            raise _Abandoned()
        self.store.refresh_claim(time.time())

    def close(self) -> None:
        """Stop serving. A repair thread is abandoned at its next page (its unfinished version is
        dropped, its claim released, and the next process to find the damage rebuilds again): the
        version it builds is not switched to, so nothing half-built is ever served."""
        self._closing.set()
        repairer = self._repairer
        if repairer is not None:
            repairer.join(REPAIR_JOIN_SECONDS)
        self.store.close()

    # Keeping.

    def _load(self) -> None:
        """Load the current version: its persisted index and the facts after it (`_load_persisted`), or
        else every persisted fact folded into a fresh index (then the index is persisted for the next open),
        checking them: the digest of the rows read, the log's hash at the tracked position, no row outside
        1 … tracked.

        ReadModelsDamaged (and nothing replaced) if any check fails.
        """
        version = self.version
        tracking = self.store.tracking(version)
        if tracking is None:
            raise ReadModelsDamaged(version, 0, "the version has no tracking row")
        if self._load_persisted(tracking):
            return
        index, digest = Index(), self._fresh_digest()
        for rows in self.store.rows(version, 0, tracking.position):
            digest = self._fold_rows(index, digest, rows)
        self._check_persisted(tracking, index.position, digest)
        self._check_extent(tracking)
        self.index, self._digest = index, digest
        self._folded = (tracking.position, tracking.log_hash or b"")
        self._persisted = 0
        _settle()
        self._persist()

    def _load_persisted(self, tracking: Tracking) -> bool:
        """Open the current version's persisted index and fold the facts after its position from the table,
        checked as a load checks them (the digest continues from the file's). False, logged, when there is
        none or it must not be served (`mapped.check_binding`): the caller loads from the table."""
        version = self.version
        if tracking.position == 0:
            return False  # nothing folded yet: nothing to open
        try:
            opened = self._files.open(version)
            if opened is None:
                logger.warning(
                    "read models: no persisted index %s; loading the facts from the database",
                    self._files.path(version),
                )
                return False
            check_binding(
                opened.binding,
                ledger_id=self.ledger.ledger_id,
                version=version,
                facts_format=FACTS_FORMAT,
                tracked=tracking.position,
                hash_at=self.ledger.hash_at,
            )
            index: Index = opened.index
            digest: FactsDigest = opened.digest
            for rows in self.store.rows(version, index.position, tracking.position):
                digest = self._fold_rows(index, digest, rows)
            self._check_persisted(tracking, index.position, digest)
            self._check_extent(tracking)
        except (IndexUnusable, ReadModelsDamaged) as refused:
            critical = isinstance(refused, IndexUnusable) and refused.critical
            (logger.critical if critical else logger.warning)(
                "read models: the persisted index %s is not used: %s; loading the facts from the database",
                self._files.path(version),
                refused.what if isinstance(refused, IndexUnusable) else str(refused),
            )
            return False
        self.index, self._digest = index, digest
        self._folded = (tracking.position, tracking.log_hash or b"")
        self._persisted = opened.binding.position
        _settle()
        return True

    def _check_extent(self, tracking: Tracking) -> None:
        """No row of the current version's facts lies outside the positions 1 … tracked (two index range
        seeks: SQLite answers `MIN(), MAX()` in one query with a scan of the whole table)."""
        version = self.version
        outside = [
            int(rows[0][0])
            for rows in (
                next(self.store.rows(version, POSITION_MIN, 0), None),
                next(self.store.rows(version, tracking.position), None),
            )
            if rows
        ]
        if outside and outside[0] > tracking.position:
            # Rows past the tracking row read before them may be another process's catch-up, committed
            # in between (the two reads are two snapshots): damage only if the tracking row, read again,
            # still does not cover them.
            again = self.store.tracking(version)
            if again is not None and again.position >= outside[-1]:
                return
        if outside:
            stray = outside[0]
            raise ReadModelsDamaged(
                version,
                tracking.position,
                f"{facts_table(version)} holds a row at position {stray}, outside the positions 1 … "
                f"{tracking.position} it tracks",
            )

    def _persist_if_due(self) -> None:
        """Write the index again once the facts folded since its file are many (`PERSIST_TAIL_MIN`,
        `PERSIST_TAIL_SHARE`): the next open then folds few from the table."""
        position = self.index.position
        if position - self._persisted >= max(PERSIST_TAIL_MIN, position // PERSIST_TAIL_SHARE):
            self._persist()

    def _persist(self) -> None:
        """Write the index to disk for the next open, then serve it from the file (`_persisted_copy`)."""
        position = self._folded[0]
        if position != self.index.position or self._damage is not None:
            return
        index, digest = self._persisted_copy(self.version, self.index, self._folded, self._digest)
        self._persisted = position
        if index is not self.index:
            self.index, self._digest = index, digest
            _settle()
        else:
            self._digest = digest

    def _persisted_copy(
        self, version: int, index: Index, folded: tuple[int, bytes], digest: FactsDigest
    ) -> tuple[Index, FactsDigest]:
        """Write `index` (of `version`, folded through `folded` with `digest`) to its file for the next open
        (a cache, see `mapped.py`); the index and digest to serve: mapped from the file (its pages shared
        with the other processes of the machine), or these if nothing was written. A directory that cannot
        be written is logged once: this process serves from memory and stops trying (and keeping the
        facts' stream)."""
        if not isinstance(digest, StreamDigest):
            return index, digest
        if self._unwritable:
            return index, digest.plain()
        position, log_hash = folded
        if position == 0:
            return index, digest
        binding = Binding(self.ledger.ledger_id, version, FACTS_FORMAT, position, log_hash, digest.digest())
        try:
            self._files.write(binding, index, digest.stream())
            opened = self._files.open(version, verify=False)
        except Exception as error:  # a cache: nothing about it may fail a read (OSError: cannot write)
            self._unwritable = True
            logger.warning(
                "read models: cannot persist the index in %s (%s); serving it from memory (the next open "
                "loads the facts from the database)",
                self._files.directory,
                error,
                exc_info=not isinstance(error, OSError | IndexUnusable),
            )
            return index, digest.plain()
        self._files.remove_older(version)
        if opened is None or opened.binding != binding:
            return index, digest  # another process renamed its file over this one since
        return opened.index, opened.digest

    def _fresh_digest(self) -> FactsDigest:
        """An empty running digest: one that keeps the facts' stream unless this process cannot write."""
        return FactsDigest() if self._unwritable else StreamDigest()

    def _fold_rows(self, index: Index, digest: FactsDigest, rows: Sequence[Any]) -> FactsDigest:
        """Fold persisted rows into `index` and `digest` (the digest is returned extended)."""
        try:
            facts = [fact_of_row(row) for row in rows]
            digest = digest.extended(facts)
            index.add(facts)
        except Exception as error:
            # Rows an insider altered may not decode or fold at all (a detail that is not MessagePack, a
            # kind or cadre that does not exist): that is one more way of disagreeing with the log.
            raise ReadModelsDamaged(
                self.version,
                int(rows[0][0]),
                f"the persisted facts from position {rows[0][0]} do not fold "
                f"({type(error).__name__}: {error})",
            ) from None
        return digest

    def _check_persisted(self, tracking: Tracking, reached: int, digest: FactsDigest) -> None:
        """The facts folded through `reached` with `digest` are those `tracking` binds to the log."""
        version, position = self.version, tracking.position
        if reached != position:
            raise ReadModelsDamaged(
                version,
                position,
                f"the facts end at position {reached} but the tracking row says {position}: "
                "facts are missing",
            )
        if tracking.digest != digest.digest():
            raise ReadModelsDamaged(
                version,
                position,
                f"the digest of the facts ({_short(digest.digest())}) is not the tracked one "
                f"({_short(tracking.digest)}): a fact was altered, deleted or inserted",
            )
        held = _log_hash_at(self.ledger, position)
        if held != tracking.log_hash:
            raise ReadModelsDamaged(
                version,
                position,
                f"the log's hash at position {position} ({_short(held)}) is not the one the facts were "
                f"folded from ({_short(tracking.log_hash)}): the log was rewritten or truncated",
            )

    def _damaged(self, damage: ReadModelsDamaged) -> None:
        """Stop serving: log the disagreement and drop everything folded (a rebuild follows)."""
        logger.critical(
            "read models refused: version %d, position %d: %s; rebuilding them from the log",
            damage.version,
            damage.position,
            damage.what,
        )
        with self._lock:
            self._damage = str(damage)
            self.index, self._digest, self._folded = Index(), StreamDigest(), (0, GENESIS_HASH)
            self._persisted = 0

    def position(self) -> int:
        """The log position the read models have reached."""
        return self.index.position

    def unavailable(self) -> str | None:
        """Why the read models may not be served now (they are being rebuilt), or None."""
        return self._damage

    def wait_until_available(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for a background rebuild to finish; whether the read models may
        be served now."""
        repairer = self._repairer
        if repairer is not None:
            repairer.join(timeout)
        return self._damage is None

    def health(self) -> str | None:
        """Whether the read models may be served (None) or why not: they are being rebuilt, or the log no
        longer holds what they folded (found here with one or two queries and no lock; a rebuild starts
        in the background). For `/health/ready`."""
        if self._damage is None:
            position, held = self._folded
            problem = _log_problem(self.ledger, self.version, position, held) or self._meta_problem()
            if problem is not None:
                self._damaged(problem)
        if self._damage is not None:
            self._start_repair()
        return self._damage

    def _meta_problem(self) -> ReadModelsDamaged | None:
        """Why `projection_meta` or the current facts table no longer lets the read models be kept (a
        version that is not a number, or whose facts table is gone), or None."""
        try:
            current = self.store.stored_version()
        except ReadModelsDamaged as damage:
            return damage
        if current == self.version and not self.store.has_facts(current):
            return ReadModelsDamaged(
                current, self.index.position, f"the facts table {facts_table(current)} is missing"
            )
        return None

    def catch_up(self) -> int:
        """Fold every event appended since the last catch-up; the new position.

        Raises ReadModelsRebuilding while a background rebuild runs (see the class).
        """
        with self._lock:
            return self._keep(repair_in_background=self._repair_in_background)

    def _keep(self, *, repair_in_background: bool) -> int:
        """Catch up; on a disagreement, rebuild (here, or in the background and raise)."""
        if self._damage is None:
            try:
                position = self._catch_up()
            except ReadModelsDamaged as damage:
                self._damaged(damage)
            else:
                self._persist_if_due()
                return position
        assert self._damage is not None
        if repair_in_background:
            self._start_repair()
            raise ReadModelsRebuilding(self._damage)
        self._repair()
        try:
            return self._catch_up()
        except ReadModelsDamaged as damage:
            # Disagreeing again at once (the log is changing under a rebuild): refuse, do not loop.
            self._damaged(damage)
            raise ReadModelsRebuilding(self._damage) from None

    def _catch_up(self) -> int:
        """Fold what was appended; ReadModelsDamaged if the log or the persisted facts disagree with what
        was folded. Every turn of the loop folds something, returns or raises."""
        state = self.store.state()
        if state is None:
            self.store.current_version()  # creates version 1 of a new ledger
            state = self.store.state()
            if state is None:
                raise ReadModelsDamaged(self.version, self.index.position, "the version has no tracking row")
        current, tracking = state
        if current != self.version:
            self.version = current
            self._load()
        position, held = self._folded
        head_position, head_hash = _log_head(self.ledger)
        if tracking.position == position == head_position and head_hash == held:
            return position  # nothing new: the common case of a read
        problem = _log_problem(self.ledger, self.version, position, held, (head_position, head_hash))
        if problem is not None:
            raise problem
        while True:
            folded = self.index.position
            row = self.store.tracking(self.version)
            if (row is None or row.position < folded) and self._switched():
                return self.index.position  # a rebuild elsewhere replaced this version: now loaded
            if row is None:
                raise ReadModelsDamaged(self.version, folded, "the version's tracking row is gone")
            if row.position > folded:
                self._fold_persisted(row)  # reaches row.position, or raises
                continue
            if row.position < folded:
                raise ReadModelsDamaged(
                    self.version,
                    folded,
                    f"the tracking row went back to position {row.position} after {folded} was folded",
                )
            stored = self.ledger.stored(after=folded, limit=FOLD_PAGE_EVENTS)
            if not stored:
                return folded
            facts = facts_of_stored(stored)
            end = stored[-1][0]
            digest = self._digest.extended(facts)
            log_hash = _log_hash_at(self.ledger, end)
            if log_hash is None:
                raise ReadModelsDamaged(self.version, end, f"the log lost position {end} while it was read")
            try:
                written = self.store.write(
                    self.version,
                    facts,
                    folded,
                    end,
                    digest=digest.digest(),
                    log_hash=log_hash,
                    lock_wait=CATCH_UP_LOCK_WAIT_SECONDS,
                )
            except DBAPIError as error:
                fault = store_fault(error)
                if fault is None or fault.cause not in ("lock_busy", "read_only"):
                    raise
                # A read must not wait for the write lock, nor fail on a read-only store: answer from
                # what is folded (every answer names its position); the next read tries again.
                logger.warning(
                    "read models stay at position %d (the log is at %d): cannot persist now: %s",
                    folded,
                    end,
                    fault,
                )
                return folded
            if written:
                self.index.add(facts)
                self._digest, self._folded = digest, (end, log_hash)
                continue
            moved = self.store.tracking(self.version)
            if moved is None or moved.position <= folded:
                if self._switched():
                    return self.index.position
                # Another writer would have moved the row forward: it did not move, so it is not ours.
                raise ReadModelsDamaged(
                    self.version, folded, "the tracking row refuses the page written after it"
                )

    def _switched(self) -> bool:
        """Whether another process switched reads to another version (a rebuild, which drops the old one);
        if so, that version is loaded (checked like any load)."""
        current = self.store.stored_version()
        if current is None or current == self.version:
            return False
        self.version = current
        self._load()
        return True

    def _fold_persisted(self, tracking: Tracking) -> None:
        """Fold the facts another process wrote, through `tracking.position`, once they pass the checks
        (checked before folding: the live index is never touched by facts that fail). A long way behind,
        the whole version is loaded afresh instead (bounded memory)."""
        folded = self.index.position
        if tracking.position - folded > FOLD_BUFFER_FACTS:
            self._load()
            return
        facts: list[Fact] = []
        for rows in self.store.rows(self.version, folded, tracking.position):
            try:
                facts.extend(fact_of_row(row) for row in rows)
            except Exception as error:  # see _fold_rows
                raise ReadModelsDamaged(
                    self.version, int(rows[0][0]), f"the persisted facts do not decode ({error})"
                ) from None
        reached = facts[-1].position if facts else folded
        digest = self._digest.extended(facts)
        self._check_persisted(tracking, reached, digest)
        try:
            self.index.add(facts)
        except Exception as error:  # pragma: no cover - facts that pass the digest are the log's
            raise ReadModelsDamaged(
                self.version, folded, f"the persisted facts do not fold ({error})"
            ) from None
        self._digest, self._folded = digest, (tracking.position, tracking.log_hash or b"")

    def _start_repair(self) -> None:
        """Rebuild in a thread of its own (once at a time); reads answer 503 meanwhile."""
        with self._lock:
            if self._repairer is not None and self._repairer.is_alive():
                return
            self._repairer = threading.Thread(
                target=self._repair_logged, name="ledger-read-models-repair", daemon=True
            )
            self._repairer.start()

    def _repair_logged(self) -> None:
        try:
            self._repair()
        except _Abandoned:
            logger.warning("rebuilding the read models was abandoned: the process is closing")
        except Exception:
            logger.exception("rebuilding the read models failed; the next read tries again")
        else:
            logger.warning(
                "read models rebuilt from the log: version %d at position %d", self.version, self.position()
            )

    def _repair(self) -> None:
        """Replace damaged read models with a version folded from the log: rebuild it, or — if another
        process already does — wait (bounded) for its version and load it (checked like any load)."""
        damaged = self.version
        started = time.monotonic()
        waiting: str | None = None
        while True:
            if self._claim("repair"):
                try:
                    if not self._load_other(damaged):
                        self.rebuild(progress=self._refresh_claim)
                finally:
                    self.store.release_upgrade()
                return
            if self._load_other(damaged):
                return
            waiting = self._waiting_on(waiting, "repair")
            waited = time.monotonic() - started
            if waited > UPGRADE_WAIT_SECONDS_MAX:
                raise NotCaughtUp(self.ledger.head(), 0, waited)
            if self._closing.wait(UPGRADE_POLL_SECONDS):
                raise _Abandoned()

    def _load_other(self, damaged: int) -> bool:
        """Load the current version if another process has switched to one since `damaged` and it passes
        its checks."""
        current = self.store.readable_version()
        if current is None or current == damaged:
            return False
        with self._lock:
            self.version = current
            try:
                self._load()
            except ReadModelsDamaged:
                self.version = damaged
                return False
            self._damage = None
        return True

    def wait_for(self, min_position: int, *, timeout: float = MIN_POSITION_WAIT_SECONDS_MAX) -> int:
        """Catch up until the read models reach `min_position`; NotCaughtUp after `timeout` seconds."""
        timeout = min(max(timeout, 0.0), MIN_POSITION_WAIT_SECONDS_MAX)
        started = time.monotonic()
        while True:
            position = self.catch_up()
            if position >= min_position:
                return position
            waited = time.monotonic() - started
            if waited >= timeout:
                raise NotCaughtUp(min_position, position, waited)
            # The position is not in the log yet (another process has not committed it): poll, bounded.
            time.sleep(MIN_POSITION_POLL_SECONDS)

    def rebuild(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Fold the whole log into a new version while the current one keeps serving, then switch to it.

        Returns the position the new version reached. The old version's facts are dropped after the switch;
        so is a rebuild claim it supersedes (`ledger rebuild` over a claim left by a process that died).
        A `current_version` that names no version is replaced.
        """
        old = self.store.readable_version()
        new = max([*self.store.versions(), old or 0]) + 1
        self.store.drop_version(new)
        self.store.create_version(new)
        try:
            position, fresh, digest, log_hash = self._fold_into(new, progress)
        except _Abandoned:
            self.store.drop_version(new)  # never switched to: nothing half-built is kept
            raise
        # Persisted before the switch: the processes that follow it find the file.
        fresh, digest = self._persisted_copy(new, fresh, (position, log_hash), digest)
        with self._lock:
            self.store.switch(new)
            self.store.set_facts_format(FACTS_FORMAT)
            self.version = new
            self.index, self._digest, self._folded = fresh, digest, (position, log_hash)
            self._damage = None
            self._persisted = position
        _settle()
        self.store.release_upgrade()
        if old is not None and old != new:
            self.store.drop_version(old)
        self.ledger.analyze()
        try:
            self.store.analyze(self.version)
        except DBAPIError as error:  # statistics only speed reads up
            logger.warning("could not refresh the read models' statistics (ANALYZE): %s", error)
        return position

    def _fold_into(
        self, new: int, progress: Callable[[int], None] | None
    ) -> tuple[int, Index, FactsDigest, bytes]:
        """Fold the whole log into version `new`: the position reached, the index, digest and log hash."""
        fresh, digest, log_hash = Index(), self._fresh_digest(), GENESIS_HASH
        position = 0
        while True:
            stored = self.ledger.stored(after=position, limit=FOLD_PAGE_EVENTS)
            if not stored:
                break
            facts = facts_of_stored(stored)
            end = stored[-1][0]
            digest.update(facts)
            # None only if the log lost the position since it was read: the next load then rebuilds again.
            log_hash = _log_hash_at(self.ledger, end) or b""
            if not self.store.write(new, facts, position, end, digest=digest.digest(), log_hash=log_hash):
                raise RuntimeError(f"version {new} was written by another rebuild at the same time")
            fresh.add(facts)
            position = end
            if progress is not None:
                progress(len(stored))
        return position, fresh, digest, log_hash

    def verify_read_models(self) -> list[TableFinding]:
        """What `verify --read-models` reports, and whether this process's index agrees with the log: the
        persisted facts and tracking row of the current version against a refold of the log, and the
        standings of the in-memory index against those of the refold at the index's position."""
        with self._lock:
            standings = None if self._damage is not None else standings_of(self.index, self.ledger.today())
            version = self.version
        findings = read_model_findings(self.ledger, self.store, standings=standings, index_version=version)
        # A disagreement found here (a fact forged with its digest recomputed, which no load can tell from
        # the log's) is repaired as one found at load: stop serving, rebuild.
        damage = [f for f in findings if f.table != "projection_meta" or f.row != "upgrade_claim"]
        if damage and self._damage is None:
            first = damage[0]
            self._damaged(
                ReadModelsDamaged(
                    version,
                    self.index.position,
                    f"verify found {first.table} {first.row}: {first.reason}: {first.detail}",
                )
            )
        if self._damage is not None:
            if self._repair_in_background:
                self._start_repair()
            else:
                with self._lock, contextlib.suppress(ReadModelsRebuilding):
                    self._keep(repair_in_background=False)
        return findings

    # Reading: the common part.

    def _read_position(self, known_at: KnownAt, min_position: int | None) -> int:
        if min_position is not None:
            self.wait_for(min_position)
        else:
            self.catch_up()
        if known_at is None:
            return self.index.position
        if isinstance(known_at, datetime):
            return min(self.ledger.known_position(known_at), self.index.position)
        if known_at < 0:
            raise InvalidInput("a position is 0 or more", field="known_at", rule="known_at_out_of_range")
        return min(known_at, self.index.position)

    @functools.cached_property
    def read_cache(self) -> ReadCache:
        """Snapshots and the orders ranked from them, kept for the next reads (`snapshots.py`): the pages
        of a ranking after the first, and the periods an escalation looks back at, are not recomputed.
        `read_cache.clear()` forgets them; the reads that follow answer the same, recomputed."""
        return ReadCache()

    def _snapshot(self, as_of: date, known_at: int, since: date | None = None) -> Snapshot:
        return self.read_cache.snapshot(
            self.index, day(as_of), known_at, None if since is None else day(since)
        )

    def _snapshot_key(self, as_of: date, known_at: int, since: date | None) -> tuple[Any, ...]:
        """What a snapshot is kept by (see `ReadCache.snapshot`), without computing it."""
        return (
            day(as_of),
            min(known_at, self.index.position),
            None if since is None else day(since),
            len(self.index.cadres),
        )

    def _pooled(self, snapshot: Snapshot, scope: str) -> tuple[Array, Array, Array]:
        """The active cadres of a scope ranked, grouped by pool: one pool, or for unit:* one per unit in
        unit code order, each ranked on its own (order, competition ranks, pool of each). Kept per
        snapshot: the same pools serve every page, board and period that reads them."""

        def compute() -> tuple[Array, Array, Array]:
            if scope == EACH_UNIT:
                members = np.flatnonzero(snapshot.active)
                pools = snapshot.unit[members].astype(np.int64)
            else:
                members = snapshot.members(scope)
                pools = np.zeros(members.size, dtype=np.int64)
            policy = policy_at(self.index, from_day(snapshot.as_of_day), snapshot.known_at)
            ranked = rank_pools(snapshot, members, pools, tuple(policy.ranking.tie_breakers))
            for array in ranked:
                array.setflags(write=False)  # shared by later reads
            return ranked

        return self.read_cache.derived(self.index, ("pooled", _key_of(snapshot), scope), compute)

    def _period_snapshot(self, span: Period, basis: str, known_at: int) -> Snapshot:
        """The standings of a period read as of its last day: whole totals, or the period's points."""
        return self._snapshot(span.last_day, known_at, span.first_day if basis == "period" else None)

    def _code(self, cadre_id: str, snapshot: Snapshot) -> int:
        code = self.index.cadre_codes.get(cadre_id)
        if code is None or not snapshot.known[code]:
            raise NotFound(
                f"no cadre {cadre_id} as of {from_day(snapshot.as_of_day)} "
                f"known at position {snapshot.known_at}"
            )
        return code

    def _scope(self, scope: str, *, each_unit: bool = False) -> str:
        """Validate a scope: all, unit:<id>, grade:<title>, cohort:principal, cohort:left_leadership
        (and unit:* — every unit — where `each_unit`)."""
        if scope in ("all", "cohort:principal", "cohort:left_leadership"):
            return scope
        if scope == EACH_UNIT and each_unit:
            return scope
        if scope.startswith("unit:") and scope != EACH_UNIT:
            if scope[5:] not in self.index.unit_codes:
                raise NotFound(f"no unit {scope[5:]}")
            return scope
        if scope.startswith("grade:"):
            if scope[6:] not in GRADES:
                raise InvalidInput(f"{scope[6:]!r} is not a grade title", field="scope", rule="scope_invalid")
            return scope
        accepted = "all, unit:<id>, grade:<title>, cohort:principal, cohort:left_leadership"
        raise InvalidInput(
            f"{scope!r} is not a scope: use {accepted}" + (" or unit:*" if each_unit else ""),
            field="scope",
            rule="scope_invalid",
        )

    def _pinned_scope(self, scope: str) -> str:
        """The scope a cursor pins, validated as a scope: anything else is not a cursor given out here."""
        try:
            return self._scope(scope)
        except (InvalidInput, NotFound):
            raise cursor_invalid() from None

    def _pinned_position(self, position: int) -> None:
        """Refuse a cursor read at a position the log has not reached: no page was given out there (as the
        history's cursors are refused)."""
        head = self.ledger.head()
        if position > head:
            raise cursor_invalid(f"this cursor was read at position {position}, beyond the log's head {head}")

    def _ranked(self, snapshot: Snapshot, scope: str) -> tuple[Array, Array]:
        """The active cadres of one scope in ranking order, with their competition ranks."""
        order, ranks, _pools = self._pooled(snapshot, scope)
        return order, ranks

    def _bottoms(
        self, snapshot: Snapshot, scope: str, pool_size_min: int, size: Callable[[int], int]
    ) -> Array:
        """Mask over `_pooled(snapshot, scope)` of the bottom `size(pool)` of each pool of at least
        `pool_size_min` cadres (ties at the edge included: `views.bottom` for every pool at once)."""
        _order, ranks, pools = self._pooled(snapshot, scope)
        _starts, lengths = group_bounds(pools)
        sizes = np.array([size(int(length)) for length in lengths], dtype=np.int64)
        large_enough = np.repeat(lengths >= pool_size_min, lengths)
        chosen: Array = bottom_of_groups(ranks, pools, sizes) & large_enough
        return chosen

    def _identity(self, snapshot: Snapshot, code: int) -> dict[str, str]:
        """Who a cadre is in a read: its id, name and unit as of the snapshot."""
        cadre = self.index.cadres[code]
        return {
            "cadre_id": cadre.cadre_id,
            "name": cadre.name,
            "unit_id": self.index.unit_ids[int(snapshot.unit[code])],
        }

    @staticmethod
    def _period(period: str) -> Period:
        try:
            return parse_period(period)
        except ValueError as error:
            raise InvalidInput(str(error), field="period", rule="period_invalid") from None

    def _echo(self, known_at: KnownAt, position: int) -> int | datetime:
        return known_at if isinstance(known_at, datetime) else position

    # Reads.

    def cadre(
        self,
        cadre_id: str,
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> CadreView:
        """A cadre's profile and standing."""
        as_of = as_of or self.ledger.today()
        with self._lock:
            position = self._read_position(known_at, min_position)
            snapshot = self._snapshot(as_of, position)
            code = self._code(cadre_id, snapshot)
            cadre = self.index.cadres[code]
            departed = int(snapshot.departed_day[code])
            return CadreView(
                cadre_id=cadre_id,
                name=cadre.name,
                unit_id=self.index.unit_ids[int(snapshot.unit[code])],
                grade=GRADES[int(snapshot.grade[code])],
                status="active" if departed < 0 else "departed",
                leadership=bool(snapshot.leadership[code]),
                principal=bool(snapshot.principal[code]),
                left_leadership=bool(snapshot.left_leadership[code]),
                registered_on=from_day(cadre.registered_day),
                departed_on=from_day(departed) if departed >= 0 else None,
                total=points_of_cents(int(snapshot.totals[code])),
                components=components_of(snapshot, code),
                as_of=as_of,
                known_at=self._echo(known_at, position),
                position=position,
            )

    def rankings(
        self,
        scope: str = "all",
        *,
        as_of: date | None = None,
        period: str | None = None,
        basis: str = "total",
        known_at: KnownAt = None,
        min_position: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RankingsView:
        """Competition ranking of a scope, with the previous period's rank and the movement.

        With `period`, the ranking is read as of its last day and compared with the period before; with
        `as_of`, compared with the last day of the quarter before the one containing `as_of`. `basis`
        `total` ranks cumulative totals; `period` ranks the points of the period (with `as_of`: of its
        quarter, from its first day through `as_of`), the previous ranking those of the period before. A
        cursor pins the scope, basis, dates and log position of the first page, so pages stay consistent.
        """
        offset = 0
        previous_as_of: date | None = None
        since: date | None = None
        previous_since: date | None = None
        from_cursor = cursor is not None
        if cursor is not None:
            pinned = decode_cursor(cursor, RankingsCursor)
            agree(scope, "all", pinned.scope, "scope")
            agree(basis, "total", pinned.basis, "basis")
            agree(
                None if period is None else self._period(period).name, None, pinned.period or None, "period"
            )
            agree(as_of, None, pinned.as_of, "as_of")
            if pinned.basis not in BASES:
                raise cursor_invalid()
            self._pinned_position(pinned.position)
            scope, basis, as_of, known_at, offset = (
                pinned.scope,
                pinned.basis,
                pinned.as_of,
                pinned.position,
                pinned.offset,
            )
            period, min_position = pinned.period or None, None
        basis = _basis(basis)
        try:
            if period is not None:
                span = self._period(period)
                if from_cursor and span.last_day != as_of:
                    raise cursor_invalid()
                period = span.name
                as_of, previous_as_of = span.last_day, span.previous().last_day
                if basis == "period":
                    since, previous_since = span.first_day, span.previous().first_day
            else:
                as_of = as_of or self.ledger.today()
                quarter = period_containing("quarter", as_of)
                previous_as_of = quarter.previous().last_day
                if basis == "period":
                    since, previous_since = quarter.first_day, quarter.previous().first_day
        except InvalidInput:
            if from_cursor:
                raise cursor_invalid() from None
            raise
        except ValueError as error:
            if from_cursor:
                raise cursor_invalid() from None
            raise InvalidInput(
                str(error), field="period" if period else "as_of", rule="period_invalid"
            ) from None
        assert as_of is not None and previous_as_of is not None
        limit = _page_size(limit)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._pinned_scope(scope) if from_cursor else self._scope(scope)
            snapshot = self._snapshot(as_of, position, since)
            # A later page finds its first page's snapshot and orders kept (`snapshots.py`).
            order, ranks = self._ranked(snapshot, scope)
            if from_cursor and offset >= len(order):
                raise cursor_invalid("this cursor points past the end of its ranking")
            previous = self._snapshot(previous_as_of, position, previous_since)
            previous_order, previous_ranks = self._ranked(previous, scope)
            end = len(order) if limit is None else min(len(order), offset + limit)
            entries = self._ranking_entries(
                snapshot, order[offset:end], ranks[offset:end], previous_order, previous_ranks
            )
            next_cursor = (
                encode_cursor(RankingsCursor("rankings", scope, basis, period or "", as_of, position, end))
                if end < len(order)
                else None
            )
            return RankingsView(
                scope=scope,
                as_of=as_of,
                basis=basis,
                since=since,
                known_at=self._echo(known_at, position),
                position=position,
                previous_as_of=previous_as_of,
                entries=entries,
                next_cursor=next_cursor,
            )

    def _ranking_entries(
        self,
        snapshot: Snapshot,
        codes_array: Array,
        ranks: Array,
        previous_order: Array,
        previous_ranks: Array,
    ) -> list[RankingEntry]:
        """The entries of a page of a ranking. Built from plain lists: a ranking of the whole city has
        thousands of entries and seven figures each, and per-item NumPy access would dominate the read."""
        previous = np.zeros(snapshot.count, dtype=np.int64)
        previous[previous_order] = previous_ranks
        codes: list[int] = codes_array.tolist()
        figures = decimals_of(
            np.column_stack([snapshot.totals[codes_array], snapshot.components[codes_array]]).ravel().tolist()
        )
        cadres, unit_ids = self.index.cadres, self.index.unit_ids
        units: list[int] = snapshot.unit[codes_array].tolist()
        grades: list[int] = snapshot.grade[codes_array].tolist()
        befores: list[int] = previous[codes_array].tolist()
        entries = []
        for offset, (code, rank_value) in enumerate(zip(codes, ranks.tolist(), strict=True)):
            first = offset * 7
            before = befores[offset] or None
            cadre = cadres[code]
            entries.append(
                RankingEntry(
                    rank_value,
                    cadre.cadre_id,
                    cadre.name,
                    unit_ids[units[offset]],
                    GRADES[grades[offset]],
                    figures[first],
                    Components(*figures[first + 1 : first + 7]),
                    before,
                    None if before is None else before - rank_value,
                )
            )
        return entries

    def eligibility(
        self,
        cadre_id: str,
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
        scope: str = "all",
    ) -> EligibilityView:
        """Whether a cadre may be promoted, with every check that decided it (standing within `scope`)."""
        as_of = as_of or self.ledger.today()
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope)
            snapshot = self._snapshot(as_of, position)
            code = self._code(cadre_id, snapshot)
            checks = self._checks(snapshot, scope, [code])[code]
            return EligibilityView(
                cadre_id=cadre_id,
                as_of=as_of,
                known_at=self._echo(known_at, position),
                position=position,
                eligible=all(check.passed for check in checks),
                checks=checks,
            )

    def _checks(self, snapshot: Snapshot, scope: str, codes: Iterable[int]) -> dict[int, Any]:
        """The eligibility checks of `codes`; standing is ranked on the policy's standing basis (`period`:
        the points of the quarter containing the date, through the date)."""
        policy = policy_at(self.index, from_day(snapshot.as_of_day), snapshot.known_at)
        standing = self._standing(snapshot, policy)
        members = snapshot.members(scope)
        order, ranks = self._ranked(standing, scope)  # the members of `scope`, ranked on the standing
        rank_of = {int(code): int(r) for code, r in zip(order, ranks, strict=True)}
        return {
            code: eligibility_checks(
                self.index,
                snapshot,
                code,
                policy,
                scope_rank=rank_of.get(code),
                pool=len(members),
                standing_snapshot=standing,
            )
            for code in codes
        }

    def _standing(self, snapshot: Snapshot, policy: Policy) -> Snapshot:
        """The standings eligibility ranks on: the snapshot itself for the `total` basis; for `period`, the
        points of the quarter containing its date, through the date."""
        if policy.eligibility.standing.basis != "period":
            return snapshot
        as_of = from_day(snapshot.as_of_day)
        return self._snapshot(as_of, snapshot.known_at, period_containing("quarter", as_of).first_day)

    def shortlist(
        self,
        scope: str = "all",
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ShortlistView:
        """The promotion shortlist: the eligible cadres of a scope, in rank order."""
        offset = 0
        from_cursor = cursor is not None
        if cursor is not None:
            pinned = decode_cursor(cursor, ShortlistCursor)
            agree(scope, "all", pinned.scope, "scope")
            agree(as_of, None, pinned.as_of, "as_of")
            self._pinned_position(pinned.position)
            scope, as_of, known_at, offset = pinned.scope, pinned.as_of, pinned.position, pinned.offset
            min_position = None
        as_of = as_of or self.ledger.today()
        limit = _page_size(limit)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._pinned_scope(scope) if from_cursor else self._scope(scope)
            snapshot = self._snapshot(as_of, position)
            standing = self._standing(snapshot, policy_at(self.index, as_of, position))

            def eligible_of() -> tuple[Array, Array]:
                # In rank order on the standing's basis, as the standing check ranks.
                order, ranks = self._ranked(standing, scope)
                checks = self._checks(snapshot, scope, [int(code) for code in order])
                passed = np.array(
                    [all(check.passed for check in checks[int(code)]) for code in order], dtype=bool
                )
                return order[passed], ranks[passed]

            # Checking every member is most of a shortlist's cost: a later page finds its first page's kept.
            eligible_codes, eligible_ranks = self.read_cache.derived(
                self.index, ("shortlist", _key_of(snapshot), scope), eligible_of
            )
            eligible = list(zip(eligible_codes.tolist(), eligible_ranks.tolist(), strict=True))
            if from_cursor and offset >= len(eligible):
                raise cursor_invalid("this cursor points past the end of its shortlist")
            end = len(eligible) if limit is None else min(len(eligible), offset + limit)
            entries = [
                ShortlistEntry(
                    rank=r,
                    **self._identity(snapshot, code),
                    grade=GRADES[int(snapshot.grade[code])],
                    total=points_of_cents(int(standing.totals[code])),
                )
                for code, r in eligible[offset:end]
            ]
            next_cursor = (
                encode_cursor(ShortlistCursor("shortlist", scope, as_of, position, end))
                if end < len(eligible)
                else None
            )
            return ShortlistView(
                scope=scope,
                as_of=as_of,
                known_at=self._echo(known_at, position),
                position=position,
                entries=entries,
                next_cursor=next_cursor,
            )

    def recalls(
        self,
        period: str,
        scope: str = EACH_UNIT,
        *,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> RecallsView:
        """The 回炉 list of a period: the bottom of each pool of the scope (default: every unit) whose pool is
        large enough, and the recalls open at the period's end."""
        span = self._period(period)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope, each_unit=True)
            policy = policy_at(self.index, span.last_day, position)
            basis = policy.recall.basis

            def lists() -> tuple[list[RecallCandidate], list[OpenRecall]]:
                snapshot = self._period_snapshot(span, basis, position)
                order, ranks, pools = self._pooled(snapshot, scope)
                _starts, lengths = group_bounds(pools)
                pool_sizes = np.repeat(lengths, lengths)
                chosen = self._bottoms(
                    snapshot, scope, policy.recall.pool_size_min, lambda pool: recall_count(policy, pool)
                )
                candidates = [
                    RecallCandidate(
                        **self._identity(snapshot, code),
                        rank=r,
                        pool_size=pool_size,
                        total=points_of_cents(int(snapshot.totals[code])),
                    )
                    for code, r, pool_size in zip(
                        order[chosen].tolist(),
                        ranks[chosen].tolist(),
                        pool_sizes[chosen].tolist(),
                        strict=True,
                    )
                ]
                # Only cadres with a recall ordered can have one open: a few hundred of a city's thousands.
                with_recalls = self.read_cache.derived(
                    self.index,
                    ("recall_cadres", len(self.index.sparse)),
                    lambda: cadres_with_recalls(self.index),
                )
                in_scope = with_recalls.intersection(order.tolist())
                opened = []
                for code in sorted(in_scope, key=lambda c: self.index.cadres[c].cadre_id):
                    for recall in open_recalls(self.index, code, snapshot.as_of_day, position):
                        opened.append(
                            OpenRecall(
                                cadre_id=self.index.cadres[code].cadre_id,
                                ordered_on=recall.ordered_on,
                                period=recall.period,
                                reason=recall.reason,
                            )
                        )
                return candidates, opened

            # Kept with everything it follows from: the next read of this period at this position is free.
            since = span.first_day if basis == "period" else None
            candidates, opened = self.read_cache.derived(
                self.index,
                ("recalls", span.name, self._snapshot_key(span.last_day, position, since), scope),
                lists,
            )
            return RecallsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                # Copies: the kept lists are shared by every read that finds them.
                candidates=list(candidates),
                open_recalls=list(opened),
            )

    def boards(
        self, period: str, scope: str = "all", *, known_at: KnownAt = None, min_position: int | None = None
    ) -> BoardsView:
        """红黑榜 of a period: the top of the scope without vetoed cadres (red) and the bottom (black)."""
        span = self._period(period)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope)
            policy = policy_at(self.index, span.last_day, position)
            basis = policy.boards.basis

            def lists() -> tuple[list[BoardEntry], list[BoardEntry]]:
                snapshot = self._period_snapshot(span, basis, position)
                order, ranks = self._ranked(snapshot, scope)
                year = span.last_day.year
                # Only cadres with a veto recorded for the year can be barred: a handful of thousands.
                vetoed_codes = [
                    code
                    for code, years in self.index.veto_years.items()
                    if year in years and vetoed(self.index, snapshot, code, year)
                ]
                barred = np.isin(order, np.array(vetoed_codes, dtype=np.int64))
                red_mask, black_mask = board_lists(
                    ranks, barred, policy.boards.red_count, policy.boards.black_count
                )
                red = [
                    self._board_entry(snapshot, int(code), int(r))
                    for code, r in zip(order[red_mask], ranks[red_mask], strict=True)
                ]
                black = [
                    self._board_entry(snapshot, int(code), int(r))
                    for code, r in zip(order[black_mask], ranks[black_mask], strict=True)
                ]
                return red, black

            since = span.first_day if basis == "period" else None
            red, black = self.read_cache.derived(
                self.index,
                ("boards", span.name, self._snapshot_key(span.last_day, position, since), scope),
                lists,
            )
            return BoardsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                red=list(red),
                black=list(black),
            )

    def _board_entry(self, snapshot: Snapshot, code: int, rank_value: int) -> BoardEntry:
        return BoardEntry(
            rank=rank_value,
            **self._identity(snapshot, code),
            total=points_of_cents(int(snapshot.totals[code])),
        )

    def escalations(
        self,
        period: str,
        scope: str = EACH_UNIT,
        *,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> EscalationsView:
        """Cadres in the bottom N of their pool for consecutive periods up to `period`, with the ladder step
        their streak reaches and its action (Xiantao: once → commitment speech and summons talk, twice →
        admonishment talk, three times → removal from post)."""
        span = self._period(period)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope, each_unit=True)
            policy = policy_at(self.index, span.last_day, position)
            ladder = sorted(policy.escalation.ladder, key=lambda step: step.step)
            basis = policy.escalation.basis

            def listed() -> list[Escalation]:
                # The same minimum pool as recalls: two cadres of a unit are not its bottom three.
                bottom_count, pool_size_min = policy.escalation.bottom_count, policy.recall.pool_size_min
                streaks: dict[int, int] = {}
                alive: set[int] | None = None
                current = span
                for _ in range(ESCALATION_PERIODS_MAX):

                    def in_bottom_of(current: Period = current) -> frozenset[int]:
                        period_snapshot = self._period_snapshot(current, basis, position)
                        order, _ranks, _pools = self._pooled(period_snapshot, scope)
                        chosen = self._bottoms(
                            period_snapshot, scope, pool_size_min, lambda _pool: bottom_count
                        )
                        return frozenset(order[chosen].tolist())

                    # Each period's bottom is kept: the next read of this period, or of a later one, reuses it
                    # without its snapshot.
                    since = current.first_day if basis == "period" else None
                    in_bottom = self.read_cache.derived(
                        self.index,
                        (
                            "bottom",
                            self._snapshot_key(current.last_day, position, since),
                            scope,
                            bottom_count,
                            pool_size_min,
                        ),
                        in_bottom_of,
                    )
                    alive = set(in_bottom) if alive is None else alive & in_bottom
                    if not alive:
                        break
                    for code in alive:
                        streaks[code] = streaks.get(code, 0) + 1
                    try:
                        current = current.previous()
                    except ValueError:
                        break  # the calendar's first period
                # Units as of the period's last day (whatever the basis: membership does not depend on it).
                snapshot = self._period_snapshot(span, basis, position)
                escalations = []
                for code, streak in sorted(
                    streaks.items(), key=lambda item: (-item[1], self.index.cadres[item[0]].cadre_id)
                ):
                    step = ladder[min(streak, len(ladder)) - 1]
                    escalations.append(
                        Escalation(
                            **self._identity(snapshot, code),
                            streak=streak,
                            step=step.step,
                            action=step.action,
                            label=step.label,
                        )
                    )
                return escalations

            # By the period's name, not only its snapshot: a year, its last quarter and its last month end on
            # one day, and on the total basis read one snapshot, but their streaks count other periods.
            since = span.first_day if basis == "period" else None
            escalations = self.read_cache.derived(
                self.index,
                ("escalations", span.name, self._snapshot_key(span.last_day, position, since), scope),
                listed,
            )
            return EscalationsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                escalations=list(escalations),
            )

    # Units rated by enterprises (市场主体评部门): `unit_reads.py`.

    def _unit_reads(self) -> UnitReads:
        return UnitReads(self.index, self.read_cache, self._echo)

    def unit_rankings(
        self,
        period: str,
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> UnitRankingsView:
        """A period's ranking of units by their ratings (ratings dated by `as_of`, default today), with the
        previous period's rank, the movement and the bottom."""
        span = self._period(period)
        as_of = as_of or self.ledger.today()
        with self._lock:
            position = self._read_position(known_at, min_position)
            return self._unit_reads().rankings(span, as_of, known_at, position)

    def unit_escalations(
        self,
        period: str,
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> UnitEscalationsView:
        """Units in the bottom for consecutive periods up to `period`: the ladder step, its action, the
        principal leader it names and whether its consequence was posted."""
        span = self._period(period)
        as_of = as_of or self.ledger.today()
        with self._lock:
            position = self._read_position(known_at, min_position)
            return self._unit_reads().escalations(span, as_of, known_at, position)

    def unit(
        self,
        unit_id: str,
        *,
        as_of: date | None = None,
        known_at: KnownAt = None,
        min_position: int | None = None,
    ) -> UnitView:
        """A unit's details, its standing in every period it was rated in, and its ratings."""
        as_of = as_of or self.ledger.today()
        with self._lock:
            position = self._read_position(known_at, min_position)
            return self._unit_reads().unit(unit_id, as_of, known_at, position)


class _Abandoned(Exception):
    """Raised inside a rebuild or a wait for one when the process closes: nothing is switched to."""


def _log_problem(
    ledger: Ledger, version: int, position: int, held: bytes, head: tuple[int, bytes] | None = None
) -> ReadModelsDamaged | None:
    """Why the log no longer holds `held` at `position` (what the read models folded last), or None."""
    if position == 0:
        return None
    head_position, head_hash = head if head is not None else _log_head(ledger)
    if head_position < position:
        return ReadModelsDamaged(
            version,
            position,
            f"the log ends at position {head_position}, before the position {position} they folded: "
            "the log went backwards",
        )
    now = head_hash if head_position == position else _log_hash_at(ledger, position)
    if now != held:
        return ReadModelsDamaged(
            version,
            position,
            f"the log holds another event at position {position} (hash {_short(now)}) than the one they "
            f"folded ({_short(held)}): the log was rewritten",
        )
    return None


def _short(value: bytes | None) -> str:
    return "none" if value is None else value.hex()[:16] + "…"


def _settle() -> None:
    """Move the objects of a freshly loaded index out of the garbage collector's sight.

    The index holds hundreds of thousands of long-lived objects; without this, a full collection
    triggered by a read's allocations walks all of them and stalls that read for tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


def _key_of(snapshot: Snapshot) -> tuple[Any, ...]:
    """What a snapshot is kept by (see `ReadCache.snapshot`)."""
    return (snapshot.as_of_day, snapshot.known_at, snapshot.since_day, snapshot.count)


def _page_size(limit: int | None) -> int | None:
    if limit is None:
        return None
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise InvalidInput(
            f"a page holds 1 to {PAGE_SIZE_MAX} entries", field="limit", rule="limit_out_of_range"
        )
    return limit


def _basis(basis: str) -> str:
    if basis not in BASES:
        raise InvalidInput(
            f"{basis!r} is not a ranking basis: use total or period", field="basis", rule="basis_invalid"
        )
    return basis
