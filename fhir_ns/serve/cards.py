"""A patient's result as CDS Hooks 2.0 cards: one `info` card with the category and its history, one `warning`
card per safety finding, each suggesting the DetectedIssue / CarePlan that `convert` writes for it.

Cards follow the CDS Hooks rules: summary under 140 characters, `detail` in markdown, no null or empty
optional field, `selectionBehavior` whenever there are suggestions, a `display` on every override reason.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from fhir_ns import __version__
from fhir_ns.catalogue import info
from fhir_ns.fhir.writer import DECISION_SUPPORT, V3_DISPLAY, Settings, device_entry, patient_entries
from fhir_ns.rules.result import Classification, Finding, PatientResult
from fhir_ns.terminology import builtin_mappings_dir, load_yaml

SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|])")


@dataclass(frozen=True, slots=True)
class Card:
    """A card ready to send (`json`, with its uuid) and its key: what it says and the evidence it rests on, so an
    overridden card can be recognised when it would be shown again."""

    key: str
    json: dict[str, Any]

    @property
    def uuid(self) -> str:
        return str(self.json["uuid"])


@cache
def override_reasons(canonical_base: str) -> tuple[dict[str, str], ...]:
    """The reasons offered when a warning is overridden (mappings/serve/override-reasons.yaml)."""
    data = load_yaml(builtin_mappings_dir() / "serve" / "override-reasons.yaml")
    system = f"{canonical_base}/CodeSystem/{data['system_id']}"
    return tuple({"system": system, "code": r["code"], "display": r["display"]} for r in data["reasons"])


def key_of(*parts: str) -> str:
    """A card's key: the same for the same statement on the same evidence."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def source(result: PatientResult) -> dict[str, Any]:
    label = (
        f"fhir-ns {__version__}, rule set {result.ruleset.ref}" if result.ruleset_applied else f"fhir-ns {__version__}"
    )
    return {"label": label}


@dataclass(frozen=True, slots=True)
class Written:
    """The transaction entries `convert` writes for a result: a DetectedIssue per classification and per finding
    (in the result's order), and the current (draft) CarePlans."""

    classifications: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    plans: list[dict[str, Any]]


def written(result: PatientResult, settings: Settings) -> Written:
    """What `convert` writes for the result, as transaction entries."""
    entries = patient_entries(result, settings, device_entry(settings)["fullUrl"])
    issues = [e for e in entries if e["resource"]["resourceType"] == "DetectedIssue"]
    plans = [e for e in entries if e["resource"]["resourceType"] == "CarePlan" and e["resource"]["status"] == "draft"]
    count = len(result.classifications)
    return Written(issues[:count], issues[count:], plans)


def patient_cards(result: PatientResult, settings: Settings, link: dict[str, str] | None) -> list[Card]:
    """The info card (with `link` to the timeline page, when given) and one warning card per finding."""
    out = written(result, settings)
    cards = [_info_card(result, out.classifications, out.plans, link)]
    cards.extend(finding_card(result, f, i, link, settings) for f, i in zip(result.findings, out.findings, strict=True))
    return cards


def _info_card(
    result: PatientResult,
    issues: list[dict[str, Any]],
    plans: list[dict[str, Any]],
    link: dict[str, str] | None,
) -> Card:
    current = current_category(result)
    display = info(current.code).display
    ruleset = f"{result.ruleset.id} {result.ruleset.version}" if result.ruleset_applied else "no rule set applied"
    summary = _summary(display, f" since {current.since} ({ruleset})")
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": "info",
        "detail": info_detail(result, current),
        "source": source(result),
    }
    actions = [
        _create(e, f"Record '{info(c.code).display}' since {c.since} (DetectedIssue)")
        for c, e in zip(result.classifications, issues, strict=True)
    ]
    actions += [_create(e, f"Propose the care plan '{e['resource']['title']}' (CarePlan)") for e in plans]
    if actions:
        _linked(actions)
        label = "Record the classification" + (" and the proposed care plan" if plans else "") + " in the chart"
        card["suggestions"] = [{"label": label, "uuid": str(uuid.uuid4()), "actions": actions}]
        card["selectionBehavior"] = "at-most-one"
    if link is not None:
        card["links"] = [link]
    evidence = sorted({s for c in result.classifications for s in c.evidence})
    codes = [f"{c.code}@{c.since}" for c in result.classifications]
    return Card(key_of("info", result.ruleset.ref, *codes, *evidence), card)


