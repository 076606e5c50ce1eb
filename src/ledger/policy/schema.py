"""The shape of a policy (the rulebook, SPEC §5): msgspec structs decoded strictly from TOML.

A policy is a TOML document. Every table is a frozen struct that refuses unknown keys, so a misspelt
key is an error rather than a silently ignored rule. Decimal figures are written as strings
(`"1.00"`, `"0.3"`): a TOML float such as `1.1` is binary floating point before we ever see it, so
it is refused. Two marker types carry the decimals — `PointValue` (points, at most two places) and
`DecimalValue` (rates, shares and years, at most four places); `decimal_hook` turns the strings into
them while decoding.

Tables keyed by the words other systems post — awards, levels, deduction kinds, appraisal results —
are structs whose fields are exactly the domain tuples of `ledger.domain.events` (checked when this
module is imported), so a policy that forgets an award × level cell is refused naming the missing
key.

The shapes here say what a key may hold; the checks that relate several keys (weights sum to one,
ladder steps are consecutive …) live in `ledger.policy.load`.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from ledger.domain.events import (
    AWARDS,
    DEDUCTION_KINDS,
    LEVELS,
    RESULTS,
    VERSION_PATTERN,
    Award,
    DeductionKind,
    Level,
    Result,
)
from ledger.domain.points import POINTS_PATTERN, quantize

__all__ = [
    "APPRAISAL_YEARS",
    "BASES",
    "DECIMAL_PATTERN",
    "GATE_MONTHS_MAX",
    "OVERRIDABLE_EVENT_TYPES",
    "TIE_BREAKERS",
    "UNIT_TIE_BREAKERS",
    "AppraisalPoints",
    "AppraisalRules",
    "AppraisalYears",
    "Basis",
    "BoardRules",
    "DecimalValue",
    "DeductionRule",
    "DeductionTable",
    "EligibilityRules",
    "EscalationRules",
    "EvaluationRules",
    "EvaluationWeights",
    "LadderStep",
    "LevelPoints",
    "MeritRules",
    "MeritTable",
    "OverrideBounds",
    "PointValue",
    "Policy",
    "RankingRules",
    "RecallCompletedPoints",
    "RecallRules",
    "StandingRule",
    "TenureRules",
    "UnitLadderStep",
    "UnitRules",
    "VetoRules",
    "decimal_hook",
]

# Limits, as named constants.
GATE_MONTHS_MAX: Final = 120
TENURE_YEARS_MAX: Final = 60
BOARD_SIZE_MAX: Final = 1_000
RECALL_BOTTOM_COUNT_MAX: Final = 1_000
POOL_SIZE_MAX: Final = 1_000_000
LADDER_STEPS_MAX: Final = 12
# Whole strings (see POINTS_PATTERN in ledger.domain.points for why `$(?!\n)`).
ACTION_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$(?!\n)"
LABEL_LENGTH_MAX: Final = 100
# Rates, shares and years: up to four places is plenty (weights 0.3, shares 0.30, 0.05 points per
# score).
DECIMAL_PATTERN: Final = r"^-?[0-9]{1,6}(\.[0-9]{1,4})?$(?!\n)"

_POINTS_RE: Final = re.compile(POINTS_PATTERN)
_DECIMAL_RE: Final = re.compile(DECIMAL_PATTERN)


class PointValue(Decimal):
    """Points, written as a string with at most two places ("-2.00"); held with two places."""


class DecimalValue(Decimal):
    """A rate, share or number of years, written as a string with at most four places ("0.05")."""


def decimal_hook(kind: type, value: Any) -> Any:
    """msgspec's `dec_hook`: the decimal marker types from their strings; anything else is refused.

    msgspec reports the ValueError with the path of the offending key.
    """
    if kind is PointValue:
        if not isinstance(value, str) or not _POINTS_RE.fullmatch(value):
            raise ValueError(
                f'expected points as a string with at most two places such as "1.50", got {_describe(value)}'
            )
        return PointValue(quantize(Decimal(value)))
    if kind is DecimalValue:
        if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
            raise ValueError(
                f'expected a decimal string with at most four places such as "0.3", got {_describe(value)}'
            )
        return DecimalValue(value)
    raise NotImplementedError(f"no decoder for {kind!r}")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    # A TOML float or integer: say so, since the fix is to put quotes around it.
    return f"{type(value).__name__} {value!r}"


GateMonths = Annotated[int, Meta(ge=0, le=GATE_MONTHS_MAX)]
TenureYears = Annotated[int, Meta(ge=0, le=TENURE_YEARS_MAX)]
BoardSize = Annotated[int, Meta(ge=0, le=BOARD_SIZE_MAX)]
TieBreaker = Literal["grade_years", "service_years", "excellent_appraisals", "merit_points"]
TIE_BREAKERS: Final[tuple[str, ...]] = get_args(TieBreaker)
# What a ranking ranks: the cumulative total, or only the points whose valid date falls in the period.
Basis = Literal["total", "period"]
BASES: Final[tuple[str, ...]] = get_args(Basis)
# Which annual appraisals a sanction leaves at most its `appraisal_cap`: the year it is imposed; that year
# and the next (《公务员考核规定》 read for 记大过, 降级, 撤职); or every year of its influence period but the
# year the period ends (解除处分的当年及以后不受影响).
AppraisalYears = Literal["year", "year_and_next", "period"]
APPRAISAL_YEARS: Final[tuple[str, ...]] = get_args(AppraisalYears)
# The event types whose points come from the policy, and so the only ones an override can concern.
OverridableEventType = Literal[
    "tenure.accrued",
    "merit.awarded",
    "deduction.applied",
    "appraisal.recorded",
    "evaluation.recorded",
    "recall.ordered",
    "recall.completed",
    "veto.applied",
]
OVERRIDABLE_EVENT_TYPES: Final[tuple[str, ...]] = get_args(OverridableEventType)


class _Table(Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every policy table: frozen, and unknown keys are errors."""


