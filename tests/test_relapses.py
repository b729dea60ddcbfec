"""Relapses after complete remission, frequent relapses, steroid dependence and late resistance (RULES.md §2-3).

The child presents on day 0, takes prednisolone 48 mg/day (60 mg/m2) from day 0 to day 41 and is in
complete remission on day 10 (first remission). A relapse is nephrotic-range UPCR (250 mg/mmol).
"""

from tests.chart import Chart, codes, day, steroid_sensitive_child

FIRST_REMISSION = 10


def with_relapses(chart: Chart, *starts: int) -> Chart:
    """Untreated relapses (3 consecutive nephrotic days) on each start day, each back in CR 10 days later."""
    for start in starts:
        chart.nephrotic_days(start, 3).upcr(start + 10, 10)
    return chart


def first(result, code):
    found = result.first(code)
    assert found is not None, f"no {code} in {codes(result)}"
    return found


# -- what a relapse is ----------------------------------------------------------------------------------


def test_3_consecutive_days_of_nephrotic_proteinuria_after_cr_is_a_relapse():
    chart = with_relapses(steroid_sensitive_child(), 60)
    relapse = chart.timeline(100).episodes[1].relapse
    assert relapse is not None and relapse.on == day(60) and not relapse.treated
    assert "3 consecutive day(s)" in relapse.text
    result = chart.evaluate(100)
    assert codes(result) == ["ssns", "infrequent-relapse"]
    assert first(result, "infrequent-relapse").since == day(60)


def test_dipstick_3_plus_on_3_consecutive_days_after_cr_is_a_relapse():
    chart = steroid_sensitive_child().dipstick(60, "3+").dipstick(61, "4+").dipstick(62, "3+")
    assert codes(chart.evaluate(100)) == ["ssns", "infrequent-relapse"]


def test_dipstick_2_plus_on_3_consecutive_days_is_not_a_relapse():
    chart = steroid_sensitive_child().dipstick(60, "2+").dipstick(61, "2+").dipstick(62, "2+")
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_2_consecutive_days_of_nephrotic_proteinuria_is_not_a_relapse():
    chart = steroid_sensitive_child().nephrotic_days(60, 2).upcr(62, 10)
    assert len(chart.timeline(100).episodes) == 1
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_3_nephrotic_days_that_are_not_consecutive_are_not_a_relapse():
    chart = steroid_sensitive_child().upcr(60, 250).upcr(61, 250).upcr(63, 250)
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_a_value_below_nephrotic_range_breaks_the_run_of_days():
    chart = steroid_sensitive_child().upcr(60, 250).upcr(61, 150).upcr(62, 250).upcr(63, 250)
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_one_nephrotic_value_followed_within_7_days_by_full_dose_prednisolone_is_a_treated_relapse():
    chart = steroid_sensitive_child().upcr(60, 250).prednisolone(67, 95, mg=48).upcr(75, 10)
    relapse = chart.timeline(100).episodes[1].relapse
    assert relapse is not None and relapse.treated and relapse.on == day(60)
    assert relapse.text.startswith("treated relapse")
    result = chart.evaluate(100)
    assert codes(result) == ["ssns", "infrequent-relapse"]
    assert "(treated)" in first(result, "infrequent-relapse").reason


def test_full_dose_prednisolone_8_days_after_one_nephrotic_value_is_too_late_for_a_treated_relapse():
    chart = steroid_sensitive_child().upcr(60, 250).prednisolone(68, 95, mg=48).upcr(75, 10)
    assert len(chart.timeline(100).episodes) == 1
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_a_low_dose_of_prednisolone_after_one_nephrotic_value_is_not_a_treated_relapse():
    # 20 mg/day is 42 % of the standard 48 mg/day
    chart = steroid_sensitive_child().upcr(60, 250).prednisolone(62, 95, mg=20).upcr(75, 10)
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_alternate_day_prednisolone_after_one_nephrotic_value_is_not_a_treated_relapse():
    chart = steroid_sensitive_child().upcr(60, 250).prednisolone(62, 95, mg=24, alternate_day=True).upcr(75, 10)
    assert codes(chart.evaluate(100)) == ["ssns"]


def test_two_nephrotic_days_with_full_dose_prednisolone_within_7_days_of_the_second_is_a_treated_relapse():
    chart = steroid_sensitive_child().nephrotic_days(60, 2).prednisolone(68, 95, mg=48).upcr(75, 10)
    result = chart.evaluate(100)
    assert "infrequent-relapse" in codes(result)


