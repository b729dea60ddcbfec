"""What a FHIR server says it can do (its CapabilityStatement), and whether that is enough for a sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READ_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Medication",
    "Procedure",
    "AllergyIntolerance",
)
WRITE_TYPES = ("DetectedIssue", "CarePlan", "Observation", "Provenance", "Device")
CONDITIONAL = ("DetectedIssue", "CarePlan", "Observation", "Device")  # written by conditional update on identifier
# The patient-scoped search parameter of each read type (FHIR R4 defines `patient` on all of them)
PATIENT_PARAM = {
    "Condition": "patient",
    "Observation": "patient",
    "MedicationStatement": "patient",
    "MedicationRequest": "patient",
    "MedicationAdministration": "patient",
    "Procedure": "patient",
    "AllergyIntolerance": "patient",
}


@dataclass(slots=True)
class Capabilities:
    fhir_version: str
    interactions: dict[str, set[str]] = field(default_factory=dict)
    search_params: dict[str, set[str]] = field(default_factory=dict)
    conditional_update: dict[str, bool] = field(default_factory=dict)
    system_interactions: set[str] = field(default_factory=set)

    @classmethod
    def from_statement(cls, statement: dict[str, Any]) -> Capabilities:
        caps = cls(str(statement.get("fhirVersion", "")))
        for rest in statement.get("rest", []):
            if rest.get("mode", "server") != "server":
                continue
            caps.system_interactions |= {i.get("code") for i in rest.get("interaction", []) if i.get("code")}
            common = {p.get("name") for p in rest.get("searchParam", []) if p.get("name")}
            for resource in rest.get("resource", []):
                rtype = resource.get("type")
                caps.interactions[rtype] = {i.get("code") for i in resource.get("interaction", []) if i.get("code")}
                caps.search_params[rtype] = common | {p.get("name") for p in resource.get("searchParam", [])}
                caps.conditional_update[rtype] = bool(resource.get("conditionalUpdate"))
        return caps

    def can_search(self, rtype: str, param: str | None = None) -> bool:
        if "search-type" not in self.interactions.get(rtype, set()):
            return False
        return param is None or param in self.search_params.get(rtype, set())

    def last_updated(self, rtype: str) -> bool:
        """Whether `_lastUpdated` may be used on this type: only where the server declares it."""
        return self.can_search(rtype, "_lastUpdated")

    def read_problems(self) -> tuple[list[str], list[str]]:
        """(what makes reading impossible, read types the server does not offer and that will be skipped)."""
        fatal: list[str] = []
        skipped: list[str] = []
        if "read" not in self.interactions.get("Patient", set()):
            fatal.append("cannot read Patient")
        for rtype, param in PATIENT_PARAM.items():
            if not self.can_search(rtype, param):
                (fatal if rtype in ("Observation", "Condition") else skipped).append(
                    f"cannot search {rtype} by {param}"
                )
        return fatal, skipped

    def write_problems(self) -> list[str]:
        """Why the server cannot take fhir-ns's write-back (empty when it can)."""
        problems = []
        if "transaction" not in self.system_interactions:
            problems.append("no transaction interaction")
        for rtype in WRITE_TYPES:
            have = self.interactions.get(rtype, set())
            if not {"create", "update"} <= have:
                problems.append(f"cannot create and update {rtype}")
            elif rtype in CONDITIONAL and not self.conditional_update.get(rtype):
                problems.append(f"no conditional update on {rtype}")
            elif rtype in CONDITIONAL and not self.can_search(rtype, "identifier"):
                problems.append(f"cannot search {rtype} by identifier (needed by conditional update)")
        return problems
