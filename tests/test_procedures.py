"""Procedure resources (RULES.md §9, §10): plasma exchange is a therapy period, dialysis and kidney
transplant mark kidney failure; codes from SNOMED CT, names when no code is known."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_ns.fhir.problems import Problem
from fhir_ns.fhir.reader import read_entries
from fhir_ns.terminology import load_terminology
from fhir_ns.timeline.model import ProcedureFact
from tests.chart import Chart, day
from tests.test_fhir_input import bundle, one_patient, patient

SCT = "http://snomed.info/sct"


def procedure(pid: str, code: dict[str, Any], status: str = "completed", **when: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "code": code,
        "subject": {"reference": "Patient/p1"},
    }
    res.update(when or {"performedDateTime": "2023-03-01T10:00:00Z"})
    return res


def test_a_haemodialysis_session_by_snomed_code_is_read_with_its_day(tmp_path: Path) -> None:
    p = one_patient(tmp_path, procedure("d1", {"coding": [{"system": SCT, "code": "302497006"}]}))
    assert p.facts.procedures == [ProcedureFact("dialysis", date(2023, 3, 1), date(2023, 3, 1), "Procedure/d1")]


def test_a_kidney_transplant_is_read(tmp_path: Path) -> None:
    p = one_patient(tmp_path, procedure("t1", {"coding": [{"system": SCT, "code": "70536003"}]}))
    [t] = p.facts.procedures
    assert (t.concept, t.start) == ("kidney-transplant", date(2023, 3, 1))


def test_plasma_exchange_by_name_is_read_over_its_period_and_reported_as_information(tmp_path: Path) -> None:
    course = procedure(
        "x1",
        {"text": "Therapeutic plasma exchange (TPE) x5"},
        performedPeriod={"start": "2023-03-01", "end": "2023-03-10"},
    )
    p = one_patient(tmp_path, course)
    assert p.facts.procedures == [
        ProcedureFact("plasma-exchange", date(2023, 3, 1), date(2023, 3, 10), "Procedure/x1", True)
    ]
    [note] = [x for x in p.problems if x.code == "code-unknown"]
    assert note.severity == "information" and "plasma exchange by its name" in note.message


def test_an_ongoing_dialysis_programme_has_no_end(tmp_path: Path) -> None:
    ongoing = procedure(
        "d1", {"text": "Peritoneal dialysis"}, status="in-progress", performedPeriod={"start": "2023-03-01"}
    )
    [d] = one_patient(tmp_path, ongoing).facts.procedures
    assert d.end is None


def test_r5_occurrence_is_read(tmp_path: Path) -> None:
    r5 = procedure("d1", {"coding": [{"system": SCT, "code": "108241001"}]}, occurrenceDateTime="2023-04-02")
    [d] = one_patient(tmp_path, r5).facts.procedures
    assert d.start == date(2023, 4, 2)


@pytest.mark.parametrize("status", ["not-done", "entered-in-error", "preparation"])
def test_procedures_not_done_are_not_read(tmp_path: Path, status: str) -> None:
    p = one_patient(tmp_path, procedure("d1", {"coding": [{"system": SCT, "code": "302497006"}]}, status=status))
    assert p.facts.procedures == []


def test_other_procedures_are_ignored_without_a_word(tmp_path: Path) -> None:
    p = one_patient(
        tmp_path, procedure("a1", {"coding": [{"system": SCT, "code": "80146002"}], "text": "Appendectomy"})
    )
    assert p.facts.procedures == [] and p.problems == []


def test_a_procedure_without_a_date_refuses_its_patient(tmp_path: Path) -> None:
    undated = procedure("d1", {"coding": [{"system": SCT, "code": "302497006"}]})
    del undated["performedDateTime"]
    p = one_patient(tmp_path, undated)
    assert p.refused and any("no date" in x.message for x in p.problems)


def test_a_site_adds_a_procedure_code(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "local.yaml").write_text(
        "procedures:\n  - {system: 'urn:local:px', code: 'PEX', concept: plasma-exchange}\n"
    )
    p = one_patient(
        tmp_path,
        procedure("x1", {"coding": [{"system": "urn:local:px", "code": "PEX"}]}),
        terminology=load_terminology((site,)),
    )
    [x] = p.facts.procedures
    assert (x.concept, x.matched_by_name) == ("plasma-exchange", False)


def test_the_timeline_shows_procedures_therapy_periods_and_kidney_failure() -> None:
    chart = Chart()
    chart.facts.procedures += [
        ProcedureFact("plasma-exchange", day(10), day(20), "Procedure/x1"),
        ProcedureFact("dialysis", day(100), None, "Procedure/d1"),
        ProcedureFact("kidney-transplant", day(400), day(400), "Procedure/t1"),
    ]
    tl = chart.timeline(200)
    assert [p.source for p in tl.procedures("plasma-exchange")] == ["Procedure/x1"]
    assert [p.source for p in tl.therapy_procedures()] == ["Procedure/x1"]
    assert tl.kidney_failure_procedure().source == "Procedure/d1"
    assert tl.procedures("kidney-transplant") == []  # after the evaluation date
    assert chart.timeline(50).kidney_failure_procedure() is None


# -- validate learns the Procedure resource ---------------------------------------------------------------


def test_the_entry_gate_checks_a_dialysis_procedure_and_leaves_an_unrelated_one_alone() -> None:
    from fhir_ns.fhir.problems import Location
    from fhir_ns.fhir.reader import Entry
    from fhir_ns.validate import EntryGate

    gate = EntryGate("R4", terminology=load_terminology())
    dialysis = procedure("d1", {"coding": [{"system": SCT, "code": "302497006"}]}, status="done")
    unrelated = procedure("a1", {"coding": [{"system": SCT, "code": "80146002"}]}, status="done")
    assert [p.element for p in gate.check(Entry(dialysis, Location("f.json", 0)))] == ["status"]
    assert gate.check(Entry(unrelated, Location("f.json", 0))) == []


def test_the_entry_gate_checks_an_icd10_condition_the_mappings_know_by_category() -> None:
    from fhir_ns.fhir.problems import Location
    from fhir_ns.fhir.reader import Entry
    from fhir_ns.validate import EntryGate

    gate = EntryGate("R4", terminology=load_terminology())
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "bogus"}]
        },
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N04.1"}]},
        "subject": {"reference": "Patient/p1"},
    }
    assert [p.element for p in gate.check(Entry(condition, Location("f.json", 0)))] == ["clinicalStatus"]


def test_validate_says_a_procedure_fhir_ns_does_not_read_is_not_used(tmp_path: Path) -> None:
    from fhir_ns.validate.input_profile import InputProfile

    path = tmp_path / "in.json"
    path.write_bytes(
        orjson.dumps(
            bundle(
                patient(),
                procedure("a1", {"coding": [{"system": SCT, "code": "80146002"}], "text": "Appendectomy"}),
                procedure("d1", {"coding": [{"system": SCT, "code": "302497006"}]}),
            )
        )
    )
    problems: list[Problem] = []
    profile = InputProfile(load_terminology())
    found = [p for entry in read_entries([str(path)], problems) for p in profile.add(entry)]
    found += list(profile.finish())
    [unused] = [p for p in found if p.code == "code-unknown"]
    assert unused.resource == "Procedure/a1" and "not used" in unused.message
    assert unused.severity == "information"
