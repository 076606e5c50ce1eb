"""What each entry of a cadre's history counts: its recorded points after the counting rules.

A pure function of the cadre's events known at the read (`ledger.policy.counting` holds the rules): a
barred award under a veto of its year counts nothing; an appraisal a sanction or an open investigation
lowers counts the points of the lower result under the policy that computed it; a reversal counts minus
what its target counts. The read models apply the same rules to the same facts, so history totals and
standings agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

from ledger.domain.cadre import points_of
from ledger.domain.events import (
    AppraisalRecorded,
    DeductionApplied,
    EntryReversed,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    MeritAwarded,
    VetoApplied,
    recorded_id,
)
from ledger.domain.points import quantize
from ledger.policy.counting import (
    SanctionTerms,
    VetoTerms,
    barring_veto,
    counted_result,
    investigation_holds_year,
    veto_reason,
)
from ledger.policy.schema import Policy

__all__ = ["counted_points"]

PolicyOf = Callable[[str], Policy | None]


def _counts_from(event: EventBase) -> date:
    if isinstance(event, EntryReversed) and isinstance(event.target_effective_on, date):
        return event.target_effective_on
    return event.effective_on


def counted_points(
    known: Sequence[tuple[int, EventBase]], as_of: date, policy_of: PolicyOf
) -> dict[uuid.UUID, tuple[Decimal, str | None]]:
    """Per event id of `known` (the cadre's events known at the read, `(position, event)` in position
    order), the points it counts as of `as_of` and, where they differ from its recorded points, why."""
    reversed_ids = {event.target_event_id for _position, event in known if isinstance(event, EntryReversed)}
    vetoes: list[VetoTerms] = []
    sanctions: list[SanctionTerms] = []
    for position, event in known:
        if recorded_id(event) in reversed_ids:
            continue
        if isinstance(event, VetoApplied):
            barred = event.barred_awards if isinstance(event.barred_awards, tuple) else ()
            vetoes.append(VetoTerms(position, event.year, tuple(barred)))
        elif isinstance(event, DeductionApplied):
            cap = event.appraisal_cap if isinstance(event.appraisal_cap, str) else None
            years = (
                event.appraisal_years
                if isinstance(event.appraisal_years, tuple)
                else (event.effective_on.year,)
            )
            sanctions.append(SanctionTerms(position, event.kind, event.effective_on, cap, years))
    investigations = _open_investigations(known, reversed_ids, as_of)

    counted: dict[uuid.UUID, tuple[Decimal, str | None]] = {}
    for _position, event in known:
        points = points_of(event)
        reason: str | None = None
        if isinstance(event, MeritAwarded):
            veto = barring_veto(event.award, event.effective_on, vetoes)
            if veto is not None:
                points, reason = quantize(Decimal(0)), veto_reason(veto)
        elif isinstance(event, AppraisalRecorded):
            held = [
                reference
                for reference, opened_on in investigations.items()
                if investigation_holds_year(event.year, opened_on)
            ]
            result = counted_result(event.result, event.year, sanctions, held)
            policy = policy_of(event.policy_version) if isinstance(event.policy_version, str) else None
            if result.reason is not None and policy is not None:
                points, reason = quantize(policy.appraisal.points.of(result.result)), result.reason
        elif isinstance(event, EntryReversed) and event.target_event_id in counted:
            target_points, target_reason = counted[event.target_event_id]
            points = -target_points
            reason = None if target_reason is None else f"reverses an entry that {target_reason}"
        counted[recorded_id(event)] = (points, reason)
    return counted


def _open_investigations(
    known: Sequence[tuple[int, EventBase]], reversed_ids: set[uuid.UUID], as_of: date
) -> dict[str, date]:
    """References of the investigations open at `as_of`, with the date each has been open since (openings
    and closings in valid-time order: effective_on, then position)."""
    steps = sorted(
        (
            (event.effective_on, position, event)
            for position, event in known
            if isinstance(event, (InvestigationOpened, InvestigationClosed))
            and event.effective_on <= as_of
            and recorded_id(event) not in reversed_ids
        ),
        key=lambda step: (step[0], step[1]),
    )
    opened: dict[str, date] = {}
    for effective_on, _position, event in steps:
        if isinstance(event, InvestigationOpened):
            # Opened again while open (recorded out of order): it has been open since the first opening.
            opened.setdefault(event.reference, effective_on)
        else:
            opened.pop(event.reference, None)
    return opened
