"""The write-back: valid R4 resources, conditional on deterministic identifiers, citing their evidence."""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle

from fhir_ns.fhir.writer import Settings, transaction
from fhir_ns.rules import PatientResult
from tests.chart import Chart


def srns_child() -> PatientResult:
    chart = Chart().condition({"nephrotic-syndrome"}, 0)
    chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 42, 48).upcr(27, 550).albumin(27, 20)
    chart.drug("cyclosporine", 50, None, 120).level("cyclosporine", 80, 200)
    return chart.evaluate(100)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_output_is_a_valid_r4_transaction_bundle() -> None:
    bundle = transaction([srns_child()], Settings())
    Bundle.model_validate(bundle)
    assert bundle["type"] == "transaction"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "Device" and kinds[-1] == "Provenance"
    assert "DetectedIssue" in kinds and "CarePlan" in kinds


def test_every_issue_and_plan_is_a_conditional_update_on_its_identifier() -> None:
    bundle = transaction([srns_child()], Settings())
    for entry in bundle["entry"]:
        resource, request = entry["resource"], entry["request"]
        if resource["resourceType"] in ("DetectedIssue", "CarePlan", "Device"):
            [identifier] = resource["identifier"]
            assert request["method"] == "PUT"
            assert request["url"].startswith(f"{resource['resourceType']}?identifier=")
            assert identifier["value"] in request["url"]
        if resource["resourceType"] == "Provenance":
            assert request == {"method": "PUT", "url": f"Provenance/{resource['id']}"}


def test_converting_twice_gives_identical_output() -> None:
    first = orjson.dumps(transaction([srns_child()], Settings()))
    second = orjson.dumps(transaction([srns_child()], Settings()))
    assert first == second


def test_detected_issue_names_rule_set_cites_evidence_and_reads_as_one_sentence() -> None:
    result = srns_child()
    bundle = transaction([result], Settings())
    issues = {i["code"]["coding"][1]["code"]: i for i in resources(bundle, "DetectedIssue")}
    srns = issues["srns-initial"]
    assert srns["code"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "PREVINEF",
        "display": "previously ineffective",
    }
    assert srns["severity"] == "high" and srns["status"] == "preliminary"
    assert srns["patient"] == {"reference": "Patient/p1"}
    assert srns["reference"].endswith("/ruleset/ipna-2022-child|1.0.0")
    assert "ipna-2022-child|1.0.0" in srns["detail"] and "550 mg/mmol" in srns["detail"]
    cited = {d.get("reference") for d in srns["evidence"][0]["detail"]}
    assert set(result.first("srns-initial").evidence) <= cited  # type: ignore[union-attr]
    level = issues["cni-level-out-of-range"]
    assert level["implicated"] and level["implicated"][0]["reference"].startswith("MedicationStatement/")


def test_care_plans_are_draft_proposals_linked_to_their_issue_and_condition() -> None:
    bundle = transaction([srns_child()], Settings())
    plans = resources(bundle, "CarePlan")
    issue_urls = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"}
    assert {p["status"] for p in plans} == {"draft"} and {p["intent"] for p in plans} == {"proposal"}
    srns_plan = next(p for p in plans if "Steroid-resistant" in p["title"])
    assert srns_plan["supportingInfo"][0]["reference"] in issue_urls
    assert srns_plan["addresses"][0]["reference"].startswith("Condition/")
    assert any("Genetic testing" in a["detail"]["description"] for a in srns_plan["activity"])
    assert "not an order" in srns_plan["description"]
    assert any("supportive care" in p["title"] for p in plans)


