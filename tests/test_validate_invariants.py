"""The invariant layer's native code (fhir_ns/validate/native.py) gives fhirpathpy's verdicts.

Every invariant with native code is evaluated both ways at every node of its context, in every FHIR
version, unguarded, over the HL7 examples, the samples, the validation corpus, convert outputs and
mutated variants of them made to reach each branch (every Bundle.type, requests and responses,
duplicate fullUrls, local references of every shape, contained resources ...). Where fhirpathpy
raises, the native code must defer to it; elsewhere it must agree or defer. And the whole validator
reports the same issues with and without the native code.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fhir_ns.cli import cli
from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator
from fhir_ns.validate.elements import walk
from fhir_ns.validate.invariants import FHIRPATH_MODEL_NAME, CompiledInvariant, compiled, evaluate_fhirpath
from fhir_ns.validate.native import NATIVE, model
from fhir_ns.validate.spec import VERSIONS, FhirVersion, load_spec

TESTS = Path(__file__).parent
EXAMPLES = TESTS / "hl7-examples"
CORPUS = TESTS / "validation-corpus"
SAMPLES = TESTS.parent / "samples"


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    lines = path.read_bytes().splitlines() if path.suffix == ".ndjson" else [path.read_bytes()]
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # syntax errors stop at layer 1
        if isinstance(doc, dict) and isinstance(doc.get("resourceType"), str):
            yield doc


@pytest.fixture(scope="module")
def convert_outputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out_dir = tmp_path_factory.mktemp("convert")
    outputs = []
    for case in orjson.loads((SAMPLES / "expected.json").read_bytes()):
        out = out_dir / Path(case["file"]).name
        args = ["convert", str(SAMPLES / case["file"]), "--as-of", case["as_of"], "-o", str(out)]
        if case.get("ruleset"):
            args += ["--ruleset", case["ruleset"]]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.stderr
        outputs.append(out)
    return outputs


def input_files(convert_outputs: list[Path]) -> list[Path]:
    return [
        *sorted(EXAMPLES.glob("*.json")),
        *sorted((SAMPLES / "bundles").glob("*.json")),
        *sorted((SAMPLES / "cohort.ndjson").glob("*.ndjson")),
        *sorted(p for p in CORPUS.iterdir() if p.suffix in (".json", ".ndjson")),
        *convert_outputs,
    ]


# -- mutated variants ----------------------------------------------------------------------------------------
BUNDLE_TYPES = [
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
    "subscription-notification",
    "bogus",
    7,
    {"resourceType": 5},  # fhirpathpy types a dict by its resourceType, and fails on this one
]


def _entry_shapes(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The entries given requests, responses, searches, duplicate or odd fullUrls and versions."""
    entries = bundle.get("entry") or []
    methods = ["POST", "PUT", "PATCH", "GET", "DELETE"]
    shaped = copy.deepcopy(bundle)
    for i, entry in enumerate(shaped.get("entry") or []):
        if i % 3 != 2:
            entry["request"] = {"method": methods[i % len(methods)], "url": "Observation"}
        if i % 4 != 3:
            entry["response"] = {"status": "201"}
        if i % 5 == 4:
            entry.pop("resource", None)
    yield shaped
    responses = copy.deepcopy(bundle)
    for entry in responses.get("entry") or []:
        entry["response"] = {"status": "200"}
    yield responses
    if len(entries) >= 2:
        for same_version in (True, False):
            dup = copy.deepcopy(bundle)
            dup["entry"][1]["fullUrl"] = dup["entry"][0].get("fullUrl", "urn:uuid:1")
            dup["entry"][0]["fullUrl"] = dup["entry"][1]["fullUrl"]
            for n, entry in enumerate(dup["entry"][:2]):
                if isinstance(entry.get("resource"), dict):
                    entry["resource"]["meta"] = {"versionId": "1" if same_version else str(n)}
            dup["entry"][0]["search"] = {"mode": "match"}
            yield dup
    odd = copy.deepcopy(bundle)
    if odd.get("entry"):
        odd["entry"][0]["fullUrl"] = "http://x.org/fhir/Observation/1/_history/2"
        odd["entry"][-1]["fullUrl"] = ["urn:a", "urn:b"]  # fhirpathpy raises on contains(), `&`
        odd["entry"].append({"fullUrl": "urn:uuid:empty"})  # no resource, request or response
        odd["entry"].append({"request": {"method": ["POST", "PUT"], "url": "x"}, "resource": {"resourceType": "Basic"}})
    yield odd
    falsy = copy.deepcopy(bundle)  # present but falsy values exist for fhirpathpy
    falsy["entry"] = [
        {"fullUrl": "", "request": {}, "resource": {"resourceType": "Basic", "meta": {"versionId": ""}}},
        {"fullUrl": "", "resource": {"resourceType": "Basic"}},
        {"request": {"url": "x"}, "response": {"status": "200"}},  # no fullUrl, no method
    ]
    yield falsy
    listed = copy.deepcopy(bundle)  # a resource that is two: is() raises
    listed["entry"] = [
        {"fullUrl": "urn:uuid:l", "resource": [{"resourceType": "Composition"}, {"resourceType": "Basic"}]}
    ]
    yield listed
    for first in ("Composition", "MessageHeader", "SubscriptionStatus"):
        headed = copy.deepcopy(bundle)
        headed.setdefault("entry", []).insert(0, {"fullUrl": "urn:uuid:h", "resource": {"resourceType": first}})
        headed["identifier"] = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:b"}
        if first == "Composition":  # typed Observation by fhirpathpy, so `value` is Observation.value[x]
            headed["identifier"]["resourceType"] = "Observation"
        headed["timestamp"] = "2023-01-01T00:00:00Z"
        headed["link"] = [{"relation": "self", "url": "http://x.org/fhir/Bundle"}]
        if first == "MessageHeader":  # the self link without its url, a timestamp that is only an extension
            headed["link"] = [{"relation": "self"}, {"relation": "next", "url": "http://x.org/fhir/Bundle?p=2"}]
            headed["_timestamp"] = headed.pop("timestamp") and {"extension": [{"url": "http://x.org/e"}]}
        headed["issues"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "x"}]}
        yield headed
    single = copy.deepcopy(bundle)
    single["entry"] = [{"fullUrl": "urn:uuid:p", "request": {"method": "PATCH", "url": "Patient/1"}}]
    yield single
    emptied = copy.deepcopy(bundle)
    emptied["entry"] = []
    emptied["total"] = 3
    emptied["identifier"] = {"system": "urn:ietf:rfc:3986"}
    emptied["issues"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}
    yield emptied