# -- frequently relapsing ------------------------------------------------------------------------------


def test_2_relapses_in_the_6_months_after_first_remission_is_frequently_relapsing():
    result = with_relapses(steroid_sensitive_child(), 60, 150).evaluate(200)
    assert codes(result) == ["ssns", "frns"]
    frns = first(result, "frns")
    assert frns.since == day(150)
    assert f"2 relapses within 6 months of the first remission on {day(FIRST_REMISSION)} (FRNS needs 2)" in frns.reason


def test_the_6_months_after_first_remission_end_on_day_183_after_it():
    inside = with_relapses(steroid_sensitive_child(), 60, FIRST_REMISSION + 183).evaluate(250)
    outside = with_relapses(steroid_sensitive_child(), 60, FIRST_REMISSION + 184).evaluate(250)
    assert "frns" in codes(inside)
    assert codes(outside) == ["ssns", "infrequent-relapse"]


def test_a_single_relapse_is_infrequent():
    result = with_relapses(steroid_sensitive_child(), 100).evaluate(300)
    infrequent = first(result, "infrequent-relapse")
    assert infrequent.since == day(100)
    assert "1 relapse(s)" in infrequent.reason


# 3 relapses within 12 months, only the first inside the 6 months after the first remission (day 10-193).
THREE_IN_A_YEAR = (150, 250, 400)


def test_3_relapses_in_12_months_is_frequently_relapsing_under_ipna():
    result = with_relapses(steroid_sensitive_child(), *THREE_IN_A_YEAR).evaluate(450, "ipna-2022-child")
    assert codes(result) == ["ssns", "frns"]
    frns = first(result, "frns")
    assert frns.since == day(400)
    assert "3 relapses within 12 months (FRNS needs 3)" in frns.reason


def test_3_relapses_in_12_months_is_infrequent_under_kdigo_2021_which_needs_4():
    result = with_relapses(steroid_sensitive_child(), *THREE_IN_A_YEAR).evaluate(450, "kdigo-2021-child")
    assert result.ruleset.id == "kdigo-2021-child"
    assert codes(result) == ["ssns", "infrequent-relapse"]
    reason = first(result, "infrequent-relapse").reason
    assert "1 within 6 months of the first remission (FRNS needs 2)" in reason
    assert "at most 3 in any 12 months (FRNS needs 4)" in reason


def test_4_relapses_in_12_months_is_frequently_relapsing_under_kdigo_2021():
    result = with_relapses(steroid_sensitive_child(), 150, 250, 350, 450).evaluate(500, "kdigo-2021-child")
    assert "frns" in codes(result)
    assert first(result, "frns").since == day(450)


def test_3_relapses_spread_over_more_than_12_months_is_not_frequently_relapsing():
    result = with_relapses(steroid_sensitive_child(), 150, 350, 550).evaluate(600)
    assert codes(result) == ["ssns", "infrequent-relapse"]


# -- steroid dependence -----------------------------------------------------------------------------


def relapses_after_stopping(days_after_stop: int) -> Chart:
    """Two relapses, each `days_after_stop` days after the last prednisolone dose, each treated and remitting.

    Prednisolone stops on day 41; relapse 1 starts 41 + gap, is treated for 28 days from its third day;
    relapse 2 starts `days_after_stop` after that course ends.
    """
    chart = steroid_sensitive_child()
    stop = 41
    for _ in range(2):
        relapse = stop + days_after_stop
        chart.nephrotic_days(relapse, 3).prednisolone(relapse + 3, relapse + 30, mg=48).upcr(relapse + 10, 10)
        stop = relapse + 30
    return chart


def test_2_consecutive_relapses_15_days_after_stopping_prednisolone_is_steroid_dependent_under_ipna():
    result = relapses_after_stopping(15).evaluate(200)
    sdns = first(result, "sdns")
    assert sdns.since == day(41 + 15 + 30 + 15)
    assert "15 days after stopping" in sdns.reason
    assert "ssns" in codes(result)


def test_relapses_16_days_after_stopping_prednisolone_are_not_steroid_dependence_under_ipna():
    result = relapses_after_stopping(16).evaluate(200)
    assert "sdns" not in codes(result)
    assert "frns" in codes(result)


