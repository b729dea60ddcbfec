"""Complications and drug toxicity (RULES.md §7): blood pressure, acute kidney injury, hyperglycaemia on
steroids or tacrolimus; under ipna-2022-child unless said otherwise (every child rule set has the same values)."""

import re
from pathlib import Path

import pytest

from fhir_ns.errors import ConfigError
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import builtin_mappings_dir
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


# -- children 1-12 years: AAP 2017 Tables 4 and 5, the 95th percentile for age, sex and height -------------

AAP = RULESETS["ipna-2022-child"].hypertension.child_percentiles

# As printed in AAP 2017 (Pediatrics 2017;140(3):e20171904): (age, height-percentile column) -> the column's
# height in cm, the 95th-percentile systolic and diastolic BP.
PRINTED_TABLE_4_BOYS = {
    (1, 5): (77.2, 102, 54),
    (2, 50): (92.1, 106, 59),
    (3, 95): (105.8, 109, 64),
    (4, 10): (100.2, 107, 64),
    (5, 25): (109.1, 109, 68),
    (7, 50): (125.1, 112, 73),
    (9, 75): (140.7, 116, 76),
    (10, 90): (150.1, 120, 78),
    (11, 95): (158.6, 124, 78),
    (12, 95): (165.5, 128, 79),
}
PRINTED_TABLE_5_GIRLS = {
    (1, 5): (75.4, 101, 59),
    (2, 95): (97.4, 109, 66),
    (3, 50): (97.6, 108, 66),
    (4, 25): (101.4, 109, 68),
    (6, 50): (118.4, 111, 72),
    (7, 10): (117.8, 110, 72),
    (8, 75): (134.7, 115, 75),
    (10, 90): (150.2, 119, 76),
    (11, 25): (142.8, 117, 77),
    (12, 95): (166.4, 126, 79),
}


@pytest.mark.parametrize(
    ("sex", "printed"), [("male", PRINTED_TABLE_4_BOYS), ("female", PRINTED_TABLE_5_GIRLS)], ids=["table-4", "table-5"]
)
def test_the_vendored_table_reproduces_the_printed_values(sex, printed):
    for (age, percentile), (height_cm, systolic, diastolic) in printed.items():
        column = AAP.column(sex, age, height_cm)  # a child exactly as tall as the column is placed in it
        assert (column.percentile, column.height_cm) == (percentile, height_cm), (sex, age)
        assert (column.p95.systolic, column.p95.diastolic) == (systolic, diastolic), (sex, age, percentile)
    assert AAP.cited_as[sex] == {"male": "AAP 2017 Table 4", "female": "AAP 2017 Table 5"}[sex]


def test_stage_2_is_the_printed_95th_plus_12_row():
    spec = RULESETS["ipna-2022-child"].hypertension
    # printed "95th + 12 mmHg": boys 4 y at the 95th height column 122/80, girls 1 y at the 5th 113/71
    assert str(spec.child_plus(AAP.column("male", 4, 113.2).p95)) == "122/80 mm[Hg]"
    assert str(spec.child_plus(AAP.column("female", 1, 75.4).p95)) == "113/71 mm[Hg]"


def test_the_table_covers_both_sexes_every_age_from_1_to_12_and_rises_with_height():
    for sex in ("male", "female"):
        assert sorted(AAP.ages[sex]) == list(range(1, 13))
        for row in AAP.ages[sex].values():
            assert row.height_cm == sorted(set(row.height_cm)) and row.systolic_95th == sorted(row.systolic_95th)


def boy_of_7(height: float | None = 125) -> Chart:
    """A boy of 7 and a half: at 125 cm the 50th height column (125.1 cm), 95th percentile 112/73."""
    return Chart(born_years_before=7.5, sex="male", weight=24, height=height)


def girl_of_10(height: float | None = 150) -> Chart:
    """A girl of 10 and a half: at 150 cm the 90th height column (150.2 cm), 95th percentile 119/76."""
    return Chart(born_years_before=10.5, sex="female", weight=38, height=height)


def three_days(chart: Chart, systolic: float, diastolic: float) -> Chart:
    return with_bp(chart, (0, systolic, diastolic), (30, systolic, diastolic), (60, systolic, diastolic))


def two_days(chart: Chart, systolic: float, diastolic: float) -> Chart:
    return with_bp(chart, (0, systolic, diastolic), (20, systolic, diastolic))


