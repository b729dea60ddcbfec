"""Safety and monitoring findings (RULES.md §4), under ipna-2022-child unless said otherwise.

The child is 6 years old, 20 kg and 115 cm (BSA 0.80 m2). In the CNI stories the child is
steroid-resistant from day 28 and cyclosporine 160 mg/m2/day starts on day 45.
"""

from fhir_ns.rules import evaluate
from tests.chart import (
    RULESETS,
    TERMINOLOGY,
    Chart,
    codes,
    day,
    finding_codes,
    findings,
    one,
    steroid_resistant_child,
    steroid_sensitive_child,
)

CNI_START = 45


def on_cyclosporine(mg_per_m2: float = 160, end: int | None = None, chart: Chart | None = None) -> Chart:
    chart = chart or steroid_resistant_child()
    return chart.drug("cyclosporine", CNI_START, end, mg_per_m2, basis="mg/m2")


# -- CNI nephrotoxicity: creatinine > 30 % above the pre-CNI baseline on two values >= 14 days apart -----


def creatinine_on_cyclosporine(*values: tuple[int, float]) -> Chart:
    """Baseline creatinine 40 umol/L on day 40 (limit 52), then the given values on cyclosporine."""
    chart = on_cyclosporine().creatinine(40, 40)
    for on, umol_l in values:
        chart.creatinine(on, umol_l)
    return chart


def test_creatinine_30_percent_above_baseline_on_two_values_14_days_apart_is_cni_nephrotoxicity():
    result = creatinine_on_cyclosporine((100, 53), (114, 54)).evaluate(150)
    finding = one(result, "cni-nephrotoxicity")
    assert finding.since == day(114)
    assert (finding.severity, finding.category) == ("high", "LAB")
    assert "14 days apart" in finding.reason and "35% above the pre-CNI baseline 40" in finding.reason
    assert finding.implicated


def test_two_high_creatinine_values_13_days_apart_are_not_cni_nephrotoxicity():
    result = creatinine_on_cyclosporine((100, 53), (113, 54)).evaluate(150)
    assert findings(result, "cni-nephrotoxicity") == []


def test_a_falling_second_creatinine_is_not_cni_nephrotoxicity():
    result = creatinine_on_cyclosporine((100, 56), (120, 54)).evaluate(150)
    assert findings(result, "cni-nephrotoxicity") == []


def test_creatinine_rises_of_30_percent_or_less_are_not_cni_nephrotoxicity():
    result = creatinine_on_cyclosporine((100, 51), (120, 52)).evaluate(150)
    assert findings(result, "cni-nephrotoxicity") == []


def test_creatinine_rise_without_a_pre_cni_baseline_is_not_judged():
    result = on_cyclosporine().creatinine(100, 80).creatinine(120, 85).evaluate(150)
    assert findings(result, "cni-nephrotoxicity") == []


# -- CNI levels ----------------------------------------------------------------------------------------


def test_a_cyclosporine_trough_above_120_is_out_of_range_under_ipna():
    result = on_cyclosporine().level("cyclosporine", 60, 100).level("cyclosporine", 90, 150).evaluate(120)
    finding = one(result, "cni-level-out-of-range")
    assert finding.since == day(90)
    assert (finding.severity, finding.category) == ("moderate", "LAB")
    assert "1 of 2 cyclosporine levels" in finding.reason and "80-120 ng/mL" in finding.reason
    assert "high" in finding.reason


def test_a_cyclosporine_trough_below_80_is_out_of_range_under_ipna():
    result = on_cyclosporine().level("cyclosporine", 60, 70).evaluate(120)
    assert "low" in one(result, "cni-level-out-of-range").reason


def test_cyclosporine_troughs_within_80_to_120_are_not_a_finding():
    result = on_cyclosporine().level("cyclosporine", 60, 80).level("cyclosporine", 90, 120).evaluate(120)
    assert findings(result, "cni-level-out-of-range") == []


def test_a_cyclosporine_level_taken_before_treatment_is_not_judged():
    result = on_cyclosporine().level("cyclosporine", 40, 150).evaluate(120)
    assert findings(result, "cni-level-out-of-range") == []


