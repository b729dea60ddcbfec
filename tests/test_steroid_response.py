"""Initial steroid response of a child under ipna-2022-child (RULES.md §2-3).

Unless said otherwise the child is 6 years old, 20 kg and 115 cm (BSA 0.80 m2, standard prednisolone
48 mg/day = 60 mg/m2), presents on day 0 and starts prednisolone on day 0.
"""

import pytest

from fhir_ns.timeline.timeline import Level
from tests.chart import Chart, codes, day, finding_codes, steroid_resistant_child, steroid_sensitive_child


def presenting_child(**kwargs) -> Chart:
    """Nephrotic on day 0 (UPCR 600 mg/mmol, albumin 18 g/L), prednisolone 48 mg/day from day 0 to day 41."""
    return Chart(**kwargs).upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=48)


def only(result, code):
    found = [c for c in result.classifications if c.code == code]
    assert len(found) == 1, f"expected one {code}, got {codes(result)}"
    return found[0]


# -- complete remission within 4 weeks ---------------------------------------------------------------


def test_cr_by_day_28_is_steroid_sensitive():
    result = presenting_child().upcr(14, 10).evaluate(as_of_day=60)
    assert codes(result) == ["ssns"]
    ssns = only(result, "ssns")
    assert ssns.since == day(14)
    assert "complete remission on 2023-01-16" in ssns.reason and "day 14" in ssns.reason


def test_cr_on_day_28_exactly_is_steroid_sensitive():
    result = presenting_child().upcr(21, 100).albumin(21, 32).upcr(28, 15).evaluate(as_of_day=60)
    assert codes(result) == ["ssns"]
    assert only(result, "ssns").since == day(28)


def test_cr_on_day_29_after_pr_at_week_4_is_not_within_4_weeks_but_a_late_response():
    result = presenting_child().upcr(21, 100).albumin(21, 32).upcr(29, 15).evaluate(as_of_day=60)
    assert "ssns" not in codes(result)
    assert codes(result) == ["ssns-late-responder"]
    assert only(result, "ssns-late-responder").since == day(29)


# -- partial remission at week 4 and the confirmation period (weeks 4-6) ------------------------------


def test_pr_at_week_4_and_cr_at_week_5_is_a_late_responder_not_steroid_resistant():
    result = presenting_child().upcr(28, 100).albumin(28, 32).upcr(35, 12).evaluate(as_of_day=60)
    assert codes(result) == ["ssns-late-responder"]
    late = only(result, "ssns-late-responder")
    assert late.since == day(35)
    assert "partial remission at week 4" in late.reason
    assert "confirmation period (weeks 4-6)" in late.reason


def test_cr_on_day_42_is_still_a_late_response_and_day_43_is_too_late():
    on_42 = presenting_child().upcr(28, 100).albumin(28, 32).upcr(42, 12).evaluate(60)
    on_43 = presenting_child().upcr(28, 100).albumin(28, 32).upcr(40, 90).upcr(43, 12).evaluate(60)
    assert codes(on_42) == ["ssns-late-responder"]
    assert codes(on_43) == ["srns-initial"]


def test_pr_at_week_4_evaluated_inside_weeks_4_to_6_is_pending_confirmation():
    result = presenting_child().upcr(28, 100).albumin(28, 32).upcr(33, 90).evaluate(as_of_day=35)
    assert codes(result) == ["srns-pending-confirmation"]
    pending = only(result, "srns-pending-confirmation")
    assert pending.since == day(28)
    assert f"runs until {day(42)}" in pending.reason


def test_pending_confirmation_is_its_own_pending_category_decided_on_the_last_day_of_week_6():
    chart = presenting_child().upcr(28, 100).albumin(28, 32).upcr(33, 90).upcr(42, 90).albumin(42, 33)
    on_41 = chart.evaluate(as_of_day=41)
    assert codes(on_41) == ["srns-pending-confirmation"]  # not also response-pending
    pending = only(on_41, "srns-pending-confirmation")
    assert pending.revisit_on == on_41.revisit_on == day(42)
    assert pending.as_json()["revisit_on"] == day(42).isoformat()
    on_42 = chart.evaluate(as_of_day=42)
    assert codes(on_42) == ["srns-initial"] and on_42.revisit_on is None


