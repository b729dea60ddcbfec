"""Nothing silently lost: a record that cannot be read at all (no resourceType, an unknown or misspelt one,
not an object, a malformed NDJSON line) is an error located by file and entry or line, and no patient it
may belong to is given an answer as if their record were complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fhir_ns.cli import cli
from tests.test_fhir_input import LOINC, RXNORM, UCUM, bundle, obs, patient

AS_OF = "2023-06-30"


def story(pid: str) -> list[dict[str, Any]]:
    """A steroid-sensitive child: nephrotic on 2023-01-02, prednisolone 48 mg/day, in remission on day 10."""
    subject = f"Patient/{pid}"
    return [
        {**patient(pid), "meta": {"lastUpdated": "2023-06-01T00:00:00Z"}},
        obs(f"{pid}-w", "29463-7", 20, "kg", subject=subject, when="2023-01-01"),
        obs(f"{pid}-h", "8302-2", 115, "cm", subject=subject, when="2023-01-01"),
        obs(f"{pid}-u0", "2890-2", 6, "mg/mg", subject=subject, when="2023-01-02"),
        obs(f"{pid}-u10", "2890-2", 0.1, "mg/mg", subject=subject, when="2023-01-12"),
        {
            "resourceType": "MedicationStatement",
            "id": f"{pid}-pred",
            "status": "completed",
            "subject": {"reference": subject},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "8638"}]},
            "effectivePeriod": {"start": "2023-01-02", "end": "2023-02-12"},
            "dosage": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 48, "unit": "mg", "system": UCUM, "code": "mg"}}],
                }
            ],
        },
    ]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["classify", *args, "--as-of", AS_OF, "--format", "json"])


def answered(result: Result) -> dict[str, dict[str, Any]]:
    return {p["patient"]: p for p in orjson.loads(result.stdout)}


def write(tmp_path: Path, kind: str, resources: list[Any], name: str = "in") -> Path:
    """The resources as one collection Bundle (`kind` "bundle") or one NDJSON file."""
    if kind == "bundle":
        path = tmp_path / f"{name}.json"
        path.write_bytes(orjson.dumps(bundle(*resources)))
    else:
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")
    return path


def where(kind: str, path: Path, index: int) -> str:
    """How a problem locates the record at `index`: the Bundle entry, or the NDJSON line (from 1)."""
    return f"{path} entry[{index}]" if kind == "bundle" else f"{path} line {index + 1}"


KINDS = ["bundle", "ndjson"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Observaton", "resourceType 'Observaton' is not a FHIR resource type (did you mean Observation?)"),
        ("observation", "resourceType 'observation' is not a FHIR resource type (did you mean Observation?)"),
        (None, "no resourceType"),
        (42, "resourceType is not a string: 42"),
    ],
)
def test_a_record_that_names_its_patient_refuses_that_patient_only(
    tmp_path: Path, kind: str, written: Any, said: str
) -> None:
    # the misspelt UPCR of 2023-01-09 would have moved p1's remission by three days: p1 is not answered
    bad = obs("p1-u7", "2890-2", 0.1, "mg/mg", subject="Patient/p1", when="2023-01-09")
    if written is None:
        del bad["resourceType"]
    else:
        bad["resourceType"] = written
    resources = [*story("p1"), bad, *story("p2")]
    path = write(tmp_path, kind, resources)
    result = run(str(path))
    assert result.exit_code == 1, result.output
    assert set(answered(result)) == {"p2"}
    assert f"error: {where(kind, path, 6)}" in result.stderr and said in result.stderr
    assert "refused because of errors in their input: p1" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_misspelt_patient_refuses_the_patient_it_is(tmp_path: Path, kind: str) -> None:
    resources = [*story("p1"), *story("p2")]
    resources[0] = {**resources[0], "resourceType": "Patinet"}
    result = run(str(write(tmp_path, kind, resources)))
    assert result.exit_code == 1 and set(answered(result)) == {"p2"}
    assert "did you mean Patient?" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("unreadable", ["a string", 7, ["a", "list"]])
def test_a_record_that_names_no_patient_refuses_every_patient_of_its_input(
    tmp_path: Path, kind: str, unreadable: Any
) -> None:
    resources = [*story("p1"), unreadable, *story("p2")]
    path = write(tmp_path, kind, resources)
    other = write(tmp_path, kind, story("p3"), name="other")
    result = run(str(path), str(other))
    assert result.exit_code == 1
    assert set(answered(result)) == {"p3"}  # the patients of another INPUT argument are not touched
    assert f"error: {where(kind, path, 6)}" in result.stderr
    assert "not evaluated: 1 unreadable record(s) in" in result.stderr and "--skip-unreadable" in result.stderr

    skipped = run(str(path), str(other), "--skip-unreadable")
    assert skipped.exit_code == 1  # the unreadable record is still an error of the run
    results = answered(skipped)
    assert {pid: r.get("unreadable_records_skipped") for pid, r in results.items()} == {"p1": 1, "p2": 1, "p3": None}
    assert results["p1"]["classifications"][0]["code"] == "ssns"


def test_the_marks_of_skipped_records_reach_the_detected_issue_the_care_plan_and_the_provenance(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "ndjson", [*story("p1"), "truncated"])
    out = tmp_path / "out.json"
    result = CliRunner().invoke(cli, ["convert", str(path), "--as-of", AS_OF, "-o", str(out), "--skip-unreadable"])
    assert result.exit_code == 1, result.output
    entries = [e["resource"] for e in orjson.loads(out.read_bytes())["entry"]]
    mark = "Evaluated with 1 unreadable input record(s) skipped"
    issues = [r for r in entries if r["resourceType"] == "DetectedIssue"]
    plans = [r for r in entries if r["resourceType"] == "CarePlan"]
    [provenance] = [r for r in entries if r["resourceType"] == "Provenance"]
    assert issues and all(mark in r["detail"] for r in issues)
    assert plans and all(mark in r["description"] for r in plans)
    assert mark in provenance["reason"][0]["text"]
    text = CliRunner().invoke(cli, ["classify", str(path), "--as-of", AS_OF, "--skip-unreadable"])
    assert mark in text.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_valid_resource_types_fhir_ns_does_not_use_stay_silently_ignored(tmp_path: Path, kind: str) -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "finished", "subject": {"reference": "Patient/p1"}}
    result = run(str(write(tmp_path, kind, [*story("p1"), encounter, {"resourceType": "Basic", "id": "b"}])))
    assert result.exit_code == 0, result.stderr
    assert set(answered(result)) == {"p1"} and "error" not in result.stderr


def test_an_entry_that_is_not_an_object_is_located_and_refuses_the_patients_of_its_bundle(tmp_path: Path) -> None:
    doc = bundle(*story("p1"))
    doc["entry"].append("not an entry")
    path = tmp_path / "in.json"
    path.write_bytes(orjson.dumps(doc))
    result = run(str(path))
    assert result.exit_code == 1 and answered(result) == {}
    assert f"error: {path} entry[6]: entry is not an object" in result.stderr


# -- every line of a small bulk export truncated in turn -------------------------------------------------


def cohort() -> list[dict[str, Any]]:
    return [r for pid in ("c1", "c2", "c3") for r in story(pid)]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_truncating_any_line_of_an_ndjson_cohort_answers_no_patient_of_it_unless_asked(
    tmp_path: Path, jobs: str
) -> None:
    lines = [orjson.dumps(r) for r in cohort()]
    lines_to_cut = range(len(lines)) if jobs == "1" else range(0, len(lines), 5)
    for n in lines_to_cut:
        cut = [line[: len(line) // 2] if i == n else line for i, line in enumerate(lines)]
        path = tmp_path / f"cut-{n}.ndjson"
        path.write_bytes(b"\n".join(cut) + b"\n")
        refused = run(str(path), "--jobs", jobs)
        assert refused.exit_code == 1, (n, refused.output)
        assert f"{path} line {n + 1}: malformed JSON" in refused.stderr
        assert answered(refused) == {}, n

        marked = run(str(path), "--jobs", jobs, "--skip-unreadable")
        assert marked.exit_code == 1
        results = answered(marked)
        whose = cohort()[n]["id"].split("-")[0]  # the patient whose record was cut may be answered or not
        assert set(results) | {whose} == {"c1", "c2", "c3"}, n
        assert all(r["unreadable_records_skipped"] == 1 for r in results.values()), n


def test_a_damaged_line_of_a_bulk_export_refuses_every_patient_of_the_export(tmp_path: Path) -> None:
    by_type: dict[str, list[bytes]] = {}
    for r in cohort():
        by_type.setdefault(r["resourceType"], []).append(orjson.dumps(r))
    by_type["MedicationStatement"] = [b'{"resourceType": "MedicationStatement", "id": "c2-pr'] + [
        line for line in by_type["MedicationStatement"] if b'"c2-pred"' not in line
    ]
    for rtype, lines in by_type.items():
        (tmp_path / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    result = run(str(tmp_path))
    assert answered(result) == {}  # c2, whose only statement was the damaged line, above all
    assert "MedicationStatement.ndjson line 1: malformed JSON" in result.stderr


def test_loinc_is_what_the_stories_use() -> None:
    assert story("x")[3]["code"]["coding"][0]["system"] == LOINC
