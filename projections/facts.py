"""Facts: what each event contributes to the read models, as a compact, storable record.

`fact_of(position, event)` is a pure function of one recorded event. A fact keeps the event's place in
both time axes (`position`; `effective_on` and `counts_from` as day numbers), its cadre, its points in
cents, and the few details a read model needs (a unit, a grade, an appraisal result, a gate). A reversal's
fact names its target's position: folding it marks the target reversed from the reversal's position on.

Facts are the rows of the persisted read model and the input of the in-memory index; the read models are
folds over facts, so they are folds over events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Final

import msgspec

from ledger.domain.events import (
    AWARDS,
    AppraisalRecorded,
    CadreDeparted,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    KeyEvent,
    MeritAwarded,
    PolicyPublished,
    RatingPanelDrawn,
    RecallCompleted,
    RecallOrdered,
    SigningKeyEvent,
    TenureAccrued,
    UnitRated,
    UnitRegistered,
    VetoApplied,
)

__all__ = [
    "COMPONENTS",
    "EMPTY_DIGEST",
    "FACTS_FORMAT",
    "NEVER",
    "Fact",
    "FactsDigest",
    "Kind",
    "cents_of",
    "day",
    "fact_of",
    "facts_of_stored",
    "from_day",
    "integer",
    "score_cents",
]

# Components of a total, in the order of `Components`; a veto's points count with deductions.
COMPONENTS: Final = ("tenure", "merit", "deductions", "appraisal", "evaluation", "recall")
NO_COMPONENT: Final = -1
# The reversal position of a fact no reversal has taken back.
NEVER: Final = 2**63 - 1


class Kind:
    """Fact kinds (stored as small integers: never renumber, only add)."""

    POLICY = 0
    REGISTERED = 1
    TRANSFERRED = 2
    GRADE_CHANGED = 3
    LEFT_LEADERSHIP = 4
    DEPARTED = 5
    TENURE = 6
    MERIT = 7
    DEDUCTION = 8
    APPRAISAL = 9
    EVALUATION = 10
    RECALL_ORDERED = 11
    RECALL_COMPLETED = 12
    VETO = 13
    INVESTIGATION_OPENED = 14
    INVESTIGATION_CLOSED = 15
    REVERSAL = 16
    # An API key's event (`key.created`, `key.revoked`) or a signing key's (`signing_key.*`): about no
    # cadre, counts nothing, folds as nothing.
    # It is a fact all the same, so that every position of the log has one.
    KEY = 17
    # Units rated by enterprises (市场主体评部门): about a unit or a panel, no cadre (`unit_index.py`).
    UNIT_REGISTERED = 18
    PANEL_DRAWN = 19
    UNIT_RATED = 20


COMPONENT_OF_KIND: Final[dict[int, int]] = {
    Kind.TENURE: 0,
    Kind.MERIT: 1,
    Kind.DEDUCTION: 2,
    Kind.VETO: 2,
    Kind.APPRAISAL: 3,
    Kind.EVALUATION: 4,
    Kind.RECALL_ORDERED: 5,
    Kind.RECALL_COMPLETED: 5,
}

_EPOCH: Final = date(1970, 1, 1).toordinal()
AWARD_CODES: Final[dict[str, int]] = {award: code for code, award in enumerate(AWARDS)}

Detail = tuple[str | int | bool | None, ...]


def day(value: date) -> int:
    """Days since 1970-01-01: dates as small integers for columns."""
    return value.toordinal() - _EPOCH


def from_day(number: int) -> date:
    return date.fromordinal(number + _EPOCH)


def integer(value: str | int | bool | None) -> int:
    """A detail that holds a number (a day, a year, months)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a number in a fact's detail, got {value!r}")
    return value


def score_cents(score: str) -> int:
    """A rating's score ("87", "87.5", "100.00": at most two places) as an exact number of hundredths."""
    return int(Decimal(score).scaleb(2))


def cents_of(points: Decimal) -> int:
    """Points (two places) as an exact integer number of cents."""
    return int(points.scaleb(2))


# The shape of facts and their details. Persisted read models of another format are rebuilt from the log
# when opened (`ledger.projections.service`): bump it whenever a detail changes. 4: tracking rows carry the
# digest of the facts and the log's hash (rows of format 3 have none, so they are rebuilt).
FACTS_FORMAT: Final = 4


