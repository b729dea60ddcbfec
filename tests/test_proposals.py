"""Care plan proposals that know the record (RULES.md §11), on charts built from plain values.

The child (20 kg, 115 cm) is steroid-resistant from day 28; where a CNI is given it starts on day 45 and
the child is still nephrotic 6 months later (CNI-resistant on day 228).
"""

from __future__ import annotations

from fhir_ns.rules import PatientResult
from fhir_ns.rules.result import Proposal, ProposedActivity
from tests.chart import Chart, codes, day, steroid_resistant_child, steroid_sensitive_child

CNI_START = 45


def on_cyclosporine(chart: Chart | None = None) -> Chart:
    return (chart or steroid_resistant_child()).drug("cyclosporine", CNI_START, None, 160, basis="mg/m2")


def cni_resistant_child() -> Chart:
    chart = on_cyclosporine()
    for on in (75, 120, 160, 200, 225):
        chart.upcr(on, 300).albumin(on, 20)
    return chart


def plan(result: PatientResult, template: str) -> Proposal:
    found = [p for p in result.proposals if p.template == template]
    assert found, f"no {template} plan in {[p.template for p in result.proposals]}"
    return found[0]


def activity(proposal: Proposal, starts: str) -> ProposedActivity:
    [found] = [a for a in proposal.activities if a.text.startswith(starts)]
    return found


def test_a_child_on_cyclosporine_has_the_start_a_cni_activity_in_progress_citing_the_statement():
    chart = on_cyclosporine()
    result = chart.evaluate(100)
    srns = plan(result, "srns-child")
    start_cni = activity(srns, "Start a calcineurin inhibitor")
    assert start_cni.status == "in-progress"
    assert start_cni.evidence == f"on cyclosporine since {day(CNI_START)}"
    [statement] = [e.source for e in chart.facts.exposures if e.drug == "cyclosporine"]
    assert start_cni.sources == (statement,)
    assert activity(srns, "Assess response").status == "not-started"


def test_a_dose_change_does_not_restart_the_therapy_the_evidence_dates():
    chart = steroid_resistant_child().drug("cyclosporine", CNI_START, 80, 160, basis="mg/m2")
    chart.drug("cyclosporine", 81, None, 180, basis="mg/m2")
    start_cni = activity(plan(chart.evaluate(100), "srns-child"), "Start a calcineurin inhibitor")
    assert start_cni.evidence == f"on cyclosporine since {day(CNI_START)}" and len(start_cni.sources) == 2


def test_a_cni_stopped_before_the_evaluation_date_is_not_in_progress():
    chart = steroid_resistant_child().drug("cyclosporine", CNI_START, 60, 160, basis="mg/m2")
    assert activity(plan(chart.evaluate(100), "srns-child"), "Start a calcineurin inhibitor").status == "not-started"


def test_fsgs_on_histology_completes_the_biopsy_activity():
    chart = steroid_resistant_child().condition({"nephrotic-syndrome"}, 0).condition({"histology-fsgs"}, 35)
    result = chart.evaluate(60)
    biopsy = activity(plan(result, "srns-child"), "Kidney biopsy")
    assert biopsy.status == "completed"
    assert biopsy.evidence == f"FSGS on record since {day(35)}"
    assert biopsy.sources == (chart.facts.conditions[-1].source,)


def test_without_a_biopsy_on_record_the_biopsy_activity_is_not_started():
    biopsy = activity(plan(steroid_resistant_child().evaluate(60), "srns-child"), "Kidney biopsy")
    assert biopsy.status == "not-started" and biopsy.evidence == "" and biopsy.sources == ()


def test_a_genetic_result_completes_genetic_testing_even_without_a_pathogenic_variant():
    result = steroid_resistant_child().genetic(50, {"podocyte-gene"}, pathogenic=False).evaluate(60)
    genetics = activity(plan(result, "srns-child"), "Genetic testing")
    assert genetics.status == "completed" and "no pathogenic variant reported" in genetics.evidence


def test_a_monogenic_disease_leaves_out_every_immunosuppression_activity_with_a_note():
    result = on_cyclosporine().genetic(50, {"podocyte-gene"}, pathogenic=True).evaluate(100)
    assert "monogenic-disease" in [f.code for f in result.findings]
    srns = plan(result, "srns-child")
    kept = [a.text for a in srns.activities]
    assert not any("calcineurin inhibitor:" in t or "prednisone 30" in t for t in kept)
    assert any(t.startswith("Kidney biopsy") for t in kept) and any(t.startswith("ACE inhibitor") for t in kept)
    assert activity(srns, "Genetic testing").status == "completed"
    assert len(srns.omitted) == 4
    assert all("left out because of monogenic nephrotic syndrome" in o.reason for o in srns.omitted)
    note, monogenic = srns.notes
    assert "immunosuppression unlikely to help" in note and "doi:10.1007/s00467-020-04519-1" in note
    assert "Start a calcineurin inhibitor" in note
    # the refractory plan also says what the monogenic finding means, not only the classify JSON notes
    assert monogenic.startswith("Monogenic disease since") and "NPHS2" in monogenic
    [srns_issue] = [c for c in result.classifications if c.code == "srns-initial"]
    assert "monogenic disease: pathogenic variant in NPHS2" in srns_issue.reason


