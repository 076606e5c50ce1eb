"""Deciding a posted event: check it against the rules, compute its points, fill in the server fields.

Pure functions: the caller supplies the cadre's state, the policy book, today's date, the new event's id
and (for a reversal) the target event with its log position. Nothing here reads a clock or a database.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import UNSET

from ledger.domain.cadre import CadreState, check_lifecycle, check_reversal, points_of
from ledger.domain.errors import InvalidInput
from ledger.domain.events import (
    SERVER_FIELDS,
    AppraisalRecorded,
    CadreEvent,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    MeritAwarded,
    PolicyPublished,
    RecallCompleted,
    RecallOrdered,
    TenureAccrued,
    UnitEvent,
    VetoApplied,
    type_of,
)
from ledger.domain.periods import parse_period
from ledger.domain.points import ZERO
from ledger.domain.units import UnitsDraft, UnitsKnown, check_unit_event
from ledger.policy import rules
from ledger.policy.book import PolicyBook
from ledger.policy.counting import sanction_appraisal_years
from ledger.policy.load import load_policy
from ledger.store.mapper import encode_event
from ledger.wire import check_event, refuse_nul

__all__ = [
    "check_client_fields",
    "client_fingerprint",
    "decide",
    "decide_policy",
    "decide_unit",
    "fingerprint",
]

NO_POLICY = "none"


def check_client_fields(event: EventBase) -> None:
    """Refuse server fields in a client's event; `points` only with an `override_reason`."""
    for name in SERVER_FIELDS[type_of(event)]:
        if getattr(event, name) is not UNSET:
            raise InvalidInput(
                f"`{name}` is set by the ledger and must not be sent",
                field=name,
                rule="server_field_not_allowed",
            )
    if event.points is UNSET and event.override_reason is not None:
        raise InvalidInput(
            "an override reason is only sent with overriding points",
            field="override_reason",
            rule="override_reason_without_points",
        )
    if isinstance(event.points, Decimal) and event.override_reason is None:
        raise InvalidInput(
            "points are computed by the policy; to override them send an "
            "`override_reason` where the policy allows it",
            field="override_reason",
            rule="override_reason_required",
        )


def fingerprint(event: EventBase) -> bytes:
    """SHA-256 of what the client said: the event without server fields (points only if overridden).

    The same content posted again, in any key order, has the same fingerprint; a recorded event gives
    back the fingerprint of the submission it came from.
    """
    cleared: dict[str, Any] = {name: UNSET for name in SERVER_FIELDS[type_of(event)]}
    if event.override_reason is None:
        cleared["points"] = UNSET
    return hashlib.sha256(encode_event(msgspec.structs.replace(event, **cleared))).digest()


def client_fingerprint(event: EventBase, *, item: int | None = None) -> bytes:
    """`fingerprint` of an event that passed `check_client_fields`: it holds nothing the ledger sets (and
    points only with an override reason), so it is hashed as it is, without a copy. Text holding U+0000 is
    refused here, for every face: PostgreSQL cannot store it; so is what decoding would refuse (a struct
    built in Python is not checked by msgspec: `check_event`)."""
    encoded = encode_event(event)
    if b"\\u0000" in encoded:
        refuse_nul(msgspec.to_builtins(event), item)
    check_event(event, encoded, item=item)
    return hashlib.sha256(encoded).digest()


def decide(
    submission: CadreEvent,
    *,
    state: CadreState | None,
    book: PolicyBook,
    today: date,
    posted_by: str,
    event_id: uuid.UUID,
    target: EventBase | None = None,
    target_position: int | None = None,
) -> CadreEvent:
    """The event to record for `submission`, or InvalidInput naming the field and rule it breaks."""
    check_lifecycle(state, submission, today)
    computed: dict[str, Any] = {}
    policy_version = NO_POLICY
    points = ZERO
    if isinstance(submission, EntryReversed):
        assert state is not None
        if isinstance(submission.points, Decimal):
            raise InvalidInput(
                "a reversal counts its target's points, negated; it takes no override",
                field="points",
                rule="points_override_not_allowed",
            )
        target = check_reversal(state, submission, target)
        points = -points_of(target)
        assert target_position is not None, "a found target has a position"
        computed = {
            "target_type": type_of(target),
            "target_effective_on": target.effective_on,
            "target_position": target_position,
        }
        policy_version = target.policy_version if isinstance(target.policy_version, str) else NO_POLICY
    elif _counts_points(submission):
        assert state is not None
        published = book.in_force(submission.effective_on)
        policy = published.policy
        policy_version = published.version
        points, computed = _points(submission, state, policy)
        if isinstance(submission.points, Decimal):
            points = rules.check_override(
                policy, type_of(submission), submission.points, submission.override_reason
            )
    else:
        if isinstance(submission.points, Decimal):
            raise InvalidInput(
                f"{type_of(submission)} counts no points and takes no override",
                field="points",
                rule="points_override_not_allowed",
            )
        try:
            policy_version = book.in_force(submission.effective_on).version
        except InvalidInput:
            # Lifecycle events count no points: they may predate every policy.
            policy_version = NO_POLICY
    return msgspec.structs.replace(
        submission,
        event_id=event_id,
        posted_by=posted_by,
        points=points,
        policy_version=policy_version,
        **computed,
    )


_POINT_TYPES = (
    TenureAccrued,
    MeritAwarded,
    DeductionApplied,
    AppraisalRecorded,
    EvaluationRecorded,
    RecallOrdered,
    RecallCompleted,
    VetoApplied,
)


