"""The policy package: loading and refusing rulebooks, the pure rules, and the policy book."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec
import pytest

from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import AWARDS, DEDUCTION_KINDS, LEVELS, RESULTS, Scores
from ledger.policy import (
    Policy,
    PolicyBook,
    appraisal_at_most,
    appraisal_points,
    check_override,
    deduction_terms,
    evaluation_terms,
    illustrative_policy,
    illustrative_policy_text,
    load_policy,
    merit_points,
    months_between,
    policy_findings,
    recall_completed_points,
    recall_ordered_points,
    tenure_accrual,
    veto_points,
)
from ledger.policy.schema import AppraisalPoints, DeductionTable, LevelPoints, MeritTable

D = Decimal
TEXT = illustrative_policy_text()


def refusal(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        load_policy(text)
    assert caught.value.rule == "policy_invalid"
    return caught.value


def changed(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new, 1)


def with_tenure(**values: object) -> Policy:
    policy = illustrative_policy()
    return msgspec.structs.replace(policy, tenure=msgspec.structs.replace(policy.tenure, **values))


# Loading the illustrative policy


def test_the_illustrative_policy_loads_and_says_it_is_illustrative() -> None:
    policy = illustrative_policy()
    assert policy.illustrative is True
    assert policy.version == "illustrative-3"
    assert policy.effective_from == date(2020, 1, 1)
    assert "ILLUSTRATIVE POLICY" in TEXT
    assert policy_findings(policy) == []


def test_the_keyed_tables_follow_the_domain_words_exactly() -> None:
    assert LevelPoints.__struct_fields__ == LEVELS
    assert MeritTable.__struct_fields__ == AWARDS
    assert DeductionTable.__struct_fields__ == DEDUCTION_KINDS
    assert AppraisalPoints.__struct_fields__ == RESULTS


def test_decimals_are_held_as_decimals_with_points_at_two_places() -> None:
    policy = illustrative_policy()
    assert policy.merit.points.of("citation").at("unit") == D("0.50")
    assert str(policy.merit.annual_cap) == "30.00"
    assert policy.evaluation.weights.leadership == D("0.4")
    assert policy.eligibility.years_in_grade_min_for("一级科员") == D("2")
    assert policy.eligibility.years_in_grade_min_for("二级调研员") == D("3")
    assert policy.eligibility.years_in_grade_min_for("二级科员") == D("2")


def test_merit_points_fall_from_national_to_unit_level() -> None:
    table = illustrative_policy().merit.points
    for award in AWARDS:
        row = [table.of(award).at(level) for level in LEVELS]  # type: ignore[arg-type]
        assert row == sorted(row, reverse=True), award


# Refusing bad policies, naming the key path


def test_a_float_where_a_decimal_string_is_expected_is_refused_naming_the_key() -> None:
    error = refusal(changed('service_points_per_year = "1.00"', "service_points_per_year = 1.00"))
    assert error.field == "tenure.service_points_per_year"
    assert "float" in error.message


def test_an_integer_inside_an_award_table_is_refused_naming_the_cell() -> None:
    error = refusal(changed('municipal = "2.00",  county = "1.00"', 'municipal = 2,  county = "1.00"'))
    assert error.field == "merit.points.citation.municipal"


def test_points_with_three_places_are_refused() -> None:
    error = refusal(changed('annual_cap = "30.00"', 'annual_cap = "30.005"'))
    assert error.field == "merit.annual_cap"


def test_an_unknown_key_is_refused_naming_its_path() -> None:
    error = refusal(changed("[boards]\n", '[boards]\ncolour = "red"\n'))
    assert error.field == "boards.colour"
    assert "unknown key" in error.message


def test_an_unknown_top_level_key_is_refused() -> None:
    error = refusal(changed("illustrative = true\n", 'illustrative = true\nauthor = "me"\n'))
    assert error.field == "author"


def test_a_missing_award_by_level_cell_is_refused_naming_the_cell() -> None:
    error = refusal(changed('county = "1.00", unit = "0.50" }', 'county = "1.00" }'))
    assert error.field == "merit.points.citation.unit"
    assert "missing key" in error.message


def test_a_missing_deduction_kind_is_refused_naming_the_kind() -> None:
    error = refusal(changed("criticism                 =", "# criticism ="))
    assert error.field == "deductions.criticism"


def test_a_missing_section_is_refused() -> None:
    veto = '[veto]\npoints = "0.00"\nbarred_awards = ["commendation", "honorary_title", "performance_award"]'
    error = refusal(changed(veto, ""))
    assert error.field == "veto"


def test_evaluation_weights_that_do_not_sum_to_one_are_refused() -> None:
    error = refusal(changed('leadership = "0.4"', 'leadership = "0.5"'))
    assert error.field == "evaluation.weights"
    assert "1.1" in error.message


def test_a_toml_syntax_error_is_refused_with_its_line_and_column() -> None:
    error = refusal(changed("[boards]", "[boards"))
    assert error.field is None
    line = TEXT[: TEXT.index("[boards]")].count("\n") + 1
    assert f"line {line}" in error.message
    assert "column" in error.message


def test_a_gate_beyond_ten_years_is_refused() -> None:
    error = refusal(changed("gate_months = 3,", "gate_months = 121,"))
    assert error.field == "deductions.criticism.gate_months"


def test_a_deduction_that_adds_points_is_refused() -> None:
    error = refusal(changed('unit = "-15.00"', 'unit = "15.00"'))
    assert error.field == "deductions.dismissal.points.unit"


def test_negative_merit_points_are_refused() -> None:
    error = refusal(changed('unit = "0.20"', 'unit = "-0.20"'))
    assert error.field == "merit.points.performance_award.unit"


def test_ladder_steps_that_are_not_consecutive_are_refused() -> None:
    error = refusal(changed("step = 2", "step = 4"))
    assert error.field == "escalation.ladder"


def test_override_bounds_with_min_above_max_are_refused() -> None:
    error = refusal(changed('points_max = "10.00"', 'points_max = "-1.00"'))
    assert error.field == "overrides[0].points_min"


def test_an_override_for_a_type_without_points_is_refused() -> None:
    error = refusal(changed('event_type = "merit.awarded"', 'event_type = "cadre.registered"'))
    assert error.field == "overrides[0].event_type"


def test_an_unknown_grade_title_in_years_in_grade_is_refused() -> None:
    error = refusal(changed('"二级调研员" = "3"', '"科长" = "3"'))
    assert error.field == "eligibility.years_in_grade_min.科长"


def test_a_bad_value_in_years_in_grade_names_its_grade() -> None:
    error = refusal(changed('"二级调研员" = "3"', '"二级调研员" = 3'))
    assert error.field == "eligibility.years_in_grade_min.二级调研员"


def test_years_in_grade_without_a_default_is_refused() -> None:
    error = refusal(changed('default = "2"\n', ""))
    assert error.field == "eligibility.years_in_grade_min.default"


def test_recall_with_both_a_bottom_count_and_a_bottom_share_is_refused() -> None:
    error = refusal(changed("bottom_count = 3\n", 'bottom_count = 3\nbottom_share = "0.1"\n'))
    assert error.field == "recall.bottom_count"


def test_an_unknown_tie_breaker_is_refused() -> None:
    error = refusal(changed('"excellent_appraisals"]', '"age"]'))
    assert error.field == "ranking.tie_breakers[2]"


def test_an_effective_date_written_as_a_string_is_refused() -> None:
    error = refusal(changed("effective_from = 2020-01-01", 'effective_from = "2020-01-01"'))
    assert error.field == "effective_from"


def test_findings_list_every_problem_and_loading_mentions_how_many_more() -> None:
    text = changed('leadership = "0.4"', 'leadership = "0.5"').replace("step = 2", "step = 4", 1)
    error = refusal(text)
    assert "1 more" in error.message


# Tenure


def test_whole_months_count_only_once_the_same_day_of_the_month_is_reached() -> None:
    assert months_between(date(2020, 1, 15), date(2020, 2, 14)) == 0
    assert months_between(date(2020, 1, 15), date(2020, 2, 15)) == 1
    assert months_between(date(2020, 2, 15), date(2020, 1, 15)) == 0
    assert months_between(date(2019, 11, 30), date(2020, 3, 1)) == 3


def test_the_first_accrual_brings_in_the_whole_past_through_the_period_end() -> None:
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(2010, 1, 1),
        grade_starts=[date(2018, 1, 1)],
        accrued_through=None,
        period_end=date(2019, 12, 31),
    )
    # Ten years of service at 1.00 and two years in grade at 0.50.
    assert accrual.points == D("11.00")
    assert accrual.service_years == D("10.00")
    assert accrual.grade_years == D("2.00")


def test_a_quarter_earns_a_quarter_of_each_yearly_rate() -> None:
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(2010, 1, 1),
        grade_starts=[date(2018, 1, 1)],
        accrued_through=date(2019, 12, 31),
        period_end=date(2020, 3, 31),
    )
    # 0.25 for service; 0.125 for grade, rounded on the cumulative figures (1.00 → 1.13).
    assert accrual.points == D("0.38")
    assert accrual.service_years == D("10.25")


def test_grade_months_restart_after_a_grade_change() -> None:
    policy = illustrative_policy()
    # Promoted on 2020-04-01: grade months before it are not carried into the new grade.
    accrual = tenure_accrual(
        policy,
        service_started_on=date(2010, 1, 1),
        grade_starts=[date(2020, 4, 1)],
        accrued_through=date(2019, 12, 31),
        period_end=date(2020, 12, 31),
    )
    assert accrual.grade_years == D("0.75")
    # A full year of service (1.00) and nine months in the new grade (0.375 → 0.38).
    assert accrual.points == D("1.38")


def test_months_in_the_grade_left_still_count_after_a_grade_change() -> None:
    """In 一级科员 from 2018-01-01, promoted on 2020-04-01, accrued through 2019-12-31; the 2020 accrual:
    service 11 years (11.00) less 10 (10.00) = 1.00; grades: 27 months in the first (0.5 × 27 / 12 = 1.125
    → 1.13) plus 9 in the second (0.375 → 0.38), less 24 months of the first through 2019 (1.00) = 0.51.
    Total 1.51 — the three months of 2020 in the old grade are not lost."""
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(2010, 1, 1),
        grade_starts=[date(2018, 1, 1), date(2020, 4, 1)],
        accrued_through=date(2019, 12, 31),
        period_end=date(2020, 12, 31),
    )
    assert (accrual.points, accrual.grade_years) == (D("1.51"), D("0.75"))


def test_service_beyond_the_cap_earns_nothing_more() -> None:
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(1985, 1, 1),
        grade_starts=[date(2000, 1, 1)],
        accrued_through=date(2019, 12, 31),
        period_end=date(2020, 12, 31),
    )
    # 35 years of service (cap 30) and 20 years in grade (cap 10): both caps were reached before.
    assert accrual.points == D("0.00")
    assert accrual.service_years == D("36.00")


def test_the_year_a_cap_is_reached_earns_only_up_to_the_cap() -> None:
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(1990, 7, 1),
        grade_starts=[date(2020, 1, 1)],
        accrued_through=date(2019, 12, 31),
        period_end=date(2020, 12, 31),
    )
    # Service reaches 30 years on 2020-07-01: six months at 1.00; a full year in grade at 0.50.
    assert accrual.points == D("1.00")


def test_an_accrual_for_a_period_already_accrued_earns_nothing() -> None:
    accrual = tenure_accrual(
        illustrative_policy(),
        service_started_on=date(2010, 1, 1),
        grade_starts=[date(2018, 1, 1)],
        accrued_through=date(2020, 12, 31),
        period_end=date(2020, 6, 30),
    )
    assert accrual.points == D("0.00")


def test_tenure_rates_come_from_the_policy() -> None:
    policy = with_tenure(service_points_per_year=D("2.00"), grade_points_per_year=D("0.00"))
    accrual = tenure_accrual(
        policy,
        service_started_on=date(2020, 1, 1),
        grade_starts=[date(2020, 1, 1)],
        accrued_through=None,
        period_end=date(2020, 6, 30),
    )
    assert accrual.points == D("1.00")


# Merit


def test_a_merit_award_earns_its_table_value() -> None:
    policy = illustrative_policy()
    assert merit_points(policy, "merit_first_class", "national", year_total=D("0"), deed_counted=None) == D(
        "20.00"
    )
    assert merit_points(policy, "citation", "unit", year_total=D("0"), deed_counted=None) == D("0.50")


def test_a_deed_awarded_again_at_a_higher_level_tops_up_to_the_higher_value() -> None:
    policy = illustrative_policy()
    county = merit_points(policy, "commendation", "county", year_total=D("0"), deed_counted=None)
    provincial = merit_points(policy, "commendation", "provincial", year_total=county, deed_counted=county)
    assert (county, provincial) == (D("1.50"), D("2.50"))
    assert county + provincial == policy.merit.points.of("commendation").at("provincial")


def test_a_deed_awarded_again_at_a_lower_level_adds_nothing() -> None:
    points = merit_points(
        illustrative_policy(), "commendation", "unit", year_total=D("4.00"), deed_counted=D("4.00")
    )
    assert points == D("0.00")


def test_merit_points_stop_at_the_annual_cap() -> None:
    policy = illustrative_policy()
    assert merit_points(
        policy, "merit_first_class", "national", year_total=D("25.00"), deed_counted=None
    ) == D("5.00")
    assert merit_points(policy, "citation", "unit", year_total=D("30.00"), deed_counted=None) == D("0.00")
    assert merit_points(policy, "citation", "unit", year_total=D("31.00"), deed_counted=None) == D("0.00")


# Deductions, appraisals, evaluations, recalls, vetoes


def test_a_deduction_brings_its_points_gate_and_appraisal_cap() -> None:
    terms = deduction_terms(illustrative_policy(), "demerit", "county")
    assert (terms.points, terms.gate_months, terms.appraisal_cap) == (D("-5.00"), 12, "ungraded")
    criticism = deduction_terms(illustrative_policy(), "criticism", "unit")
    assert criticism.appraisal_cap is None
    assert criticism.gate_months == 3


def test_appraisal_points_follow_the_result() -> None:
    policy = illustrative_policy()
    assert appraisal_points(policy, "excellent") == D("5.00")
    assert appraisal_points(policy, "incompetent") == D("-5.00")


def test_evaluation_weighs_self_section_and_leadership_30_30_40() -> None:
    policy = illustrative_policy()
    perfect = Scores(D("100"), D("100"), D("100"))
    assert evaluation_terms(policy, perfect) == (D("100.00"), D("5.00"))
    weighted, points = evaluation_terms(policy, Scores(D("80"), D("90"), D("95.5")))
    assert weighted == D("89.20")  # 24 + 27 + 38.2
    assert points == D("4.46")


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        (Scores(D("101"), D("0"), D("0")), "scores.self"),
        (Scores(D("0"), D("-1"), D("0")), "scores.section"),
        (Scores(D("0"), D("0"), D("50.125")), "scores.leadership"),
        (Scores(D("0"), D("0"), D("NaN")), "scores.leadership"),
    ],
)
def test_a_score_outside_0_to_100_or_with_three_places_is_refused(scores: Scores, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        evaluation_terms(illustrative_policy(), scores)
    assert (caught.value.field, caught.value.rule) == (field, "score_out_of_range")


def test_recall_and_veto_points_come_from_the_policy() -> None:
    policy = illustrative_policy()
    assert recall_ordered_points(policy) == D("-2.00")
    assert recall_completed_points(policy, "passed") == D("0.00")
    assert recall_completed_points(policy, "failed") == D("-2.00")
    assert veto_points(policy) == D("0.00")


def test_an_appraisal_cap_lowers_a_better_result_and_leaves_a_worse_one() -> None:
    assert appraisal_at_most("excellent", "competent") == "competent"
    assert appraisal_at_most("basically_competent", "competent") == "basically_competent"
    assert appraisal_at_most("excellent", None) == "excellent"
    assert appraisal_at_most("incompetent", "ungraded") == "ungraded"
    assert appraisal_at_most("ungraded", "competent") == "ungraded"


# Overrides


def test_an_override_within_bounds_with_a_reason_is_accepted() -> None:
    points = check_override(illustrative_policy(), "merit.awarded", D("7.5"), "provincial rule 12")
    assert points == D("7.50")


def test_an_override_for_a_type_the_policy_does_not_allow_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_override(illustrative_policy(), "appraisal.recorded", D("1.00"), "because")
    assert (caught.value.field, caught.value.rule) == ("points", "points_override_not_allowed")


def test_an_override_without_a_reason_is_refused() -> None:
    for reason in (None, "  "):
        with pytest.raises(InvalidInput) as caught:
            check_override(illustrative_policy(), "merit.awarded", D("1.00"), reason)
        assert (caught.value.field, caught.value.rule) == (
            "override_reason",
            "override_reason_required",
        )


@pytest.mark.parametrize(
    ("event_type", "value"),
    [
        ("merit.awarded", "10.01"),
        ("merit.awarded", "-0.01"),
        ("deduction.applied", "0.01"),
        ("deduction.applied", "-10.01"),
    ],
)
def test_an_override_outside_the_bounds_is_refused(event_type: str, value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_override(illustrative_policy(), event_type, D(value), "reason")
    assert (caught.value.field, caught.value.rule) == ("points", "points_override_out_of_bounds")


def test_an_override_with_three_places_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_override(illustrative_policy(), "merit.awarded", D("1.005"), "reason")
    assert caught.value.rule == "points_must_have_two_places"


# The policy book


def policy_version(version: str, effective_from: date, annual_cap: str = "30.00") -> Policy:
    policy = illustrative_policy()
    merit = msgspec.structs.replace(policy.merit, annual_cap=D(annual_cap))
    return msgspec.structs.replace(policy, version=version, effective_from=effective_from, merit=merit)


def test_the_policy_in_force_is_the_latest_to_take_effect_on_or_before_the_day() -> None:
    book = PolicyBook()
    book.add("v1", date(2020, 1, 1), 1, policy_version("v1", date(2020, 1, 1)))
    book.add("v2", date(2022, 1, 1), 2, policy_version("v2", date(2022, 1, 1)))
    book.add("v0", date(2019, 1, 1), 3, policy_version("v0", date(2019, 1, 1)))
    assert book.in_force(date(2019, 6, 1)).version == "v0"
    assert book.in_force(date(2021, 12, 31)).version == "v1"
    assert book.in_force(date(2022, 1, 1)).version == "v2"
    assert [published.version for published in book] == ["v0", "v1", "v2"]


def test_two_policies_taking_effect_the_same_day_resolve_to_the_later_publication() -> None:
    book = PolicyBook()
    day = date(2021, 1, 1)
    book.add("b", day, 9, policy_version("b", day))
    book.add("a", day, 4, policy_version("a", day))
    assert book.in_force(day).version == "b"
    assert book.in_force(date(2030, 1, 1)).position == 9


def test_a_day_before_every_policy_has_no_policy_in_force() -> None:
    book = PolicyBook()
    with pytest.raises(InvalidInput) as caught:
        book.in_force(date(2020, 1, 1))
    assert (caught.value.field, caught.value.rule) == ("effective_on", "no_policy_in_force")
    book.add("v1", date(2020, 1, 2), 1, policy_version("v1", date(2020, 1, 2)))
    with pytest.raises(InvalidInput):
        book.in_force(date(2020, 1, 1))


def test_publishing_the_same_version_and_body_again_is_harmless() -> None:
    book = PolicyBook()
    day = date(2020, 1, 1)
    first = book.add("v1", day, 1, policy_version("v1", day))
    again = book.add("v1", day, 7, policy_version("v1", day))
    assert again == first
    assert len(book) == 1


def test_publishing_an_existing_version_with_another_body_is_refused() -> None:
    book = PolicyBook()
    day = date(2020, 1, 1)
    book.add("v1", day, 1, policy_version("v1", day))
    with pytest.raises(InvalidInput) as caught:
        book.add("v1", day, 2, policy_version("v1", day, annual_cap="20.00"))
    assert caught.value.rule == "policy_version_exists"


def test_a_publication_that_disagrees_with_the_policy_header_is_refused() -> None:
    book = PolicyBook()
    with pytest.raises(InvalidInput) as caught:
        book.add("v2", date(2020, 1, 1), 1, policy_version("v1", date(2020, 1, 1)))
    assert caught.value.rule == "policy_version_mismatch"
    with pytest.raises(InvalidInput) as caught:
        book.add("v1", date(2021, 1, 1), 1, policy_version("v1", date(2020, 1, 1)))
    assert caught.value.rule == "policy_effective_from_mismatch"


def test_a_version_never_published_is_not_found() -> None:
    book = PolicyBook()
    with pytest.raises(NotFound):
        book.get("v9")
    assert "v9" not in book