def test_pending_confirmation_is_replaced_by_the_outcome_once_known():
    chart = presenting_child().upcr(28, 100).albumin(28, 32).upcr(40, 10)
    assert codes(chart.evaluate(as_of_day=35)) == ["srns-pending-confirmation"]
    assert codes(chart.evaluate(as_of_day=60)) == ["ssns-late-responder"]


def test_pr_at_week_4_and_no_cr_by_week_6_is_initial_steroid_resistance():
    result = presenting_child().upcr(28, 100).albumin(28, 32).upcr(42, 90).albumin(42, 33).evaluate(as_of_day=60)
    assert codes(result) == ["srns-initial"]
    srns = only(result, "srns-initial")
    assert srns.since == day(42)
    assert "no complete remission by the end of the confirmation period" in srns.reason


def test_cr_after_week_6_does_not_rescue_a_partial_responder():
    result = presenting_child().upcr(28, 100).albumin(28, 32).upcr(40, 90).upcr(44, 10).evaluate(as_of_day=60)
    assert codes(result) == ["srns-initial"]


def test_pr_at_week_4_without_any_value_in_weeks_4_to_6_is_insufficient_data():
    result = presenting_child().upcr(28, 100).albumin(28, 32).upcr(50, 10).evaluate(as_of_day=60)
    assert codes(result) == ["insufficient-data"]
    assert "no proteinuria value during the confirmation period" in result.classifications[0].reason


def test_nephrotic_at_week_4_is_initial_steroid_resistance():
    result = steroid_resistant_child().evaluate(as_of_day=60)
    assert codes(result) == ["srns-initial"]
    srns = only(result, "srns-initial")
    assert srns.since == day(28)
    assert "no remission" in srns.reason and "UPCR 400 mg/mmol" in srns.reason


def test_below_nephrotic_range_at_week_4_with_low_albumin_is_not_a_partial_remission():
    result = presenting_child().upcr(28, 100).albumin(28, 25).evaluate(as_of_day=60)
    assert codes(result) == ["srns-initial"]
    assert "albumin 25 g/L" in result.classifications[0].reason


# -- adequacy of the trial ----------------------------------------------------------------------------


def test_an_under_dosed_trial_is_insufficient_data_and_an_inadequate_steroid_trial_not_srns():
    # 10 kg, 90 cm: BSA 0.5 m2, standard 30 mg/day; 23 mg/day is 77 %
    result = (
        Chart(weight=10, height=90)
        .upcr(0, 600)
        .albumin(0, 18)
        .prednisolone(0, 41, mg=23)
        .upcr(28, 400)
        .evaluate(as_of_day=60)
    )
    assert codes(result) == ["insufficient-data"]
    assert "under-dosed" in result.classifications[0].reason
    assert finding_codes(result) == ["inadequate-steroid-trial"]
    finding = result.findings[0]
    assert finding.category == "DOSELINDSA"
    assert finding.since == day(28)
    assert "77%" in finding.reason and "below the 80%" in finding.reason


def test_a_trial_at_exactly_80_percent_of_standard_is_adequate():
    # 10 kg, 90 cm: BSA 0.5 m2, standard 30 mg/day; 24 mg/day is 80 %
    result = (
        Chart(weight=10, height=90)
        .upcr(0, 600)
        .albumin(0, 18)
        .prednisolone(0, 41, mg=24)
        .upcr(28, 400)
        .evaluate(as_of_day=60)
    )
    assert codes(result) == ["srns-initial"]
    assert "inadequate-steroid-trial" not in finding_codes(result)
    assert "80% of the standard 30" in result.classifications[0].reason


def test_an_under_dosed_trial_judged_per_kg_is_flagged_doselindw():
    # weight only: standard 2 mg/kg x 20 kg = 40 mg/day; 30 mg/day is 75 %
    result = (
        Chart(weight=20, height=None)
        .upcr(0, 600)
        .albumin(0, 18)
        .prednisolone(0, 41, mg=30)
        .upcr(28, 400)
        .evaluate(as_of_day=60)
    )
    assert codes(result) == ["insufficient-data"]
    assert [(f.code, f.category) for f in result.findings] == [("inadequate-steroid-trial", "DOSELINDW")]


def test_an_under_dosed_trial_that_still_brings_cr_by_week_4_is_steroid_sensitive():
    result = Chart(weight=10, height=90).upcr(0, 600).prednisolone(0, 41, mg=15).upcr(20, 10).evaluate(as_of_day=60)
    assert codes(result) == ["ssns"]
    assert finding_codes(result) == []


