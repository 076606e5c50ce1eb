"""The posting contract (SPEC §3, §6), run against every store: SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest

from ledger import Conflict, InvalidInput, Ledger
from ledger.domain.events import (
    AppraisalRecorded,
    CadreDeparted,
    CadreTransferred,
    DeductionApplied,
    EntryReversed,
    EvaluationRecorded,
    MeritAwarded,
    RecallCompleted,
    RecallOrdered,
    Scores,
    Source,
)
from tests.conftest import TODAY, registration, source


def merit(
    cadre_id: str = "C1",
    *,
    on: date = date(2024, 5, 1),
    key: str | None = None,
    award: str = "citation",
    level: str = "county",
    deed: str | None = None,
) -> MeritAwarded:
    return MeritAwarded(
        cadre_id=cadre_id, effective_on=on, source=source(key=key), award=award, level=level, deed=deed
    )  # type: ignore[arg-type]


def refusal(ledger: Ledger, events: list, rule: str) -> InvalidInput:
    head = ledger.head()
    with pytest.raises(InvalidInput) as caught:
        ledger.post(events)
    assert caught.value.rule == rule, caught.value
    assert ledger.head() == head, "a refused batch records nothing"
    return caught.value


def test_empty_ledger_starts_with_the_illustrative_policy(ledger: Ledger) -> None:
    assert ledger.head() == 1
    (policy,) = ledger.policies()
    assert policy.version == "illustrative-3"
    assert ledger.verify().ok


def test_posted_batch_gets_positions_points_and_hashes_in_order(ledger: Ledger) -> None:
    result = ledger.post([registration(), merit(), merit(award="merit_first_class", level="national")])
    assert [item.position for item in result.results] == [2, 3, 4]
    assert [item.points for item in result.results] == [Decimal("0.00"), Decimal("1.00"), Decimal("20.00")]
    assert result.position == 4
    assert all(not item.replayed and len(item.hash) == 64 for item in result.results)
    assert ledger.verify().verified_through == 4


def test_replaying_a_batch_returns_the_original_result_and_records_nothing(ledger: Ledger) -> None:
    batch = [registration(key="r"), merit(key="m")]
    first = ledger.post(batch)
    again = ledger.post(batch)
    assert ledger.head() == first.position
    assert [item.replayed for item in again.results] == [True, True]
    assert [(i.event_id, i.position, i.points, i.hash) for i in again.results] == [
        (i.event_id, i.position, i.points, i.hash) for i in first.results
    ]


def test_same_key_with_other_content_is_a_conflict_and_records_nothing(ledger: Ledger) -> None:
    ledger.post([registration(key="r"), merit(key="m")])
    head = ledger.head()
    with pytest.raises(Conflict) as caught:
        ledger.post([merit(key="new"), merit(key="m", award="merit_first_class")])
    assert caught.value.item == 1
    assert ledger.head() == head


def test_a_batch_with_one_invalid_item_records_nothing_and_names_the_item(ledger: Ledger) -> None:
    ledger.post([registration()])
    error = refusal(ledger, [merit(), merit(cadre_id="NOBODY")], "cadre_must_be_registered")
    assert error.item == 1
    assert error.field == "cadre_id"


@pytest.mark.parametrize(
    ("event", "rule", "field"),
    [
        (lambda: merit(cadre_id="C9"), "cadre_must_be_registered", "cadre_id"),
        (lambda: merit(on=date(2023, 12, 31)), "effective_on_must_not_precede_registration", "effective_on"),
        (lambda: merit(on=date(2025, 12, 16)), "effective_on_must_not_be_in_future", "effective_on"),
        (registration, "cadre_must_not_be_registered_twice", "cadre_id"),
        (
            lambda: CadreTransferred(
                cadre_id="C1", effective_on=date(2024, 2, 1), source=source(), unit_id="U1"
            ),
            "transfer_must_change_unit",
            "unit_id",
        ),
        (
            lambda: RecallCompleted(
                cadre_id="C1", effective_on=date(2024, 2, 1), source=source(), outcome="passed"
            ),
            "recall_must_be_open",
            "type",
        ),
        (
            lambda: EvaluationRecorded(
                cadre_id="C1",
                effective_on=date(2024, 2, 1),
                source=source(),
                period="2024Q1",
                scores=Scores(self=Decimal(101), section=Decimal(80), leadership=Decimal(80)),
            ),
            "score_out_of_range",
            "scores.self",
        ),
    ],
)
def test_lifecycle_rules_refuse_with_the_field_and_the_rule(
    ledger: Ledger, event, rule: str, field: str
) -> None:
    ledger.post([registration()])
    error = refusal(ledger, [event()], rule)
    assert error.field == field


def test_nothing_may_be_dated_after_departure_except_reversing_it(ledger: Ledger) -> None:
    ledger.post([registration()])
    departed = ledger.post(
        [CadreDeparted(cadre_id="C1", effective_on=date(2025, 1, 31), source=source(), reason="retired")]
    ).results[0]
    refusal(ledger, [merit(on=date(2025, 2, 1))], "effective_on_must_not_follow_departure")
    ledger.post([merit(on=date(2025, 1, 31))])
    ledger.post(
        [
            EntryReversed(
                cadre_id="C1",
                effective_on=date(2025, 3, 1),
                source=source(),
                target_event_id=departed.event_id,
                reason="departure recorded in error",
            )
        ]
    )
    ledger.post([merit(on=date(2025, 3, 2))])


def test_reversal_counts_negated_points_and_only_once(ledger: Ledger) -> None:
    ledger.post([registration()])
    award = ledger.post([merit(award="merit_third_class", level="municipal")]).results[0]
    reverse = EntryReversed(
        cadre_id="C1",
        effective_on=date(2024, 9, 1),
        source=source(),
        target_event_id=award.event_id,
        reason="appeal upheld",
    )
    result = ledger.post([reverse]).results[0]
    assert result.points == -award.points == Decimal("-4.00")
    again = msgspec.structs.replace(reverse, source=source())
    refusal(ledger, [again], "reversal_target_must_not_be_reversed")


def test_registration_and_reversal_cannot_be_reversed(ledger: Ledger) -> None:
    registered = ledger.post([registration()]).results[0]
    refusal(
        ledger,
        [
            EntryReversed(
                cadre_id="C1",
                effective_on=date(2024, 9, 1),
                source=source(),
                target_event_id=registered.event_id,
                reason="x",
            )
        ],
        "reversal_target_must_be_reversible",
    )
    award = ledger.post([merit()]).results[0]
    reversal = ledger.post(
        [
            EntryReversed(
                cadre_id="C1",
                effective_on=date(2024, 9, 1),
                source=source(),
                target_event_id=award.event_id,
                reason="x",
            )
        ]
    ).results[0]
    refusal(
        ledger,
        [
            EntryReversed(
                cadre_id="C1",
                effective_on=date(2024, 9, 2),
                source=source(),
                target_event_id=reversal.event_id,
                reason="x",
            )
        ],
        "reversal_target_must_be_reversible",
    )


def test_a_reversal_must_target_an_event_of_the_same_cadre(ledger: Ledger) -> None:
    ledger.post([registration("C1"), registration("C2")])
    award = ledger.post([merit("C1")]).results[0]
    refusal(
        ledger,
        [
            EntryReversed(
                cadre_id="C2",
                effective_on=date(2024, 9, 1),
                source=source(),
                target_event_id=award.event_id,
                reason="x",
            )
        ],
        "reversal_target_must_be_reversible",
    )


def test_merit_annual_cap_and_same_deed_counts_once(ledger: Ledger) -> None:
    ledger.post([registration()])
    county = ledger.post([merit(award="merit_first_class", level="county", deed="flood")]).results[0]
    provincial = ledger.post([merit(award="merit_first_class", level="provincial", deed="flood")]).results[0]
    assert (county.points, provincial.points) == (Decimal("5.00"), Decimal("10.00")), "tops up to 15"
    national = ledger.post([merit(award="honorary_title", level="national")]).results[0]
    assert national.points == Decimal("15.00"), "capped at 30 for the year"
    assert ledger.post([merit()]).results[0].points == Decimal("0.00")
    assert ledger.post([merit(on=date(2025, 1, 2))]).results[0].points == Decimal("1.00")


def test_deduction_takes_points_and_gate_months_from_the_policy(ledger: Ledger) -> None:
    ledger.post([registration()])
    result = ledger.post(
        [
            DeductionApplied(
                cadre_id="C1",
                effective_on=date(2024, 6, 1),
                source=source(),
                kind="admonishment",
                level="unit",
            )
        ]
    )
    logged = ledger.event(result.results[0].event_id).event
    assert isinstance(logged, DeductionApplied)
    assert logged.gate_months == 6
    assert logged.points == result.results[0].points < 0
    assert logged.policy_version == "illustrative-3"


def test_overrides_only_where_the_policy_allows_within_bounds_with_a_reason(ledger: Ledger) -> None:
    ledger.post([registration()])
    allowed = msgspec.structs.replace(merit(), points=Decimal("7.50"), override_reason="committee decision")
    assert ledger.post([allowed]).results[0].points == Decimal("7.50")
    too_much = msgspec.structs.replace(merit(), points=Decimal("70.00"), override_reason="x")
    refusal(ledger, [too_much], "points_override_out_of_bounds")
    no_reason = msgspec.structs.replace(merit(), points=Decimal("1.00"))
    refusal(ledger, [no_reason], "override_reason_required")
    appraisal = AppraisalRecorded(
        cadre_id="C1",
        effective_on=date(2025, 1, 10),
        source=source(),
        year=2024,
        result="excellent",
        points=Decimal("9.00"),
        override_reason="x",
    )
    refusal(ledger, [appraisal], "points_override_not_allowed")


def test_server_fields_sent_by_a_client_are_refused(ledger: Ledger) -> None:
    ledger.post([registration()])
    forged = msgspec.structs.replace(merit(), posted_by="someone else")
    error = refusal(ledger, [forged], "server_field_not_allowed")
    assert error.field == "posted_by"


def test_an_appraisal_year_is_recorded_once(ledger: Ledger) -> None:
    ledger.post([registration()])
    first = AppraisalRecorded(
        cadre_id="C1", effective_on=date(2025, 1, 10), source=source(), year=2024, result="excellent"
    )
    assert ledger.post([first]).results[0].points == Decimal("5.00")
    refusal(
        ledger, [msgspec.structs.replace(first, source=source())], "appraisal_must_be_recorded_once_per_year"
    )


def test_recall_opens_and_completes(ledger: Ledger) -> None:
    ledger.post([registration()])
    ordered = ledger.post(
        [
            RecallOrdered(
                cadre_id="C1",
                effective_on=date(2025, 4, 2),
                source=source(),
                period="2025Q1",
                reason="bottom of unit",
            )
        ]
    ).results[0]
    assert ordered.points == Decimal("-2.00")
    done = ledger.post(
        [RecallCompleted(cadre_id="C1", effective_on=date(2025, 5, 30), source=source(), outcome="passed")]
    )
    assert done.results[0].points == Decimal("0.00")


def test_accrue_is_idempotent_per_cadre_and_period(ledger: Ledger) -> None:
    ledger.post([registration("C1"), registration("C2", on=date(2025, 11, 1))])
    first = ledger.accrue("2025Q3")
    assert len(first.results) == 1, "C2 registered after the period"
    assert first.results[0].points > 0
    again = ledger.accrue("2025Q3")
    assert [item.replayed for item in again.results] == [True]
    with pytest.raises(InvalidInput) as caught:
        ledger.accrue("2025Q4")
    assert caught.value.rule == "period_must_have_ended"


def test_the_policy_in_force_computes_points_by_effective_date(ledger: Ledger) -> None:
    from ledger.policy import illustrative_policy_text

    body = (
        illustrative_policy_text()
        .replace('version = "illustrative-3"', 'version = "v2"')
        .replace("effective_from = 2020-01-01", "effective_from = 2025-01-01")
        .replace('municipal = "2.00",  county = "1.00"', 'municipal = "2.00",  county = "1.50"')
    )
    assert 'county = "1.50"' in body
    ledger.publish_policy(body)
    ledger.post([registration()])
    old = ledger.post([merit(on=date(2024, 12, 31))]).results[0]
    new = ledger.post([merit(on=date(2025, 1, 1))]).results[0]
    assert (old.points, new.points) == (Decimal("1.00"), Decimal("1.50"))
    assert ledger.event(new.event_id).event.policy_version == "v2"
    with pytest.raises(InvalidInput) as caught:
        ledger.publish_policy(body.replace('county = "1.50"', 'county = "1.60"'))
    assert caught.value.rule == "policy_version_exists"


def test_events_of_another_source_system_never_collide(ledger: Ledger) -> None:
    ledger.post([registration()])
    a = merit(key="same")
    b = msgspec.structs.replace(merit(key="same"), source=Source(system="appraisal", key="same"))
    result = ledger.post([a, b])
    assert [item.replayed for item in result.results] == [False, False]


def test_a_duplicate_inside_one_batch_is_recorded_once(ledger: Ledger) -> None:
    ledger.post([registration()])
    award = merit(key="dup")
    result = ledger.post([award, award])
    assert result.results[0].event_id == result.results[1].event_id
    assert [item.replayed for item in result.results] == [False, True]
    assert ledger.head() == result.results[0].position


def test_reopening_the_ledger_keeps_every_rule(store_url: str) -> None:
    from tests.conftest import fixed_clock

    with Ledger.open(store_url, clock=fixed_clock) as first:
        first.post([registration(), merit(award="honorary_title", level="national", deed="d")])
    with Ledger.open(store_url, clock=fixed_clock) as second:
        assert second.head() == 3
        assert second.post([merit(award="honorary_title", level="national", deed="d")]).results[0].points == 0
        assert second.post([merit(award="merit_first_class", level="national")]).results[0].points == 5
        assert second.verify().ok
    assert TODAY.year == 2025


def test_a_late_grade_change_with_an_earlier_date_does_not_displace_the_current_grade(ledger: Ledger) -> None:
    from ledger.domain.events import CadreGradeChanged

    ledger.post([registration()])
    ledger.post(
        [
            CadreGradeChanged(
                cadre_id="C1", effective_on=date(2025, 6, 1), source=source(), grade="四级主任科员"
            )
        ]
    )
    ledger.post(
        [CadreGradeChanged(cadre_id="C1", effective_on=date(2024, 6, 1), source=source(), grade="二级科员")]
    )
    # The grade in force now is still the one of 2025-06-01: changing to it again is refused.
    refusal(
        ledger,
        [
            CadreGradeChanged(
                cadre_id="C1", effective_on=date(2025, 7, 1), source=source(), grade="四级主任科员"
            )
        ],
        "grade_change_must_change_grade",
    )


def test_an_appraisal_records_its_own_result_and_counts_its_years_cap(ledger: Ledger) -> None:
    """A 2024 demerit leaves 2024 ungraded: the excellent appraisal posted after it records the points of
    what was posted (5.00) and counts those of `ungraded` (0.00) — the same as if it had been posted first
    (ledger.policy.counting). Another year is untouched."""
    ledger.post([registration()])
    demerit = ledger.post(
        [
            DeductionApplied(
                cadre_id="C1", effective_on=date(2024, 6, 1), source=source(), kind="demerit", level="county"
            )
        ]
    )
    recorded = ledger.event(demerit.results[0].event_id).event
    assert isinstance(recorded, DeductionApplied)
    assert recorded.appraisal_years == (2024,)
    capped = AppraisalRecorded(
        cadre_id="C1", effective_on=date(2025, 1, 10), source=source(), year=2024, result="excellent"
    )
    assert ledger.post([capped]).results[0].points == Decimal("5.00")
    other_year = AppraisalRecorded(
        cadre_id="C1", effective_on=date(2025, 1, 10), source=source(), year=2023, result="excellent"
    )
    assert ledger.post([other_year]).results[0].points == Decimal("5.00")
    entries = {(entry.type, entry.position): entry for entry in ledger.history("C1").entries}
    appraisal_2024 = entries["appraisal.recorded", 4]
    assert (appraisal_2024.points, appraisal_2024.counted_points) == (Decimal("5.00"), Decimal("0.00"))
    assert appraisal_2024.adjustment is not None and "demerit" in appraisal_2024.adjustment
    assert entries["appraisal.recorded", 5].counted_points == Decimal("5.00")


def test_a_reversal_takes_no_client_points(ledger: Ledger) -> None:
    ledger.post([registration()])
    award = ledger.post([merit()]).results[0]
    reversal = EntryReversed(
        cadre_id="C1",
        effective_on=date(2024, 9, 1),
        source=source(),
        target_event_id=award.event_id,
        reason="x",
        points=Decimal("-9.00"),
        override_reason="more",
    )
    refusal(ledger, [reversal], "points_override_not_allowed")


def test_a_truncated_export_imports_nothing(ledger: Ledger, tmp_path) -> None:
    import io

    from ledger import IntegrityFailure

    ledger.post([registration(), merit(), merit(award="commendation")])
    buffer = io.BytesIO()
    ledger.export(buffer)
    truncated = io.BytesIO(b"".join(buffer.getvalue().splitlines(keepends=True)[:-1]))
    with Ledger.open(f"sqlite:///{tmp_path / 'copy.db'}", publish_illustrative=False) as copy:
        with pytest.raises(IntegrityFailure):
            copy.import_(truncated)
        assert copy.head() == 0


def test_a_recall_completion_cannot_precede_the_recall_it_completes(ledger: Ledger) -> None:
    ledger.post([registration()])
    ledger.post(
        [
            RecallOrdered(
                cadre_id="C1", effective_on=date(2025, 6, 1), source=source(), period="2025Q2", reason="末位"
            )
        ]
    )
    refusal(
        ledger,
        [RecallCompleted(cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), outcome="passed")],
        "recall_completion_must_not_precede_order",
    )


def test_an_investigation_cannot_close_before_it_opened(ledger: Ledger) -> None:
    from ledger.domain.events import InvestigationClosed, InvestigationOpened

    ledger.post([registration()])
    ledger.post(
        [
            InvestigationOpened(
                cadre_id="C1", effective_on=date(2025, 6, 1), source=source(), reference="纪-2025-7"
            )
        ]
    )
    refusal(
        ledger,
        [
            InvestigationClosed(
                cadre_id="C1", effective_on=date(2025, 3, 1), source=source(), reference="纪-2025-7"
            )
        ],
        "investigation_close_must_not_precede_opening",
    )


def test_an_instant_outside_the_calendar_in_utc_is_refused(ledger: Ledger) -> None:
    from datetime import datetime, timedelta, timezone

    ledger.post([registration()])
    beyond = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    with pytest.raises(InvalidInput) as caught:
        ledger.history("C1", known_at=beyond)
    assert (caught.value.field, caught.value.rule) == ("known_at", "known_at_out_of_range")
