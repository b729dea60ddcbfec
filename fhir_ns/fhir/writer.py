"""Results to FHIR R4: DetectedIssue, CarePlan, measure Observations and Provenance per patient, in an idempotent
transaction Bundle.

Every DetectedIssue and CarePlan carries a deterministic identifier (patient, code, rule set version,
start of its evidence window), every measure Observation one of (patient, measure, rule set version, therapy,
period start; the state at evaluation one per patient), and each is written by conditional update on it, so writing the same
results twice changes nothing. Provenance (no identifier in R4) is written by PUT to an id derived
from its targets. Nothing here depends on the clock: the same input gives byte-identical output.
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson

from fhir_ns import __version__
from fhir_ns.catalogue import DEFAULT_CANONICAL_BASE, info
from fhir_ns.output import indented
from fhir_ns.rules.result import Classification, Finding, Measure, PatientResult, Proposal, ProposedActivity

V3_ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_DISPLAY = {
    "OBSA": "Observation Alert",
    "COND": "Condition Alert",
    "LAB": "Lab Alert",
    "GEN": "Genetic Alert",
    "INT": "Intolerance Alert",
    "PREVINEF": "previously ineffective",
    "DOSELINDSA": "Low Dose for Height/Surface Area Alert",
    "DOSEHINDSA": "High Dose for Height/Surface Area Alert",
    "DOSELINDW": "Low Dose for Weight Alert",
    "DOSEHINDW": "High Dose for Weight Alert",
    "DOSEDURL": "Dose-Duration Low Alert",
    "DOSEDURH": "Dose-Duration High Alert",
}
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
# A derived measure of the patient's course: "survey" is the R4 observation-category for assessments made
# by a tool rather than measured by a device or a lab.
MEASURE_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "survey",
    "display": "Survey",
}
UNIT_DISPLAY = {"1": "relapses", "/a": "per year", "mg/kg": "mg/kg on alternate days", "d": "days"}
CARE_PLAN_CATEGORY = {"system": SNOMED, "code": "734163000", "display": "Care plan"}
RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
DECISION_SUPPORT = (
    "Decision support computed by fhir-ns from the patient's record; a proposal for the treating "
    "clinician to review, not an order."
)


@dataclass(frozen=True, slots=True)
class Settings:
    canonical_base: str = DEFAULT_CANONICAL_BASE

    def ruleset_canonical(self, result: PatientResult) -> str:
        return f"{self.canonical_base}/ruleset/{result.ruleset.id}|{result.ruleset.version}"

    def code_system(self, system_id: str) -> str:
        return f"{self.canonical_base}/CodeSystem/{system_id}"

    def identifier_system(self, rtype: str) -> str:
        return f"{self.canonical_base}/identifier/{rtype}"


def reference(source: str) -> dict[str, str]:
    """A Reference to an input resource: relative or absolute when it has one, else only a display."""
    if RELATIVE_REFERENCE.match(source) or source.startswith(("http://", "https://")):
        return {"reference": source}
    return {"display": source}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(parts)))


def _identifier_value(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


def _conditional(rtype: str, identifier: dict[str, str]) -> dict[str, str]:
    token = quote(f"{identifier['system']}|{identifier['value']}", safe=":/")
    return {"method": "PUT", "url": f"{rtype}?identifier={token}"}


def _narrative(title: str, lines: list[str]) -> dict[str, str]:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p><b>{html.escape(title)}</b></p><ul>{items}</ul></div>',
    }


def _marked(text: str, result: PatientResult) -> str:
    """A sentence of the output, followed by the mark of an evaluation with unreadable input skipped."""
    return f"{text} {result.incomplete_input}" if result.incomplete_input else text


def device_entry(settings: Settings) -> dict[str, Any]:
    identifier = {"system": settings.identifier_system("Device"), "value": "fhir-ns"}
    device = {
        "resourceType": "Device",
        "identifier": [identifier],
        "status": "active",
        "manufacturer": "fhir-ns project",
        "deviceName": [{"name": "fhir-ns", "type": "user-friendly-name"}],
        "version": [{"value": __version__}],
    }
    return {
        "fullUrl": f"urn:uuid:{_uuid('device', identifier['system'], identifier['value'])}",
        "resource": device,
        "request": _conditional("Device", identifier),
    }


def patient_entries(
    result: PatientResult, settings: Settings, device_url: str, superseded: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The entries that write one patient's results: DetectedIssues, CarePlans, then one Provenance.

    `superseded` are DetectedIssues/CarePlans written earlier that the results no longer contain: they
    are written back as `cancelled` / `revoked` (never deleted), and the new draft CarePlans `replaces` them
    (besides the plans the rules themselves revoked, which their successors already replace).
    """
    issues: list[tuple[str, dict[str, Any], str]] = []  # (code, entry, fullUrl)
    items: list[Classification | Finding] = [*result.classifications, *result.findings]
    for item in items:
        entry = _detected_issue(result, item, settings)
        issues.append((item.code, entry, entry["fullUrl"]))
    plans = _care_plans(result, settings, {code: entry for code, entry, _ in issues})
    withdrawn = [_withdrawn(resource, result) for resource in superseded]
    revoked = [e["resource"] for e in withdrawn if e["resource"]["resourceType"] == "CarePlan"]
    if revoked:
        for plan in plans:
            if plan["resource"]["status"] == "draft":
                plan["resource"]["replaces"] = [
                    *plan["resource"].get("replaces", ()),
                    *({"identifier": r["identifier"][0], "display": r.get("title", "")} for r in revoked),
                ]
    measures = [_measure(result, m, settings) for m in result.measures]
    entries = [e for _, e, _ in issues] + plans + measures + withdrawn
    if entries:
        entries.append(_provenance(result, settings, entries, device_url))
    return entries