def test_a_cyclosporine_level_taken_after_treatment_stopped_is_not_judged():
    result = on_cyclosporine(end=100).level("cyclosporine", 110, 20).evaluate(150)
    assert findings(result, "cni-level-out-of-range") == []


def test_a_cyclosporine_trough_of_150_is_in_range_under_kdigo_2021_child():
    result = on_cyclosporine().level("cyclosporine", 90, 150).evaluate(120, "kdigo-2021-child")
    assert findings(result, "cni-level-out-of-range") == []


# -- CNI stopped early in a responder ---------------------------------------------------------------


def test_cyclosporine_stopped_before_12_months_in_a_responder_is_stopped_early():
    result = on_cyclosporine(end=200).upcr(120, 100).albumin(120, 32).evaluate(250)
    finding = one(result, "cni-stopped-early")
    assert finding.since == day(200)
    assert finding.category == "DOSEDURL"
    assert "after 156 days" in finding.reason and "responded" in finding.reason


def test_cyclosporine_continued_for_12_months_in_a_responder_is_not_stopped_early():
    result = on_cyclosporine(end=CNI_START + 365).upcr(120, 100).albumin(120, 32).evaluate(450)
    assert findings(result, "cni-stopped-early") == []


def test_cyclosporine_stopped_early_without_a_response_is_not_stopped_early():
    result = on_cyclosporine(end=200).upcr(120, 300).albumin(120, 20).evaluate(250)
    assert findings(result, "cni-stopped-early") == []


# -- cyclophosphamide cumulative dose (moderate > 150, high > 168 mg/kg) ------------------------------


def cyclophosphamide_for(days: int) -> Chart:
    """2 mg/kg/day (20 kg) from day 60 for `days` days in a frequently relapsing child."""
    chart = steroid_sensitive_child().nephrotic_days(40, 3).upcr(50, 10)
    return chart.drug("cyclophosphamide", 60, 60 + days - 1, 2, basis="mg/kg")


def test_cyclophosphamide_of_150_mg_per_kg_is_not_a_finding():
    assert findings(cyclophosphamide_for(75).evaluate(200), "cyclophosphamide-cumulative-dose") == []


def test_cyclophosphamide_above_150_mg_per_kg_is_a_moderate_finding():
    finding = one(cyclophosphamide_for(76).evaluate(200), "cyclophosphamide-cumulative-dose")
    assert finding.severity == "moderate"
    assert finding.category == "DOSEDURH"
    assert "152 mg/kg" in finding.reason


def test_cyclophosphamide_of_exactly_168_mg_per_kg_is_still_moderate():
    finding = one(cyclophosphamide_for(84).evaluate(200), "cyclophosphamide-cumulative-dose")
    assert finding.severity == "moderate"


def test_cyclophosphamide_above_168_mg_per_kg_is_a_high_finding():
    finding = one(cyclophosphamide_for(85).evaluate(200), "cyclophosphamide-cumulative-dose")
    assert finding.severity == "high"
    assert "170 mg/kg" in finding.reason and "exceeds 168 mg/kg" in finding.reason


def test_cyclophosphamide_courses_add_up():
    chart = steroid_sensitive_child().drug("cyclophosphamide", 60, 99, 2, basis="mg/kg")
    chart.drug("cyclophosphamide", 120, 159, 2, basis="mg/kg")
    finding = one(chart.evaluate(200), "cyclophosphamide-cumulative-dose")
    assert "160 mg/kg over 2 record(s)" in finding.reason
    assert finding.since == day(159)


# -- dose out of range --------------------------------------------------------------------------------


def test_cyclosporine_below_150_mg_per_m2_is_dose_out_of_range_doselindsa():
    finding = one(on_cyclosporine(100).evaluate(60), "dose-out-of-range")
    assert (finding.category, finding.severity) == ("DOSELINDSA", "low")
    assert "100 mg/m2/day" in finding.reason and "below the range 150-200" in finding.reason
    assert finding.since == day(CNI_START)


def test_cyclosporine_above_200_mg_per_m2_is_dose_out_of_range_dosehindsa():
    assert one(on_cyclosporine(250).evaluate(60), "dose-out-of-range").category == "DOSEHINDSA"


def test_cyclosporine_at_160_mg_per_m2_is_in_range():
    assert findings(on_cyclosporine(160).evaluate(60), "dose-out-of-range") == []


