"""Reading FHIR: bundles, NDJSON, reference forms, units, medication resolution, and bad input."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_ns.fhir.extract import FactCollector, PatientInput
from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import read_entries
from fhir_ns.terminology import Terminology, load_terminology

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


def patient(pid: str = "p1", born: str = "2016-05-01") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": born, "gender": "female"}


def obs(
    oid: str,
    code: str,
    value: Any,
    unit: str | None = None,
    subject: str = "Patient/p1",
    when: str | None = "2023-01-02T09:00:00+01:00",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
    }
    if when is not None:
        res["effectiveDateTime"] = when
    if isinstance(value, (int, float)):
        res["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    elif isinstance(value, str):
        res["valueString"] = value
    res.update(extra)
    return res


def bundle(*resources: dict[str, Any], full_urls: list[str] | None = None) -> dict[str, Any]:
    entries = []
    for i, r in enumerate(resources):
        entry: dict[str, Any] = {"resource": r}
        if full_urls:
            entry["fullUrl"] = full_urls[i]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def read(tmp_path: Path, *docs: Any, name: str = "in.json", raw: bytes | None = None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    elif name.endswith(".ndjson"):
        path.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    else:
        path.write_bytes(orjson.dumps(docs[0]))
    problems: list[Problem] = []
    collector = FactCollector(load_terminology(), problems)
    collector.add_all(read_entries([str(path)], problems))
    return collector.patients(), problems


def one_patient(tmp_path: Path, *resources: dict[str, Any], terminology: Terminology | None = None) -> PatientInput:
    """The one patient of a Bundle of a Patient and `resources`, read as the classifier reads it."""
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(bundle(patient(), *resources)))
    problems: list[Problem] = []
    collector = FactCollector(terminology or load_terminology(), problems)
    collector.add_all(read_entries([str(path)], problems))
    [p] = collector.patients()
    return p


def test_upcr_in_mg_per_g_is_read_in_the_mass_ratio_family(tmp_path: Path) -> None:
    patients, problems = read(tmp_path, bundle(patient(), obs("o1", "2890-2", 2500, "mg/g")))
    [p] = patients
    [m] = p.facts.measurements
    assert (m.concept, m.value, m.unit, m.on, m.source) == ("upcr", 2.5, "mg/mg", date(2023, 1, 2), "Observation/o1")
    assert not problems and not p.problems


def test_albumin_in_g_per_dl_becomes_g_per_l_and_creatinine_mg_per_dl_becomes_umol(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), obs("a", "1751-7", 2.1, "g/dL"), obs("c", "2160-0", 0.5, "mg/dL")))
    values = {m.concept: (round(m.value, 2), m.unit) for m in patients[0].facts.measurements}
    assert values == {"albumin": (21.0, "g/L"), "creatinine": (44.2, "umol/L")}


def test_albumin_in_mg_per_mg_is_refused_with_the_accepted_units_named(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), obs("a", "1751-7", 2.0, "mg/mg")))
    [p] = patients
    assert p.refused
    [error] = [x for x in p.problems if x.severity == "error"]
    assert "mg/mg" in error.message and "g/dL" in error.message and error.location.entry == 1
    assert error.resource == "Observation/a"


def test_dipstick_grades_from_string_snomed_coding_and_mg_per_dl(tmp_path: Path) -> None:
    coded = obs(
        "d2",
        "20454-5",
        None,
        valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "167277001"}]},
    )
    patients, _ = read(tmp_path, bundle(patient(), obs("d1", "20454-5", "++"), coded, obs("d3", "5804-0", 30, "mg/dL")))
    term = load_terminology()
    grades = {m.source: term.dipstick_grades[int(m.value)] for m in patients[0].facts.measurements}
    assert grades == {"Observation/d1": "2+", "Observation/d2": "3+", "Observation/d3": "1+"}


def test_unknown_dipstick_text_is_an_error_naming_the_value(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), obs("d1", "20454-5", "lots")))
    assert patients[0].refused
    assert "'lots'" in patients[0].problems[0].message


def test_observation_without_a_date_refuses_its_patient_only(tmp_path: Path) -> None:
    doc = bundle(
        patient("p1"),
        patient("p2"),
        obs("o1", "2890-2", 3, "mg/mg", when=None),
        obs("o2", "2890-2", 3, "mg/mg", subject="Patient/p2"),
    )
    patients, _ = read(tmp_path, doc)
    by_id = {p.facts.patient_id: p for p in patients}
    assert by_id["p1"].refused and not by_id["p2"].refused
    assert "no date" in by_id["p1"].problems[0].message
    assert by_id["p1"].problems[0].element == "effective[x]"


def test_partial_dates_are_refused_for_clinical_events(tmp_path: Path) -> None:
    patients, _ = read(tmp_path, bundle(patient(), obs("o1", "2890-2", 3, "mg/mg", when="2023-01")))
    assert patients[0].refused and "has no day" in patients[0].problems[0].message


def test_unknown_codes_are_ignored_without_error(tmp_path: Path) -> None:
    patients, problems = read(tmp_path, bundle(patient(), obs("x", "9999-9", 5, "mg")))
    assert not patients[0].refused and not patients[0].facts.measurements and not problems


def test_references_in_every_form_reach_the_same_patient(tmp_path: Path) -> None:
    urn = "urn:uuid:6a0c7c1e-6b1f-4a53-9a4e-0f6f4c0b3c11"
    doc = bundle(
        patient("p1"),
        obs("o1", "2890-2", 3, "mg/mg", subject="Patient/p1"),
        obs("o2", "2890-2", 3, "mg/mg", subject="https://ehr.example/fhir/Patient/p1"),
        obs("o3", "2890-2", 3, "mg/mg", subject=urn),
        obs("o4", "2890-2", 3, "mg/mg", subject="Patient/p1/_history/3"),
        full_urls=[urn, "urn:uuid:1", "urn:uuid:2", "urn:uuid:3", "urn:uuid:4"],
    )
    patients, _ = read(tmp_path, doc)
    [p] = patients
    assert len(p.facts.measurements) == 4 and p.facts.birth_date == date(2016, 5, 1)


def test_duplicates_keep_the_later_version_and_say_so(tmp_path: Path) -> None:
    old = obs("o1", "2890-2", 3, "mg/mg", meta={"lastUpdated": "2023-01-02T10:00:00Z"})
    new = obs("o1", "2890-2", 0.1, "mg/mg", meta={"lastUpdated": "2023-01-03T10:00:00Z"})
    patients, _ = read(tmp_path, bundle(patient(), new, old))
    [p] = patients
    assert [m.value for m in p.facts.measurements] == [0.1]
    assert any(x.code == "duplicate" and x.severity == "warning" for x in p.problems)


def test_medication_reference_is_resolved_within_the_input(tmp_path: Path) -> None:
    med = {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RXNORM, "code": "8638"}]}}
    request = {
        "resourceType": "MedicationRequest",
        "id": "r1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/m1"},
        "authoredOn": "2023-01-02",
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {"start": "2023-01-02", "end": "2023-02-12"},
                        "frequency": 2,
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": 20, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }
    patients, _ = read(tmp_path, bundle(patient(), request, med))
    [e] = patients[0].facts.exposures
    assert (e.drug, e.drug_class, e.daily_dose, e.start, e.end, e.source) == (
        "prednisolone",
        "glucocorticoid",
        40.0,
        date(2023, 1, 2),
        date(2023, 2, 12),
        "MedicationRequest/r1",
    )


def test_alternate_day_dosing_from_timing_repeat(tmp_path: Path) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "8640"}]},
        "effectivePeriod": {"start": "2023-02-01"},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 2, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 40, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }
    patients, _ = read(tmp_path, bundle(patient(), statement))
    [e] = patients[0].facts.exposures
    assert e.alternate_day and e.daily_dose == 20.0 and e.end is None


def test_r5_medication_statement_codeable_reference_is_understood(tmp_path: Path) -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "recorded",
        "subject": {"reference": "Patient/p1"},
        "medication": {"concept": {"coding": [{"system": RXNORM, "code": "3008"}]}},
        "effectivePeriod": {"start": "2023-02-01", "end": "2023-08-01"},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 75, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }
    patients, _ = read(tmp_path, bundle(patient(), statement))
    [e] = patients[0].facts.exposures
    assert (e.drug, e.daily_dose) == ("cyclosporine", 150.0)


def test_iv_pulse_administration_is_a_single_dose(tmp_path: Path) -> None:
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "a1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3002"}]},
        "effectiveDateTime": "2023-03-01T10:00:00Z",
        "dosage": {"route": {"text": "intravenous"}, "dose": {"value": 0.5, "unit": "g", "system": UCUM, "code": "g"}},
    }
    patients, _ = read(tmp_path, bundle(patient(), admin))
    [e] = patients[0].facts.exposures
    assert e.single_administration and e.daily_dose == 500.0 and e.route == "iv" and e.start == e.end


def test_ndjson_reports_the_bad_line_and_reads_the_others(tmp_path: Path) -> None:
    raw = orjson.dumps(patient()) + b"\n{not json\n" + orjson.dumps(obs("o1", "2890-2", 3, "mg/mg")) + b"\n"
    patients, problems = read(tmp_path, name="Observation.ndjson", raw=raw)
    assert len(patients[0].facts.measurements) == 1
    [bad] = problems
    assert bad.location.line == 2 and "malformed JSON" in bad.message


def test_gzipped_ndjson_is_read(tmp_path: Path) -> None:
    raw = gzip.compress(orjson.dumps(patient()) + b"\n" + orjson.dumps(obs("o1", "2890-2", 3, "mg/mg")) + b"\n")
    patients, problems = read(tmp_path, name="export.ndjson.gz", raw=raw)
    assert not problems and len(patients[0].facts.measurements) == 1


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b'{"resourceType": "Bundle", "entry": [', "malformed JSON at line 1"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"id": "x"}', "no resourceType"),
        (b"[" * 100000 + b"]" * 100000, "malformed JSON"),
    ],
)
def test_unreadable_files_are_reported_not_raised(tmp_path: Path, raw: bytes, words: str) -> None:
    patients, problems = read(tmp_path, raw=raw)
    assert not patients
    assert [p.severity for p in problems] == ["error"] and words in problems[0].message


def test_resources_without_a_subject_are_reported_unattributed_and_refuse_the_patients_of_their_file(
    tmp_path: Path,
) -> None:
    # the orphan could be any patient's of the file: none of them is judged as if their record were complete
    orphan = obs("o1", "2890-2", 3, "mg/mg")
    del orphan["subject"]
    patients, problems = read(tmp_path, bundle(patient(), orphan))
    [orphaned] = [p for p in problems if "no subject" in p.message]
    assert orphaned.patient is None and orphaned.lost
    assert patients[0].refused
    [why] = [p for p in patients[0].problems if p.code == "incomplete"]
    assert "1 unreadable record(s) in" in why.message and "--skip-unreadable" in why.message


def test_site_mapping_file_adds_a_local_lab_code(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "local-lab.yaml").write_text(
        "observations:\n  - {system: 'urn:oid:1.2.3.4', code: 'UPCR-LOCAL', concept: upcr}\n"
    )
    terminology = load_terminology((site,))
    local = obs("o1", "x", 250, "mg/mmol")
    local["code"] = {"coding": [{"system": "urn:oid:1.2.3.4", "code": "UPCR-LOCAL"}]}
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(bundle(patient(), local)))
    problems: list[Problem] = []
    collector = FactCollector(terminology, problems)
    collector.add_all(read_entries([str(path)], problems))
    [m] = collector.patients()[0].facts.measurements
    assert (m.concept, m.value, m.unit) == ("upcr", 250.0, "mg/mmol")


def test_a_reference_whose_only_record_is_a_duplicate_kept_elsewhere_is_no_patient(tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    second = tmp_path / "b.json"
    first.write_bytes(orjson.dumps(bundle(patient(), obs("o1", "2890-2", 3, "mg/mg"))))
    second.write_bytes(orjson.dumps(bundle(obs("o1", "2890-2", 3, "mg/mg", subject="Group/ward-3"))))
    problems: list[Problem] = []
    collector = FactCollector(load_terminology(), problems)
    collector.add_all(read_entries([str(first), str(second)], problems))
    assert [p.facts.patient_id for p in collector.patients()] == ["p1"]
