"""Reading drug records as their author meant them (RULES §6b): taper orders in sequenced phases, dose
ranges, and reported eGFR by its equation. Records are shaped like a hospital's export."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_ns.rules import evaluate
from fhir_ns.timeline.timeline import Timeline
from tests.chart import RULESETS, TERMINOLOGY, Chart, codes, finding_codes
from tests.test_fhir_input import RXNORM, UCUM, bundle, obs, patient, read

PREDNISOLONE = {"coding": [{"system": RXNORM, "code": "8638", "display": "prednisolone"}]}
ONSET = date(2023, 1, 2)  # the child of these stories: born 2016-05-01, 20 kg, 115 cm (BSA 0.80 m2, standard 48 mg/day)


def _mg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mg", "system": UCUM, "code": "mg"}


def dosage(
    mg: float | tuple[float, float],
    every_days: int = 1,
    sequence: int | None = None,
    weeks: int | None = None,
    period: tuple[date, date | None] | None = None,
    days: int | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """One dosage instruction: `mg` per administration (a (low, high) pair is a range) every `every_days`."""
    repeat: dict[str, Any] = {"frequency": 1, "period": every_days, "periodUnit": "d"}
    if weeks is not None:
        repeat["boundsDuration"] = {"value": weeks, "unit": "wk", "system": UCUM, "code": "wk"}
    if days is not None:
        repeat["boundsDuration"] = {"value": days, "unit": "d", "system": UCUM, "code": "d"}
    if period is not None:
        repeat["boundsPeriod"] = {"start": period[0].isoformat()}
        if period[1] is not None:
            repeat["boundsPeriod"]["end"] = period[1].isoformat()
    dose: dict[str, Any] = (
        {"doseRange": {"low": _mg(mg[0]), "high": _mg(mg[1])}} if isinstance(mg, tuple) else {"doseQuantity": _mg(mg)}
    )
    out: dict[str, Any] = {"timing": {"repeat": repeat}, "doseAndRate": [dose]}
    if sequence is not None:
        out["sequence"] = sequence
    if text is not None:
        out["text"] = text
    return out


def order(rid: str, authored: date, *dosages: dict[str, Any], status: str = "active") -> dict[str, Any]:
    """A prednisolone MedicationRequest as an EHR writes it (authoredOn, local free text beside the codes)."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": PREDNISOLONE,
        "authoredOn": f"{authored.isoformat()}T10:15:00+01:00",
        "dosageInstruction": list(dosages),
    }


def statement(
    rid: str, start: date, end: date | None, *dosages: dict[str, Any], status: str = "active"
) -> dict[str, Any]:
    period = {"start": start.isoformat()} | ({"end": end.isoformat()} if end else {})
    return {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": PREDNISOLONE,
        "effectivePeriod": period,
        "dosage": list(dosages),
    }


def upcr(oid: str, on: date, mg_mmol: float) -> dict[str, Any]:
    return obs(oid, "2890-2", mg_mmol, "mg/mmol", when=on.isoformat())


def body(on: date = ONSET - timedelta(days=1)) -> list[dict[str, Any]]:
    return [obs("w", "29463-7", 20, "kg", when=on.isoformat()), obs("h", "8302-2", 115, "cm", when=on.isoformat())]


def read_one(tmp_path: Path, *resources: dict[str, Any], who: dict[str, Any] | None = None):
    patients, problems = read(tmp_path, bundle(who or patient(), *resources))
    [one] = patients
    return one.facts, [p for p in problems + one.problems]


def classify(tmp_path: Path, as_of: date, *resources: dict[str, Any], who: dict[str, Any] | None = None):
    facts, problems = read_one(tmp_path, *resources, who=who)
    return evaluate(facts, RULESETS, TERMINOLOGY, as_of), problems


def phases_of(facts) -> list[tuple[date, date | None, float | None, bool]]:
    return [(e.start, e.end, e.daily_dose, e.alternate_day) for e in facts.exposures]


# -- taper orders ----------------------------------------------------------------------------------


def test_a_taper_order_is_read_as_phases_one_after_another(tmp_path: Path) -> None:
    """60 mg daily for 4 weeks, then 40 mg on alternate days for 4 weeks, then 20 mg on alternate days for 2."""
    taper = order(
        "rx1",
        ONSET,
        dosage(60, sequence=1, weeks=4),
        dosage(40, every_days=2, sequence=2, weeks=4),
        dosage(20, every_days=2, sequence=3, weeks=2),
    )
    facts, _ = read_one(tmp_path, taper)
    assert phases_of(facts) == [
        (ONSET, ONSET + timedelta(days=27), 60.0, False),
        (ONSET + timedelta(days=28), ONSET + timedelta(days=55), 20.0, True),
        (ONSET + timedelta(days=56), ONSET + timedelta(days=69), 10.0, True),
    ]
    assert {e.source for e in facts.exposures} == {"MedicationRequest/rx1"}


