"""The counting rules read from the index: what a veto or a sanction makes other events count.

The rules themselves are pure functions in `ledger.policy.counting`; this module finds, for a read at
(as_of, known_at), the facts they apply to — the vetoes in force, the open investigations, the sanctions
known — and keeps what several reads share: each sensitive cadre's facts, the appraisals a fact could
lower, the merits a veto bars at one read position, and the last reads' counted appraisals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from ledger.domain.events import RESULTS, Result
from ledger.policy.counting import (
    Counted,
    SanctionTerms,
    VetoTerms,
    counted_result,
    investigation_holds_year,
)
from ledger.policy.rules import appraisal_at_most
from ledger.projections.facts import (
    AWARD_CODES,
    COMPONENTS,
    NEVER,
    Fact,
    Kind,
    cents_of,
    from_day,
    integer,
)

if TYPE_CHECKING:
    from ledger.projections.index import Index

__all__ = ["CountingRules", "result_of"]

MERIT_COMPONENT: Final = COMPONENTS.index("merit")
APPRAISAL_COMPONENT: Final = COMPONENTS.index("appraisal")
COMPONENT_COUNT: Final = len(COMPONENTS)
# The reads whose counted appraisals are kept (`counted_appraisals_all`): an escalation's twelve periods.
COUNTED_KEPT_MAX: Final = 32

Array = npt.NDArray[Any]


class CountingRules:
    """The counting rules over one index's facts, with what its reads share (see the module)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        # By (as_of_day, known_at), the last COUNTED_KEPT_MAX reads' (an escalation reads twelve periods).
        # Keyed by what of the sensitive facts the read sees (`_seen`), not by its (as_of, known_at): a
        # read after a post that touched none of them finds what an earlier read counted.
        self._counted_cache: dict[tuple[int, int, int], dict[int, list[tuple[Fact, Counted]]]] = {}
        self._sensitive_arrays: tuple[Array, Array, Array, Array] | None = None
        # Per sensitive cadre, its appraisal, deduction and investigation facts (rebuilt when they change).
        self._sensitive_facts: dict[int, tuple[list[Fact], list[Fact], list[Fact]]] = {}
        self._lowerable_cache: dict[int, list[tuple[Fact, list[Fact], bool]]] = {}
        self._veto_arrays: tuple[int, Array, Array, Array] | None = None
        self._barred_cache: tuple[tuple[int, int], tuple[Array, Array, Array]] | None = None

    def cadre_changed(self, code: int) -> None:
        """A sparse fact of the cadre was folded or reversed: its facts and lowerable appraisals are found
        again, and the counted appraisals kept are forgotten (what keys them has changed)."""
        self._sensitive_facts.pop(code, None)
        self._lowerable_cache.pop(code, None)
        self._sensitive_arrays = None
        self._counted_cache = {}

    def _seen(self, as_of_day: int, known_at: int) -> tuple[int, int, int]:
        """What a read at (as_of, known_at) sees of the facts the counted appraisals depend on: the
        appraisals, capping deductions and investigations of the sensitive cadres.

        A fact can matter to a read of `as_of_day` if it reaches it: an appraisal or an investigation from
        its valid day on (before, it is not in force), a deduction always (a sanction caps the years it
        names, whatever its date). The key is how many facts reach the day, and of those how many are
        known at `known_at` and how many of their reversals. Each count names a set, the facts being
        sorted by what is counted: two reads with the same key see the same facts in force, and count the
        same appraisals. So a fact posted for a later year leaves an earlier period's counts kept."""
        if self._sensitive_arrays is None:
            facts = sorted(
                (
                    fact
                    for code in self.index.appraisal_sensitive
                    for facts_of_kind in self._facts_of_sensitive(code)
                    for fact in facts_of_kind
                ),
                key=lambda fact: fact.position,
            )
            reach = {
                fact.position: -(2**62) if fact.kind == Kind.DEDUCTION else fact.counts_from for fact in facts
            }
            reversed_at = self.index.sparse_reversed_at
            reversals = sorted(
                (reversed_at[fact.position], reach[fact.position])
                for fact in facts
                if fact.position in reversed_at
            )
            self._sensitive_arrays = (
                np.array([fact.position for fact in facts], dtype=np.int64),
                np.array([reach[fact.position] for fact in facts], dtype=np.int64),
                np.array([reversal for reversal, _reach in reversals], dtype=np.int64),
                np.array([reach_of for _reversal, reach_of in reversals], dtype=np.int64),
            )
        positions, reaches, reversal_positions, reversal_reaches = self._sensitive_arrays
        known = int(np.searchsorted(positions, known_at, side="right"))
        reversed_known = int(np.searchsorted(reversal_positions, known_at, side="right"))
        return (
            int(np.count_nonzero(reaches <= as_of_day)),
            int(np.count_nonzero(reaches[:known] <= as_of_day)),
            int(np.count_nonzero(reversal_reaches[:reversed_known] <= as_of_day)),
        )

    def vetoes_in_force(self, code: int, known_at: int) -> list[VetoTerms]:
        """The cadre's vetoes known at `known_at` and not reversed: a veto counts for its year whatever the
        date read."""
        return [
            VetoTerms(fact.position, integer(fact.detail[0]), tuple(str(award) for award in fact.detail[1:]))
            for fact in self.index.cadres[code].sparse
            if fact.kind == Kind.VETO and self._known_in_force(fact, known_at)
        ]

    def _known_in_force(self, fact: Fact, known_at: int) -> bool:
        return (
            fact.position <= known_at and self.index.sparse_reversed_at.get(fact.position, NEVER) > known_at
        )

    def open_investigations(self, code: int, as_of_day: int, known_at: int) -> dict[str, Fact]:
        """The cadre's investigations open at (as_of, known_at), by reference, with their opening fact."""
        facts = [
            fact
            for fact in self.index.cadres[code].sparse
            if fact.kind in (Kind.INVESTIGATION_OPENED, Kind.INVESTIGATION_CLOSED)
        ]
        return self._open_among(facts, as_of_day, known_at)

    def _open_among(self, facts: list[Fact], as_of_day: int, known_at: int) -> dict[str, Fact]:
        """Of investigation facts, the ones open at (as_of, known_at) by reference. Openings and closings
        act in valid-time order (effective_on, then position)."""
        steps = sorted(
            (fact for fact in facts if self.index.in_force(fact, as_of_day, known_at)),
            key=lambda fact: (fact.effective_on, fact.position),
        )
        opened: dict[str, Fact] = {}
        for fact in steps:
            reference = str(fact.detail[0])
            if fact.kind == Kind.INVESTIGATION_OPENED:
                # Opened again while open (recorded out of order): open since the first opening.
                opened.setdefault(reference, fact)
            else:
                opened.pop(reference, None)
        return opened

    def _facts_of_sensitive(self, code: int) -> tuple[list[Fact], list[Fact], list[Fact]]:
        facts = self._sensitive_facts.get(code)
        if facts is None:
            sparse = self.index.cadres[code].sparse
            facts = self._sensitive_facts[code] = (
                [fact for fact in sparse if fact.kind == Kind.APPRAISAL],
                [fact for fact in sparse if fact.kind == Kind.DEDUCTION and fact.detail[2] is not None],
                [
                    fact
                    for fact in sparse
                    if fact.kind in (Kind.INVESTIGATION_OPENED, Kind.INVESTIGATION_CLOSED)
                ],
            )
        return facts

    def _lowerable(self, code: int) -> list[tuple[Fact, list[Fact], bool]]:
        """The cadre's appraisals that some fact could make count a lower result, each with the deductions
        whose cap could lower it and whether an investigation could hold its year (cached until the cadre's
        sparse facts change). Caps only lower, so a cap at or above the recorded result never matters."""
        lowerable = self._lowerable_cache.get(code)
        if lowerable is None:
            appraisal_facts, deduction_facts, investigation_facts = self._facts_of_sensitive(code)
            opened_years = [
                from_day(fact.effective_on).year
                for fact in investigation_facts
                if fact.kind == Kind.INVESTIGATION_OPENED
            ]
            lowerable = []
            for appraisal in appraisal_facts:
                year, recorded = integer(appraisal.detail[0]), result_of(appraisal.detail[1])
                lowering = [
                    deduction
                    for deduction in deduction_facts
                    if year in deduction.detail[3:]
                    and appraisal_at_most(recorded, result_of(deduction.detail[2])) != recorded
                ]
                may_be_held = recorded != "ungraded" and any(opened <= year for opened in opened_years)
                if lowering or may_be_held:
                    lowerable.append((appraisal, lowering, may_be_held))
            self._lowerable_cache[code] = lowerable
        return lowerable

    def counted_appraisals(
        self, code: int, as_of_day: int, known_at: int, *, lowered_only: bool = False
    ) -> list[tuple[Fact, Counted]]:
        """The appraisals of the cadre in force at (as_of, known_at), with the result each counts (with
        `lowered_only`, only those counting another result than recorded)."""
        if lowered_only:
            candidates = (
                [
                    (fact, lowering, held)
                    for fact, lowering, held in self._lowerable(code)
                    if self.index.in_force(fact, as_of_day, known_at)
                ]
                if code in self.index.appraisal_sensitive
                else []
            )
        else:
            lowerable = {fact.position: (lowering, held) for fact, lowering, held in self._lowerable(code)}
            candidates = [
                (fact, *lowerable.get(fact.position, ([], False)))
                for fact in self.index.cadres[code].sparse
                if fact.kind == Kind.APPRAISAL and self.index.in_force(fact, as_of_day, known_at)
            ]
        investigations: dict[str, Fact] | None = None
        counted = []
        for fact, lowering, may_be_held in candidates:
            year, recorded = integer(fact.detail[0]), result_of(fact.detail[1])
            sanctions = [
                SanctionTerms(
                    deduction.position,
                    str(deduction.detail[0]),
                    from_day(deduction.effective_on),
                    result_of(deduction.detail[2]),
                    tuple(integer(value) for value in deduction.detail[3:]),
                )
                for deduction in lowering
                if self._known_in_force(deduction, known_at)
            ]
            held: list[str] = []
            if may_be_held:
                if investigations is None:
                    investigations = self._open_among(self._facts_of_sensitive(code)[2], as_of_day, known_at)
                held = [
                    reference
                    for reference, opening in investigations.items()
                    if investigation_holds_year(year, from_day(opening.effective_on))
                ]
            result = (
                counted_result(recorded, year, sanctions, held)
                if sanctions or held
                else Counted(recorded, None)
            )
            if result.reason is not None or not lowered_only:
                counted.append((fact, result))
        return counted

    def counted_appraisals_all(self, as_of_day: int, known_at: int) -> dict[int, list[tuple[Fact, Counted]]]:
        """Per cadre, the in-force appraisals that count another result than recorded (kept for the last
        few reads by what they see: a snapshot asks twice, for the sums and for the excellent appraisals,
        and reads at other positions that see the same sensitive facts ask the same)."""
        seen = self._seen(as_of_day, known_at)
        kept = self._counted_cache.get(seen)
        if kept is not None:
            return kept
        counted = {}
        for code in sorted(self.index.appraisal_sensitive):
            lowered = self.counted_appraisals(code, as_of_day, known_at, lowered_only=True)
            if lowered:
                counted[code] = lowered
        if len(self._counted_cache) >= COUNTED_KEPT_MAX:
            del self._counted_cache[next(iter(self._counted_cache))]
        self._counted_cache[seen] = counted
        return counted

    def appraisal_cents(self, fact: Fact, result: Result) -> int:
        """The cents an appraisal counts for `result`: its recorded points for its own result, else the
        points of `result` under the policy version that computed it."""
        if result == fact.detail[1]:
            return fact.cents
        version = fact.detail[2]
        if not isinstance(version, str) or version not in self.index.policies:
            return fact.cents
        return cents_of(self.index.policies.get(version).policy.appraisal.points.of(result))

    def count_adjusted(self, components: Array, as_of_day: int, known_at: int, since_day: int | None) -> None:
        """Turn the recorded sums (cents, per cadre × component) into counted ones: barred awards count
        nothing, lowered appraisals count their counted result. Only facts in the window count."""
        start = -(2**31) if since_day is None else since_day
        for code, counted in self.counted_appraisals_all(as_of_day, known_at).items():
            for fact, result in counted:
                if result.reason is not None and start <= fact.counts_from <= as_of_day:
                    components[code, APPRAISAL_COMPONENT] += (
                        self.appraisal_cents(fact, result.result) - fact.cents
                    )
        codes, cents, dates = self._barred_merits(known_at)
        if codes.size:
            in_window = (dates >= start) & (dates <= as_of_day)
            np.subtract.at(components[:, MERIT_COMPONENT], codes[in_window], cents[in_window])

    def _barred_merits(self, known_at: int) -> tuple[Array, Array, Array]:
        """The merits barred by a veto known at `known_at` (their cadre codes, cents and valid days),
        whatever the date read: a veto bars its year's awards, and a window keeps those it holds. Kept for
        the last `known_at`: the periods of one read, and the pages of a ranking, share it."""
        cached = self._barred_cache
        if cached is not None and cached[0] == (known_at, len(self.index.veto_candidates)):
            return cached[1]
        empty = np.zeros(0, dtype=np.int64)
        barred_merits: tuple[Array, Array, Array] = (empty, empty, empty)
        barred = [
            _veto_key(code, veto.year, AWARD_CODES[award])
            for code in self.index.veto_years
            for veto in self.vetoes_in_force(code, known_at)
            for award in veto.barred_awards
        ]
        if self.index.veto_candidates and barred:
            rows, keys, codes = self._veto_candidate_arrays()
            known = self.index.scores.known(known_at)
            chosen = (
                np.isin(keys, np.array(barred, dtype=np.int64))
                & (rows < known)
                & (self.index.scores["reversed_at"][rows] > known_at)
            )
            rows = rows[chosen]
            barred_merits = (
                codes[chosen],
                self.index.scores["cents"][rows],
                self.index.scores["counts_from"][rows],
            )
        self._barred_cache = ((known_at, len(self.index.veto_candidates)), barred_merits)
        return barred_merits

    def _veto_candidate_arrays(self) -> tuple[Array, Array, Array]:
        """The score rows a veto may bar, with their (cadre, year, award) keys and cadre codes."""
        cached = self._veto_arrays
        if cached is None or cached[0] != len(self.index.veto_candidates):
            rows = np.array(sorted(self.index.veto_candidates), dtype=np.int64)
            codes = self.index.scores["key"][rows] // COMPONENT_COUNT
            years = (
                self.index.scores["counts_from"][rows]
                .astype("datetime64[D]")
                .astype("datetime64[Y]")
                .astype(np.int64)
                + 1970
            )
            keys = _veto_key(codes, years, self.index.scores["award"][rows].astype(np.int64))
            cached = self._veto_arrays = (len(self.index.veto_candidates), rows, keys, codes)
        return cached[1], cached[2], cached[3]


def result_of(value: str | int | bool | None) -> Result:
    """An appraisal result held in a fact's detail."""
    for result in RESULTS:
        if value == result:
            return result
    raise ValueError(f"not an appraisal result: {value!r}")


def _veto_key(code: Any, year: Any, award: Any) -> Any:
    """One integer per (cadre, year, award): what a veto bars, and what a candidate merit is."""
    return (code * 10_000 + year) * 16 + award
