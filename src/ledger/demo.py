"""A deterministic synthetic city — cadres, units, three years of score events — for demos, tests, benchmarks.

`generate_city(seed=…, scale=…, today=…)` simulates a city month by month and yields `DemoBatch`es in the
order they are to be posted; `run_demo(ledger, …)` posts them. Same seed, scale and `today` ⇒ the same
events, byte for byte: the cadres' randomness is one `random.Random(seed)`, consumed in a fixed order; the
departments' ratings draw from a `Random` of their own (`ledger.demo_ratings`), so they change no cadre event.

The simulation (SPEC §1: Xiantao's 82 units and 3,900 cadres, Zhuxi's quarterly recalls, Xianning's
self / section / leadership evaluations and one-vote veto):

- the initial cadres are registered in the weeks before the window (the scheme's roll-out); grade follows a
  pyramid, service years and years in grade grow with the grade, the highest-graded cadre of each unit is its
  principal leader;
- each month of the window (the 36 months ending with `today`'s month): departures (mostly retirements once
  service passes 36 years) and new registrations, transfers, promotions (mostly one step up), cadres leaving
  leadership posts; the previous month's evaluation of every cadre; many small unit-level performance awards
  and citations; rarer merits at county, municipal, provincial and — very rarely — national level, a deed
  sometimes awarded again one level up (same `deed`, which the policy counts once); deductions for a few
  per cent of cadres, the serious ones after an investigation; investigations opened and mostly closed;
  recalls to the party school in the first month of each quarter, completed a month or two later; a few
  one-vote vetoes; in January the annual appraisal of the year before;
- about 2 % of score events (and transfers) reach the ledger late: they are posted one to three months after
  their `effective_on`, in a batch of their own after that month's events. Events that open or close a
  recall or an investigation are never late (the ledger pairs them in posting order), and a cadre whose
  transfer is still to come is not moved again meanwhile;
- about 0.5 % of events are reversed after review or appeal (复核/申诉), weeks later. The target's
  `event_id` is known only once it was posted, so a batch carries `ReversalRequest`s naming the target by its
  source key, and lists in `remember` the events whose ids the poster must keep for a later reversal;
- the city's departments (53 of its units) are rated each quarter by a panel of 200 enterprises drawn by
  lot: most satisfied, a few persistently worse, one recovering after an escalation (`ledger.demo_ratings`);
- after each quarter's batches, a batch with `accrue` set asks the ledger to post the quarter's
  `tenure.accrued` (base points) for every active cadre: the ledger, not the demo, knows who is active and
  how tenure is computed.

Batches of a month come in this order: the month's events (sorted by `effective_on`), the units' events
(registrations, the previous quarter's ratings, the quarter's panel), the late events due that month, the
reversals decided that month, then the quarter's accrual. So transaction time moves forward with the
simulated calendar, and valid time may lag behind it, as in a real organization department.

Every event obeys the rules the ledger enforces: an event of a cadre is dated after the cadre's registration
and before its departure (the departure itself excepted), never after `today`; `(system, key)` is unique
(keys are `"<scale>-<seed>-<serial>"`); a reversal targets an earlier award or deduction of the same cadre,
at most once, dated after it; no server field is sent. Events the simulation scheduled for a cadre who has
since departed (a recall's completion, an appeal decision…) are dropped.

Every envelope (`effective_on`, `source`) is written by `_City._event`; only the small awards' batch cutter
inlines it, as msgspec builds from a `**` dict at half speed. Speed: the city scale yields about 1.1 million
events at 300–450k events/s. The hot loops build msgspec
structs directly from precomputed dates and score decimals and draw weighted picks in bulk with
`Random.choices`; the small awards (four fifths of the log) wait in the month's day buckets as plain ints and
become structs only when their batch is cut, because a month of live structs keeps the garbage collector busy.
Only the current month's events and a few thousand scheduled ones are held in memory. Floats appear only as
probabilities and weights of random draws; scores are `Decimal`s taken from a precomputed table, and points
are left to the ledger's policy.

Posting: run the demo on an empty ledger. Running it again with the same seed, scale and `today` replays
(every event comes back `replayed`); another `today` or another seed of the same scale reuses source keys
with other content, which the ledger refuses as a conflict.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from decimal import Decimal
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import msgspec

from ledger.demo_ratings import DepartmentRatings
from ledger.domain.errors import Conflict, InvalidInput
from ledger.domain.events import (
    GRADES,
    AppraisalRecorded,
    Award,
    CadreDeparted,
    CadreEvent,
    CadreGradeChanged,
    CadreLeftLeadership,
    CadreRegistered,
    CadreTransferred,
    DeductionApplied,
    DeductionKind,
    DepartureReason,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    InvestigationClosed,
    InvestigationOpened,
    Level,
    MeritAwarded,
    RecallCompleted,
    RecallOrdered,
    RecallOutcome,
    Result,
    Scores,
    Source,
    VetoApplied,
)
from ledger.results import PostResult

__all__ = [
    "POSTED_BY",
    "SCALES",
    "CityScale",
    "DemoBatch",
    "DemoLedger",
    "DemoSummary",
    "ReversalRequest",
    "generate_city",
    "run_demo",
]

Scale = Literal["small", "city"]
BatchKind = Literal["registrations", "month", "units", "late", "reversals", "accrual"]

POSTED_BY: Final = "demo"
BATCH_LIMIT: Final = 1_000  # the ledger's batch limit (SPEC §9)
WINDOW_MONTHS: Final = 36  # three years ending with today's month
# The illustrative policy is in force from 2020-01-01; the window never starts before this, so that the
# initial registrations (REGISTRATION_LEAD_DAYS earlier) fall under it too.
EARLIEST_WINDOW_START: Final = date(2020, 3, 1)
REGISTRATION_LEAD_DAYS: Final = 45
NEVER: Final = date.max.toordinal()  # the departure ordinal of a cadre still in the scheme
DAYS_PER_YEAR: Final = 365

# Source systems: who posts what in a real organization department.
SYSTEM_HR: Final = "hr"
SYSTEM_EVALUATION: Final = "evaluation"
SYSTEM_MERIT: Final = "merit-office"
SYSTEM_DISCIPLINE: Final = "discipline"
SYSTEM_APPRAISAL: Final = "appraisal"
SYSTEM_TRAINING: Final = "training"

# Late postings and reversals.
LATE_SHARE: Final = 0.02
LATE_MONTHS_MAX: Final = 3
REVERSAL_DELAY_DAYS_MIN: Final = 14
REVERSAL_DELAY_DAYS_MAX: Final = 70
SMALL_AWARD_REVERSAL_SHARE: Final = 0.0055
MAJOR_MERIT_REVERSAL_SHARE: Final = 0.02
DEDUCTION_REVERSAL_SHARE: Final = 0.15

# Monthly rates per active cadre (a year is 12 of them).
DEPARTURE_RATE: Final = 0.0015
RETIREMENT_RATE: Final = 0.08  # once service reaches RETIREMENT_SERVICE_YEARS
RETIREMENT_SERVICE_YEARS: Final = 36
REGISTRATION_RATE: Final = 0.0025  # new cadres per month, relative to the initial head count
TRANSFER_RATE: Final = 0.004
PROMOTION_RATE: Final = 0.006
LEFT_LEADERSHIP_RATE: Final = 0.0025  # per leadership cadre who is not a principal
MAJOR_MERIT_RATE: Final = 0.004
SECOND_LEVEL_SHARE: Final = 0.12  # a deed awarded again one level up
DEDUCTION_RATE: Final = 0.0012
INVESTIGATED_DEDUCTION_SHARE: Final = 0.7  # of serious deductions
INVESTIGATION_RATE: Final = 0.0004  # investigations that end without a deduction…
INVESTIGATION_CLOSED_SHARE: Final = 0.65  # …and are closed within the window, mostly
GRADE_YEARS_FOR_PROMOTION: Final = 2
RECALL_POOL_SHARE: Final = 0.1  # recalls are drawn from the lowest-performing tenth
RECALL_PASSED_SHARE: Final = 0.9
NEW_RECRUIT_SHARE: Final = 0.7  # the rest of the new registrations are transfers in

# Days of the month on which things happen.
EVALUATION_LAST_DAY: Final = 10  # the previous month is evaluated in the first ten days
APPRAISAL_FIRST_DAY: Final = 8  # appraisals of the previous year, from 8 January
RECALL_FIRST_DAY: Final = 5
RECALL_LAST_DAY: Final = 20
NEWCOMER_DAYS: Final = 10  # a cadre registered this close to a month's start is not evaluated for it
UNGRADED_DAYS: Final = 180  # cadres registered this close to the year's end are not graded (不定等次)


class CityScale(msgspec.Struct, frozen=True):
    """The size of a synthetic city."""

    units: int
    cadres: int  # initial head count; departures and new registrations roughly balance
    awards_per_cadre_month: float  # small performance awards and citations
    recalls_per_quarter: int
    vetoes_per_quarter: int
    expected_events: int  # about how many events a run posts, accruals included (for progress bars)
    departments: int = 0  # units rated each quarter by a panel of enterprises (`ledger.demo_ratings`)…
    enterprises: int = 0  # …drawn from a pool of this many…
    panel_size: int = 0  # …this many a quarter


SCALES: Final[dict[str, CityScale]] = {
    "small": CityScale(
        units=8,
        cadres=200,
        awards_per_cadre_month=1.4,
        recalls_per_quarter=3,
        vetoes_per_quarter=1,
        expected_events=22_000,
        departments=6,
        enterprises=96,
        panel_size=24,
    ),
    "city": CityScale(
        units=82,
        cadres=3_900,
        awards_per_cadre_month=5.6,
        recalls_per_quarter=20,
        vetoes_per_quarter=6,
        expected_events=1_120_000,
        departments=53,
        enterprises=800,
        panel_size=200,
    ),
}

# The grade pyramid of the initial cadres, lowest grade first (as GRADES).
GRADE_WEIGHTS: Final = (10, 18, 17, 15, 12, 10, 7, 5, 3, 2, 0.7, 0.3)
# Service years at registration, (min, max), by grade: some cadres stay long at middle grades.
SERVICE_YEARS: Final = (
    (0, 3),
    (1, 10),
    (3, 25),
    (5, 30),
    (7, 33),
    (9, 35),
    (11, 36),
    (13, 37),
    (15, 37),
    (17, 38),
    (19, 38),
    (21, 38),
)
YEARS_IN_GRADE_MAX: Final = 8
LEADERSHIP_SHARE: Final = (0.02, 0.04, 0.1, 0.15, 0.25, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9)
PROMOTION_STEPS: Final = ((1, 0.95), (2, 0.03), (-1, 0.02))  # one step up, mostly

LEVELS_LOCAL_FIRST: Final[tuple[Level, ...]] = ("unit", "county", "municipal", "provincial", "national")
SMALL_AWARDS: Final[tuple[tuple[Award, float], ...]] = (("performance_award", 0.72), ("citation", 0.28))
SMALL_AWARD_LEVELS: Final[tuple[tuple[Level, float], ...]] = (
    ("unit", 0.85),
    ("county", 0.13),
    ("municipal", 0.02),
)
MAJOR_AWARDS: Final[tuple[tuple[Award, float], ...]] = (
    ("commendation", 0.40),
    ("merit_third_class", 0.30),
    ("honorary_title", 0.12),
    ("merit_second_class", 0.10),
    ("citation", 0.06),
    ("merit_first_class", 0.02),
)
MAJOR_AWARD_LEVELS: Final[tuple[tuple[Level, float], ...]] = (
    ("county", 0.45),
    ("municipal", 0.33),
    ("provincial", 0.18),
    ("national", 0.04),
)
DEDUCTIONS: Final[tuple[tuple[DeductionKind, float], ...]] = (
    ("criticism", 0.42),
    ("admonishment", 0.30),
    ("party_warning", 0.08),
    ("government_warning", 0.06),
    ("demerit", 0.05),
    ("party_serious_warning", 0.03),
    ("organizational_adjustment", 0.03),
    ("major_demerit", 0.015),
    ("demotion", 0.01),
    ("dismissal", 0.005),
)
MINOR_DEDUCTIONS: Final = frozenset({"criticism", "admonishment", "organizational_adjustment"})
DEDUCTION_LEVELS: Final[tuple[tuple[Level, float], ...]] = (
    ("unit", 0.30),
    ("county", 0.35),
    ("municipal", 0.25),
    ("provincial", 0.10),
)
DEPARTURES: Final[tuple[tuple[DepartureReason, float], ...]] = (
    ("transferred_out", 0.55),
    ("resigned", 0.25),
    ("retired", 0.10),
    ("deceased", 0.06),
    ("dismissed", 0.04),
)

# Evaluation scores: (mean, spread with the cadre's quality, noise width); leadership is stricter and
# spreads more than self-evaluation.
SELF_SCORE: Final = (90.0, 2.0, 8.0)
SECTION_SCORE: Final = (85.0, 4.0, 10.0)
LEADERSHIP_SCORE: Final = (83.0, 5.0, 12.0)
SCORE_TENTHS_MAX: Final = 1_000
QUALITY_LIMIT: Final = 3.0  # quality is clipped to ±3 standard deviations, so scores stay in 0–100
# Every score with one decimal place, 0.0 … 100.0, built once.
SCORE_TABLE: Final = tuple(Decimal(tenths).scaleb(-1) for tenths in range(SCORE_TENTHS_MAX + 1))

SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余"
    "杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙"
)
GIVEN_CHARACTERS: Final = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力鹏飞宇浩凯俊峰"
    "波斌志成海亮晨欣怡婷雪琳倩颖佳梅琴云莉丹鑫彬旭东林晓国庆春德福荣昌盛"
)
DEEDS: Final = (
    "防汛抢险",
    "招商引资",
    "疫情防控",
    "项目建设",
    "乡村振兴",
    "安全生产",
    "信访维稳",
    "优化营商环境",
    "基层治理",
    "生态环境保护",
    "重点工程攻坚",
    "民生实事",
)
VETO_REASONS: Final = (
    "安全生产责任事故一票否决",
    "党风廉政建设一票否决",
    "信访稳定一票否决",
    "生态环境保护一票否决",
    "意识形态工作一票否决",
)
RECALL_REASON: Final = "季度综合排名末位，回炉党校跟班学习"
AWARD_REVERSAL_REASON: Final = "复核：重复计分，撤销加分"
DEDUCTION_REVERSAL_REASON: Final = "申诉复核：问责依据不足，撤销扣分"

# A small award waiting in its day's bucket is one int: serial, cadre, day of month, award, level.
CADRE_BITS: Final = 16
DAY_BITS: Final = 5
_Key = TypeVar("_Key", bound=str)
_Built = TypeVar("_Built", bound=msgspec.Struct)
# Events that open or close something the ledger pairs up in posting order: never posted late.
PAIRED_TYPES: Final = (RecallOrdered, RecallCompleted, InvestigationOpened, InvestigationClosed)
Pending = tuple[int, EventBase]  # (effective ordinal, event)
Scheduled = tuple[int, int, CadreEvent, float]  # (effective ordinal, cadre, event, reversal share)


class ReversalRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An `entry.reversed` waiting for its target's `event_id`, which only the ledger knows."""

    target: Source  # the target event's source; its id was listed in an earlier batch's `remember`
    cadre_id: str
    effective_on: date
    source: Source
    reason: str
    document: str | None = None

    def build(self, target_event_id: uuid.UUID) -> EntryReversed:
        """The reversal event, once the target's id is known."""
        return EntryReversed(
            cadre_id=self.cadre_id,
            effective_on=self.effective_on,
            source=self.source,
            document=self.document,
            target_event_id=target_event_id,
            reason=self.reason,
        )


class DemoBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One call to the ledger, in posting order.

    With `accrue` set, the batch is `ledger.accrue(accrue)` and has no events. Otherwise post `events`
    followed by every reversal request built with its target's id; then keep the ids of
    `events[i] for i in remember`: later reversals name them by source key.
    """

    kind: BatchKind
    month: str  # the simulated month the batch belongs to ("2024-07"); "" for the initial registrations
    events: list[EventBase]
    reversals: list[ReversalRequest] = msgspec.field(default_factory=list)
    remember: list[int] = msgspec.field(default_factory=list)
    accrue: str | None = None

    def __len__(self) -> int:
        return len(self.events) + len(self.reversals)


class DemoSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What `run_demo` posted."""

    seed: int
    scale: str
    today: date
    units: int
    cadres: int  # registered, departed ones included
    events_posted: int  # accruals included
    replayed: int  # events the ledger already had (a demo run twice on the same ledger)
    batches: int
    counts: dict[str, int]  # events posted by type
    seconds: Decimal


class DemoLedger(Protocol):
    """What `run_demo` needs of `ledger.Ledger`."""

    def post(self, events: Sequence[EventBase], *, posted_by: str) -> PostResult: ...

    def accrue(self, period: str, *, posted_by: str) -> PostResult: ...


def _weighted(rng: random.Random, table: tuple[tuple[_Key, float], ...]) -> _Key:
    """One key of `table`, drawn with its weight (rare events only; hot loops inline their draws)."""
    draw = rng.random() * sum(weight for _, weight in table)
    for key, weight in table:
        draw -= weight
        if draw < 0:
            return key
    return table[-1][0]