def finding_card(
    result: PatientResult,
    finding: Finding,
    issue: dict[str, Any],
    link: dict[str, str] | None,
    settings: Settings,
    summary_prefix: str = "",
) -> Card:
    """One warning card for a safety finding, with override reasons and the DetectedIssue `convert` writes."""
    display = info(finding.code).display
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary_prefix + display, f" since {finding.since}"),
        "indicator": "warning",
        "detail": finding_detail(result, finding),
        "source": source(result),
    }
    action = _create(issue, f"Record '{display}' since {finding.since} (DetectedIssue)")
    card["suggestions"] = [
        {"label": "Record this finding in the chart", "uuid": str(uuid.uuid4()), "actions": [action]}
    ]
    card["selectionBehavior"] = "at-most-one"
    card["overrideReasons"] = [dict(r) for r in override_reasons(settings.canonical_base)]
    if link is not None:
        card["links"] = [link]
    # an order warning is its own card: overriding a finding on patient-view does not silence it at the order
    kind = "order" if summary_prefix else "finding"
    return Card(key_of(kind, finding.code, result.ruleset.ref, str(finding.since), *sorted(finding.evidence)), card)


def refused_card(patient_id: str, why: str) -> Card:
    """The card for a record fhir-ns cannot read soundly: no conclusion, and why."""
    card = {
        "uuid": str(uuid.uuid4()),
        "summary": "fhir-ns cannot classify this patient: the record's data has errors",
        "indicator": "info",
        "detail": f"No classification is made from a record fhir-ns cannot read soundly: {_md(why)}\n\n_{DECISION_SUPPORT}_",
        "source": {"label": f"fhir-ns {__version__}"},
    }
    return Card(key_of("refused", patient_id, why), card)


def current_category(result: PatientResult) -> Classification:
    """The category that stands now: the latest by since-date (the last of equals, as the rules list them)."""
    return max(reversed(result.classifications), key=lambda c: c.since)


def info_detail(result: PatientResult, current: Classification) -> str:
    """The markdown of the info card: the current category, its history with the numbers, the evidence."""
    lines = [
        f"**{_md(info(current.code).display)}** since {current.since}, as of {result.as_of}. "
        + (
            f"Rule set `{result.ruleset.ref}` ({_md(result.ruleset_choice)})."
            if result.ruleset_applied
            else "No rule set could be applied."
        ),
        "",
        "**History**",
        "",
    ]
    for c in result.classifications:
        pending = f" (decided on {c.revisit_on})" if c.revisit_on else ""
        lines.append(f"- {c.since}: **{_md(info(c.code).display)}**{pending}: {_md(c.reason)}.{_evidence(c.evidence)}")
    if result.findings:
        lines += ["", f"**Safety findings**: {len(result.findings)}, each on its own card."]
    for note in result.notes:
        lines += ["", f"Note: {_md(note)}"]
    if result.incomplete_input:
        lines += ["", _md(result.incomplete_input)]
    if result.revisit_on:
        lines += ["", f"The answer may change on {result.revisit_on} without new data (a window closes)."]
    lines += ["", f"_{DECISION_SUPPORT}_"]
    return "\n".join(lines)


def finding_detail(result: PatientResult, finding: Finding) -> str:
    """The markdown of a warning card: the finding's sentence with its numbers, what it implicates, its evidence."""
    category = V3_DISPLAY.get(finding.category, finding.category).lower()
    lines = [
        f"**{_md(info(finding.code).display)}** since {finding.since} ({finding.severity} severity; {category}): "
        f"{_md(finding.reason)}.{_evidence(finding.evidence)}",
    ]
    if finding.implicated:
        lines += ["", "Implicated: " + ", ".join(f"`{s}`" for s in finding.implicated) + "."]
    lines += ["", f"Rule set `{result.ruleset.ref}`. _{DECISION_SUPPORT}_"]
    return "\n".join(lines)


def _evidence(sources: Sequence[str]) -> str:
    return (" Evidence: " + ", ".join(f"`{s}`" for s in sources) + ".") if sources else ""


def _summary(head: str, tail: str) -> str:
    """`head` + `tail` in fewer than 140 characters, shortening the head (never the dates and names of the tail)."""
    room = SUMMARY_MAX - len(tail)
    if len(head) > room:
        head = head[: room - 1].rstrip() + "…"
    return head + tail


def _md(text: str) -> str:
    """Plain text made safe inside markdown (no accidental emphasis, links or HTML)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _create(entry: dict[str, Any], description: str) -> dict[str, Any]:
    """A `create` action for one resource of the writer's transaction, with the id its urn:uuid gives it."""
    resource = orjson.loads(orjson.dumps(entry["resource"]))
    resource["id"] = entry["fullUrl"].removeprefix("urn:uuid:")
    return {"type": "create", "description": description, "resource": resource}


def _linked(actions: list[dict[str, Any]]) -> None:
    """Within one suggestion, references by urn:uuid become `Type/id` of the resource created beside it; a
    reference to one not created there keeps only its identifier."""
    created = {
        f"urn:uuid:{a['resource']['id']}": f"{a['resource']['resourceType']}/{a['resource']['id']}" for a in actions
    }
    for action in actions:
        for ref in action["resource"].get("supportingInfo", ()):
            target = ref.get("reference", "")
            if target.startswith("urn:uuid:"):
                if target in created:
                    ref["reference"] = created[target]
                else:
                    del ref["reference"]