class TenureRules(_Table, frozen=True):
    """Base points: per year of service and per year in the current grade, by month, capped."""

    service_points_per_year: PointValue
    service_years_max: TenureYears
    grade_points_per_year: PointValue
    grade_years_max: TenureYears


class LevelPoints(_Table, frozen=True):
    """Points by level, one key per level of `ledger.domain.events.LEVELS`."""

    national: PointValue
    provincial: PointValue
    municipal: PointValue
    county: PointValue
    unit: PointValue

    def at(self, level: Level) -> Decimal:
        """The points at `level`."""
        value: Decimal = getattr(self, level)
        return value


class MeritTable(_Table, frozen=True):
    """Merit points by award × level, one key per award of `ledger.domain.events.AWARDS`."""

    citation: LevelPoints
    merit_third_class: LevelPoints
    merit_second_class: LevelPoints
    merit_first_class: LevelPoints
    honorary_title: LevelPoints
    commendation: LevelPoints
    performance_award: LevelPoints

    def of(self, award: Award) -> LevelPoints:
        """The row of `award`."""
        row: LevelPoints = getattr(self, award)
        return row


class MeritRules(_Table, frozen=True):
    """Merit bonus: the award × level table and the most merit points a cadre may gain in a year."""

    annual_cap: PointValue
    points: MeritTable


class DeductionRule(_Table, frozen=True):
    """One deduction kind: points by level (≤ 0), influence period in months, and the appraisal cap.

    `appraisal_cap` is the best appraisal result the years named by `appraisal_years` may have; absent
    means no cap.
    """

    points: LevelPoints
    gate_months: GateMonths
    appraisal_cap: Result | None = None
    appraisal_years: AppraisalYears = "year"


class DeductionTable(_Table, frozen=True):
    """Deductions, one key per kind of `ledger.domain.events.DEDUCTION_KINDS`."""

    criticism: DeductionRule
    admonishment: DeductionRule
    party_warning: DeductionRule
    party_serious_warning: DeductionRule
    government_warning: DeductionRule
    demerit: DeductionRule
    major_demerit: DeductionRule
    demotion: DeductionRule
    dismissal: DeductionRule
    organizational_adjustment: DeductionRule

    def of(self, kind: DeductionKind) -> DeductionRule:
        """The rule of `kind`."""
        rule: DeductionRule = getattr(self, kind)
        return rule


class AppraisalPoints(_Table, frozen=True):
    """Points by annual appraisal result, one key per result of `ledger.domain.events.RESULTS`."""

    excellent: PointValue
    competent: PointValue
    basically_competent: PointValue
    incompetent: PointValue
    ungraded: PointValue

    def of(self, result: Result) -> Decimal:
        """The points of `result`."""
        value: Decimal = getattr(self, result)
        return value


class AppraisalRules(_Table, frozen=True):
    """Annual appraisal: points by result."""

    points: AppraisalPoints


