"""Causes, intolerance, relapsing on a CNI, thrombosis and infection (RULES.md §3, §7, §8), under
ipna-2022-child unless said otherwise.

The child is 6 years old, 20 kg and 115 cm (BSA 0.80 m2) unless the story gives a birth date, and
presents on day 0 (2023-01-02)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from fhir_ns.rules.causes import review
from fhir_ns.rules.classify import add_months
from fhir_ns.rules.result import Finding, PatientResult
from tests.chart import RULESETS, Chart, codes, day, finding_codes, steroid_resistant_child, steroid_sensitive_child
from tests.test_fhir_input import bundle, patient, read

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def plan(result: PatientResult, template: str):
    [found] = [p for p in result.proposals if p.template == template]
    return found


def templates(result: PatientResult) -> list[str]:
    return [p.template for p in result.proposals]


def born_on(birth: date) -> Chart:
    chart = Chart(weight=4, height=55)
    chart.facts.birth_date = birth
    return chart


def presenting_infant(birth: date) -> Chart:
    """Nephrotic on day 0, prednisolone 60 mg/m2 (BSA 0.25 m2) from day 0, complete remission on day 10."""
    return born_on(birth).upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=15).upcr(10, 10)


# -- congenital (onset < 3 months) and infantile (3-12 months) nephrotic syndrome ---------------------


def test_calendar_months_keep_the_day_or_take_the_months_last_day():
    assert add_months(date(2022, 10, 2), 3) == date(2023, 1, 2)
    assert add_months(date(2022, 11, 30), 3) == date(2023, 2, 28)
    assert add_months(date(2022, 1, 2), 12) == date(2023, 1, 2)


def test_onset_one_day_before_3_months_of_age_is_congenital_with_no_steroid_response_category():
    result = presenting_infant(date(2022, 10, 3)).evaluate(60)
    assert codes(result) == ["congenital-ns"]
    assert "before 3 months" in result.classifications[0].reason
    assert any("no steroid-response category" in n for n in result.notes)


def test_onset_at_exactly_3_months_of_age_is_infantile_and_categories_are_judged_as_usual():
    result = presenting_infant(date(2022, 10, 2)).evaluate(60)
    assert codes(result) == ["infantile-ns", "ssns"]


def test_onset_one_day_before_12_months_is_infantile_and_at_exactly_12_months_it_is_neither():
    assert "infantile-ns" in codes(presenting_infant(date(2022, 1, 3)).evaluate(60))
    assert codes(presenting_infant(date(2022, 1, 2)).evaluate(60)) == ["ssns"]


def test_a_congenital_nephrotic_syndrome_condition_is_congenital_whatever_the_age():
    chart = steroid_sensitive_child().condition({"nephrotic-syndrome", "congenital-nephrotic-syndrome"}, 0)
    result = chart.evaluate(60)
    assert codes(result) == ["congenital-ns"]


def test_congenital_care_plan_is_genetic_testing_and_referral_with_no_immunosuppression():
    chart = presenting_infant(date(2022, 12, 1)).drug("cyclosporine", 20, None, 150, basis="mg/m2")
    result = chart.evaluate(60)
    assert templates(result) == ["congenital-ns", "supportive-care"]
    texts = [a.text for a in plan(result, "congenital-ns").activities]
    assert texts[0].startswith("Genetic testing") and texts[1].startswith("Refer to a specialised")


def test_infantile_care_plan_puts_genetics_first():
    result = presenting_infant(date(2022, 6, 1)).evaluate(60)
    assert templates(result)[0] == "infantile-ns"
    assert plan(result, "infantile-ns").activities[0].text.startswith("Genetic testing first")


def test_congenital_nephrotic_syndrome_rules_out_immunosuppression_in_every_plan():
    """A congenital infant with an active peptic ulcer: the steroid-intolerant plan's "calcineurin inhibitor
    first" is left out because of the congenital disease, with the reason."""
    chart = presenting_infant(date(2022, 12, 1)).condition({"peptic-ulcer"}, -5)
    result = chart.evaluate(60)
    assert codes(result) == ["congenital-ns", "steroid-intolerant"]
    intolerant = plan(result, "steroid-intolerant")
    [omitted] = intolerant.omitted
    assert omitted.text.startswith("Consider a calcineurin inhibitor") and "congenital" in omitted.reason


