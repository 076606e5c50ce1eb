"""The events of the ledger (SPEC §3), as msgspec structs: one flat struct per type, a tagged union on `type`.

A struct carries the envelope (identity, valid time, source, evidence, points) and its payload. Fields the
ledger sets — `event_id`, `posted_by`, `points`, `policy_version` and a few computed payload fields — default
to `UNSET`: a client posting one of them is refused (`server_field_not_allowed`), the ledger fills them in
before the event is recorded. `position` and `recorded_at` are not part of the struct at all: they are
assigned in the transaction that records the event and live beside it (see `ledger.integrity`).

Events are facts in the past tense. They are never edited; a correction is an `entry.reversed` event.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ledger.domain.periods import PERIOD_PATTERN

__all__ = [
    "AWARDS",
    "CADRE_EVENT_TYPES",
    "DEDUCTION_KINDS",
    "EVENT_TYPES",
    "GRADES",
    "KEY_EVENT_TYPES",
    "LEVELS",
    "POSTABLE_EVENT_TYPES",
    "RATER_KINDS",
    "RESULTS",
    "SERVER_FIELDS",
    "UNIT_EVENT_TYPES",
    "VERDICTS",
    "AppraisalRecorded",
    "CadreDeparted",
    "CadreEvent",
    "CadreGradeChanged",
    "CadreLeftLeadership",
    "CadreRegistered",
    "CadreTransferred",
    "DeductionApplied",
    "EntryReversed",
    "EvaluationRecorded",
    "Event",
    "EventBase",
    "InvestigationClosed",
    "InvestigationOpened",
    "KeyCreated",
    "KeyEvent",
    "KeyRevoked",
    "MeritAwarded",
    "PolicyPublished",
    "Rater",
    "RatingPanelDrawn",
    "RecallCompleted",
    "RecallOrdered",
    "Scores",
    "SigningKeyEvent",
    "SigningKeyPublished",
    "SigningKeyRetired",
    "Source",
    "TenureAccrued",
    "UnitEvent",
    "UnitRated",
    "UnitRegistered",
    "VetoApplied",
    "recorded_id",
    "type_of",
]

# Limits on every string, as named constants. msgspec applies these patterns with `re.search` whenever it
# decodes an event — a stored one too — and in Python `$` also matches before a final line break, so they
# let "C00001\n" through. They stay as the log was written with them, so that every recorded event still
# reads; input is held to the whole string on every face by `ledger.wire.check_names` (and parameters by
# `ledger.wire.whole`). In the OpenAPI document (ECMA-262) `$` already means the end.
CADRE_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
UNIT_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
SYSTEM_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,64}$"
VERSION_PATTERN: Final = r"^[A-Za-z0-9._-]{1,32}$"
SOURCE_KEY_LENGTH_MAX: Final = 200
DOCUMENT_LENGTH_MAX: Final = 200
NOTE_LENGTH_MAX: Final = 2_000
NAME_LENGTH_MAX: Final = 100
REASON_LENGTH_MAX: Final = 2_000
POLICY_BODY_LENGTH_MAX: Final = 200_000

CadreId = Annotated[str, Meta(pattern=CADRE_ID_PATTERN)]
UnitId = Annotated[str, Meta(pattern=UNIT_ID_PATTERN)]
PeriodName = Annotated[str, Meta(pattern=PERIOD_PATTERN)]
Year = Annotated[int, Meta(ge=1950, le=2200)]
Text = Annotated[str, Meta(min_length=1, max_length=REASON_LENGTH_MAX)]

# The official grade titles (《公务员职务与职级并行规定》), lowest first.
Grade = Literal[
    "二级科员",
    "一级科员",
    "四级主任科员",
    "三级主任科员",
    "二级主任科员",
    "一级主任科员",
    "四级调研员",
    "三级调研员",
    "二级调研员",
    "一级调研员",
    "二级巡视员",
    "一级巡视员",
]
GRADES: Final[tuple[Grade, ...]] = get_args(Grade)
Level = Literal["national", "provincial", "municipal", "county", "unit"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
Award = Literal[
    "citation",
    "merit_third_class",
    "merit_second_class",
    "merit_first_class",
    "honorary_title",
    "commendation",
    "performance_award",
]
AWARDS: Final[tuple[Award, ...]] = get_args(Award)
DeductionKind = Literal[
    "criticism",
    "admonishment",
    "party_warning",
    "party_serious_warning",
    "government_warning",
    "demerit",
    "major_demerit",
    "demotion",
    "dismissal",
    "organizational_adjustment",
]
DEDUCTION_KINDS: Final[tuple[DeductionKind, ...]] = get_args(DeductionKind)
# Appraisal results, best first.
Result = Literal["excellent", "competent", "basically_competent", "incompetent", "ungraded"]
RESULTS: Final[tuple[Result, ...]] = get_args(Result)
DepartureReason = Literal["retired", "resigned", "dismissed", "deceased", "transferred_out"]
RecallOutcome = Literal["passed", "failed"]


class Source(Struct, frozen=True, forbid_unknown_fields=True):
    """Who sent an event, and the sender's idempotency key: `(system, key)` is unique for ever."""

    system: Annotated[str, Meta(pattern=SYSTEM_PATTERN)]
    key: Annotated[str, Meta(min_length=1, max_length=SOURCE_KEY_LENGTH_MAX)]


