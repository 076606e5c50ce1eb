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

import base64
import gc
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any, Final

import msgspec
import numpy as np

from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import GRADES
from ledger.domain.periods import Period, parse_period, period_containing
from ledger.ledger import Ledger
from ledger.policy.schema import BASES, Policy
from ledger.projections.errors import NotCaughtUp
from ledger.projections.facts import FACTS_FORMAT, day, facts_of_stored, from_day
from ledger.projections.index import Array, Index, Snapshot
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
)
from ledger.projections.store import FactStore
from ledger.projections.views import (
    board_lists,
    bottom,
    components_of,
    decimals_of,
    eligibility_checks,
    open_recalls,
    points_of_cents,
    policy_at,
    rank,
    recall_count,
    vetoed,
)

__all__ = ["MIN_POSITION_WAIT_SECONDS_MAX", "PAGE_SIZE_MAX", "Projections"]

MIN_POSITION_WAIT_SECONDS_MAX: Final = 10.0
MIN_POSITION_POLL_SECONDS: Final = 0.02
# How long opening waits for another process's rebuild of read models persisted in an older shape.
UPGRADE_WAIT_SECONDS_MAX: Final = 600.0
UPGRADE_POLL_SECONDS: Final = 0.2
FOLD_PAGE_EVENTS: Final = 10_000
PAGE_SIZE_MAX: Final = 5_000
ESCALATION_PERIODS_MAX: Final = 12
EACH_UNIT: Final = "unit:*"
KnownAt = int | datetime | None