# -- secondary nephrotic syndrome ---------------------------------------------------------------------


def test_lupus_nephritis_makes_a_secondary_cause_suspected_and_the_categories_say_they_assume_primary():
    result = steroid_sensitive_child().condition({"lupus-nephritis"}, -30).evaluate(60)
    assert codes(result) == ["secondary-ns-suspected", "ssns"]
    secondary, ssns = result.classifications
    assert secondary.since == day(0) and "lupus nephritis" in secondary.reason
    assert "assumes primary nephrotic syndrome" in ssns.reason


def test_a_secondary_cause_turns_immunosuppression_proposals_into_treat_the_cause():
    result = steroid_resistant_child().condition({"hepatitis-b", "hepatitis", "infection"}, 5).evaluate(60)
    assert "secondary-ns-suspected" in codes(result)
    srns = plan(result, "srns-child")
    assert srns.omitted and all("secondary" in o.reason and "treat the cause" in o.reason for o in srns.omitted)
    assert [a.text for a in plan(result, "secondary-cause").activities][0].startswith("Treat the underlying cause")


def test_a_secondary_cause_resolved_before_the_nephrotic_syndrome_is_not_suspected():
    result = steroid_sensitive_child().condition({"lupus-nephritis"}, -100, abated=-10).evaluate(60)
    assert "secondary-ns-suspected" not in codes(result)


# -- CNI intolerance ------------------------------------------------------------------------------------

CNI_START = 45


def intolerant_story(stop: int, adverse: bool = False) -> Chart:
    """Steroid-resistant from day 28; cyclosporine 160 mg/m2/day from day 45 to `stop`; baseline creatinine 40
    umol/L on day 40, then 53 on day 100 and 54 on day 114 (cni-nephrotoxicity on day 114)."""
    chart = steroid_resistant_child().creatinine(40, 40).creatinine(100, 53).creatinine(114, 54)
    return chart.drug("cyclosporine", CNI_START, stop, 160, basis="mg/m2", stopped_for_adverse_effect=adverse)


def test_a_cni_stopped_with_an_adverse_effect_status_reason_is_cni_intolerant():
    result = steroid_resistant_child().drug("cyclosporine", 45, 90, 160, "mg/m2", stopped_for_adverse_effect=True)
    found = result.evaluate(120).first("cni-intolerant")
    assert found is not None and found.since == day(90) and "adverse effect" in found.reason


def test_a_cni_stopped_30_days_after_nephrotoxicity_is_cni_intolerant_and_31_days_is_not():
    at_30 = intolerant_story(114 + 30).evaluate(200)
    assert "cni-nephrotoxicity" in finding_codes(at_30)
    found = at_30.first("cni-intolerant")
    assert found is not None and found.since == day(144) and "30 days after" in found.reason
    assert intolerant_story(114 + 31).evaluate(200).first("cni-intolerant") is None


def test_a_cni_stopped_before_the_nephrotoxicity_finding_is_not_intolerance():
    assert intolerant_story(110).evaluate(200).first("cni-intolerant") is None


def test_a_cni_intolerant_child_is_offered_the_multidrug_option_under_every_child_rule_set():
    for ruleset in ("ipna-2022-child", "kdigo-2021-child", "kdigo-2012-child", "source-documents"):
        result = intolerant_story(120, adverse=True).evaluate(200, ruleset)
        assert "cni-intolerant" in codes(result), ruleset
        assert plan(result, "multidrug-option").intent == "option"


def with_finding(chart: Chart, code: str, severity: str, since: int, implicated: tuple[str, ...]) -> PatientResult:
    """The result of `review` for a chart whose findings are only the one given (hypertension and acute kidney
    injury come from other rules: the check works from whatever findings carry those codes)."""
    tl = chart.timeline(200)
    result = PatientResult("p1", "Patient/p1", RULESETS["ipna-2022-child"], day(200), "test")
    result.findings = [
        Finding(code, severity, "COND", day(since), f"{code} on day {since}", ("Observation/x",), implicated)
    ]
    review(tl, result)
    return result


