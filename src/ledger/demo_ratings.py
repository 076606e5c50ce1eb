"""The demo city's departments rated by enterprises (市场主体评部门), quarter by quarter.

`DepartmentRatings` is the part of the synthetic city (`ledger.demo`) that posts units' events. Each quarter
of the window that has ended before `today`:

- in the quarter's last week, a panel (`rating.panel_drawn`, rater kind `enterprise`) is drawn by lot from a
  pool of enterprises `E0001`, `E0002`, … (800 in the city). The draw needs no random generator, so anyone
  can repeat it from the event alone: `method` is `sha256-lottery` followed by the pool and the panel size,
  `seed` is `"<scale>-<seed>-<period>"` (`"city-7-2024Q3"`), and the panel is the `size` ids of the pool
  with the smallest `sha256(f"{seed}:{id}".encode()).hexdigest()`, listed in that order (`draw_panel`);
- in the 15 days after the quarter's end (never after `today`, so the quarter ending today is not rated
  yet), every enterprise on the panel rates every department once (`unit.rated`), all on one day: whole
  scores 0–100 for the illustrative policy's dimensions service, efficiency and integrity, `score` their
  weighted mean (0.4 / 0.3 / 0.3) rounded half up to 0.01 with `Decimal`, and a verdict from the score
  (≥ 80 satisfied, ≥ 60 basically satisfied, else dissatisfied).

The departments are the first `departments` units of the city that have a principal leader when the window
opens (53 of the city's 82), registered with a Chinese name (`unit.registered`, kind `department`) on the
window's first day. Most are rated around 82–90. A few are persistently worse (about 75: five or so
dissatisfied votes of 200 a quarter). One starts worst (about 70: some seventeen dissatisfied votes, as in
Xiantao's first round), stays in the bottom for its first `RECOVERY_QUARTERS` rated quarters, so that the
ladder reaches its second step, and then recovers above every ordinary department: its streak resets.

The randomness (who is which kind of department, how each quarter and each enterprise scores, the days) comes
from a `random.Random` of its own, seeded with the string `"<seed>:ratings"` (Python seeds a `Random` from a
string through SHA-512, so the stream does not depend on the interpreter's hash seed), and consumed quarter
by quarter as the months are simulated. The cadres' generator never sees it: adding the ratings left every
cadre event as it was.

Every event gets its envelope from the city's one envelope writer (`EventMaker`), with source keys that name
what they are — `"<scale>-<seed>-unit-U001"`, `"…-panel-2024Q3"`, `"…-rating-2024Q3-U001-E0042"` — so they
never meet the cadres' serial keys. Panels and ratings come from the `survey` system, the units'
registrations from `hr`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Any, Final, Protocol, TypeVar

import msgspec

from ledger.domain.events import EventBase, Rater, RatingPanelDrawn, UnitRated, UnitRegistered, Verdict

__all__ = [
    "DIMENSIONS",
    "PANEL_METHOD",
    "SYSTEM_SURVEY",
    "DepartmentRatings",
    "EventMaker",
    "draw_panel",
    "panel_seed",
]

SYSTEM_SURVEY: Final = "survey"
SYSTEM_UNITS: Final = "hr"  # the organization department registers its units
PANEL_METHOD: Final = "sha256-lottery"
RATER_KIND: Final = "enterprise"
# The illustrative policy's dimensions and weights ([units.dimensions] in policy/illustrative.toml).
DIMENSIONS: Final = (
    ("service", Decimal("0.4")),
    ("efficiency", Decimal("0.3")),
    ("integrity", Decimal("0.3")),
)
CENT: Final = Decimal("0.01")
SATISFIED_FROM: Final = Decimal(80)
BASICALLY_SATISFIED_FROM: Final = Decimal(60)
PANEL_WEEK_DAYS: Final = 7  # the panel is drawn in the quarter's last week
RATING_DAYS: Final = 15  # ratings come in the first 15 days after the quarter's end
RECOVERY_QUARTERS: Final = 2  # the recovering department is in the bottom this many quarters, then recovers

# How departments are rated: a department's quarter mean, an enterprise's leniency, a rating's noise, the
# spread of one dimension about the rating; whole points.
ORDINARY_MEAN: Final = (82.0, 90.0)  # uniform between these
LAGGARD_MEAN: Final = 75.0
STRUGGLING_MEAN: Final = 70.5  # the recovering department, before it recovers…
RECOVERED_MEAN: Final = 93.0  # …and after
QUARTER_DRIFT: Final = 1.0
LENIENCY: Final = 3.0
RATING_NOISE: Final = 7.0
DIMENSION_NOISE: Final = 4.0  # a dimension is the rating ± half this, uniformly
LAGGARDS_PER_DEPARTMENT: Final = 1 / 25  # at least one
POINTS_MAX: Final = 100

# Chinese names of county-level departments, in the order the departments take them.
DEPARTMENT_NAMES: Final = (
    "市场监管局",
    "发展改革局",
    "财政局",
    "税务局",
    "人力资源和社会保障局",
    "自然资源和规划局",
    "住房和城乡建设局",
    "交通运输局",
    "水利和湖泊局",
    "农业农村局",
    "商务局",
    "文化和旅游局",
    "卫生健康委员会",
    "应急管理局",
    "生态环境分局",
    "公安局",
    "司法局",
    "民政局",
    "教育局",
    "科学技术局",
    "经济和信息化局",
    "统计局",
    "审计局",
    "医疗保障局",
    "退役军人事务局",
    "城市管理执法局",
    "行政审批局",
    "政务服务和大数据管理局",
    "林业局",
    "供销合作社",
    "档案馆",
    "信访局",
    "机关事务服务中心",
    "住房公积金中心",
    "消防救援大队",
    "气象局",
    "烟草专卖局",
    "供电公司",
    "自来水公司",
    "燃气公司",
    "不动产登记中心",
    "人民银行支行",
    "邮政管理局",
    "招商服务中心",
    "投资促进局",
    "外事办公室",
    "工商业联合会",
    "残疾人联合会",
    "粮食和物资储备局",
    "港航管理局",
    "人民防空办公室",
    "公共资源交易中心",
    "地方金融监督管理局",
    "民族宗教事务局",
    "园林局",
    "畜牧兽医局",
)

_Built = TypeVar("_Built", bound=msgspec.Struct)


class EventMaker(Protocol):
    """The city's envelope writer: `cls` dated the day `ordinal`, sent by `system` under the key
    `"<scale>-<seed>-<key>"` (the next serial when `key` is None), with `fields`."""

    def __call__(
        self, cls: type[_Built], ordinal: int, system: str, key: object = None, /, **fields: Any
    ) -> _Built: ...


def panel_seed(scale: str, seed: int, period: str) -> str:
    return f"{scale}-{seed}-{period}"


def panel_method(pool: int, size: int) -> str:
    """`method` of a panel: how to draw it again (see `draw_panel`)."""
    return f"{PANEL_METHOD} pool=E0001..E{pool:04d} size={size}"


def draw_panel(seed: str, pool: int, size: int) -> tuple[str, ...]:
    """The `size` enterprises of `E0001`…`E<pool>` with the smallest SHA-256 of `"<seed>:<id>"`, in that
    order: how a panel of `PANEL_METHOD` is drawn, and drawn again by whoever checks it."""
    ids = [f"E{n:04d}" for n in range(1, pool + 1)]
    return tuple(sorted(ids, key=lambda rater: hashlib.sha256(f"{seed}:{rater}".encode()).hexdigest())[:size])


def weighted_mean(scores: Sequence[int]) -> Decimal:
    """The weighted mean of whole dimension scores (in `DIMENSIONS` order), rounded half up to 0.01."""
    total = sum(
        (Decimal(score) * weight for score, (_, weight) in zip(scores, DIMENSIONS, strict=True)), Decimal(0)
    )
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def verdict_of(score: Decimal) -> Verdict:
    if score >= SATISFIED_FROM:
        return "satisfied"
    if score >= BASICALLY_SATISFIED_FROM:
        return "basically_satisfied"
    return "dissatisfied"


# Weights in whole tenths (4, 3, 3): the weighted sum of whole scores in tenths names the weighted mean, so
# that each mean is computed (by `weighted_mean`) once and then looked up.
WEIGHT_TENTHS: Final = tuple(int(weight * 10) for _, weight in DIMENSIONS)
assert all(
    Decimal(tenths) / 10 == weight for tenths, (_, weight) in zip(WEIGHT_TENTHS, DIMENSIONS, strict=True)
)
POINT_TEXT: Final = tuple(str(n) for n in range(POINTS_MAX + 1))


class DepartmentRatings:
    """The departments, the enterprise pool and the quarters to rate; `month` answers each month's events."""

    def __init__(
        self,
        *,
        seed: int,
        scale: str,
        units: Sequence[int],
        enterprises: int,
        panel_size: int,
        window_first: int,
        today: int,
        event: EventMaker,
    ) -> None:
        """`units`: the city's unit numbers (0-based) rated as departments; dates are day ordinals."""
        if len(units) > len(DEPARTMENT_NAMES):
            raise ValueError(f"at most {len(DEPARTMENT_NAMES)} departments are named")
        if not 0 < panel_size <= enterprises:
            raise ValueError("the panel is drawn from a pool at least as large")
        self.rng = random.Random(f"{seed}:ratings")
        self.seed, self.scale = seed, scale
        self.unit_ids = [f"U{unit + 1:03d}" for unit in units]
        self.enterprises, self.panel_size = enterprises, panel_size
        self.window_first, self.today = window_first, today
        self.event = event
        rng = self.rng
        count = len(units)
        self.leniency = [rng.gauss(0.0, LENIENCY) for _ in range(enterprises)]
        self.mean = [rng.uniform(*ORDINARY_MEAN) for _ in range(count)]
        special = rng.sample(range(count), min(count, 1 + max(1, round(count * LAGGARDS_PER_DEPARTMENT))))
        self.recovering = special[0] if count else -1
        for department in special[1:]:
            self.mean[department] = LAGGARD_MEAN
        self.rated_quarters = 0
        self.panels: dict[str, tuple[str, ...]] = {}  # drawn, waiting for their ratings
        self.scored: dict[int, tuple[str, Verdict]] = {}  # weighted sum in tenths → score text, verdict

    @property
    def recovering_unit(self) -> str | None:
        """The department that recovers after its escalation."""
        return self.unit_ids[self.recovering] if self.recovering >= 0 else None

    @property
    def laggard_units(self) -> list[str]:
        """The departments persistently worse than the others."""
        return [unit for unit, mean in zip(self.unit_ids, self.mean, strict=True) if mean == LAGGARD_MEAN]

    def month(self, first: int, last: int) -> list[EventBase]:
        """The units' events dated in the month `first`…`last` (day ordinals), in date order: the
        departments' registrations in the window's first month, the ratings of the quarter that ended the
        day before `first`, the panel of a quarter that ends on `last` (before today)."""
        events: list[EventBase] = []
        if first == self.window_first:
            events.extend(
                self.event(
                    UnitRegistered,
                    first,
                    SYSTEM_UNITS,
                    f"unit-{unit_id}",
                    unit_id=unit_id,
                    name=DEPARTMENT_NAMES[index],
                    kind="department",
                )
                for index, unit_id in enumerate(self.unit_ids)
            )
        month_start = date.fromordinal(first)
        if month_start.month % 3 == 1:
            previous = date.fromordinal(first - 1)
            period = f"{previous.year:04d}Q{previous.month // 3}"
            if period in self.panels:
                events.extend(self._ratings(period, first, min(first + RATING_DAYS - 1, self.today)))
        last_day = date.fromordinal(last)
        if last_day.month % 3 == 0 and date.fromordinal(last + 1).day == 1 and last < self.today:
            events.append(self._panel(f"{last_day.year:04d}Q{last_day.month // 3}", last))
        return events

    def _panel(self, period: str, last: int) -> RatingPanelDrawn:
        seed = panel_seed(self.scale, self.seed, period)
        raters = draw_panel(seed, self.enterprises, self.panel_size)
        self.panels[period] = raters
        drawn = last - PANEL_WEEK_DAYS + 1 + int(self.rng.random() * PANEL_WEEK_DAYS)
        return self.event(
            RatingPanelDrawn,
            max(drawn, self.window_first),
            SYSTEM_SURVEY,
            f"panel-{period}",
            period=period,
            rater_kind=RATER_KIND,
            raters=raters,
            method=panel_method(self.enterprises, self.panel_size),
            seed=seed,
        )

    def _ratings(self, period: str, first: int, last: int) -> list[EventBase]:
        """Every enterprise of the period's panel rates every department, each enterprise on one day."""
        rng = self.rng
        gauss, random = rng.gauss, rng.random
        # Each enterprise rates on one day: the days first, then the ratings in date order.
        raters = sorted(
            ((first + int(random() * (last - first + 1)), rater_id) for rater_id in self.panels.pop(period)),
            key=itemgetter(0),
        )
        struggling = self.rated_quarters < RECOVERY_QUARTERS
        self.rated_quarters += 1
        means = [
            (STRUGGLING_MEAN if struggling else RECOVERED_MEAN) if d == self.recovering else mean
            for d, mean in enumerate(self.mean)
        ]
        means = [mean + gauss(0.0, QUARTER_DRIFT) for mean in means]
        (service, _), (efficiency, _), (integrity, _) = DIMENSIONS
        w_service, w_efficiency, w_integrity = WEIGHT_TENTHS
        event, unit_ids, scored, text = self.event, self.unit_ids, self.scored, POINT_TEXT
        spread, top = DIMENSION_NOISE, POINTS_MAX
        rated: list[EventBase] = []
        append = rated.append
        for day, rater_id in raters:
            rater = Rater(RATER_KIND, rater_id)
            leniency = self.leniency[int(rater_id[1:]) - 1]
            for unit_id, mean in zip(unit_ids, means, strict=True):
                level = mean + leniency + gauss(0.0, RATING_NOISE) + 0.5  # + 0.5: int() rounds
                a = max(0, min(top, int(level + (random() - 0.5) * spread)))
                b = max(0, min(top, int(level + (random() - 0.5) * spread)))
                c = max(0, min(top, int(level + (random() - 0.5) * spread)))
                tenths = w_service * a + w_efficiency * b + w_integrity * c
                if tenths not in scored:
                    exact = weighted_mean((a, b, c))
                    scored[tenths] = (str(exact), verdict_of(exact))
                score, verdict = scored[tenths]
                append(
                    event(
                        UnitRated,
                        day,
                        SYSTEM_SURVEY,
                        f"rating-{period}-{unit_id}-{rater_id}",
                        unit_id=unit_id,
                        period=period,
                        rater=rater,
                        score=score,
                        verdict=verdict,
                        scores={service: text[a], efficiency: text[b], integrity: text[c]},
                    )
                )
        return rated