def bundle_variants(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    bundle = copy.deepcopy(bundle)
    bundle["entry"] = (bundle.get("entry") or [])[:6]
    for shaped in _entry_shapes(bundle):
        for kind in [*BUNDLE_TYPES, None]:
            variant = copy.deepcopy(shaped)
            variant.pop("type", None)
            if kind is not None:
                variant["type"] = kind
            yield variant
    extended = copy.deepcopy(bundle)
    extended["_type"] = {"extension": [{"url": "http://x.org/e", "valueString": "x"}]}
    yield extended


VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def condition_variants(condition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A problem-list Condition without a clinical status (con-3 fails), entered in error or not, coded in every
    way where(system=... and code=...) reads: with the system, without it, the code only as an extension, codings
    that are not objects; categories as codes, as text, as a string, as a resource, none."""
    statuses: list[Any] = [
        None,
        {"coding": [{"system": VER_STATUS, "code": "entered-in-error"}]},
        {"coding": [{"code": "entered-in-error"}]},
        {"coding": [{"system": VER_STATUS, "code": "confirmed"}, {"system": VER_STATUS, "code": "entered-in-error"}]},
        {"coding": [{"system": VER_STATUS, "_code": {"id": "c"}}, "entered-in-error"]},
        {"coding": [{"system": [VER_STATUS, VER_STATUS], "code": "entered-in-error"}]},
    ]
    categories: list[Any] = [
        None,
        [{"coding": [{"code": "problem-list-item"}]}],
        [{"text": "x"}, {"text": "y"}],
        ["problem-list-item"],
        [{"resourceType": "Observation"}],
    ]
    for clinical in (None, {"coding": [{"code": "active"}]}):
        for status in statuses:
            for category in categories:
                variant = copy.deepcopy(condition)
                for key, value in (
                    ("clinicalStatus", clinical),
                    ("verificationStatus", status),
                    ("category", category),
                ):
                    variant.pop(key, None)
                    if value is not None:
                        variant[key] = copy.deepcopy(value)
                yield variant


REFERENCES: list[Any] = [
    "#c1",
    "#c2",
    "#",
    "",
    "c1",
    "Patient/c1",
    "#zz",
    5,
    ["#c1", "#c2"],
    None,
]


def resource_variants(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Local references of every shape, with and without the resources they name; contained resources
    with what dom-2..5 forbid; narratives; quantities without systems; empty elements."""
    contained_sets: list[Any] = [
        [{"resourceType": "Patient", "id": "c1"}],
        [{"resourceType": "Patient", "id": ["c1", "c2"]}, {"resourceType": "Basic", "_id": {"id": "c2"}}],
        [
            {
                "resourceType": "Patient",
                "id": "c1",
                "meta": {"versionId": "1", "lastUpdated": "2023-01-01T00:00:00Z", "security": [{"code": "R"}]},
                "contained": [{"resourceType": "Patient", "id": "c3"}],
                "managingOrganization": {"reference": "#"},
            },
            {"resourceType": "Organization", "id": "c2", "meta": {"versionId": "2"}, "partOf": {"reference": "#c1"}},
        ],
        [{"resourceType": "Patient", "id": "c1", "meta": {"lastUpdated": "2023-01-01T00:00:00Z"}}],
        None,
    ]
    for contained in contained_sets:
        for reference in REFERENCES:
            variant = copy.deepcopy(resource)
            if contained is None:
                variant.pop("contained", None)
            else:
                variant["contained"] = copy.deepcopy(contained)
            subject: dict[str, Any] = {"display": "x"} if reference is None else {"reference": reference}
            variant["subject"] = subject
            yield variant
    odd = copy.deepcopy(resource)
    odd["subject"] = {"reference": "#c1", "_reference": {"extension": [{"url": "http://x.org/e"}]}}
    odd["performer"] = [{"_reference": {"id": "r"}}, {"reference": "#c1"}]
    odd["text"] = [{"status": "generated", "div": "<div/>"}, {"status": "empty"}]
    odd["valueQuantity"] = {"value": 1, "code": "mg"}
    odd["component"] = [{"valueQuantity": {"value": 1, "unit": "mg"}}, {"valueQuantity": {"code": "", "system": ""}}]
    odd["referenceRange"] = [
        {"low": {"value": 1, "_code": {"id": "x"}}},
        {"low": {"value": 1, "code": "mg", "system": "s"}},
    ]
    odd["meta"] = {}
    odd["code"] = {"id": "only-an-id"}
    odd["category"] = [{"id": ["a", "b"]}, {"id": None}]
    yield odd
    no_text = copy.deepcopy(resource)
    no_text["text"] = {"status": "generated"}
    no_text["identifier"] = [{"resourceType": "Observation", "value": "x"}]  # a datatype claiming to be a resource
    yield no_text
    bounds = copy.deepcopy(resource)  # ranges without bounds, periods ending before they start, negative periods
    bounds["referenceRange"] = [{"type": {"text": "normal"}}, {"text": "x"}, {"_text": {"id": "t"}}]
    bounds["effectivePeriod"] = {"start": "2013-05-02", "end": "2013-04"}
    bounds["dosage"] = [
        {"timing": {"repeat": {"period": -1, "boundsPeriod": {"start": "2013-05-02", "end": "2013-04-30"}}}},
        {"timing": {"repeat": {"period": 2, "periodUnit": "d", "boundsPeriod": {"start": "2013", "end": "2014"}}}},
        {"timing": {"repeat": {"period": "1", "_period": {"id": "p"}, "boundsPeriod": {"_start": {"id": "s"}}}}},
    ]
    yield bounds


def all_documents(files: list[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        yield from _documents(path)
    bundles = [
        *_documents(EXAMPLES / "Bundle-bundle-example.json"),
        *_documents(SAMPLES / "bundles" / "srns-initial.json"),
        *_documents(CORPUS / "bdl-7-duplicate-fullurl.json"),
    ]
    for bundle in bundles:
        yield from bundle_variants(bundle)
    for name in ("Observation-f001.json", "MedicationStatement-example001.json"):
        for resource in _documents(EXAMPLES / name):
            yield from resource_variants(resource)
    for condition in _documents(EXAMPLES / "Condition-example.json"):
        yield from condition_variants(condition)


# -- the comparison ----------------------------------------------------------------------------------------
def compare(docs: list[dict[str, Any]], version: FhirVersion) -> Counter[tuple[str, str]]:
    """(key, outcome) counts; asserts the native verdict is fhirpathpy's wherever it gives one."""
    spec = load_spec(version)
    rules = compiled(spec.version, FHIRPATH_MODEL_NAME[version], tuple(spec.invariants))
    seen: Counter[tuple[str, str]] = Counter()
    for doc in docs:
        for node in walk(doc, spec):
            for context in node.contexts:
                for rule in rules.get(context, ()):
                    if rule.native is None:
                        continue
                    key = rule.invariant.key
                    try:
                        expected: bool | None = evaluate_fhirpath(rule, node) != [False]
                    except Exception:
                        expected = None  # fhirpathpy raises: the layer says "not evaluated"
                    native = rule.holds_natively(node)
                    where = (version, key, doc.get("resourceType"), doc.get("id"), node.path)
                    if expected is None:
                        assert native is None, ("fhirpathpy raises, native code did not defer", *where)
                    else:
                        assert native is None or native == expected, ("verdicts differ", *where, native, expected)
                    outcome = "raises" if expected is None else "deferred" if native is None else str(native)
                    seen[(key, outcome)] += 1
    return seen


@pytest.mark.parametrize("version", VERSIONS)
def test_native_verdicts_are_fhirpathpys_on_every_input(version: FhirVersion, convert_outputs: list[Path]) -> None:
    docs = list(all_documents(input_files(convert_outputs)))
    seen = compare(docs, version)
    natives = {k for (k, e) in NATIVE if any(i.key == k and i.expression == e for i in load_spec(version).invariants)}
    # every native invariant of the version was reached, and decided natively both ways
    assert {key for key, _ in seen} == natives
    for key in natives:
        assert seen[(key, "False")] and seen[(key, "True")], (key, {o: n for (k, o), n in seen.items() if k == key})
    assert seen[("ref-1", "raises")] and seen[("bdl-8", "raises")]  # the odd shapes reached fhirpathpy's errors
    # outside ele-1 (native only for the empty elements the layer hands it) the native code decides
    others = {(k, o): n for (k, o), n in seen.items() if k != "ele-1"}
    decided = sum(n for (_, outcome), n in others.items() if outcome in ("True", "False"))
    assert decided > 0.95 * sum(others.values())


@pytest.mark.parametrize("version", VERSIONS)
def test_the_invariants_met_on_every_resource_have_native_code(version: FhirVersion) -> None:
    """Re-vendoring that changes one of these expressions takes its native code away: this says so."""
    spec = load_spec(version)
    native = {i.key for i in spec.invariants if (i.key, i.expression) in NATIVE}
    expected = {"ele-1", "ref-1", "dom-2", "dom-4", "dom-5", "dom-6", "qty-3", "bdl-1", "bdl-2", "bdl-5"}
    expected |= {"bdl-7", "bdl-8", "bdl-9", "bdl-10", "bdl-11", "bdl-12"}
    expected |= {"bdl-3", "bdl-4"} if version != "R5" else {"bdl-3a", "bdl-3b", "bdl-3c", "bdl-3d", "bdl-13"}
    expected |= {"bdl-14", "bdl-15", "bdl-16", "bdl-17", "bdl-18"} if version == "R5" else set()
    assert expected <= native
    assert model(FHIRPATH_MODEL_NAME[version]).choice_names  # member navigation knows the choice elements


def test_the_validator_reports_the_same_with_and_without_native_code(
    convert_outputs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = input_files(convert_outputs)
    terminology, rulesets = load_terminology(), load_rulesets()

    def issues() -> list[tuple[str, str, str, str, str]]:
        found: list[tuple[str, str, str, str, str]] = []
        for path in files:  # one file at a time, as the corpus is meant to be read
            [report] = Validator("R4", terminology, rulesets).validate([str(path)]).files
            found += [
                (report.name, x.expression, x.issue.severity, x.issue.message, x.issue.code)
                for x in report.issues
                if x.issue.layer == "invariant"
            ]
        return found

    fast = issues()
    monkeypatch.setattr(CompiledInvariant, "holds_natively", lambda self, node: None)
    assert fast == issues()
    assert any(m.startswith("ref-1") for _, _, _, m, _ in fast) and any(m.startswith("bdl-7") for _, _, _, m, _ in fast)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_invariant_compiles_though_compiled_only_when_first_evaluated(version: FhirVersion) -> None:
    """An expression fhirpathpy cannot compile is found here, not at the first resource that needs it."""
    spec = load_spec(version)
    rules = [
        rule
        for found in compiled(spec.version, FHIRPATH_MODEL_NAME[version], tuple(spec.invariants)).values()
        for rule in found
    ]
    assert len(rules) > 50
    for rule in rules:
        fn = rule.evaluate.compile()  # type: ignore[attr-defined]
        assert fn({"resourceType": "Basic"}, {"resource": {}, "rootResource": {}}) is not None, rule.invariant.key