class Projections:
    """Standings, rankings, eligibility, recalls, boards and escalations of one ledger."""

    def __init__(self, ledger: Ledger, store: FactStore) -> None:
        self.ledger = ledger
        self.store = store
        self._lock = threading.RLock()
        self.version = store.current_version()
        self.index = Index()
        if store.facts_format() == FACTS_FORMAT:
            self._load()

    @classmethod
    def open(cls, ledger: Ledger) -> Projections:
        """The read models of `ledger`, loaded from their persisted facts and caught up with the log.

        Facts persisted in another shape (by an older version of the ledger) are rebuilt from the log.
        """
        projections = cls(ledger, FactStore(ledger.url))
        if projections.store.facts_format() != FACTS_FORMAT:
            projections._upgrade()
        projections.catch_up()
        return projections

    def _upgrade(self) -> None:
        """Rebuild facts persisted in an older shape, once: the process that claims the upgrade rebuilds
        and drops every other version; the others wait (bounded) for its version, then load it."""
        if self.store.tracking(self.version) == 0:
            self.store.set_facts_format(FACTS_FORMAT)  # nothing persisted yet
            return
        started = time.monotonic()
        while self.store.facts_format() != FACTS_FORMAT:
            if self.store.claim_upgrade(time.time(), UPGRADE_WAIT_SECONDS_MAX):
                try:
                    if self.store.facts_format() == FACTS_FORMAT:
                        break  # another process finished between the check and the claim
                    self.rebuild()
                    for version in self.store.versions():
                        if version != self.version:
                            self.store.drop_version(version)
                finally:
                    self.store.release_upgrade()
                return
            if time.monotonic() - started > UPGRADE_WAIT_SECONDS_MAX:
                raise NotCaughtUp(self.ledger.head(), 0, UPGRADE_WAIT_SECONDS_MAX)
            time.sleep(UPGRADE_POLL_SECONDS)
        with self._lock:
            self.version = self.store.current_version()
            self._load()

    def close(self) -> None:
        self.store.close()

    # Keeping.

    def _load(self) -> None:
        """Fold the persisted facts of the current version into a fresh index."""
        self.index = Index()
        for page in self.store.load(self.version, 0):
            self.index.add(page)
        _settle()

    def position(self) -> int:
        """The log position the read models have reached."""
        return self.index.position

    def catch_up(self) -> int:
        """Fold every event appended since the last catch-up; the new position."""
        with self._lock:
            state = self.store.state()
            current, tracked = state if state is not None else (self.store.current_version(), 0)
            if current != self.version:
                self.version = current
                self._load()
            elif tracked == self.index.position and self.ledger.head() == tracked:
                return tracked  # nothing new: the common case of a read
            while True:
                tracked = self.store.tracking(self.version)
                if tracked > self.index.position:
                    for page in self.store.load(self.version, self.index.position, tracked):
                        self.index.add(page)
                    continue
                stored = self.ledger.stored(after=tracked, limit=FOLD_PAGE_EVENTS)
                if not stored:
                    return self.index.position
                facts = facts_of_stored(stored)
                if self.store.write(self.version, facts, tracked, stored[-1][0]):
                    self.index.add(facts)

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

        Returns the position the new version reached. The old version's facts are dropped after the switch.
        """
        old = self.store.current_version()
        new = max([*self.store.versions(), old]) + 1
        self.store.drop_version(new)
        self.store.create_version(new)
        fresh = Index()
        position = 0
        while True:
            stored = self.ledger.stored(after=position, limit=FOLD_PAGE_EVENTS)
            if not stored:
                break
            facts = facts_of_stored(stored)
            if not self.store.write(new, facts, position, stored[-1][0]):
                raise RuntimeError(f"version {new} was written by another rebuild at the same time")
            fresh.add(facts)
            position = stored[-1][0]
            if progress is not None:
                progress(len(stored))
        with self._lock:
            self.store.switch(new)
            self.store.set_facts_format(FACTS_FORMAT)
            self.version = new
            self.index = fresh
        _settle()
        self.store.drop_version(old)
        return position

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

    def _snapshot(self, as_of: date, known_at: int, since: date | None = None) -> Snapshot:
        return self.index.snapshot(day(as_of), known_at, None if since is None else day(since))

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

    def _pools(self, snapshot: Snapshot, scope: str) -> list[tuple[str, Array]]:
        """The pools a scope ranks separately: one, or one per unit for unit:*."""
        if scope != EACH_UNIT:
            return [(scope, snapshot.members(scope))]
        active = snapshot.active
        return [
            (f"unit:{unit_id}", np.flatnonzero(active & (snapshot.unit == code)))
            for code, unit_id in enumerate(self.index.unit_ids)
        ]

    def _ranked(self, snapshot: Snapshot, members: Array) -> tuple[Array, Array]:
        policy = policy_at(self.index, from_day(snapshot.as_of_day), snapshot.known_at)
        return rank(snapshot, members, tuple(policy.ranking.tie_breakers))

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
        if cursor is not None:
            scope, as_of, previous_as_of, known_at, offset, basis, since, previous_since = _decode_cursor(
                cursor
            )
            period, min_position = None, None
        basis = _basis(basis)
        try:
            if period is not None:
                span = self._period(period)
                as_of, previous_as_of = span.last_day, span.previous().last_day
                if basis == "period":
                    since, previous_since = span.first_day, span.previous().first_day
            elif cursor is None:
                as_of = as_of or self.ledger.today()
                quarter = period_containing("quarter", as_of)
                previous_as_of = quarter.previous().last_day
                if basis == "period":
                    since, previous_since = quarter.first_day, quarter.previous().first_day
        except ValueError as error:
            raise InvalidInput(
                str(error), field="period" if period else "as_of", rule="period_invalid"
            ) from None
        assert as_of is not None and previous_as_of is not None
        limit = _page_size(limit)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope)
            snapshot = self._snapshot(as_of, position, since)
            order, ranks = self._ranked(snapshot, snapshot.members(scope))
            previous = self._snapshot(previous_as_of, position, previous_since)
            previous_order, previous_ranks = self._ranked(previous, previous.members(scope))
            end = len(order) if limit is None else min(len(order), offset + limit)
            entries = self._ranking_entries(
                snapshot, order[offset:end], ranks[offset:end], previous_order, previous_ranks
            )
            next_cursor = (
                _encode_cursor(
                    scope,
                    as_of,
                    position,
                    end,
                    previous_as_of,
                    basis=basis,
                    since=since,
                    previous_since=previous_since,
                )
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
        order, ranks = self._ranked(standing, members)
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
        if cursor is not None:
            scope, as_of, _previous, known_at, offset, *_basis_and_window = _decode_cursor(cursor)
            min_position = None
        as_of = as_of or self.ledger.today()
        limit = _page_size(limit)
        with self._lock:
            position = self._read_position(known_at, min_position)
            scope = self._scope(scope)
            snapshot = self._snapshot(as_of, position)
            # In rank order on the standing's basis, as the standing check ranks.
            standing = self._standing(snapshot, policy_at(self.index, as_of, position))
            order, ranks = self._ranked(standing, snapshot.members(scope))
            checks = self._checks(snapshot, scope, [int(code) for code in order])
            eligible = [
                (int(code), int(r))
                for code, r in zip(order, ranks, strict=True)
                if all(check.passed for check in checks[int(code)])
            ]
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
            next_cursor = _encode_cursor(scope, as_of, position, end) if end < len(eligible) else None
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
            snapshot = self._period_snapshot(span, basis, position)
            candidates: list[RecallCandidate] = []
            in_scope: set[int] = set()
            for _pool_scope, members in self._pools(snapshot, scope):
                in_scope.update(int(code) for code in members)
                if len(members) < policy.recall.pool_size_min:
                    continue
                order, ranks = self._ranked(snapshot, members)
                chosen = bottom(ranks, recall_count(policy, len(members)))
                for code_value, r in zip(order[chosen], ranks[chosen], strict=True):
                    code = int(code_value)
                    candidates.append(
                        RecallCandidate(
                            **self._identity(snapshot, code),
                            rank=int(r),
                            pool_size=len(members),
                            total=points_of_cents(int(snapshot.totals[code])),
                        )
                    )
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
            return RecallsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                candidates=candidates,
                open_recalls=opened,
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
            snapshot = self._period_snapshot(span, basis, position)
            order, ranks = self._ranked(snapshot, snapshot.members(scope))
            year = span.last_day.year
            barred = np.array([vetoed(self.index, snapshot, int(code), year) for code in order], dtype=bool)
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
            return BoardsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                red=red,
                black=black,
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
            streaks: dict[int, int] = {}
            alive: set[int] | None = None
            current = span
            for _ in range(ESCALATION_PERIODS_MAX):
                snapshot = self._period_snapshot(current, basis, position)
                in_bottom: set[int] = set()
                for _pool_scope, members in self._pools(snapshot, scope):
                    # The same minimum pool as recalls: two cadres of a unit are not its bottom three.
                    if len(members) < policy.recall.pool_size_min:
                        continue
                    order, ranks = self._ranked(snapshot, members)
                    chosen = bottom(ranks, policy.escalation.bottom_count)
                    in_bottom.update(int(code) for code in order[chosen])
                alive = in_bottom if alive is None else alive & in_bottom
                if not alive:
                    break
                for code in alive:
                    streaks[code] = streaks.get(code, 0) + 1
                try:
                    current = current.previous()
                except ValueError:
                    break  # the calendar's first period
            snapshot = self._snapshot(span.last_day, position)
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
            return EscalationsView(
                period=span.name,
                scope=scope,
                as_of=span.last_day,
                basis=basis,
                known_at=self._echo(known_at, position),
                position=position,
                escalations=escalations,
            )


def _settle() -> None:
    """Move the objects of a freshly loaded index out of the garbage collector's sight.

    The index holds hundreds of thousands of long-lived objects; without this, a full collection
    triggered by a read's allocations walks all of them and stalls that read for tens of milliseconds.
    """
    gc.collect()
    gc.freeze()


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


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _encode_cursor(
    scope: str,
    as_of: date,
    position: int,
    offset: int,
    previous_as_of: date | None = None,
    *,
    basis: str = "total",
    since: date | None = None,
    previous_since: date | None = None,
) -> str:
    """An opaque cursor pinning what the first page was read at, so later pages stay consistent."""
    raw = msgspec.json.encode(
        [
            scope,
            as_of.isoformat(),
            _iso(previous_as_of),
            position,
            offset,
            basis,
            _iso(since),
            _iso(previous_since),
        ]
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


Cursor = tuple[str, date, date | None, int, int, str, date | None, date | None]


def _decode_cursor(cursor: str) -> Cursor:
    """`(scope, as_of, previous_as_of, position, offset, basis, since, previous_since)` of a cursor this
    module gave out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        scope, as_of, previous, position, offset, basis, since, previous_since = msgspec.json.decode(
            raw, type=tuple[str, str, str, int, int, str, str, str]
        )
        pinned_as_of = date.fromisoformat(as_of)
        dates = [date.fromisoformat(value) if value else None for value in (previous, since, previous_since)]
    except (ValueError, msgspec.MsgspecError):
        raise InvalidInput(
            "not a cursor this ledger gave out", field="cursor", rule="cursor_invalid"
        ) from None
    if position < 0 or offset < 0 or basis not in BASES:
        raise InvalidInput("not a cursor this ledger gave out", field="cursor", rule="cursor_invalid")
    return scope, pinned_as_of, dates[0], position, offset, basis, dates[1], dates[2]
