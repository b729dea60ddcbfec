"""The fast path reads, decides and writes exactly what the plain path does.

Typed decoding (msgspec shapes) against dict reading, --jobs against one process, facts spilled to
SQLite against facts in memory, and output written as it is produced against output built whole.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fhir_ns.cli import cli
from fhir_ns.cli.classify import json_element
from fhir_ns.fhir import reader
from fhir_ns.fhir.extract import FactCollector
from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import read_entries, whole_files
from fhir_ns.fhir.store import SpillLimit
from fhir_ns.fhir.writer import Settings, entries_json, transaction, transaction_json
from fhir_ns.output import json_array
from fhir_ns.pipeline import Config, run
from fhir_ns.terminology import load_terminology
from tests.test_cli import prednisolone
from tests.test_fhir_input import RXNORM, UCUM, bundle, obs, patient

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AS_OF = "2023-12-31"


def odd_resources() -> list[dict[str, Any]]:
    """Resources in every shape the reader has to cope with: valid, malformed and in between."""
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
            {"timing": {"repeat": {"boundsDuration": {"value": 6, "code": "wk"}, "frequency": 2, "period": 1}}},
            "not a dosage",
            {
                "doseAndRate": [{"doseQuantity": {"value": 20, "unit": "mg"}}],
                "timing": {"code": {"coding": [{"code": "BID"}]}},
            },
        ],
    }
    contained = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "completed",
        "subject": {"reference": "urn:uuid:patient-2"},
        "contained": [{"resourceType": "Medication", "id": "c", "code": {"text": "ciclosporin 100 mg/ml"}}, 5],
        "medicationReference": {"reference": "#c"},
        "effectivePeriod": {"start": "2023-02-01"},
        "dosage": [
            {"doseAndRate": [{"doseRange": {"low": {"value": 70, "code": "mg"}, "high": {"value": 80, "code": "mg"}}}]}
        ],
    }
    return [
        patient("p1"),
        {"resourceType": "Patient", "id": "p2", "birthDate": "2015", "gender": ["odd"]},
        {"resourceType": "Patient", "id": "p1", "birthDate": "2016-05-01"},
        {"resourceType": "Patient", "birthDate": "2016-05-01"},
        obs("o1", "2890-2", 3, "mg/mg", meta={"lastUpdated": "2023-01-02T10:00:00Z"}),
        obs("o1", "2890-2", 0.1, "mg/mg", meta={"lastUpdated": "2023-01-03T10:00:00Z"}),
        obs("o1", "2890-2", 0.1, "mg/mg", meta={"lastUpdated": "2023-01-03T10:00:00Z"}),
        obs("o2", "2890-2", "many", "mg/mg"),
        obs("o3", "1751-7", 2.0, "mg/mg"),
        obs(
            "o4",
            "20454-5",
            None,
            valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "167277001"}, 7]},
        ),
        obs("o5", "20454-5", "lots"),
        obs("o6", "2890-2", 3, "mg/mg", when="2023-01"),
        obs("o7", "2890-2", None, dataAbsentReason={"text": "lost"}),
        obs("o8", "2890-2", None, valueBoolean=True),
        {**obs("o9", "2890-2", 3, "mg/mg"), "code": "not an object"},
        obs("o10", "2890-2", 3, "mg/mg", subject="Patient/p9"),
        obs("o11", "2890-2", 3, "mg/mg", subject="https://ehr.example/fhir/Patient/p1/_history/2"),
        obs("o12", "2890-2", 3, "mg/mg", when=None, effectivePeriod={"end": "2023-01-02"}),
        {**obs("o13", "2890-2", 3, "mg/mg"), "subject": "Patient/p1"},
        {**obs("o14", "29463-7", 20, "kg"), "status": ["final"]},
        obs("o15", "2890-2", 3, "mg/mg", subject="urn:uuid:patient-2"),
        {k: v for k, v in obs("", "2890-2", 3, "mg/mg").items() if k != "id"},
        {"resourceType": "Encounter", "id": "e1"},
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "52254009"}]},
            "onsetPeriod": {"start": "2023-01-01"},
            "abatementPeriod": "soon",
        },
        request,
        med,
        contained,
        prednisolone("p1", "2023-01-02", "2023-02-12", 60),
    ]


def collected(collector: FactCollector, problems: list[Problem]) -> tuple[Any, ...]:
    patients = collector.patients()
    return (
        [(p.facts, [str(x) for x in p.problems]) for p in patients],
        [str(p) for p in problems],
        collector.counts,
    )


@pytest.mark.parametrize("name", ["in.json", "in.ndjson"])
def test_typed_reading_finds_the_same_facts_and_problems_as_dict_reading(tmp_path: Path, name: str) -> None:
    resources = odd_resources()
    full_urls = [f"https://ehr.example/fhir/{r['resourceType']}/{r.get('id', i)}" for i, r in enumerate(resources)]
    full_urls[1] = "urn:uuid:patient-2"
    path = tmp_path / name
    if name.endswith(".ndjson"):
        lines = [orjson.dumps(r) for r in resources]
        lines[3:3] = [b"{not json", b"   ", orjson.dumps(bundle(patient("p3")))]
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        path.write_bytes(orjson.dumps(bundle(*resources, bundle(patient("p4")), full_urls=[*full_urls, "urn:x"])))
    terminology = load_terminology()
    plain: list[Problem] = []
    by_dict = FactCollector(terminology, plain)
    by_dict.add_all(read_entries([str(path)], plain))
    typed: list[Problem] = []
    by_shape = FactCollector(terminology, typed)
    by_shape.read(whole_files([str(path)]))
    assert collected(by_shape, typed) == collected(by_dict, plain)
    assert any("identical copy" in p for p in collected(by_dict, plain)[0][0][1])  # the cases are exercised


def split_cohort(tmp_path: Path) -> Path:
    """A bulk export whose Observation file is read in several pieces, with faults in the later ones."""
    directory = tmp_path / "export"
    directory.mkdir()
    cohort = SAMPLES / "cohort.ndjson"
    for path in cohort.glob("*.ndjson"):
        data = path.read_bytes()
        if path.name == "Observation.ndjson":
            lines = data.splitlines()
            again = orjson.loads(lines[3])
            again["meta"] = {"lastUpdated": "2030-01-01T00:00:00Z"}
            lines += [
                b"{broken",
                orjson.dumps(again),
                lines[5],
                orjson.dumps(obs("lost", "2890-2", 3, "mg/mg", subject="Patient/nobody")),
            ]
            data = b"\n".join(lines) + b"\n"
        (directory / path.name).write_bytes(data)
    return directory


def invoke(args: list[str]) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_jobs_and_spill_print_the_same_as_one_process_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setattr(reader, "UNIT_BYTES", 4096)  # the Observation file in ~20 pieces
    export = split_cohort(tmp_path)
    base = ["classify", str(export), str(SAMPLES / "bundles"), "--as-of", AS_OF, "--format", fmt, "-v"]
    one = invoke([*base, "--spill-above", "off"])
    assert (
        one[0] == 1
        and "Observation.ndjson line 148: malformed JSON" in one[2]
        and "two versions: kept the one at" in one[2]
    )  # faults seen, lines counted
    assert invoke([*base, "--jobs", "2", "--spill-above", "off"]) == one
    assert invoke([*base, "--spill-above", "0"]) == one
    assert invoke([*base, "--jobs", "3", "--spill-above", "0"]) == one


def test_jobs_number_a_file_named_twice_from_its_start_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its second reading's copies are named by their own lines, not by lines after the end of the first."""
    monkeypatch.setattr(reader, "UNIT_BYTES", 4096)
    observations = split_cohort(tmp_path) / "Observation.ndjson"
    assert len(reader.split_units([str(observations)], 4096)) > 5
    base = ["classify", str(observations), str(observations), "--as-of", AS_OF, "-v"]
    one = invoke(base)
    assert f"identical copy at {observations} line 1 ignored" in one[2]
    assert invoke([*base, "--jobs", "2"]) == one


