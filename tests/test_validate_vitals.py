"""`validate` on blood pressure panels, glucose and HbA1c: reported like every Observation fhir-ns reads."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson

from fhir_ns.ruleset import load_rulesets
from fhir_ns.terminology import load_terminology
from fhir_ns.validate import Validator
from tests.test_fhir_input import bundle, obs, patient
from tests.test_vitals_input import bp_panel, component


def issues(*resources: dict[str, Any]) -> list[tuple[str, str, str]]:
    fd, name = tempfile.mkstemp(suffix=".json")
    with open(fd, "wb") as fh:
        fh.write(orjson.dumps(bundle(patient(), *resources)))
    [report] = Validator("R4", load_terminology(), load_rulesets()).validate([name]).files  # type: ignore[arg-type]
    Path(name).unlink()
    return [(x.issue.severity, x.expression or "", x.issue.message) for x in report.issues]


def test_a_valid_panel_and_glucose_values_have_no_error_or_warning() -> None:
    found = issues(bp_panel("bp1", 120, 70), obs("g", "1558-6", 5.1, "mmol/L"), obs("a", "4548-4", 5.4, "%"))
    assert [f for f in found if f[0] in ("error", "warning")] == []


def test_a_panel_component_in_an_unknown_unit_is_an_error() -> None:
    found = issues(bp_panel("bp1", 120, 70, unit="kPa"))
    errors = [f for f in found if f[0] == "error"]
    assert errors and "'kPa' is not accepted for systolic blood pressure" in errors[0][2]


def test_glucose_in_an_unknown_unit_is_an_error() -> None:
    errors = [f for f in issues(obs("g", "2345-7", 7, "g/L")) if f[0] == "error"]
    assert errors and "not accepted for plasma glucose" in errors[0][2]


def test_an_unknown_component_code_is_information() -> None:
    panel = bp_panel("bp1", 120, 70)
    panel["component"].append(component("8478-0", 90))
    found = issues(panel)
    assert any(f[0] == "information" and "LOINC 8478-0" in f[2] and "component[2]" in f[1] for f in found), found
