"""Relapse burden and treatment response per patient (RULES.md §9): each measure at its boundaries.

The child (20 kg, 115 cm) presents on day 0 (2023-01-02). A relapse is nephrotic-range UPCR on 3 consecutive
days, back in complete remission 10 days later. Years observed = days in the period (both ends) / 365.25.
"""

from __future__ import annotations

import pytest

from fhir_ns.fhir.writer import Settings, transaction
from fhir_ns.rules.measures import DAYS_PER_YEAR
from fhir_ns.rules.result import Measure, PatientResult
from fhir_ns.ruleset import load_rulesets
from fhir_ns.timeline.model import ProcedureFact
from fhir_ns.validate.output_profile import check_output
from tests.chart import Chart, codes, day, steroid_resistant_child, steroid_sensitive_child


def relapses(chart: Chart, *starts: int) -> Chart:
    for start in starts:
        chart.nephrotic_days(start, 3).upcr(start + 10, 10)
    return chart


def measures(result: PatientResult, code: str) -> list[Measure]:
    return [m for m in result.measures if m.code == code]


def of(result: PatientResult, code: str, therapy: str | None) -> Measure:
    """The one measure of `code` in the period of `therapy` (None: the period without one)."""
    found = [m for m in measures(result, code) if m.therapy == therapy]
    assert len(found) == 1, f"{code} {therapy}: {[(m.code, m.therapy) for m in result.measures]}"
    return found[0]


# -- relapse count and rate -----------------------------------------------------------------------------------


def test_relapse_rate_before_and_during_cyclosporine_checked_by_hand():
    """Cyclosporine from day 400 (2024-02-06); the period before it is the 12 months before (from 2023-02-06,
    day 35: 365 days); relapses on days 60, 150 and 250 before it, on day 600 during it; evaluated on day 764."""
    chart = relapses(steroid_sensitive_child(), 60, 150, 250, 600).drug("cyclosporine", 400, None, 100)
    result = chart.evaluate(764)
    before, during = of(result, "relapse-rate", None), of(result, "relapse-rate", "cyclosporine")
    assert (before.start, before.end) == (day(35), day(399))
    assert (during.start, during.end) == (day(400), day(764))
    assert (of(result, "relapse-count", None).value, of(result, "relapse-count", "cyclosporine").value) == (3, 1)
    assert before.value == pytest.approx(3 * 365.25 / 365) == pytest.approx(3.0021, abs=1e-4)
    assert during.value == pytest.approx(1 * 365.25 / 365)
    assert before.unit == "/a" and of(result, "relapse-count", None).unit == "1"
    assert "3 relapse(s) in 1.00 years (365 days) without a steroid-sparing agent (2023-02-06 to 2024-02-05)" in (
        before.reason
    )
    assert set(chart.timeline(764).relapses[0].sources) <= set(before.evidence)


def test_the_period_before_the_first_therapy_starts_no_earlier_than_the_first_nephrotic_evidence():
    result = relapses(steroid_sensitive_child(), 60).drug("cyclosporine", 200, None, 100).evaluate(300)
    before = of(result, "relapse-rate", None)
    assert (before.start, before.end) == (day(0), day(199))
    assert before.value == pytest.approx(1 / (200 / DAYS_PER_YEAR))


def test_a_relapse_on_the_first_day_of_a_period_counts_in_that_period_only():
    result = relapses(steroid_sensitive_child(), 100).drug("cyclosporine", 100, None, 100).evaluate(300)
    assert of(result, "relapse-count", "cyclosporine").value == 1
    assert of(result, "relapse-count", None).value == 0
    first = of(result, "time-to-first-relapse", "cyclosporine")
    assert (first.value, first.censored, first.unit) == (0, False, "d")


def test_a_therapy_still_running_at_the_evaluation_date_ends_on_it_and_a_stopped_one_on_its_last_day():
    running = steroid_sensitive_child().drug("cyclosporine", 100, None, 100).evaluate(300)
    count = of(running, "relapse-count", "cyclosporine")
    assert (count.start, count.end) == (day(100), day(300))
    stopped = steroid_sensitive_child().drug("cyclosporine", 100, 200, 100).evaluate(300)
    count = of(stopped, "relapse-count", "cyclosporine")
    assert (count.start, count.end) == (day(100), day(200))


def test_a_patient_never_given_a_steroid_sparing_agent_has_one_period_from_onset_to_the_evaluation_date():
    result = relapses(steroid_sensitive_child(), 60, 200).evaluate(400)
    [count] = measures(result, "relapse-count")
    assert (count.therapy, count.start, count.end, count.value) == (None, day(0), day(400), 2)
    assert measures(result, "time-to-first-relapse") == []  # only a therapy has a start to count from


# -- relapses after any remission ------------------------------------------------------------------------------