def test_convert_with_jobs_and_spill_writes_the_same_bundle(tmp_path: Path) -> None:
    outputs = []
    for extra in ([], ["--jobs", "2", "--spill-above", "0"]):
        out = tmp_path / f"out{len(outputs)}.json"
        code, _, _ = invoke(["convert", str(SAMPLES / "cohort.ndjson"), "--as-of", AS_OF, "-o", str(out), *extra])
        assert code == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_facts_over_the_limit_are_kept_on_disk_and_removed_after() -> None:
    inputs = whole_files([str(SAMPLES / "cohort.ndjson"), str(SAMPLES / "bundles")])
    in_memory = FactCollector(load_terminology(), [])
    in_memory.read(inputs)
    on_disk = FactCollector(load_terminology(), [], SpillLimit(patients=0))
    on_disk.read(inputs)
    cohort = on_disk.prepare()
    spill = on_disk.store.spill
    assert spill is not None and spill.path.exists()
    patients = [on_disk.assemble(pid, refs, cohort.settled) for pid, refs in cohort.patients]
    on_disk.store.close()
    assert not spill.path.exists()
    assert [(p.facts, p.problems) for p in patients] == [(p.facts, p.problems) for p in in_memory.patients()]


def test_streamed_output_is_byte_identical_to_output_built_whole() -> None:
    outcome = run([str(SAMPLES / "bundles")], Config.load(), date(2024, 6, 30))
    settings = Settings("https://nephro.example.net/fhir")
    whole = orjson.dumps(transaction(outcome.results, settings), option=orjson.OPT_INDENT_2)
    pieces = transaction_json((entries_json(r, settings) for r in outcome.results), settings)
    assert b"".join(pieces) == whole
    printed = orjson.dumps([r.as_json() for r in outcome.results], option=orjson.OPT_INDENT_2)
    assert b"".join(json_array(json_element(r) for r in outcome.results)) == printed
    assert b"".join(json_array([])) == orjson.dumps([], option=orjson.OPT_INDENT_2)
    assert b"".join(transaction_json([], settings)) == orjson.dumps(
        transaction([], settings), option=orjson.OPT_INDENT_2
    )


