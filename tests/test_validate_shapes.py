"""The invariant layer remembers, by the shape of an object (its contexts and keys), which invariants can fail on
it and which of its elements a visit of a plain resource can leave out; a bulk export's resources share a few
shapes, so most nodes are decided by one look-up. What is remembered must never change a verdict: every resource
the project has, and generated variants of them (keys dropped, reordered, emptied, extended, references and
codes changed, resources contained), in every FHIR version, is checked both ways in one process, so that a shape
learned from one resource is applied to the next."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cohort import cohort
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator, elements, invariants
from fhir_ns.validate.invariants import check_invariants, is_plain
from fhir_ns.validate.spec import VERSIONS, FhirVersion, load_spec

TESTS = Path(__file__).parent
CORPUS = TESTS / "validation-corpus"
EXAMPLES = TESTS / "hl7-examples"
SAMPLES = TESTS.parent / "samples"


def _resources(doc: Any) -> Iterator[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("resourceType"), str):
        yield doc
        for entry in doc.get("entry") or [] if doc["resourceType"] == "Bundle" else []:
            if isinstance(entry, dict):
                yield from _resources(entry.get("resource"))


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every resource (a Bundle, and each of its entries on its own) of the corpus, the HL7 examples, the sample
    Bundles and NDJSON, and a small synthetic cohort."""
    small = cohort(tmp_path_factory.mktemp("cohort"), 6)
    files = [
        *sorted(CORPUS.glob("*.json")),
        *sorted(CORPUS.glob("*.ndjson")),
        *sorted(EXAMPLES.glob("*.json")),
        *sorted(SAMPLES.glob("bundles/*.json")),
        *sorted(SAMPLES.glob("cohort.ndjson/*.ndjson")),
        *small.ndjson_files(),
    ]
    found: list[dict[str, Any]] = []
    for path in files:
        data = path.read_bytes()
        for text in data.splitlines() if path.suffix == ".ndjson" else [data]:
            try:
                found += _resources(orjson.loads(text))
            except orjson.JSONDecodeError:
                continue
    return found


def both_ways(resource: dict[str, Any], version: FhirVersion) -> tuple[list[Any], list[Any]]:
    """The invariant issues as the fast path finds them (remembered shapes; the pruned visit where the resource's
    text is plain) and as the full path does (every node, decided afresh)."""
    spec = load_spec(version)
    plain = is_plain(orjson.dumps(resource))
    return (
        check_invariants(resource, spec, plain=plain, remembered=True),
        check_invariants(resource, spec, remembered=False),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_remembered_shapes_decide_as_each_node_does_on_every_resource(
    everything: list[dict[str, Any]], version: FhirVersion
) -> None:
    plain = failing = 0
    for resource in everything:
        fast, full = both_ways(resource, version)
        assert fast == full, (resource.get("resourceType"), resource.get("id"))
        plain += is_plain(orjson.dumps(resource))
        failing += bool(full)
    assert plain > 100 and failing > 50  # the pruned visit is taken, and verdicts of failure are compared


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """A variant of a JSON value: keys dropped or reordered, objects emptied or left with an id, extensions,
    odd references and codes, contained resources; arrays shortened."""
    if isinstance(value, list):
        items = [_mutate(item, rng, depth + 1) for item in value]
        return items[: rng.randint(1, len(items))] if items and rng.random() < 0.2 else items
    if not isinstance(value, dict):
        return value
    out = {key: _mutate(item, rng, depth + 1) for key, item in value.items()}
    keys = [k for k in out if k != "resourceType"]
    choice = rng.random()
    if choice < 0.15 and keys:
        del out[rng.choice(keys)]
    elif choice < 0.25:
        order = list(out.items())
        rng.shuffle(order)
        out = dict(order)
    elif choice < 0.3 and depth:
        out = rng.choice([{}, {"id": "x"}])
    elif choice < 0.35:
        out["extension"] = [{"url": "http://example.org/x", "valueString": "x"}]
    elif choice < 0.4 and "reference" in out:
        out["reference"] = rng.choice(["#", "#c1", "Patient/", "urn:uuid:1", "http://x.org/Patient/1", "Patient/p1"])
    elif choice < 0.45 and "system" in out:
        out["system"] = rng.choice(["http://unitsofmeasure.org", "http://loinc.org", "urn:oid:1.2"])
        out.pop("code", None) if rng.random() < 0.5 else None
    elif choice < 0.5 and depth == 0 and "resourceType" in out:
        out["contained"] = [{"resourceType": "Patient", "id": "c1", "text": {"status": "generated"}}]
        if rng.random() < 0.5:
            out["subject"] = {"reference": "#c1"}
    elif choice < 0.55 and depth == 0:
        out["text"] = rng.choice([{"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'/>"}, {}])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_remembered_shapes_decide_as_each_node_does_on_generated_variants(
    everything: list[dict[str, Any]], data: st.DataObject
) -> None:
    version = data.draw(st.sampled_from(VERSIONS))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    resource = _mutate(copy.deepcopy(data.draw(st.sampled_from(everything))), rng)
    fast, full = both_ways(resource, version)
    assert fast == full, orjson.dumps(resource)[:300]


def test_shapes_beyond_those_remembered_are_decided_alike(
    everything: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd input with more shapes than are remembered: the rest are decided node by node, the same way."""
    spec = load_spec("R4")
    for_spec = invariants.for_spec(spec)
    paths = elements.element_paths(spec)
    monkeypatch.setattr(invariants, "SHAPES_REMEMBERED", 0)
    monkeypatch.setattr(elements, "SHAPES_REMEMBERED", 0)
    monkeypatch.setattr(for_spec, "_failable", {})
    monkeypatch.setattr(paths, "kept", {})
    monkeypatch.setattr(invariants, "_VISITS", {})
    for resource in everything:
        fast, full = both_ways(resource, "R4")
        assert fast == full
    assert not for_spec._failable and not any(paths.kept.values())  # nothing was remembered
    visits = [visit for _, visit in invariants._VISITS.values() if visit is not None]
    steps = [step for visit in visits for step in [*visit.roots.values(), *(step for step, _ in visit.steps.values())]]
    assert steps and not any(step.shapes for step in steps)


def test_a_dose_timing_with_a_period_and_no_unit_is_reported_from_ndjson(tmp_path: Path) -> None:
    """tim-2 on a MedicationRequest read from a bulk export: "every 1" with no unit is an error, whether the line
    goes the fast way (proven clean for layers 1-3, then the pruned visit) or through every layer."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "pred-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "prednisolone"},
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1}}}],
    }
    path = tmp_path / "orders.ndjson"
    path.write_bytes(orjson.dumps(order) + b"\n")
    found = {}
    for fast in (True, False):
        validator = Validator("R4", load_terminology(), load_rulesets())
        validator.fast = fast
        [report] = validator.validate([str(path)]).files
        found[fast] = [(x.expression, x.issue.message) for x in report.issues if x.issue.layer == "invariant"]
    assert validator._proven(orjson.dumps(order)) is not None  # the fast way is taken for this line
    assert (
        "MedicationRequest.dosageInstruction[0].timing.repeat",
        "tim-2: if there's a period, there needs to be period units",
    ) in found[True]
    assert found[True] == found[False]
