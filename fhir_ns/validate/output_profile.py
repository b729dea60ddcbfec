"""Layer 6: the fhir-ns output profile: the DetectedIssue, CarePlan, measure Observation and Provenance fhir-ns writes.

A resource is taken as fhir-ns output when it carries a fhir-ns identifier (`<base>/identifier/<Type>`)
or, for Provenance, a rule-set policy (`<base>/ruleset/<id>|<version>`). What it must then have is what
the writer promises (README "Write"): a deterministic identifier, the rule set named by canonical URL
with a version fhir-ns knows, codes from the project's CodeSystems, evidence, CarePlans as draft
proposals (revoked when superseded, replacing by identifier; each activity not started, in progress or
completed, the last two citing the record), measure Observations final with an ns-measure code, the patient,
the period and a UCUM quantity or a state code, a Provenance with the rule set as policy and the fhir-ns Device as agent, and in a
transaction a conditional update on the identifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from fhir_ns.catalogue import catalogue
from fhir_ns.ruleset import RuleSet
from fhir_ns.validate.issues import Issue, join

V3_ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
IDENTIFIER = re.compile(r"^(?P<base>.+)/identifier/(?P<type>DetectedIssue|CarePlan|Observation|Device)$")
UCUM = "http://unitsofmeasure.org"
MEASURE_STATUSES = {"final", "cancelled"}  # new, or withdrawn when a later run no longer gives it
RULESET = re.compile(r"^(?P<base>.+)/ruleset/(?P<id>[^/|]+)\|(?P<version>.+)$")
ISSUE_STATUSES = {"preliminary", "cancelled", "entered-in-error"}  # new, or superseded (NOTES: sync)
PLAN_STATUSES = {"draft", "revoked"}
PLAN_INTENTS = {"proposal", "option"}
ACTIVITY_STATUSES = {"not-started", "in-progress", "completed"}  # where the record stands on it (RULES.md §11)


def _error(message: str, path: str, code: str = "invalid") -> Issue:
    return Issue("error", code, message, "output-profile", path)


def fhir_ns_base(resource: dict[str, Any]) -> str | None:
    """The canonical base of a resource fhir-ns wrote, or None when fhir-ns did not write it."""
    for identifier in resource.get("identifier") or []:
        match = IDENTIFIER.match(str(identifier.get("system", ""))) if isinstance(identifier, dict) else None
        if match and match["type"] == resource.get("resourceType"):
            return match["base"]
    if resource.get("resourceType") == "Provenance":
        for policy in resource.get("policy") or []:
            match = RULESET.match(str(policy))
            if match:
                return match["base"]
    return None


def check_output(doc: dict[str, Any], rulesets: dict[str, RuleSet]) -> list[Issue]:
    """Check every fhir-ns resource in a document (a Bundle's entries, or one resource)."""
    if doc.get("resourceType") != "Bundle":
        return _check_resource(doc, "", rulesets)
    issues: list[Issue] = []
    entries = [e for e in doc.get("entry") or [] if isinstance(e, dict)]
    by_url = {e.get("fullUrl"): e.get("resource") for e in entries if isinstance(e.get("resource"), dict)}

    def kind_of(url: str) -> str | None:
        return _kind(by_url[url]) if url in by_url else None

    for index, entry in enumerate(doc.get("entry") or []):
        issues.extend(check_output_entry(entry, index, doc.get("type"), kind_of, rulesets))
    return issues


def writes(entry: Any) -> bool:
    """Whether a Bundle entry holds a resource fhir-ns wrote (what `check_output_entry` checks)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    return isinstance(resource, dict) and fhir_ns_base(resource) is not None


def check_output_entry(
    entry: Any, index: int, bundle_type: Any, kind_of: Callable[[str], str | None], rulesets: dict[str, RuleSet]
) -> list[Issue]:
    """Check one entry of a Bundle of type `bundle_type`, if fhir-ns wrote its resource; `kind_of`: the
    resourceType of the Bundle's entry with a fullUrl (its last), "" when not a string, None when there is none."""
    if not writes(entry):
        return []
    resource = entry["resource"]
    where = f"entry[{index}]"
    issues = _check_resource(resource, join(where, "resource"), rulesets)
    if bundle_type == "transaction":
        issues.extend(_check_request(resource, entry.get("request"), where))
    if resource.get("resourceType") == "Provenance":
        issues.extend(_check_provenance_links(resource, kind_of, join(where, "resource")))
    return issues


def _kind(resource: Any) -> str:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    return rtype if isinstance(rtype, str) else ""


def _check_resource(res: dict[str, Any], at: str, rulesets: dict[str, RuleSet]) -> list[Issue]:
    base = fhir_ns_base(res)
    if base is None:
        return []
    rtype = res["resourceType"]
    issues: list[Issue] = []
    if rtype in ("DetectedIssue", "CarePlan", "Observation"):
        ids = [
            i
            for i in res.get("identifier") or []
            if isinstance(i, dict) and i.get("system") == f"{base}/identifier/{rtype}"
        ]
        if len(ids) != 1 or not ids[0].get("value"):
            issues.append(
                _error(
                    f"needs exactly one identifier {base}/identifier/{rtype} with a value",
                    join(at, "identifier"),
                    "required",
                )
            )
    if rtype == "DetectedIssue":
        issues += _check_ruleset(res.get("reference"), base, rulesets, join(at, "reference"))
        if res.get("status") not in ISSUE_STATUSES:
            issues.append(
                _error(
                    f"status {res.get('status')!r}: fhir-ns writes {' or '.join(sorted(ISSUE_STATUSES))}",
                    join(at, "status"),
                    "value",
                )
            )
        codings = [c for c in (res.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
        if not any(c.get("system") == V3_ACTCODE for c in codings):
            issues.append(_error("code needs a v3-ActCode category coding", join(at, "code"), "required"))
        own = [c for c in codings if str(c.get("system", "")).startswith(f"{base}/CodeSystem/")]
        known = catalogue()
        code = own[0].get("code") if own else None
        if not own:
            issues.append(
                _error(
                    f"code needs a coding from {base}/CodeSystem/ns-classification or ns-finding",
                    join(at, "code"),
                    "required",
                )
            )
        elif code not in known or own[0]["system"] != f"{base}/CodeSystem/{known[code].system_id}":
            issues.append(_error(f"{own[0]['system']}|{code} is not a fhir-ns code", join(at, "code"), "code-invalid"))
        subject = res.get("patient") or res.get("subject")
        if not (isinstance(subject, dict) and subject.get("reference")):
            issues.append(_error("needs the patient it is about", join(at, "patient"), "required"))
        if not res.get("identifiedDateTime"):
            issues.append(
                _error("needs identifiedDateTime (the --as-of date)", join(at, "identifiedDateTime"), "required")
            )
        cited = [d for e in res.get("evidence") or [] if isinstance(e, dict) for d in e.get("detail") or []]
        if code != "insufficient-data" and not cited:
            issues.append(
                _error("needs evidence: the resources the finding rests on", join(at, "evidence"), "required")
            )
    elif rtype == "CarePlan":
        canonicals = res.get("instantiatesCanonical") or []
        issues += _check_ruleset(
            canonicals[0] if canonicals else None, base, rulesets, join(at, "instantiatesCanonical")
        )
        if res.get("status") not in PLAN_STATUSES:
            issues.append(
                _error(
                    f"status {res.get('status')!r}: a fhir-ns plan is a draft (or revoked when superseded)",
                    join(at, "status"),
                    "value",
                )
            )
        if res.get("intent") not in PLAN_INTENTS:
            issues.append(
                _error(
                    f"intent {res.get('intent')!r}: a fhir-ns plan is a proposal or an option",
                    join(at, "intent"),
                    "value",
                )
            )
        if not (isinstance(res.get("subject"), dict) and res["subject"].get("reference")):
            issues.append(_error("needs the patient it is for", join(at, "subject"), "required"))
        if not res.get("description"):
            issues.append(_error("needs a description saying why it is proposed", join(at, "description"), "required"))
        issues += _check_activities(res, at)
        for i, replaced in enumerate(res.get("replaces") or []):
            ident = replaced.get("identifier") if isinstance(replaced, dict) else None
            if not (
                isinstance(ident, dict) and ident.get("system") == f"{base}/identifier/CarePlan" and ident.get("value")
            ):
                issues.append(
                    _error(
                        f"names the plan it replaces by its identifier {base}/identifier/CarePlan",
                        join(at, f"replaces[{i}]"),
                        "required",
                    )
                )
    elif rtype == "Observation":
        issues += _check_measure(res, base, at)
    elif rtype == "Provenance":
        policies = [p for p in res.get("policy") or [] if RULESET.match(str(p))]
        issues += _check_ruleset(policies[0] if policies else None, base, rulesets, join(at, "policy"))
        if not res.get("target"):
            issues.append(_error("needs the resources it is the provenance of", join(at, "target"), "required"))
        if not res.get("recorded"):
            issues.append(_error("needs recorded", join(at, "recorded"), "required"))
        agents = [a for a in res.get("agent") or [] if isinstance(a, dict) and isinstance(a.get("who"), dict)]
        if not any(str(a["who"].get("reference", "")).startswith(("Device/", "urn:uuid:")) for a in agents):
            issues.append(_error("needs the fhir-ns Device as agent", join(at, "agent"), "required"))
    return issues


def _check_measure(res: dict[str, Any], base: str, at: str) -> list[Issue]:
    """A measure Observation (RULES.md §9): final, an ns-measure code, the patient, the period, and a UCUM quantity
    or (for the state) a state code of the same CodeSystem."""
    issues: list[Issue] = []
    system = f"{base}/CodeSystem/ns-measure"
    known = catalogue()
    if res.get("status") not in MEASURE_STATUSES:
        issues.append(
            _error(f"status {res.get('status')!r}: fhir-ns writes final (or cancelled)", join(at, "status"), "value")
        )
    codings = [c for c in (res.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
    own = [c for c in codings if c.get("system") == system]
    code = own[0].get("code") if own else None
    if not own:
        issues.append(_error(f"code needs a coding from {system}", join(at, "code"), "required"))
    elif code not in known or known[code].system_id != "ns-measure":
        issues.append(_error(f"{system}|{code} is not a fhir-ns measure", join(at, "code"), "code-invalid"))
    if not (isinstance(res.get("subject"), dict) and res["subject"].get("reference")):
        issues.append(_error("needs the patient it is about", join(at, "subject"), "required"))
    period = res.get("effectivePeriod")
    if not (isinstance(period, dict) and period.get("start") and period.get("end")):
        issues.append(_error("needs the period measured (start and end)", join(at, "effectivePeriod"), "required"))
    quantity, concept = res.get("valueQuantity"), res.get("valueCodeableConcept")
    if isinstance(quantity, dict):
        if quantity.get("system") != UCUM or not quantity.get("code") or quantity.get("value") is None:
            issues.append(_error("valueQuantity needs a value and a UCUM code", join(at, "valueQuantity"), "required"))
    elif isinstance(concept, dict):
        states = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("system") == system]
        if not states or states[0].get("code") not in known:
            issues.append(
                _error(f"valueCodeableConcept needs a state code from {system}", join(at, "valueCodeableConcept"))
            )
    else:
        issues.append(_error("needs a value: a UCUM quantity or a state code", join(at, "value[x]"), "required"))
    if not res.get("note"):
        issues.append(_error("needs a note with the sentence and the rule set", join(at, "note"), "required"))
    return issues


def _check_activities(res: dict[str, Any], at: str) -> list[Issue]:
    """Each activity not started, in progress or completed; one in progress or completed cites what shows it."""
    issues = []
    for i, activity in enumerate(res.get("activity") or []):
        if not isinstance(activity, dict):
            continue
        where = join(at, f"activity[{i}]")
        status = (activity.get("detail") or {}).get("status")
        if status not in ACTIVITY_STATUSES:
            issues.append(
                _error(
                    f"status {status!r}: a fhir-ns activity is {', '.join(sorted(ACTIVITY_STATUSES))}",
                    join(where, "detail.status"),
                    "value",
                )
            )
        elif status != "not-started" and not activity.get("outcomeReference"):
            issues.append(
                _error(f"is {status}: needs the resources that show it", join(where, "outcomeReference"), "required")
            )
    return issues


def _check_ruleset(canonical: Any, base: str, rulesets: dict[str, RuleSet], at: str) -> list[Issue]:
    match = RULESET.match(str(canonical or ""))
    if not match or match["base"] != base:
        return [_error(f"needs the rule set as {base}/ruleset/<id>|<version>, found {canonical!r}", at, "required")]
    ruleset = rulesets.get(match["id"])
    if ruleset is None:
        return [_error(f"rule set {match['id']!r} is not one fhir-ns knows", at, "not-found")]
    if ruleset.version != match["version"]:
        return [
            Issue(
                "warning",
                "business-rule",
                f"rule set {match['id']} is at version {ruleset.version}, not {match['version']}",
                "output-profile",
                at,
            )
        ]
    return []


def _check_request(res: dict[str, Any], request: Any, where: str) -> list[Issue]:
    at = join(where, "request")
    if not isinstance(request, dict):
        return [_error("a transaction entry needs a request", at, "required")]
    rtype = res["resourceType"]
    if rtype == "Provenance":
        expected = f"Provenance/{res.get('id')}"
        if request.get("method") != "PUT" or request.get("url") != expected:
            return [_error(f"Provenance is written with PUT {expected} (its id derives from its targets)", at)]
        return []
    identifier = next(i for i in res["identifier"] if IDENTIFIER.match(str(i.get("system", ""))))
    expected = f"{rtype}?identifier={identifier.get('system')}|{identifier.get('value')}"
    if request.get("method") != "PUT" or unquote(str(request.get("url", ""))) != expected:
        return [_error(f"needs a conditional update: PUT {expected}", at)]
    return []


def _check_provenance_links(res: dict[str, Any], kind_of: Callable[[str], str | None], at: str) -> list[Issue]:
    issues: list[Issue] = []
    for index, target in enumerate(res.get("target") or []):
        ref = target.get("reference") if isinstance(target, dict) else None
        if isinstance(ref, str) and ref.startswith("urn:uuid:") and kind_of(ref) is None:
            issues.append(_error(f"target {ref} is not in the Bundle", join(at, f"target[{index}]"), "not-found"))
    for index, agent in enumerate(res.get("agent") or []):
        ref = (agent.get("who") or {}).get("reference") if isinstance(agent, dict) else None
        if isinstance(ref, str) and ref.startswith("urn:uuid:") and kind_of(ref) != "Device":
            issues.append(
                _error(f"agent {ref} is not a Device in the Bundle", join(at, f"agent[{index}].who"), "not-found")
            )
    return issues