def test_a_boy_at_the_95th_percentile_on_three_days_is_stage_1_low_with_the_numbers_said():
    finding = one(three_days(boy_of_7(), 112, 60).evaluate(90), "hypertension")
    assert (finding.severity, finding.since) == ("low", day(60))
    assert finding.reason.startswith("stage 1 hypertension: 112/60 mm[Hg] on 2023-01-02;")
    assert (
        "at or above 112/73 mm[Hg], the 95th percentile for a 7-year-old boy of 125 cm measured 2023-01-01: "
        "50th height percentile column, 125.1 cm, AAP 2017 Table 4" in finding.reason
    )
    assert "on 3 days within 90 days" in finding.reason
    # evidence: the six readings and the height the column rests on (the chart's second record, after the weight)
    assert "Observation/obs2" in finding.evidence and len(finding.evidence) == 7


def test_a_boy_just_below_the_95th_percentile_is_not_judged_hypertensive():
    assert findings(three_days(boy_of_7(), 111, 72).evaluate(90), "hypertension") == []


def test_a_girl_s_diastolic_at_her_95th_percentile_alone_is_stage_1():
    finding = one(three_days(girl_of_10(), 100, 76).evaluate(90), "hypertension")
    assert finding.severity == "low"
    assert "119/76 mm[Hg], the 95th percentile for a 10-year-old girl of 150 cm" in finding.reason
    assert "90th height percentile column, 150.2 cm, AAP 2017 Table 5" in finding.reason
    assert findings(three_days(girl_of_10(), 118, 75).evaluate(90), "hypertension") == []


def test_a_boy_at_the_95th_percentile_plus_12_on_two_days_is_stage_2_moderate():
    finding = one(two_days(boy_of_7(), 124, 60).evaluate(60), "hypertension")
    assert (finding.severity, finding.since) == ("moderate", day(20))
    assert "at or above 124/85 mm[Hg], the 95th percentile + 12 mm[Hg] for a 7-year-old boy" in finding.reason
    assert findings(two_days(boy_of_7(), 123, 84).evaluate(60), "hypertension") == []


def test_a_girl_at_her_95th_percentile_plus_12_diastolic_is_stage_2_and_one_below_is_stage_1():
    assert one(two_days(girl_of_10(), 100, 88).evaluate(60), "hypertension").severity == "moderate"
    assert one(three_days(girl_of_10(), 100, 87).evaluate(90), "hypertension").severity == "low"


def test_the_same_pressure_is_high_for_a_short_boy_and_normal_for_a_tall_one():
    # 7 years: 5th height column (116.1 cm) 110/71, 95th (134.5 cm) 116/74
    short = one(three_days(boy_of_7(height=116), 113, 60).evaluate(90), "hypertension")
    assert "5th height percentile column, 116.1 cm" in short.reason
    assert findings(three_days(boy_of_7(height=134), 113, 60).evaluate(90), "hypertension") == []


def test_a_height_between_two_columns_takes_the_nearer_and_halfway_the_shorter():
    # 7 years: 25th column 121.4 cm (111/72), 50th 125.1 cm (112/73); 123.2 is nearer 121.4, 123.3 nearer 125.1
    nearer_25th = one(three_days(boy_of_7(height=123.2), 111, 60).evaluate(90), "hypertension")
    assert "25th height percentile column, 121.4 cm" in nearer_25th.reason
    assert findings(three_days(boy_of_7(height=123.3), 111, 60).evaluate(90), "hypertension") == []
    # exactly halfway (123.25 cm): the shorter column, whose limit is the lower
    assert one(three_days(boy_of_7(height=123.25), 111, 60).evaluate(90), "hypertension").severity == "low"


def _site_with_table(tmp_path: Path, change) -> Path:
    """A site mapping directory whose bp/aap-2017.yaml is the shipped table after `change` (text -> text)."""
    shipped = (builtin_mappings_dir() / "bp" / "aap-2017.yaml").read_text(encoding="utf-8")
    (tmp_path / "bp").mkdir()
    (tmp_path / "bp" / "aap-2017.yaml").write_text(change(shipped), encoding="utf-8")
    return tmp_path


def test_a_table_whose_heights_do_not_rise_is_refused_at_load(tmp_path):
    site = _site_with_table(tmp_path, lambda text: text.replace("[77.2, 78.3,", "[78.3, 77.2,", 1))
    with pytest.raises(ConfigError, match="aap-2017.yaml is invalid(.|\\n)*male 1 y height_cm"):
        load_rulesets((site,))


def test_a_table_without_the_12_year_olds_is_refused_by_the_rule_sets_that_judge_them(tmp_path):
    def drop_12(text: str) -> str:
        return re.sub(r"\n    12:\n(      .*\n){3}", "\n", text)

    site = _site_with_table(tmp_path, drop_12)
    with pytest.raises(ConfigError, match="lacks the ages \\[12\\]"):
        load_rulesets((site,))