class EventBase(
    Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
    omit_defaults=False,
):
    """The envelope shared by every event."""

    event_id: uuid.UUID | UnsetType = UNSET
    effective_on: date
    source: Source
    posted_by: str | UnsetType = UNSET
    document: Annotated[str, Meta(max_length=DOCUMENT_LENGTH_MAX)] | None = None
    note: Annotated[str, Meta(max_length=NOTE_LENGTH_MAX)] | None = None
    points: Decimal | UnsetType = UNSET
    override_reason: Text | None = None
    policy_version: str | UnsetType = UNSET

    @property
    def type(self) -> str:
        return str(type(self).__struct_config__.tag)


class CadreEvent(EventBase, frozen=True, kw_only=True):
    """An event about one cadre; the cadre's aggregate records it."""

    cadre_id: CadreId


class CadreRegistered(CadreEvent, frozen=True, kw_only=True, tag="cadre.registered"):
    """A cadre enters the scheme."""

    name: Annotated[str, Meta(min_length=1, max_length=NAME_LENGTH_MAX)]
    unit_id: UnitId
    grade: Grade
    leadership: bool
    principal: bool
    service_started_on: date
    grade_since: date


class CadreTransferred(CadreEvent, frozen=True, kw_only=True, tag="cadre.transferred"):
    """A cadre moves to another unit: with `principal` true as its principal leader (主职), false not as
    one; absent (and in every transfer recorded before the field existed), the cadre stays what it was."""

    unit_id: UnitId
    principal: bool | None = None


class CadreGradeChanged(CadreEvent, frozen=True, kw_only=True, tag="cadre.grade_changed"):
    """A cadre's grade changes; the new grade counts from `effective_on`."""

    grade: Grade


class CadreLeftLeadership(CadreEvent, frozen=True, kw_only=True, tag="cadre.left_leadership"):
    """A cadre leaves a leadership post and stays in the scheme (cohort `left_leadership`)."""


class CadreDeparted(CadreEvent, frozen=True, kw_only=True, tag="cadre.departed"):
    """A cadre leaves the scheme; nothing may be dated after `effective_on`."""

    reason: DepartureReason


class TenureAccrued(CadreEvent, frozen=True, kw_only=True, tag="tenure.accrued"):
    """Base points for tenure up to the end of `period` (the ledger computes years and points)."""

    period: PeriodName
    service_years: Decimal | UnsetType = UNSET
    grade_years: Decimal | UnsetType = UNSET


class MeritAwarded(CadreEvent, frozen=True, kw_only=True, tag="merit.awarded"):
    """A merit award. `deed` names the deed: one deed awarded at several levels counts once."""

    award: Award
    level: Level
    deed: Annotated[str, Meta(min_length=1, max_length=DOCUMENT_LENGTH_MAX)] | None = None


class DeductionApplied(CadreEvent, frozen=True, kw_only=True, tag="deduction.applied"):
    """An accountability deduction; the policy sets points, gate months and appraisal effect.

    `appraisal_years` are the years whose annual appraisal is at most `appraisal_cap` (set from the
    policy's `appraisal_years` rule when posted; a deduction recorded before the field existed caps the
    year of its `effective_on`).
    """

    kind: DeductionKind
    level: Level
    gate_months: int | UnsetType = UNSET
    appraisal_cap: Result | UnsetType | None = UNSET
    appraisal_years: tuple[int, ...] | UnsetType = UNSET


class AppraisalRecorded(CadreEvent, frozen=True, kw_only=True, tag="appraisal.recorded"):
    """The annual appraisal result of `year`."""

    year: Year
    result: Result