class Fact(msgspec.Struct, array_like=True, frozen=True):
    """One event's contribution. `detail` depends on `kind` (see `fact_of`): a deduction's kind, gate
    months, appraisal cap and the appraisal years it caps; an appraisal's year, result and policy version;
    a veto's year and the awards it bars."""

    position: int
    kind: int
    cadre: str | None
    effective_on: int
    counts_from: int
    cents: int
    target: int  # a reversal's target position, else 0
    detail: Detail = ()
    # A merit's award (its index in AWARDS: a veto may bar it), else -1. A column of its own rather than a
    # detail: merits are most of a log, and a detail costs a decode per row when the facts are loaded.
    award: int = -1


# The digest of a version's facts.
#
# SHA-256 over the concatenated MessagePack encodings of the facts in position order — each fact an array
# of its nine fields, so the encoding is self-delimiting and a row's every column is covered. Hashing the
# stream (rather than chaining one hash per fact) makes the digest independent of how facts are paged:
# one C call encodes a page, one hashes it (about 0.1 s for a million facts). The running state lives in
# the process that folded the facts; a process that loads them recomputes it from position 1.

_fact_encoder = msgspec.msgpack.Encoder()
EMPTY_DIGEST: Final = hashlib.sha256().digest()


def _array_header_length(count: int) -> int:
    """Bytes of MessagePack's array header for `count` items (fixarray, array 16, array 32)."""
    return 1 if count < 16 else 3 if count < 1 << 16 else 5


class FactsDigest:
    """The running digest of facts folded in position order."""

    __slots__ = ("_hash",)

    def __init__(self, state: Any = None) -> None:
        self._hash = state if state is not None else hashlib.sha256()

    def update(self, facts: Sequence[Fact]) -> None:
        if facts:
            encoded = _fact_encoder.encode(facts)
            self._hash.update(memoryview(encoded)[_array_header_length(len(facts)) :])

    def extended(self, facts: Sequence[Fact]) -> FactsDigest:
        """A copy with `facts` folded in (this one unchanged)."""
        copy = FactsDigest(self._hash.copy())
        copy.update(facts)
        return copy

    def digest(self) -> bytes:
        return bytes(self._hash.digest())


def _points(event: EventBase) -> int:
    return cents_of(event.points) if isinstance(event.points, Decimal) else 0


def fact_of(position: int, event: EventBase) -> Fact:
    """The fact of the event recorded at `position`."""
    cadre = getattr(event, "cadre_id", None)
    effective = day(event.effective_on)
    cents = _points(event)
    detail: Detail = ()
    award = -1
    counts_from = effective
    target = 0
    if isinstance(event, TenureAccrued):
        kind = Kind.TENURE
    elif isinstance(event, MeritAwarded):
        kind = Kind.MERIT
        award = AWARD_CODES[event.award]
    elif isinstance(event, EvaluationRecorded):
        kind = Kind.EVALUATION
    elif isinstance(event, DeductionApplied):
        kind = Kind.DEDUCTION
        gate = event.gate_months if isinstance(event.gate_months, int) else 0
        cap = event.appraisal_cap if isinstance(event.appraisal_cap, str) else None
        years = (
            event.appraisal_years if isinstance(event.appraisal_years, tuple) else (event.effective_on.year,)
        )
        detail = (event.kind, gate, cap, *years)
    elif isinstance(event, AppraisalRecorded):
        kind = Kind.APPRAISAL
        version = event.policy_version if isinstance(event.policy_version, str) else None
        detail = (event.year, event.result, version)
    elif isinstance(event, RecallOrdered):
        kind = Kind.RECALL_ORDERED
        detail = (event.period, event.reason)
    elif isinstance(event, RecallCompleted):
        kind = Kind.RECALL_COMPLETED
        detail = (event.outcome,)
    elif isinstance(event, VetoApplied):
        kind = Kind.VETO
        barred = event.barred_awards if isinstance(event.barred_awards, tuple) else ()
        detail = (event.year, *barred)
    elif isinstance(event, InvestigationOpened):
        kind = Kind.INVESTIGATION_OPENED
        detail = (event.reference,)
    elif isinstance(event, InvestigationClosed):
        kind = Kind.INVESTIGATION_CLOSED
        detail = (event.reference,)
    elif isinstance(event, CadreRegistered):
        kind = Kind.REGISTERED
        detail = (
            event.name,
            event.unit_id,
            event.grade,
            day(event.grade_since),
            event.leadership,
            event.principal,
            day(event.service_started_on),
        )
    elif isinstance(event, CadreTransferred):
        kind = Kind.TRANSFERRED
        # A transfer's `principal`, when sent; older transfers keep the detail they always had.
        detail = (event.unit_id,) if event.principal is None else (event.unit_id, event.principal)
    elif isinstance(event, CadreGradeChanged):
        kind = Kind.GRADE_CHANGED
        detail = (event.grade,)
    elif isinstance(event, CadreLeftLeadership):
        kind = Kind.LEFT_LEADERSHIP
    elif isinstance(event, CadreDeparted):
        kind = Kind.DEPARTED
        detail = (event.reason,)
    elif isinstance(event, EntryReversed):
        kind = Kind.REVERSAL
        if isinstance(event.target_effective_on, date):
            counts_from = day(event.target_effective_on)
        target = event.target_position if isinstance(event.target_position, int) else 0
    elif isinstance(event, PolicyPublished):
        kind = Kind.POLICY
        detail = (event.version, day(event.effective_from), event.body)
    elif isinstance(event, KeyEvent | SigningKeyEvent):
        kind = Kind.KEY
    elif isinstance(event, UnitRegistered):
        kind = Kind.UNIT_REGISTERED
        detail = (event.unit_id, event.name, event.kind, event.parent)
    elif isinstance(event, RatingPanelDrawn):
        kind = Kind.PANEL_DRAWN
        detail = (event.period, event.rater_kind, len(event.raters), event.method, event.seed)
    elif isinstance(event, UnitRated):
        kind = Kind.UNIT_RATED
        detail = (
            event.unit_id,
            event.period,
            event.rater.kind,
            event.rater.id,
            score_cents(event.score),
            event.verdict,
        )
    else:  # pragma: no cover - every event type is listed above
        raise TypeError(f"no fact for {type(event).__name__}")
    return Fact(position, kind, cadre, effective, counts_from, cents, target, detail, award)