def test_a_rule_set_naming_an_unknown_table_is_refused(tmp_path):
    text = (builtin_mappings_dir() / "rulesets" / "ipna-2022-child.yaml").read_text(encoding="utf-8")
    (tmp_path / "rulesets").mkdir()
    (tmp_path / "rulesets" / "ipna-2022-child.yaml").write_text(
        text.replace("child_percentiles: aap-2017", "child_percentiles: who-2007"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="no blood-pressure table 'who-2007'"):
        load_rulesets((tmp_path,))


def test_no_height_takes_the_50th_height_column_and_says_so():
    # at 116 cm this boy's limit would be 110/71; with no height, the 50th column's 112/73
    finding = one(three_days(boy_of_7(height=None), 112, 60).evaluate(90), "hypertension")
    assert (
        "for a 7-year-old boy with no height within 90 days of the reading: 50th height percentile column, 125.1 cm"
        in finding.reason
    )
    assert findings(three_days(boy_of_7(height=None), 111, 60).evaluate(90), "hypertension") == []


def test_the_height_nearest_the_reading_is_used_up_to_90_days_away():
    def chart(first_reading: int) -> Chart:
        boy = boy_of_7(height=None).measure("height", 0, 116, "cm")  # 5th column: 110/71
        return with_bp(boy, *((first_reading + n, 111, 60) for n in (0, 15, 30)))

    within = one(chart(60).evaluate(120), "hypertension")  # the last reading 90 days after the height
    assert "of 116 cm measured 2023-01-02" in within.reason
    # the third reading 91 days after: the 50th column (112/73), which 111/60 does not reach
    assert findings(chart(61).evaluate(120), "hypertension") == []


def test_a_height_measured_after_the_reading_counts_too():
    boy = boy_of_7(height=None).measure("height", 75, 116, "cm")
    assert one(three_days(boy, 111, 60).evaluate(90), "hypertension").severity == "low"


def test_unknown_sex_takes_the_lower_of_the_boys_and_girls_values_and_says_so():
    # 1 year, 80 cm: boys' 25th column (80.2 cm) 103/55, girls' 50th column (80.8 cm) 103/60
    def toddler(sex: str | None) -> Chart:
        return three_days(Chart(born_years_before=1.5, sex=sex, weight=11, height=80), 100, 56)

    finding = one(toddler(None).evaluate(90), "hypertension")
    assert "at or above 103/55 mm[Hg], the 95th percentile for a 1-year-old child of unknown sex" in finding.reason
    assert "the lower of the boys' and the girls' values" in finding.reason
    assert "AAP 2017 Table 4: 95th percentile 103/55 mm[Hg]" in finding.reason
    assert "AAP 2017 Table 5: 95th percentile 103/60 mm[Hg]" in finding.reason
    assert one(toddler("male").evaluate(90), "hypertension").severity == "low"
    assert findings(toddler("female").evaluate(90), "hypertension") == []


def test_stage_2_is_capped_at_140_over_90_where_lower_than_the_95th_plus_12():
    # a boy of 12 at the 95th height column (165.5 cm): 95th 128/79, + 12 = 140/91, so diastolic 90 suffices
    boy = Chart(born_years_before=12.3, sex="male", weight=55, height=165.5)
    finding = one(two_days(boy, 120, 90).evaluate(60), "hypertension")
    assert finding.severity == "moderate"
    assert (
        "at or above 140/90 mm[Hg], the lower of 140/90 mm[Hg] and the 95th percentile + 12 mm[Hg] (140/91 mm[Hg])"
        in (finding.reason)
    )
    boy = Chart(born_years_before=12.3, sex="male", weight=55, height=165.5)
    assert one(three_days(boy, 120, 89).evaluate(90), "hypertension").severity == "low"


def test_a_child_at_180_is_urgent_and_high_whatever_the_table():
    finding = one(with_bp(boy_of_7(), (3, 181, 70)).evaluate(60), "hypertension")
    assert (finding.severity, finding.since) == ("high", day(3)) and "urgent" in finding.reason


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
    assert rs.hypertension.child_percentiles.id == "aap-2017" and rs.hypertension.child_stage2_above_95th == 12


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


def test_blood_pressure_limits_switch_from_the_percentile_table_to_stage_limits_at_13():
    # 125/70: above a 12-year-old girl's 95th percentile at 155 cm (50th column, 154.8 cm: 122/78), below 130/80
    readings = ((0, 125, 70), (30, 125, 70), (60, 125, 70))
    twelve = with_bp(Chart(born_years_before=12.5, height=155), *readings).evaluate(90)
    assert "the 95th percentile for a 12-year-old girl" in one(twelve, "hypertension").reason
    thirteen = with_bp(Chart(born_years_before=13.01, height=155), *readings).evaluate(90)
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
