"""`fhir-ns explain`: one patient's answer and the timeline it rests on, as text and as a PNG/SVG picture.

The pictures are checked by what they say (the SVG's text and ids), never pixel by pixel.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fhir_ns.catalogue import info
from fhir_ns.cli import cli
from fhir_ns.errors import CONFIG, INPUT_SKIPPED, NO_INPUT, USAGE
from fhir_ns.pipeline import Config, explain_patient, run
from fhir_ns.plot import timeline_figure
from fhir_ns.text import render
from tests.test_cli import two_patients
from tests.test_fhir_input import bundle, obs, patient

SAMPLES = Path(__file__).parent.parent / "samples"
CASES = {case["file"]: case for case in orjson.loads((SAMPLES / "expected.json").read_bytes())}
MAPPINGS = Config.load()
SVG = "{http://www.w3.org/2000/svg}"
PLOTTED = ["cni-resistant", "frns", "sdns", "taper-order", "cni-level-out-of-range", "late-responder"]


def sample(name: str) -> tuple[str, str, str | None]:
    """(file, evaluation date, rule set) of a sample bundle, as samples/expected.json gives them."""
    case = CASES[f"bundles/{name}.json"]
    return str(SAMPLES / case["file"]), case["as_of"], case["ruleset"]


def patient_of(path: str) -> str:
    """The id of the one Patient in a sample bundle."""
    entries = orjson.loads(Path(path).read_bytes())["entry"]
    return next(e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient")


def explain(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["explain", *args])
    return result.exit_code, result.stdout, result.stderr


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# -- text ----------------------------------------------------------------------------------------------


def test_explain_names_the_category_the_rule_set_and_the_evidence_of_a_cni_resistant_child() -> None:
    path, as_of, ruleset = sample("cni-resistant")
    code, out, _ = explain(path, "--patient", patient_of(path), "--as-of", as_of)
    assert code == 0
    result = run([path], MAPPINGS, date.fromisoformat(as_of), ruleset).results[0]
    assert f"rule set {result.ruleset.ref}" in out
    for expected in CASES["bundles/cni-resistant.json"]["classifications"]:
        assert f"{info(expected).display} ({expected})" in out
    for c in result.classifications:
        for source in c.evidence:
            assert source in out
    # and the timeline it rests on: the first nephrotic reading, the drugs, the troughs against their band
    assert "Timeline (rule set" in out
    assert "onset: first nephrotic-range proteinuria" in out
    assert "cyclosporine: 150 mg/day" in out
    assert "cyclosporine trough 95 ng/mL (target 80-120 ng/mL)" in out


def test_explain_prints_exactly_what_classify_prints_for_the_patient_then_the_timeline() -> None:
    path, as_of, ruleset = sample("frns")
    _, out, _ = explain(path, "--patient", patient_of(path), "--as-of", as_of)
    result = run([path], MAPPINGS, date.fromisoformat(as_of), ruleset).results[0]
    summary = render(result, MAPPINGS.terminology)
    assert out.startswith(summary)
    timeline = out[len(summary) :]
    # Sofia relapsed twice: three episodes, each ending in complete remission
    assert len(re.findall(r"^      \d\. \S+  onset: ", timeline, re.M)) == 1
    assert len(re.findall(r"^      \d\. \S+  relapse: ", timeline, re.M)) == 2
    assert len(re.findall(r"^         \S+  complete remission: ", timeline, re.M)) == 3


def test_explain_accepts_a_patient_reference_and_a_named_rule_set() -> None:
    path, as_of, _ = sample("frns-ruleset-difference")
    code, out, _ = explain(
        path, "--patient", f"Patient/{patient_of(path)}", "--as-of", as_of, "--ruleset", "kdigo-2012-child"
    )
    assert code == 0
    assert "rule set kdigo-2012-child|" in out


# -- pictures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLOTTED)
def test_plot_writes_a_png_and_an_svg_whose_labels_match_the_result(name: str, tmp_path: Path) -> None:
    path, as_of, ruleset = sample(name)
    pid = patient_of(path)
    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    for target in (png, svg):
        code, _, err = explain(path, "--patient", pid, "--as-of", as_of, "--plot", str(target))
        assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1200 and height > 600

    timeline, result = explain_patient([path], MAPPINGS, pid, date.fromisoformat(as_of), ruleset)
    texts = svg_texts(svg.read_bytes())
    joined = "\n".join(texts)
    title = f"Patient {pid} | rule set {result.ruleset.id} version {result.ruleset.version} | as of {as_of}"
    assert title in joined
    # the rule set's thresholds, as labelled lines
    nephrotic = next(t for t in result.ruleset.nephrotic.upcr if t.unit == "mg/mmol")
    remission = next(t for t in result.ruleset.complete_remission.upcr if t.unit == "mg/mmol")
    assert f"nephrotic ≥ {nephrotic.value:g} mg/mmol" in texts
    assert f"remission ≤ {remission.value:g} mg/mmol" in texts
    assert f"hypoalbuminaemia < {result.ruleset.hypoalbuminaemia.value:g} g/L" in texts
    # one lane per drug class taken, each drug named in its legend
    for e in timeline.exposures:
        assert e.drug_class.replace("-", " ") in joined
        label = f"{timeline.terminology.drug_name(e.drug)}, mg/day"
        assert label in texts or e.single_administration
    # every classification and finding at its since-date, left to right in date order
    root = ET.fromstring(svg.read_bytes())
    marks = []
    for kind, items in (("classification", result.classifications), ("finding", result.findings)):
        for item in items:
            group = root.find(f".//{SVG}g[@id='{kind}-{item.code}-{item.since}']")
            assert group is not None, f"{kind} {item.code} since {item.since} is not marked"
            text = group.find(f"{SVG}text")
            assert text is not None and text.text == item.code
            anchored_right = "text-anchor: end" in (text.get("style") or "")
            marks.append((item.since, float(text.get("x", "0")), anchored_right))
    starts = [(day, x) for day, x, right in sorted(marks) if not right]
    assert [x for _, x in starts] == sorted(x for _, x in starts)


def test_cni_troughs_are_drawn_against_the_rule_sets_target_band(tmp_path: Path) -> None:
    path, as_of, _ = sample("cni-level-out-of-range")
    target = tmp_path / "tac.svg"
    explain(path, "--patient", patient_of(path), "--as-of", as_of, "--plot", str(target))
    texts = svg_texts(target.read_bytes())
    assert "tacrolimus target 5-10 ng/mL" in texts
    assert "trough out of range" in texts
    assert "cni-level-out-of-range" in texts  # the finding, marked at its date


def test_alternate_day_phases_and_iv_pulses_are_marked(tmp_path: Path) -> None:
    path, as_of, _ = sample("late-responder")
    target = tmp_path / "late.svg"
    explain(path, "--patient", patient_of(path), "--as-of", as_of, "--plot", str(target))
    texts = svg_texts(target.read_bytes())
    assert "alternate-day phase (mean per day)" in texts
    assert "methylprednisolone IV pulse" in texts
    assert any(t.startswith("3 x ") and t.endswith(" mg") for t in texts)  # three pulses in one week, one label


def test_a_patient_with_only_proteinuria_gets_every_panel_with_no_data_said(tmp_path: Path) -> None:
    doc = bundle(
        patient("p1", born="2018-02-01"),
        obs("u1", "34366-5", 600, "mg/mmol", when="2023-01-02"),
        obs("u2", "34366-5", 450, "mg/mmol", when="2023-01-20"),
    )
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(doc))
    target = tmp_path / "p1.svg"
    code, _, err = explain(str(source), "--patient", "p1", "--as-of", "2023-02-01", "--plot", str(target))
    assert code == 0, err
    texts = svg_texts(target.read_bytes())
    for missing in ("no serum albumin data", "no dipstick data", "no creatinine or eGFR data", "no drug on record"):
        assert missing in texts


def test_a_patient_no_rule_set_can_be_chosen_for_is_drawn_and_the_title_says_so(tmp_path: Path) -> None:
    unborn = {"resourceType": "Patient", "id": "p1", "gender": "male"}  # no birth date: age at onset unknown
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(bundle(unborn, obs("u1", "34366-5", 600, "mg/mmol", when="2023-01-02"))))
    timeline, result = explain_patient([str(source)], MAPPINGS, "p1", date(2023, 2, 1))
    assert not result.ruleset_applied
    texts = svg_texts(timeline_figure(timeline, result))
    title = next(t for t in texts if t.startswith("Patient p1"))
    assert f"no rule set could be chosen (thresholds of the rule set {result.ruleset.id} version" in title
    assert "insufficient-data" in texts


def test_an_evaluation_date_before_any_data_draws_an_empty_timeline_and_says_so(tmp_path: Path) -> None:
    path, _, _ = sample("ssns")
    target = tmp_path / "early.png"
    code, _, err = explain(path, "--patient", patient_of(path), "--as-of", "2020-01-01", "--plot", str(target))
    assert code == 0
    assert "before the first data on record" in err
    timeline, result = explain_patient([path], MAPPINGS, patient_of(path), date(2020, 1, 1))
    texts = svg_texts(timeline_figure(timeline, result))
    assert "no UPCR data" in texts and "no drug on record" in texts


# -- errors --------------------------------------------------------------------------------------------


def test_a_patient_not_in_the_input_is_a_clean_error_with_the_no_input_code() -> None:
    path, as_of, _ = sample("frns")
    code, _, err = explain(path, "--patient", "nobody", "--as-of", as_of)
    assert code == NO_INPUT
    assert "no data for patient nobody" in err and "Traceback" not in err


def test_a_figure_file_that_is_not_png_or_svg_is_a_usage_error(tmp_path: Path) -> None:
    path, as_of, _ = sample("frns")
    code, _, err = explain(path, "--patient", patient_of(path), "--as-of", as_of, "--plot", str(tmp_path / "x.pdf"))
    assert code == USAGE
    assert ".png or .svg" in err
    assert not (tmp_path / "x.pdf").exists()


def test_an_unknown_rule_set_is_a_configuration_error() -> None:
    path, as_of, _ = sample("frns")
    code, _, err = explain(path, "--patient", patient_of(path), "--as-of", as_of, "--ruleset", "nope")
    assert code == CONFIG
    assert "unknown rule set 'nope'" in err


def test_a_patient_whose_input_has_errors_is_refused_as_classify_refuses_it(tmp_path: Path) -> None:
    source = two_patients(tmp_path, broken=True)
    code, out, err = explain(str(source), "--patient", "bad", "--as-of", "2023-03-01")
    assert code == INPUT_SKIPPED
    assert out == ""
    assert "patient bad is refused because of errors in its input" in err


def test_the_figure_function_refuses_a_format_it_cannot_write() -> None:
    path, as_of, ruleset = sample("ssns")
    timeline, result = explain_patient([path], MAPPINGS, patient_of(path), date.fromisoformat(as_of), ruleset)
    with pytest.raises(ValueError, match="png, svg"):
        timeline_figure(timeline, result, fmt="pdf")