# -- data that cannot decide ---------------------------------------------------------------------------


def test_no_proteinuria_between_day_21_and_day_35_is_insufficient_data_saying_so():
    result = presenting_child().upcr(14, 400).upcr(40, 400).evaluate(as_of_day=60)
    assert codes(result) == ["insufficient-data"]
    reason = result.classifications[0].reason
    assert "no proteinuria value between day 21 and day 35" in reason
    assert f"{day(21)} to {day(35)}" in reason


def test_a_trial_still_running_at_the_evaluation_date_is_response_pending_not_insufficient_data():
    result = presenting_child().upcr(14, 400).evaluate(as_of_day=20)
    assert codes(result) == ["response-pending"]
    pending = only(result, "response-pending")
    assert pending.since == day(0)
    assert pending.revisit_on == result.revisit_on == day(28)
    assert pending.reason.startswith("steroid response pending: prednisolone course started 2023-01-02")
    assert f"week 4 response is decided on {day(28)} (day 28)" in pending.reason
    assert "from the proteinuria of days 21-35" in pending.reason
    assert pending.as_json()["revisit_on"] == "2023-01-30"


def test_the_week_4_response_is_pending_on_day_27_and_decided_on_day_28():
    chart = presenting_child().upcr(14, 400).upcr(28, 400).albumin(28, 20)
    on_27 = chart.evaluate(as_of_day=27)
    assert codes(on_27) == ["response-pending"] and on_27.revisit_on == day(28)
    on_28 = chart.evaluate(as_of_day=28)
    assert codes(on_28) == ["srns-initial"] and on_28.revisit_on is None


def test_no_value_yet_in_days_21_to_35_is_pending_until_day_35_then_insufficient_data():
    chart = presenting_child().upcr(14, 400)
    on_34 = chart.evaluate(as_of_day=34)
    assert codes(on_34) == ["response-pending"]
    pending = only(on_34, "response-pending")
    assert pending.revisit_on == on_34.revisit_on == day(35)
    assert f"no proteinuria value yet between day 21 and day 35 ({day(21)} to {day(35)})" in pending.reason
    assert f"waits for one until {day(35)}" in pending.reason
    on_35 = chart.evaluate(as_of_day=35)
    assert codes(on_35) == ["insufficient-data"]
    assert "no proteinuria value between day 21 and day 35" in on_35.classifications[0].reason


def test_a_value_from_day_29_decides_the_week_4_response_before_day_35():
    result = presenting_child().upcr(14, 400).upcr(30, 400).albumin(30, 20).evaluate(as_of_day=31)
    assert codes(result) == ["srns-initial"]


def test_nephrotic_syndrome_without_a_daily_prednisolone_course_is_insufficient_data():
    result = Chart().upcr(0, 600).upcr(30, 500).evaluate(60)
    assert codes(result) == ["insufficient-data"]
    assert "no daily prednis(ol)one course" in result.classifications[0].reason


def test_below_nephrotic_range_at_week_4_without_albumin_is_insufficient_data():
    result = Chart().upcr(0, 600).prednisolone(0, 41, mg=48).upcr(28, 100).evaluate(60)
    assert codes(result) == ["insufficient-data"]
    assert "no albumin within 7 days" in result.classifications[0].reason


def test_no_birth_date_and_no_rule_set_named_is_insufficient_data():
    result = presenting_child(born_years_before=None).upcr(14, 10).evaluate(as_of_day=60)
    assert codes(result) == ["insufficient-data"]
    assert "no birth date" in result.classifications[0].reason
    assert result.classifications[0].evidence


def test_no_birth_date_is_classified_when_the_caller_names_the_rule_set():
    result = presenting_child(born_years_before=None).upcr(14, 10).evaluate(as_of_day=60, ruleset="ipna-2022-child")
    assert codes(result) == ["ssns"]
    assert result.ruleset_choice == "named by the caller"


def test_no_nephrotic_range_proteinuria_at_all_is_insufficient_data():
    result = Chart().upcr(0, 150).prednisolone(0, 41, mg=48).evaluate(as_of_day=60)
    assert codes(result) == ["insufficient-data"]
    assert "no nephrotic-range proteinuria" in result.classifications[0].reason


