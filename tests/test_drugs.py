"""Drugs of the second round (RULES.md §10): equivalences, dose checks, names and codes a site brings.

The child is 6 years old, 20 kg and 115 cm (BSA 0.80 m2), steroid-resistant from day 28.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_ns.rules import evaluate
from fhir_ns.terminology import load_terminology
from fhir_ns.timeline.model import DrugExposure
from fhir_ns.timeline.timeline import Timeline
from tests.chart import RULESETS, TERMINOLOGY, Chart, codes, day, steroid_resistant_child
from tests.test_fhir_input import UCUM, one_patient

ATC = "http://www.whocc.no/atc"
START = 45


def dose_findings(result):
    return [f for f in result.findings if f.code == "dose-out-of-range"]


# -- glucocorticoids in prednisone equivalents ------------------------------------------------------------


@pytest.mark.parametrize(
    ("drug", "mg", "prednisone_mg"),
    [("dexamethasone", 0.75, 5.0), ("hydrocortisone", 20, 5.0), ("deflazacort", 6, 5.0), ("betamethasone", 0.75, 5.0)],
)
def test_glucocorticoids_count_in_prednisone_equivalents(drug: str, mg: float, prednisone_mg: float) -> None:
    tl = Chart().drug(drug, 0, 10, mg).timeline(20)
    [e] = tl.glucocorticoids()
    assert tl.daily_dose(e, day(0), "mg/d", prednisone_equivalent=True).value == pytest.approx(prednisone_mg, rel=0.01)


def test_a_dexamethasone_course_is_a_steroid_trial_in_prednisone_equivalents() -> None:
    """7.2 mg/day dexamethasone is 48 mg/day prednisone, the child's standard dose: a CR on day 10 is SSNS."""
    chart = Chart().upcr(0, 600).albumin(0, 18).drug("dexamethasone", 0, 41, 7.2).upcr(10, 10)
    assert "ssns" in codes(chart.evaluate(60))


# -- mycophenolic acid is judged as mycophenolate mofetil ---------------------------------------------------


def test_mycophenolate_sodium_720_mg_per_m2_is_not_a_low_mycophenolate_mofetil_dose() -> None:
    """720 mg/m2/day of mycophenolic acid is 1000 mg/m2/day of mofetil: inside 960-1500."""
    chart = steroid_resistant_child().drug("mycophenolic-acid", START, None, 720, basis="mg/m2")
    assert dose_findings(chart.evaluate(100)) == []


def test_mycophenolic_acid_below_the_mofetil_range_after_conversion_is_flagged_saying_so() -> None:
    chart = steroid_resistant_child().drug("mycophenolic-acid", START, None, 400, basis="mg/m2")
    [finding] = dose_findings(chart.evaluate(100))
    assert finding.category == "DOSELINDSA"
    assert "mean 556 mg/m2/day" in finding.reason
    assert "mycophenolic acid converted at 1.39 mg mycophenolate mofetil per mg" in finding.reason


# -- levamisole: 2-2.5 mg/kg on alternate days ---------------------------------------------------------------


def test_levamisole_on_alternate_days_in_range_is_not_flagged() -> None:
    """2.5 mg/kg (50 mg) every other day is 25 mg/day on average: 1.25 mg/kg/day."""
    chart = steroid_resistant_child().drug("levamisole", START, None, 25, alternate_day=True)
    assert dose_findings(chart.evaluate(100)) == []


def test_levamisole_at_1_mg_per_kg_on_alternate_days_is_below_its_range() -> None:
    chart = steroid_resistant_child().drug("levamisole", START, None, 10, alternate_day=True)
    [finding] = dose_findings(chart.evaluate(100))
    assert finding.category == "DOSELINDW"
    assert "levamisole mean 0.5 mg/kg/day" in finding.reason and "alternate days" in finding.reason


# -- classes: corticotropin and mizoribine are steroid-sparing, chlorambucil has no limit ---------------


def test_corticotropin_mizoribine_and_chlorambucil_have_their_classes() -> None:
    drugs = TERMINOLOGY.drugs
    assert drugs["corticotropin"].drug_class in TERMINOLOGY.steroid_sparing_classes
    assert drugs["mizoribine"].drug_class == "antimetabolite"
    assert drugs["chlorambucil"].drug_class == "alkylating-agent"


def test_chlorambucil_is_read_but_has_no_cumulative_dose_finding() -> None:
    chart = steroid_resistant_child().drug("chlorambucil", START, START + 60, 4)
    result = chart.evaluate(150)
    assert not [f for f in result.findings if "cumulative" in f.code]


# -- names: whole words, brand names, and the longest name ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "drug"),
    [
        ("Mycophenolate sodium 360 mg EC tablet", "mycophenolic-acid"),
        ("MYFORTIC 180MG", "mycophenolic-acid"),
        ("CellCept 250 mg capsule", "mycophenolate-mofetil"),
        ("mycophenolate 500 mg", "mycophenolate-mofetil"),
        ("Emflaza 18 mg tablet", "deflazacort"),
        ("Mizoribine (Bredinin) 50 mg", "mizoribine"),
        ("Prograf 1 mg", "tacrolimus"),
        ("ACTH gel 80 units", "corticotropin"),
    ],
)
def test_generic_and_brand_names_match_as_whole_words(text: str, drug: str) -> None:
    assert TERMINOLOGY.drug_for_text(text) == drug


