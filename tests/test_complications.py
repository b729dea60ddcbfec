"""Complications and drug toxicity (RULES.md §7): blood pressure, acute kidney injury, hyperglycaemia on
steroids or tacrolimus; under ipna-2022-child unless said otherwise (every child rule set has the same values)."""

import pytest

from fhir_ns.timeline.model import ProcedureFact
from tests.chart import RULESETS, Chart, day, findings, one, steroid_sensitive_child


def teenager() -> Chart:
    """A 15-year-old (adult blood-pressure limits from 13 years)."""
    return Chart(born_years_before=15, weight=55, height=165)


def with_bp(chart: Chart, *readings: tuple[int, float | None, float | None]) -> Chart:
    for on, systolic, diastolic in readings:
        chart.bp(on, systolic, diastolic)
    return chart


# -- hypertension, 13 years and over: stage 1 = 130-139/80-89 on 3 days in 90, stage 2 = 140/90 on 2 in 30 ------


def test_stage_1_on_three_days_90_days_apart_is_low_hypertension_dated_the_third_day():
    result = with_bp(teenager(), (0, 130, 70), (45, 131, 72), (90, 132, 70)).evaluate(120)
    finding = one(result, "hypertension")
    assert (finding.severity, finding.category, finding.since) == ("low", "COND", day(90))
    assert "stage 1 hypertension" in finding.reason and "on 3 days within 90 days" in finding.reason
    assert len(finding.evidence) == 6


def test_stage_1_on_three_days_91_days_apart_is_not_persistent():
    result = with_bp(teenager(), (0, 130, 70), (45, 131, 72), (91, 132, 70)).evaluate(120)
    assert findings(result, "hypertension") == []


def test_129_over_79_is_below_stage_1():
    result = with_bp(teenager(), (0, 129, 79), (10, 129, 79), (20, 129, 79)).evaluate(60)
    assert findings(result, "hypertension") == []


def test_a_diastolic_of_80_alone_reaches_stage_1():
    result = with_bp(teenager(), (0, 110, 80), (10, 110, 80), (20, 110, 80)).evaluate(60)
    assert one(result, "hypertension").severity == "low"


def test_stage_2_on_two_days_30_days_apart_is_moderate():
    result = with_bp(teenager(), (0, 140, 70), (30, 120, 90)).evaluate(60)
    finding = one(result, "hypertension")
    assert (finding.severity, finding.since) == ("moderate", day(30))
    assert "stage 2 hypertension" in finding.reason


def test_stage_2_on_two_days_31_days_apart_is_not_persistent():
    result = with_bp(teenager(), (0, 140, 70), (31, 140, 70)).evaluate(60)
    assert findings(result, "hypertension") == []


def test_139_over_89_twice_is_not_stage_2():
    result = with_bp(teenager(), (0, 139, 89), (10, 139, 89)).evaluate(60)
    assert findings(result, "hypertension") == []


def test_stage_2_days_also_count_towards_stage_1():
    result = with_bp(teenager(), (0, 150, 70), (40, 131, 70), (80, 150, 70)).evaluate(120)
    assert one(result, "hypertension").severity == "low"


def test_one_reading_of_180_is_urgent_and_high():
    result = with_bp(teenager(), (5, 180, 100)).evaluate(30)
    finding = one(result, "hypertension")
    assert (finding.severity, finding.since) == ("high", day(5))
    assert "urgent" in finding.reason


def test_one_diastolic_reading_of_120_is_urgent_but_179_over_119_is_not():
    assert one(with_bp(teenager(), (5, 150, 120)).evaluate(30), "hypertension").severity == "high"
    assert findings(with_bp(teenager(), (5, 179, 119)).evaluate(30), "hypertension") == []


def test_readings_of_one_day_are_averaged():
    chart = with_bp(teenager(), (0, 128, 70), (0, 134, 70), (10, 128, 70), (10, 134, 70), (20, 128, 70), (20, 134, 70))
    assert one(chart.evaluate(60), "hypertension").severity == "low"
    chart = with_bp(teenager(), (0, 120, 70), (0, 134, 70), (10, 120, 70), (10, 134, 70), (20, 120, 70), (20, 134, 70))
    assert findings(chart.evaluate(60), "hypertension") == []


def test_hypertension_implicates_the_calcineurin_inhibitor_current_at_the_time():
    chart = with_bp(teenager(), (0, 140, 70), (20, 142, 70)).drug("cyclosporine", 10, None, 200)
    finding = one(chart.evaluate(60), "hypertension")
    assert len(finding.implicated) == 1 and finding.implicated[0].startswith("MedicationStatement/")
    assert "while on cyclosporine" in finding.reason
    unrelated = with_bp(teenager(), (0, 140, 70), (20, 142, 70)).drug("cyclosporine", 30, None, 200)
    assert one(unrelated.evaluate(60), "hypertension").implicated == ()


