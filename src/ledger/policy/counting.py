"""What recorded events count in a read: the rules by which one event changes what another counts.

An event's points are fixed when it is posted. Two rules of the schemes nevertheless act on other events
of the same year, whichever was recorded first, and so cannot be decided at posting:

- a one-vote veto (一票否决) for a year makes the awards of 评先评优 (`veto.barred_awards`) dated in that
  year count nothing;
- a sanction leaves the annual appraisals of some years at most a result (只写评语，不确定等次 for
  记过 and worse), and an open investigation holds a year's appraisal ungraded until it closes (补定等次).

These are pure functions over small records of the facts in force; the history (read from the log), the
read models and an auditor's replay all call them, so they agree. Which facts are in force is the
caller's business: a veto or a sanction counts for its years as soon as it is known and while it is not
reversed, whatever the date read (a veto for 2024 is decided in 2025, and a 2024 board read after it
must reflect it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from msgspec import Struct

from ledger.domain.events import Result
from ledger.policy.rules import add_months, appraisal_at_most
from ledger.policy.schema import AppraisalYears

__all__ = [
    "Counted",
    "SanctionTerms",
    "VetoTerms",
    "barring_veto",
    "counted_result",
    "investigation_holds_year",
    "sanction_appraisal_years",
    "veto_reason",
]


class SanctionTerms(Struct, frozen=True):
    """What a deduction does to appraisals: at most `cap` for each year of `years`."""

    position: int
    kind: str
    effective_on: date
    cap: Result | None
    years: tuple[int, ...]


class VetoTerms(Struct, frozen=True):
    """A one-vote veto for `year` and the awards it bars in that year."""

    position: int
    year: int
    barred_awards: tuple[str, ...]


class Counted(Struct, frozen=True):
    """An appraisal's result as counted, and why it differs from the recorded one (None when it does not)."""

    result: Result
    reason: str | None


def sanction_appraisal_years(rule: AppraisalYears, effective_on: date, gate_months: int) -> tuple[int, ...]:
    """The appraisal years a sanction imposed on `effective_on` reaches under the policy's rule.

    `year`: the year imposed. `year_and_next`: that year and the next. `period`: every year of the
    influence period but the year it ends (解除处分的当年及以后不受影响) — none when the period ends in the
    year it began.
    """
    start = effective_on.year
    if rule == "year":
        return (start,)
    if rule == "year_and_next":
        return (start, start + 1)
    end = add_months(effective_on, gate_months).year
    return tuple(range(start, end))


def investigation_holds_year(year: int, opened_on: date) -> bool:
    """Whether an investigation opened on `opened_on` and still open holds the appraisal of `year`: it was
    open during that year."""
    return opened_on.year <= year


def counted_result(
    recorded: Result,
    year: int,
    sanctions: Iterable[SanctionTerms],
    held_by: Iterable[str] = (),
) -> Counted:
    """The result an appraisal of `year` counts: `recorded`, at most the cap of every sanction in force
    whose years include `year`, and `ungraded` while an investigation open in that year (`held_by`, their
    references) is not closed. The order in which the facts were recorded does not matter."""
    result = recorded
    reasons: list[str] = []
    # In the order of their dates (then kind), so that the reason reads the same whichever was recorded
    # first; the result does not depend on the order at all.
    for sanction in sorted(sanctions, key=lambda terms: (terms.effective_on, terms.kind, terms.position)):
        if sanction.cap is None or year not in sanction.years:
            continue
        capped = appraisal_at_most(result, sanction.cap)
        if capped != result:
            reasons.append(
                f"{sanction.kind} of {sanction.effective_on} (position {sanction.position}) "
                f"leaves {year} at most {sanction.cap}"
            )
        result = capped
    held = sorted(held_by)
    if held and result != "ungraded":
        reasons.append(f"investigation {', '.join(held)} open: {year} held ungraded")
        result = "ungraded"
    if result == recorded:
        return Counted(result, None)
    return Counted(result, f"counted as {result}: " + "; ".join(reasons))


def barring_veto(award: str, awarded_on: date, vetoes: Iterable[VetoTerms]) -> VetoTerms | None:
    """The veto in force that makes an award count nothing: one for the award's year that bars its kind."""
    for veto in sorted(vetoes, key=lambda terms: (terms.year, terms.position)):
        if veto.year == awarded_on.year and award in veto.barred_awards:
            return veto
    return None


def veto_reason(veto: VetoTerms) -> str:
    """Why a barred award counts nothing."""
    return f"one-vote veto for {veto.year} (position {veto.position}): 评先评优 awards of {veto.year} count 0"