class EvaluationWeights(_Table, frozen=True):
    """Weights of the self / section / leadership evaluations; they sum to exactly 1."""

    self: DecimalValue
    section: DecimalValue
    leadership: DecimalValue


class EvaluationRules(_Table, frozen=True):
    """Evaluation: the weighted score (0–100) times `points_per_score` gives the points."""

    weights: EvaluationWeights
    points_per_score: DecimalValue


class RecallCompletedPoints(_Table, frozen=True):
    """Points when a recall ends, by outcome."""

    passed: PointValue
    failed: PointValue


class RecallRules(_Table, frozen=True):
    """Training recall (回炉): points, and who is recalled — the bottom count or share of a scope.

    Exactly one of `bottom_count` and `bottom_share` is given. A scope smaller than `pool_size_min`
    recalls nobody: the bottom of a handful of cadres says little.
    """

    ordered_points: PointValue
    completed_points: RecallCompletedPoints
    pool_size_min: Annotated[int, Meta(ge=1, le=POOL_SIZE_MAX)]
    bottom_count: Annotated[int, Meta(ge=1, le=RECALL_BOTTOM_COUNT_MAX)] | None = None
    bottom_share: DecimalValue | None = None
    basis: Basis = "total"


class VetoRules(_Table, frozen=True):
    """One-vote veto (一票否决): its points, and the awards (评先评优) it makes count nothing in its year.

    Its main effect is on the red board and eligibility of its year.
    """

    points: PointValue
    barred_awards: tuple[Award, ...] = ()


class RankingRules(_Table, frozen=True):
    """Ranking: tie-breakers in order, each preferring the larger figure; then a shared rank."""

    tie_breakers: tuple[TieBreaker, ...] = ()


class StandingRule(_Table, frozen=True):
    """Standing for eligibility: in the top share of the scope, or at least `points_min`.

    Either may be absent; when both are given, meeting either suffices; when neither is, the check
    passes.
    """

    top_share: DecimalValue | None = None
    points_min: PointValue | None = None
    basis: Basis = "total"


class EligibilityRules(_Table, frozen=True):
    """Promotion eligibility.

    `years_in_grade_min` is keyed by the grade the cadre holds (a title of `GRADES`) with a required
    `default` for the others. Only years in grade whose appraisal result is in `counting_results`
    count toward it, and each excellent year shortens it by `excellent_year_shortens_by` years.
    `appraisal_required` is the worst result the latest appraisal may have (absent: none needed).
    """

    years_in_grade_min: dict[str, DecimalValue]
    excellent_year_shortens_by: DecimalValue
    counting_results: tuple[Result, ...]
    appraisal_required: Result | None = None
    standing: StandingRule = msgspec.field(default_factory=StandingRule)

    def years_in_grade_min_for(self, grade: str) -> Decimal:
        """The minimum years in `grade` before promotion (the grade's own entry, or the default)."""
        return self.years_in_grade_min.get(grade, self.years_in_grade_min["default"])


class BoardRules(_Table, frozen=True):
    """Red and black boards (红黑榜): how many cadres each lists."""

    red_count: BoardSize
    black_count: BoardSize
    basis: Basis = "total"


class LadderStep(_Table, frozen=True):
    """One rung of the escalation ladder: after `step` consecutive bottom periods, `action`."""

    step: Annotated[int, Meta(ge=1, le=LADDER_STEPS_MAX)]
    action: Annotated[str, Meta(pattern=ACTION_PATTERN)]
    label: Annotated[str, Meta(min_length=1, max_length=LABEL_LENGTH_MAX)]


class EscalationRules(_Table, frozen=True):
    """Escalation for consecutive periods in the bottom `bottom_count`; steps run 1, 2, … n."""

    bottom_count: Annotated[int, Meta(ge=1, le=BOARD_SIZE_MAX)]
    ladder: Annotated[tuple[LadderStep, ...], Meta(min_length=1, max_length=LADDER_STEPS_MAX)]
    basis: Basis = "total"


UnitAggregation = Literal["mean", "trimmed_mean"]
UnitTieBreaker = Literal["fewer_dissatisfied", "more_ratings"]
UNIT_TIE_BREAKERS: Final[tuple[UnitTieBreaker, ...]] = get_args(UnitTieBreaker)
UnitNamed = Literal["principal_leader", "nobody"]