class Scores(Struct, frozen=True, forbid_unknown_fields=True):
    """Evaluation scores, each 0–100 with at most two places."""

    self: Decimal
    section: Decimal
    leadership: Decimal


class EvaluationRecorded(CadreEvent, frozen=True, kw_only=True, tag="evaluation.recorded"):
    """Self / section / leadership evaluation of a period, weighted by the policy."""

    period: PeriodName
    scores: Scores
    weighted_score: Decimal | UnsetType = UNSET


class RecallOrdered(CadreEvent, frozen=True, kw_only=True, tag="recall.ordered"):
    """The cadre is sent back to the party school (回炉) for `period`."""

    period: PeriodName
    reason: Text


class RecallCompleted(CadreEvent, frozen=True, kw_only=True, tag="recall.completed"):
    """An open recall ends."""

    outcome: RecallOutcome


class VetoApplied(CadreEvent, frozen=True, kw_only=True, tag="veto.applied"):
    """One-vote veto (一票否决) for `year`: no red board, not eligible that year, and the awards in
    `barred_awards` (copied from the policy when posted; none for a veto recorded before the field existed)
    dated in that year count nothing."""

    year: Year
    reason: Text
    barred_awards: tuple[Award, ...] | UnsetType = UNSET


class InvestigationOpened(CadreEvent, frozen=True, kw_only=True, tag="investigation.opened"):
    """An investigation is opened; the cadre is not eligible while it is open."""

    reference: Annotated[str, Meta(min_length=1, max_length=DOCUMENT_LENGTH_MAX)]


class InvestigationClosed(CadreEvent, frozen=True, kw_only=True, tag="investigation.closed"):
    """An investigation with `reference` is closed."""

    reference: Annotated[str, Meta(min_length=1, max_length=DOCUMENT_LENGTH_MAX)]


class EntryReversed(CadreEvent, frozen=True, kw_only=True, tag="entry.reversed"):
    """A reversal (复核/申诉 outcome, or a correction) of an earlier event of the same cadre.

    Its `effective_on` is the date of the decision; its points are the target's, negated, and count from
    the target's effective date, which the ledger copies into `target_effective_on` with `target_type`.
    """

    target_event_id: uuid.UUID
    reason: Text
    target_type: str | UnsetType = UNSET
    target_effective_on: date | UnsetType = UNSET
    target_position: int | UnsetType = UNSET


class PolicyPublished(EventBase, frozen=True, kw_only=True, tag="policy.published"):
    """A rulebook, as TOML text, in force from `effective_from`."""

    version: Annotated[str, Meta(pattern=VERSION_PATTERN)]
    effective_from: date
    body: Annotated[str, Meta(min_length=1, max_length=POLICY_BODY_LENGTH_MAX)]


# API keys (`ledger.access`): the key table is a projection of these events, so that a key changed in the
# table behind the ledger's back disagrees with the chained log. They belong to no cadre and count nothing;
# the token's secret is never recorded, only its SHA-256. No recorded event predates these types, so their
# patterns hold to the whole string in decoding too: `$(?!\n)` refuses a final line break (and means in
# ECMA-262 what it means here).
KEY_ID_PATTERN: Final = r"^[0-9a-f]{16}$(?!\n)"
SECRET_SHA256_PATTERN: Final = r"^[0-9a-f]{64}$(?!\n)"
PRINCIPAL_PATTERN: Final = r"^[A-Za-z0-9._:@-]{1,64}$(?!\n)"
EVENT_TYPE_PATTERN: Final = r"^[a-z_]{1,32}\.[a-z_]{1,32}$(?!\n)"
KEY_EVENT_TYPES_MAX: Final = 32
KeyRole = Literal["poster", "reader", "auditor", "admin"]
KeyId = Annotated[str, Meta(pattern=KEY_ID_PATTERN)]
Instant = Annotated[datetime, Meta(tz=True)]


class KeyEvent(EventBase, frozen=True, kw_only=True):
    """An event about one API key, recorded in the stream `$keys` under the system `ledger.keys`."""

    key_id: KeyId