def _withdrawn(resource: dict[str, Any], result: PatientResult) -> dict[str, Any]:
    """An earlier DetectedIssue set to cancelled, or CarePlan set to revoked, saying why."""
    copy = orjson.loads(orjson.dumps(resource))
    why = f"Withdrawn on {result.as_of}: no longer found by fhir-ns under {result.ruleset.ref}."
    if copy["resourceType"] == "DetectedIssue":
        copy["status"] = "cancelled"
        copy["detail"] = f"{why} {copy.get('detail', '')}".strip()
    elif copy["resourceType"] == "Observation":
        copy["status"] = "cancelled"
        copy["note"] = [{"text": why}, *copy.get("note", [])]
    else:
        copy["status"] = "revoked"
        copy["description"] = f"{why} {copy.get('description', '')}".strip()
    copy.pop("id", None)
    copy.pop("meta", None)
    for ref in copy.get("supportingInfo", []):
        if str(ref.get("reference", "")).startswith("urn:uuid:"):
            del ref["reference"]
    identifier = copy["identifier"][0]
    return {
        "fullUrl": f"urn:uuid:{_uuid(identifier['system'], identifier['value'])}",
        "resource": copy,
        "request": _conditional(copy["resourceType"], identifier),
    }


def _detected_issue(result: PatientResult, item: Classification | Finding, settings: Settings) -> dict[str, Any]:
    meta = info(item.code)
    severity = item.severity if isinstance(item, Finding) else meta.severity
    category = item.category if isinstance(item, Finding) else meta.category
    identifier = {
        "system": settings.identifier_system("DetectedIssue"),
        "value": _identifier_value(
            "DetectedIssue", result.patient_reference, item.code, result.ruleset.ref, item.since.isoformat()
        ),
    }
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "identifier": [identifier],
        "status": "preliminary",
        "code": {
            "coding": [
                {"system": V3_ACTCODE, "code": category, "display": V3_DISPLAY.get(category, category)},
                {"system": settings.code_system(meta.system_id), "code": item.code, "display": meta.display},
            ],
            "text": meta.display,
        },
        "severity": severity,
        "patient": {"reference": result.patient_reference},
        "identifiedDateTime": result.as_of.isoformat(),
        "author": {"display": f"fhir-ns {__version__}"},
        "detail": _marked(
            f"{meta.display} since {item.since}: {item.reason}. Rule set {result.ruleset.ref}. {DECISION_SUPPORT}",
            result,
        ),
        "reference": settings.ruleset_canonical(result),
    }
    implicated = [reference(s) for s in getattr(item, "implicated", ())]
    if implicated:
        resource["implicated"] = implicated
    if item.evidence:
        resource["evidence"] = [{"detail": [reference(s) for s in item.evidence]}]
    resource["text"] = _narrative(
        f"{meta.display} (decision support)", [f"Since {item.since}: {item.reason}", f"Rule set: {result.ruleset.ref}"]
    )
    return {
        "fullUrl": f"urn:uuid:{_uuid(identifier['system'], identifier['value'])}",
        "resource": resource,
        "request": _conditional("DetectedIssue", identifier),
    }


