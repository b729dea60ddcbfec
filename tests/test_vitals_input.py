"""Reading blood pressure (the 85354-9 panel's components, or separate Observations), glucose and HbA1c."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from fhir_ns.rules import evaluate
from tests.chart import RULESETS, TERMINOLOGY
from tests.test_fhir_input import LOINC, UCUM, bundle, obs, patient, read


def component(code: str, value: Any, unit: str | None = "mm[Hg]") -> dict[str, Any]:
    part: dict[str, Any] = {"code": {"coding": [{"system": LOINC, "code": code}]}}
    if value is not None:
        part["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return part


def bp_panel(oid: str, systolic: Any, diastolic: Any, when: str = "2023-01-02", unit: str = "mm[Hg]") -> dict[str, Any]:
    return obs(
        oid,
        "85354-9",
        None,
        when=when,
        component=[component("8480-6", systolic, unit), component("8462-4", diastolic, unit)],
    )


def test_a_blood_pressure_panel_gives_its_systolic_and_diastolic_components(tmp_path: Path) -> None:
    patients, problems = read(tmp_path, bundle(patient(), bp_panel("bp1", 142, 91)))
    [p] = patients
    values = sorted((m.concept, m.value, m.unit, m.on, m.source) for m in p.facts.measurements)
    assert values == [
        ("bp-diastolic", 91.0, "mm[Hg]", date(2023, 1, 2), "Observation/bp1"),
        ("bp-systolic", 142.0, "mm[Hg]", date(2023, 1, 2), "Observation/bp1"),
    ]
    assert not problems and not p.problems and "Observation/bp1" in p.facts.sources


def test_systolic_and_diastolic_as_separate_observations(tmp_path: Path) -> None:
    doc = bundle(patient(), obs("s", "8480-6", 131, "mm[Hg]"), obs("d", "8462-4", 79, "mm[Hg]"))
    patients, _ = read(tmp_path, doc)
    assert sorted((m.concept, m.value) for m in patients[0].facts.measurements) == [
        ("bp-diastolic", 79.0),
        ("bp-systolic", 131.0),
    ]


def test_a_panel_component_in_an_unknown_unit_is_an_error_naming_the_accepted_one(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), bp_panel("bp1", 142, 91, unit="kPa")))
    [p] = patients
    [error] = [x for x in p.problems if x.severity == "error"]
    assert "'kPa'" in error.message and "mm[Hg]" in error.message and error.element == "component[0].valueQuantity.code"
    assert p.refused


def test_a_panel_without_component_values_is_a_warning_and_no_measurement(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), bp_panel("bp1", None, None)))
    [p] = patients
    assert p.facts.measurements == [] and not p.refused
    assert any("without a value" in x.message for x in p.problems)


def test_an_implausible_systolic_is_refused(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), bp_panel("bp1", 420, 91)))
    assert any("implausible" in x.message for x in patients[0].problems if x.severity == "error")


def test_panels_in_ndjson_are_read_like_bundles(tmp_path: Path) -> None:
    patients, problems = read(tmp_path, patient(), bp_panel("bp1", 120, 70), bp_panel("bp2", 125, 72), name="in.ndjson")
    assert len(patients[0].facts.measurements) == 4 and not problems


def test_glucose_fasting_random_and_hba1c_codes_and_units(tmp_path: Path) -> None:
    doc = bundle(
        patient(),
        obs("f", "1558-6", 130, "mg/dL"),
        obs("r", "2345-7", 210, "mg/dL"),
        obs("m", "14749-6", 11.5, "mmol/L"),
        obs("a", "4548-4", 6.7, "%"),
        obs("i", "59261-8", 50, "mmol/mol"),
    )
    patients, problems = read(tmp_path, doc)
    assert not problems and not patients[0].problems
    assert sorted((m.concept, m.value, m.unit) for m in patients[0].facts.measurements) == [
        ("glucose", 11.5, "mmol/L"),
        ("glucose", 210.0, "mg/dL"),
        ("glucose-fasting", 130.0, "mg/dL"),
        ("hba1c", 6.7, "%"),
        ("hba1c", 50.0, "mmol/mol"),
    ]


def test_glucose_in_an_unknown_unit_is_refused(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), obs("g", "2345-7", 7, "g/L")))
    assert patients[0].refused


def test_panels_read_from_fhir_make_a_hypertension_finding(tmp_path: Path) -> None:
    doc = bundle(
        patient(born="2008-03-01"),
        bp_panel("bp1", 141, 85, when="2023-01-02"),
        bp_panel("bp2", 145, 88, when="2023-01-20"),
    )
    patients, _ = read(tmp_path, doc)
    facts = patients[0].facts
    facts.sort()
    result = evaluate(facts, RULESETS, TERMINOLOGY, date(2023, 3, 1), "kdigo-2021-child")
    [finding] = [f for f in result.findings if f.code == "hypertension"]
    assert finding.severity == "moderate" and set(finding.evidence) == {"Observation/bp1", "Observation/bp2"}


def test_convert_output_of_the_complication_samples_passes_the_output_profile(tmp_path: Path) -> None:
    import orjson
    from click.testing import CliRunner

    from fhir_ns.cli import cli
    from fhir_ns.validate.output_profile import check_output

    samples = Path(__file__).resolve().parent.parent / "samples" / "bundles"
    for name, code in (
        ("hypertension-on-cyclosporine", "hypertension"),
        ("hypertension-by-percentile", "hypertension"),
        ("acute-kidney-injury", "acute-kidney-injury"),
        ("steroid-hyperglycaemia", "drug-induced-hyperglycaemia"),
    ):
        out = tmp_path / f"{name}.json"
        run = CliRunner().invoke(
            cli, ["convert", str(samples / f"{name}.json"), "--as-of", "2023-12-31", "-q", "-o", str(out)]
        )
        assert run.exit_code == 0, run.output
        bundle = orjson.loads(out.read_bytes())
        assert check_output(bundle, RULESETS) == []
        issues = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"]
        [issue] = [i for i in issues if any(c["code"] == code for c in i["code"]["coding"])]
        assert issue["implicated"] and issue["evidence"]


def test_a_glucose_whose_code_says_fasting_is_a_fasting_glucose(tmp_path: Path) -> None:
    stated = obs("f", "2345-7", 7.2, "mmol/L")
    stated["code"]["text"] = "Glucose, fasting (serum)"
    unstated = obs("r", "2345-7", 7.2, "mmol/L")
    unstated["code"]["coding"][0]["display"] = "Glucose [Mass/volume] in Serum or Plasma"
    breakfast = obs("b", "2345-7", 7.2, "mmol/L")
    breakfast["code"]["text"] = "Glucose after breakfast"
    patients, problems = read(tmp_path, bundle(patient(), stated, unstated, breakfast))
    assert not problems
    concepts = {m.source: m.concept for m in patients[0].facts.measurements}
    assert concepts == {"Observation/f": "glucose-fasting", "Observation/r": "glucose", "Observation/b": "glucose"}