def test_steroid_intolerance_leaves_out_only_the_high_dose_glucocorticoid_activity():
    chart = steroid_resistant_child().condition({"peptic-ulcer"}, -10)
    result = chart.evaluate(60)
    assert {"srns-initial", "steroid-intolerant"} <= set(codes(result))
    srns = plan(result, "srns-child")
    [left_out] = srns.omitted
    assert left_out.text.startswith("With the calcineurin inhibitor, prednisone 30 mg/m2/day")
    assert activity(srns, "Start a calcineurin inhibitor").status == "not-started"
    assert "high-dose glucocorticoid is contraindicated" in srns.notes[0]


def test_once_cni_resistant_the_srns_plan_is_revoked_and_the_cni_resistant_plan_replaces_it():
    result = cni_resistant_child().evaluate(240)
    assert codes(result) == ["srns-initial", "cni-resistant"]
    srns, resistant = plan(result, "srns-child"), plan(result, "cni-resistant")
    assert srns.status == "revoked" and srns.superseded_by is result.first("cni-resistant")
    assert resistant.status == "draft" and resistant.replaces == ("srns-child",)
    assert plan(result, "supportive-care").status == "draft"
    assert activity(srns, "Start a calcineurin inhibitor").status == "in-progress"


def test_before_cni_resistance_the_srns_plan_is_the_current_draft():
    result = cni_resistant_child().evaluate(200)
    assert [(p.template, p.status, p.replaces) for p in result.proposals] == [
        ("srns-child", "draft", ()),
        ("supportive-care", "draft", ()),
    ]


def frequently_relapsing_child() -> Chart:
    """Steroid-sensitive, relapses on days 60 and 150 (frequently relapsing from day 150)."""
    chart = steroid_sensitive_child()
    for start in (60, 150):
        chart.nephrotic_days(start, 3).upcr(start + 10, 10)
    return chart


def test_a_frequently_relapsing_child_has_the_steroid_sparing_plan_as_the_current_draft():
    result = frequently_relapsing_child().evaluate(190)
    assert codes(result) == ["ssns", "frns"]
    assert plan(result, "steroid-sparing").status == "draft"


def test_secondary_steroid_resistance_supersedes_the_steroid_sparing_plan():
    chart = frequently_relapsing_child().nephrotic_days(200, 3).prednisolone(203, 244, mg=48).upcr(231, 250)
    result = chart.evaluate(250)
    assert codes(result) == ["ssns", "frns", "srns-secondary"]
    sparing, srns = plan(result, "steroid-sparing"), plan(result, "srns-child")
    assert sparing.status == "revoked" and sparing.superseded_by is result.first("srns-secondary")
    assert srns.status == "draft" and srns.replaces == ("steroid-sparing",)


def test_proposals_are_in_the_json_of_the_result():
    result = cni_resistant_child().evaluate(240)
    data = result.as_json()["proposals"]
    assert [(p["template"], p["status"]) for p in data] == [
        ("srns-child", "revoked"),
        ("cni-resistant", "draft"),
        ("multidrug-option", "draft"),
        ("supportive-care", "draft"),
    ]
    assert data[0]["superseded_by"] == {"code": "cni-resistant", "since": str(day(CNI_START + 183))}
    assert data[1]["replaces"] == ["srns-child"]
    start_cni = next(a for a in data[0]["activities"] if a["text"].startswith("Start a calcineurin"))
    assert start_cni["status"] == "in-progress" and start_cni["sources"][0].startswith("MedicationStatement/")


def test_the_care_plan_data_names_only_templates_drugs_and_concepts_that_exist():
    """careplans.yaml is data a site edits: a misspelt class or concept would silently never match."""
    from fhir_ns.catalogue import careplans
    from tests.chart import RULESETS, TERMINOLOGY

    data = careplans()
    used = {t for ruleset in RULESETS.values() for ts in ruleset.careplans.values() for t in ts}
    assert used | {"supportive-care"} <= set(data.templates)
    classes = {d.drug_class for d in TERMINOLOGY.drugs.values()}
    concepts = {c for cs in TERMINOLOGY.condition_codes.values() for c in cs}
    kinds = {k for t in data.templates.values() for a in t.activities for k in a.involves}
    for template in data.templates.values():
        for a in template.activities:
            for match in (a.in_progress_when, a.completed_when):
                assert set(match.drug_classes) <= classes and set(match.drugs) <= set(TERMINOLOGY.drugs), a.text
                assert set(match.conditions) <= concepts, a.text
    assert all(set(ci.rules_out) <= kinds for ci in data.contraindications)


def test_a_therapy_with_a_recorded_end_makes_the_answer_worth_revisiting_the_day_after():
    chart = steroid_resistant_child().drug("cyclosporine", CNI_START, 150, 160, basis="mg/m2")
    result = chart.evaluate(100)
    assert activity(plan(result, "srns-child"), "Start a calcineurin inhibitor").status == "in-progress"
    assert result.revisit_on == day(151)  # without the end, the next date to revisit is later (the CNI window)
