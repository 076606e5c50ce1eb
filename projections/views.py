"""The read models, computed from a snapshot: rankings, eligibility, recalls, boards, escalations.

Pure functions of a `Snapshot` (every cadre's standing at one as_of, known_at), the sparse facts of the
index and the policy in force; no clock, no database. The rules, in SPEC §5 and §7 terms:

- rank: total descending, then the policy's tie-breakers (each descending), competition ranking — cadres
  equal on all of them share a rank (1, 2, 2, 4) and are listed by cadre_id; `rank_pools` ranks several
  pools (every unit of `unit:*`) in one sort, each on its own, and `bottom_of_groups` takes each one's bottom;
- the top and bottom N of a pool (`top`, `bottom`): every cadre ranked at or above (below) the rank of the
  N-th from the top (bottom), so a tied group at the edge is listed whole — the one rule of recalls, both
  boards and escalations;
- eligibility: every check of `CHECKS`, each with the detail that decided it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

import numpy as np

from ledger.domain.events import GRADES, Result
from ledger.domain.points import quantize
from ledger.policy.book import PublishedPolicy
from ledger.policy.load import illustrative_policy
from ledger.policy.rules import add_months, appraisal_at_most
from ledger.policy.schema import Policy
from ledger.projections.facts import Fact, Kind, day, from_day, integer
from ledger.projections.index import Array, Index, Snapshot
from ledger.projections.results import Check, Components

__all__ = [
    "board_lists",
    "bottom",
    "bottom_of_groups",
    "competition_ranks",
    "components_of",
    "decimals_of",
    "eligibility_checks",
    "group_bounds",
    "open_recalls",
    "points_of_cents",
    "policy_at",
    "rank",
    "rank_pools",
    "top",
    "vetoed",
]

MONTHS_PER_YEAR: Final = 12


_POINTS_CACHE: dict[int, Decimal] = {}
POINTS_CACHE_SIZE_MAX: Final = 200_000


def points_of_cents(cents: int) -> Decimal:
    """Points from cents. A ranking turns tens of thousands of figures into Decimals and many repeat, so
    the Decimals are kept (bounded); `scaleb(-2)` of an integer has exactly two places."""
    value = _POINTS_CACHE.get(cents)
    if value is None:
        if len(_POINTS_CACHE) >= POINTS_CACHE_SIZE_MAX:
            _POINTS_CACHE.clear()
        value = _POINTS_CACHE[cents] = Decimal(int(cents)).scaleb(-2)
    return value


def decimals_of(cents: list[int]) -> list[Decimal]:
    """Points for many figures at once (through the same bounded cache as `points_of_cents`)."""
    cache = _POINTS_CACHE
    if len(cache) >= POINTS_CACHE_SIZE_MAX:
        cache.clear()
    for value in set(cents).difference(cache):
        cache[value] = Decimal(value).scaleb(-2)
    return list(map(cache.__getitem__, cents))


def components_of(snapshot: Snapshot, code: int) -> Components:
    tenure, merit, deductions, appraisal, evaluation, recall = snapshot.components_list[code]
    return Components(
        points_of_cents(tenure),
        points_of_cents(merit),
        points_of_cents(deductions),
        points_of_cents(appraisal),
        points_of_cents(evaluation),
        points_of_cents(recall),
    )


def policy_at(index: Index, as_of: date, known_at: int) -> Policy:
    """The policy in force on `as_of` as known at `known_at`; before any, the earliest known; else the
    packaged illustrative one."""
    known = [published for published in index.policies if published.position <= known_at]
    in_force = [published for published in known if published.effective_from <= as_of]
    chosen: PublishedPolicy | None = None
    if in_force:
        chosen = max(in_force, key=lambda published: (published.effective_from, published.position))
    elif known:
        chosen = min(known, key=lambda published: (published.effective_from, published.position))
    return chosen.policy if chosen is not None else illustrative_policy()


def months_between_days(start_days: Array, end_day: int) -> Array:
    """Whole months from each start day to `end_day` (the policy's rule: a month completes on the same day
    of the next month), never negative."""
    start = start_days.astype("datetime64[D]")
    end = np.datetime64(end_day, "D")
    start_month = start.astype("datetime64[M]")
    end_month = end.astype("datetime64[M]")
    months = (end_month - start_month).astype(np.int64)
    start_dom = (start - start_month.astype("datetime64[D]")).astype(np.int64)
    end_dom = (end - end_month.astype("datetime64[D]")).astype(np.int64)
    months -= (end_dom < start_dom).astype(np.int64)
    result: Array = np.maximum(months, 0)
    return result


def tie_breaker_values(snapshot: Snapshot, name: str) -> Array:
    """Per cadre code, the value compared for a tie-breaker (more is better). Time in grade and in service
    compare days, so cadres a few days apart do not share a rank."""
    if name == "grade_years":
        return snapshot.as_of_day - snapshot.grade_since_day.astype(np.int64)
    if name == "service_years":
        return snapshot.as_of_day - snapshot.index.registrations["service_started_day"].astype(np.int64)
    if name == "excellent_appraisals":
        return snapshot.excellent.astype(np.int64)
    if name == "merit_points":
        return snapshot.components[:, 1]
    raise ValueError(f"unknown tie-breaker {name!r}")  # pragma: no cover - the policy validates names


def rank(snapshot: Snapshot, members: Array, tie_breakers: tuple[str, ...]) -> tuple[Array, Array]:
    """`members` in ranking order and their competition ranks."""
    order, ranks, _groups = rank_pools(
        snapshot, members, np.zeros(members.size, dtype=np.int64), tie_breakers
    )
    return order, ranks


def rank_pools(
    snapshot: Snapshot, members: Array, pools: Array, tie_breakers: tuple[str, ...]
) -> tuple[Array, Array, Array]:
    """Several pools ranked at once, each on its own: `members` grouped by their pool (`pools`, a code per
    member; groups in ascending code order), each group in ranking order, with its competition ranks within
    the group, and the group of each. One sort for every unit of a city instead of one per unit."""
    if members.size == 0:
        return members, members, pools
    values = [snapshot.totals[members]] + [
        tie_breaker_values(snapshot, name)[members] for name in tie_breakers
    ]
    order = ranking_order(pools, values, snapshot.index.id_order()[members])
    ordered = np.stack([value[order] for value in values])
    groups = pools[order]
    return members[order], competition_ranks(ordered, groups), groups


def ranking_order(pools: Array, values: list[Array], id_order: Array) -> Array:
    """The order of `np.lexsort([id_order, *(-v for v in reversed(values)), pools])`: by pool, then each
    compared value descending, then cadre_id — computed faster. One sort of the pool and the first value
    packed into one integer; only the runs tied on both are ordered by the other values (few: a lexsort
    of seven keys over 3,900 cadres costs 0.9 ms, the packed sort 0.1 ms)."""
    first = values[0].astype(np.int64)
    pools = pools.astype(np.int64)
    low, high = (int(first.min()), int(first.max())) if first.size else (0, 0)
    span = high - low + 1
    if pools.size == 0 or int(pools.min()) < 0 or (int(pools.max()) + 1) * span >= 2**62:
        return np.lexsort([id_order, *(-value for value in reversed(values)), pools])
    packed = pools * span + (high - first)  # ascending: pool, then the first value descending
    # Any sort will do: the runs tied on the packed key are ordered below by keys that end in the cadre's
    # unique place, so the order is the same whatever the sort did with them.
    order = np.argsort(packed)
    packed = packed[order]
    tied = np.zeros(order.size, dtype=bool)
    tied[1:] = packed[1:] == packed[:-1]
    tied[:-1] |= tied[1:]
    if tied.any():
        rows = np.flatnonzero(tied)
        among = order[rows]
        # The tied runs keep their place; within each, the rest of the keys decide.
        inner = np.lexsort(
            [id_order[among], *(-value[among] for value in reversed(values[1:])), packed[rows]]
        )
        order[rows] = among[inner]
    return order


def competition_ranks(ordered_values: Array, groups: Array | None = None) -> Array:
    """Ranks 1, 2, 2, 4 … for columns already in ranking order (rows: the compared values); with `groups`
    (a group per column, each group's columns together), ranks restart at 1 in each group."""
    count = ordered_values.shape[1]
    new_tie = np.ones(count, dtype=bool)
    new_tie[1:] = np.any(ordered_values[:, 1:] != ordered_values[:, :-1], axis=0)
    places = np.arange(1, count + 1)
    if groups is None:
        return np.maximum.accumulate(np.where(new_tie, places, 0))
    new_group = np.ones(count, dtype=bool)
    new_group[1:] = groups[1:] != groups[:-1]
    tie_start = np.maximum.accumulate(np.where(new_tie | new_group, places, 0))
    group_start = np.maximum.accumulate(np.where(new_group, places, 0))
    ranks: Array = tie_start - group_start + 1
    return ranks


def group_bounds(groups: Array) -> tuple[Array, Array]:
    """Where each group of a grouped order starts, and its length."""
    if groups.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return starts, np.diff(np.r_[starts, groups.size])


def bottom_of_groups(ranks: Array, groups: Array, sizes: Array) -> Array:
    """Mask of the bottom `sizes[g]` of each group `g` of a grouped order (`bottom` for each group at once:
    ties at each edge included). `sizes` has one count per group, in the order of `group_bounds`."""
    starts, lengths = group_bounds(groups)
    if starts.size == 0:
        return np.zeros(0, dtype=bool)
    sizes = np.asarray(sizes, dtype=np.int64)
    # The rank of the `size`-th from the bottom of each group; 0 (every rank is above it) for a group no
    # larger than its size, and beyond every rank for a size of 0 or less.
    edge_row = np.clip(starts + lengths - sizes, starts, starts + lengths - 1)
    edges = np.where(sizes >= lengths, 0, ranks[edge_row])
    edges = np.where(sizes <= 0, np.iinfo(np.int64).max, edges)
    mask: Array = ranks >= np.repeat(edges, lengths)
    return mask


def top(ranks: Array, size: int) -> Array:
    """Mask of the top `size` of ranks in ranking order: every rank at or above the rank of the `size`-th
    from the top (ties at the edge included, so more than `size` may be chosen)."""
    if size <= 0:
        return np.zeros(ranks.size, dtype=bool)
    if size >= ranks.size:
        return np.ones(ranks.size, dtype=bool)
    mask: Array = ranks <= ranks[size - 1]
    return mask


def bottom(ranks: Array, size: int) -> Array:
    """Mask of the bottom `size` of ranks in ranking order: every rank at or below the rank of the
    `size`-th from the bottom (ties at the edge included, so more than `size` may be chosen)."""
    if size <= 0:
        return np.zeros(ranks.size, dtype=bool)
    if size >= ranks.size:
        return np.ones(ranks.size, dtype=bool)
    mask: Array = ranks >= ranks[ranks.size - size]
    return mask


def board_lists(ranks: Array, barred: Array, red_count: int, black_count: int) -> tuple[Array, Array]:
    """Masks of the red and black boards (红黑榜) of a ranked pool.

    Red: the top `red_count` of the cadres not `barred` (a veto for the year). Black: the bottom
    `black_count` of the cadres not on red. Red is chosen first, so in a pool smaller than both boards
    nobody is on both; ties at each edge are listed whole.
    """
    red = np.zeros(ranks.size, dtype=bool)
    allowed = np.flatnonzero(~barred)
    red[allowed[top(ranks[allowed], red_count)]] = True
    black = np.zeros(ranks.size, dtype=bool)
    rest = np.flatnonzero(~red)
    black[rest[bottom(ranks[rest], black_count)]] = True
    return red, black


def recall_count(policy: Policy, pool: int) -> int:
    if policy.recall.bottom_count is not None:
        return int(policy.recall.bottom_count)
    share = policy.recall.bottom_share or Decimal(0)
    return math.ceil(share * pool)


def vetoed(index: Index, snapshot: Snapshot, code: int, year: int) -> bool:
    """Whether a one-vote veto for `year` is in force as known at the snapshot: it counts for its year
    whatever the date read (a veto for 2024 is decided in 2025)."""
    if year not in index.veto_years.get(code, ()):
        return False  # the common case: no veto for that year was ever recorded
    return any(veto.year == year for veto in index.counting.vetoes_in_force(code, snapshot.known_at))


@dataclass(frozen=True, slots=True)
class OpenRecallFact:
    ordered_on: date
    period: str
    reason: str


def open_recalls(index: Index, code: int, as_of_day: int, known_at: int) -> list[OpenRecallFact]:
    """Recalls ordered and not completed at (as_of, known_at); a completion closes the oldest open one."""
    facts = [
        fact
        for fact in index.cadres[code].sparse
        if index.in_force(fact, as_of_day, known_at)
        and fact.kind in (Kind.RECALL_ORDERED, Kind.RECALL_COMPLETED)
    ]
    facts.sort(key=lambda fact: (fact.effective_on, fact.position))
    opened: list[Fact] = []
    for fact in facts:
        if fact.kind == Kind.RECALL_ORDERED:
            opened.append(fact)
        elif opened:
            opened.pop(0)
    return [
        OpenRecallFact(from_day(fact.effective_on), str(fact.detail[0]), str(fact.detail[1]))
        for fact in opened
    ]


def _appraisals(index: Index, code: int, as_of_day: int, known_at: int) -> dict[int, Result]:
    """Counted appraisal result per year (ledger.policy.counting: after sanctions and investigations)."""
    return {
        integer(fact.detail[0]): counted.result
        for fact, counted in sorted(
            index.counting.counted_appraisals(code, as_of_day, known_at), key=lambda item: item[0].position
        )
    }


def _at_least(result: Result, required: Result) -> bool:
    """Whether `result` is `required` or better: capping it at `required` leaves `required`."""
    return appraisal_at_most(result, required) == required


def eligibility_checks(
    index: Index,
    snapshot: Snapshot,
    code: int,
    policy: Policy,
    *,
    scope_rank: int | None,
    pool: int,
    standing_snapshot: Snapshot | None = None,
) -> list[Check]:
    """Every check that decides whether a cadre may be promoted, each with its detail.

    `scope_rank` and `pool` are the cadre's rank in its scope and the scope's size on the policy's standing
    basis; `standing_snapshot` holds the totals of that basis (the period's, for `period`).
    """
    as_of_day, known_at = snapshot.as_of_day, snapshot.known_at
    as_of = from_day(as_of_day)
    rules = policy.eligibility
    checks: list[Check] = []

    active = bool(snapshot.active[code])
    departed = int(snapshot.departed_day[code])
    checks.append(Check("status", active, "active" if active else f"departed on {from_day(departed)}"))

    grade = GRADES[int(snapshot.grade[code])]
    grade_since = from_day(int(snapshot.grade_since_day[code]))
    appraisals = _appraisals(index, code, as_of_day, known_at)
    months = int(months_between_days(np.array([day(grade_since)]), as_of_day)[0])
    in_grade = {year: result for year, result in appraisals.items() if grade_since.year <= year <= as_of.year}
    not_counting = sorted(year for year, result in in_grade.items() if result not in rules.counting_results)
    excellent = sorted(year for year, result in in_grade.items() if result == "excellent")
    required = Decimal(rules.years_in_grade_min_for(grade))
    shortened = required - rules.excellent_year_shortens_by * len(excellent)
    counted = Decimal(months - MONTHS_PER_YEAR * len(not_counting)) / MONTHS_PER_YEAR
    passed = counted >= shortened
    detail = (
        f"{quantize(counted)} counted years in {grade} since {grade_since}, {quantize(shortened)} required"
    )
    if excellent:
        detail += f" ({required} less {rules.excellent_year_shortens_by} for each excellent year: "
        detail += ", ".join(map(str, excellent)) + ")"
    if not_counting:
        detail += "; not counted: " + ", ".join(f"{year} {in_grade[year]}" for year in not_counting)
    checks.append(Check("years_in_grade", passed, detail))

    if rules.appraisal_required is not None:
        if appraisals:
            latest_year = max(appraisals)
            result = appraisals[latest_year]
            ok = _at_least(result, rules.appraisal_required)
            checks.append(
                Check(
                    "appraisal", ok, f"{latest_year}: {result} (at least {rules.appraisal_required} required)"
                )
            )
        else:
            checks.append(Check("appraisal", False, "no appraisal recorded"))

    gates = []
    deductions = sorted(
        (fact for fact in index.cadres[code].sparse if fact.kind == Kind.DEDUCTION),
        key=lambda fact: (fact.effective_on, str(fact.detail[0]), fact.position),
    )
    for fact in deductions:
        if index.in_force(fact, as_of_day, known_at):
            kind, gate_months = str(fact.detail[0]), integer(fact.detail[1])
            until = add_months(from_day(fact.effective_on), gate_months)
            if as_of < until:
                gates.append(f"{kind} of {from_day(fact.effective_on)} gates until {until}")
    checks.append(Check("gates", not gates, "; ".join(gates) if gates else "no active gate"))

    recalls = open_recalls(index, code, as_of_day, known_at)
    checks.append(
        Check(
            "recall",
            not recalls,
            "; ".join(f"recall for {r.period} ordered {r.ordered_on} is open" for r in recalls)
            if recalls
            else "no open recall",
        )
    )
    investigations = list(index.counting.open_investigations(code, as_of_day, known_at))
    checks.append(
        Check(
            "investigation",
            not investigations,
            "open: " + ", ".join(investigations) if investigations else "no open investigation",
        )
    )
    veto = vetoed(index, snapshot, code, as_of.year)
    checks.append(
        Check("veto", not veto, f"one-vote veto in {as_of.year}" if veto else f"no veto in {as_of.year}")
    )

    standing = rules.standing
    if standing.top_share is None and standing.points_min is None:
        checks.append(Check("standing", True, "the policy sets no standing rule"))
    else:
        basis_snapshot = standing_snapshot or snapshot
        total = points_of_cents(int(basis_snapshot.totals[code]))
        what = (
            "total"
            if basis_snapshot.since_day is None
            else f"points since {from_day(basis_snapshot.since_day)}"
        )
        reasons = []
        ok = False
        if standing.top_share is not None and scope_rank is not None:
            allowed = math.ceil(standing.top_share * pool)
            ok = ok or scope_rank <= allowed
            reasons.append(f"rank {scope_rank} of {pool} by {what} (top {standing.top_share}: {allowed})")
        if standing.points_min is not None:
            ok = ok or total >= standing.points_min
            reasons.append(f"{what} {total} (minimum {standing.points_min})")
        checks.append(Check("standing", ok, " or ".join(reasons) if reasons else "not ranked"))
    return checks