@pytest.mark.parametrize(
    ("code", "severity", "intolerant"),
    [
        ("hypertension", "moderate", True),  # stage 2
        ("hypertension", "low", False),  # stage 1
        ("acute-kidney-injury", "high", True),
    ],
)
def test_hypertension_stage_2_or_acute_kidney_injury_implicating_the_cni_makes_it_intolerant(
    code, severity, intolerant
):
    chart = steroid_resistant_child().drug("cyclosporine", 45, 100, 160, basis="mg/m2")
    cni = chart.facts.exposures[-1].source
    result = with_finding(chart, code, severity, 80, (cni,))
    assert result.has("cni-intolerant") is intolerant


def test_a_toxicity_finding_that_implicates_another_drug_does_not_make_the_cni_intolerant():
    chart = steroid_resistant_child().drug("cyclosporine", 45, 100, 160, basis="mg/m2")
    assert not with_finding(chart, "acute-kidney-injury", "high", 80, ("MedicationStatement/other",)).has(
        "cni-intolerant"
    )


def test_an_adverse_effect_status_reason_is_read_from_fhir(tmp_path: Path) -> None:
    def statement(sid: str, reason: dict) -> dict:
        return {
            "resourceType": "MedicationStatement",
            "id": sid,
            "status": "stopped",
            "statusReason": [reason],
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3008"}]},
            "effectivePeriod": {"start": "2023-02-01", "end": "2023-04-01"},
        }

    coded = statement(
        "s1",
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason", "code": "sintol"}
            ]
        },
    )
    worded = statement("s2", {"text": "Stopped: gingival hyperplasia, a side effect"})
    other = statement("s3", {"text": "patient moved away"})
    patients, _ = read(tmp_path, bundle(patient(), coded, worded, other))
    flags = {e.source: e.stopped_for_adverse_effect for e in patients[0].facts.exposures}
    assert flags == {"MedicationStatement/s1": True, "MedicationStatement/s2": True, "MedicationStatement/s3": False}


# -- relapsing on a CNI ---------------------------------------------------------------------------------


def relapsing_on_cyclosporine(first: int, second: int) -> Chart:
    """Steroid-sensitive; cyclosporine from day 60 (2023-03-03; 3 months later is day 152); relapses (3
    nephrotic days, remission 10 days later) on the given days."""
    chart = steroid_sensitive_child().drug("cyclosporine", 60, None, 160, basis="mg/m2")
    for start in (first, second):
        chart.nephrotic_days(start, 3).upcr(start + 10, 10)
    return chart


def test_two_relapses_on_a_cni_3_months_after_its_start_within_12_months_are_relapsing_on_cni():
    assert add_months(day(60), 3) == day(152)
    result = relapsing_on_cyclosporine(152, 352).evaluate(400)
    found = result.first("relapsing-on-cni")
    assert found is not None and found.since == day(352)
    assert templates(result) == ["multidrug-option", "supportive-care"]


def test_a_relapse_one_day_before_3_months_on_the_cni_does_not_count():
    assert not relapsing_on_cyclosporine(151, 352).evaluate(400).has("relapsing-on-cni")


def test_relapses_on_a_cni_365_days_apart_count_and_366_do_not():
    assert relapsing_on_cyclosporine(160, 160 + 365).evaluate(600).has("relapsing-on-cni")
    assert not relapsing_on_cyclosporine(160, 160 + 366).evaluate(600).has("relapsing-on-cni")


def test_relapses_off_the_cni_are_not_relapsing_on_cni():
    chart = steroid_sensitive_child().drug("cyclosporine", 60, 140, 160, basis="mg/m2")
    for start in (200, 300):
        chart.nephrotic_days(start, 3).upcr(start + 10, 10)
    assert not chart.evaluate(400).has("relapsing-on-cni")


# -- thromboembolism ------------------------------------------------------------------------------------