def test_phases_with_their_own_bounds_periods_keep_their_dates(tmp_path: Path) -> None:
    d = ONSET
    taper = statement(
        "st1",
        d,
        d + timedelta(days=59),
        dosage(60, sequence=1, period=(d, d + timedelta(days=29))),
        dosage(40, every_days=2, sequence=2, period=(d + timedelta(days=30), d + timedelta(days=59))),
    )
    facts, _ = read_one(tmp_path, taper)
    assert phases_of(facts) == [
        (d, d + timedelta(days=29), 60.0, False),
        (d + timedelta(days=30), d + timedelta(days=59), 20.0, True),
    ]


def test_dosages_with_the_same_sequence_run_at_the_same_time(tmp_path: Path) -> None:
    """10 mg in the morning and 5 mg in the evening for two weeks (sequence 1), then 5 mg daily (sequence 2)."""
    taper = order(
        "rx1",
        ONSET,
        dosage(10, sequence=1, weeks=2, text="10 mg morning"),
        dosage(5, sequence=1, text="5 mg evening"),
        dosage(5, sequence=2, weeks=2),
    )
    facts, _ = read_one(tmp_path, taper)
    assert phases_of(facts) == [
        (ONSET, ONSET + timedelta(days=13), 15.0, False),
        (ONSET + timedelta(days=14), ONSET + timedelta(days=27), 5.0, False),
    ]


def test_a_statement_stopped_during_a_taper_cuts_it_short(tmp_path: Path) -> None:
    stopped = ONSET + timedelta(days=40)
    taper = statement(
        "st1",
        ONSET,
        stopped,
        dosage(60, sequence=1, weeks=4),
        dosage(40, every_days=2, sequence=2, weeks=4),
        dosage(20, every_days=2, sequence=3, weeks=4),
        status="stopped",
    )
    facts, _ = read_one(tmp_path, taper)
    assert phases_of(facts) == [
        (ONSET, ONSET + timedelta(days=27), 60.0, False),
        (ONSET + timedelta(days=28), stopped, 20.0, True),
    ]


def test_an_ongoing_last_phase_runs_until_the_evaluation_date(tmp_path: Path) -> None:
    taper = order("rx1", ONSET, dosage(60, sequence=1, weeks=6), dosage(10, every_days=2, sequence=2))
    facts, _ = read_one(tmp_path, taper)
    assert phases_of(facts)[-1] == (ONSET + timedelta(days=42), None, 5.0, True)


def test_a_phase_that_cannot_be_placed_leaves_the_trial_undecided_and_says_why(tmp_path: Path) -> None:
    """Phase 1 has no end and no duration: where phase 2 starts is unknown, so is the dose from day 0."""
    taper = order("rx1", ONSET, dosage(60, sequence=1), dosage(40, every_days=2, sequence=2, weeks=4))
    story = [*body(), upcr("u0", ONSET, 600), upcr("u28", ONSET + timedelta(days=28), 400), taper]
    result, problems = classify(tmp_path, ONSET + timedelta(days=60), *story)
    assert any("phase 1 of 2" in p.message and p.severity == "warning" for p in problems)
    [c] = [c for c in result.classifications if c.code == "insufficient-data"]
    assert "cannot be placed in time" in c.reason and "MedicationRequest/rx1" in c.reason
    assert "srns-initial" not in codes(result)


def test_sequence_numbers_on_some_dosages_only_make_the_order_unreadable_for_doses(tmp_path: Path) -> None:
    taper = order("rx1", ONSET, dosage(60, sequence=1, weeks=4), dosage(40, every_days=2, weeks=4))
    facts, problems = read_one(tmp_path, taper)
    [e] = facts.exposures
    assert e.daily_dose is None and e.dose_unknown and "order cannot be read" in e.dose_unknown
    assert any(p.element == "dosage.sequence" for p in problems)


def _half_dose_taper_story(tmp_path: Path, taper: dict[str, Any]):
    """Nephrotic on day 0 and still nephrotic on day 28, on 24 mg/day (half the standard 48) for 4 weeks."""
    return classify(
        tmp_path,
        ONSET + timedelta(days=70),
        *body(),
        upcr("u0", ONSET, 600),
        obs("a0", "1751-7", 18, "g/L", when=ONSET.isoformat()),
        upcr("u28", ONSET + timedelta(days=28), 400),
        taper,
    )


