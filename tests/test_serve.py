"""`fhir-ns serve` as an EHR meets it: a scripted CDS client calling a real uvicorn process on 127.0.0.1.

Patients are the sample bundles, their dates moved so that the sample's evaluation date is today (the
service judges as of today); the cards must say what `classify` says of the sample (samples/expected.json).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_ns.catalogue import info
from tests.cds_client import (
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    CdsService,
    as_of_today,
    expected,
    hook_request,
    patient_id_of,
    prefetch_of,
    resources_of,
    searchset,
)
from tests.test_serve_auth import KeyServer, key_server  # noqa: F401, F811 - a server recording every request

INDICATORS = {"info", "warning", "critical"}


def check_card(card: dict[str, Any]) -> None:
    """The CDS Hooks 2.0 rules for a card, as a client would enforce them."""
    assert_no_null_or_empty(card, "card")
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140, card["summary"]
    assert card["indicator"] in INDICATORS
    assert card["source"]["label"]
    uuid.UUID(card["uuid"])
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card["suggestions"]:
            assert suggestion["label"]
            uuid.UUID(suggestion["uuid"])
            for action in suggestion["actions"]:
                assert action["type"] == "create" and action["description"]
                resource = action["resource"]
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # valid R4B
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons", ()):
        assert reason["display"] and reason["code"] and reason["system"]
    for link in card.get("links", ()):
        assert link["label"] and link["url"].startswith("http") and link["type"] == "absolute"
        assert "appContext" not in link


def assert_no_null_or_empty(value: Any, where: str) -> None:
    if isinstance(value, dict):
        assert value, f"{where} is an empty object"
        for key, item in value.items():
            assert_no_null_or_empty(item, f"{where}.{key}")
    elif isinstance(value, list):
        assert value, f"{where} is an empty array"
        for i, item in enumerate(value):
            assert_no_null_or_empty(item, f"{where}[{i}]")
    else:
        assert value is not None and value != "", f"{where} is null or empty"


def patient_view(name: str, keys: tuple[str, ...] | None = None, **extra: Any) -> dict[str, Any]:
    bundle = as_of_today(name)
    return hook_request("patient-view", patient_id_of(bundle), prefetch_of(bundle, keys), **extra)


def warnings(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if c["indicator"] == "warning"]


# --- discovery and the patient-view service --------------------------------------------------------------------


def test_discovery_lists_the_three_services_with_bounded_sorted_prefetch(cds: CdsService) -> None:
    answer = cds.get("/cds-services")
    assert answer.status_code == 200
    services = {s["id"]: s for s in answer.json()["services"]}
    assert {s["hook"] for s in services.values()} == {"patient-view", "order-select", "order-sign"}
    prefetch = services[PATIENT_VIEW]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    for key in ("observations", "conditions", "medicationrequests", "procedures"):
        assert "patient={{context.patientId}}" in prefetch[key] and "_sort=-" in prefetch[key]
        assert "_count=200" in prefetch[key]
    for service in services.values():
        assert_no_null_or_empty(service, service["id"])
        assert service["description"] and service["title"]


def test_a_child_with_cni_nephrotoxicity_gets_the_category_and_one_warning_with_suggestions(cds: CdsService) -> None:
    answer = expected("cni-nephrotoxicity")
    cards = cds.cards(PATIENT_VIEW, patient_view("cni-nephrotoxicity"))
    for card in cards:
        check_card(card)
    first = cards[0]
    assert first["indicator"] == "info"
    current = info(answer["classifications"][-1]).display
    assert first["summary"].startswith(current) and "ipna-2022-child 1.0.0" in first["summary"]
    for code in answer["classifications"]:
        assert info(code).display in first["detail"]
    assert "Observation/cnitox-leo-obs-" in first["detail"]  # the evidence is cited
    created = [a["resource"] for a in first["suggestions"][0]["actions"]]
    assert {r["resourceType"] for r in created} == {"DetectedIssue", "CarePlan"}
    assert [w["summary"].split(" since ")[0] for w in warnings(cards)] == [
        info(code).display for code in answer["findings"]
    ]
    warning = warnings(cards)[0]
    assert "umol/L" in warning["detail"] and "MedicationRequest/cnitox-leo-medrq" in warning["detail"]
    assert (
        warning["overrideReasons"]
        and warning["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][1]["code"] == "cni-nephrotoxicity"
    )


def test_an_allergy_to_a_cni_in_the_prefetch_makes_the_child_cni_intolerant_in_the_info_card(cds: CdsService) -> None:
    bundle = as_of_today("cni-nephrotoxicity")
    prefetch = prefetch_of(bundle)
    assert prefetch["allergyintolerances"] is None  # the sample has none
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "cnitox-leo-allergy-tacrolimus",
        "patient": {"reference": f"Patient/{patient_id_of(bundle)}"},
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "42316"}]},
        "recordedDate": str(date.today()),
    }
    prefetch["allergyintolerances"] = searchset([allergy])
    cards = cds.cards(PATIENT_VIEW, hook_request("patient-view", patient_id_of(bundle), prefetch))
    assert info("cni-intolerant").display in cards[0]["detail"]
    assert "AllergyIntolerance/cnitox-leo-allergy-tacrolimus" in cards[0]["detail"]


def test_suggested_resources_are_the_ones_convert_writes(cds: CdsService) -> None:
    from fhir_ns.fhir.writer import Settings, device_entry, patient_entries
    from fhir_ns.pipeline import Config, explain_resources

    bundle = as_of_today("sdns-cyclophosphamide")
    cards = cds.cards(PATIENT_VIEW, hook_request("patient-view", patient_id_of(bundle), prefetch_of(bundle)))
    created = [a["resource"] for c in cards for s in c.get("suggestions", ()) for a in s["actions"]]
    _, result = explain_resources(
        [("bundle", r) for r in resources_of(bundle)], Config.load(), patient_id_of(bundle), date.today()
    )
    written = patient_entries(result, Settings(), device_entry(Settings())["fullUrl"])
    # the DetectedIssues and CarePlans (convert also writes the Provenance and the measures' Observations)
    wanted = {
        e["resource"]["identifier"][0]["value"]
        for e in written
        if e["resource"]["resourceType"] in ("DetectedIssue", "CarePlan")
    }
    wanted -= {e["resource"]["identifier"][0]["value"] for e in written if e["resource"].get("status") == "revoked"}
    assert {r["identifier"][0]["value"] for r in created} == wanted


def test_a_patient_with_no_nephrotic_evidence_gets_no_cards(cds: CdsService) -> None:
    bundle = as_of_today("ssns")
    prefetch = prefetch_of(bundle)
    prefetch["observations"]["entry"] = [
        e for e in prefetch["observations"]["entry"] if "weight" in str(e["resource"]["code"]).lower()
    ]
    prefetch["conditions"] = None
    answer = cds.call(PATIENT_VIEW, hook_request("patient-view", patient_id_of(bundle), prefetch))
    assert answer.status_code == 200 and answer.json() == {"cards": []}


def test_null_prefetch_keys_mean_no_data_and_nothing_is_fetched(cds: CdsService) -> None:
    body = patient_view("ssns")
    for key in body["prefetch"]:
        if key != "patient":
            body["prefetch"][key] = None
    answer = cds.call(PATIENT_VIEW, body)  # no fhirServer: a fetch would have made this 412
    assert answer.status_code == 200 and answer.json() == {"cards": []}


def test_absent_keys_with_no_fhir_server_are_412(cds: CdsService) -> None:
    answer = cds.call(PATIENT_VIEW, patient_view("ssns", keys=("patient", "conditions")))
    assert answer.status_code == 412


def test_an_operation_outcome_in_place_of_data_is_412_without_a_server(cds: CdsService) -> None:
    body = patient_view("ssns")
    body["prefetch"]["observations"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "search timed out"}],
    }
    assert cds.call(PATIENT_VIEW, body).status_code == 412


# --- fetching from the EHR's FHIR server -------------------------------------------------------------------------


@pytest.fixture
def loaded(fhir_server: Any) -> Any:
    fhir_server.load(as_of_today("cni-nephrotoxicity"))
    return fhir_server


def test_absent_keys_are_fetched_from_the_fhir_server_and_give_the_same_cards(
    start_cds: Callable[..., CdsService], loaded: Any
) -> None:
    cds = start_cds(fhir_servers=(loaded.base_url,))
    complete = cds.cards(PATIENT_VIEW, patient_view("cni-nephrotoxicity"))
    auth = {
        "access_token": "opaque-ehr-token-123",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read patient/Condition.read patient/MedicationRequest.read "
        "patient/MedicationStatement.read patient/MedicationAdministration.read patient/Procedure.read "
        "patient/AllergyIntolerance.read "
        "patient/Medication.read",
        "subject": "fhir-ns",
    }
    body = patient_view("cni-nephrotoxicity", keys=("patient",), fhirServer=loaded.base_url, fhirAuthorization=auth)
    fetched = cds.cards(PATIENT_VIEW, body)
    assert [c["summary"] for c in fetched] == [c["summary"] for c in complete]
    # an open server: no fhirAuthorization at all; SMART v2 scopes accepted as well
    body = patient_view("cni-nephrotoxicity", keys=("patient", "observations"), fhirServer=loaded.base_url)
    assert [c["summary"] for c in cds.cards(PATIENT_VIEW, body)] == [c["summary"] for c in complete]
    v2 = {**auth, "scope": "patient/*.rs"}
    body = patient_view("cni-nephrotoxicity", keys=(), fhirServer=loaded.base_url, fhirAuthorization=v2)
    assert [c["summary"] for c in cds.cards(PATIENT_VIEW, body)] == [c["summary"] for c in complete]
    log = cds.log()
    assert "opaque-ehr-token-123" not in log and "cnitox-leo" not in log


def test_a_token_scope_that_does_not_cover_the_data_is_412(start_cds: Callable[..., CdsService], loaded: Any) -> None:
    cds = start_cds(fhir_servers=(loaded.base_url,))
    auth = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Observation.rs",
        "subject": "x",
    }
    body = patient_view("cni-nephrotoxicity", keys=("patient",), fhirServer=loaded.base_url, fhirAuthorization=auth)
    assert cds.call(PATIENT_VIEW, body).status_code == 412


def test_a_paged_prefetch_is_completed_from_the_server_up_to_the_page_cap(
    start_cds: Callable[..., CdsService], loaded: Any
) -> None:
    patient = patient_id_of(as_of_today("cni-nephrotoxicity"))
    first_page = loaded.session.get(
        f"{loaded.base_url}/Observation", params={"patient": patient, "_count": "4", "_sort": "-date"}
    ).json()
    assert any(link["relation"] == "next" for link in first_page["link"])
    cds = start_cds(fhir_servers=(loaded.base_url,))
    complete = cds.cards(PATIENT_VIEW, patient_view("cni-nephrotoxicity"))
    body = patient_view("cni-nephrotoxicity", fhirServer=loaded.base_url)
    body["prefetch"]["observations"] = first_page
    assert [c["summary"] for c in cds.cards(PATIENT_VIEW, body)] == [c["summary"] for c in complete]
    capped = start_cds(fhir_servers=(loaded.base_url,), page_cap=1)
    cards = capped.cards(PATIENT_VIEW, body)
    assert "only the newest 1 page(s) of observations were read" in cards[0]["detail"]


def test_a_fhir_server_not_on_the_issuers_list_never_gets_the_token(
    start_cds: Callable[..., CdsService],
    key_server: KeyServer,  # noqa: F811
) -> None:
    cds = start_cds(fhir_servers=("https://ehr.example.org/fhir",))
    auth = {
        "access_token": "secret-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "x",
    }
    body = patient_view(
        "cni-nephrotoxicity", keys=("patient",), fhirServer=f"{key_server.url}/fhir", fhirAuthorization=auth
    )
    assert cds.call(PATIENT_VIEW, body).status_code == 412
    assert key_server.requests == []  # not one request: the token went nowhere
    assert "secret-token" not in cds.log()


# --- feedback and snoozing -------------------------------------------------------------------------------------


def test_an_overridden_warning_is_not_shown_again_for_that_patient_and_evidence(cds: CdsService) -> None:
    cards = cds.cards(PATIENT_VIEW, patient_view("cni-level-out-of-range"))
    warning = warnings(cards)[0]
    reason = {"code": warning["overrideReasons"][0]["code"], "system": warning["overrideReasons"][0]["system"]}
    answer = cds.feedback(
        PATIENT_VIEW,
        {
            "card": warning["uuid"],
            "outcome": "overridden",
            "overrideReason": {"reason": reason, "userComment": "dose already reduced"},  # a reason with no display
            "outcomeTimestamp": "2026-01-01T10:00:00Z",
        },
    )
    assert answer.status_code == 200
    again = cds.cards(PATIENT_VIEW, patient_view("cni-level-out-of-range"))
    assert [c["indicator"] for c in again] == ["info"]
    # new evidence (another trough out of range) is a new card
    later = patient_view("cni-level-out-of-range")
    observations = later["prefetch"]["observations"]["entry"]
    trough = max(
        (e["resource"] for e in observations if "tacrolimus" in str(e["resource"]["code"]).lower()),
        key=lambda r: r["effectiveDateTime"],
    )
    newer = {**trough, "id": "cnilvl-later-trough", "effectiveDateTime": f"{date.today()}T08:00:00+01:00"}
    newer["valueQuantity"] = {**trough["valueQuantity"], "value": 14.2}  # target 5-10 ng/mL
    observations.append({"resource": newer})
    shown = warnings(cds.cards(PATIENT_VIEW, later))
    assert len(shown) == 1 and "cnilvl-later-trough" in shown[0]["detail"]


def test_accepted_feedback_is_stored_and_does_not_snooze(cds: CdsService) -> None:
    cards = cds.cards(PATIENT_VIEW, patient_view("cni-nephrotoxicity"))
    warning = warnings(cards)[0]
    accepted = {
        "card": warning["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": warning["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-01-01T10:00:00Z",
    }
    assert cds.feedback(PATIENT_VIEW, accepted).status_code == 200
    assert len(warnings(cds.cards(PATIENT_VIEW, patient_view("cni-nephrotoxicity")))) == 1
    assert cds.feedback(PATIENT_VIEW, {"card": warning["uuid"], "outcome": "maybe"}).status_code == 400


# --- order hooks ---------------------------------------------------------------------------------------------


def draft_order(patient_id: str, medication: dict[str, Any], mg_per_day: float, days: int) -> dict[str, Any]:
    start = date.today()
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{uuid.uuid4().hex[:8]}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": start.isoformat(),
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {
                            "start": start.isoformat(),
                            "end": (start + timedelta(days=days - 1)).isoformat(),
                        },
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": mg_per_day,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CYCLOSPORINE = {"coding": [{"system": RXNORM, "code": "3008", "display": "cyclosporine"}], "text": "cyclosporine"}
CYCLOPHOSPHAMIDE = {
    "coding": [{"system": RXNORM, "code": "3002", "display": "cyclophosphamide"}],
    "text": "cyclophosphamide",
}
PREDNISONE = {"coding": [{"system": RXNORM, "code": "8640", "display": "prednisone"}], "text": "prednisone"}
AMOXICILLIN = {"coding": [{"system": RXNORM, "code": "723", "display": "amoxicillin"}], "text": "amoxicillin"}


def order_request(
    hook: str, patient_id: str, prefetch: dict[str, Any] | None, *orders: dict[str, Any]
) -> dict[str, Any]:
    drafts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]}
    return hook_request(hook, patient_id, prefetch, context={"draftOrders": drafts})


def test_an_empty_or_unrelated_order_gets_no_cards_and_no_data_is_asked_for(cds: CdsService) -> None:
    # no prefetch and no fhirServer: any attempt to read the record would be a 412
    assert cds.cards(ORDER_SELECT, order_request("order-select", "p1", None)) == []
    amoxicillin = draft_order("p1", AMOXICILLIN, 750, 7)
    assert cds.cards(ORDER_SELECT, order_request("order-select", "p1", None, amoxicillin)) == []
    cyclosporine = draft_order("p1", CYCLOSPORINE, 150, 90)
    assert cds.call(ORDER_SELECT, order_request("order-select", "p1", None, cyclosporine)).status_code == 412
    # order-select checks the orders just selected; a cyclosporine selected earlier in the session is not re-read
    body = order_request("order-select", "p1", None, cyclosporine, amoxicillin)
    body["context"]["selections"] = [f"MedicationRequest/{amoxicillin['id']}"]
    assert cds.cards(ORDER_SELECT, body) == []


def test_a_cni_ordered_while_creatinine_is_rising_is_warned_on_select_and_sign(cds: CdsService) -> None:
    bundle = as_of_today("cni-nephrotoxicity")
    patient = patient_id_of(bundle)
    order = draft_order(patient, CYCLOSPORINE, 150, 90)
    for hook, service in (("order-select", ORDER_SELECT), ("order-sign", ORDER_SIGN)):
        cards = cds.cards(service, order_request(hook, patient, prefetch_of(bundle), order))
        summaries = [c["summary"].split(" since ")[0] for c in cards]
        assert f"cyclosporine order: {info('cni-nephrotoxicity').display}" in summaries
        # the order on top of the active one (140 mg/day) also puts the dose above the rule set's range
        assert set(summaries) <= {
            f"cyclosporine order: {info(c).display}" for c in ("cni-nephrotoxicity", "dose-out-of-range")
        }
        for card in cards:
            check_card(card)
    # overridden on order-select, the same warning is not repeated at order-sign; patient-view still shows it
    cards = cds.cards(ORDER_SELECT, order_request("order-select", patient, prefetch_of(bundle), order))
    for card in cards:
        overridden = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z"}
        assert cds.feedback(ORDER_SELECT, overridden).status_code == 200
    assert cds.cards(ORDER_SIGN, order_request("order-sign", patient, prefetch_of(bundle), order)) == []
    assert len(warnings(cds.cards(PATIENT_VIEW, hook_request("patient-view", patient, prefetch_of(bundle))))) == 1


def test_a_cni_ordered_after_an_out_of_range_last_trough_is_warned(cds: CdsService) -> None:
    bundle = as_of_today("cni-level-out-of-range")  # troughs 12.8 and 13.5 ng/mL, then 8.9 (target 5-10)
    patient = patient_id_of(bundle)
    tacrolimus = {"coding": [{"system": RXNORM, "code": "42316", "display": "tacrolimus"}], "text": "tacrolimus"}
    order = draft_order(patient, tacrolimus, 2, 90)
    assert cds.cards(ORDER_SIGN, order_request("order-sign", patient, prefetch_of(bundle), order)) == []
    prefetch = prefetch_of(bundle)
    troughs = [
        e["resource"] for e in prefetch["observations"]["entry"] if "tacrolimus" in str(e["resource"]["code"]).lower()
    ]
    last = max(troughs, key=lambda r: r["effectiveDateTime"])
    last["valueQuantity"]["value"] = 11.6
    cards = cds.cards(ORDER_SIGN, order_request("order-sign", patient, prefetch, order))
    assert [c["summary"].split(" since ")[0] for c in cards] == [
        f"tacrolimus order: {info('cni-level-out-of-range').display}"
    ]
    assert "latest 11.6 ng/mL" in cards[0]["detail"]


def test_cyclophosphamide_that_would_pass_the_cumulative_limit_is_warned(cds: CdsService) -> None:
    bundle = as_of_today("sdns-cyclophosphamide")
    bundle["entry"] = [e for e in bundle["entry"] if "cyclophosphamide" not in str(e["resource"]).lower()]
    patient = patient_id_of(bundle)
    twelve_weeks = draft_order(patient, CYCLOPHOSPHAMIDE, 45, 84)
    cards = cds.cards(ORDER_SIGN, order_request("order-sign", patient, prefetch_of(bundle), twelve_weeks))
    assert [c["summary"].split(" since ")[0] for c in cards] == [
        f"cyclophosphamide order: {info('cyclophosphamide-cumulative-dose').display}"
    ]
    assert "mg/kg" in cards[0]["detail"] and twelve_weeks["id"] in cards[0]["detail"]
    two_weeks = draft_order(patient, CYCLOPHOSPHAMIDE, 45, 14)
    assert cds.cards(ORDER_SIGN, order_request("order-sign", patient, prefetch_of(bundle), two_weeks)) == []


def test_a_high_dose_steroid_for_a_patient_with_an_active_contraindication_is_warned(cds: CdsService) -> None:
    bundle = as_of_today("steroid-intolerant")
    patient = patient_id_of(bundle)
    cards = cds.cards(
        ORDER_SIGN, order_request("order-sign", patient, prefetch_of(bundle), draft_order(patient, PREDNISONE, 60, 28))
    )
    assert [c["summary"].split(" since ")[0] for c in cards] == [
        f"prednisone order: {info('steroid-intolerance').display}"
    ]
    # the same order for a patient without a contraindication: nothing to say
    other = as_of_today("ssns")
    pid = patient_id_of(other)
    assert (
        cds.cards(
            ORDER_SIGN, order_request("order-sign", pid, prefetch_of(other), draft_order(pid, PREDNISONE, 45, 28))
        )
        == []
    )


# --- security ------------------------------------------------------------------------------------------------


def test_only_fresh_tokens_for_this_endpoint_from_the_trusted_ehr_are_accepted(cds: CdsService) -> None:
    from tests.test_serve_auth import SigningKey, unsigned

    path = f"/cds-services/{PATIENT_VIEW}"
    body = patient_view("ssns")
    assert cds.call(PATIENT_VIEW, body).status_code == 200
    token = cds.token(path)
    assert cds.call(PATIENT_VIEW, body, token).status_code == 200
    replayed = cds.call(PATIENT_VIEW, body, token)
    assert replayed.status_code == 401 and replayed.content == b""
    assert cds.call(PATIENT_VIEW, body, cds.token(path, exp=1_600_000_000, iat=1_599_999_900)).status_code == 401
    assert cds.call(PATIENT_VIEW, body, cds.token("/cds-services")).status_code == 401  # aud of another endpoint
    assert cds.call(PATIENT_VIEW, body, cds.token(path, iss="https://intruder.example.org")).status_code == 401
    stranger = SigningKey.new("ES384", kid=cds.key.kid)
    assert cds.call(PATIENT_VIEW, body, stranger.token(aud=f"{cds.base}{path}")).status_code == 401
    claims = {"iss": "https://ehr.example.org", "aud": f"{cds.base}{path}", "exp": 9_999_999_999, "iat": 1, "jti": "x"}
    assert (
        cds.call(PATIENT_VIEW, body, unsigned({"alg": "none", "typ": "JWT", "kid": cds.key.kid}, claims)).status_code
        == 401
    )
    assert cds.post(f"{path}/feedback", {"feedback": []}, token).status_code == 401
    log = cds.log()
    assert token not in log and token.split(".")[1] not in log


def test_logs_hold_no_token_no_patient_and_no_link(cds: CdsService) -> None:
    bundle = as_of_today("cni-nephrotoxicity")
    body = hook_request(
        "patient-view",
        patient_id_of(bundle),
        prefetch_of(bundle),
        fhirAuthorization={
            "access_token": "ehr-access-token-xyz",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "x",
        },
    )
    token = cds.token(f"/cds-services/{PATIENT_VIEW}")
    cards = cds.call(PATIENT_VIEW, body, token).json()["cards"]
    link = cards[0]["links"][0]["url"]
    assert cds.session.get(link, timeout=60).status_code == 200
    log = cds.log()
    assert "POST /cds-services/{service_id} 200" in log and "GET /timeline/{token} 200" in log
    for secret in (token, "ehr-access-token-xyz", patient_id_of(bundle), link.rsplit("/", 1)[1]):
        assert secret not in log


def test_browser_clients_of_an_allowed_origin_get_cors_headers(start_cds: Callable[..., CdsService]) -> None:
    cds = start_cds(cors_origins=["https://sandbox.example.org"])
    preflight = {
        "Origin": "https://sandbox.example.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    answer = cds.session.options(f"{cds.base}/cds-services/{PATIENT_VIEW}", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://sandbox.example.org"
    other = cds.session.options(
        f"{cds.base}/cds-services/{PATIENT_VIEW}", headers={**preflight, "Origin": "https://evil.example.org"}
    )
    assert "access-control-allow-origin" not in other.headers


# --- the timeline page ---------------------------------------------------------------------------------------


def test_the_card_link_opens_the_timeline_picture_and_explanation_in_a_browser(
    cds: CdsService, browser: Any, artefact: Callable[[str], Path]
) -> None:
    bundle = as_of_today("cni-nephrotoxicity")
    cards = cds.cards(PATIENT_VIEW, hook_request("patient-view", patient_id_of(bundle), prefetch_of(bundle)))
    link = cards[0]["links"][0]["url"]
    assert patient_id_of(bundle) not in link
    browser.set_window_size(1400, 1800)
    browser.get(link)
    assert browser.title == "fhir-ns timeline"
    figure = browser.find_element("css selector", "#timeline svg")
    assert figure.size["width"] > 600 and figure.size["height"] > 300  # drawn, not an empty box
    explanation = browser.find_element("id", "explanation").text
    assert f"Patient {patient_id_of(bundle)}" in explanation
    assert info("cni-nephrotoxicity").display in explanation and "Observation/cnitox-leo-obs-" in explanation
    assert "ipna-2022-child|1.0.0" in browser.find_element("id", "ruleset").text
    shot = artefact("timeline-page.png")
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    browser.get(link.rsplit(".", 1)[0] + ".forged-signature")
    assert "expired" in browser.find_element("tag name", "h1").text


def test_a_configuration_without_trusted_clients_stops_the_service_before_it_listens(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fhir_ns.cli import cli

    config = tmp_path / "serve.yaml"
    config.write_text("public_url: https://cds.example.org\nstate_dir: state\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 3 and "auth.issuers" in result.output
    config.write_text("public_url: https://cds.example.org\nsnoze_days: 3\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 3 and "unknown serve setting(s): snoze_days" in result.output


def test_a_record_with_an_unreadable_resource_gets_no_classification_but_says_why(cds: CdsService) -> None:
    body = patient_view("ssns")
    broken = body["prefetch"]["observations"]["entry"][0]["resource"]
    broken["effectiveDateTime"] = "2023-13-45"
    cards = cds.cards(PATIENT_VIEW, body)
    assert [c["summary"] for c in cards] == ["fhir-ns cannot classify this patient: the record's data has errors"]
    assert broken["id"] in cards[0]["detail"] and "suggestions" not in cards[0]
    check_card(cards[0])