class UnitLadderStep(_Table, frozen=True):
    """One rung of the units' ladder: after `step` consecutive periods in the bottom, `action`.

    What the action asks of the unit's principal leader may be a deduction the department posts
    (`deduction`, e.g. `admonishment` for 诫勉谈话) or the leader's removal from the post (`removes`,
    调离岗位): the read model then shows whether it was posted. Either is only a proposal.
    """

    step: Annotated[int, Meta(ge=1, le=LADDER_STEPS_MAX)]
    action: Annotated[str, Meta(pattern=ACTION_PATTERN)]
    label: Annotated[str, Meta(min_length=1, max_length=LABEL_LENGTH_MAX)]
    deduction: DeductionKind | None = None
    removes: bool = False


# Xiantao's ladder (仙桃, 市场主体评部门): bottom three once, twice, three times in a row.
XIANTAO_UNIT_LADDER: Final = (
    UnitLadderStep(step=1, action="commitment_speech_and_summons_talk", label="表态发言+约谈"),
    UnitLadderStep(step=2, action="admonishment_talk", label="诫勉谈话", deduction="admonishment"),
    UnitLadderStep(step=3, action="removal_from_post", label="调离岗位", removes=True),
)


class UnitRules(_Table, frozen=True):
    """Units rated by enterprises (市场主体评部门): how ratings make a unit's score, rank and ladder.

    `dimensions` (absent: none) are the parts a rating scores, with weights summing to one: a rating then
    carries `scores` for exactly these and its `score` is their weighted mean (rounded half up to two places).
    A unit's score for a period aggregates its ratings: their `mean`, or a `trimmed_mean` that drops
    `trim_share` of the ratings (rounded down) from each end. Fewer than `ratings_min` ratings: the unit is
    listed but not ranked. Units are ranked by score (rounded to two places), then by `tie_breakers`; still
    equal, they share a rank. The bottom `bottom_count` (ties at the edge included) climb `ladder` one step
    per consecutive period; an action `names` the unit's principal leader on the period's last day.
    """

    dimensions: dict[Annotated[str, Meta(pattern=r"^[a-z_]{1,32}$(?!\n)")], DecimalValue] = msgspec.field(
        default_factory=dict
    )
    aggregation: UnitAggregation = "mean"
    trim_share: DecimalValue | None = None
    ratings_min: Annotated[int, Meta(ge=1, le=POOL_SIZE_MAX)] = 1
    tie_breakers: tuple[UnitTieBreaker, ...] = ("fewer_dissatisfied",)
    bottom_count: Annotated[int, Meta(ge=1, le=BOARD_SIZE_MAX)] = 3
    ladder: Annotated[tuple[UnitLadderStep, ...], Meta(min_length=1, max_length=LADDER_STEPS_MAX)] = (
        XIANTAO_UNIT_LADDER
    )
    names: UnitNamed = "principal_leader"


class OverrideBounds(_Table, frozen=True):
    """A client may send `points` for `event_type`, within `points_min` … `points_max` inclusive."""

    event_type: OverridableEventType
    points_min: PointValue
    points_max: PointValue


class Policy(_Table, frozen=True, kw_only=True):
    """A whole rulebook, decoded from TOML; `illustrative = true` marks one nobody publishes."""

    version: Annotated[str, Meta(pattern=VERSION_PATTERN)]
    effective_from: date
    illustrative: bool = False
    tenure: TenureRules
    merit: MeritRules
    deductions: DeductionTable
    appraisal: AppraisalRules
    evaluation: EvaluationRules
    recall: RecallRules
    veto: VetoRules
    ranking: RankingRules
    eligibility: EligibilityRules
    boards: BoardRules
    escalation: EscalationRules
    # Absent from rulebooks written before units were rated: then Xiantao's rules (`UnitRules()`).
    units: UnitRules = msgspec.field(default_factory=UnitRules)
    overrides: tuple[OverrideBounds, ...] = ()

    def override_for(self, event_type: str) -> OverrideBounds | None:
        """The override bounds of `event_type`, or None if a client may not send its points."""
        for bounds in self.overrides:
            if bounds.event_type == event_type:
                return bounds
        return None


def _require_fields(table: type[Struct], keys: tuple[str, ...]) -> None:
    # A programming error, caught at import: the keyed tables must follow the domain's words
    # exactly.
    if table.__struct_fields__ != keys:
        raise TypeError(f"{table.__name__} fields {table.__struct_fields__} differ from {keys}")


_require_fields(LevelPoints, LEVELS)
_require_fields(MeritTable, AWARDS)
_require_fields(DeductionTable, DEDUCTION_KINDS)
_require_fields(AppraisalPoints, RESULTS)