def test_provenance_targets_every_written_resource_with_the_device_as_agent() -> None:
    bundle = transaction([srns_child()], Settings())
    [provenance] = resources(bundle, "Provenance")
    written = {
        e["fullUrl"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in ("DetectedIssue", "CarePlan", "Observation")
    }
    assert {t["reference"] for t in provenance["target"]} == written
    assert provenance["agent"][0]["who"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert provenance["policy"] == ["https://fhir-ns.example.org/fhir/ruleset/ipna-2022-child|1.0.0"]
    assert any(e["what"].get("reference", "").startswith("Observation/") for e in provenance["entity"])


def test_canonical_base_is_configurable() -> None:
    bundle = transaction([srns_child()], Settings("https://nephro.example.net/fhir"))
    issue = resources(bundle, "DetectedIssue")[0]
    assert issue["code"]["coding"][1]["system"] == "https://nephro.example.net/fhir/CodeSystem/ns-classification"
    assert issue["identifier"][0]["system"] == "https://nephro.example.net/fhir/identifier/DetectedIssue"


def test_project_code_systems_are_valid_and_cover_every_code_the_rules_emit() -> None:
    from fhir.resources.R4B.codesystem import CodeSystem

    from fhir_ns.catalogue import code_systems

    systems = code_systems()
    for resource in systems.values():
        CodeSystem.model_validate(resource)
    codes = {c["code"] for r in systems.values() for c in r["concept"]}
    expected = {
        "ssns",
        "ssns-late-responder",
        "srns-pending-confirmation",
        "srns-initial",
        "srns-secondary",
        "infrequent-relapse",
        "frns",
        "sdns",
        "cni-responsive",
        "cni-resistant",
        "mdr-srns",
        "steroid-intolerant",
        "response-pending",
        "insufficient-data",
        "cni-nephrotoxicity",
        "cni-level-out-of-range",
        "cni-stopped-early",
        "cyclophosphamide-cumulative-dose",
        "inadequate-steroid-trial",
        "dose-out-of-range",
        "no-raas-blockade",
        "ckd-progression",
        "monogenic-disease",
        "steroid-intolerance",
        "cni-intolerant",
        "relapsing-on-cni",
        "congenital-ns",
        "infantile-ns",
        "secondary-ns-suspected",
        "thromboembolism",
        "serious-infection",
        "hypertension",
        "acute-kidney-injury",
        "drug-induced-hyperglycaemia",
        # ns-measure: the measures and the states (RULES.md §9)
        "relapse-count",
        "relapse-rate",
        "minimum-maintenance-prednisolone",
        "state-at-evaluation",
        "time-to-remission",
        "time-to-first-relapse",
        "complete-remission",
        "partial-remission",
        "no-remission",
        "kidney-failure",
    }
    assert codes == expected


def test_an_open_window_is_written_as_a_response_pending_issue_the_output_profile_accepts() -> None:
    from fhir_ns.ruleset import load_rulesets
    from fhir_ns.validate.output_profile import check_output

    result = Chart().upcr(0, 600).albumin(0, 18).prednisolone(0, 41, 48).upcr(14, 400).evaluate(20)
    bundle = transaction([result], Settings())
    [issue] = resources(bundle, "DetectedIssue")
    assert issue["code"]["coding"][1]["code"] == "response-pending"
    assert (issue["severity"], issue["code"]["coding"][0]["code"]) == ("low", "OBSA")
    assert "decided on 2023-01-30" in issue["detail"] and issue["evidence"]
    [plan] = resources(bundle, "CarePlan")  # supportive care: the nephrotic syndrome is established
    assert "supportive care" in plan["title"].lower()
    assert check_output(bundle, load_rulesets()) == []


# -- proposals that know the record (RULES.md §11) -------------------------------------------------------


def cni_resistant_child() -> PatientResult:
    """Steroid-resistant from day 28, on cyclosporine from day 45, still nephrotic 6 months later."""
    chart = Chart().condition({"nephrotic-syndrome"}, 0)
    chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 41, 48).upcr(28, 400).albumin(28, 20)
    chart.drug("cyclosporine", 45, None, 160, basis="mg/m2").condition({"histology-fsgs"}, 35)
    for on in (75, 120, 160, 200, 225):
        chart.upcr(on, 300).albumin(on, 20)
    return chart.evaluate(240)


def plans_by_title(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"].split(" - ")[0]: p for p in resources(bundle, "CarePlan")}


def test_a_superseded_plan_is_revoked_and_the_current_plan_replaces_it_by_identifier() -> None:
    bundle = transaction([cni_resistant_child()], Settings())
    plans = plans_by_title(bundle)
    srns = plans["Steroid-resistant nephrotic syndrome (child)"]
    resistant = plans["Calcineurin-inhibitor-resistant nephrotic syndrome"]
    assert srns["status"] == "revoked" and srns["description"].startswith("Superseded on ")
    assert resistant["status"] == "draft" and plans["Nephrotic syndrome"]["status"] == "draft"
    assert resistant["replaces"] == [{"identifier": srns["identifier"][0], "display": srns["title"]}]
    assert "replaces" not in srns


def test_activities_in_progress_and_completed_cite_the_record() -> None:
    bundle = transaction([cni_resistant_child()], Settings())
    srns = plans_by_title(bundle)["Steroid-resistant nephrotic syndrome (child)"]
    by_text = {a["detail"]["description"].split(" (source")[0]: a for a in srns["activity"]}
    cni = by_text[
        "Start a calcineurin inhibitor: cyclosporine 150-200 mg/m2/day (target trough per rule set) or tacrolimus."
    ]
    assert cni["detail"]["status"] == "in-progress"
    assert cni["detail"]["statusReason"]["text"].startswith("On cyclosporine since ")
    assert cni["outcomeReference"][0]["reference"].startswith("MedicationStatement/")
    biopsy = by_text["Kidney biopsy if not already done."]
    assert biopsy["detail"]["status"] == "completed" and biopsy["outcomeReference"][0]["reference"].startswith(
        "Condition/"
    )
    assert by_text["Genetic testing for monogenic SRNS (podocyte gene panel)."]["detail"]["status"] == "not-started"


def test_a_monogenic_disease_plan_says_why_immunosuppression_is_left_out() -> None:
    chart = Chart().condition({"nephrotic-syndrome"}, 0)
    chart.upcr(0, 600).albumin(0, 18).prednisolone(0, 42, 48).upcr(27, 550).albumin(27, 20)
    result = chart.genetic(40, {"podocyte-gene"}, pathogenic=True).evaluate(60)
    srns = plans_by_title(transaction([result], Settings()))["Steroid-resistant nephrotic syndrome (child)"]
    descriptions = [a["detail"]["description"] for a in srns["activity"]]
    assert not any("calcineurin inhibitor" in d.lower() and d.startswith(("Start", "With")) for d in descriptions)
    assert any("immunosuppression unlikely to help" in n["text"] for n in srns["note"])
    assert "immunosuppression unlikely to help" in srns["text"]["div"]


def test_plans_that_know_the_record_convert_to_identical_bytes_and_pass_the_output_profile() -> None:
    from fhir_ns.validate.output_profile import check_output
    from tests.chart import RULESETS

    first = orjson.dumps(transaction([cni_resistant_child()], Settings()))
    assert first == orjson.dumps(transaction([cni_resistant_child()], Settings()))
    bundle = orjson.loads(first)
    Bundle.model_validate(bundle)
    assert check_output(bundle, RULESETS) == []


def test_the_output_profile_refuses_an_activity_in_progress_without_its_evidence() -> None:
    from fhir_ns.validate.output_profile import check_output
    from tests.chart import RULESETS

    bundle = transaction([cni_resistant_child()], Settings())
    plan = plans_by_title(bundle)["Steroid-resistant nephrotic syndrome (child)"]
    cni = next(a for a in plan["activity"] if a["detail"]["status"] == "in-progress")
    del cni["outcomeReference"]
    plan["replaces"] = [{"display": "an earlier plan"}]
    messages = sorted(i.message for i in check_output(bundle, RULESETS))
    assert messages == [
        "is in-progress: needs the resources that show it",
        "names the plan it replaces by its identifier https://fhir-ns.example.org/fhir/identifier/CarePlan",
    ]