def test_a_child_on_half_the_standard_dose_in_a_taper_is_not_called_steroid_resistant(tmp_path: Path) -> None:
    # Read as if the phases ran at once, 24 + 24 + 12 mg make a "standard" 60 mg/day and the child "SRNS".
    taper = order(
        "rx1",
        ONSET,
        dosage(24, sequence=1, weeks=4),
        dosage(24, sequence=2, weeks=2),
        dosage(12, sequence=3, weeks=2),
    )
    result, _ = _half_dose_taper_story(tmp_path, taper)
    assert "srns-initial" not in codes(result)
    assert "inadequate-steroid-trial" in finding_codes(result)
    [finding] = [f for f in result.findings if f.code == "inadequate-steroid-trial"]
    assert "mean 24 mg/day over 28 days = 50% of the standard" in finding.reason


def test_relapses_during_the_alternate_day_phases_of_tapers_are_steroid_dependence(tmp_path: Path) -> None:
    """Relapses on days 100, 149 and 198, each treated with a new taper (4 weeks daily, 4 weeks on alternate
    days): the relapses of days 149 and 198 fall in week 7 of the previous taper, on steroid, so SDNS.

    Read with the first phase's dates for the whole order, each course ended on day 27 of it and both
    relapses came 21 days after stopping: not steroid-dependent under IPNA's 15 days."""
    d = ONSET
    taper = (dosage(48, sequence=1, weeks=4), dosage(40, every_days=2, sequence=2, weeks=4))
    resources: list[dict[str, Any]] = [*body(), upcr("u0", d, 600), upcr("u10", d + timedelta(days=10), 10)]
    resources.append(order("rx0", d, *taper))
    for start in (100, 149, 198):
        t0 = d + timedelta(days=start)
        resources += [upcr(f"r{start}-{k}", t0 + timedelta(days=k), 300) for k in range(3)]
        resources.append(upcr(f"cr{start}", t0 + timedelta(days=10), 10))
        resources.append(order(f"rx{start}", t0, *taper))
    result, _ = classify(tmp_path, d + timedelta(days=300), *resources)
    sdns = result.first("sdns")
    assert sdns is not None and sdns.since == d + timedelta(days=198), result.classifications
    assert "while taking prednisolone" in sdns.reason


# -- dose ranges -----------------------------------------------------------------------------------


def test_a_dose_range_keeps_both_ends_and_no_midpoint(tmp_path: Path) -> None:
    facts, _ = read_one(tmp_path, order("rx1", ONSET, dosage((20, 60))))
    [e] = facts.exposures
    assert (e.daily_dose, e.daily_dose_high) == (20.0, 60.0) and e.dose_range


def test_a_range_straddling_the_adequate_dose_makes_the_trial_undecided() -> None:
    chart = Chart().upcr(0, 600).albumin(0, 18).drug("prednisolone", 0, 41, 20, high_mg=60).upcr(28, 400)
    result = chart.evaluate(60)
    [c] = [c for c in result.classifications if c.code == "insufficient-data"]
    assert "dose given as a range (prednisolone 20-60 mg/day" in c.reason and "adequacy cannot be shown" in c.reason
    assert "srns-initial" not in codes(result) and "inadequate-steroid-trial" not in finding_codes(result)


def test_a_range_whose_low_end_is_adequate_is_an_adequate_trial() -> None:
    chart = Chart().upcr(0, 600).albumin(0, 18).drug("prednisolone", 0, 41, 45, high_mg=60).upcr(28, 400)
    assert "srns-initial" in codes(chart.evaluate(60))


def test_a_range_entirely_below_the_adequate_dose_is_an_under_dosed_trial() -> None:
    chart = Chart().upcr(0, 600).albumin(0, 18).drug("prednisolone", 0, 41, 10, high_mg=30).upcr(28, 400)
    result = chart.evaluate(60)
    assert "inadequate-steroid-trial" in finding_codes(result) and "srns-initial" not in codes(result)


def test_a_cni_dose_range_straddling_the_minimum_cannot_show_adequacy() -> None:
    # cyclosporine 80-200 mg/day against the minimum 150 mg/m2/day = 120 mg/day, with no trough levels
    chart = Chart().upcr(0, 600).albumin(0, 18).prednisolone(0, 41, mg=48).upcr(28, 400).albumin(28, 20)
    chart.drug("cyclosporine", 45, None, 80, high_mg=200)
    for n in range(45, 260, 30):
        chart.upcr(n, 400).albumin(n, 20)
    result = chart.evaluate(260)
    assert "cni-resistant" not in codes(result)
    [c] = [c for c in result.classifications if c.code == "insufficient-data" and "cyclosporine" in c.reason]
    assert "dose given as a range" in c.reason and "adequacy cannot be shown" in c.reason


