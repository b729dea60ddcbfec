"""Words a clinician reads: every sample through `classify` (text and JSON) and `convert`, checked for codes
left bare, resource ids broken across lines, internal drug ids and units written more than one way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from fhir_ns.catalogue import info
from fhir_ns.cli import cli
from fhir_ns.fhir.writer import V3_DISPLAY
from fhir_ns.terminology import load_terminology

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED: dict[str, dict[str, Any]] = {
    Path(case["file"]).name: case for case in orjson.loads((SAMPLES / "expected.json").read_bytes())
}
BUNDLES = sorted((SAMPLES / "bundles").glob("*.json"))
BARE_ACTCODE = re.compile(r"\b(" + "|".join(sorted(V3_DISPLAY, key=len, reverse=True)) + r")\b")
# a drug id people do not write ("mycophenolate-mofetil", "ace-inhibitor"), not inside a longer id
INTERNAL_DRUG_IDS = sorted(d.name for d in load_terminology().drugs.values() if d.display != d.name)
INTERNAL_DRUG = re.compile(r"(?<![\w/-])(" + "|".join(map(re.escape, INTERNAL_DRUG_IDS)) + r")(?![\w-])")
SHORT_UNIT = re.compile(r"\b(mg|g)(/m2|/kg)?/d\b")  # "mg/d", "mg/m2/d": the sentences write "mg/day", "mg/m2/day"
SENTENCE_KEYS = {"reason", "notes", "detail", "description", "text", "div", "title"}


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def as_of(path: Path) -> str:
    return str(EXPECTED[path.name]["as_of"]) if path.name in EXPECTED else "2025-01-01"


def sentences(value: Any, key: str = "") -> list[str]:
    """The strings a person reads in a JSON document (reasons, notes, narratives), not codes or references."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in sentences(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in sentences(v, key)]
    return [value] if isinstance(value, str) and key in SENTENCE_KEYS else []


def test_every_sample_is_checked() -> None:
    assert {p.name for p in BUNDLES} == set(EXPECTED) and INTERNAL_DRUG_IDS


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_text_view_spells_out_codes_and_never_breaks_an_id(path: Path) -> None:
    text = run("classify", str(path), "--as-of", as_of(path))
    [result] = orjson.loads(run("classify", str(path), "--as-of", as_of(path), "--format", "json"))
    bare = BARE_ACTCODE.findall(text)
    assert not bare, f"v3 ActCode(s) {bare} shown bare"
    for item in [*result["classifications"], *result["findings"]]:
        assert f"{info(item['code']).display} ({item['code']})" in text, f"{item['code']} without its name"
        for ref in item["evidence"]:
            assert ref in text, f"{ref} is broken across lines (or missing) in the text view"
    assert not INTERNAL_DRUG.findall(text)
    assert not SHORT_UNIT.findall(text)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_sentences_name_drugs_as_people_write_them_in_json_and_convert(path: Path, tmp_path: Path) -> None:
    [result] = orjson.loads(run("classify", str(path), "--as-of", as_of(path), "--format", "json"))
    out = tmp_path / "out.json"
    run("convert", str(path), "--as-of", as_of(path), "-o", str(out))
    written = sentences(result) + sentences(orjson.loads(out.read_bytes()))
    assert written
    for sentence in written:
        assert not INTERNAL_DRUG.findall(sentence), sentence
        assert not SHORT_UNIT.findall(sentence), sentence


def test_the_checks_catch_what_they_look_for() -> None:
    assert BARE_ACTCODE.findall("inadequate-steroid-trial [moderate, DOSELINDSA]") == ["DOSELINDSA"]
    assert INTERNAL_DRUG.findall("mycophenolate-mofetil 1000 mg/day") == ["mycophenolate-mofetil"]
    assert not INTERNAL_DRUG.findall("MedicationStatement/x-mycophenolate-mofetil-1")
    assert SHORT_UNIT.findall("standard 41 mg/d (60 mg/m2/d)") and not SHORT_UNIT.findall("1.6 g/dL, 41 mg/day")


def test_a_dose_compared_says_it_is_a_minimum_and_how_it_was_reached() -> None:
    [result] = orjson.loads(
        run("classify", str(SAMPLES / "bundles" / "mdr-srns.json"), "--as-of", "2022-08-08", "--format", "json")
    )
    mdr = next(c for c in result["classifications"] if c["code"] == "mdr-srns")
    assert "mycophenolate mofetil 1000 mg/day vs minimum 960 mg/m2/day x 0.87 m2 = 838 mg/day" in mdr["reason"]
    assert "cyclosporine mean 140 mg/day vs minimum 150 mg/m2/day x 0.85 m2 = 128 mg/day" in mdr["reason"]


def test_drugs_and_drug_classes_are_named_as_people_write_them() -> None:
    terminology = load_terminology()
    assert terminology.drug_name("ace-inhibitor") == "ACE inhibitor"
    assert terminology.drug_names(["cyclosporine", "mycophenolate-mofetil"]) == "cyclosporine and mycophenolate mofetil"
    assert terminology.class_name("anti-cd20") == "anti-CD20 antibody"