@pytest.mark.parametrize("text", ["prednisolonex", "antiprograf", "cellcepts", "nonacthing"])
def test_a_name_inside_a_longer_word_does_not_match(text: str) -> None:
    assert TERMINOLOGY.drug_for_text(text) is None


# -- reading FHIR: names, ATC, warnings --------------------------------------------------------------------


def _statement(sid: str, concept: dict, mg: float = 500) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
        "effectivePeriod": {"start": "2023-02-01"},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }


def test_a_brand_name_without_a_code_is_read_and_reported_as_information(tmp_path: Path) -> None:
    p = one_patient(tmp_path, _statement("s1", {"text": "Myfortic 360 mg EC"}, 360))
    [e] = p.facts.exposures
    assert (e.drug, e.drug_class, e.daily_dose, e.matched_by_name) == ("mycophenolic-acid", "antimetabolite", 720, True)
    [note] = [x for x in p.problems if x.code == "code-unknown"]
    assert note.severity == "information" and "mycophenolic acid by its name" in note.message


def test_atc_l04aa06_with_the_words_mycophenolate_sodium_is_mycophenolic_acid(tmp_path: Path) -> None:
    concept = {"coding": [{"system": ATC, "code": "L04AA06", "display": "Mycophenolate sodium 360 mg"}]}
    [e] = one_patient(tmp_path, _statement("s1", concept, 360)).facts.exposures
    assert (e.drug, e.matched_by_name) == ("mycophenolic-acid", False)


def test_atc_l04aa06_alone_stays_mycophenolate_mofetil(tmp_path: Path) -> None:
    [e] = one_patient(tmp_path, _statement("s1", {"coding": [{"system": ATC, "code": "L04AA06"}]})).facts.exposures
    assert e.drug == "mycophenolate-mofetil"


@pytest.mark.parametrize(("code", "group"), [("L04AA10", "L04"), ("L01XX99", "L01"), ("H02AB08", "H02")])
def test_an_unknown_immunosuppressant_or_glucocorticoid_atc_is_a_warning_naming_it(
    tmp_path: Path, code: str, group: str
) -> None:
    concept = {"coding": [{"system": ATC, "code": code, "display": "Some local drug"}]}
    p = one_patient(tmp_path, _statement("s1", concept))
    assert p.facts.exposures == []
    [warning] = [x for x in p.problems if x.code == "code-unknown"]
    assert warning.severity == "warning"
    assert f"Some local drug (ATC {code}, group {group})" in warning.message


def test_an_unknown_drug_outside_the_watched_atc_groups_is_ignored_silently(tmp_path: Path) -> None:
    p = one_patient(
        tmp_path, _statement("s1", {"coding": [{"system": ATC, "code": "A02BC01", "display": "omeprazole"}]})
    )
    assert p.facts.exposures == [] and not [x for x in p.problems if x.code == "code-unknown"]


def test_hydrocortisone_and_chlorambucil_are_read_by_atc(tmp_path: Path) -> None:
    p = one_patient(
        tmp_path,
        _statement("s1", {"coding": [{"system": ATC, "code": "H02AB09"}]}, 10),
        _statement("s2", {"coding": [{"system": ATC, "code": "L01AA02"}]}, 2),
    )
    assert sorted(e.drug for e in p.facts.exposures) == ["chlorambucil", "hydrocortisone"]


# -- a site adds a whole drug -------------------------------------------------------------------------------


def _site_with_a_new_drug(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "codes").mkdir(parents=True)
    (site / "drugs.yaml").write_text(
        "drugs:\n"
        "  voclosporin: {class: calcineurin-inhibitor, names: [voclosporin, lupkynis]}\n"
        "  cortivazol: {class: glucocorticoid, names: [cortivazol], prednisone_equivalent: 16.7}\n"
    )
    (site / "codes" / "local.yaml").write_text(
        "medications:\n  - {system: 'urn:oid:1.2.3.4.5', code: 'VCS', drug: voclosporin}\n"
    )
    return site


def test_a_site_adds_a_drug_fhir_ns_does_not_know_and_it_is_classified(tmp_path: Path) -> None:
    terminology = load_terminology((_site_with_a_new_drug(tmp_path),))
    assert terminology.drugs["voclosporin"].drug_class == "calcineurin-inhibitor"
    assert "voclosporin" not in TERMINOLOGY.drugs  # the built-in tables are untouched
    coded = _statement("s1", {"coding": [{"system": "urn:oid:1.2.3.4.5", "code": "VCS"}]}, 20)
    named = _statement("s2", {"text": "Cortivazol 1.5 mg"}, 1.5)
    p = one_patient(tmp_path, coded, named, terminology=terminology)
    assert sorted((e.drug, e.drug_class) for e in p.facts.exposures) == [
        ("cortivazol", "glucocorticoid"),
        ("voclosporin", "calcineurin-inhibitor"),
    ]