def test_data_after_the_evaluation_date_are_ignored():
    chart = presenting_child().upcr(14, 400).upcr(20, 10)
    early = chart.evaluate(as_of_day=15)
    assert codes(early) == ["response-pending"]
    assert f"decided on {day(28)}" in early.classifications[0].reason
    assert codes(chart.evaluate(as_of_day=25)) == ["ssns"]


def test_a_relapse_whose_third_day_is_after_the_evaluation_date_is_not_yet_a_relapse():
    chart = steroid_sensitive_child().nephrotic_days(60, 3)
    assert codes(chart.evaluate(as_of_day=61)) == ["ssns"]
    assert codes(chart.evaluate(as_of_day=62)) == ["ssns", "infrequent-relapse"]


# -- dipstick remission needs consecutive days ---------------------------------------------------------


def test_trace_dipstick_on_3_consecutive_days_is_cr_from_the_first_of_them():
    result = (
        Chart()
        .dipstick(0, "3+")
        .albumin(0, 18)
        .prednisolone(0, 41, mg=48)
        .dipstick(10, "trace")
        .dipstick(11, "negative")
        .dipstick(12, "trace")
        .evaluate(as_of_day=60)
    )
    assert codes(result) == ["ssns"]
    ssns = only(result, "ssns")
    assert ssns.since == day(10)
    assert "3 consecutive days" in ssns.reason


def test_trace_dipstick_on_2_consecutive_days_is_not_cr():
    result = (
        Chart()
        .dipstick(0, "3+")
        .albumin(0, 18)
        .prednisolone(0, 41, mg=48)
        .dipstick(10, "trace")
        .dipstick(11, "trace")
        .dipstick(12, "2+")
        .dipstick(20, "negative")
        .dipstick(21, "negative")
        .dipstick(22, "negative")
        .evaluate(as_of_day=60)
    )
    assert codes(result) == ["ssns"]
    assert only(result, "ssns").since == day(20)


def test_trace_dipstick_on_3_days_with_a_gap_is_not_cr():
    tl = Chart().dipstick(0, "3+").dipstick(10, "trace").dipstick(11, "trace").dipstick(13, "trace").timeline(60)
    assert tl.episodes[0].remission is None


def test_a_1_plus_dipstick_is_not_remission_range():
    tl = Chart().dipstick(0, "3+").dipstick(10, "1+").dipstick(11, "1+").dipstick(12, "1+").timeline(60)
    assert tl.episodes[0].remission is None


# -- UPCR thresholds, in the unit they were reported in ------------------------------------------------


@pytest.mark.parametrize(
    ("mg_mmol", "level"),
    [
        (200, Level.NEPHROTIC),
        (199, Level.INTERMEDIATE),
        (21, Level.INTERMEDIATE),
        (20, Level.REMISSION),
    ],
)
def test_upcr_in_mg_per_mmol_thresholds_are_nephrotic_at_200_or_more_and_remission_at_20_or_less(mg_mmol, level):
    tl = Chart().upcr(0, mg_mmol).timeline(1)
    assert tl.readings[0].level is level


@pytest.mark.parametrize(
    ("mg_mg", "level"),
    [
        (2.0, Level.NEPHROTIC),
        (1.99, Level.INTERMEDIATE),
        (0.21, Level.INTERMEDIATE),
        (0.2, Level.REMISSION),
    ],
)
def test_upcr_in_mg_per_mg_thresholds_are_nephrotic_at_2_or_more_and_remission_at_0_2_or_less(mg_mg, level):
    tl = Chart().upcr_mg_mg(0, mg_mg).timeline(1)
    assert tl.readings[0].level is level


def test_upcr_of_exactly_200_mg_per_mmol_starts_an_episode_and_199_does_not():
    assert Chart().upcr(0, 200).timeline(10).episodes[0].start == day(0)
    assert Chart().upcr(0, 199).timeline(10).episodes == []


def test_upcr_of_exactly_20_mg_per_mmol_is_cr_and_21_is_not():
    assert only(presenting_child().upcr(14, 20).upcr(21, 10).evaluate(60), "ssns").since == day(14)
    assert only(presenting_child().upcr(14, 21).upcr(21, 10).evaluate(60), "ssns").since == day(21)


