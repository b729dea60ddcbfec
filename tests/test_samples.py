"""Every sample classifies as recorded beside it, and every output validates as FHIR R4."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from fhir_ns.fhir.writer import Settings, transaction
from fhir_ns.pipeline import Config, run

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED: list[dict[str, Any]] = orjson.loads((SAMPLES / "expected.json").read_bytes())
COHORT: dict[str, dict[str, Any]] = orjson.loads((SAMPLES / "cohort-expected.json").read_bytes())
CONFIG = Config.load()
REQUIRED = {
    "ssns",
    "late-responder",
    "frns",
    "sdns",
    "srns-initial",
    "srns-secondary",
    "cni-resistant",
    "mdr-srns",
    "cni-nephrotoxicity",
    "under-dosed-trial",
    "adult-fsgs-srns",
    "insufficient-data",
}


def ids(path: Path) -> set[str]:
    bundle = orjson.loads(path.read_bytes())
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}


def test_every_required_phenotype_has_a_sample() -> None:
    assert {Path(e["file"]).stem for e in EXPECTED} >= REQUIRED


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: Path(c["file"]).stem)
def test_sample_classifies_as_recorded_with_reasons_and_evidence(case: dict[str, Any]) -> None:
    path = SAMPLES / case["file"]
    outcome = run([str(path)], CONFIG, date.fromisoformat(case["as_of"]), case["ruleset"])
    assert not outcome.has_errors and not outcome.refused
    [result] = outcome.results
    assert [c.code for c in result.classifications] == case["classifications"]
    assert sorted(f.code for f in result.findings) == sorted(case["findings"])
    present = ids(path)
    for item in [*result.classifications, *result.findings]:
        assert item.reason and item.evidence
        assert set(item.evidence) <= present, f"{item.code} cites resources not in the sample"
    alternate = case.get("alternate")
    if alternate:
        other = run([str(path)], CONFIG, date.fromisoformat(case["as_of"]), alternate["ruleset"]).results[0]
        assert [c.code for c in other.classifications] == alternate["classifications"]
        assert other.ruleset.id == alternate["ruleset"]


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: Path(c["file"]).stem)
def test_sample_output_is_a_valid_r4_transaction_citing_the_sample(case: dict[str, Any]) -> None:
    path = SAMPLES / case["file"]
    outcome = run([str(path)], CONFIG, date.fromisoformat(case["as_of"]), case["ruleset"])
    bundle = transaction(outcome.results, Settings())
    Bundle.model_validate(bundle)
    present = ids(path)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "DetectedIssue":
            cited = {d["reference"] for ev in resource.get("evidence", []) for d in ev["detail"] if "reference" in d}
            assert cited and cited <= present


def test_the_ruleset_option_changes_the_answer_where_rule_sets_differ() -> None:
    case = next(c for c in EXPECTED if c.get("alternate"))
    default = run([str(SAMPLES / case["file"])], CONFIG, date.fromisoformat(case["as_of"])).results[0]
    other = run([str(SAMPLES / case["file"])], CONFIG, date.fromisoformat(case["as_of"]), "kdigo-2021-child").results[0]
    assert "frns" in [c.code for c in default.classifications]
    assert "frns" not in [c.code for c in other.classifications]


@pytest.mark.parametrize("as_of", sorted({c["as_of"] for c in COHORT.values()}))
def test_ndjson_cohort_classifies_each_patient_as_recorded(as_of: str) -> None:
    outcome = run([str(SAMPLES / "cohort.ndjson")], CONFIG, date.fromisoformat(as_of))
    assert not outcome.has_errors
    by_id = {r.patient_id: r for r in outcome.results}
    assert set(by_id) == set(COHORT)
    for pid, case in COHORT.items():
        if case["as_of"] == as_of:
            assert [c.code for c in by_id[pid].classifications] == case["classifications"], pid
            assert sorted(f.code for f in by_id[pid].findings) == sorted(case["findings"]), pid


def test_convert_twice_gives_identical_identifiers(tmp_path: Path) -> None:
    outputs = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fhir_ns",
                "convert",
                str(SAMPLES / "bundles"),
                "--as-of",
                "2025-01-01",
                "-o",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    bundle = orjson.loads(outputs[0])
    identifiers = [
        (e["resource"]["identifier"][0]["system"], e["resource"]["identifier"][0]["value"])
        for e in bundle["entry"]
        if "identifier" in e["resource"]
    ]
    assert len(identifiers) == len(set(identifiers))


def test_samples_are_what_the_generator_writes(tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    copy.mkdir()
    shutil.copy(SAMPLES / "build_samples.py", copy / "build_samples.py")
    subprocess.run([sys.executable, str(copy / "build_samples.py")], check=True, capture_output=True)
    for produced in sorted(p for p in copy.rglob("*") if p.is_file() and p.name != "build_samples.py"):
        committed = SAMPLES / produced.relative_to(copy)
        assert committed.read_bytes() == produced.read_bytes(), f"{committed.name} differs from the generator's output"


def test_the_multidrug_sample_reads_mizoribine_tacrolimus_and_the_plasma_exchange_by_name() -> None:
    from fhir_ns.fhir.extract import FactCollector
    from fhir_ns.fhir.problems import Problem
    from fhir_ns.fhir.reader import read_entries

    problems: list[Problem] = []
    collector = FactCollector(CONFIG.terminology, problems)
    collector.add_all(read_entries([str(SAMPLES / "bundles" / "multidrug-mizoribine.json")], problems))
    [patient] = collector.patients()
    drugs = {e.drug for e in patient.facts.exposures}
    assert {"mizoribine", "tacrolimus", "prednisolone", "cyclosporine"} <= drugs
    [exchange] = patient.facts.procedures
    assert (exchange.concept, exchange.matched_by_name) == ("plasma-exchange", True)
    assert {p.severity for p in patient.problems} == {"information"}


def test_mycophenolate_sodium_is_read_as_mycophenolic_acid_and_not_flagged_low() -> None:
    case = next(c for c in EXPECTED if c["file"].endswith("mycophenolate-sodium.json"))
    outcome = run([str(SAMPLES / case["file"])], CONFIG, date.fromisoformat(case["as_of"]), case["ruleset"])
    [result] = outcome.results
    assert "dose-out-of-range" not in [f.code for f in result.findings]
    assert not outcome.problems