def test_a_site_drug_takes_part_in_the_rules(tmp_path: Path) -> None:
    """A CNI the site added makes a CNI course whose response is judged; the shipped rule sets hold no minimum dose
    or trough range for it, so after 6 months without response the answer is insufficient data, saying why."""
    terminology = load_terminology((_site_with_a_new_drug(tmp_path),))
    chart = steroid_resistant_child()
    for n in range(0, 200, 30):
        chart.upcr(START + n, 400)
    chart.facts.exposures.append(
        DrugExposure("voclosporin", "calcineurin-inhibitor", day(START), None, 300, "mg", "MedicationStatement/v1")
    )
    chart.facts.sort()
    tl = Timeline.build(chart.facts, RULESETS["ipna-2022-child"], terminology, day(START + 200))
    assert [c.drugs for c in tl.cni_courses()] == [["voclosporin"]]
    result = evaluate(chart.facts, RULESETS, terminology, day(START + 200), "ipna-2022-child")
    [unknown] = [c for c in result.classifications if c.code == "insufficient-data"]
    assert "CNI response cannot be judged for the course from 2023-02-16" in unknown.reason


def test_a_site_drug_without_a_class_is_a_configuration_error(tmp_path: Path) -> None:
    from fhir_ns.errors import ConfigError

    site = tmp_path / "bad"
    site.mkdir()
    (site / "drugs.yaml").write_text("drugs:\n  mystery: {names: [mystery]}\n")
    with pytest.raises(ConfigError, match="mystery"):
        load_terminology((site,))


# -- ICD-10 / ICD-10-CM conditions, as hospital problem lists carry them ------------------------------------

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def _hospital_condition(cid: str, system: str, code: str, text: str, onset: str = "2022-11-03") -> dict:
    """A problem-list Condition as an EHR exports it: one ICD-10 coding, a local display text, no SNOMED CT."""
    return {
        "resourceType": "Condition",
        "id": cid,
        "meta": {"lastUpdated": "2023-01-05T08:12:44Z"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": system, "code": code, "display": text}], "text": text},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": onset,
        "recordedDate": "2022-11-04T10:00:00-05:00",
    }


@pytest.mark.parametrize(
    ("system", "code", "text", "concepts"),
    [
        (ICD10CM, "N04.1", "NEPHROTIC SYNDROME - FSGS ON BX 11/22", {"nephrotic-syndrome", "histology-fsgs"}),
        (ICD10CM, "N04.0", "Nephrotic syndrome, MCD", {"nephrotic-syndrome", "histology-mcd"}),
        (ICD10CM, "N04.21", "Primary membranous nephropathy w NS", {"nephrotic-syndrome", "histology-membranous"}),
        (ICD10CM, "N04.5", "NS w MPGN", {"nephrotic-syndrome", "histology-mpgn"}),
        (ICD10CM, "N04.9", "Nephrotic syndrome (HCC)", {"nephrotic-syndrome"}),
        (ICD10, "N041", "Nephrotic syndrome, focal and segmental", {"nephrotic-syndrome", "histology-fsgs"}),
        (ICD10CM, "K27.9", "PUD", {"peptic-ulcer"}),
        (ICD10CM, "A15.0", "Pulmonary TB", {"tuberculosis", "infection"}),
        (ICD10CM, "B18.1", "Chronic hep B", {"hepatitis", "hepatitis-b", "infection"}),
        (ICD10CM, "E11.21", "T2DM w nephropathy", {"diabetes-uncontrolled", "diabetic-nephropathy"}),
        (ICD10CM, "E11.65", "T2DM with hyperglycemia", {"diabetes-uncontrolled"}),
        (ICD10CM, "M81.0", "Osteoporosis, age-related", {"osteoporosis-severe"}),
        (ICD10CM, "F32.9", "Depression", {"psychiatric-illness"}),
    ],
)
def test_icd10_conditions_from_a_hospital_problem_list_are_recognised(
    tmp_path: Path, system: str, code: str, text: str, concepts: set[str]
) -> None:
    p = one_patient(tmp_path, _hospital_condition("c1", system, code, text))
    [condition] = p.facts.conditions
    assert condition.concepts == concepts and condition.active and condition.source == "Condition/c1"


def test_an_icd10_code_outside_the_mapped_categories_is_not_a_condition(tmp_path: Path) -> None:
    p = one_patient(tmp_path, _hospital_condition("c1", ICD10CM, "N03.9", "Chronic nephritic syndrome"))
    assert p.facts.conditions == []


def test_an_icd10_peptic_ulcer_makes_high_dose_prednisolone_a_steroid_intolerance_finding(tmp_path: Path) -> None:
    p = one_patient(tmp_path, _hospital_condition("c1", ICD10CM, "K27.9", "PUD", onset="2022-12-01"))
    chart = steroid_resistant_child()
    chart.facts.conditions.extend(p.facts.conditions)
    result = chart.evaluate(60)
    assert "steroid-intolerance" in [f.code for f in result.findings]
