"""Properties of history and replay: a cadre's history at any (as_of, known_at) equals a naive filter of the
raw log; the running total is the sum of the points before it; a reversal cancels its target exactly for
reads known after it; replayed posts change nothing.

Method: hypothesis draws a sequence of postings (awards, deductions, appraisals, evaluations, late postings,
reversals of earlier entries), each posted as its own batch into a fresh SQLite ledger; then reads at random
(as_of, known_at) pairs are compared with a model computed from `Ledger.events()` alone — the points as
recorded, and what each counts (an appraisal of a year with a capping deduction counts the capped result,
whichever was recorded first).
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import InvalidInput, Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    EventBase,
    MeritAwarded,
    Scores,
    Source,
)
from ledger.domain.points import ZERO
from tests.conftest import fixed_clock, registration

START = date(2024, 1, 1)
DAYS = 700  # up to 2025-12-01, before the fixed clock's today

AWARDS = ("citation", "merit_third_class", "commendation", "performance_award")
LEVELS = ("unit", "county", "municipal", "provincial")
KINDS = ("criticism", "admonishment", "party_warning")

operation = st.one_of(
    st.tuples(st.just("merit"), st.integers(0, DAYS), st.sampled_from(AWARDS), st.sampled_from(LEVELS)),
    st.tuples(st.just("deduction"), st.integers(0, DAYS), st.sampled_from(KINDS), st.sampled_from(LEVELS)),
    st.tuples(st.just("evaluation"), st.integers(0, DAYS), st.integers(60, 100), st.integers(60, 100)),
    st.tuples(
        st.just("appraisal"), st.integers(0, DAYS), st.sampled_from(["excellent", "competent"]), st.just("")
    ),
    st.tuples(st.just("reverse"), st.integers(0, DAYS), st.integers(0, 10_000), st.just("")),
)


def build_event(op: tuple, cadre_id: str, key: int, recorded: list[tuple[str, date]]) -> EventBase | None:
    kind, day, a, b = op
    on = START + timedelta(days=day)
    source = Source(system="prop", key=str(key))
    if kind == "merit":
        return MeritAwarded(cadre_id=cadre_id, effective_on=on, source=source, award=a, level=b)
    if kind == "deduction":
        return DeductionApplied(cadre_id=cadre_id, effective_on=on, source=source, kind=a, level=b)
    if kind == "evaluation":
        return EvaluationRecorded(
            cadre_id=cadre_id,
            effective_on=on,
            source=source,
            period="2024Q1",
            scores=Scores(self=Decimal(a), section=Decimal(b), leadership=Decimal(a)),
        )
    if kind == "appraisal":
        return AppraisalRecorded(cadre_id=cadre_id, effective_on=on, source=source, year=on.year, result=a)
    if not recorded:
        return None
    target_id, target_on = recorded[a % len(recorded)]
    return EntryReversed(
        cadre_id=cadre_id,
        effective_on=max(on, target_on),
        source=source,
        target_event_id=target_id,
        reason="review",
    )  # type: ignore[arg-type]


# The illustrative policy's appraisal points, and the kinds drawn above that cap the appraisal of their year
# (admonishment and party warning: at most competent; criticism: no cap).
APPRAISAL_POINTS = {"excellent": Decimal("5.00"), "competent": Decimal("2.00")}
CAPPING_KINDS = {"admonishment", "party_warning"}


def model_history(log: list, cadre_id: str, as_of: date, known_at: int) -> list[tuple[int, Decimal]]:
    """(position, points) of the entries a read sees, in valid-time order, from the raw log alone."""
    events = {entry.event.event_id: entry for entry in log}
    seen = []
    for entry in log:
        event = entry.event
        if getattr(event, "cadre_id", None) != cadre_id or entry.position > known_at:
            continue
        counts_from = event.effective_on
        if isinstance(event, EntryReversed):
            counts_from = events[event.target_event_id].event.effective_on
        if counts_from <= as_of:
            seen.append((counts_from, entry.position, event.points))
    seen.sort()
    return [(position, points) for _day, position, points in seen]


def model_counted(log: list, cadre_id: str, known_at: int) -> dict[int, Decimal]:
    """Per position, what an entry counts: an excellent appraisal of a year with a capping deduction known
    and not reversed counts as competent, whichever was recorded first; a reversal minus its target."""
    known = [
        entry
        for entry in log
        if getattr(entry.event, "cadre_id", None) == cadre_id and entry.position <= known_at
    ]
    reversed_ids = {entry.event.target_event_id for entry in known if isinstance(entry.event, EntryReversed)}
    capped_years = {
        entry.event.effective_on.year
        for entry in known
        if isinstance(entry.event, DeductionApplied)
        and entry.event.kind in CAPPING_KINDS
        and entry.event.event_id not in reversed_ids
    }
    counted: dict[int, Decimal] = {}
    by_id: dict[object, Decimal] = {}
    for entry in known:
        event = entry.event
        points = event.points
        if isinstance(event, AppraisalRecorded) and event.year in capped_years:
            points = APPRAISAL_POINTS["competent"]
        if isinstance(event, EntryReversed):
            points = -by_id[event.target_event_id]
        counted[entry.position] = by_id[event.event_id] = points
    return counted


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operations=st.lists(operation, min_size=1, max_size=25),
    reads=st.lists(st.tuples(st.integers(-5, DAYS + 5), st.integers(0, 40)), min_size=1, max_size=8),
    replay=st.integers(0, 1_000),
)
def test_history_equals_a_naive_filter_of_the_raw_log(operations, reads, replay) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger.open(f"sqlite:///{Path(folder) / 'l.db'}", clock=fixed_clock) as ledger,
    ):
        ledger.post([registration("C1", on=START), registration("C2", on=START)])
        recorded: list[tuple[str, date]] = []
        batches: list[list[EventBase]] = []
        for key, op in enumerate(operations):
            event = build_event(op, "C1" if key % 3 else "C2", key, recorded if key % 3 else [])
            if event is None:
                continue
            try:
                result = ledger.post([event])
            except InvalidInput:
                continue  # a rule refused it (second reversal, second appraisal of a year): fine
            batches.append([event])
            if not isinstance(event, EntryReversed) and key % 3:
                recorded.append((result.results[0].event_id, event.effective_on))
        head = ledger.head()
        log = ledger.events(after=0, limit=10_000)
        assert [entry.position for entry in log] == list(range(1, head + 1))

        for day, known_offset in reads:
            as_of = START + timedelta(days=day)
            known_at = max(0, head - known_offset)
            for cadre_id in ("C1", "C2"):
                expected = model_history(log, cadre_id, as_of, known_at)
                if known_at < 3:
                    continue  # the two registrations (positions 2 and 3) were not known yet
                page = ledger.history(cadre_id, as_of=as_of, known_at=known_at)
                assert [(e.position, e.points) for e in page.entries] == expected
                counted = model_counted(log, cadre_id, known_at)
                running = ZERO
                for entry in page.entries:
                    assert entry.counted_points == counted[entry.position]
                    running += counted[entry.position]
                    assert entry.running_total == running
                assert page.total == running == sum((counted[pos] for pos, _p in expected), ZERO)
                assert page.position == known_at

        if batches:
            again = ledger.post(batches[replay % len(batches)])
            assert all(item.replayed for item in again.results)
            assert ledger.head() == head, "a replay records nothing"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(award_day=st.integers(0, 300), decision_delay=st.integers(0, 300), read_day=st.integers(0, 700))
def test_a_reversal_cancels_its_target_for_reads_known_after_it_and_not_before(
    award_day, decision_delay, read_day
) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger.open(f"sqlite:///{Path(folder) / 'l.db'}", clock=fixed_clock) as ledger,
    ):
        ledger.post([registration("C1", on=START)])
        award_on = START + timedelta(days=award_day)
        award = ledger.post(
            [
                MeritAwarded(
                    cadre_id="C1",
                    effective_on=award_on,
                    source=Source(system="p", key="a"),
                    award="merit_third_class",
                    level="county",
                )
            ]
        ).results[0]
        known_before = ledger.head()
        decided_on = award_on + timedelta(days=decision_delay)
        ledger.post(
            [
                EntryReversed(
                    cadre_id="C1",
                    effective_on=decided_on,
                    source=Source(system="p", key="r"),
                    target_event_id=award.event_id,
                    reason="appeal",
                )
            ]
        )
        as_of = START + timedelta(days=read_day)
        counts = award_on <= as_of
        before = ledger.history("C1", as_of=as_of, known_at=known_before)
        after = ledger.history("C1", as_of=as_of)
        assert before.total == (award.points if counts else ZERO)
        assert after.total == ZERO, "known after the reversal, the two cancel from the award's date"
        if counts:
            entry = next(e for e in after.entries if e.event_id == award.event_id)
            assert entry.reversed_by is not None
            assert msgspec.to_builtins(before.entries[-1].reversed_by) is None
