"""The read models' face: one object that keeps every projection and answers every read.

    projections = Projections.open(ledger)          # loads the persisted facts, catches up with the log
    projections.rankings("unit:U01", period="2025Q4")

Keeping: `catch_up()` reads the events after the tracked position, turns each into its fact, writes the
facts and the new position in one transaction (see `store.py`) and folds them into the in-memory index.
Several processes may keep the same read models; each folds what the winner wrote.

Reading (`reads.py`, the `Reads` half of the class): every read takes `as_of` (a date, default today in the
ledger's time zone), `known_at` (an instant or a log position, default now) and `min_position` (wait,
bounded, until the read models reach it, else `NotCaughtUp`), and answers with the log position it
reflects.

Rebuilding: `rebuild()` folds the whole log into a new version while the current one keeps serving, then
switches; every process notices the switch on its next catch-up and reloads.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy.exc import DBAPIError

from ledger.integrity.chain import GENESIS_HASH
from ledger.ledger import Ledger
from ledger.projections.errors import NotCaughtUp, ReadModelsDamaged, ReadModelsRebuilding
from ledger.projections.facts import FACTS_FORMAT, Fact, FactsDigest, facts_of_stored
from ledger.projections.index import Index
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
from ledger.projections.reads import PAGE_SIZE_MAX, Reads
from ledger.projections.store import (
    CLAIM_STALE_SECONDS,
    POSITION_MIN,
    FactStore,
    Tracking,
    fact_of_row,
    facts_table,
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

logger = logging.getLogger("ledger.projections")


class Projections(Reads):
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

    def save_index(self) -> None:
        """Write the index file now, whatever the tail (after seeding or an import: the next open then maps
        it instead of loading every fact from the table)."""
        with self._lock:
            self._persist()

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