def test_the_113_12_conversion_is_not_applied_when_a_threshold_exists_in_the_reported_unit():
    # 1.9 mg/mg x 113.12 = 215 mg/mmol would be nephrotic; 0.2 mg/mg x 113.12 = 22.6 mg/mmol would not be CR.
    tl = Chart().upcr_mg_mg(0, 1.9).upcr_mg_mg(5, 0.2).timeline(10)
    nephrotic_like, remission = tl.readings
    assert nephrotic_like.level is Level.INTERMEDIATE
    assert remission.level is Level.REMISSION
    assert "<= 0.2 mg/mg" in remission.text and "converted" not in remission.text


def test_cr_in_mg_per_mg_is_named_with_its_own_threshold_in_the_reason():
    result = Chart().upcr_mg_mg(0, 5).albumin(0, 18).prednisolone(0, 41, mg=48).upcr_mg_mg(14, 0.2).evaluate(60)
    assert codes(result) == ["ssns"]
    assert "<= 0.2 mg/mg" in only(result, "ssns").reason


def test_a_value_is_converted_with_113_12_only_when_the_rule_set_has_no_threshold_in_its_unit():
    # kdigo-2021-adult prints CR only in mg/mmol (< 30): 0.2 mg/mg = 22.6 mg/mmol
    tl = Chart(born_years_before=40, weight=70, height=175).upcr_mg_mg(0, 0.2).timeline(10, "kdigo-2021-adult")
    assert tl.readings[0].level is Level.REMISSION
    assert "converted from mg/mg" in tl.readings[0].text and "22.6 mg/mmol" in tl.readings[0].text


# -- 24-h protein is judged per m2 --------------------------------------------------------------------


def test_24h_protein_per_m2_is_nephrotic_at_1000_mg_per_m2_per_day():
    # 10 kg, 90 cm: BSA 0.5 m2; 600 mg/day = 1200 mg/m2/day, 450 mg/day = 900 mg/m2/day
    assert Chart(weight=10, height=90).protein_24h(0, 600).timeline(1).readings[0].level is Level.NEPHROTIC
    assert Chart(weight=10, height=90).protein_24h(0, 450).timeline(1).readings[0].level is Level.INTERMEDIATE


def test_24h_protein_per_m2_is_remission_below_100_mg_per_m2_per_day():
    assert Chart(weight=10, height=90).protein_24h(0, 45).timeline(1).readings[0].level is Level.REMISSION
    assert Chart(weight=10, height=90).protein_24h(0, 50).timeline(1).readings[0].level is Level.INTERMEDIATE


def test_24h_protein_without_height_is_not_assessable():
    reading = Chart(weight=20, height=None).protein_24h(0, 5000).timeline(1).readings[0]
    assert reading.level is Level.UNKNOWN
    assert "no height and weight" in reading.text


def test_24h_protein_with_a_height_older_than_180_days_is_not_assessable():
    reading = Chart(weight=20, height=115).protein_24h(200, 5000).timeline(201).readings[0]
    assert reading.level is Level.UNKNOWN


# -- every answer explains itself ----------------------------------------------------------------------

SCENARIOS = {
    "ssns": lambda: steroid_sensitive_child().evaluate(60),
    "late responder": lambda: presenting_child().upcr(28, 100).albumin(28, 32).upcr(35, 12).evaluate(60),
    "pending": lambda: presenting_child().upcr(28, 100).albumin(28, 32).evaluate(35),
    "response pending": lambda: presenting_child().upcr(14, 400).evaluate(20),
    "srns-initial": lambda: steroid_resistant_child().evaluate(60),
    "under-dosed": lambda: (
        Chart(weight=10, height=90).upcr(0, 600).prednisolone(0, 41, mg=20).upcr(28, 400).evaluate(60)
    ),
    "no birth date": lambda: presenting_child(born_years_before=None).evaluate(60),
    "no value in window": lambda: presenting_child().evaluate(60),
    "frns": lambda: (
        steroid_sensitive_child().nephrotic_days(60, 3).upcr(70, 10).nephrotic_days(120, 3).upcr(130, 10).evaluate(200)
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_classification_has_a_reason_and_evidence_and_names_the_rule_set(scenario):
    result = SCENARIOS[scenario]()
    assert result.classifications
    assert result.ruleset.id == "ipna-2022-child"
    chosen = scenario != "no birth date"  # without an age at onset no rule set is applied: "ruleset": null
    assert result.as_json()["ruleset"] == ("ipna-2022-child|1.0.0" if chosen else None)
    for c in result.classifications:
        assert c.reason.strip(), c
        assert c.evidence, c
        assert all("/" in ref for ref in c.evidence), c
