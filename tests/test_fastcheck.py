"""The gate's cheap proof never calls an entry clean that layers 2-3 would fault, and proves most real entries clean.

Every resource of a type fhir-ns reads in the samples, the HL7 examples and the validation corpus, and thousands
of broken copies of them (made the same way on every run: elements dropped, values of the wrong JSON type, bad
dates, codes, ids and numbers, odd whitespace, unknown elements, two types of one choice element, empty and null
values, codes outside their required value sets, extensions without url, contained resources), are put to the
fast check and, where it says clean, to the layers themselves.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from fhir.resources.R4B import fhirtypes
from pydantic import TypeAdapter, ValidationError

import fhir_ns.validate.gate
from fhir_ns.fhir.problems import Location, Problem
from fhir_ns.fhir.reader import Entry
from fhir_ns.fhir.shapes import READ_TYPES, decode
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import EntryGate
from fhir_ns.validate.bindings import check_bindings
from fhir_ns.validate.elements import walk
from fhir_ns.validate.fastcheck import proves_clean
from fhir_ns.validate.issues import Issue
from fhir_ns.validate.spec import FhirVersion, load_spec
from fhir_ns.validate.structure import check_resource

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "tests" / "hl7-examples"
SOURCES = [
    *sorted((ROOT / "samples" / "bundles").glob("*.json")),
    *sorted((ROOT / "samples" / "cohort.ndjson").iterdir()),
    *sorted(EXAMPLES.glob("*.json")),
    *sorted(p for p in (ROOT / "tests" / "validation-corpus").rglob("*") if p.is_file()),
]
# how many broken copies of each resource, by version (R4 is read with the R4B models, so R4B gets fewer)
COPIES: dict[FhirVersion, int] = {"R4": 14, "R4B": 3, "R5": 6}

EXTENSION = {"url": "http://example.org/ext", "valueString": "x"}


def nested(extension: dict[str, Any], depth: int) -> dict[str, Any]:
    """An extension in an extension ... `depth` deep (fhir.resources gives up at about 120)."""
    for _ in range(depth):
        extension = {"url": "http://example.org/ext", "extension": [extension]}
    return extension


MEDICATION = {"resourceType": "Medication", "id": "med", "code": {"text": "prednisolone"}}
ODD_STRINGS = [
    *["", " ", "x", " x", "x ", "x  y", "x\ty", "\t", "\n", "x\ny", "a b", "-", ".", "a_b", "a" * 70],  # blank, spaced
    *["\u00a0", "x\u00a0", "\u2003", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u180e", "\u200b", "\u2028", "\u3000"],
    *["\ufeff", "é", "µmol/L", "bogus", "1.5", "true", "http://x", "urn:oid:1.2", "urn:oid:1.02"],
    *["urn:uuid:9d2a7a3e-1b1a-4c3e-9b6f-1f9a5e0c2b11", "aGVsbG8=", "aGVsbG8", "===="],
]
ODD_DATES = [
    *["2023", "2023-06", "2023-06-15", "2023-02-29", "2024-02-29", "2023-02-30", "2023-04-31", "2023-13-01"],
    *["2023-00-10", "0000", "0001-01-01", "2023-1-1", "23-01-01", "10:00:00", "25:00:00", "10:00:00.5", "10:00"],
    *["2023-06-15T10:00:00Z", "2023-06-15T10:00:00", "2023-06-15T10:00Z", "2023-06-15T24:00:00Z"],
    *["2023-06-15T23:59:60Z", "2023-06-15T10:00:00+15:00", "2023-06-15T10:00:00+14:00", "2023-06-15T10:00:00-00:00"],
    *["2023-06-15T10:00:00.123Z", "2023-06-15T10:00:00.1234567890Z", "2023-06-15t10:00:00z"],
    *["2023-06-15 10:00:00Z", "2023-06-15T10:00:00.Z"],
]
WRONG_TYPES: list[Any] = [None, True, 0, 1.5, "x", [], {}, ["x"], [{}], [None], {"x": 1}, {"extension": []}]
CHOICE_TYPES: dict[str, Any] = {"String": "x", "Boolean": True, "Integer": 1, "DateTime": "2020"}
CHOICE_TYPES |= {"Quantity": {"value": 1}, "CodeableConcept": {"text": "x"}, "Period": {"start": "2020"}}
ODD_MEMBERS: list[tuple[str, Any]] = [
    *[("bogus", 1), ("fhir_comments", "c"), ("resourceType", "Observation"), ("id", ""), ("id", "e1")],
    *[("extension", []), ("extension", [EXTENSION]), ("extension", [{"valueString": "x"}])],
    *[("extension", [{"url": "http://x"}]), ("extension", [{"url": "http://x", "valueCode": "a  b"}])],
    ("extension", [{"url": "http://x", "valueString": "a", "valueBoolean": True}]),
    *[("extension", [nested(EXTENSION, 3)]), ("extension", [nested(EXTENSION, 130)])],
    *[("modifierExtension", [EXTENSION]), ("contained", [MEDICATION]), ("contained", [{"id": "x"}])],
    *[("contained", [{**MEDICATION, "status": "bogus"}]), ("contained", [{**MEDICATION, "contained": [MEDICATION]}])],
    ("contained", [{"resourceType": "Substance", "id": "s", "code": {"text": "x"}}]),
]
ODD_NUMBERS: list[Any] = [0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 1.5, -0.5, 2**63, 1e300, True, "1"]
PRIMITIVE_EXTENSIONS: list[Any] = [{"extension": [EXTENSION]}, {}, {"id": "a"}, {"extension": []}, None, [None]]


def documents(path: Path) -> Iterator[Any]:
    data = path.read_bytes()
    try:
        yield orjson.loads(data)
    except orjson.JSONDecodeError:
        for line in data.splitlines():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def read_resources(value: Any) -> Iterator[dict[str, Any]]:
    """The resources of a type fhir-ns reads in a document, Bundle entries (of Bundles in Bundles) included."""
    if isinstance(value, list):
        for item in value:
            yield from read_resources(item)
    elif isinstance(value, dict):
        if value.get("resourceType") in READ_TYPES:
            yield value
        entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                yield from read_resources(entry.get("resource"))


CORPUS = [resource for path in SOURCES for document in documents(path) for resource in read_resources(document)]


def layers(resource: dict[str, Any], version: FhirVersion) -> list[Issue]:
    spec = load_spec(version)
    return check_resource(resource, version) + check_bindings(walk(resource, spec), spec)


def positions(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a JSON value, itself first."""
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positions(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from positions(item, (*at, index))


def follow(value: Any, at: tuple[Any, ...]) -> Any:
    for step in at:
        value = value[step]
    return value


Defect = tuple[tuple[Any, ...], str, Any]  # where, what (drop, set, add), with what


def defects(resource: dict[str, Any]) -> list[Defect]:
    """Every way this test breaks a resource once: each value dropped or replaced, each object given more."""
    out: list[Defect] = []
    for at in positions(resource):
        value = follow(resource, at)
        if at:
            out.append((at, "drop", None))
            out.extend((at, "set", odd) for odd in replacements(at[-1], value))
        if isinstance(value, dict):
            out.extend((at, "add", member) for member in members(value))
    return out


def replacements(key: Any, value: Any) -> list[Any]:
    """Values of the wrong JSON type, and odd values of the right one."""
    if isinstance(value, bool):
        same: list[Any] = [not value]
    elif isinstance(value, int | float):
        same = ODD_NUMBERS
    elif isinstance(value, str):
        same = ODD_DATES if value[:4].isdigit() or value[2:3] == ":" else ODD_STRINGS
        same = [*same, value + " ", value + "  x", "\u00a0" + value]
    elif isinstance(value, list):
        same = [[], [None], value[:1], value + value[:1], *([value[0]] if value else [])]
    else:
        same = [{}, [value]]
    if key in ("code", "status", "system", "intent", "gender", "use", "comparator", "periodUnit", "when"):
        same = [*same, "bogus", "final", "active", "completed", "order", "http://bogus", "mo", "d", "<="]
    return [*same, *WRONG_TYPES, EXTENSION, [EXTENSION]]


def members(value: dict[str, Any]) -> list[tuple[str, Any]]:
    """Elements to add to an object: unknown ones, extensions good and bad, a second type of a choice, `_x`."""
    out = list(ODD_MEMBERS)
    for key, item in value.items():
        stem = key[: next((i for i, c in enumerate(key) if c.isupper()), len(key))]  # valueQuantity -> value
        if stem != key:
            out.extend((f"{stem}{kind}", example) for kind, example in CHOICE_TYPES.items())
        if not isinstance(item, dict) and not (isinstance(item, list) and any(isinstance(i, dict) for i in item)):
            out.extend((f"_{key}", extension) for extension in PRIMITIVE_EXTENSIONS)
    return out


def apply(resource: dict[str, Any], defect: Defect) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(resource))
    at, what, odd = defect
    if what == "add":
        follow(copy, at)[odd[0]] = odd[1]
        return copy
    parent = follow(copy, at[:-1])
    if what == "drop":
        del parent[at[-1]]
    else:
        parent[at[-1]] = odd
    return copy