def test_a_venous_thromboembolism_after_the_first_nephrotic_evidence_is_a_high_finding():
    result = steroid_sensitive_child().condition({"venous-thromboembolism"}, 20).evaluate(60)
    [finding] = [f for f in result.findings if f.code == "thromboembolism"]
    assert (finding.since, finding.severity, finding.category) == (day(20), "high", "COND")
    assert "20 days after the first nephrotic evidence" in finding.reason


def test_a_thromboembolism_on_the_day_of_the_first_nephrotic_evidence_counts_and_one_before_does_not():
    assert "thromboembolism" in finding_codes(
        steroid_sensitive_child().condition({"venous-thromboembolism"}, 0).evaluate(60)
    )
    assert "thromboembolism" not in finding_codes(
        steroid_sensitive_child().condition({"venous-thromboembolism"}, -1).evaluate(60)
    )


# -- serious infection ----------------------------------------------------------------------------------


def infected(prednisolone_mg: float, infection_day: int, end: int = 41) -> PatientResult:
    """A 20 kg child on prednisolone `prednisolone_mg` mg/day from day 0 to `end`, pneumonia from `infection_day`."""
    chart = Chart().upcr(0, 600).albumin(0, 18).prednisolone(0, end, mg=prednisolone_mg).upcr(10, 10)
    return chart.condition({"pneumonia", "infection"}, infection_day).evaluate(120)


def test_pneumonia_on_prednisolone_at_0_5_mg_per_kg_is_a_serious_infection_implicating_it():
    result = infected(10, 20)  # 10 mg / 20 kg = 0.5 mg/kg/day
    [finding] = [f for f in result.findings if f.code == "serious-infection"]
    assert (finding.since, finding.severity, finding.category) == (day(20), "high", "COND")
    assert finding.implicated and finding.implicated[0].startswith("MedicationStatement/")
    assert "0.50 mg/kg/day" in finding.reason


def test_pneumonia_on_prednisolone_just_below_0_5_mg_per_kg_is_not_a_serious_infection():
    assert "serious-infection" not in finding_codes(infected(9.8, 20))


def test_an_infection_30_days_after_stopping_counts_and_31_days_does_not():
    assert "serious-infection" in finding_codes(infected(40, 41 + 30))
    assert "serious-infection" not in finding_codes(infected(40, 41 + 31))


def test_an_infection_on_a_calcineurin_inhibitor_implicates_it():
    chart = steroid_resistant_child().drug("cyclosporine", 45, None, 160, basis="mg/m2")
    result = chart.condition({"varicella-zoster", "infection"}, 90).evaluate(120)
    [finding] = [f for f in result.findings if f.code == "serious-infection"]
    cyclosporine = chart.facts.exposures[-1].source
    assert cyclosporine in finding.implicated and "while on cyclosporine" in finding.reason


# -- true vs pseudo-refractory reach the clinician ------------------------------------------------------


def test_an_active_infection_makes_a_refractory_category_possibly_pseudo_refractory_in_its_issue_and_plan():
    result = steroid_resistant_child().condition({"infection", "sepsis"}, 20).evaluate(60)
    srns = result.first("srns-initial")
    assert srns is not None and "possible pseudo-refractory: an active infection" in srns.reason
    assert any(n.startswith("Possible pseudo-refractory") for n in plan(result, "srns-child").notes)


def test_a_refractory_patient_with_fsgs_on_histology_is_true_refractory_in_the_issue_and_plan():
    result = steroid_resistant_child().condition({"histology-fsgs"}, 30).evaluate(60)
    srns = result.first("srns-initial")
    assert srns is not None and "true refractory: FSGS on histology" in srns.reason
    assert any(n.startswith("True refractory: FSGS") for n in plan(result, "srns-child").notes)


def test_a_steroid_sensitive_patient_with_an_infection_gets_no_refractory_wording():
    result = steroid_sensitive_child().condition({"infection"}, 5).evaluate(60)
    assert all("pseudo-refractory" not in c.reason for c in result.classifications)
    assert replace(result.classifications[0]).code == "ssns"