def test_mycophenolate_below_its_range_is_dose_out_of_range():
    result = steroid_resistant_child().drug("mycophenolate-mofetil", CNI_START, None, 600, basis="mg/m2").evaluate(60)
    finding = one(result, "dose-out-of-range")
    assert finding.category == "DOSELINDSA"
    assert "mycophenolate mofetil mean 600 mg/m2/day" in finding.reason


# -- dose findings are for courses (RULES.md §11): the mean over >= 14 days, beyond a 10 % tolerance -----


def test_the_sentence_gives_the_mean_the_days_it_covers_the_range_and_the_tolerance():
    finding = one(on_cyclosporine(120, end=CNI_START + 62).evaluate(150), "dose-out-of-range")
    assert finding.reason.startswith(
        f"cyclosporine mean 120 mg/m2/day over 63 days from {day(CNI_START)} is below the range 150-200 mg/m2/day "
        "by more than the 10% tolerance"
    )
    assert finding.since == day(CNI_START)


def test_a_low_first_record_and_a_high_second_record_of_one_course_are_judged_on_their_mean():
    # 100 mg/m2 for 30 days then 200 mg/m2 for 30 days: mean 150, in range (the first record alone is not)
    chart = on_cyclosporine(100, end=CNI_START + 29).drug("cyclosporine", CNI_START + 30, CNI_START + 59, 200, "mg/m2")
    assert findings(chart.evaluate(150), "dose-out-of-range") == []


def test_two_low_records_of_one_course_give_one_finding_and_the_gap_between_them_counts_zero():
    # 100 mg/m2 on days 45-74 and 80-109 (a 5-day gap, within the 30-day course gap): 60 days of 65 taken
    chart = on_cyclosporine(100, end=CNI_START + 29).drug("cyclosporine", CNI_START + 35, CNI_START + 64, 100, "mg/m2")
    finding = one(chart.evaluate(150), "dose-out-of-range")
    assert "mean 92 mg/m2/day over 65 days" in finding.reason
    assert len(finding.implicated) == 2


def test_two_courses_apart_by_more_than_the_gap_give_one_finding_each():
    chart = on_cyclosporine(100, end=CNI_START + 29).drug("cyclosporine", CNI_START + 90, CNI_START + 119, 100, "mg/m2")
    assert [f.since for f in findings(chart.evaluate(200), "dose-out-of-range")] == [
        day(CNI_START),
        day(CNI_START + 90),
    ]


def test_a_13_day_course_is_not_judged_and_a_14_day_course_is():
    assert findings(on_cyclosporine(100, end=CNI_START + 12).evaluate(150), "dose-out-of-range") == []
    assert len(findings(on_cyclosporine(100, end=CNI_START + 13).evaluate(150), "dose-out-of-range")) == 1


def test_a_running_course_is_judged_once_it_has_lasted_14_days_at_the_evaluation_date():
    assert findings(on_cyclosporine(100).evaluate(CNI_START + 12), "dose-out-of-range") == []
    assert len(findings(on_cyclosporine(100).evaluate(CNI_START + 13), "dose-out-of-range")) == 1


def test_cyclosporine_within_10_percent_below_the_range_is_not_flagged_and_beyond_it_is():
    # the low end 150 less 10 % is 135
    assert findings(on_cyclosporine(136).evaluate(100), "dose-out-of-range") == []
    assert one(on_cyclosporine(134).evaluate(100), "dose-out-of-range").category == "DOSELINDSA"


def test_cyclosporine_within_10_percent_above_the_range_is_not_flagged_and_beyond_it_is():
    # the high end 200 plus 10 % is 220
    assert findings(on_cyclosporine(219).evaluate(100), "dose-out-of-range") == []
    assert one(on_cyclosporine(221).evaluate(100), "dose-out-of-range").category == "DOSEHINDSA"


def test_mycophenolate_tolerance_applies_outside_the_80_to_125_percent_range_of_its_1200_target():
    def mmf(mg_per_m2: float):
        chart = steroid_resistant_child().drug("mycophenolate-mofetil", CNI_START, None, mg_per_m2, basis="mg/m2")
        return findings(chart.evaluate(100), "dose-out-of-range")

    assert mmf(870) == [] and len(mmf(860)) == 1  # 960 less 10 % is 864
    assert mmf(1640) == [] and len(mmf(1660)) == 1  # 1500 plus 10 % is 1650