def _measure(result: PatientResult, m: Measure, settings: Settings) -> dict[str, Any]:
    """A measure (RULES.md §9) as a derived Observation: ns-measure code, the period, a UCUM quantity or a state
    code, derived from the Observations it rests on (R4 allows no other type there; the Provenance cites all)."""
    meta = info(m.code)
    # a period is known by its start (its end moves with the evaluation date); the state at evaluation is one
    # resource per patient and rule set, updated in place as the evaluation date moves
    period = ("",) if m.code == "state-at-evaluation" else (m.therapy or "", m.start.isoformat())
    identifier = {
        "system": settings.identifier_system("Observation"),
        "value": _identifier_value("Observation", result.patient_reference, m.code, result.ruleset.ref, *period),
    }
    text = f"{meta.display}: {m.reason}."
    if m.censored:
        text += " Censored: no event by the end of the period."
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [identifier],
        "status": "final",
        "category": [{"coding": [MEASURE_CATEGORY]}],
        "code": {
            "coding": [{"system": settings.code_system(meta.system_id), "code": m.code, "display": meta.display}],
            "text": meta.display,
        },
        "subject": {"reference": result.patient_reference},
        "effectivePeriod": {"start": m.start.isoformat(), "end": m.end.isoformat()},
    }
    if isinstance(m.value, str):
        state = info(m.value)
        resource["valueCodeableConcept"] = {
            "coding": [{"system": settings.code_system(state.system_id), "code": m.value, "display": state.display}],
            "text": state.display,
        }
    elif m.value is not None and m.unit is not None:
        value = m.value if isinstance(m.value, int) else round(m.value, 3)
        resource["valueQuantity"] = {
            "value": value,
            "unit": UNIT_DISPLAY.get(m.unit, m.unit),
            "system": UCUM,
            "code": m.unit,
        }
    resource["note"] = [{"text": _marked(f"{text} Rule set {result.ruleset.ref}. {DECISION_SUPPORT}", result)}]
    if m.evidence:
        resource["note"].append({"text": f"Evidence: {', '.join(m.evidence)}."})
    derived = [reference(s) for s in m.evidence if s.startswith("Observation/") and "reference" in reference(s)]
    if derived:
        resource["derivedFrom"] = derived
    resource["text"] = _narrative(f"{meta.display} (decision support)", [text, f"Rule set: {result.ruleset.ref}"])
    return {
        "fullUrl": f"urn:uuid:{_uuid(identifier['system'], identifier['value'])}",
        "resource": resource,
        "request": _conditional("Observation", identifier),
    }


def _plan_identifier(result: PatientResult, settings: Settings, proposal: Proposal) -> dict[str, str]:
    since = proposal.trigger.since.isoformat() if proposal.trigger else ""
    return {
        "system": settings.identifier_system("CarePlan"),
        "value": _identifier_value("CarePlan", result.patient_reference, proposal.template, result.ruleset.ref, since),
    }