class KeyCreated(KeyEvent, frozen=True, kw_only=True, tag="key.created"):
    """A key was created: who holds it, what it may do, and the SHA-256 of its secret (never the secret).

    `adopted` marks a key that existed before keys were recorded in the log: its row was taken as it was,
    once, when the key store was first opened after the upgrade (docs/decisions.md).
    """

    principal: Annotated[str, Meta(pattern=PRINCIPAL_PATTERN)]
    role: KeyRole
    system: Annotated[str, Meta(pattern=SYSTEM_PATTERN)] | None
    event_types: Annotated[
        tuple[Annotated[str, Meta(pattern=EVENT_TYPE_PATTERN)], ...], Meta(max_length=KEY_EVENT_TYPES_MAX)
    ]
    secret_sha256: Annotated[str, Meta(pattern=SECRET_SHA256_PATTERN)]
    created_at: Instant
    demo: bool
    adopted: bool = False


class KeyRevoked(KeyEvent, frozen=True, kw_only=True, tag="key.revoked"):
    """A key was revoked: refused from now on, for ever."""

    revoked_at: Instant


PUBLIC_KEY_PATTERN: Final = r"^[0-9a-f]{64}$(?!\n)"


class SigningKeyEvent(EventBase, frozen=True, kw_only=True):
    """An event about one checkpoint signing key, recorded in the stream `$signing` under the system
    `ledger.signing`: the public half only; the private key lives in a file, never in the database."""

    key_id: KeyId


class SigningKeyPublished(SigningKeyEvent, frozen=True, kw_only=True, tag="signing_key.published"):
    """A signing key was made: checkpoints signed by `key_id` verify against `public_key` (the 32 raw
    bytes of an Ed25519 public key in hex; `key_id` is the first 16 hex digits of their SHA-256)."""

    algorithm: Literal["ed25519"]
    public_key: Annotated[str, Meta(pattern=PUBLIC_KEY_PATTERN)]
    published_at: Instant


class SigningKeyRetired(SigningKeyEvent, frozen=True, kw_only=True, tag="signing_key.retired"):
    """A signing key signs no more checkpoints; the ones it signed still verify."""

    retired_at: Instant


# Departments rated by enterprises (市场主体评部门): events about a unit or a rating panel, not about a cadre
# (no `cadre_id`). No recorded event predates these types, so their patterns hold to the whole string.
RATER_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,64}$(?!\n)"
UNIT_KIND_PATTERN: Final = r"^[a-z_]{1,32}$(?!\n)"
DIMENSION_PATTERN: Final = r"^[a-z_]{1,32}$(?!\n)"
# A score 0–100 as a decimal string with at most two places: "87", "87.5", "100.00".
SCORE_PATTERN: Final = r"^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)$(?!\n)"
PANEL_SIZE_MAX: Final = 10_000
DIMENSIONS_MAX: Final = 16
DRAW_TEXT_LENGTH_MAX: Final = 200
RaterKind = Literal["enterprise"]
RATER_KINDS: Final[tuple[RaterKind, ...]] = get_args(RaterKind)
Verdict = Literal["satisfied", "basically_satisfied", "dissatisfied"]
VERDICTS: Final[tuple[Verdict, ...]] = get_args(Verdict)
RaterId = Annotated[str, Meta(pattern=RATER_ID_PATTERN)]
ScoreText = Annotated[str, Meta(pattern=SCORE_PATTERN)]
WholeUnitId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$(?!\n)")]
DrawText = Annotated[str, Meta(min_length=1, max_length=DRAW_TEXT_LENGTH_MAX)]


class UnitEvent(EventBase, frozen=True, kw_only=True):
    """An event about a unit (stream `$unit:<unit_id>`) or a rating panel (stream `$panels`)."""


class UnitRegistered(UnitEvent, frozen=True, kw_only=True, tag="unit.registered"):
    """A unit's details: its name, its kind (`department`, `section`, `township`, …) and the unit it belongs
    to. A unit is known from the first cadre registered or moved into it; this adds its details, and a later
    one (by `effective_on`) changes them."""

    unit_id: WholeUnitId
    name: Annotated[str, Meta(min_length=1, max_length=NAME_LENGTH_MAX)]
    kind: Annotated[str, Meta(pattern=UNIT_KIND_PATTERN)]
    parent: WholeUnitId | None = None


class RatingPanelDrawn(UnitEvent, frozen=True, kw_only=True, tag="rating.panel_drawn"):
    """The raters drawn by lot (抽签) to rate the units for `period`: `method` and `seed` say how, so that
    anyone can draw again and compare. One panel per period and rater kind."""

    period: PeriodName
    rater_kind: RaterKind
    raters: Annotated[tuple[RaterId, ...], Meta(min_length=1, max_length=PANEL_SIZE_MAX)]
    method: DrawText
    seed: DrawText


