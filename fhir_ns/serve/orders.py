"""Order hooks: warnings about the drugs in `draftOrders`, from the findings of the record plus the order.

The draft orders are read as the treatment about to be given (fhir/extract.py, `planned`), added to the
patient's record, and the record evaluated by the same rules as every other door (pipeline.py); a
finding of mappings/serve/order-checks.yaml warns when it stands at the moment of the order (as the table
says for the drug class ordered); any other finding warns when it names the draft order itself (a dose
out of range with the order counted). No threshold is repeated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from fhir_ns.fhir.extract import FactCollector
from fhir_ns.fhir.problems import Location
from fhir_ns.fhir.reader import Entry
from fhir_ns.pipeline import Config
from fhir_ns.rules.result import Finding, PatientResult
from fhir_ns.terminology import builtin_mappings_dir, load_yaml
from fhir_ns.timeline.model import DrugExposure
from fhir_ns.timeline.timeline import Timeline

ORDERABLE = ("MedicationRequest",)


@cache
def order_checks() -> dict[str, dict[str, Any]]:
    """Drug class -> finding code -> when it stands (mappings/serve/order-checks.yaml)."""
    data = load_yaml(builtin_mappings_dir() / "serve" / "order-checks.yaml")
    return {str(k): dict(v) for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class DraftOrders:
    """The draft orders of a call that fhir-ns checks: the resources as sent, and the exposures they mean."""

    resources: list[dict[str, Any]]
    exposures: list[DrugExposure]

    @property
    def sources(self) -> set[str]:
        return {e.source for e in self.exposures}

    def ends(self) -> date | None:
        """The last day any checked order runs to, when the orders say."""
        return max((e.end for e in self.exposures if e.end is not None), default=None)


def checked_drafts(draft_orders: Any, config: Config, selections: Any = None) -> DraftOrders:
    """The draft MedicationRequests whose drug is of a class with order checks, read with no I/O; with
    `selections` (order-select: the orders just selected, as `MedicationRequest/id`), only those: the
    others were checked when they were selected."""
    bundle = draft_orders if isinstance(draft_orders, dict) else {}
    resources = [
        e["resource"] if e["resource"].get("id") else {**e["resource"], "id": f"draft-{index}"}  # a draft may have none
        for index, e in enumerate(bundle.get("entry") or ())
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") in ORDERABLE
    ]
    if isinstance(selections, list) and selections:
        chosen = {str(s) for s in selections}
        resources = [r for r in resources if f"{r['resourceType']}/{r['id']}" in chosen]
    if not resources:
        return DraftOrders([], [])
    collector = FactCollector(config.terminology, [], planned=True)
    for index, resource in enumerate(resources):
        collector.add(Entry(resource, Location("draftOrders", index)))
    checks = order_checks()
    exposures = [e for p in collector.patients() for e in p.facts.exposures if e.drug_class in checks]
    sources = {e.source for e in exposures}
    kept = [r for r in resources if f"MedicationRequest/{r.get('id')}" in sources]
    return DraftOrders(kept, exposures)


def order_findings(
    timeline: Timeline, result: PatientResult, drafts: DraftOrders
) -> list[tuple[DrugExposure, Finding]]:
    """Each finding that warns against one of the draft orders, with that order."""
    out: list[tuple[DrugExposure, Finding]] = []
    checks = order_checks()
    for finding in result.findings:
        for order in drafts.exposures:
            when = checks[order.drug_class].get(finding.code)
            named = order.source in finding.implicated
            if _stands(when, finding, order, timeline) if when is not None else named:
                out.append((order, finding))
                break
    return out


def _stands(when: Any, finding: Finding, order: DrugExposure, tl: Timeline) -> bool:
    """Whether a finding of the order-checks table stands when the order starts. (Naming the order is not
    enough for the others: a trough or creatinine finding names every exposure to the drug.)"""
    if when == "with-order":
        return order.source in finding.implicated
    if when == "condition-active":
        return any(c.source in finding.evidence and c.active_on(order.start) for c in tl.conditions)
    concept = f"{order.drug}-level" if when["latest"] == "level" else when["latest"]
    values = [m for m in tl.measurements.get(concept, ()) if m.on <= order.start]
    return bool(values) and values[-1].source in finding.evidence


def with_drafts(
    resources: Iterable[tuple[str, dict[str, Any]]], drafts: DraftOrders
) -> list[tuple[str, dict[str, Any]]]:
    """The patient's resources and the draft orders, as one input."""
    return [*resources, *(("draftOrders", r) for r in drafts.resources)]