def test_an_adult_dose_per_kg_is_judged_on_the_per_kg_range_with_the_tolerance():
    def adult(mg_per_kg: float):
        chart = Chart(born_years_before=40, weight=70, height=175).upcr(0, 600).albumin(0, 20)
        return findings(
            chart.drug("cyclosporine", 10, None, mg_per_kg, basis="mg/kg").evaluate(60), "dose-out-of-range"
        )

    assert adult(2.8) == []  # 3 mg/kg/day less 10 % is 2.7
    [finding] = adult(2.6)
    assert finding.category == "DOSELINDW"
    assert "cyclosporine mean 2.6 mg/kg/day over 51 days" in finding.reason and "range 3-5 mg/kg/day" in finding.reason


def test_every_rule_set_states_the_dose_tolerance_and_the_shortest_course_judged():
    for ruleset in RULESETS.values():
        assert (ruleset.dose_range_tolerance, ruleset.dose_range_min_days) == (0.10, 14), ruleset.id


def test_the_tolerance_is_the_rule_sets():
    strict = RULESETS["ipna-2022-child"].model_copy(update={"dose_range_tolerance": 0.0})
    chart = on_cyclosporine(140)
    chart.facts.sort()
    result = evaluate(chart.facts, {strict.id: strict}, TERMINOLOGY, day(100), strict.id)
    assert "by more than the 0% tolerance" in one(result, "dose-out-of-range").reason
    assert findings(chart.evaluate(100), "dose-out-of-range") == []


# -- RAAS blockade ------------------------------------------------------------------------------------


def proteinuric_for(days: int) -> Chart:
    chart = steroid_resistant_child()
    for on in range(35, days + 1, 14):
        chart.upcr(on, 300)
    return chart.upcr(days, 300)


def test_56_days_of_proteinuria_without_ace_inhibitor_or_arb_is_no_raas_blockade():
    result = proteinuric_for(60).evaluate(60)
    finding = one(result, "no-raas-blockade")
    assert finding.since == day(56)
    assert (finding.severity, finding.category) == ("moderate", "COND")
    assert "60 days" in finding.reason and "no ACE inhibitor or ARB" in finding.reason


def test_55_days_of_proteinuria_is_not_yet_no_raas_blockade():
    assert findings(proteinuric_for(55).evaluate(55), "no-raas-blockade") == []


def test_an_ace_inhibitor_covering_the_proteinuria_prevents_no_raas_blockade():
    result = proteinuric_for(60).drug("ace-inhibitor", 30, None, 5).evaluate(60)
    assert findings(result, "no-raas-blockade") == []


def test_an_arb_covering_the_proteinuria_prevents_no_raas_blockade():
    result = proteinuric_for(60).drug("angiotensin-receptor-blocker", 30, None, 25).evaluate(60)
    assert findings(result, "no-raas-blockade") == []


# -- CKD progression ----------------------------------------------------------------------------------
# bedside Schwartz at 115 cm: creatinine 40 umol/L -> eGFR 105; 90 umol/L -> 47 (G3a)


def creatinine_series(*values: tuple[int, float]) -> Chart:
    """A nephrotic child whose creatinine is measured on the given days, with the height measured the same day."""
    chart = Chart().upcr(0, 600)
    for on, umol_l in values:
        chart.measure("height", on, 115, "cm").creatinine(on, umol_l)
    return chart


def test_egfr_below_60_persisting_90_days_is_ckd_progression():
    result = creatinine_series((0, 40), (100, 90), (190, 90)).evaluate(200)
    finding = one(result, "ckd-progression")
    assert finding.since == day(190)
    assert "bedside Schwartz" in finding.reason and "G3a" in finding.reason and "below 60" in finding.reason


def test_egfr_below_60_for_89_days_is_not_ckd_progression():
    result = creatinine_series((0, 40), (100, 90), (189, 90)).evaluate(200)
    assert findings(result, "ckd-progression") == []