def text(resource: dict[str, Any], style: int) -> bytes:
    """The resource as JSON text in one of a few styles: compact, indented with non-ASCII escaped, a key twice."""
    try:
        raw = orjson.dumps(resource) if style % 4 else json.dumps(resource, indent=1).encode()
    except TypeError:  # nested deeper than orjson writes
        raw = json.dumps(resource).encode()
    if style % 23 == 0 and raw.endswith(b"}"):  # the last one counts, for the layers as for the fast check
        raw = raw[:-1].rstrip() + [b',"status":"bogus"}', b',"id":"x"}', b',"resourceType":"Patient"}'][style % 3]
    return raw


def assert_sound(resource: dict[str, Any], defect: Defect, version: FhirVersion, style: int) -> bool:
    """Does the fast check prove the broken copy clean? If it does, the layers must agree."""
    raw = text(apply(resource, defect), style)
    if not proves_clean(raw, resource["resourceType"], version):
        return False
    assert layers(orjson.loads(raw), version) == [], (defect, raw.decode())
    return True


@pytest.mark.parametrize("version", ["R4", "R4B", "R5"])
def test_no_broken_copy_of_a_resource_is_called_clean_when_the_layers_fault_it(version: FhirVersion) -> None:
    rng = random.Random(f"fastcheck-{version}")
    tried = proven = 0
    for resource in CORPUS:
        for defect in rng.sample(ways := defects(resource), min(COPIES[version], len(ways))):
            tried += 1
            proven += assert_sound(resource, defect, version, rng.randrange(1000))
    assert tried > 2000 and 0 < proven < tried