def test_a_relapse_after_a_cni_induced_remission_is_counted():
    """Steroid-resistant; cyclosporine from day 42 brings complete remission on day 70; relapses on days 160, 260."""
    chart = relapses(steroid_resistant_child().drug("cyclosporine", 42, None, 100).upcr(70, 10), 160, 260)
    result = chart.evaluate(400)
    assert [r.on for r in chart.timeline(400).relapses] == [day(160), day(260)]
    assert of(result, "relapse-count", "cyclosporine").value == 2
    first = of(result, "time-to-first-relapse", "cyclosporine")
    assert (first.value, first.censored) == (160 - 42, False)
    # two relapses on a CNI it had taken for 3 months: relapsing on a CNI, as for a steroid-sensitive child
    assert codes(result) == ["srns-initial", "cni-responsive", "relapsing-on-cni"]


# -- time to remission and to first relapse -------------------------------------------------------------------


def test_time_to_remission_from_the_therapy_start_and_censored_when_none():
    remitted = steroid_resistant_child().drug("cyclosporine", 42, None, 100).upcr(70, 10).evaluate(200)
    found = of(remitted, "time-to-remission", "cyclosporine")
    assert (found.value, found.censored, found.unit) == (28, False, "d")
    still = steroid_resistant_child().drug("cyclosporine", 42, None, 100).upcr(100, 400).evaluate(200)
    found = of(still, "time-to-remission", "cyclosporine")
    assert (found.value, found.censored) == (200 - 42, True)
    assert "censored at 2023-07-21" in found.reason


def test_a_therapy_started_in_remission_has_no_time_to_remission_but_says_why():
    result = steroid_sensitive_child().drug("cyclosporine", 60, None, 100).evaluate(200)
    assert measures(result, "time-to-remission") == []
    assert any("time to remission on cyclosporine" in n and "started in complete remission" in n for n in result.notes)


def test_no_relapse_during_a_therapy_is_censored_at_the_period_end():
    result = steroid_sensitive_child().drug("cyclosporine", 60, 150, 100).evaluate(300)
    found = of(result, "time-to-first-relapse", "cyclosporine")
    assert (found.value, found.censored) == (90, True)


# -- minimum maintenance prednisolone -------------------------------------------------------------------------


def maintained(low_days: int) -> Chart:
    """In remission from day 10 on cyclosporine from day 42: prednisolone 20 mg on alternate days (1.0 mg/kg) to
    day 120, 10 mg on alternate days (0.5 mg/kg) to day 250, then 4 mg daily (counted double: 0.4 mg/kg) for
    `low_days` days, then 10 mg on alternate days again to day 400; weighed (20 kg) every 150 days."""
    chart = steroid_sensitive_child().drug("cyclosporine", 42, None, 100).weight(150, 20).weight(300, 20)
    chart.prednisolone(42, 120, mg=10, alternate_day=True).prednisolone(121, 250, mg=5, alternate_day=True)
    chart.prednisolone(251, 250 + low_days, mg=4).prednisolone(251 + low_days, 400, mg=5, alternate_day=True)
    return chart


def test_the_lowest_dose_held_60_days_in_remission_is_the_minimum_maintenance_dose_a_daily_dose_counting_double():
    found = of(maintained(60).evaluate(400), "minimum-maintenance-prednisolone", "cyclosporine")
    assert found.value == pytest.approx(0.4) and found.unit == "mg/kg"
    assert "held 60 consecutive days in remission from 2023-09-10 to 2023-11-08" in found.reason


def test_a_dose_held_59_days_is_not_the_minimum_maintenance_dose():
    found = of(maintained(59).evaluate(400), "minimum-maintenance-prednisolone", "cyclosporine")
    assert found.value == pytest.approx(0.5)


def test_a_relapse_inside_the_window_breaks_it():
    """The 0.4 mg/kg stretch (days 251-350) is cut by a relapse on day 300: 49 days before, 40 days after."""
    chart = relapses(maintained(100), 300)
    found = of(chart.evaluate(400), "minimum-maintenance-prednisolone", "cyclosporine")
    assert found.value == pytest.approx(0.5)


def test_a_period_shorter_than_the_minimum_dose_window_gives_no_dose_but_a_note():
    chart = steroid_sensitive_child().drug("cyclosporine", 100, 158, 100).drug("tacrolimus", 159, None, 5)
    result = chart.prednisolone(42, 400, mg=5, alternate_day=True).weight(150, 20).evaluate(300)
    assert [m.therapy for m in measures(result, "minimum-maintenance-prednisolone")] == [None, "tacrolimus"]
    assert any(
        "minimum maintenance prednisolone on cyclosporine (2023-04-12 to 2023-06-09) not measured: the period lasts "
        "59 days, less than the 60 days" in n
        for n in result.notes
    )


def test_no_weight_gives_no_dose_per_kg_but_a_note_saying_so():
    chart = Chart(weight=None).upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=48).upcr(10, 10)
    result = chart.drug("cyclosporine", 42, None, 100).prednisolone(42, 300, mg=5, alternate_day=True).evaluate(300)
    assert measures(result, "minimum-maintenance-prednisolone") == []
    assert any("no weight within 180 days" in n for n in result.notes)


# -- state at the evaluation date -----------------------------------------------------------------------------


def state(result: PatientResult) -> Measure:
    [found] = measures(result, "state-at-evaluation")
    return found


