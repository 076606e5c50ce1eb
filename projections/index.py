"""The in-memory index: facts as NumPy columns answering "as of a date, as known at a moment" in milliseconds.

A read at (as_of, known_at) sees the facts with `position ≤ known_at` and `counts_from ≤ as_of` that no
reversal known at `known_at` has taken back. Positions only grow, so "known at" is a prefix of each column
(a binary search); the rest is one vectorized mask and one `bincount` over the prefix. Lifecycle changes
(unit, grade, status) are few and resolved per read with a sort; sparse facts (appraisals, gates, recalls,
vetoes, investigations) are kept per cadre for eligibility.

Beside it: the columns (`columns.py`), the sums over the score columns (`sums.py`: points as integer cents,
turned back into Decimal only at the edge) and the counting rules read from the facts (`counting_rules.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ledger.domain.events import GRADES, RESULTS
from ledger.policy.book import PolicyBook
from ledger.policy.load import load_policy
from ledger.projections.columns import Columns
from ledger.projections.counting_rules import CountingRules
from ledger.projections.facts import (
    COMPONENT_OF_KIND,
    COMPONENTS,
    NEVER,
    NO_COMPONENT,
    Fact,
    Kind,
    day,
    from_day,
    integer,
)
from ledger.projections.sums import ScoreSums
from ledger.projections.unit_index import UNIT_KINDS, UnitIndex

__all__ = ["NEVER", "Index", "Snapshot"]

COMPONENT_COUNT: Final = len(COMPONENTS)
GRADE_CODES: Final[dict[str, int]] = {title: code for code, title in enumerate(GRADES)}
RESULT_CODES: Final[dict[str, int]] = {result: code for code, result in enumerate(RESULTS)}
EXCELLENT: Final = RESULT_CODES["excellent"]
MERIT_COMPONENT: Final = COMPONENTS.index("merit")
APPRAISAL_COMPONENT: Final = COMPONENTS.index("appraisal")

# A window of valid dates read: (as_of_day, since_day), since_day None for everything up to as_of_day.
Window = tuple[int, int | None]

Array = npt.NDArray[Any]


@dataclass(slots=True)
class Cadre:
    """What never changes about a cadre once registered (registrations cannot be reversed)."""

    code: int
    cadre_id: str
    name: str
    position: int
    registered_day: int
    service_started_day: int
    leadership: bool
    principal: bool
    sparse: list[Fact] = field(default_factory=list)


class Snapshot:
    """Standings of every cadre at one (as_of, known_at): arrays indexed by cadre code.

    With `since_day`, totals and components count only the points whose valid date lies in
    [since_day, as_of] (the `period` basis); membership, unit, grade and status are always as of `as_of`.
    Totals count what each event counts after the counting rules (`ledger.policy.counting`): awards a
    veto bars, appraisals a sanction or an investigation lowers.
    """

    def __init__(
        self,
        index: Index,
        as_of_day: int,
        known_at: int,
        since_day: int | None = None,
        *,
        sums: tuple[Array, Array] | None = None,
    ) -> None:
        """`sums`: this window's `index.sums`, when computed with other windows' (`Index.snapshots`)."""
        self.index = index
        self.as_of_day = as_of_day
        self.known_at = known_at
        self.since_day = since_day
        count = len(index.cadres)
        self.count = count
        registrations = index.registrations
        self.known = (registrations["position"] <= known_at) & (registrations["day"] <= as_of_day)
        self.totals, self.components = (
            sums if sums is not None else index.sums.counted(as_of_day, known_at, count, since_day)
        )
        self.departed_day = index.first_change(index.departures, as_of_day, known_at, count)
        self.left_leadership = index.first_change(index.left_leadership, as_of_day, known_at, count) >= 0
        self.unit = index.latest_value(index.units, as_of_day, known_at, count)
        grade_rows = index.latest_row(index.grades, as_of_day, known_at, count)
        self.grade = np.where(grade_rows >= 0, index.grades["value"][grade_rows], -1)
        self.grade_since_day = np.where(grade_rows >= 0, index.grades["order_day"][grade_rows], 0)
        self.active = self.known & (self.departed_day < 0)
        leadership = registrations["leadership"] & ~self.left_leadership
        self.leadership = leadership
        self.principal = (index.latest_value(index.principals, as_of_day, known_at, count) == 1) & leadership
        self.excellent = index.count_excellent(as_of_day, known_at, count)
        for code, counted in index.counting.counted_appraisals_all(as_of_day, known_at).items():
            for fact, result in counted:  # only appraisals counting another result than recorded
                self.excellent[code] += int(result.result == "excellent") - int(fact.detail[1] == "excellent")

    @functools.cached_property
    def components_list(self) -> list[list[int]]:
        """The components as Python integers (faster to read one cadre at a time than NumPy scalars)."""
        rows: list[list[int]] = self.components.tolist()
        return rows

    def members(self, scope: str) -> Array:
        """Codes of the active cadres in `scope` (validated by the caller)."""
        if scope == "all":
            mask = self.active
        elif scope.startswith("unit:"):
            unit = self.index.unit_codes.get(scope[5:], -1)
            mask = self.active & (self.unit == unit)
        elif scope.startswith("grade:"):
            grade = GRADE_CODES.get(scope[6:], -2)
            mask = self.active & (self.grade == grade)
        elif scope == "cohort:principal":
            mask = self.active & self.principal
        elif scope == "cohort:left_leadership":
            mask = self.active & self.left_leadership
        else:  # pragma: no cover - scopes are parsed before
            raise ValueError(scope)
        return np.flatnonzero(mask)


class Index:
    """Every fact of the log, folded into columns; `position` is how far it has folded."""

    def __init__(self) -> None:
        self.position = 0
        self.cadres: list[Cadre] = []
        self.cadre_codes: dict[str, int] = {}
        self.unit_ids: list[str] = []
        self.unit_codes: dict[str, int] = {}
        self.policies = PolicyBook()
        self.policy_facts: list[Fact] = []  # as folded, so that a persisted index can restore the book
        self.scores = Columns(
            {
                "position": np.int64,
                "counts_from": np.int32,
                "key": np.int64,
                "cents": np.int64,
                # The same cents as float64 (exact below 2**53), ready for bincount's weights.
                "cents_float": np.float64,
                "reversed_at": np.int64,
                # A merit's award (AWARD_CODES), else -1: a veto may bar it.
                "award": np.int8,
            }
        )
        self.registrations = Columns(
            {
                "position": np.int64,
                "day": np.int32,
                "leadership": np.bool_,
                "principal": np.bool_,
                "service_started_day": np.int32,
            }
        )

        changes = {
            "position": np.int64,
            "cadre": np.int32,
            "day": np.int32,
            "order_day": np.int32,
            "value": np.int32,
            "reversed_at": np.int64,
        }
        self.units = Columns(changes)
        self.grades = Columns(changes)
        self.departures = Columns(changes)
        self.left_leadership = Columns(changes)
        # Whether a cadre is its unit's principal leader (1) or not (0): from the registration, changed by a
        # transfer that says so.
        self.principals = Columns(changes)
        self.appraisals = Columns(
            {
                "position": np.int64,
                "cadre": np.int32,
                "day": np.int32,
                "value": np.int32,
                "reversed_at": np.int64,
            }
        )
        # Sparse facts (appraisals, deductions, recalls, vetoes, investigations) by position, for reversals.
        self.sparse: dict[int, Fact] = {}
        self.sparse_reversed_at: dict[int, int] = {}
        # Rows of the score columns that a reversal has taken back (few: a fraction of a percent).
        self.reversed_rows: list[int] = []
        self._order_cache: tuple[int, Array] | None = None
        self._barriers: tuple[int, Array] | None = None
        # The years in which each cadre has a veto (in force or not), and the score rows of its merits
        # dated in those years: the only awards a veto can bar.
        self.veto_years: dict[int, set[int]] = {}
        self.veto_candidates: set[int] = set()
        # Cadres with a deduction that caps appraisals, or an investigation: their appraisals may count
        # another result than recorded. Per read, only their appraisals are recounted.
        self.appraisal_sensitive: set[int] = set()
        # Units rated by enterprises: their ratings' columns, registrations and panels.
        self.rated = UnitIndex(Columns)
        # What a veto or a sanction makes other facts count (`counting_rules.py`), and the pass over the
        # score columns every snapshot makes (`sums.py`).
        self.counting = CountingRules(self)
        self.sums = ScoreSums(self)

    # Folding facts in.

    def add(self, facts: Iterable[Fact]) -> None:
        """Fold facts (in position order; those at or before `self.position` are skipped)."""
        positions: list[int] = []
        counts_from: list[int] = []
        keys: list[int] = []
        cents: list[int] = []
        awards: list[int] = []
        pending_reversals: list[Fact] = []
        pending_vetoes: list[Fact] = []
        unit_facts: list[Fact] = []
        cadre_codes = self.cadre_codes
        veto_years = self.veto_years
        first_row = self.scores.size
        last = self.position
        for fact in facts:
            position, kind = fact.position, fact.kind
            if position <= last:
                continue
            last = position
            if kind in _SCORE_ONLY_KINDS:
                # Tenure, merit and evaluation facts are nearly all of a log: the short path.
                code = cadre_codes[fact.cadre]  # type: ignore[index]
                if (
                    kind == Kind.MERIT
                    and code in veto_years
                    and from_day(fact.counts_from).year in veto_years[code]
                ):
                    self.veto_candidates.add(first_row + len(positions))
                awards.append(fact.award)
                positions.append(position)
                counts_from.append(fact.counts_from)
                keys.append(code * COMPONENT_COUNT + COMPONENT_OF_KIND[kind])
                cents.append(fact.cents)
            elif kind == Kind.REVERSAL:
                pending_reversals.append(fact)
            elif kind == Kind.POLICY:
                self.add_policy(fact)
            elif kind == Kind.KEY:
                pass  # an API key's event: it only moves the position folded
            elif kind in UNIT_KINDS:
                unit_facts.append(fact)
            else:
                code = self._cadre_code(fact)
                component = COMPONENT_OF_KIND.get(kind, NO_COMPONENT)
                if component != NO_COMPONENT:
                    positions.append(position)
                    counts_from.append(fact.counts_from)
                    keys.append(code * COMPONENT_COUNT + component)
                    cents.append(fact.cents)
                    awards.append(-1)
                self._add_lifecycle(fact, code)
                if kind == Kind.VETO:
                    pending_vetoes.append(fact)
        self.position = last
        self.scores.append(
            {
                "position": positions,
                "counts_from": counts_from,
                "key": keys,
                "cents": cents,
                "cents_float": cents,
                "reversed_at": [NEVER] * len(positions),
                "award": awards,
            }
        )
        if unit_facts:
            self.rated.add(unit_facts, self._unit_code)
        for veto in pending_vetoes:
            self._add_veto_year(veto)
        for reversal in pending_reversals:
            self.reverse(reversal.target, reversal.position)

    def add_policy(self, fact: Fact) -> None:
        """Fold a published policy (also what restores a persisted index's policies)."""
        version, effective_from, body = fact.detail
        self.policies.add(
            str(version), from_day(integer(effective_from)), fact.position, load_policy(str(body))
        )
        self.policy_facts.append(fact)

    def columns(self) -> dict[str, Columns]:
        """Every group of columns by name: what a persisted index stores as arrays."""
        return {
            "scores": self.scores,
            "registrations": self.registrations,
            "units": self.units,
            "grades": self.grades,
            "departures": self.departures,
            "left_leadership": self.left_leadership,
            "principals": self.principals,
            "appraisals": self.appraisals,
            "ratings": self.rated.ratings,
        }

    def _add_veto_year(self, veto: Fact) -> None:
        """Remember a veto's year, and the merits of its cadre already folded that it may bar.

        Merits folded later in the same year are added to the candidates as they come (`add`).
        """
        code = self.cadre_codes[veto.cadre]  # type: ignore[index]
        year = integer(veto.detail[0])
        years = self.veto_years.setdefault(code, set())
        if year in years:
            return
        years.add(year)
        rows = np.flatnonzero(self.scores["key"] == code * COMPONENT_COUNT + MERIT_COMPONENT)
        start, end = day(date(year, 1, 1)), day(date(year, 12, 31))
        days = self.scores["counts_from"][rows]
        in_year = rows[(days >= start) & (days <= end)]
        self.veto_candidates.update(int(row) for row in in_year)

    def _cadre_code(self, fact: Fact) -> int:
        assert fact.cadre is not None
        code = self.cadre_codes.get(fact.cadre)
        if code is None:
            assert fact.kind == Kind.REGISTERED, f"{fact.cadre} has facts before its registration"
            name, leadership, principal, service_started = (fact.detail[0], *fact.detail[4:7])
            code = len(self.cadres)
            self.cadre_codes[fact.cadre] = code
            self.cadres.append(
                Cadre(
                    code,
                    fact.cadre,
                    str(name),
                    fact.position,
                    fact.effective_on,
                    integer(service_started),
                    bool(leadership),
                    bool(principal),
                )
            )
            self.registrations.append(
                {
                    "position": [fact.position],
                    "day": [fact.effective_on],
                    "leadership": [bool(leadership)],
                    "principal": [bool(principal)],
                    "service_started_day": [integer(service_started)],
                }
            )
            self._order_cache = None
        return code

    def _unit_code(self, unit_id: str) -> int:
        code = self.unit_codes.get(unit_id)
        if code is None:
            code = len(self.unit_ids)
            self.unit_codes[unit_id] = code
            self.unit_ids.append(unit_id)
        return code

    def _change(
        self, columns: Columns, fact: Fact, code: int, value: int, order_day: int | None = None
    ) -> None:
        columns.append(
            {
                "position": [fact.position],
                "cadre": [code],
                "day": [fact.effective_on],
                "order_day": [fact.effective_on if order_day is None else order_day],
                "value": [value],
                "reversed_at": [NEVER],
            }
        )

    def _add_lifecycle(self, fact: Fact, code: int) -> None:
        kind = fact.kind
        if kind == Kind.REGISTERED:
            unit_id, grade, grade_since = fact.detail[1:4]
            self._change(self.units, fact, code, self._unit_code(str(unit_id)))
            self._change(self.grades, fact, code, GRADE_CODES[str(grade)], order_day=integer(grade_since))
            self._change(self.principals, fact, code, int(bool(fact.detail[5])))
        elif kind == Kind.TRANSFERRED:
            self._change(self.units, fact, code, self._unit_code(str(fact.detail[0])))
            if len(fact.detail) > 1:
                self._change(self.principals, fact, code, int(bool(fact.detail[1])))
        elif kind == Kind.GRADE_CHANGED:
            self._change(self.grades, fact, code, GRADE_CODES[str(fact.detail[0])])
        elif kind == Kind.DEPARTED:
            self._change(self.departures, fact, code, 0)
        elif kind == Kind.LEFT_LEADERSHIP:
            self._change(self.left_leadership, fact, code, 0)
        elif kind == Kind.APPRAISAL:
            self.appraisals.append(
                {
                    "position": [fact.position],
                    "cadre": [code],
                    "day": [fact.effective_on],
                    "value": [RESULT_CODES[str(fact.detail[1])]],
                    "reversed_at": [NEVER],
                }
            )
        if kind in SPARSE_KINDS:
            self.cadres[code].sparse.append(fact)
            self.sparse[fact.position] = fact
            if kind == Kind.INVESTIGATION_OPENED or (kind == Kind.DEDUCTION and fact.detail[2] is not None):
                self.appraisal_sensitive.add(code)
            self.counting.cadre_changed(code)

    def reverse(self, target: int, at: int) -> None:
        """Mark the fact at position `target` reversed from position `at` on."""
        for columns in (self.scores, *self._changes()):
            row = columns.find(target)
            if row is not None:
                columns.mark_reversed(row, at)
                if columns is self.scores:
                    self.reversed_rows.append(row)
        if target in self.sparse:
            self.sparse_reversed_at[target] = at
            self.counting.cadre_changed(self.cadre_codes[self.sparse[target].cadre])  # type: ignore[index]

    def _changes(self) -> tuple[Columns, ...]:
        """The columns of a cadre's lifecycle changes and appraisals: one row per fact, reversible."""
        return (
            self.units,
            self.grades,
            self.departures,
            self.left_leadership,
            self.principals,
            self.appraisals,
        )

    # Reading.

    def settled(self, as_of_day: int, known_at: int) -> int:
        """The earliest position whose snapshots of days up to `as_of_day` are those known at `known_at`:
        the last fact at or before `known_at` that can change one (0 if none).

        A score changes only the reads of its valid day and later. Every other fact folded for cadres (a
        registration, a lifecycle change, an appraisal, a sanction, a veto, an investigation, a recall, a
        policy, a reversal) is taken to change every read known after it: they are about 2 % of a log,
        and a veto or a sanction changes what facts of earlier days count. So a post of today's scores
        leaves last quarter's snapshots, and what is ranked from them, as they were (`ReadCache`)."""
        known_at = min(known_at, self.position)
        barriers = self.barrier_positions()
        before = int(np.searchsorted(barriers, known_at, side="right"))
        last = int(barriers[before - 1]) if before else 0
        row = self.scores.last_at_most("counts_from", as_of_day, self.scores.known(known_at))
        if row >= 0:
            last = max(last, int(self.scores["position"][row]))
        return last

    def barrier_positions(self) -> Array:
        """The positions of the facts `settled` takes to change every read, sorted: found again from the
        columns and facts folded (a restored index holds no list of them) once per position folded."""
        if self._barriers is not None and self._barriers[0] == self.position:
            return self._barriers[1]
        parts = [self.registrations["position"]]
        for columns in self._changes():
            reversed_at = columns["reversed_at"]
            parts += [columns["position"], reversed_at[reversed_at != NEVER]]
        rows = np.array(self.reversed_rows, dtype=np.int64)
        parts.append(self.scores["reversed_at"][rows])
        parts.append(np.fromiter(self.sparse, dtype=np.int64, count=len(self.sparse)))
        parts.append(np.array(list(self.sparse_reversed_at.values()), dtype=np.int64))
        parts.append(np.array([fact.position for fact in self.policy_facts], dtype=np.int64))
        positions = np.unique(np.concatenate([part.astype(np.int64) for part in parts]))
        self._barriers = (self.position, positions)
        return positions

    def in_force(self, fact: Fact, as_of_day: int, known_at: int) -> bool:
        """Whether a sparse fact counts at (as_of, known_at)."""
        return (
            fact.position <= known_at
            and fact.counts_from <= as_of_day
            and self.sparse_reversed_at.get(fact.position, NEVER) > known_at
        )

    @staticmethod
    def _valid(columns: Columns, as_of_day: int, known_at: int) -> Array:
        known = columns.known(known_at)
        rows = np.arange(known)
        mask = (columns["day"][:known] <= as_of_day) & (columns["reversed_at"][:known] > known_at)
        return rows[mask]

    def latest_row(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        """Per cadre, the row of the change in force (latest order_day, ties to the later position); -1."""
        rows, cadres, days = columns.in_force_by_cadre(known_at)
        on_or_before = days <= as_of_day
        rows, cadres = rows[on_or_before], cadres[on_or_before]
        result = np.full(count, -1, dtype=np.int64)
        if rows.size:
            last = np.ones(rows.size, dtype=bool)  # the last valid row of each cadre
            last[:-1] = cadres[1:] != cadres[:-1]
            result[cadres[last]] = rows[last]
        return result

    def latest_value(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        rows = self.latest_row(columns, as_of_day, known_at, count)
        return np.where(rows >= 0, columns["value"][rows], -1)

    def first_change(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        """Per cadre, the earliest day of a change in force (departure, leaving leadership); -1 if none."""
        _rows, cadres, days = columns.in_force_by_cadre(known_at)
        on_or_before = days <= as_of_day
        cadres, days = cadres[on_or_before], days[on_or_before]
        result = np.full(count, -1, dtype=np.int64)
        if cadres.size:
            # Grouped by cadre already: the least day of each group.
            starts = np.flatnonzero(np.concatenate(([True], cadres[1:] != cadres[:-1])))
            result[cadres[starts]] = np.minimum.reduceat(days, starts)
        return result

    def count_excellent(self, as_of_day: int, known_at: int, count: int) -> Array:
        rows = self._valid(self.appraisals, as_of_day, known_at)
        rows = rows[self.appraisals["value"][rows] == EXCELLENT]
        return np.bincount(self.appraisals["cadre"][rows], minlength=count)[:count]

    def id_order(self) -> Array:
        """Each cadre code's place in cadre_id order (the last tie-breaker)."""
        if self._order_cache is None or self._order_cache[0] != len(self.cadres):
            ids = np.array([cadre.cadre_id for cadre in self.cadres], dtype=object)
            order = np.empty(len(ids), dtype=np.int64)
            order[np.argsort(ids, kind="stable")] = np.arange(len(ids))
            self._order_cache = (len(self.cadres), order)
        return self._order_cache[1]

    def snapshot(
        self, as_of_day: int, known_at: int, since_day: int | None = None, *, recorded: Array | None = None
    ) -> Snapshot:
        """The standings at (as_of, known_at), bound to the position `settled` finds: the same standings,
        so every position between reads them under one key. `recorded`: the window's recorded sums at
        `known_at`, when computed with other windows' (`ScoreSums.recorded_of_windows`); they are the settled
        position's too (what `settled` means)."""
        known_at = min(known_at, self.position)
        sums = (
            None
            if recorded is None
            else self.sums.counted_from(recorded.copy(), (as_of_day, since_day), known_at, len(self.cadres))
        )
        return Snapshot(self, as_of_day, self.settled(as_of_day, known_at), since_day, sums=sums)

    def snapshots(self, windows: Sequence[Window], known_at: int) -> list[Snapshot]:
        """A snapshot of each window at one `known_at`, their sums in one pass."""
        recorded = self.sums.recorded_of_windows(windows, min(known_at, self.position), len(self.cadres))
        return [
            self.snapshot(as_of_day, known_at, since_day, recorded=sums)
            for (as_of_day, since_day), sums in zip(windows, recorded, strict=True)
        ]


_SCORE_ONLY_KINDS: Final = frozenset({Kind.TENURE, Kind.MERIT, Kind.EVALUATION})
SPARSE_KINDS: Final = frozenset(
    {
        Kind.APPRAISAL,
        Kind.DEDUCTION,
        Kind.RECALL_ORDERED,
        Kind.RECALL_COMPLETED,
        Kind.VETO,
        Kind.INVESTIGATION_OPENED,
        Kind.INVESTIGATION_CLOSED,
    }
)
