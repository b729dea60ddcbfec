"""The validator against real data: official HL7 examples (and each with one defect), the samples, fhir-ns output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from fhir_ns.cli import cli
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import builtin_mappings_dir, load_terminology
from fhir_ns.validate import Validator
from fhir_ns.validate.elements import walk
from fhir_ns.validate.invariants import compiled
from fhir_ns.validate.spec import VERSIONS, load_spec

EXAMPLES = Path(__file__).parent / "hl7-examples"
SAMPLES = Path(__file__).parent.parent / "samples"


def errors(*paths: Path | str, version: str = "R4") -> list[tuple[str, str, str]]:
    result = Validator(version, load_terminology(), load_rulesets()).validate([str(p) for p in paths])  # type: ignore[arg-type]
    return [(x.expression, x.issue.layer, x.issue.message) for f in result.files for x in f.issues if x.issue.is_error]


def test_the_official_hl7_examples_validate_with_no_errors() -> None:
    assert sorted(p.name.split("-")[0] for p in EXAMPLES.glob("*.json")) == sorted(
        ["Bundle", "CarePlan", "Condition", "DetectedIssue", "MedicationAdministration", "MedicationRequest"]
        + ["MedicationStatement", "Observation", "Observation", "Patient", "Patient", "Patient"]
    )
    assert errors(EXAMPLES) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for step in parents:
            target = target[int(step)] if step.isdigit() else target[step]
        target[int(last) if last.isdigit() else last] = value

    return apply


DEFECTS = [
    ("Observation-example.json", _set("status", "done"), "Observation.status", "binding"),
    (
        "Observation-example.json",
        _set("effectiveDateTime", "2016-03-28T09:00"),
        "Observation.effectiveDateTime",
        "structure",
    ),
    ("Observation-f001.json", _set("dataAbsentReason", {"text": "lost"}), "Observation", "invariant"),
    ("MedicationStatement-example001.json", _set("status", "taking"), "MedicationStatement.status", "binding"),
    (
        "MedicationStatement-example001.json",
        _set("medicationReference", {"reference": "#nope"}),
        "MedicationStatement.medicationReference",
        "invariant",
    ),
    ("MedicationRequest-medrx0302.json", _set("intent", "prescription"), "MedicationRequest.intent", "binding"),
    ("Condition-example.json", _set("clinicalStatus.coding.0.code", "current"), "Condition.clinicalStatus", "binding"),
    ("Patient-example.json", _set("gender", "M"), "Patient.gender", "binding"),
    ("Patient-example.json", _set("birthDate", "25-12-1974"), "Patient.birthDate", "structure"),
    ("DetectedIssue-ddi.json", _set("severity", "critical"), "DetectedIssue.severity", "binding"),
    ("DetectedIssue-ddi.json", _set("status", "open"), "DetectedIssue.status", "binding"),
    ("CarePlan-example.json", _set("intent", "proposed"), "CarePlan.intent", "binding"),
    ("CarePlan-example.json", _set("status", "ongoing"), "CarePlan.status", "binding"),
    ("Bundle-bundle-example.json", _set("type", "search"), "Bundle.type", "binding"),
    (
        "Bundle-bundle-example.json",
        _set("entry.0.resource.status", "running"),
        "Bundle.entry[0].resource.status",
        "binding",
    ),
    ("Bundle-bundle-example.json", _set("total", -1), "Bundle.total", "structure"),
]


@pytest.mark.parametrize(("name", "defect", "expression", "layer"), DEFECTS, ids=[f"{d[0]}:{d[2]}" for d in DEFECTS])
def test_an_example_with_one_defect_is_rejected_at_the_defect(
    tmp_path: Path, name: str, defect: Callable[[dict[str, Any]], None], expression: str, layer: str
) -> None:
    resource = orjson.loads((EXAMPLES / name).read_bytes())
    defect(resource)
    broken = tmp_path / name
    broken.write_bytes(orjson.dumps(resource))
    others = [p for p in EXAMPLES.glob("Patient-*.json")]
    found = [(e, lay) for e, lay, _ in errors(broken, *others)]
    assert (expression, layer) in found
    # anything else said is about the same element or about the resource it makes inconsistent (an invariant)
    assert all(e == expression or expression.startswith(e) for e, _ in found), found


def test_every_sample_validates_with_zero_errors() -> None:
    inputs = sorted((SAMPLES / "bundles").glob("*.json")) + [SAMPLES / "cohort.ndjson"]
    assert inputs, "no samples to validate"
    assert errors(*[p for p in inputs if p.exists()]) == []


def test_every_convert_output_validates_including_the_output_profile(tmp_path: Path) -> None:
    expected = orjson.loads((SAMPLES / "expected.json").read_bytes())
    cases = expected if isinstance(expected, list) else list(expected.values())
    outputs = []
    for case in cases:
        out = tmp_path / Path(case["file"]).name
        args = ["convert", str(SAMPLES / case["file"]), "--as-of", case["as_of"], "-o", str(out)]
        if case.get("ruleset"):
            args += ["--ruleset", case["ruleset"]]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.stderr
        outputs.append(out)
    assert errors(*outputs) == []
    written = sum(len(orjson.loads(o.read_bytes())["entry"]) for o in outputs)
    assert written > len(outputs)  # not just the Device: DetectedIssues, CarePlans and Provenance were checked


def test_output_profile_sees_a_broken_fhir_ns_bundle(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli, ["convert", str(SAMPLES / "bundles" / "srns-initial.json"), "--as-of", "2023-06-26", "-o", str(out)]
    )
    assert result.exit_code == 0
    bundle = orjson.loads(out.read_bytes())
    plan = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    plan["resource"]["instantiatesCanonical"] = ["https://fhir-ns.example.org/fhir/ruleset/ipna-2022-child"]
    out.write_bytes(orjson.dumps(bundle))
    [(expression, layer, message)] = errors(out)
    index = bundle["entry"].index(plan)
    assert (expression, layer) == (f"Bundle.entry[{index}].resource.instantiatesCanonical", "output-profile")
    assert "<id>|<version>" in message


@pytest.mark.parametrize("version", VERSIONS)
def test_vendored_value_sets_cover_the_required_bindings_fhir_ns_relies_on(version: str) -> None:
    spec = load_spec(version)  # type: ignore[arg-type]
    for element in [
        "Observation.status",
        "MedicationStatement.status",
        "MedicationRequest.status",
        "MedicationRequest.intent",
        "MedicationAdministration.status",
        "Condition.clinicalStatus",
        "Condition.verificationStatus",
        "DetectedIssue.status",
        "CarePlan.status",
        "CarePlan.intent",
        "Bundle.type",
        "Bundle.entry.request.method",
        "Patient.gender",
    ]:
        assert element in spec.bindings, element
    assert "final" in spec.bindings["Observation.status"].all_codes
    assert "bogus" not in spec.bindings["Observation.status"].all_codes
    keys = {i.key for i in spec.invariants}
    assert {"ele-1", "dom-2", "dom-3", "dom-4", "dom-5", "dom-6", "obs-6", "obs-7", "ref-1"} <= keys
    assert {f"bdl-{n}" for n in (1, 2, 5, 7, 8, 9, 10, 11, 12)} <= keys
    # R5 split bdl-3 into bdl-3a..3d and folded bdl-4 into bdl-3b/3c/3d
    assert {"bdl-3", "bdl-4"} <= keys if version != "R5" else {"bdl-3a", "bdl-3b", "bdl-3c", "bdl-3d"} <= keys


def test_vendored_data_says_where_it_comes_from() -> None:
    for version in VERSIONS:
        for name in ("valuesets.yaml", "invariants.yaml"):
            data = yaml.safe_load((builtin_mappings_dir() / "fhir" / version / name).read_text(encoding="utf-8"))
            assert data["source"]["licence"] == "CC0-1.0" and data["source"]["package"].startswith("hl7.")


def test_guards_never_skip_an_invariant_that_would_have_failed() -> None:
    """Evaluate every invariant everywhere, unguarded, on the examples, the corpus and the samples:
    wherever the guard skipped it, the expression holds."""
    spec = load_spec("R4")
    rules = compiled(spec.version, "r4", tuple(spec.invariants))
    corpus = Path(__file__).parent / "validation-corpus"
    paths = [*EXAMPLES.glob("*.json"), *corpus.glob("*.json"), *sorted((SAMPLES / "bundles").glob("*.json"))[:3]]
    skipped = 0
    for path in paths:
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict) or not spec.is_resource_type(str(doc.get("resourceType"))):
            continue
        for node in walk(doc, spec):
            for context in node.contexts:
                for rule in rules.get(context, ()):
                    if rule.invariant.key == "ele-1" or rule.can_fail(node.value):
                        continue
                    skipped += 1
                    try:
                        result = rule.evaluate(node.value, {"resource": node.resource, "rootResource": node.root})
                    except Exception:
                        continue
                    assert result != [False], (path.name, node.path, rule.invariant.key)
    assert skipped > 100