# -- children 1-12 years: the AAP 2017 screening table (Table 6) --------------------------------------------


def test_the_screening_table_reproduces_the_printed_values():
    spec = RULESETS["ipna-2022-child"].hypertension
    printed = {1: ((98, 52), (98, 54)), 6: ((105, 66), (105, 67)), 12: ((113, 75), (114, 75))}
    for age, (boys, girls) in printed.items():
        assert (spec.screening_limit(age, "male")[0].systolic, spec.screening_limit(age, "male")[0].diastolic) == boys
        assert (
            spec.screening_limit(age, "female")[0].systolic,
            spec.screening_limit(age, "female")[0].diastolic,
        ) == girls
    assert [r.age_years for r in spec.child_screening] == list(range(1, 13))


def test_a_six_year_old_girl_at_105_over_60_on_three_days_needs_evaluation_low():
    chart = with_bp(Chart(born_years_before=6.5), (0, 105, 60), (30, 106, 60), (60, 105, 60))
    finding = one(chart.evaluate(90), "hypertension")
    assert finding.severity == "low"
    assert finding.reason.startswith("BP above the screening threshold: needs evaluation")
    assert "105/67 mm[Hg] for girls, age 6" in finding.reason and "Table 6" in finding.reason


def test_a_six_year_old_girl_at_104_over_66_is_below_the_screening_value():
    chart = with_bp(Chart(born_years_before=6.5), (0, 104, 66), (30, 104, 66), (60, 104, 66))
    assert findings(chart.evaluate(90), "hypertension") == []


def test_the_screening_value_depends_on_sex():
    boy = with_bp(Chart(born_years_before=6.5, sex="male"), (0, 100, 66), (30, 100, 66), (60, 100, 66))
    girl = with_bp(Chart(born_years_before=6.5, sex="female"), (0, 100, 66), (30, 100, 66), (60, 100, 66))
    assert one(boy.evaluate(90), "hypertension").severity == "low"
    assert findings(girl.evaluate(90), "hypertension") == []


def test_a_child_at_140_over_90_on_two_days_is_moderate_and_at_180_high():
    chart = with_bp(Chart(born_years_before=8), (0, 140, 70), (14, 141, 70))
    finding = one(chart.evaluate(60), "hypertension")
    assert finding.severity == "moderate" and "needs evaluation" in finding.reason
    assert one(with_bp(Chart(born_years_before=8), (3, 181, 70)).evaluate(60), "hypertension").severity == "high"


def test_an_infant_is_not_judged():
    chart = with_bp(Chart(born_years_before=0.5, weight=7, height=65), (0, 190, 125), (5, 190, 125))
    assert findings(chart.evaluate(30), "hypertension") == []


def test_no_birth_date_no_blood_pressure_judgement():
    chart = with_bp(Chart(born_years_before=None), (0, 190, 125))
    assert findings(chart.evaluate(30, "ipna-2022-child"), "hypertension") == []


@pytest.mark.parametrize("ruleset", sorted(RULESETS))
def test_every_rule_set_carries_the_complication_parameters(ruleset):
    rs = RULESETS[ruleset]
    assert rs.hypertension is not None and rs.acute_kidney_injury is not None and rs.hyperglycaemia is not None
    assert (rs.hypertension.stage1.systolic, rs.hypertension.stage2.diastolic, rs.hypertension.urgent.systolic) == (
        130,
        90,
        180,
    )


# -- acute kidney injury (KDIGO 2012; baseline RV1 = lowest in 0-7 days, else RV2 = median 8-365 days) ------


def creatinine(chart: Chart, *values: tuple[int, float]) -> Chart:
    for on, umol_l in values:
        chart.creatinine(on, umol_l)
    return chart


def adult() -> Chart:
    return Chart(born_years_before=40, weight=70, height=175)


def test_creatinine_1_5_times_the_lowest_of_the_previous_7_days_is_stage_1_aki():
    result = creatinine(adult(), (0, 40), (3, 50), (7, 60)).evaluate(30, "kdigo-2021-adult")
    finding = one(result, "acute-kidney-injury")
    assert (finding.severity, finding.category, finding.since) == ("moderate", "LAB", day(7))
    assert "KDIGO stage 1" in finding.reason and "RV1" in finding.reason


def test_dialysis_begun_within_7_days_of_an_episodes_last_value_makes_it_stage_3():
    def with_dialysis(started: int):
        chart = creatinine(adult(), (0, 40), (3, 50), (7, 60))
        chart.facts.procedures.append(ProcedureFact("dialysis", day(started), None, "Procedure/hd1"))
        return one(chart.evaluate(30, "kdigo-2021-adult"), "acute-kidney-injury")

    staged = with_dialysis(14)
    assert "KDIGO stage 3" in staged.reason and staged.severity == "high"
    assert f"dialysis started on {day(14)} (Procedure/hd1)" in staged.reason and "Procedure/hd1" in staged.evidence
    assert "KDIGO stage 1" in with_dialysis(15).reason  # 8 days after the episode's last value