@pytest.mark.parametrize(
    ("text", "limit"),
    [("5000", SpillLimit(patients=5000)), ("200MB", SpillLimit(megabytes=200)), ("1gb", SpillLimit(megabytes=1024))],
)
def test_spill_limit_is_patients_or_a_size(text: str, limit: SpillLimit) -> None:
    assert SpillLimit.parse(text) == limit


def observation_variants() -> list[dict[str, Any]]:
    """Observations around the edges of the collector's usual-Observation lane: each either taken by it or
    left to the general reader, and either way filed as the general reader files it."""
    snomed = "http://snomed.info/sct"
    base = obs("v", "2890-2", 30, "mg/mmol", meta={"lastUpdated": "2023-01-02T10:00:00Z"})
    quantity = base["valueQuantity"]
    variants: list[dict[str, Any]] = [
        base,
        {**base, "status": "entered-in-error"},
        {**base, "status": None},
        {**base, "status": 7},
        {**base, "meta": "soon"},
        {**base, "meta": {"lastUpdated": 5}},
        {**base, "id": ""},
        {**base, "id": 12},
        {**base, "subject": {"reference": ["Patient/p1"]}},
        {**base, "subject": {"reference": "Patient/p2"}},
        {**base, "effectiveDateTime": "2023-02-30"},
        {**base, "effectiveDateTime": 20230102},
        {**base, "effectiveDateTime": "2031-07-04T10:00:00Z"},
        {**base, "code": {"coding": []}},
        {**base, "code": {"coding": [{"system": "http://loinc.org", "code": "0000-0"}, base["code"]["coding"][0]]}},
        {**base, "code": {"coding": [{"system": ["x"], "code": "2890-2"}]}},
        {**base, "code": {"coding": ["2890-2"]}},
        {**base, "valueQuantity": {**quantity, "value": True}},
        {**base, "valueQuantity": {**quantity, "value": "30"}},
        {**base, "valueQuantity": {**quantity, "value": 1e300}},
        {**base, "valueQuantity": {**quantity, "value": -1}},
        {**base, "valueQuantity": {**quantity, "code": "mg/g", "unit": "mg/g"}},
        {**base, "valueQuantity": {**quantity, "code": "mg/mg", "unit": "mg/mg"}},
        {**base, "valueQuantity": {**quantity, "code": "furlongs", "unit": "furlongs"}},
        {**base, "valueQuantity": {**quantity, "code": None}},
        {**base, "valueQuantity": {**quantity, "code": ["mg/mmol"]}},
        {**base, "valueQuantity": {**quantity, "system": "http://example.org/units"}},
        {**base, "valueQuantity": {"value": 30, "unit": "mg / mmol"}},
        {**base, "valueQuantity": "30 mg/mmol"},
        obs("w", "29463-7", 20, "kg"),
        obs("w2", "29463-7", 900, "kg"),
        obs("h", "8302-2", 120, "cm"),
        obs("a", "1751-7", 25, "g/L"),
        obs("a2", "1751-7", 2.5, "g/dL"),
    ]
    dipstick = obs("d", "20454-5", None, valueCodeableConcept={"coding": [{"system": snomed, "code": "167277001"}]})
    answer = dipstick["valueCodeableConcept"]
    variants += [
        dipstick,
        {**dipstick, "valueCodeableConcept": {"coding": [{"system": snomed, "code": "0"}, *answer["coding"]]}},
        {**dipstick, "valueCodeableConcept": {"coding": [], "text": "2+"}},
        {**dipstick, "valueCodeableConcept": {"coding": [{"system": snomed, "code": "0"}], "text": "2+"}},
        {**dipstick, "valueQuantity": {"value": 100, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}},
        {**dipstick, "valueQuantity": {"value": "x", "code": "mg/dL"}, "valueString": "3+"},
        {**dipstick, "valueCodeableConcept": "++"},
    ]
    # each its own resource (ids made unique where there is one to extend)
    return [{**v, "id": f"{v['id']}{n}"} if isinstance(v["id"], str) and v["id"] else v for n, v in enumerate(variants)]