def test_a_transient_dip_of_egfr_is_not_ckd_progression():
    result = creatinine_series((0, 40), (100, 90), (200, 40)).evaluate(250)
    assert findings(result, "ckd-progression") == []


def test_a_recovery_between_two_dips_breaks_the_persistence_of_low_egfr():
    result = creatinine_series((0, 40), (100, 90), (140, 40), (200, 90)).evaluate(250)
    assert findings(result, "ckd-progression") == []


def test_a_fall_of_25_percent_from_baseline_persisting_90_days_is_ckd_progression():
    # 40 -> 56 umol/L: eGFR 105 -> 75, a 29 % fall while still above 60
    result = creatinine_series((0, 40), (100, 56), (200, 56)).evaluate(250)
    finding = one(result, "ckd-progression")
    assert "29% below the baseline 105" in finding.reason


def test_ckd_epi_2021_is_used_for_an_adult():
    # woman of 40, creatinine 110 umol/L (1.24 mg/dL): CKD-EPI 2021 eGFR 55
    chart = Chart(born_years_before=40, weight=70, height=170).upcr(0, 500).creatinine(0, 110).creatinine(100, 110)
    finding = one(chart.evaluate(150), "ckd-progression")
    assert "CKD-EPI 2021" in finding.reason


# -- genetics and steroid intolerance ---------------------------------------------------------------


def test_a_pathogenic_podocyte_gene_variant_is_monogenic_disease():
    result = steroid_resistant_child().genetic(50, {"podocyte-gene"}, pathogenic=True).evaluate(60)
    finding = one(result, "monogenic-disease")
    assert finding.category == "GEN" and finding.since == day(50)
    assert "NPHS2" in finding.reason and "immunosuppression" in finding.reason


def test_a_variant_not_called_pathogenic_is_not_monogenic_disease():
    result = steroid_resistant_child().genetic(50, {"podocyte-gene"}, pathogenic=False).evaluate(60)
    assert findings(result, "monogenic-disease") == []


def test_high_dose_steroid_with_an_active_peptic_ulcer_is_steroid_intolerance():
    result = steroid_sensitive_child().condition({"peptic-ulcer"}, onset=-10).evaluate(60)
    finding = one(result, "steroid-intolerance")
    assert (finding.severity, finding.since) == ("high", day(0))
    assert "peptic ulcer was active" in finding.reason and "prednisolone 48 mg/day" in finding.reason
    assert finding.implicated


def test_an_active_peptic_ulcer_at_onset_makes_the_child_steroid_intolerant():
    result = steroid_sensitive_child().condition({"peptic-ulcer"}, onset=-10).evaluate(60)
    assert codes(result) == ["steroid-intolerant", "ssns"]
    intolerant = result.first("steroid-intolerant")
    assert intolerant is not None and intolerant.since == day(0)
    assert "peptic ulcer" in intolerant.reason and "contraindicates high-dose steroid" in intolerant.reason


def test_a_peptic_ulcer_healed_before_the_steroid_is_neither_intolerance_nor_intolerant():
    result = steroid_sensitive_child().condition({"peptic-ulcer"}, onset=-100, abated=-30).evaluate(60)
    assert findings(result, "steroid-intolerance") == []
    assert "steroid-intolerant" not in codes(result)


def test_low_dose_steroid_with_an_active_peptic_ulcer_is_not_steroid_intolerance():
    # 20 mg/day is 42 % of the standard 48 mg/day (high dose starts at 50 %)
    chart = Chart().upcr(0, 600).prednisolone(0, 41, mg=20).condition({"peptic-ulcer"}, onset=-10)
    assert findings(chart.evaluate(60), "steroid-intolerance") == []


# -- every finding explains itself --------------------------------------------------------------------


def test_every_finding_has_a_reason_with_numbers_and_evidence():
    chart = creatinine_on_cyclosporine((100, 53), (114, 54)).level("cyclosporine", 90, 150)
    chart.genetic(50, {"podocyte-gene"}, pathogenic=True)
    result = chart.evaluate(150)
    assert set(finding_codes(result)) >= {"cni-nephrotoxicity", "cni-level-out-of-range", "monogenic-disease"}
    for f in result.findings:
        assert f.reason and any(ch.isdigit() for ch in f.reason), f
        assert f.evidence and all("/" in ref for ref in f.evidence), f