def _care_plans(result: PatientResult, settings: Settings, issues: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The CarePlans of `result.proposals`, as the rules left them: status, activities, notes, replaces."""
    by_template = {p.template: p for p in result.proposals}
    entries = []
    for proposal in result.proposals:
        trigger = proposal.trigger
        identifier = _plan_identifier(result, settings, proposal)
        why = (
            f"Proposed because of {info(trigger.code).display.lower()} since {trigger.since} "
            f"({result.ruleset.ref}): {trigger.reason}."
            if trigger
            else f"Supportive care for nephrotic syndrome ({result.ruleset.ref})."
        )
        if proposal.superseded_by is not None:
            later = proposal.superseded_by
            why = (
                f"Superseded on {later.since} by {info(later.code).display.lower()} ({result.ruleset.ref}): "
                f"no longer the current plan. {why}"
            )
        resource: dict[str, Any] = {
            "resourceType": "CarePlan",
            "identifier": [identifier],
            "instantiatesCanonical": [settings.ruleset_canonical(result)],
            "status": proposal.status,
            "intent": proposal.intent,
            "category": [{"coding": [CARE_PLAN_CATEGORY]}],
            "title": proposal.title,
            "description": _marked(f"{why} {DECISION_SUPPORT}", result),
            "subject": {"reference": result.patient_reference},
            "created": result.as_of.isoformat(),
        }
        replaced = [by_template[t] for t in proposal.replaces if t in by_template]
        if replaced:
            resource["replaces"] = [
                {"identifier": _plan_identifier(result, settings, r), "display": r.title} for r in replaced
            ]
        if proposal.activities:
            resource["activity"] = [_activity(a) for a in proposal.activities]
        resource["note"] = [*({"text": n} for n in proposal.notes), {"text": DECISION_SUPPORT}]
        addresses = [reference(c) for c in result.conditions if "reference" in reference(c)]
        if addresses:
            resource["addresses"] = addresses
        codes = [c.code for c in (trigger, proposal.superseded_by) if c is not None]
        supporting = (
            [issues[c] for c in codes if c in issues]
            if trigger
            else [issues[c.code] for c in result.classifications if c.code in issues]
        )
        if supporting:
            # the identifier keeps the link meaningful after the transaction's urn:uuid is gone
            unique = {e["fullUrl"]: e for e in supporting}
            resource["supportingInfo"] = [
                {"reference": url, "identifier": e["resource"]["identifier"][0]} for url, e in unique.items()
            ]
        resource["text"] = _narrative(
            f"{proposal.title} ({'superseded, ' if proposal.status == 'revoked' else ''}proposal, decision support)",
            [
                why,
                *(
                    f"{a.text} ({a.source})" + (f" [{a.status.replace('-', ' ')}: {a.evidence}]" if a.evidence else "")
                    for a in proposal.activities
                ),
                *proposal.notes,
            ],
        )
        entries.append(
            {
                "fullUrl": f"urn:uuid:{_uuid(identifier['system'], identifier['value'])}",
                "resource": resource,
                "request": _conditional("CarePlan", identifier),
            }
        )
    return entries


def _activity(activity: ProposedActivity) -> dict[str, Any]:
    detail: dict[str, Any] = {"status": activity.status}
    if activity.evidence:
        detail["statusReason"] = {"text": activity.evidence[0].upper() + activity.evidence[1:]}
    detail["description"] = f"{activity.text} (source: {activity.source})"
    out: dict[str, Any] = {}
    if activity.sources:
        out["outcomeReference"] = [reference(s) for s in activity.sources]
    out["detail"] = detail
    return out


def _provenance(
    result: PatientResult, settings: Settings, entries: list[dict[str, Any]], device_url: str
) -> dict[str, Any]:
    targets = [e["fullUrl"] for e in entries]
    sources: dict[str, None] = {}
    items: list[Classification | Finding] = [*result.classifications, *result.findings]
    for item in items:
        for s in item.evidence:
            sources[s] = None
    for m in result.measures:
        for s in m.evidence:
            sources[s] = None
    pid = _uuid("provenance", result.patient_reference, result.ruleset.ref, *sorted(targets))
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": pid,
        "target": [{"reference": t} for t in targets],
        "recorded": f"{result.as_of.isoformat()}T00:00:00Z",
        "policy": [settings.ruleset_canonical(result)],
        **({"reason": [{"text": result.incomplete_input}]} if result.incomplete_input else {}),
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": {"reference": device_url},
            }
        ],
        "entity": [{"role": "source", "what": reference(s)} for s in sources],
    }
    if not resource["entity"]:
        del resource["entity"]
    return {
        "fullUrl": f"urn:uuid:{pid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"Provenance/{pid}"},
    }


def transaction(results: list[PatientResult], settings: Settings) -> dict[str, Any]:
    """One R4 transaction Bundle writing every patient's results (the Device first)."""
    device = device_entry(settings)
    entries = [device]
    for result in results:
        entries.extend(patient_entries(result, settings, device["fullUrl"]))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def transaction_json(patients: Iterable[bytes], settings: Settings) -> Iterator[bytes]:
    """`transaction()` as orjson's OPT_INDENT_2 writes it, byte for byte, in pieces as they come: each
    patient's entries as `entries_json` renders them (so a Bundle of any size is written as it is produced)."""
    device = indented(orjson.dumps(device_entry(settings), option=orjson.OPT_INDENT_2), 4)
    yield b'{\n  "resourceType": "Bundle",\n  "type": "transaction",\n  "entry": [\n' + device
    for entries in patients:
        if entries:
            yield b",\n" + entries
    yield b"\n  ]\n}"


class PatientEntries(NamedTuple):
    """One patient's entries as they sit in `transaction_json`, and how many there are."""

    patient: str
    size: int  # entries
    json: bytes


def patient_json(result: PatientResult, settings: Settings) -> PatientEntries:
    """One patient's entries (`patient_entries`), rendered for `transaction_json`, counted."""
    device_url = device_entry(settings)["fullUrl"]
    entries = patient_entries(result, settings, device_url)
    rendered = b",\n".join(indented(orjson.dumps(entry, option=orjson.OPT_INDENT_2), 4) for entry in entries)
    return PatientEntries(result.patient_id, len(entries), rendered)


def entries_json(result: PatientResult, settings: Settings) -> bytes:
    """One patient's entries (`patient_entries`) as they sit in `transaction_json`."""
    return patient_json(result, settings).json