def test_the_usual_observation_lane_files_what_the_general_reader_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = [patient("p1"), patient("p2"), *observation_variants()]
    resources += resources[2:]  # every one read again: duplicates settled the same way
    path = tmp_path / "in.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")
    terminology = load_terminology()

    def read(lane: bool) -> tuple[FactCollector, list[Problem]]:
        problems: list[Problem] = []
        collector = FactCollector(terminology, problems)
        if not lane:
            monkeypatch.setattr(collector, "_usual_observation", lambda *args: False)
        collector.read(whole_files([str(path)]))
        return collector, problems

    taken = []
    original = FactCollector._usual_observation

    def counting(self: FactCollector, *args: Any) -> bool:
        taken.append(original(self, *args))
        return taken[-1]

    monkeypatch.setattr(FactCollector, "_usual_observation", counting)
    with_lane, problems = read(True)
    monkeypatch.undo()
    without, plain = read(False)
    assert 10 <= sum(taken) < len(taken)  # the lane takes the usual ones and leaves the others
    exported = with_lane.export(0, 0), without.export(0, 0)
    assert exported[0].records == exported[1].records  # the same records, byte for byte
    assert exported[0].counts == exported[1].counts
    assert [str(p) for p in problems] == [str(p) for p in plain]
    by_dict: list[Problem] = []
    dict_reader = FactCollector(terminology, by_dict)
    dict_reader.add_all(read_entries([str(path)], by_dict))
    again, again_problems = read(True)
    assert collected(again, again_problems) == collected(dict_reader, by_dict)