class Rater(Struct, frozen=True, forbid_unknown_fields=True):
    """Who rated: a rater of the period's panel."""

    kind: RaterKind
    id: RaterId


class UnitRated(UnitEvent, frozen=True, kw_only=True, tag="unit.rated"):
    """One rater's rating of a unit for `period`: `score` 0–100 (a decimal string with at most two places),
    `scores` by the policy's dimensions (whose weighted mean `score` must be), and a verdict."""

    unit_id: WholeUnitId
    period: PeriodName
    rater: Rater
    score: ScoreText
    verdict: Verdict
    scores: (
        Annotated[
            dict[Annotated[str, Meta(pattern=DIMENSION_PATTERN)], ScoreText], Meta(max_length=DIMENSIONS_MAX)
        ]
        | None
    ) = None


Event = (
    CadreRegistered
    | CadreTransferred
    | CadreGradeChanged
    | CadreLeftLeadership
    | CadreDeparted
    | TenureAccrued
    | MeritAwarded
    | DeductionApplied
    | AppraisalRecorded
    | EvaluationRecorded
    | RecallOrdered
    | RecallCompleted
    | VetoApplied
    | InvestigationOpened
    | InvestigationClosed
    | EntryReversed
    | PolicyPublished
    | KeyCreated
    | KeyRevoked
    | SigningKeyPublished
    | SigningKeyRetired
    | UnitRegistered
    | RatingPanelDrawn
    | UnitRated
)

EVENT_CLASSES: Final[tuple[type[EventBase], ...]] = (
    CadreRegistered,
    CadreTransferred,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreDeparted,
    TenureAccrued,
    MeritAwarded,
    DeductionApplied,
    AppraisalRecorded,
    EvaluationRecorded,
    RecallOrdered,
    RecallCompleted,
    VetoApplied,
    InvestigationOpened,
    InvestigationClosed,
    EntryReversed,
    PolicyPublished,
    KeyCreated,
    KeyRevoked,
    SigningKeyPublished,
    SigningKeyRetired,
    UnitRegistered,
    RatingPanelDrawn,
    UnitRated,
)


def _tag(cls: type[EventBase]) -> str:
    return str(cls.__struct_config__.tag)


EVENT_TYPES: Final[dict[str, type[EventBase]]] = {_tag(cls): cls for cls in EVENT_CLASSES}
CADRE_EVENT_TYPES: Final = frozenset(name for name, cls in EVENT_TYPES.items() if issubclass(cls, CadreEvent))
# The key events: recorded only by the key stores (`ledger.access`, `ledger.signing`), never posted.
KEY_EVENT_TYPES: Final = frozenset(
    name for name, cls in EVENT_TYPES.items() if issubclass(cls, KeyEvent | SigningKeyEvent)
)
# About a unit or a rating panel: posted like cadre events, decided by `ledger.domain.units`.
UNIT_EVENT_TYPES: Final = frozenset(name for name, cls in EVENT_TYPES.items() if issubclass(cls, UnitEvent))
# What other systems post (policies are published by admins, key events recorded by the key stores).
POSTABLE_EVENT_TYPES: Final = CADRE_EVENT_TYPES | UNIT_EVENT_TYPES
# Reversible: every score or lifecycle event except a registration, a reversal or a policy.
REVERSIBLE_TYPES: Final = CADRE_EVENT_TYPES - {"cadre.registered", "entry.reversed"}

# Fields the ledger sets; a client must not send them. `points` is allowed with `override_reason`.
SERVER_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(
        field
        for field in (
            "event_id",
            "posted_by",
            "policy_version",
            "service_years",
            "grade_years",
            "gate_months",
            "appraisal_cap",
            "appraisal_years",
            "barred_awards",
            "weighted_score",
            "target_type",
            "target_effective_on",
            "target_position",
        )
        if field in cls.__struct_fields__
    )
    for name, cls in EVENT_TYPES.items()
}


def type_of(event: EventBase) -> str:
    """The event's `type` tag."""
    return str(type(event).__struct_config__.tag)


def recorded_id(event: EventBase) -> uuid.UUID:
    """The id of a recorded event (a client's event has none yet)."""
    if not isinstance(event.event_id, uuid.UUID):
        raise ValueError("the event is not recorded yet: it has no event_id")
    return event.event_id


def to_builtins(event: EventBase) -> dict[str, Any]:
    """The event as JSON-ready builtins (dates and decimals as strings)."""
    result: dict[str, Any] = msgspec.to_builtins(event)
    return result
