"""The in-memory index: facts as NumPy columns answering "as of a date, as known at a moment" in milliseconds.

A read at (as_of, known_at) sees the facts with `position ≤ known_at` and `counts_from ≤ as_of` that no
reversal known at `known_at` has taken back. Positions only grow, so "known at" is a prefix of each column
(a binary search); the rest is one vectorized mask and one `bincount` over the prefix. Lifecycle changes
(unit, grade, status) are few and resolved per read with a sort; sparse facts (appraisals, gates, recalls,
vetoes, investigations) are kept per cadre for eligibility.

Points are summed as integer cents. `bincount` adds in float64, which is exact for integers below 2**53
(about 9 × 10**13 points); totals are turned back into Decimal only at the edge.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ledger.domain.events import GRADES, RESULTS
from ledger.policy.book import PolicyBook
from ledger.policy.load import load_policy
from ledger.projections.facts import (
    COMPONENT_OF_KIND,
    COMPONENTS,
    NO_COMPONENT,
    Fact,
    Kind,
    from_day,
    integer,
)

__all__ = ["NEVER", "Index", "Snapshot"]

NEVER: Final = np.iinfo(np.int64).max  # reversed_at of a fact no reversal has taken back
INITIAL_CAPACITY: Final = 1 << 12
COMPONENT_COUNT: Final = len(COMPONENTS)
GRADE_CODES: Final[dict[str, int]] = {title: code for code, title in enumerate(GRADES)}
RESULT_CODES: Final[dict[str, int]] = {result: code for code, result in enumerate(RESULTS)}
EXCELLENT: Final = RESULT_CODES["excellent"]

Array = npt.NDArray[Any]


class Columns:
    """Parallel NumPy arrays that grow by doubling; rows are appended in position order."""

    def __init__(self, dtypes: dict[str, Any]) -> None:
        self.size = 0
        self._dtypes = dtypes
        self._arrays: dict[str, Array] = {
            name: np.empty(INITIAL_CAPACITY, dtype=dtype) for name, dtype in dtypes.items()
        }

    def append(self, columns: dict[str, list[Any]]) -> None:
        added = len(next(iter(columns.values())))
        if not added:
            return
        needed = self.size + added
        capacity = len(next(iter(self._arrays.values())))
        if needed > capacity:
            while capacity < needed:
                capacity *= 2
            for name, array in self._arrays.items():
                grown = np.empty(capacity, dtype=array.dtype)
                grown[: self.size] = array[: self.size]
                self._arrays[name] = grown
        for name, values in columns.items():
            self._arrays[name][self.size : needed] = values
        self.size = needed

    def __getitem__(self, name: str) -> Array:
        return self._arrays[name][: self.size]

    def find(self, position: int) -> int | None:
        """The row holding `position`, if any."""
        positions = self["position"]
        row = int(np.searchsorted(positions, position))
        return row if row < self.size and positions[row] == position else None

    def known(self, position: int) -> int:
        """How many rows are known at `position` (positions are sorted)."""
        return int(np.searchsorted(self["position"], position, side="right"))


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
    """Standings of every cadre at one (as_of, known_at): arrays indexed by cadre code."""

    def __init__(self, index: Index, as_of_day: int, known_at: int) -> None:
        self.index = index
        self.as_of_day = as_of_day
        self.known_at = known_at
        count = len(index.cadres)
        self.count = count
        registrations = index.registrations
        self.known = (registrations["position"] <= known_at) & (registrations["day"] <= as_of_day)
        self.totals, self.components = index.sums(as_of_day, known_at, count)
        self.departed_day = index.first_change(index.departures, as_of_day, known_at, count)
        self.left_leadership = index.first_change(index.left_leadership, as_of_day, known_at, count) >= 0
        self.unit = index.latest_value(index.units, as_of_day, known_at, count)
        grade_rows = index.latest_row(index.grades, as_of_day, known_at, count)
        self.grade = np.where(grade_rows >= 0, index.grades["value"][grade_rows], -1)
        self.grade_since_day = np.where(grade_rows >= 0, index.grades["order_day"][grade_rows], 0)
        self.active = self.known & (self.departed_day < 0)
        leadership = registrations["leadership"] & ~self.left_leadership
        self.leadership = leadership
        self.principal = registrations["principal"] & leadership
        self.excellent = index.count_excellent(as_of_day, known_at, count)

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
        self.scores = Columns(
            {
                "position": np.int64,
                "counts_from": np.int32,
                "key": np.int64,
                "cents": np.int64,
                # The same cents as float64 (exact below 2**53), ready for bincount's weights.
                "cents_float": np.float64,
                "reversed_at": np.int64,
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

    # Folding facts in.

    def add(self, facts: Iterable[Fact]) -> None:
        """Fold facts (in position order; those at or before `self.position` are skipped)."""
        positions: list[int] = []
        counts_from: list[int] = []
        keys: list[int] = []
        cents: list[int] = []
        pending_reversals: list[Fact] = []
        cadre_codes = self.cadre_codes
        last = self.position
        for fact in facts:
            position, kind = fact.position, fact.kind
            if position <= last:
                continue
            last = position
            if kind in _SCORE_ONLY_KINDS:
                # Tenure, merit and evaluation facts are nearly all of a log: the short path.
                positions.append(position)
                counts_from.append(fact.counts_from)
                keys.append(cadre_codes[fact.cadre] * COMPONENT_COUNT + COMPONENT_OF_KIND[kind])  # type: ignore[index]
                cents.append(fact.cents)
            elif kind == Kind.REVERSAL:
                pending_reversals.append(fact)
            elif kind == Kind.POLICY:
                version, effective_from, body = fact.detail
                self.policies.add(
                    str(version), from_day(integer(effective_from)), position, load_policy(str(body))
                )
            else:
                code = self._cadre_code(fact)
                component = COMPONENT_OF_KIND.get(kind, NO_COMPONENT)
                if component != NO_COMPONENT:
                    positions.append(position)
                    counts_from.append(fact.counts_from)
                    keys.append(code * COMPONENT_COUNT + component)
                    cents.append(fact.cents)
                self._add_lifecycle(fact, code)
        self.position = last
        self.scores.append(
            {
                "position": positions,
                "counts_from": counts_from,
                "key": keys,
                "cents": cents,
                "cents_float": cents,
                "reversed_at": [NEVER] * len(positions),
            }
        )
        for reversal in pending_reversals:
            self.reverse(reversal.target, reversal.position)

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
        elif kind == Kind.TRANSFERRED:
            self._change(self.units, fact, code, self._unit_code(str(fact.detail[0])))
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

    def reverse(self, target: int, at: int) -> None:
        """Mark the fact at position `target` reversed from position `at` on."""
        for columns in (
            self.scores,
            self.units,
            self.grades,
            self.departures,
            self.left_leadership,
            self.appraisals,
        ):
            row = columns.find(target)
            if row is not None:
                columns["reversed_at"][row] = at
                if columns is self.scores:
                    self.reversed_rows.append(row)
        if target in self.sparse:
            self.sparse_reversed_at[target] = at

    # Reading.

    def in_force(self, fact: Fact, as_of_day: int, known_at: int) -> bool:
        """Whether a sparse fact counts at (as_of, known_at)."""
        return (
            fact.position <= known_at
            and fact.counts_from <= as_of_day
            and self.sparse_reversed_at.get(fact.position, NEVER) > known_at
        )

    def sums(self, as_of_day: int, known_at: int, count: int) -> tuple[Array, Array]:
        """Totals and components (cents) per cadre code.

        Reversed scores are few: they are summed like the others, then taken back where their reversal is
        known, so the hot loop over every score is one comparison, one multiplication and one bincount.
        """
        known = self.scores.known(known_at)
        keys = self.scores["key"][:known]
        weights = self.scores["cents_float"][:known] * (self.scores["counts_from"][:known] <= as_of_day)
        cells = count * COMPONENT_COUNT
        components = np.bincount(keys, weights=weights, minlength=cells)[:cells]
        if self.reversed_rows:
            rows = np.fromiter(self.reversed_rows, dtype=np.int64, count=len(self.reversed_rows))
            rows = rows[rows < known]
            rows = rows[
                (self.scores["reversed_at"][rows] <= known_at)
                & (self.scores["counts_from"][rows] <= as_of_day)
            ]
            np.subtract.at(components, keys[rows], self.scores["cents_float"][rows])
        components = np.rint(components).astype(np.int64).reshape(count, COMPONENT_COUNT)
        return components.sum(axis=1), components

    @staticmethod
    def _valid(columns: Columns, as_of_day: int, known_at: int) -> Array:
        known = columns.known(known_at)
        rows = np.arange(known)
        mask = (columns["day"][:known] <= as_of_day) & (columns["reversed_at"][:known] > known_at)
        return rows[mask]

    def latest_row(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        """Per cadre, the row of the change in force (latest order_day, ties to the later position); -1."""
        rows = self._valid(columns, as_of_day, known_at)
        result = np.full(count, -1, dtype=np.int64)
        if rows.size:
            # Rows are in position order already, so a stable sort by (cadre, order_day) keeps the later
            # position last among equal days.
            order = np.lexsort((columns["order_day"][rows], columns["cadre"][rows]))
            rows = rows[order]
            cadres = columns["cadre"][rows]
            last = np.r_[cadres[1:] != cadres[:-1], True]
            result[cadres[last]] = rows[last]
        return result

    def latest_value(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        rows = self.latest_row(columns, as_of_day, known_at, count)
        return np.where(rows >= 0, columns["value"][rows], -1)

    def first_change(self, columns: Columns, as_of_day: int, known_at: int, count: int) -> Array:
        """Per cadre, the earliest day of a change in force (departure, leaving leadership); -1 if none."""
        rows = self._valid(columns, as_of_day, known_at)
        result = np.full(count, -1, dtype=np.int64)
        if rows.size:
            days = columns["day"][rows]
            cadres = columns["cadre"][rows]
            order = np.lexsort((-days, cadres))
            result[cadres[order]] = days[order]
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

    def snapshot(self, as_of_day: int, known_at: int) -> Snapshot:
        return Snapshot(self, as_of_day, min(known_at, self.position))


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