def test_a_responder_whose_cni_was_stopped_for_an_adverse_effect_is_not_flagged_as_stopped_early():
    chart = (
        steroid_resistant_child()
        .upcr(60, 10)
        .drug("cyclosporine", 45, 90, 160, "mg/m2", stopped_for_adverse_effect=True)
    )
    result = chart.evaluate(120)
    assert result.has("cni-intolerant") and "cni-stopped-early" not in finding_codes(result)


def test_thrombosis_and_secondary_causes_are_recognised_in_snomed_ct_and_icd_10_cm(tmp_path: Path) -> None:
    def condition(cid: str, system: str, code: str) -> dict:
        return {
            "resourceType": "Condition",
            "id": cid,
            "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": system, "code": code}]},
            "onsetDateTime": "2023-03-01",
        }

    icd, sct = "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct"
    resources = [
        condition("c1", icd, "I82.3"),
        condition("c2", sct, "192759008"),
        condition("c3", icd, "B18.1"),
        condition("c4", sct, "68815009"),
        condition("c5", sct, "4740000"),
    ]
    patients, _ = read(tmp_path, bundle(patient(), *resources))
    concepts = {c.source: c.concepts for c in patients[0].facts.conditions}
    assert "venous-thromboembolism" in concepts["Condition/c1"] and "venous-thromboembolism" in concepts["Condition/c2"]
    assert "hepatitis-b" in concepts["Condition/c3"] and "lupus-nephritis" in concepts["Condition/c4"]
    assert {"varicella-zoster", "infection"} <= concepts["Condition/c5"]


def test_an_infection_over_before_a_later_refractory_category_does_not_make_that_one_pseudo_refractory():
    """Active at week 4 (srns-initial) but abated before the CNI's 6 months end (cni-resistant)."""
    chart = steroid_resistant_child().condition({"infection", "pneumonia"}, 20, abated=40)
    chart.drug("cyclosporine", 45, None, 160, basis="mg/m2")
    for n in range(60, 240, 30):
        chart.upcr(n, 400).albumin(n, 20)
    result = chart.evaluate(240)
    srns, resistant = result.first("srns-initial"), result.first("cni-resistant")
    assert srns is not None and "possible pseudo-refractory" in srns.reason
    assert resistant is not None and "pseudo-refractory" not in resistant.reason
    assert not any("pseudo-refractory" in n for n in plan(result, "cni-resistant").notes)


def test_infections_lupus_amyloidosis_and_hiv_are_recognised_by_their_icd_10_cm_and_who_icd_10_subcodes(
    tmp_path: Path,
) -> None:
    """Problem lists carry the most specific subcode: each is read by its category, dots or not."""
    cm, who = "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"
    expected = {
        (cm, "A41.9"): {"sepsis", "infection"},
        (cm, "J18.9"): {"pneumonia", "infection"},
        (cm, "K65.2"): {"peritonitis", "infection"},
        (cm, "L03.90"): {"cellulitis", "infection"},
        (cm, "B01.9"): {"varicella-zoster", "infection"},
        (cm, "B02.9"): {"varicella-zoster", "infection"},
        (cm, "M32.14"): {"lupus-nephritis"},
        (cm, "E85.4"): {"amyloidosis"},
        (cm, "B20"): {"hiv-infection"},
        (who, "A40.0"): {"sepsis", "infection"},
        (who, "J13"): {"pneumonia", "infection"},
        (who, "B24"): {"hiv-infection"},
        (who, "E859"): {"amyloidosis"},
    }
    resources = [
        {
            "resourceType": "Condition",
            "id": f"c{n}",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": system, "code": code}]},
            "onsetDateTime": "2023-03-01",
        }
        for n, (system, code) in enumerate(expected)
    ]
    patients, _ = read(tmp_path, bundle(patient(), *resources))
    concepts = {c.source: c.concepts for c in patients[0].facts.conditions}
    for n, key in enumerate(expected):
        assert expected[key] <= concepts[f"Condition/c{n}"], key
    # Not every subcode of a category is an infection: sclerosing mesenteritis (K65.4) is not peritonitis.
    other = {**resources[0], "id": "k654", "code": {"coding": [{"system": cm, "code": "K65.4"}]}}
    patients, _ = read(tmp_path, bundle(patient(), other))
    assert not any("peritonitis" in c.concepts for c in patients[0].facts.conditions)