def test_1_47_times_the_baseline_without_a_fast_rise_is_not_aki():
    result = creatinine(adult(), (0, 40), (7, 59)).evaluate(30, "kdigo-2021-adult")
    assert findings(result, "acute-kidney-injury") == []


def test_a_baseline_8_days_before_is_not_rv1():
    # 40 on day 0 is 8 days before: RV2 (median of 8-365 days) takes over and still finds the rise
    result = creatinine(adult(), (0, 40), (8, 60)).evaluate(30, "kdigo-2021-adult")
    assert "RV2" in one(result, "acute-kidney-injury").reason


def test_rv2_is_used_only_when_there_is_no_value_in_the_previous_7_days():
    result = creatinine(adult(), (0, 40), (50, 40), (70, 50), (100, 80)).evaluate(120, "kdigo-2021-adult")
    finding = one(result, "acute-kidney-injury")
    assert finding.severity == "high" and "KDIGO stage 2" in finding.reason
    assert "RV2, the median of 3 value(s) 8-365 days before: 40 umol/L" in finding.reason
    rv1 = creatinine(adult(), (0, 40), (50, 40), (95, 55), (100, 80)).evaluate(120, "kdigo-2021-adult")
    assert findings(rv1, "acute-kidney-injury") == []  # RV1 = 55 on day 95: 1.45 x, not RV2 (2.0 x)


def test_a_rise_of_26_5_within_2_days_is_stage_1_but_not_over_3_days():
    fast = creatinine(adult(), (0, 100), (2, 126.5)).evaluate(30, "kdigo-2021-adult")
    finding = one(fast, "acute-kidney-injury")
    assert "26.5 umol/L above 100 umol/L" in finding.reason and finding.severity == "moderate"
    slow = creatinine(adult(), (0, 100), (3, 126.5)).evaluate(30, "kdigo-2021-adult")
    assert findings(slow, "acute-kidney-injury") == []
    small = creatinine(adult(), (0, 100), (2, 126.4)).evaluate(30, "kdigo-2021-adult")
    assert findings(small, "acute-kidney-injury") == []


@pytest.mark.parametrize(("value", "stage"), [(79, 1), (80, 2), (119, 2), (120, 3)])
def test_stage_by_ratio_to_baseline(value, stage):
    result = creatinine(adult(), (0, 40), (5, value)).evaluate(30, "kdigo-2021-adult")
    finding = one(result, "acute-kidney-injury")
    assert f"KDIGO stage {stage}" in finding.reason
    assert finding.severity == ("moderate" if stage == 1 else "high")


def test_creatinine_of_353_6_after_an_acute_rise_is_stage_3():
    result = creatinine(adult(), (0, 300), (1, 353.6)).evaluate(30, "kdigo-2021-adult")
    finding = one(result, "acute-kidney-injury")
    assert "KDIGO stage 3" in finding.reason and "353.6" in finding.reason
    below = creatinine(adult(), (0, 300), (1, 353.5)).evaluate(30, "kdigo-2021-adult")
    assert "KDIGO stage 1" in one(below, "acute-kidney-injury").reason


def test_a_child_whose_egfr_falls_below_35_with_aki_is_stage_3():
    # 115 cm: bedside Schwartz 36.5 x 115 / 125 = 33.6; 2.08 x the baseline 60 would be stage 2
    result = creatinine(Chart(born_years_before=6), (0, 60), (2, 125)).evaluate(30)
    finding = one(result, "acute-kidney-injury")
    assert "KDIGO stage 3" in finding.reason and "bedside Schwartz" in finding.reason
    above = creatinine(Chart(born_years_before=6), (0, 55), (2, 115)).evaluate(30)  # eGFR 36.5
    assert "KDIGO stage 2" in one(above, "acute-kidney-injury").reason


def test_a_slow_rise_over_weeks_is_not_acute_kidney_injury():
    values = [(n * 5, 40 * 1.1**n) for n in range(10)]  # +10 % every 5 days: 40 -> 94 over 45 days
    assert findings(creatinine(adult(), *values).evaluate(60, "kdigo-2021-adult"), "acute-kidney-injury") == []


def test_one_finding_per_episode_with_its_peak():
    result = creatinine(adult(), (0, 40), (2, 62), (4, 125), (30, 45), (60, 44), (62, 70)).evaluate(
        90, "kdigo-2021-adult"
    )
    found = findings(result, "acute-kidney-injury")
    assert [f.since for f in found] == [day(2), day(62)]
    assert found[0].severity == "high" and "at its peak creatinine 125" in found[0].reason
    assert found[1].severity == "moderate"


