"""Edges a user hits, through the command line: no Patient resource, a rule set for another population,
an evaluation date outside the record, R5 input checked as R4, two versions of one resource."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner, Result

from fhir_ns.cli import cli
from tests.test_cli import RXNORM, prednisolone, two_patients
from tests.test_fhir_input import bundle, obs, patient

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "bundles"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write(tmp_path: Path, *resources: dict[str, Any], name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(bundle(*resources)))
    return path


def nephrotic_then_remission(pid: str, start: str = "2023-01-02", remission: str = "2023-01-16") -> list[dict]:
    return [
        obs(f"{pid}-1", "34366-5", 600, "mg/mmol", subject=f"Patient/{pid}", when=start),
        prednisolone(pid, start, "2023-02-12", 60),
        obs(f"{pid}-2", "34366-5", 10, "mg/mmol", subject=f"Patient/{pid}", when=remission),
    ]


def ids(path: Path) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in orjson.loads(path.read_bytes())["entry"]}


# -- no Patient resource ------------------------------------------------------------------------------


def test_a_patient_without_a_patient_resource_has_no_rule_set_and_cites_only_what_was_read(tmp_path: Path) -> None:
    path = write(tmp_path, *nephrotic_then_remission("x"))
    result = invoke("classify", str(path), "--as-of", "2023-03-01", "--format", "json")
    assert result.exit_code == 0, result.output
    [x] = orjson.loads(result.stdout)
    assert x["ruleset"] is None and x["ruleset_choice"] == "no Patient resource"
    [c] = x["classifications"]
    assert c["code"] == "insufficient-data" and "no Patient resource for Patient/x" in c["reason"]
    assert c["evidence"] and set(c["evidence"]) <= ids(path)  # the first nephrotic value, not "Patient/x"
    text = invoke("classify", str(path), "--as-of", "2023-03-01").stdout
    assert "Patient x  (no rule set, no Patient resource;" in text


def test_convert_cites_no_resource_that_is_not_in_the_input(tmp_path: Path) -> None:
    path = write(tmp_path, *nephrotic_then_remission("x"))
    out = tmp_path / "out.json"
    assert invoke("convert", str(path), "--as-of", "2023-03-01", "-o", str(out)).exit_code == 0
    issues = [
        e["resource"]
        for e in orjson.loads(out.read_bytes())["entry"]
        if e["resource"]["resourceType"] == "DetectedIssue"
    ]
    cited = {d["reference"] for i in issues for e in i.get("evidence", []) for d in e.get("detail", [])}
    assert issues and cited and cited <= ids(path)


# -- a rule set for another population ----------------------------------------------------------------


def test_an_adult_rule_set_for_a_17_year_old_warns_on_stderr_and_in_the_outcome(tmp_path: Path) -> None:
    path = write(tmp_path, patient("teen", born="2005-10-01"), *nephrotic_then_remission("teen"))
    outcome = tmp_path / "outcome.json"
    args = ["classify", str(path), "--as-of", "2023-03-01", "--outcome", str(outcome)]
    result = invoke(*args, "--ruleset", "kdigo-2021-adult")
    assert result.exit_code == 0
    expected = (
        "rule set kdigo-2021-adult is for onset from 18 years; the patient was 17.3 years old at onset (2023-01-02)"
    )
    assert f"warning: --ruleset kdigo-2021-adult Patient/teen: {expected}" in result.stderr
    issues = orjson.loads(outcome.read_bytes())["issue"]
    [issue] = [i for i in issues if expected in i["diagnostics"]]
    assert issue["severity"] == "warning" and "expression" not in issue  # an option, not a place in a resource
    assert "rule set" not in invoke(*args, "--ruleset", "ipna-2022-child").stderr


def test_a_child_rule_set_for_an_adult_warns() -> None:
    result = invoke(
        "classify", str(SAMPLES / "adult-fsgs-srns.json"), "--as-of", "2023-07-19", "--ruleset", "ipna-2022-child"
    )
    assert (
        "rule set ipna-2022-child is for onset from 0 years to below 18; the patient was 45.3 years old"
        in result.stderr
    )


# -- --as-of outside the record --------------------------------------------------------------------------


def test_as_of_before_the_first_data_before_birth_or_in_the_future_warns(tmp_path: Path) -> None:
    path = str(two_patients(tmp_path))  # Patient/good born 2016-05-01, first data 2023-01-02
    before_data = invoke("classify", path, "--as-of", "2022-12-01")
    assert before_data.exit_code == 0
    assert (
        "warning: --as-of 2022-12-01 Patient/good: the evaluation date 2022-12-01 is before the first data on record "
        "(2023-01-02)" in before_data.stderr
    )
    before_birth = invoke("classify", path, "--as-of", "2015-01-01").stderr
    assert "the evaluation date 2015-01-01 is before the birth date 2016-05-01" in before_birth
    future = invoke("classify", path, "--as-of", "2999-01-01", "--format", "json")
    assert (
        future.exit_code == 0 and "warning: --as-of 2999-01-01: the evaluation date is in the future" in future.stderr
    )
    usual = invoke("classify", path, "--as-of", "2023-03-01").stderr
    assert "evaluation date" not in usual


# -- R5 input through an R4 gate -----------------------------------------------------------------------


def r5_bundle(tmp_path: Path) -> Path:
    """A child on prednisolone recorded in R5 shapes: `medication` a CodeableReference, status `recorded`."""
    medication = {"concept": {"coding": [{"system": RXNORM, "code": "8638"}]}}
    statement = prednisolone("r5", "2023-01-02", "2023-02-12", 60)
    del statement["medicationCodeableConcept"]
    statement.update(id="ms-r5", status="recorded", medication=medication)
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr-r5",
        "status": "active",
        "intent": "order",
        "medication": medication,
        "subject": {"reference": "Patient/r5"},
        "authoredOn": "2023-01-02",
        "dosageInstruction": statement["dosage"],
    }
    urine = nephrotic_then_remission("r5")
    return write(tmp_path, patient("r5"), urine[0], statement, request, urine[2], name="r5.json")


def test_an_r5_file_refused_by_the_r4_gate_says_so_and_names_the_option(tmp_path: Path) -> None:
    path = str(r5_bundle(tmp_path))
    refused = invoke("convert", path, "--as-of", "2023-03-01", "-o", str(tmp_path / "out.json"))
    assert refused.exit_code == 1
    for resource in ("MedicationStatement/ms-r5", "MedicationRequest/mr-r5"):
        rtype = resource.split("/")[0]
        assert (
            f"{resource}: this {rtype} is shaped as FHIR R5 (it meets R5's structure and required codes), not R4: "
            "use --fhir-version R5" in refused.stderr
        )
    accepted = invoke(
        "convert", path, "--as-of", "2023-03-01", "-o", str(tmp_path / "out.json"), "--fhir-version", "R5"
    )
    assert accepted.exit_code == 0 and "--fhir-version" not in accepted.stderr


def test_validate_says_an_r5_resource_is_r5_and_names_the_option(tmp_path: Path) -> None:
    path = str(r5_bundle(tmp_path))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert result.stdout.count("not R4: use --fhir-version R5") == 2
    assert "--fhir-version R5" not in invoke("validate", path, "--fhir-version", "R5").stdout


# -- two versions of one resource -----------------------------------------------------------------------


def test_the_duplicate_message_says_which_version_was_kept_and_why_with_both_timestamps(tmp_path: Path) -> None:
    old = obs("o1", "2890-2", 3, "mg/mg", meta={"lastUpdated": "2023-01-02T10:00:00Z"})
    new = obs("o1", "2890-2", 0.1, "mg/mg", meta={"lastUpdated": "2023-01-03T10:00:00Z"})
    path = write(tmp_path, patient(), new, old)
    result = invoke("classify", str(path), "--as-of", "2023-03-01")
    assert (
        f"two versions: kept the one at {path} entry[1] (meta.lastUpdated 2023-01-03T10:00:00Z), ignored the one at "
        f"{path} entry[2] (meta.lastUpdated 2023-01-02T10:00:00Z): its meta.lastUpdated is the later" in result.stderr
    )
    same = write(
        tmp_path, patient(), obs("o1", "2890-2", 3, "mg/mg"), obs("o1", "2890-2", 2, "mg/mg"), name="same.json"
    )
    assert (
        "(meta.lastUpdated absent): neither has meta.lastUpdated, so the one read first"
        in invoke("classify", str(same), "--as-of", "2023-03-01").stderr
    )


def test_two_versions_of_a_patient_keep_the_later_one_and_say_so(tmp_path: Path) -> None:
    old = {**patient("p", born="1990-01-01"), "meta": {"lastUpdated": "2023-01-02T10:00:00Z"}}
    new = {**patient("p", born="2016-05-01"), "meta": {"lastUpdated": "2023-02-01T10:00:00Z"}}
    path = write(tmp_path, old, *nephrotic_then_remission("p"), new)
    result = invoke("classify", str(path), "--as-of", "2023-03-01", "--format", "json")
    [p] = orjson.loads(result.stdout)
    assert p["ruleset"] == "ipna-2022-child|1.0.0"  # the child of the later version, not the adult of the first
    assert (
        f"Patient/p: two versions: kept the one at {path} entry[4] (meta.lastUpdated 2023-02-01T10:00:00Z), ignored "
        f"the one at {path} entry[0] (meta.lastUpdated 2023-01-02T10:00:00Z): its meta.lastUpdated is the later"
        in result.stderr
    )