def test_state_complete_partial_or_no_remission():
    assert state(steroid_sensitive_child().evaluate(60)).value == "complete-remission"
    assert state(steroid_resistant_child().evaluate(60)).value == "no-remission"
    partial = steroid_resistant_child().upcr(50, 100).albumin(50, 32).evaluate(60)
    assert state(partial).value == "partial-remission"
    assert (state(partial).start, state(partial).end, state(partial).unit) == (day(60), day(60), None)


@pytest.mark.parametrize(
    ("concept", "source"), [("dialysis", "Procedure/d1"), ("kidney-transplant", "Procedure/t1")], ids=str
)
def test_dialysis_or_a_transplant_on_record_is_kidney_failure(concept: str, source: str):
    chart = steroid_resistant_child()
    chart.facts.procedures.append(ProcedureFact(concept, day(50), None, source))
    found = state(chart.evaluate(60))
    assert found.value == "kidney-failure" and found.evidence == (source,)
    assert state(chart.evaluate(49)).value == "no-remission"  # not yet on record


def test_an_egfr_below_15_is_kidney_failure_and_15_is_not():
    """Bedside Schwartz at 115 cm: 36.5 x 115 / 280 = 14.99; / 279.8 = 15.00."""
    assert state(steroid_resistant_child().creatinine(50, 280).evaluate(60)).value == "kidney-failure"
    assert state(steroid_resistant_child().creatinine(50, 279.8).evaluate(60)).value == "no-remission"


# -- regimens ----------------------------------------------------------------------------------------------------


def test_a_regimen_names_cnis_first_then_antimetabolites_and_a_single_dose_lasts_to_the_next_therapy():
    chart = steroid_sensitive_child().drug("mizoribine", 100, 300, 150).drug("tacrolimus", 100, 300, 3)
    chart.drug("rituximab", 200, 200, 375, single=True)
    periods = [(m.therapy, m.start, m.end) for m in measures(chart.evaluate(400), "relapse-count")]
    assert periods == [
        (None, day(0), day(99)),
        ("tacrolimus+mizoribine", day(100), day(199)),
        ("tacrolimus+mizoribine+rituximab", day(200), day(300)),
        ("rituximab", day(301), day(400)),
    ]


# -- output --------------------------------------------------------------------------------------------------


def test_measures_are_written_as_observations_the_output_profile_accepts():
    chart = relapses(steroid_sensitive_child(), 60, 150, 250, 600).drug("cyclosporine", 400, None, 100)
    result = chart.evaluate(764)
    bundle = transaction([result], Settings())
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) == len(result.measures)
    rate = next(
        o
        for o in observations
        if o["code"]["coding"][0]["code"] == "relapse-rate" and o["effectivePeriod"]["start"] == "2024-02-06"
    )
    assert rate["valueQuantity"] == {
        "value": 1.001,
        "unit": "per year",
        "system": "http://unitsofmeasure.org",
        "code": "/a",
    }
    assert rate["status"] == "final" and rate["subject"] == {"reference": "Patient/p1"}
    assert all(r["reference"].startswith("Observation/") for r in rate["derivedFrom"])
    [provenance] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"} <= {
        t["reference"] for t in provenance["target"]
    }
    assert check_output(bundle, load_rulesets()) == []
    assert transaction([chart.evaluate(764)], Settings()) == bundle  # deterministic


def test_the_json_of_a_measure_has_its_period_and_says_censored_only_for_a_time_to_event():
    result = steroid_sensitive_child().drug("cyclosporine", 60, 150, 100).evaluate(300)
    count = of(result, "relapse-count", "cyclosporine").as_json()
    assert count == {
        "code": "relapse-count",
        "period": {"start": "2023-03-03", "end": "2023-06-01"},
        "therapy": "cyclosporine",
        "value": 0,
        "unit": "1",
        "evidence": list(of(result, "relapse-count", "cyclosporine").evidence),
        "reason": "0 relapse(s) on cyclosporine (2023-03-03 to 2023-06-01)",
    }
    assert of(result, "time-to-first-relapse", "cyclosporine").as_json()["censored"] is True
    assert result.as_json()["measures"] == [m.as_json() for m in result.measures]


def test_validate_holds_the_written_measures_to_the_output_profile_not_to_the_input_one(tmp_path):
    """`validate` on `convert`'s output: the measure Observations are fhir-ns output, not patient data."""
    from pathlib import Path

    from click.testing import CliRunner

    from fhir_ns.cli import cli

    sample = Path(__file__).resolve().parent.parent / "samples" / "bundles" / "multidrug-mizoribine.json"
    out = tmp_path / "out.json"
    assert (
        CliRunner().invoke(cli, ["convert", str(sample), "--as-of", "2025-01-01", "-o", str(out), "-q"]).exit_code == 0
    )
    assert b'"resourceType": "Observation"' in out.read_bytes()
    checked = CliRunner().invoke(cli, ["validate", str(out), "-v"])
    assert checked.exit_code == 0, checked.output
    assert "input-profile" not in checked.output and "output-profile" not in checked.output