# -- reported eGFR ---------------------------------------------------------------------------------


def _egfr(oid: str, code: str, on: date, value: float) -> dict[str, Any]:
    return obs(oid, code, value, "mL/min/{1.73_m2}", when=on.isoformat())


def test_an_adult_equation_egfr_reported_for_a_child_is_not_used(tmp_path: Path) -> None:
    """MDRD values of 40 for a 7-year-old would be CKD; bedside Schwartz from creatinine 40 umol/L is 105."""
    resources = [*body(), upcr("u0", ONSET, 600)]
    for n in (0, 100, 200):
        on = ONSET + timedelta(days=n)
        resources += [
            _egfr(f"e{n}", "33914-3", on, 40),
            obs(f"c{n}", "2160-0", 40, "umol/L", when=on.isoformat()),
            obs(f"h{n}", "8302-2", 115, "cm", when=on.isoformat()),
        ]
    result, _ = classify(tmp_path, ONSET + timedelta(days=250), *resources)
    assert "ckd-progression" not in finding_codes(result)
    assert any("3 reported eGFR value(s) not used" in n and "MDRD" in n for n in result.notes)


def test_each_egfr_in_a_sentence_names_its_equation(tmp_path: Path) -> None:
    resources = [upcr("u0", ONSET, 600)]
    for n, value in ((0, 95), (100, 50), (200, 48)):
        resources.append(_egfr(f"e{n}", "98979-8", ONSET + timedelta(days=n), value))
    result, _ = classify(tmp_path, ONSET + timedelta(days=250), *resources, who=patient(born="1970-03-01"))
    [f] = [f for f in result.findings if f.code == "ckd-progression"]
    assert "50 (CKD-EPI 2021, reported)" in f.reason and "48 (CKD-EPI 2021, reported" in f.reason


def test_an_adults_mdrd_value_gives_way_to_ckd_epi_2021_from_creatinine(tmp_path: Path) -> None:
    on = ONSET
    resources = [_egfr("e1", "33914-3", on, 30), obs("c1", "2160-0", 80, "umol/L", when=on.isoformat())]
    facts, _ = read_one(tmp_path, *resources, who=patient(born="1970-03-01"))
    tl = Timeline.build(facts, RULESETS["kdigo-2021-adult"], TERMINOLOGY, on)
    [(_, value, sources, how)] = tl.egfr_series()
    assert how == "CKD-EPI 2021" and sources == ("Observation/c1",) and value > 60


# -- a taper order means the same as its phases written one order each ------------------------------

PHASE = st.tuples(st.sampled_from([5, 10, 15, 20, 30, 40, 48, 60]), st.sampled_from([1, 2]), st.integers(7, 42))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phases=st.lists(PHASE, min_size=2, max_size=4),
    relapse_days=st.lists(st.integers(20, 400), min_size=0, max_size=4, unique=True),
    remission_day=st.integers(5, 60),
    started=st.integers(-10, 10),
)
def test_a_taper_classifies_like_its_phases_written_as_separate_orders(
    phases: list[tuple[int, int, int]], relapse_days: list[int], remission_day: int, started: int
) -> None:
    d0 = ONSET + timedelta(days=started)
    story: list[dict[str, Any]] = [*body(ONSET - timedelta(days=30)), upcr("u0", ONSET, 600)]
    story.append(upcr("cr", ONSET + timedelta(days=remission_day), 10))
    for r in sorted(relapse_days):
        story += [upcr(f"r{r}-{k}", ONSET + timedelta(days=r + k), 300) for k in range(3)]
        story.append(upcr(f"c{r}", ONSET + timedelta(days=r + 12), 10))
    sequenced = order(
        "taper", d0, *(dosage(mg, every, sequence=n, days=days) for n, (mg, every, days) in enumerate(phases, 1))
    )
    separate, start = [], d0
    for n, (mg, every, days) in enumerate(phases, 1):
        end = start + timedelta(days=days - 1)
        separate.append(order(f"phase{n}", start, dosage(mg, every, period=(start, end)), status="completed"))
        start = end + timedelta(days=1)
    sequenced["status"] = "completed"
    as_of = ONSET + timedelta(days=450)
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        a, _ = classify(Path(one), as_of, *story, sequenced)
        b, _ = classify(Path(two), as_of, *story, *separate)
    assert [(c.code, c.since) for c in a.classifications] == [(c.code, c.since) for c in b.classifications]
    assert [(f.code, f.since) for f in a.findings] == [(f.code, f.since) for f in b.findings]
