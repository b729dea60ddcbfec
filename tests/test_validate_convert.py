"""`convert` checks each entry it reads (structure, required codes) and refuses what it cannot trust."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from fhir_ns.cli import cli
from fhir_ns.errors import INPUT_SKIPPED, OK
from tests.test_cli import prednisolone
from tests.test_fhir_input import bundle, obs, patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def two_patients(tmp_path: Path, bad: dict[str, Any], *more: dict[str, Any]) -> Path:
    good = [
        patient("good"),
        obs("g1", "34366-5", 600, "mg/mmol", subject="Patient/good", when="2023-01-02"),
        prednisolone("good", "2023-01-02", "2023-02-12", 60),
        obs("g2", "34366-5", 10, "mg/mmol", subject="Patient/good", when="2023-01-16"),
    ]
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(bundle(*good, patient("bad"), bad, *more)))
    return path


def convert(path: Path, tmp_path: Path, *extra: str) -> tuple[Any, set[str]]:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(cli, ["convert", str(path), "--as-of", "2023-03-01", "-o", str(out), *extra])
    written = orjson.loads(out.read_bytes())
    patients = {e["resource"].get("patient", {}).get("reference") for e in written["entry"]}
    return result, patients


def test_an_entry_with_a_code_outside_its_required_value_set_is_refused_with_its_patient(tmp_path: Path) -> None:
    wrong = obs("b1", "34366-5", 600, "mg/mmol", subject="Patient/bad", when="2023-01-02", status="done")
    result, patients = convert(two_patients(tmp_path, wrong), tmp_path)
    assert result.exit_code == INPUT_SKIPPED
    assert (
        "in.json entry[5] Observation/b1 (status): 'done' is not in the required value set observation-status"
        in result.stderr
    )
    assert "(FHIR binding; entry not used)" in result.stderr
    assert "1 refused because of errors in their input: bad" in result.stderr
    assert "Patient/good" in patients and "Patient/bad" not in patients


def test_an_entry_with_a_structure_error_is_refused(tmp_path: Path) -> None:
    wrong = obs("b1", "34366-5", 600, "mg/mmol", subject="Patient/bad", when="2023-01-02T09:00:00")
    result, patients = convert(two_patients(tmp_path, wrong), tmp_path)
    assert result.exit_code == INPUT_SKIPPED
    assert (
        "entry[5] Observation/b1 (effectiveDateTime): '2023-01-02T09:00:00' is not a valid FHIR dateTime"
        in result.stderr
    )
    assert "Patient/bad" not in patients


def test_a_refused_medication_refuses_the_exposures_that_name_it(tmp_path: Path) -> None:
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "status": "in-stock",
        "code": {"coding": [{"system": RXNORM, "code": "8638"}]},
    }
    request = prednisolone("bad", "2023-01-02", "2023-02-12", 60)
    del request["medicationCodeableConcept"]
    request["medicationReference"] = {"reference": "Medication/m1"}
    result, patients = convert(two_patients(tmp_path, request, med), tmp_path)
    assert result.exit_code == INPUT_SKIPPED
    assert "Medication/m1 (status): 'in-stock' is not in the required value set medication-status" in result.stderr
    assert "Medication/m1 was refused (see its own errors)" in result.stderr
    assert "Patient/bad" not in patients and "Patient/good" in patients


def test_resource_types_fhir_ns_does_not_read_are_not_checked(tmp_path: Path) -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "somewhere", "class": {"code": "AMB"}}
    ok = obs("b1", "34366-5", 600, "mg/mmol", subject="Patient/bad", when="2023-01-02")
    result, patients = convert(two_patients(tmp_path, ok, encounter), tmp_path)
    assert result.exit_code == OK, result.stderr
    assert {"Patient/good", "Patient/bad"} <= patients


def test_the_fhir_version_decides_which_shape_is_refused(tmp_path: Path) -> None:
    statement = prednisolone("bad", "2023-01-02", "2023-02-12", 60)
    statement["status"] = "recorded"
    statement["medication"] = {"concept": statement.pop("medicationCodeableConcept")}
    path = two_patients(tmp_path, statement)
    as_r4, _ = convert(path, tmp_path)
    assert as_r4.exit_code == INPUT_SKIPPED and "MedicationStatement/pred-bad (medication)" in as_r4.stderr
    as_r5, patients = convert(path, tmp_path, "--fhir-version", "R5")
    # now the R5 statement is read and the other patient's R4 one is the misfit
    assert "MedicationStatement/pred-bad" not in as_r5.stderr
    assert "MedicationStatement/pred-good (medicationCodeableConcept): unknown element" in as_r5.stderr
    assert "Patient/bad" in patients and "Patient/good" not in patients


def test_convert_does_not_refuse_a_patient_for_a_flaw_in_an_observation_the_classifier_ignores(tmp_path: Path) -> None:
    from fhir_ns.fhir.problems import Location
    from fhir_ns.fhir.reader import Entry
    from fhir_ns.terminology import load_terminology
    from fhir_ns.validate import EntryGate

    gate = EntryGate("R4", terminology=load_terminology())
    unrelated = {
        "resourceType": "Observation",
        "id": "x",
        "status": "bogus",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"},
    }
    used = {**unrelated, "code": {"coding": [{"system": "http://loinc.org", "code": "2890-2"}]}}
    assert gate.check(Entry(unrelated, Location("f.json", 0))) == []
    assert [p.element for p in gate.check(Entry(used, Location("f.json", 0)))] == ["status"]


def test_a_coding_whose_system_or_code_is_not_text_is_refused_not_a_crash(tmp_path: Path) -> None:
    listed = obs("b1", "34366-5", 600, "mg/mmol", subject="Patient/bad", when="2023-01-02")
    listed["code"]["coding"][0]["system"] = ["http://loinc.org"]
    result, patients = convert(two_patients(tmp_path, listed), tmp_path)
    assert result.exit_code == INPUT_SKIPPED
    assert result.exception is None or isinstance(result.exception, SystemExit)  # not a crash
    assert "code.coding[0].system" in result.stderr and "entry not used" in result.stderr
    assert "Patient/bad" not in patients and "Patient/good" in patients
