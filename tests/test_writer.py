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
    written = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] in ("DetectedIssue", "CarePlan")}
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