def crossing_export(tmp_path: Path) -> list[str]:
    """Two INPUT arguments whose NDJSON files are read in many pieces, with everything a merge of pieces
    has to get right lying in different pieces: versions and identical copies of a resource, a version
    naming another patient, a patient known by an alias (a Bundle's fullUrl), Medications referenced
    (found, refused, missing) from other files, unreadable records naming their patient or none."""
    pred = {"system": RXNORM, "code": "8638"}
    export, other = tmp_path / "export", tmp_path / "other"
    export.mkdir()
    other.mkdir()
    patients = [f"x{n:02d}" for n in range(12)]
    observations: list[Any] = []
    for n, pid in enumerate(patients):
        subject = f"Patient/{pid}"
        observations += [
            obs(f"{pid}-w", "29463-7", 20 + n, "kg", subject=subject, when="2023-01-01"),
            obs(f"{pid}-h", "8302-2", 115, "cm", subject=subject, when="2023-01-01"),
            obs(f"{pid}-u0", "2890-2", 6, "mg/mg", subject=subject, when="2023-01-02"),
            obs(f"{pid}-u10", "2890-2", 0.1, "mg/mg", subject=subject, when="2023-01-12"),
        ]
    again = {
        **observations[2],
        "meta": {"lastUpdated": "2030-01-01T00:00:00Z"},
        "valueQuantity": observations[3]["valueQuantity"],
    }
    elsewhere = {
        **observations[6],
        "subject": {"reference": "Patient/x05"},
        "meta": {"lastUpdated": "2031-01-01T00:00:00Z"},
    }
    by_alias = obs("alias-u0", "2890-2", 6, "mg/mg", subject="urn:uuid:patient-b", when="2023-01-02")
    by_history = obs("hist-u0", "2890-2", 5, "mg/mg", subject="https://ehr.example/fhir/Patient/x07/_history/3")
    names_x09 = {**obs("x09-lost", "2890-2", 3, "mg/mg", subject="Patient/x09"), "resourceType": "Observaton"}
    lines = [orjson.dumps(r) for r in [*observations, again, observations[10], elsewhere, by_alias, by_history]]
    lines.insert(30, orjson.dumps(names_x09))
    (export / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    (export / "Patient.ndjson").write_bytes(b"\n".join(orjson.dumps(patient(pid)) for pid in patients) + b"\n")
    medications = [
        {"resourceType": "Medication", "id": "pred", "code": {"coding": [pred]}},
        {"resourceType": "Medication", "id": "odd", "code": {"coding": [pred]}, "status": 7},
    ]
    (export / "Medication.ndjson").write_bytes(b"\n".join(orjson.dumps(m) for m in medications) + b"\n")
    requests = []
    for n, pid in enumerate(patients):
        medication = ["Medication/pred", "Medication/odd", "Medication/gone"][n % 3]
        request = prednisolone(pid, "2023-01-02", "2023-02-12", 48)
        del request["medicationCodeableConcept"]
        requests.append({**request, "id": f"{pid}-rx", "medicationReference": {"reference": medication}})
    (export / "MedicationRequest.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in requests) + b"\n")
    late = obs("b-u10", "2890-2", 0.1, "mg/mg", subject="urn:uuid:patient-b", when="2023-01-12")
    versions = [late, {**late, "meta": {"lastUpdated": "2030-01-01T00:00:00Z"}}]  # in one piece
    full_urls = ["urn:uuid:patient-b", "urn:uuid:o-b", "urn:uuid:o-b10", "urn:uuid:o-b10"]
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle(patient("b"), by_alias, *versions, full_urls=full_urls)))
    condition = {
        "resourceType": "Condition",
        "id": "y1-c",
        "subject": {"reference": "Patient/y1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "52254009"}]},
        "onsetDateTime": "2023-01-02",
    }
    other_lines = [orjson.dumps(patient("y1")), orjson.dumps(condition), b"[1, 2]", orjson.dumps(patient("y2"))]
    (other / "Other.ndjson").write_bytes(b"\n".join(other_lines) + b"\n")
    return [str(export), str(other), str(tmp_path / "b.json")]


@pytest.mark.parametrize("extra", [[], ["--skip-unreadable"]])
def test_jobs_merge_what_lies_in_different_pieces_as_one_process_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    monkeypatch.setattr(reader, "UNIT_BYTES", 600)  # every NDJSON file in pieces of a few lines
    inputs = crossing_export(tmp_path)
    outcome = tmp_path / "outcome.json"
    base = ["classify", *inputs, "--as-of", AS_OF, "-v", "--outcome", str(outcome), *extra]
    results = {}
    for fmt in ("json", "text"):
        one = invoke([*base, "--format", fmt, "--spill-above", "off"])
        results[fmt] = one, outcome.read_bytes()
        for options in (["--jobs", "2", "--spill-above", "off"], ["--jobs", "3", "--spill-above", "0"]):
            assert invoke([*base, "--format", fmt, *options]) == one, options
            assert outcome.read_bytes() == results[fmt][1], options
    code, printed, said = results["text"][0]
    assert code == 1
    for words in (  # each case is exercised
        "identical copy at",
        "two versions: kept the one at",
        "Medication/gone is not in the input",
        "did you mean Observation?",
        "not evaluated: 1 unreadable record(s) in" if not extra else "",
    ):
        assert words in said, words
    assert len(reader.split_units(inputs, 600)) > 10
    # convert's validation gate refuses a Medication: the drug exposures of other pieces naming it follow
    written = []
    for options in (["--spill-above", "off"], ["--jobs", "2", "--spill-above", "0"]):
        out = tmp_path / f"out{len(written)}.json"
        said = invoke(["convert", *inputs, "--as-of", AS_OF, "-o", str(out), *extra, *options])
        written.append((said, out.read_bytes()))
    assert written[0] == written[1]
    assert "Medication/odd was refused" in written[0][0][2]
