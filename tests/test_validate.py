"""`fhir-ns validate`: the corpus of bad inputs, one layer at a time, and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle

from fhir_ns.cli import cli
from fhir_ns.errors import INPUT_SKIPPED, OK, USAGE
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import LAYERS, Validation, Validator

CORPUS = Path(__file__).parent / "validation-corpus"
MANIFEST = yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))["cases"]


def validate(*paths: Path | str, version: str = "R4") -> Validation:
    return Validator(version, load_terminology(), load_rulesets()).validate([str(p) for p in paths])  # type: ignore[arg-type]


def test_the_manifest_lists_every_corpus_file_and_the_corpus_covers_every_layer() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".json", ".ndjson")}
    assert files == {case["file"] for case in MANIFEST}
    covered = {e["layer"] for case in MANIFEST for e in case["expect"]}
    assert covered == set(LAYERS)


@pytest.mark.parametrize("case", MANIFEST, ids=[c["file"] for c in MANIFEST])
def test_each_bad_input_is_reported_where_it_is_wrong_and_nothing_else(case: dict[str, Any]) -> None:
    [report] = validate(CORPUS / case["file"]).files
    found = [
        (x.issue.severity, x.issue.layer, x.expression, x.issue.message)
        for x in report.issues
        if x.issue.severity in ("error", "warning") or x.issue.layer == "input-profile"
    ]
    assert [f[:3] for f in found] == [(e["severity"], e["layer"], e["expression"]) for e in case["expect"]]
    for (_, _, _, message), expected in zip(found, case["expect"], strict=True):
        assert message.startswith(expected["message"])


def test_files_that_crash_naive_parsers_are_refused_with_a_message(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"resourceType": "Patient", "extension": ' + b"[" * 200000 + b"]" * 200000 + b"}")
    shallow_but_deep = tmp_path / "nested.json"  # deeper than fhir-ns allows, shallow enough for orjson
    shallow_but_deep.write_bytes(
        b'{"resourceType": "Patient", "extension": ' + b'[{"extension": ' * 300 + b"[]" + b"}]" * 300 + b"}"
    )
    digits = tmp_path / "digits.json"  # the standard library refuses integers of more than 4300 digits
    digits.write_bytes(b'{"resourceType": "Patient", "multipleBirthInteger": ' + b"9" * 5000 + b"}")
    reports = validate(deep, shallow_but_deep, digits).files
    messages = [[x.issue.message for x in r.issues if x.issue.is_error] for r in reports]
    assert "nesting too deep" in messages[0][0]
    assert any("nesting deeper than 100 levels" in m for m in messages[1])
    assert any("malformed JSON" in m or "too many digits" in m for m in messages[2])


def test_every_layer_runs_even_when_an_earlier_one_found_errors() -> None:
    obs = orjson.loads((CORPUS / "obs-6-value-and-absent-reason.json").read_bytes())
    obs["status"] = "done"  # layer 3
    obs["effectiveDateTime"] = "2023-02-06T08:15:00"  # layer 2
    [report] = validate(_write(obs)).files
    layers = {x.issue.layer for x in report.issues if x.issue.is_error}
    assert {"structure", "binding", "invariant"} <= layers


def _write(resource: dict[str, Any]) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".json")
    with open(fd, "wb") as fh:
        fh.write(orjson.dumps(resource))
    return Path(name)


def test_cli_text_is_grouped_by_file_and_entry_and_exit_code_says_errors() -> None:
    result = CliRunner().invoke(cli, ["validate", str(CORPUS / "bundle-entry-bad-date.json")])
    assert result.exit_code == INPUT_SKIPPED
    lines = result.stdout.splitlines()
    assert lines[0].endswith("bundle-entry-bad-date.json: 2 errors, 2 information (hidden; -v shows them)")
    at = lines.index("  entry[1] Observation/upcr-1")
    assert lines[at + 1].split()[:3] == ["error", "Bundle.entry[1].resource.effectiveDateTime", "[structure]"]


def test_cli_json_is_a_bundle_of_one_valid_operation_outcome_per_file() -> None:
    files = [str(CORPUS / "observation-status-bogus.json"), str(CORPUS / "empty.json")]
    result = CliRunner().invoke(cli, ["validate", "--format", "json", *files])
    assert result.exit_code == INPUT_SKIPPED
    data = orjson.loads(result.stdout)
    Bundle.model_validate(data)
    first, second = (e["resource"] for e in data["entry"])
    assert data["entry"][0]["fullUrl"].endswith("observation-status-bogus.json")
    [error] = [i for i in first["issue"] if i["severity"] == "error"]
    assert error["code"] == "code-invalid" and error["expression"] == ["Observation.status"]
    assert "'done' is not in the required value set observation-status" in error["diagnostics"]
    assert second["issue"][0]["diagnostics"].endswith("empty file")


def test_valid_input_exits_zero_and_strict_turns_warnings_into_errors() -> None:
    path = str(CORPUS / "patient-not-in-input.json")  # only a warning: no Patient in the input
    assert CliRunner().invoke(cli, ["validate", path]).exit_code == OK
    strict = CliRunner().invoke(cli, ["validate", "--strict", path])
    assert strict.exit_code == INPUT_SKIPPED and "error       Observation.subject" in strict.stdout


def test_a_missing_file_is_an_io_problem_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "nope.json"), str(CORPUS / "two-values.json")])
    assert result.exit_code == USAGE
    assert "nope.json: cannot be read" in result.stdout and "only one value[x] is allowed" in result.stdout


def test_stdin_and_ndjson_lines_are_validated() -> None:
    data = (CORPUS / "bad-line.ndjson").read_bytes()
    result = CliRunner().invoke(cli, ["validate", "-"], input=data)
    assert result.exit_code == INPUT_SKIPPED
    assert "  line 2\n    error       [syntax] malformed JSON" in result.stdout


def test_r5_data_is_checked_against_r5() -> None:
    r5 = CORPUS / "r5-medication-in-r4.json"
    assert any(x.issue.is_error for x in validate(r5).files[0].issues)
    r5_errors = [x for x in validate(r5, version="R5").files[0].issues if x.issue.is_error]
    assert not r5_errors
