"""The read models' reads: every view of the index, as of a date and as known at a position.

`Reads` is the reading half of `Projections` (`service.py` keeps the index: loading, catching up,
persisting, repairing, rebuilding). Every read takes `as_of` (a date, default today in the ledger's time
zone), `known_at` (an instant or a log position, default now) and `min_position` (wait, bounded, until the
read models reach it, else `NotCaughtUp`), and answers with the log position it reflects.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import GRADES
from ledger.domain.periods import Period, parse_period, period_containing
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
from ledger.projections.facts import day, from_day
from ledger.projections.index import Array, Index, Snapshot, Window
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

__all__ = ["ESCALATION_PERIODS_MAX", "PAGE_SIZE_MAX", "KnownAt", "Reads"]

PAGE_SIZE_MAX: Final = 5_000
ESCALATION_PERIODS_MAX: Final = 12
EACH_UNIT: Final = "unit:*"
KnownAt = int | datetime | None


class Reads:
    """The views of a kept index. `Projections` provides the index and keeps it caught up."""

    ledger: Ledger
    index: Index
    _lock: threading.RLock

    if TYPE_CHECKING:  # kept by `Projections`

        def catch_up(self) -> int: ...

        def wait_for(self, min_position: int, *, timeout: float = ...) -> int: ...

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

    def _snapshot(
        self, as_of: date, known_at: int, since: date | None = None, *, recorded: Array | None = None
    ) -> Snapshot:
        return self.read_cache.snapshot(
            self.index, day(as_of), known_at, None if since is None else day(since), recorded=recorded
        )

    def _snapshot_key(self, as_of: date, known_at: int, since: date | None) -> tuple[Any, ...]:
        """What a snapshot is kept by (see `ReadCache.snapshot`), without computing it."""
        return (
            day(as_of),
            self.index.settled(day(as_of), known_at),
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

    def _period_snapshot(
        self, span: Period, basis: str, known_at: int, *, recorded: Array | None = None
    ) -> Snapshot:
        """The standings of a period read as of its last day: whole totals, or the period's points."""
        return self._snapshot(span.last_day, known_at, _since(span, basis), recorded=recorded)

    def _code(self, cadre_id: str, snapshot: Snapshot, position: int) -> int:
        """The cadre's code, if the snapshot knows it; the message names the position read (`position`),
        not the earlier one the snapshot is kept under (`Index.settled`)."""
        code = self.index.cadre_codes.get(cadre_id)
        if code is None or not snapshot.known[code]:
            raise NotFound(
                f"no cadre {cadre_id} as of {from_day(snapshot.as_of_day)} known at position {position}"
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
            code = self._code(cadre_id, snapshot, position)
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
        """The entries of a page of a ranking. Built column by column from plain lists, each struct by
        `map`: a ranking of the whole city has thousands of entries and seven figures each, and per-item
        NumPy access, or a Python loop per entry, would dominate the read."""
        previous = np.zeros(snapshot.count, dtype=np.int64)
        previous[previous_order] = previous_ranks
        cadres = list(map(self.index.cadres.__getitem__, codes_array.tolist()))
        rank_values: list[int] = ranks.tolist()
        befores = [before or None for before in previous[codes_array].tolist()]
        figures = [decimals_of(column) for column in snapshot.components[codes_array].T.tolist()]
        return list(
            map(
                RankingEntry,
                rank_values,
                [cadre.cadre_id for cadre in cadres],
                [cadre.name for cadre in cadres],
                map(self.index.unit_ids.__getitem__, snapshot.unit[codes_array].tolist()),
                map(GRADES.__getitem__, snapshot.grade[codes_array].tolist()),
                decimals_of(snapshot.totals[codes_array].tolist()),
                map(Components, *figures),
                befores,
                [
                    None if before is None else before - rank_value
                    for before, rank_value in zip(befores, rank_values, strict=True)
                ],
            )
        )

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
            code = self._code(cadre_id, snapshot, position)
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
            since = _since(span, basis)
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

            since = _since(span, basis)
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

                def bottom_key(current: Period) -> tuple[Any, ...]:
                    return (
                        "bottom",
                        self._snapshot_key(current.last_day, position, _since(current, basis)),
                        scope,
                        bottom_count,
                        pool_size_min,
                    )

                # The periods a streak can reach, and the recorded sums of those whose bottom is not
                # kept, computed together: one pass over the scores instead of one per period. A period's
                # snapshot is made from them only if the streak reaches it.
                periods = _periods_back_from(span, ESCALATION_PERIODS_MAX)
                windows = [
                    _window(current, basis)
                    for current in periods
                    if not self.read_cache.kept(self.index, bottom_key(current))
                ]
                count = len(self.index.cadres)
                recorded = dict(
                    zip(windows, self.index.sums.recorded_of_windows(windows, position, count), strict=True)
                )
                streaks: dict[int, int] = {}
                alive: set[int] | None = None
                for current in periods:

                    def in_bottom_of(current: Period = current) -> frozenset[int]:
                        period_snapshot = self._period_snapshot(
                            current, basis, position, recorded=recorded.get(_window(current, basis))
                        )
                        order, _ranks, _pools = self._pooled(period_snapshot, scope)
                        chosen = self._bottoms(
                            period_snapshot, scope, pool_size_min, lambda _pool: bottom_count
                        )
                        return frozenset(order[chosen].tolist())

                    # Each period's bottom is kept: the next read of this period, or of a later one, reuses it
                    # without its snapshot.
                    in_bottom = self.read_cache.derived(self.index, bottom_key(current), in_bottom_of)
                    alive = set(in_bottom) if alive is None else alive & in_bottom
                    if not alive:
                        break
                    for code in alive:
                        streaks[code] = streaks.get(code, 0) + 1
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
            since = _since(span, basis)
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


def _periods_back_from(span: Period, count: int) -> list[Period]:
    """`span` and the periods before it, at most `count` in all (fewer at the calendar's start)."""
    periods = [span]
    while len(periods) < count:
        try:
            periods.append(periods[-1].previous())
        except ValueError:
            break  # the calendar's first period
    return periods


def _since(span: Period, basis: str) -> date | None:
    """The first day whose points a period's standings count: its own on the period basis, every day's
    (None) on the total basis."""
    return span.first_day if basis == "period" else None


def _window(span: Period, basis: str) -> Window:
    """The (as_of_day, since_day) a period's standings are read at (`Index.snapshots`)."""
    since = _since(span, basis)
    return day(span.last_day), None if since is None else day(since)