def _cumulative(table: tuple[tuple[_Key, float], ...]) -> tuple[list[_Key], list[float]]:
    keys = [key for key, _ in table]
    total = sum(weight for _, weight in table)
    return keys, [acc / total for acc in accumulate(weight for _, weight in table)]


def _type_name(cls: type[EventBase]) -> str:
    """The `type` tag of an event class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class _City:
    """The simulation's state: one row per cadre in parallel lists, indexed by the cadre's number."""

    def __init__(self, *, seed: int, scale: str, today: date) -> None:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
        if today < EARLIEST_WINDOW_START:
            raise ValueError(
                f"today must be on or after {EARLIEST_WINDOW_START.isoformat()}, "
                "when the illustrative policy is in force"
            )
        self.seed, self.scale_name = seed, scale
        self.scale = SCALES[scale]
        # Room in a small award's int for every cadre, new registrations included.
        assert 2 * self.scale.cadres < 1 << CADRE_BITS
        self.rng = random.Random(seed)
        self.key_prefix = f"{scale}-{seed}-"
        self.serial = 0
        self.document_serial: Counter[tuple[str, int]] = Counter()  # by office and year

        # The calendar: WINDOW_MONTHS months ending with today's month.
        months_back = WINDOW_MONTHS - 1
        first_month = today.year * 12 + today.month - 1 - months_back
        start = max(date(first_month // 12, first_month % 12 + 1, 1), EARLIEST_WINDOW_START)
        self.today = today.toordinal()
        self.month_first: list[int] = []
        self.month_last: list[int] = []
        self.month_name: list[str] = []
        cursor = start
        while cursor <= today:
            following = (cursor + timedelta(days=32)).replace(day=1)
            self.month_first.append(cursor.toordinal())
            self.month_last.append(min(following.toordinal() - 1, self.today))
            self.month_name.append(f"{cursor.year:04d}-{cursor.month:02d}")
            cursor = following
        self.last_month = len(self.month_first) - 1
        self.base = self.month_first[0] - REGISTRATION_LEAD_DAYS
        # Every date from the first registration to today, and the month index of each (-1 before).
        self.days = [date.fromordinal(o) for o in range(self.base, self.today + 1)]
        self.month_of_day = [-1] * (self.month_first[0] - self.base)
        for k, first in enumerate(self.month_first):
            self.month_of_day.extend([k] * (self.month_last[k] - first + 1))

        # Cadres, in parallel lists.
        self.cadre_id: list[str] = []
        self.unit: list[int] = []
        self.grade: list[int] = []
        self.grade_since: list[int] = []
        self.service_start: list[int] = []
        self.leadership: list[bool] = []
        self.principal: list[bool] = []
        self.registered: list[int] = []
        self.departed: list[int] = []
        self.quality: list[float] = []  # how well the cadre performs, standard normal
        self.busy_until: list[int] = []  # an open recall or investigation: no departure before this
        self.lo: list[int] = []  # this month's first and last possible event day
        self.hi: list[int] = []
        self.active: list[int] = []
        self.unit_weights = [self.rng.lognormvariate(0.0, 0.6) for _ in range(self.scale.units)]
        self.deducted: set[tuple[int, int]] = set()  # (cadre, year) with a deduction
        self.vetoed: set[tuple[int, int]] = set()
        self.investigated: set[int] = set()  # cadres with an open investigation
        self.transfer_posted: dict[int, int] = {}  # cadre → month its last transfer is posted in
        self.ratings: DepartmentRatings | None = None  # the departments rated by enterprises, if any

        # What later months must post: late events, scheduled events, reversal requests.
        self.late: defaultdict[int, list[Pending]] = defaultdict(list)
        self.scheduled: defaultdict[int, list[Scheduled]] = defaultdict(list)
        self.reversals: defaultdict[int, list[tuple[int, int, ReversalRequest]]] = defaultdict(list)
        self.watch: set[str] = set()  # source keys of late events that a reversal targets
        self.first = 0  # the current month's first day, and its events by day
        self.on_day: list[list[EventBase | int]] = []
        self.targets: list[tuple[int, int]] = []  # (day, index in its bucket) of reversal targets

    # -- helpers ------------------------------------------------------------------------------------

    def _event(
        self, cls: type[_Built], ordinal: int, system: str, key: object = None, /, **fields: Any
    ) -> _Built:
        """The one place the demo writes an envelope: `cls` (an event, or a reversal request) dated the day
        `ordinal`, sent by `system` under the key `<scale>-<seed>-<key>` — by default the next serial."""
        if key is None:
            self.serial = key = self.serial + 1
        # Every call builds `fields` afresh: adding the envelope to it and passing it whole is the fast way.
        fields["effective_on"] = self.days[ordinal - self.base]
        fields["source"] = Source(system, f"{self.key_prefix}{key}")
        return cls(**fields)

    def _document(self, prefix: str, ordinal: int) -> str:
        """A document number (文号): office, year, serial; unique, as investigation references must be."""
        year = self.days[ordinal - self.base].year
        self.document_serial[prefix, year] += 1
        return f"{prefix}〔{year}〕{self.document_serial[prefix, year]}号"

    def _count(self, expected: float) -> int:
        """A whole number of occurrences whose mean is `expected`."""
        whole = int(expected)
        return whole + (1 if self.rng.random() < expected - whole else 0)

    def _day(self, lo: int, hi: int) -> int:
        return lo + int(self.rng.random() * (hi - lo + 1))

    def _name(self) -> str:
        rng = self.rng
        # Common surnames first: the weight falls with the rank.
        index = min(int(rng.paretovariate(1.2)) - 1, len(SURNAMES) - 1)
        given = "".join(rng.choice(GIVEN_CHARACTERS) for _ in range(1 if rng.random() < 0.35 else 2))
        return SURNAMES[index] + given

    def _add_cadre(
        self, *, registered: int, grade: int, service_years: float, years_in_grade: float, leadership: bool
    ) -> int:
        cadre = len(self.cadre_id)
        service_start = registered - int(service_years * DAYS_PER_YEAR)
        self.cadre_id.append(f"C{cadre + 1:05d}")
        self.unit.append(self.rng.choices(range(self.scale.units), weights=self.unit_weights)[0])
        self.grade.append(grade)
        self.grade_since.append(max(service_start, registered - int(years_in_grade * DAYS_PER_YEAR)))
        self.service_start.append(service_start)
        self.leadership.append(leadership)
        self.principal.append(False)
        self.registered.append(registered)
        self.departed.append(NEVER)
        self.quality.append(max(-QUALITY_LIMIT, min(QUALITY_LIMIT, self.rng.gauss(0.0, 1.0))))
        self.busy_until.append(0)
        self.lo.append(0)
        self.hi.append(-1)
        return cadre

    def _registration(self, cadre: int) -> CadreRegistered:
        return self._event(
            CadreRegistered,
            self.registered[cadre],
            SYSTEM_HR,
            cadre_id=self.cadre_id[cadre],
            name=self._name(),
            unit_id=f"U{self.unit[cadre] + 1:03d}",
            grade=GRADES[self.grade[cadre]],
            leadership=self.leadership[cadre],
            principal=self.principal[cadre],
            service_started_on=date.fromordinal(self.service_start[cadre]),
            grade_since=date.fromordinal(self.grade_since[cadre]),
        )

    def _emit(
        self, month: int, ordinal: int, cadre: int, event: CadreEvent, *, reversal_share: float = 0.0
    ) -> int:
        """Post `event` this month — or, now and then, late — and maybe schedule its reversal.

        Answers the month it is posted in. An event that opens or closes a recall or an investigation is
        never late: the ledger checks the pairs in posting order.
        """
        random = self.rng.random
        if not isinstance(event, PAIRED_TYPES) and random() < LATE_SHARE:
            posted_in = min(month + 1 + int(random() * LATE_MONTHS_MAX), self.last_month)
            self.late[posted_in].append((ordinal, event))
            if (
                reversal_share
                and random() < reversal_share
                and self._schedule_reversal(posted_in, ordinal, cadre, event)
            ):
                self.watch.add(event.source.key)
            return posted_in
        bucket = self.on_day[ordinal - self.first]
        bucket.append(event)
        if (
            reversal_share
            and random() < reversal_share
            and self._schedule_reversal(month, ordinal, cadre, event)
        ):
            self.targets.append((ordinal - self.first, len(bucket) - 1))
        return month

    def _schedule_reversal(self, posted_in: int, ordinal: int, cadre: int, event: CadreEvent) -> bool:
        """A review or appeal decided weeks later, in a month after the target was posted.

        False if the decision would fall after today; else the caller must have the target's id kept.
        """
        decided = (
            ordinal
            + REVERSAL_DELAY_DAYS_MIN
            + int(self.rng.random() * (REVERSAL_DELAY_DAYS_MAX - REVERSAL_DELAY_DAYS_MIN + 1))
        )
        if decided > self.today:
            return False
        month = self.month_of_day[decided - self.base]
        if month <= posted_in:
            month = posted_in + 1
            if month > self.last_month:
                return False
            decided = self._day(
                self.month_first[month], min(self.month_first[month] + 9, self.month_last[month])
            )
        deduction = isinstance(event, DeductionApplied)
        request = self._event(
            ReversalRequest,
            decided,
            event.source.system,
            target=event.source,
            cadre_id=event.cadre_id,
            reason=DEDUCTION_REVERSAL_REASON if deduction else AWARD_REVERSAL_REASON,
            document=self._document("纪复" if deduction else "组复", decided) if deduction else None,
        )
        self.reversals[month].append((decided, cadre, request))
        return True

    def _sorted_batches(self, kind: BatchKind, month: str, items: list[Pending]) -> Iterator[DemoBatch]:
        """Batches of a few (ordinal, event) pairs, in date order; targets found by their watched key."""
        items.sort(key=itemgetter(0))  # stable
        watch = self.watch
        for start in range(0, len(items), BATCH_LIMIT):
            events = [event for _, event in items[start : start + BATCH_LIMIT]]
            remember = [i for i, event in enumerate(events) if event.source.key in watch]
            for i in remember:
                watch.discard(events[i].source.key)
            yield DemoBatch(kind=kind, month=month, events=events, remember=remember)

    def _month_batches(self, month: str) -> Iterator[DemoBatch]:
        """This month's events, day by day: the buckets are already in date order.

        Small awards wait in the buckets as ints (see `_small_awards`) and become structs batch by batch:
        a month of structs alive at once would keep the garbage collector busy for a third of the time.
        """
        items = list(chain.from_iterable(self.on_day))
        day_start = [0, *accumulate(len(bucket) for bucket in self.on_day)]
        targets = sorted(day_start[day] + index for day, index in self.targets)
        month_days = self.days[self.first - self.base : self.first - self.base + len(self.on_day)]
        cadre_ids, prefix = self.cadre_id, self.key_prefix
        awards = [award for award, _ in SMALL_AWARDS]
        levels = [level for level, _ in SMALL_AWARD_LEVELS]
        cadre_mask, day_mask = (1 << CADRE_BITS) - 1, (1 << DAY_BITS) - 1
        cursor = 0
        for start in range(0, len(items), BATCH_LIMIT):
            end = start + BATCH_LIMIT
            events: list[EventBase] = []
            append = events.append
            for item in items[start:end]:
                if isinstance(item, int):
                    code = item
                    # `_event`, inlined: msgspec builds from a `**` dict at half speed, and these are four
                    # fifths of the log.
                    append(
                        MeritAwarded(
                            effective_on=month_days[(code >> 3) & day_mask],
                            source=Source(SYSTEM_MERIT, f"{prefix}{code >> (3 + DAY_BITS + CADRE_BITS)}"),
                            cadre_id=cadre_ids[(code >> (3 + DAY_BITS)) & cadre_mask],
                            award=awards[(code >> 2) & 1],
                            level=levels[code & 3],
                        )
                    )
                else:
                    append(item)
            remember = []
            while cursor < len(targets) and targets[cursor] < end:
                remember.append(targets[cursor] - start)
                cursor += 1
            yield DemoBatch(kind="month", month=month, events=events, remember=remember)

    # -- the simulation -----------------------------------------------------------------------------

    def run(self) -> Iterator[DemoBatch]:
        yield from self._initial_registrations()
        if self.scale.departments:
            # The departments: units with a principal leader as the window opens, the first few of them.
            led = sorted({self.unit[cadre] for cadre in self.active if self.principal[cadre]})
            self.ratings = DepartmentRatings(
                seed=self.seed,
                scale=self.scale_name,
                units=led[: self.scale.departments],
                enterprises=self.scale.enterprises,
                panel_size=self.scale.panel_size,
                window_first=self.month_first[0],
                today=self.today,
                event=self._event,
            )
        for month in range(len(self.month_first)):
            yield from self._month(month)

    def _initial_registrations(self) -> Iterator[DemoBatch]:
        rng = self.rng
        first = self.month_first[0]
        grades = rng.choices(range(len(GRADES)), weights=GRADE_WEIGHTS, k=self.scale.cadres)
        for grade in grades:
            low, high = SERVICE_YEARS[grade]
            service_years = rng.uniform(low, high)
            # The entry grade counts from the start of service; above it, years in grade are few, mostly.
            years_in_grade = (
                service_years
                if grade == 0
                else min(service_years, rng.expovariate(1 / 3), YEARS_IN_GRADE_MAX)
            )
            self._add_cadre(
                registered=self._day(self.base, first - 1),
                grade=grade,
                service_years=service_years,
                years_in_grade=years_in_grade,
                leadership=rng.random() < LEADERSHIP_SHARE[grade],
            )
        # The highest-graded cadre of each unit is its principal leader.
        head: dict[int, int] = {}
        for cadre, unit in enumerate(self.unit):
            if unit not in head or self.grade[cadre] > self.grade[head[unit]]:
                head[unit] = cadre
        for cadre in head.values():
            self.principal[cadre] = self.leadership[cadre] = True
        self.active = list(range(len(self.cadre_id)))
        items: list[Pending] = [(self.registered[c], self._registration(c)) for c in self.active]
        yield from self._sorted_batches("registrations", "", items)

    def _month(self, month: int) -> Iterator[DemoBatch]:
        first, last = self.month_first[month], self.month_last[month]
        name = self.month_name[month]
        # The month's events, one bucket per day: filled in any order, read in date order.
        self.first = first
        self.on_day = [[] for _ in range(last - first + 1)]
        self.targets = []
        newcomers = self._lifecycle(month, first, last)
        self.active.extend(newcomers)
        # This month's event days of every active cadre: after registration, before departure.
        lo, hi, registered, departed = self.lo, self.hi, self.registered, self.departed
        for cadre in self.active:
            lo[cadre] = max(first, registered[cadre] + 1)
            hi[cadre] = min(last, departed[cadre] - 1)
        self._scheduled(month)
        self._evaluations(month, first)
        self._small_awards(month)
        self._major_merits(month)
        self._deductions(month)
        self._investigations(month)
        # Recalls for the quarter just ended, if it ended inside the window.
        if month > 0 and date.fromordinal(first).month % 3 == 1:
            self._recalls(month, first)
        self._vetoes(month)
        if date.fromordinal(first).month == 1:
            self._appraisals(month, first)
        yield from self._month_batches(name)
        if self.ratings is not None:
            events = self.ratings.month(first, last)
            for start in range(0, len(events), BATCH_LIMIT):
                yield DemoBatch(kind="units", month=name, events=events[start : start + BATCH_LIMIT])
        yield from self._sorted_batches("late", name, self.late.pop(month, []))
        yield from self._reversal_batches(month)
        self.active = [cadre for cadre in self.active if departed[cadre] == NEVER]
        last_day = date.fromordinal(last)
        quarter_end = last_day.month % 3 == 0 and (last_day + timedelta(days=1)).day == 1
        if quarter_end:
            period = f"{last_day.year:04d}Q{last_day.month // 3}"
            yield DemoBatch(kind="accrual", month=name, events=[], accrue=period)

    def _reversal_batches(self, month: int) -> Iterator[DemoBatch]:
        departed = self.departed
        requests = [
            request
            for decided, cadre, request in sorted(self.reversals.pop(month, []), key=itemgetter(0))
            if decided < departed[cadre]
        ]
        name = self.month_name[month]
        for start in range(0, len(requests), BATCH_LIMIT):
            yield DemoBatch(
                kind="reversals", month=name, events=[], reversals=requests[start : start + BATCH_LIMIT]
            )

    def _lifecycle(self, month: int, first: int, last: int) -> list[int]:
        """Departures, registrations, transfers, grade changes and leadership exits; the newcomers."""
        rng = self.rng
        random = rng.random
        staying: list[int] = []
        retirement_days = RETIREMENT_SERVICE_YEARS * DAYS_PER_YEAR
        for cadre in self.active:
            earliest = max(first, self.registered[cadre] + 1)
            retiring = first - self.service_start[cadre] >= retirement_days
            if (
                self.busy_until[cadre] < first
                and earliest <= last
                and random() < (RETIREMENT_RATE if retiring else DEPARTURE_RATE)
            ):
                day = self._day(earliest, last)
                self.departed[cadre] = day
                reason: DepartureReason = "retired" if retiring else _weighted(rng, DEPARTURES)
                self.on_day[day - first].append(
                    self._event(
                        CadreDeparted,
                        day,
                        SYSTEM_HR,
                        cadre_id=self.cadre_id[cadre],
                        reason=reason,
                    )
                )
            elif earliest <= last:
                staying.append(cadre)

        newcomers: list[int] = []
        for _ in range(self._count(REGISTRATION_RATE * self.scale.cadres)):
            day = self._day(first, last)
            if random() < NEW_RECRUIT_SHARE:
                grade, service_years, leadership = 0, 0.0, False
            else:
                grade = min(rng.choices(range(len(GRADES)), weights=GRADE_WEIGHTS)[0], 7)
                service_years = rng.uniform(*SERVICE_YEARS[grade])
                leadership = random() < LEADERSHIP_SHARE[grade]
            years_in_grade = service_years if grade == 0 else min(service_years, rng.expovariate(1 / 3))
            cadre = self._add_cadre(
                registered=day,
                grade=grade,
                service_years=service_years,
                years_in_grade=years_in_grade,
                leadership=leadership,
            )
            newcomers.append(cadre)
            self.on_day[day - first].append(self._registration(cadre))

        def day_of(cadre: int) -> int:
            return self._day(max(first, self.registered[cadre] + 1), last)

        # A cadre whose last transfer is still to be posted (late) is not moved again meanwhile: the
        # ledger would see the second move from the wrong unit.
        movable = [c for c in staying if self.transfer_posted.get(c, -1) < month]
        for cadre in rng.sample(movable, min(len(movable), self._count(TRANSFER_RATE * len(staying)))):
            day = day_of(cadre)
            unit = self.unit[cadre]
            while unit == self.unit[cadre] and self.scale.units > 1:
                unit = int(random() * self.scale.units)
            self.unit[cadre] = unit
            self.transfer_posted[cadre] = self._emit(
                month,
                day,
                cadre,
                self._event(
                    CadreTransferred,
                    day,
                    SYSTEM_HR,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("组任", day),
                    unit_id=f"U{unit + 1:03d}",
                ),
            )

        top = len(GRADES) - 1
        seasoned = first - GRADE_YEARS_FOR_PROMOTION * DAYS_PER_YEAR
        candidates = [c for c in staying if self.grade[c] < top and self.grade_since[c] <= seasoned]
        for cadre in rng.sample(candidates, min(len(candidates), self._count(PROMOTION_RATE * len(staying)))):
            draw, step = random(), PROMOTION_STEPS[-1][0]
            for candidate_step, share in PROMOTION_STEPS:
                draw -= share
                if draw < 0:
                    step = candidate_step
                    break
            grade = max(0, min(top, self.grade[cadre] + step))
            if grade == self.grade[cadre]:
                continue
            day = day_of(cadre)
            self.grade[cadre], self.grade_since[cadre] = grade, day
            self.on_day[day - first].append(
                self._event(
                    CadreGradeChanged,
                    day,
                    SYSTEM_HR,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("组任", day),
                    grade=GRADES[grade],
                )
            )

        leaders = [c for c in staying if self.leadership[c] and not self.principal[c]]
        for cadre in rng.sample(leaders, min(len(leaders), self._count(LEFT_LEADERSHIP_RATE * len(leaders)))):
            day = day_of(cadre)
            self.leadership[cadre] = False
            self.on_day[day - first].append(
                self._event(
                    CadreLeftLeadership,
                    day,
                    SYSTEM_HR,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("组任", day),
                )
            )
        return newcomers

    def _scheduled(self, month: int) -> None:
        """Events decided earlier for this month: those of cadres who have departed since are dropped."""
        for ordinal, cadre, event, reversal_share in self.scheduled.pop(month, []):
            if ordinal >= self.departed[cadre]:
                continue
            if isinstance(event, DeductionApplied):
                self.deducted.add((cadre, event.effective_on.year))
            elif isinstance(event, InvestigationClosed):
                self.investigated.discard(cadre)
            self._emit(month, ordinal, cadre, event, reversal_share=reversal_share)

    def _schedule(self, ordinal: int, cadre: int, event: CadreEvent, reversal_share: float) -> bool:
        """Keep `event` for the month of `ordinal`; False if that is after today."""
        if ordinal > self.today:
            return False
        self.scheduled[self.month_of_day[ordinal - self.base]].append((ordinal, cadre, event, reversal_share))
        return True

    def _evaluations(self, month: int, first: int) -> None:
        """Every cadre's self / section / leadership evaluation of the previous month."""
        previous = date.fromordinal(first - 1)
        period = f"{previous.year:04d}-{previous.month:02d}"
        random = self.rng.random
        cadre_ids, quality, lo, hi, registered = (
            self.cadre_id,
            self.quality,
            self.lo,
            self.hi,
            self.registered,
        )
        table, cap = SCORE_TABLE, SCORE_TENTHS_MAX
        (self_mean, self_spread, self_noise) = SELF_SCORE
        (section_mean, section_spread, section_noise) = SECTION_SCORE
        (lead_mean, lead_spread, lead_noise) = LEADERSHIP_SCORE
        newcomer = first - NEWCOMER_DAYS
        last_day = first + EVALUATION_LAST_DAY - 1
        emit, event = self._emit, self._event
        for cadre in self.active:
            end = min(hi[cadre], last_day)
            start = lo[cadre]
            if registered[cadre] >= newcomer or end < start:
                continue
            q = quality[cadre]
            day = start + int(random() * (end - start + 1))
            scores = Scores(
                table[min(cap, int((self_mean + self_spread * q + (random() - 0.5) * self_noise) * 10))],
                table[
                    min(cap, int((section_mean + section_spread * q + (random() - 0.5) * section_noise) * 10))
                ],
                table[min(cap, int((lead_mean + lead_spread * q + (random() - 0.5) * lead_noise) * 10))],
            )
            emit(
                month,
                day,
                cadre,
                event(
                    EvaluationRecorded,
                    day,
                    SYSTEM_EVALUATION,
                    cadre_id=cadre_ids[cadre],
                    period=period,
                    scores=scores,
                ),
            )

    def _small_awards(self, month: int) -> None:
        """Unit-level performance awards and citations: the bulk of the log. Good cadres earn more."""
        rng = self.rng
        random = rng.random
        active = self.active
        expected = self.scale.awards_per_cadre_month * len(active)
        quality = self.quality
        cum = list(accumulate(math.exp(0.4 * quality[c]) for c in active))
        winners = rng.choices(active, cum_weights=cum, k=self._count(expected))
        awards, award_cum = _cumulative(SMALL_AWARDS)
        levels, level_cum = _cumulative(SMALL_AWARD_LEVELS)
        first_award_share, first_level_share, second_level_share = award_cum[0], level_cum[0], level_cum[1]
        cadre_ids, lo, hi, make = self.cadre_id, self.lo, self.hi, self._event
        serial = self.serial
        late_share, late, last_month = LATE_SHARE, self.late, self.last_month
        reversal_share = SMALL_AWARD_REVERSAL_SHARE
        on_day, first = self.on_day, self.first
        for cadre in winners:
            start, end = lo[cadre], hi[cadre]
            if end < start:
                continue
            day = start + int(random() * (end - start + 1))
            draw = random()
            level = 0 if draw < first_level_share else (1 if draw < second_level_share else 2)
            serial += 1
            award = 0 if random() < first_award_share else 1
            # `_emit`, inlined: this loop makes most of the log.
            if random() < late_share:
                event = make(
                    MeritAwarded,
                    day,
                    SYSTEM_MERIT,
                    serial,
                    cadre_id=cadre_ids[cadre],
                    award=awards[award],
                    level=levels[level],
                )
                posted_in = min(month + 1 + int(random() * LATE_MONTHS_MAX), last_month)
                late[posted_in].append((day, event))
                if random() < reversal_share:
                    self.serial = serial
                    if self._schedule_reversal(posted_in, day, cadre, event):
                        self.watch.add(event.source.key)
                    serial = self.serial
                continue
            bucket = on_day[day - first]
            if random() >= reversal_share:
                # The common case, as a plain int: built into a struct only when its batch is cut.
                bucket.append(
                    ((((serial << CADRE_BITS) | cadre) << DAY_BITS | (day - first)) << 3) | award << 2 | level
                )
                continue
            event = make(
                MeritAwarded,
                day,
                SYSTEM_MERIT,
                serial,
                cadre_id=cadre_ids[cadre],
                award=awards[award],
                level=levels[level],
            )
            bucket.append(event)
            self.serial = serial
            if self._schedule_reversal(month, day, cadre, event):
                self.targets.append((day - first, len(bucket) - 1))
            serial = self.serial
        self.serial = serial

    def _major_merits(self, month: int) -> None:
        """Commendations, merits and honorary titles above the unit; a deed may be honoured twice."""
        rng = self.rng
        active = self.active
        cum = list(accumulate(math.exp(0.6 * self.quality[c]) for c in active))
        for cadre in rng.choices(active, cum_weights=cum, k=self._count(MAJOR_MERIT_RATE * len(active))):
            start, end = self.lo[cadre], self.hi[cadre]
            if end < start:
                continue
            day = self._day(start, end)
            award = _weighted(rng, MAJOR_AWARDS)
            level = _weighted(rng, MAJOR_AWARD_LEVELS)
            year = self.days[day - self.base].year
            deed = f"{year}年{rng.choice(DEEDS)}（{self.key_prefix}D{self.serial + 1}）"
            self._emit(
                month,
                day,
                cadre,
                self._event(
                    MeritAwarded,
                    day,
                    SYSTEM_MERIT,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("组发", day),
                    award=award,
                    level=level,
                    deed=deed,
                ),
                reversal_share=MAJOR_MERIT_REVERSAL_SHARE,
            )
            if level != "national" and rng.random() < SECOND_LEVEL_SHARE:
                again = day + self._day(30, 90)
                higher = LEVELS_LOCAL_FIRST[LEVELS_LOCAL_FIRST.index(level) + 1]
                if again <= self.today:
                    self._schedule(
                        again,
                        cadre,
                        self._event(
                            MeritAwarded,
                            again,
                            SYSTEM_MERIT,
                            cadre_id=self.cadre_id[cadre],
                            document=self._document("组发", again),
                            award=award,
                            level=higher,
                            deed=deed,
                        ),
                        MAJOR_MERIT_REVERSAL_SHARE,
                    )

    def _deductions(self, month: int) -> None:
        """Accountability for a few per cent of cadres; serious kinds follow an investigation."""
        rng = self.rng
        active = self.active
        cum = list(accumulate(math.exp(-0.8 * self.quality[c]) for c in active))
        for cadre in set(rng.choices(active, cum_weights=cum, k=self._count(DEDUCTION_RATE * len(active)))):
            start, end = self.lo[cadre], self.hi[cadre]
            if end < start or cadre in self.investigated:
                continue
            day = self._day(start, end)
            kind = _weighted(rng, DEDUCTIONS)
            level = _weighted(rng, DEDUCTION_LEVELS)
            if kind not in MINOR_DEDUCTIONS and rng.random() < INVESTIGATED_DEDUCTION_SHARE:
                # Investigated first; the deduction and the closing come one to four months later.
                reference = self._document("纪审", day)
                self._open_investigation(month, day, cadre, reference)
                decided = day + self._day(30, 120)
                if decided > self.today:
                    continue  # still under investigation at the end of the window
                self._schedule(
                    decided,
                    cadre,
                    self._event(
                        DeductionApplied,
                        decided,
                        SYSTEM_DISCIPLINE,
                        cadre_id=self.cadre_id[cadre],
                        document=self._document("纪发", decided),
                        kind=kind,
                        level=level,
                    ),
                    DEDUCTION_REVERSAL_SHARE,
                )
                self._close_investigation(decided, cadre, reference)
                continue
            self.deducted.add((cadre, self.days[day - self.base].year))
            self._emit(
                month,
                day,
                cadre,
                self._event(
                    DeductionApplied,
                    day,
                    SYSTEM_DISCIPLINE,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("纪发", day),
                    kind=kind,
                    level=level,
                ),
                reversal_share=DEDUCTION_REVERSAL_SHARE,
            )

    def _open_investigation(self, month: int, day: int, cadre: int, reference: str) -> None:
        self.investigated.add(cadre)
        self.busy_until[cadre] = NEVER  # until a closing is scheduled
        self._emit(
            month,
            day,
            cadre,
            self._event(
                InvestigationOpened,
                day,
                SYSTEM_DISCIPLINE,
                cadre_id=self.cadre_id[cadre],
                reference=reference,
            ),
        )

    def _close_investigation(self, day: int, cadre: int, reference: str) -> None:
        if day > self.today:
            return  # still open at the end of the window
        self.busy_until[cadre] = day
        self._schedule(
            day,
            cadre,
            self._event(
                InvestigationClosed,
                day,
                SYSTEM_DISCIPLINE,
                cadre_id=self.cadre_id[cadre],
                reference=reference,
            ),
            0.0,
        )

    def _investigations(self, month: int) -> None:
        """Investigations that end without a deduction (or are still open)."""
        rng = self.rng
        active = self.active
        for cadre in rng.sample(active, min(len(active), self._count(INVESTIGATION_RATE * len(active)))):
            start, end = self.lo[cadre], self.hi[cadre]
            if end < start or cadre in self.investigated:
                continue
            day = self._day(start, end)
            reference = self._document("纪审", day)
            self._open_investigation(month, day, cadre, reference)
            if rng.random() < INVESTIGATION_CLOSED_SHARE:
                self._close_investigation(day + self._day(30, 180), cadre, reference)

    def _recalls(self, month: int, first: int) -> None:
        """Zhuxi's 回炉: the quarter's lowest performers go back to the party school."""
        rng = self.rng
        previous = date.fromordinal(first - 1)
        period = f"{previous.year:04d}Q{(previous.month - 1) // 3 + 1}"
        pool = sorted(
            (
                c
                for c in self.active
                if self.busy_until[c] < first
                and self.departed[c] == NEVER
                and self.lo[c] <= min(self.hi[c], first + RECALL_LAST_DAY - 1)
            ),
            key=lambda c: (self.quality[c], c),
        )
        pool = pool[: max(self.scale.recalls_per_quarter, int(len(pool) * RECALL_POOL_SHARE))]
        for cadre in rng.sample(pool, min(len(pool), self.scale.recalls_per_quarter)):
            start = max(self.lo[cadre], first + RECALL_FIRST_DAY - 1)
            end = min(self.hi[cadre], first + RECALL_LAST_DAY - 1)
            day = self._day(min(start, end), end)
            self._emit(
                month,
                day,
                cadre,
                self._event(
                    RecallOrdered,
                    day,
                    SYSTEM_TRAINING,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("组训", day),
                    period=period,
                    reason=RECALL_REASON,
                ),
            )
            done = day + self._day(30, 60)
            self.busy_until[cadre] = done if done <= self.today else NEVER
            if done <= self.today:
                outcome: RecallOutcome = "passed" if rng.random() < RECALL_PASSED_SHARE else "failed"
                self._schedule(
                    done,
                    cadre,
                    self._event(
                        RecallCompleted,
                        done,
                        SYSTEM_TRAINING,
                        cadre_id=self.cadre_id[cadre],
                        outcome=outcome,
                    ),
                    0.0,
                )

    def _vetoes(self, month: int) -> None:
        """One-vote vetoes, a few a quarter, mostly on cadres who perform poorly."""
        rng = self.rng
        active = self.active
        cum = list(accumulate(math.exp(-0.8 * self.quality[c]) for c in active))
        expected = self.scale.vetoes_per_quarter / 3
        for cadre in rng.choices(active, cum_weights=cum, k=self._count(expected)):
            start, end = self.lo[cadre], self.hi[cadre]
            if end < start:
                continue
            day = self._day(start, end)
            year = self.days[day - self.base].year
            if (cadre, year) in self.vetoed:
                continue
            self.vetoed.add((cadre, year))
            self._emit(
                month,
                day,
                cadre,
                self._event(
                    VetoApplied,
                    day,
                    SYSTEM_EVALUATION,
                    cadre_id=self.cadre_id[cadre],
                    document=self._document("考评", day),
                    year=year,
                    reason=rng.choice(VETO_REASONS),
                ),
            )

    def _appraisals(self, month: int, first: int) -> None:
        """The annual appraisal of last year, in January: ~15 % excellent, few below competent."""
        random = self.rng.random
        year = date.fromordinal(first).year - 1
        year_start = date(year, 1, 1).toordinal()
        graded_before = first - UNGRADED_DAYS
        for cadre in self.active:
            start, end = max(self.lo[cadre], first + APPRAISAL_FIRST_DAY - 1), self.hi[cadre]
            if end < start or self.registered[cadre] >= first:
                continue
            day = start + int(random() * (end - start + 1))
            q = self.quality[cadre]
            draw = random()
            result: Result
            if self.registered[cadre] >= max(graded_before, year_start) or cadre in self.investigated:
                result = "ungraded"  # too new, or under investigation: 不定等次
            elif (cadre, year) in self.deducted:
                result = "basically_competent" if draw < 0.3 else "competent"
            elif draw < 0.003:
                result = "incompetent"
            elif draw < 0.003 + (0.05 if q < -1.2 else 0.01):
                result = "basically_competent"
            elif random() < min(0.4, max(0.02, 0.15 + 0.08 * q)):
                result = "excellent"
            else:
                result = "competent"
            self._emit(
                month,
                day,
                cadre,
                self._event(
                    AppraisalRecorded,
                    day,
                    SYSTEM_APPRAISAL,
                    cadre_id=self.cadre_id[cadre],
                    year=year,
                    result=result,
                ),
            )