def _counts_points(event: EventBase) -> bool:
    return isinstance(event, _POINT_TYPES)


def _points(event: CadreEvent, state: CadreState, policy: Any) -> tuple[Decimal, dict[str, Any]]:
    """Points and computed payload fields of a scoring event under `policy`."""
    if isinstance(event, (TenureAccrued, RecallOrdered, EvaluationRecorded)):
        try:
            period = parse_period(event.period)
        except ValueError as error:
            raise InvalidInput(str(error), field="period", rule="period_invalid") from None
    if isinstance(event, TenureAccrued):
        if not period.first_day <= event.effective_on <= period.last_day:
            raise InvalidInput(
                f"an accrual for {period.name} is dated within it ({period.first_day}…{period.last_day})",
                field="effective_on",
                rule="accrual_must_fall_in_period",
            )
        accrual = rules.tenure_accrual(
            policy,
            service_started_on=state.service_started_on,
            grade_starts=state.grade_starts(),
            accrued_through=state.tenure_accrued_through,
            period_end=event.effective_on,
        )
        return accrual.points, {
            "service_years": accrual.service_years,
            "grade_years": accrual.grade_years,
        }
    if isinstance(event, MeritAwarded):
        year_total = state.merits_by_year.get(event.effective_on.year, ZERO)
        deed_counted = state.deeds.get(event.deed) if event.deed is not None else None
        return rules.merit_points(
            policy, event.award, event.level, year_total=year_total, deed_counted=deed_counted
        ), {}
    if isinstance(event, DeductionApplied):
        terms = rules.deduction_terms(policy, event.kind, event.level)
        years = sanction_appraisal_years(
            policy.deductions.of(event.kind).appraisal_years, event.effective_on, terms.gate_months
        )
        return terms.points, {
            "gate_months": terms.gate_months,
            "appraisal_cap": terms.appraisal_cap,
            "appraisal_years": years,
        }
    if isinstance(event, AppraisalRecorded):
        if event.year > event.effective_on.year:
            raise InvalidInput(
                f"the appraisal of {event.year} cannot be recorded in {event.effective_on.year}",
                field="year",
                rule="appraisal_year_must_not_be_in_future",
            )
        # The points of the result as recorded. A sanction or an investigation may make the year count a
        # lower result; that is decided when reading (ledger.policy.counting), whichever came first.
        return rules.appraisal_points(policy, event.result), {}
    if isinstance(event, EvaluationRecorded):
        weighted, points = rules.evaluation_terms(policy, event.scores)
        return points, {"weighted_score": weighted}
    if isinstance(event, RecallOrdered):
        return rules.recall_ordered_points(policy), {}
    if isinstance(event, RecallCompleted):
        return rules.recall_completed_points(policy, event.outcome), {}
    if isinstance(event, VetoApplied):
        if event.year > event.effective_on.year:
            raise InvalidInput(
                f"a veto for {event.year} cannot be applied in {event.effective_on.year}",
                field="year",
                rule="veto_year_must_not_be_in_future",
            )
        return rules.veto_points(policy), {"barred_awards": policy.veto.barred_awards}
    raise AssertionError(f"not a scoring event: {type_of(event)}")  # pragma: no cover


def decide_unit(
    submission: UnitEvent,
    *,
    units: UnitsKnown | UnitsDraft,
    book: PolicyBook,
    today: date,
    posted_by: str,
    event_id: uuid.UUID,
) -> UnitEvent:
    """The unit registration, rating panel or rating to record, checked against what the log knows of units
    and the unit rules of the policy in force on its date (InvalidInput naming the field and rule)."""
    try:
        published = book.in_force(submission.effective_on)
        dimensions, policy_version = published.policy.units.dimensions, published.version
    except InvalidInput:  # before every policy: no dimensions to check
        dimensions, policy_version = {}, NO_POLICY
    check_unit_event(submission, units, today=today, dimensions=dimensions)
    return msgspec.structs.replace(
        submission, event_id=event_id, posted_by=posted_by, points=ZERO, policy_version=policy_version
    )


def decide_policy(
    submission: PolicyPublished,
    *,
    book: PolicyBook,
    today: date,
    posted_by: str,
    event_id: uuid.UUID,
) -> PolicyPublished:
    """The `policy.published` event to record, after the rulebook and its publication are checked."""
    if submission.effective_on > today:
        raise InvalidInput(
            f"{submission.effective_on} is later than today ({today})",
            field="effective_on",
            rule="effective_on_must_not_be_in_future",
        )
    if isinstance(submission.points, Decimal):
        raise InvalidInput("a policy counts no points", field="points", rule="points_override_not_allowed")
    policy = load_policy(submission.body)
    if policy.version != submission.version:
        raise InvalidInput(
            f"the body says version {policy.version!r}",
            field="version",
            rule="policy_version_mismatch",
        )
    if policy.effective_from != submission.effective_from:
        raise InvalidInput(
            f"the body says effective_from {policy.effective_from}",
            field="effective_from",
            rule="policy_effective_from_mismatch",
        )
    if submission.version in book:
        raise InvalidInput(
            f"policy version {submission.version} is already published; publish a new version",
            field="version",
            rule="policy_version_exists",
        )
    return msgspec.structs.replace(
        submission,
        event_id=event_id,
        posted_by=posted_by,
        points=ZERO,
        policy_version=submission.version,
    )