# Reading facts straight from the stored format.
#
# Decoding each event into its full struct (UUIDs, sources, Decimals, Literal checks) costs more than all the
# rest of a rebuild. Facts need a handful of fields, so `facts_of_stored` decodes the stored JSON (see
# `ledger.store.mapper`) into one flat struct that skips every other field; dates are read from text through
# a cache (a log has a few thousand distinct dates) and points from their two-place text. It must give what
# `fact_of` gives for every event: tests/unit/test_projection_facts.py holds them to each other.

KIND_OF_TYPE: Final[dict[str, int]] = {
    "policy.published": Kind.POLICY,
    "cadre.registered": Kind.REGISTERED,
    "cadre.transferred": Kind.TRANSFERRED,
    "cadre.grade_changed": Kind.GRADE_CHANGED,
    "cadre.left_leadership": Kind.LEFT_LEADERSHIP,
    "cadre.departed": Kind.DEPARTED,
    "tenure.accrued": Kind.TENURE,
    "merit.awarded": Kind.MERIT,
    "deduction.applied": Kind.DEDUCTION,
    "appraisal.recorded": Kind.APPRAISAL,
    "evaluation.recorded": Kind.EVALUATION,
    "recall.ordered": Kind.RECALL_ORDERED,
    "recall.completed": Kind.RECALL_COMPLETED,
    "veto.applied": Kind.VETO,
    "investigation.opened": Kind.INVESTIGATION_OPENED,
    "investigation.closed": Kind.INVESTIGATION_CLOSED,
    "entry.reversed": Kind.REVERSAL,
    "key.created": Kind.KEY,
    "key.revoked": Kind.KEY,
    "signing_key.published": Kind.KEY,
    "signing_key.retired": Kind.KEY,
    "unit.registered": Kind.UNIT_REGISTERED,
    "rating.panel_drawn": Kind.PANEL_DRAWN,
    "unit.rated": Kind.UNIT_RATED,
}


class _StoredRater(msgspec.Struct):
    kind: str
    id: str


class _Stored(msgspec.Struct):
    """The fields of a stored event that facts read; every other field is skipped unparsed."""

    type: str
    effective_on: str
    cadre_id: str | None = None
    points: str | None = None
    name: str | None = None
    unit_id: str | None = None
    grade: str | None = None
    grade_since: str | None = None
    leadership: bool = False
    principal: bool | None = None
    service_started_on: str | None = None
    kind: str | None = None
    gate_months: int | None = None
    appraisal_cap: str | None = None
    appraisal_years: list[int] | None = None
    award: str | None = None
    barred_awards: list[str] | None = None
    policy_version: str | None = None
    year: int | None = None
    result: str | None = None
    period: str | None = None
    reason: str | None = None
    outcome: str | None = None
    reference: str | None = None
    target_effective_on: str | None = None
    target_position: int | None = None
    version: str | None = None
    effective_from: str | None = None
    body: str | None = None
    parent: str | None = None
    rater_kind: str | None = None
    raters: list[str] | None = None
    method: str | None = None
    seed: str | None = None
    rater: _StoredRater | None = None
    score: str | None = None
    verdict: str | None = None