def generate_city(*, seed: int, scale: Scale, today: date) -> Iterator[DemoBatch]:
    """The batches of a synthetic city, in posting order; deterministic in (seed, scale, today).

    Raises ValueError for an unknown scale or a `today` before the illustrative policy's window.
    """
    return _City(seed=seed, scale=scale, today=today).run()


def run_demo(
    ledger: DemoLedger, *, seed: int, scale: str, today: date, progress: Callable[[int], None] | None = None
) -> DemoSummary:
    """Post a synthetic city into `ledger` as "demo"; `progress` is told how many events each call posted.

    Running it again on the same ledger replays: every key is already recorded with the same content.
    A refused batch raises the ledger's InvalidInput or Conflict, with a note naming the batch.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    started = time.perf_counter()
    event_ids: dict[str, uuid.UUID] = {}  # source key → event id, for events a later reversal targets
    by_class: Counter[type[EventBase]] = Counter()
    accrued = replayed = batches = 0
    for batch in generate_city(seed=seed, scale=cast(Scale, scale), today=today):
        batches += 1
        events: list[EventBase] = []
        try:
            if batch.accrue is not None:
                result = ledger.accrue(batch.accrue, posted_by=POSTED_BY)
                accrued += len(result.results)
            else:
                events = list(batch.events)
                events.extend(request.build(event_ids.pop(request.target.key)) for request in batch.reversals)
                result = ledger.post(events, posted_by=POSTED_BY)
                for i in batch.remember:
                    event_ids[events[i].source.key] = result.results[i].event_id
                by_class.update(map(type, events))
        except (InvalidInput, Conflict) as error:
            note = (
                f"demo batch: {batch.kind} {batch.month or 'registrations'} "
                f"(seed {seed}, scale {scale}, today {today.isoformat()})"
            )
            if error.item is not None and error.item < len(events):
                note += f"; item {error.item}: {msgspec.json.encode(events[error.item]).decode()}"
            error.add_note(note)
            raise
        replayed += sum(1 for item in result.results if item.replayed)
        if progress is not None:
            progress(len(result.results))
    counts = {_type_name(cls): n for cls, n in by_class.items()}
    if accrued:
        counts["tenure.accrued"] = accrued
    elapsed = Decimal(f"{time.perf_counter() - started:.3f}")
    return DemoSummary(
        seed=seed,
        scale=scale,
        today=today,
        units=SCALES[scale].units,
        cadres=counts.get("cadre.registered", 0),
        events_posted=sum(counts.values()),
        replayed=replayed,
        batches=batches,
        counts=dict(sorted(counts.items())),
        seconds=elapsed,
    )