def test_hiv_disease_on_a_problem_list_makes_a_secondary_nephrotic_syndrome_suspected():
    result = steroid_resistant_child().condition({"hiv-infection"}, 10).evaluate(60)
    secondary = result.first("secondary-ns-suspected")
    assert secondary is not None and "hiv infection on record" in secondary.reason


# -- an allergy or intolerance naming a CNI (RULES.md §8) -------------------------------------------------


def test_an_allergy_to_cyclosporine_on_record_makes_a_steroid_resistant_child_cni_intolerant():
    chart = steroid_resistant_child().drug("cyclosporine", 45, 80, 160, basis="mg/m2").intolerance("cyclosporine", 82)
    result = chart.evaluate(120)
    intolerant = result.first("cni-intolerant")
    assert intolerant is not None and intolerant.since == day(82)
    assert "allergy or intolerance to cyclosporine on record" in intolerant.reason
    assert chart.facts.intolerances[0].source in intolerant.evidence
    assert any(p.template == "multidrug-option" for p in result.proposals)


def test_an_allergy_to_a_cni_the_child_is_still_taking_is_not_intolerance_and_a_note_says_why():
    chart = steroid_resistant_child().drug("cyclosporine", 45, None, 160, basis="mg/m2").intolerance("cyclosporine", 60)
    result = chart.evaluate(120)
    assert not result.has("cni-intolerant")
    assert any("yet cyclosporine is taken on" in n for n in result.notes)


def test_an_inactive_or_future_allergy_and_an_allergy_to_another_drug_class_do_not_count():
    assert (
        not steroid_resistant_child().intolerance("cyclosporine", 30, active=False).evaluate(120).has("cni-intolerant")
    )
    assert not steroid_resistant_child().intolerance("tacrolimus", 130).evaluate(120).has("cni-intolerant")
    assert not steroid_resistant_child().intolerance("mycophenolate-mofetil", 30).evaluate(120).has("cni-intolerant")


def test_an_undated_allergy_to_tacrolimus_counts_from_the_first_nephrotic_evidence():
    intolerant = steroid_resistant_child().intolerance("tacrolimus", None).evaluate(120).first("cni-intolerant")
    assert intolerant is not None and intolerant.since == day(0) and "undated" in intolerant.reason


def test_an_allergyintolerance_resource_coded_in_rxnorm_or_named_in_text_is_read(tmp_path: Path) -> None:
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"

    def allergy(aid: str, code: dict, **extra: object) -> dict:
        return {
            "resourceType": "AllergyIntolerance",
            "id": aid,
            "patient": {"reference": "Patient/p1"},
            "code": code,
            "recordedDate": "2023-05-02",
            **extra,
        }

    resources = [
        allergy("a1", {"coding": [{"system": rxnorm, "code": "3008", "display": "cyclosporine"}]}),
        allergy("a2", {"text": "Tacrolimus - tremor"}),
        allergy(
            "a3",
            {"coding": [{"system": rxnorm, "code": "3008"}]},
            verificationStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "refuted",
                    }
                ]
            },
        ),
        allergy("a4", {"text": "Peanut"}),
        allergy(
            "a5",
            {"coding": [{"system": rxnorm, "code": "3008"}]},
            clinicalStatus={
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "resolved"}
                ]
            },
        ),
    ]
    patients, problems = read(tmp_path, bundle(patient(), *resources))
    found = {i.source: i for i in patients[0].facts.intolerances}
    assert set(found) == {"AllergyIntolerance/a1", "AllergyIntolerance/a2", "AllergyIntolerance/a5"}
    assert found["AllergyIntolerance/a1"].drug == "cyclosporine" and found["AllergyIntolerance/a1"].on == date(
        2023, 5, 2
    )
    assert found["AllergyIntolerance/a2"].drug == "tacrolimus" and found["AllergyIntolerance/a2"].matched_by_name
    assert not found["AllergyIntolerance/a5"].active
    assert any("matched to tacrolimus by its name" in p.message for p in patients[0].problems)