_stored_decoder = msgspec.json.Decoder(_Stored)


class _StoredKeyEvent(msgspec.Struct):
    """What a key event's fact reads: its fields share names with a registration's (`principal`)."""

    effective_on: str


_key_event_decoder = msgspec.json.Decoder(_StoredKeyEvent)
# The stored JSON begins with the `type` tag (`ledger.store.mapper`): API keys and signing keys.
_KEY_EVENT_PREFIXES: Final = (b'{"type":"key.', b'{"type":"signing_key.')
_DAYS: dict[str, int] = {}


def _day_of(text: str) -> int:
    number = _DAYS.get(text)
    if number is None:
        number = _DAYS[text] = day(date.fromisoformat(text))
    return number


def facts_of_stored(rows: Iterable[tuple[int, bytes]]) -> list[Fact]:
    """The facts of stored events `(position, stored JSON)`: the same as `fact_of` of the decoded events."""
    facts = []
    decode = _stored_decoder.decode
    for position, state in rows:
        if state.startswith(_KEY_EVENT_PREFIXES):
            effective = _day_of(_key_event_decoder.decode(state).effective_on)
            facts.append(Fact(position, Kind.KEY, None, effective, effective, 0, 0, (), -1))
            continue
        event = decode(state)
        kind = KIND_OF_TYPE[event.type]
        effective = _day_of(event.effective_on)
        # Stored points always have two places ("-2.00"): without the point they are cents.
        cents = int(event.points.replace(".", "")) if event.points is not None else 0
        counts_from = effective
        target = 0
        detail: Detail = ()
        award = -1
        if kind in _PLAIN_KINDS:
            pass
        elif kind == Kind.MERIT:
            award = AWARD_CODES[event.award]  # type: ignore[index]
        elif kind == Kind.DEDUCTION:
            years = (
                event.appraisal_years if event.appraisal_years is not None else [effective_year(effective)]
            )
            detail = (event.kind, event.gate_months or 0, event.appraisal_cap, *years)
        elif kind == Kind.APPRAISAL:
            detail = (event.year, event.result, event.policy_version)
        elif kind == Kind.RECALL_ORDERED:
            detail = (event.period, event.reason)
        elif kind == Kind.RECALL_COMPLETED:
            detail = (event.outcome,)
        elif kind == Kind.VETO:
            detail = (event.year, *(event.barred_awards or ()))
        elif kind in (Kind.INVESTIGATION_OPENED, Kind.INVESTIGATION_CLOSED):
            detail = (event.reference,)
        elif kind == Kind.REGISTERED:
            assert event.grade_since is not None and event.service_started_on is not None
            detail = (
                event.name,
                event.unit_id,
                event.grade,
                _day_of(event.grade_since),
                event.leadership,
                event.principal,
                _day_of(event.service_started_on),
            )
        elif kind == Kind.TRANSFERRED:
            detail = (event.unit_id,) if event.principal is None else (event.unit_id, event.principal)
        elif kind == Kind.GRADE_CHANGED:
            detail = (event.grade,)
        elif kind == Kind.DEPARTED:
            detail = (event.reason,)
        elif kind == Kind.REVERSAL:
            if event.target_effective_on is not None:
                counts_from = _day_of(event.target_effective_on)
            target = event.target_position or 0
        elif kind == Kind.POLICY:
            assert event.effective_from is not None
            detail = (event.version, _day_of(event.effective_from), event.body)
        elif kind == Kind.UNIT_RATED:
            assert event.rater is not None and event.score is not None
            detail = (
                event.unit_id,
                event.period,
                event.rater.kind,
                event.rater.id,
                score_cents(event.score),
                event.verdict,
            )
        elif kind == Kind.UNIT_REGISTERED:
            detail = (event.unit_id, event.name, event.kind, event.parent)
        elif kind == Kind.PANEL_DRAWN:
            detail = (event.period, event.rater_kind, len(event.raters or ()), event.method, event.seed)
        facts.append(
            Fact(position, kind, event.cadre_id, effective, counts_from, cents, target, detail, award)
        )
    return facts


_PLAIN_KINDS: Final = frozenset({Kind.TENURE, Kind.EVALUATION, Kind.LEFT_LEADERSHIP})


def effective_year(number: int) -> int:
    """The calendar year of a day number."""
    return from_day(number).year
