"""The command line, through click's CliRunner and as a real subprocess: output, messages, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from fhir_ns.cli import cli
from fhir_ns.errors import INPUT_SKIPPED, NO_INPUT
from tests.test_fhir_input import bundle, obs, patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def prednisolone(pid: str, start: str, end: str, mg: float) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "id": f"pred-{pid}",
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "8638"}]},
        "effectivePeriod": {"start": start, "end": end},
        "dosage": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
                ],
            }
        ],
    }


def two_patients(tmp_path: Path, broken: bool = False) -> Path:
    good = [
        patient("good"),
        obs("g1", "34366-5", 600, "mg/mmol", subject="Patient/good", when="2023-01-02"),
        prednisolone("good", "2023-01-02", "2023-02-12", 60),
        obs("g2", "34366-5", 10, "mg/mmol", subject="Patient/good", when="2023-01-16"),
    ]
    bad = [
        patient("bad"),
        obs("b1", "1751-7", 2.0, "mg/mg" if broken else "g/dL", subject="Patient/bad", when="2023-01-02"),
    ]
    path = tmp_path / "two.json"
    path.write_bytes(orjson.dumps(bundle(*good, *bad)))
    return path


def test_classify_json_has_one_object_per_patient_in_the_documented_shape(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["classify", str(two_patients(tmp_path)), "--as-of", "2023-03-01", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    by_id = {d["patient"]: d for d in data}
    good = by_id["good"]
    assert good["ruleset"] == "ipna-2022-child|1.0.0" and good["as_of"] == "2023-03-01"
    [ssns] = good["classifications"]
    assert ssns["code"] == "ssns" and ssns["since"] == "2023-01-16" and "Observation/g2" in ssns["evidence"]
    assert set(ssns) == {"code", "since", "reason", "evidence"}
    assert by_id["bad"]["classifications"][0]["code"] == "insufficient-data"


def test_classify_text_is_a_readable_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["classify", str(two_patients(tmp_path)), "--as-of", "2023-03-01"])
    assert result.exit_code == 0
    assert "Patient good  (rule set ipna-2022-child|1.0.0" in result.stdout
    assert (
        "Steroid-sensitive nephrotic syndrome (ssns)  since 2023-01-16" in result.stdout
        and "complete remission on 2023-01-16" in result.stdout
    )


def test_bad_entry_is_named_its_patient_refused_the_other_processed_and_exit_is_non_zero(tmp_path: Path) -> None:
    outcome = tmp_path / "outcome.json"
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli,
        [
            "convert",
            str(two_patients(tmp_path, broken=True)),
            "--as-of",
            "2023-03-01",
            "-o",
            str(out),
            "--outcome",
            str(outcome),
        ],
    )
    assert result.exit_code == INPUT_SKIPPED
    assert "two.json entry[5] Observation/b1 (valueQuantity.code): unit 'mg/mg' is not accepted" in result.stderr
    assert "1 refused because of errors in their input: bad" in result.stderr
    written = orjson.loads(out.read_bytes())
    Bundle.model_validate(written)
    patients = {e["resource"].get("patient", {}).get("reference") for e in written["entry"]}
    assert "Patient/good" in patients and "Patient/bad" not in patients
    oo = orjson.loads(outcome.read_bytes())
    OperationOutcome.model_validate(oo)
    assert oo["issue"][0]["expression"] == ["Bundle.entry[5].resource.valueQuantity.code"]


def test_unknown_rule_set_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fhir_ns", "classify", str(two_patients(tmp_path)), "--ruleset", "nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3
    assert "unknown rule set 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_file_and_malformed_json_exit_with_no_input(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Bundle", "entry": [')
    proc = subprocess.run(
        [sys.executable, "-m", "fhir_ns", "convert", str(broken), str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == NO_INPUT
    assert "malformed JSON at line 1 column" in proc.stderr and "No such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_date_option_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["classify", str(two_patients(tmp_path)), "--as-of", "March"])
    assert result.exit_code == 2 and "is not a date" in result.output


def test_stdin_is_read_with_a_dash(tmp_path: Path) -> None:
    data = two_patients(tmp_path).read_bytes()
    result = CliRunner().invoke(cli, ["classify", "-", "--as-of", "2023-03-01", "--format", "json"], input=data)
    assert result.exit_code == 0 and len(orjson.loads(result.stdout)) == 2


def test_data_after_as_of_is_ignored(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["classify", str(two_patients(tmp_path)), "--as-of", "2023-01-10", "--format", "json"]
    )
    good = next(d for d in orjson.loads(result.stdout) if d["patient"] == "good")
    assert [c["code"] for c in good["classifications"]] == ["response-pending"]
    assert "decided on 2023-01-30" in good["classifications"][0]["reason"]
    assert good["classifications"][0]["revisit_on"] == good["revisit_on"] == "2023-01-30"


def test_output_files_get_the_usual_permissions(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    CliRunner().invoke(cli, ["convert", str(two_patients(tmp_path)), "--as-of", "2023-03-01", "-o", str(out)])
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