def test_aki_implicates_the_calcineurin_inhibitor_current_at_the_time():
    chart = creatinine(adult(), (10, 80), (12, 130)).drug("tacrolimus", 0, None, 8)
    finding = one(chart.evaluate(30, "kdigo-2021-adult"), "acute-kidney-injury")
    assert len(finding.implicated) == 1 and "while on tacrolimus" in finding.reason


# -- drug-induced hyperglycaemia ---------------------------------------------------------------------------


def on_prednisolone() -> Chart:
    return steroid_sensitive_child()  # prednisolone days 0-41


@pytest.mark.parametrize(
    ("value", "unit", "fasting", "found"),
    [
        (7.0, "mmol/L", True, True),
        (6.9, "mmol/L", True, False),
        (126, "mg/dL", True, True),
        (125, "mg/dL", True, False),
        (11.1, "mmol/L", False, True),
        (11.0, "mmol/L", False, False),
        (200, "mg/dL", False, True),
        (199, "mg/dL", False, False),
    ],
)
def test_glucose_thresholds_on_a_glucocorticoid(value, unit, fasting, found):
    result = on_prednisolone().glucose(20, value, unit, fasting).evaluate(60)
    got = findings(result, "drug-induced-hyperglycaemia")
    assert bool(got) is found
    if found:
        assert (got[0].severity, got[0].category, got[0].since) == ("moderate", "LAB", day(20))
        assert "while on prednisolone" in got[0].reason and got[0].implicated


@pytest.mark.parametrize(
    ("value", "unit", "found"), [(48, "mmol/mol", True), (47, "mmol/mol", False), (6.5, "%", True), (6.4, "%", False)]
)
def test_hba1c_thresholds_on_a_glucocorticoid(value, unit, found):
    result = on_prednisolone().hba1c(30, value, unit).evaluate(60)
    assert bool(findings(result, "drug-induced-hyperglycaemia")) is found


def test_high_glucose_off_treatment_is_not_drug_induced():
    result = on_prednisolone().glucose(50, 15).evaluate(60)  # prednisolone ended on day 41
    assert findings(result, "drug-induced-hyperglycaemia") == []


def test_tacrolimus_counts_and_cyclosporine_does_not():
    tac = Chart(born_years_before=10).drug("tacrolimus", 0, None, 4).glucose(10, 12).evaluate(30)
    assert "while on tacrolimus" in one(tac, "drug-induced-hyperglycaemia").reason
    csa = Chart(born_years_before=10).drug("cyclosporine", 0, None, 100).glucose(10, 12).evaluate(30)
    assert findings(csa, "drug-induced-hyperglycaemia") == []


def test_one_hyperglycaemia_finding_dated_the_first_value_counting_the_others():
    result = on_prednisolone().glucose(10, 12).hba1c(30, 50).evaluate(60)
    finding = one(result, "drug-induced-hyperglycaemia")
    assert finding.since == day(10) and "2 such values" in finding.reason


def test_a_glucose_of_7_2_counts_only_when_stated_fasting():
    assert findings(on_prednisolone().glucose(20, 7.2, fasting=True).evaluate(60), "drug-induced-hyperglycaemia")
    assert not findings(on_prednisolone().glucose(20, 7.2).evaluate(60), "drug-induced-hyperglycaemia")


# -- age and window boundaries ---------------------------------------------------------------------------


def test_blood_pressure_limits_switch_from_the_screening_table_to_stage_limits_at_13():
    # 125/70: above the 12-year-old girl's screening value 114/75, below the adult stage 1 (130/80)
    readings = ((0, 125, 70), (30, 125, 70), (60, 125, 70))
    twelve = with_bp(Chart(born_years_before=12.5), *readings).evaluate(90)
    assert "screening" in one(twelve, "hypertension").reason
    thirteen = with_bp(Chart(born_years_before=13.01), *readings).evaluate(90)
    assert findings(thirteen, "hypertension") == []


def test_blood_pressure_is_judged_from_the_first_birthday():
    one_year = with_bp(Chart(born_years_before=1.01, weight=10, height=75), (0, 181, 60)).evaluate(30)
    assert one(one_year, "hypertension").severity == "high"
    infant = with_bp(Chart(born_years_before=0.99, weight=10, height=75), (0, 181, 60)).evaluate(30)
    assert findings(infant, "hypertension") == []


def test_rv2_takes_values_up_to_365_days_before():
    inside = creatinine(adult(), (0, 40), (365, 60)).evaluate(400, "kdigo-2021-adult")
    assert "RV2" in one(inside, "acute-kidney-injury").reason
    outside = creatinine(adult(), (0, 40), (366, 60)).evaluate(400, "kdigo-2021-adult")
    assert findings(outside, "acute-kidney-injury") == []