def test_relapses_14_days_after_stopping_are_steroid_dependence_under_kdigo_2012():
    result = relapses_after_stopping(14).evaluate(200, "kdigo-2012-child")
    assert "sdns" in codes(result)
    assert "within 14 days of stopping" in first(result, "sdns").reason


def test_relapses_15_days_after_stopping_are_not_steroid_dependence_under_kdigo_2012():
    result = relapses_after_stopping(15).evaluate(200, "kdigo-2012-child")
    assert "sdns" not in codes(result)


def test_2_consecutive_relapses_while_on_alternate_day_prednisolone_is_steroid_dependent():
    chart = steroid_sensitive_child().prednisolone(42, 180, mg=12, alternate_day=True)
    chart.nephrotic_days(60, 3).upcr(70, 10).nephrotic_days(100, 3).upcr(110, 10)
    result = chart.evaluate(200)
    sdns = first(result, "sdns")
    assert sdns.since == day(100)
    assert "while taking prednisolone" in sdns.reason


def test_relapses_on_steroid_that_are_not_consecutive_are_not_steroid_dependence():
    # on steroid at day 60, off steroid (day 41 + 59) at day 100, on steroid again at day 150
    chart = steroid_sensitive_child().prednisolone(42, 70, mg=12, alternate_day=True)
    chart.prednisolone(120, 180, mg=12, alternate_day=True)
    with_relapses(chart, 60, 100, 150)
    result = chart.evaluate(200)
    assert "sdns" not in codes(result)


# -- late (secondary) steroid resistance ---------------------------------------------------------------


def relapse_treated_from_day_63(*readings: tuple[int, float]) -> Chart:
    """A relapse on days 60-62 treated with prednisolone 48 mg/day from day 63 to day 104."""
    chart = steroid_sensitive_child().nephrotic_days(60, 3).prednisolone(63, 104, mg=48)
    for on, value in readings:
        chart.upcr(on, value)
    return chart


def test_a_relapse_not_in_cr_after_4_weeks_of_full_dose_prednisolone_is_secondary_resistance():
    result = relapse_treated_from_day_63((91, 250)).evaluate(120)
    srns = first(result, "srns-secondary")
    assert srns.since == day(63 + 28)
    assert "earlier steroid-sensitive" in srns.reason and f"relapse on {day(60)}" in srns.reason


def test_a_relapse_in_partial_remission_at_week_4_is_secondary_resistance_without_a_confirmation_period():
    result = relapse_treated_from_day_63((91, 100)).albumin(91, 33).evaluate(120)
    assert "srns-secondary" in codes(result)


def test_a_relapse_in_cr_within_4_weeks_of_prednisolone_is_not_secondary_resistance():
    result = relapse_treated_from_day_63((80, 10)).evaluate(120)
    assert "srns-secondary" not in codes(result)
    assert codes(result) == ["ssns", "infrequent-relapse"]


def test_a_relapse_treated_for_less_than_4_weeks_at_the_evaluation_date_is_response_pending():
    chart = relapse_treated_from_day_63((91, 250))
    on_90 = chart.evaluate(63 + 27)
    assert codes(on_90) == ["ssns", "infrequent-relapse", "response-pending"]
    pending = first(on_90, "response-pending")
    assert (pending.since, pending.revisit_on, on_90.revisit_on) == (day(63), day(91), day(91))
    assert f"steroid response to the relapse of {day(60)} pending (secondary resistance)" in pending.reason
    assert codes(chart.evaluate(63 + 28)) == ["ssns", "infrequent-relapse", "srns-secondary"]


def test_secondary_resistance_keeps_the_earlier_steroid_sensitive_history():
    result = relapse_treated_from_day_63((91, 250)).evaluate(120)
    assert codes(result) == ["ssns", "infrequent-relapse", "srns-secondary"]
    assert [c.since for c in result.classifications] == [day(10), day(60), day(91)]


def test_frequent_relapses_are_added_to_steroid_sensitivity_never_replacing_it():
    result = with_relapses(steroid_sensitive_child(), 60, 150).evaluate(200)
    assert first(result, "ssns").since == day(FIRST_REMISSION)
    assert first(result, "frns").since == day(150)


def test_the_history_of_a_child_who_becomes_sensitive_then_frequent_then_dependent():
    result = relapses_after_stopping(10).evaluate(200)
    assert codes(result) == ["ssns", "frns", "sdns"]
    assert result.classifications[0].since < result.classifications[1].since <= result.classifications[2].since
