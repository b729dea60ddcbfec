"""What the timeline works out once and keeps (thresholds per rule set, body size per day, a reading's
sentence made when asked) gives the answers it gave when everything was worked out afresh.

Unless said otherwise the child is 6 years old, 20 kg and 115 cm, under ipna-2022-child.
"""

from datetime import date, timedelta

import pytest

from fhir_ns.timeline.formulas import age_years, completed_years
from fhir_ns.timeline.timeline import Level
from tests.chart import Chart, day


@pytest.mark.parametrize("order", [("ipna-2022-child", "kdigo-2021-adult"), ("kdigo-2021-adult", "ipna-2022-child")])
def test_each_rule_set_judges_a_reading_by_its_own_thresholds_whichever_is_used_first(order):
    # 250 mg/mmol: nephrotic for children (>= 200), in between for adults (>= 300)
    chart = Chart(born_years_before=40).upcr(0, 250)
    levels = {ruleset: chart.timeline(1, ruleset).readings[0].level for ruleset in order}
    assert levels == {"ipna-2022-child": Level.NEPHROTIC, "kdigo-2021-adult": Level.INTERMEDIATE}


def test_a_converted_upcr_names_its_own_converted_value_not_the_previous_readings():
    # kdigo-2021-adult has its CR threshold only in mg/mmol: 0.1 mg/mg = 11.3, 0.2 mg/mg = 22.6 mg/mmol
    chart = Chart(born_years_before=40, weight=70, height=175).upcr_mg_mg(0, 0.1).upcr_mg_mg(1, 0.2)
    first, second = chart.timeline(2, "kdigo-2021-adult").readings
    assert first.text == "UPCR 0.1 mg/mg (remission range: < 30 mg/mmol, comparing 11.3 mg/mmol converted from mg/mg)"
    assert second.text == "UPCR 0.2 mg/mg (remission range: < 30 mg/mmol, comparing 22.6 mg/mmol converted from mg/mg)"


def test_every_level_of_a_reading_is_told_in_the_same_sentence():
    chart = Chart(height=None).upcr(0, 250).upcr(1, 100).upcr(2, 20).dipstick(3, "trace").protein_24h(4, 5000)
    texts = [r.text for r in chart.timeline(5).readings]
    assert texts == [
        "UPCR 250 mg/mmol (nephrotic range: >= 200 mg/mmol)",
        "UPCR 100 mg/mmol (below nephrotic range, above remission)",
        "UPCR 20 mg/mmol (remission range: <= 20 mg/mmol)",
        "dipstick trace (remission range: dipstick <= trace)",
        "24-h protein 5000 mg/day (not assessable: no height and weight within 180 days before 2023-01-06 "
        "to express it per body size)",
    ]


def test_body_size_is_the_latest_weight_of_each_day_asked_whichever_day_is_asked_first():
    # weight 20 kg from day -1, 30 kg from day 30; height 115 cm throughout
    chart = Chart().weight(30, 30).upcr(0, 600)
    tl = chart.timeline(60)
    later, earlier = tl.body_size(day(40)), tl.body_size(day(10))
    assert (earlier.weight_kg, later.weight_kg) == (20, 30)
    assert tl.body_size(day(10)) == earlier
    assert tl.standard_steroid_dose(day(10)) != tl.standard_steroid_dose(day(40))


def test_readings_between_include_both_days_and_leave_out_readings_that_cannot_be_judged():
    chart = Chart(height=None).upcr(0, 600).protein_24h(1, 5000).upcr(2, 100).upcr(3, 10).upcr(4, 300)
    tl = chart.timeline(10)
    assert [r.on for r in tl.readings_between(day(1), day(3))] == [day(2), day(3)]
    assert tl.readings_between(day(5), day(9)) == []
    assert [r.on for r in tl.readings_between(day(0), day(0))] == [day(0)]


def test_a_remission_is_looked_for_strictly_after_the_day_given():
    tl = Chart().upcr(0, 600).upcr(5, 10).upcr(9, 12).timeline(10)
    remission = tl.complete_remission_after(day(5))
    assert remission is not None and remission.on == day(9)
    assert tl.complete_remission_after(day(4)).on == day(5)


@pytest.mark.parametrize("birth", [date(2006, 2, 28), date(2008, 2, 29), date(2005, 3, 1), date(2006, 12, 31)])
def test_the_child_formula_is_chosen_by_birthdays_passed_exactly_when_the_age_is_under_18(birth):
    for offset in range(-3, 370):
        on = date(birth.year + 18, 1, 1) + timedelta(days=offset)
        assert (completed_years(birth, on) < 18) == (age_years(birth, on) < 18), on