def test_no_broken_copy_of_an_hl7_example_is_called_clean_when_the_layers_fault_it() -> None:
    """A quarter of all the ways of breaking each example once: every element broken in a dozen ways on average."""
    rng = random.Random("fastcheck-examples")
    examples = [r for p in sorted(EXAMPLES.glob("*.json")) for r in read_resources(orjson.loads(p.read_bytes()))]
    tried = proven = 0
    for resource in examples:
        for style, defect in enumerate(rng.sample(ways := defects(resource), len(ways) // 4)):
            tried += 1
            proven += assert_sound(resource, defect, "R4", style)
    assert tried > 9000 and proven > 1000


def test_the_fast_check_proves_nearly_every_clean_sample_and_example_clean() -> None:
    clean = [r for r in CORPUS if not layers(r, "R4")]
    proven = [r for r in clean if proves_clean(orjson.dumps(r), r["resourceType"], "R4")]
    assert len(clean) > 800 and len(proven) >= 0.95 * len(clean)
    for resource in CORPUS:
        if proves_clean(orjson.dumps(resource), resource["resourceType"], "R4"):
            assert not layers(resource, "R4")


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xff", b'{"resourceType":"Patient","id":"\xff"}', b'{"resourceType":"Patient","id":"\\ud800"}', b"[]"]
    + [b"null", b'{"resourceType":"Patient"', b'{"resourceType":"Patient"}}', b'{"resourceType":"Patient",}'],
)
def test_text_that_is_not_json_of_one_resource_is_never_proven_clean(raw: bytes) -> None:
    assert not proves_clean(raw, "Patient", "R4")


def test_no_character_fhir_resources_takes_for_whitespace_slips_through_as_text() -> None:
    """pydantic-core's Rust regexes and Python's see whitespace differently: such characters are left to the layers."""
    string, code = TypeAdapter(fhirtypes.StringType), TypeAdapter(fhirtypes.CodeType)
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    for point in (p for p in range(0x10000) if not 0xD800 <= p <= 0xDFFF):  # the BMP; no whitespace is beyond
        char = chr(point)
        for value, adapter, resource in (
            (char, string, {**base, "valueString": char}),
            (f"{char}a", code, {**base, "code": {"coding": [{"code": f"{char}a"}]}}),
            (f"a{char}{char}b", code, {**base, "code": {"coding": [{"code": f"a{char}{char}b"}]}}),
        ):
            try:
                adapter.validate_python(value)
            except ValidationError:
                for raw in (orjson.dumps(resource), json.dumps(resource).encode()):
                    assert not proves_clean(raw, "Observation", "R4"), repr(value)


def test_dates_and_times_the_fast_check_takes_are_valid_to_fhir_resources() -> None:
    years = ["0000", "0001", "0999", "1000", "1600", "1900", "2000", "2023", "2024", "2100", "2999", "9999"]
    days = [f"-{m}{d}" for m in ("00", "01", "02", "04", "12", "13") for d in ("", "-00", "-01", "-28", "-29", "-30")]
    days += ["-01-31", "-04-31", "-12-31", "-12-32"]
    times = ["T00:00:00", "T23:59:59", "T24:00:00", "T12:60:00", "T12:00:60", "T12:00:00.1", "T12:00:00.123456789"]
    zones = ["", "Z", "+00:00", "-00:00", "+13:59", "+14:00", "+14:01", "-14:00", "+15:00", "+5:00"]
    values = [f"{y}{d}{s}" for y in years for d in ["", *days] for s in ("", "T10:00:00Z", "T10:00:00-05:00")]
    values += [f"2024-02-29{t}{z}" for t in times for z in zones] + [t[1:] + z for t in times for z in zones]
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    places = [
        ("DateTimeType", lambda v: {**base, "effectiveDateTime": v}),
        ("InstantType", lambda v: {**base, "issued": v}),
        ("DateType", lambda v: {"resourceType": "Patient", "birthDate": v}),
        ("TimeType", lambda v: {**base, "valueTime": v}),
    ]
    taken = 0
    for name, resource in places:
        adapter = TypeAdapter(getattr(fhirtypes, name))
        for value in values:
            made = resource(value)
            if proves_clean(orjson.dumps(made), made["resourceType"], "R4"):
                adapter.validate_python(value)
                taken += 1
    assert taken > 500


def test_the_gate_says_what_it_said_without_the_fast_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Of a dict, of a typed entry and of JSON text; the layers alone are what the gate ran before."""
    rng = random.Random("gate")
    gates = [EntryGate("R4"), EntryGate("R4", terminology=load_terminology()), EntryGate("R5")]
    where = Location("in.ndjson", None, 7)
    cases = []
    for resource in rng.sample(CORPUS, 200):
        broken = apply(resource, rng.choice(defects(resource)))
        raw = text(broken if rng.random() < 0.7 else resource, rng.randrange(1000))
        rtype = resource["resourceType"]
        try:  # as the typed reader reads it, if it can
            typed = [Entry(decode(raw), where, raw=raw)]
        except msgspec.ValidationError:
            typed = []
        for gate in gates:
            said = [outcome(gate.check_raw, raw, rtype, where), outcome(gate.check, Entry(orjson.loads(raw), where))]
            said += [outcome(check, *args) for e in typed for check, args in typed_calls(gate, e)]
            cases.append((gate, raw, said))
    monkeypatch.setattr(fhir_ns.validate.gate, "proves_clean", lambda *_: False)
    for gate, raw, said in cases:
        assert said == [outcome(gate.check, Entry(orjson.loads(raw), where))] * len(said), raw.decode()


def typed_calls(gate: EntryGate, entry: Entry) -> list[tuple[Callable[..., list[Problem]], tuple[Any, ...]]]:
    rtype = entry.resource.resource_type
    return [(gate.check, (entry,)), (gate.check_raw, (entry.raw, rtype, entry.location, entry.resource))]


def outcome(check: Callable[..., list[Problem]], *args: Any) -> list[Problem] | str:
    """What a check says, or the exception it raises (a coding whose system is a list makes the gate raise)."""
    try:
        return check(*args)
    except Exception as exc:
        return type(exc).__name__
