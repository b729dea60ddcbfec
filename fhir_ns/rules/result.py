"""What the rules conclude about a patient: classifications, findings, notes, each with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_ns.ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class Classification:
    """A category met (ns-classification code), since when, why in one sentence, and on what evidence."""

    code: str
    since: date
    reason: str
    evidence: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "since": self.since.isoformat(),
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """A safety or monitoring finding (ns-finding code) with its severity and v3-ActCode category."""

    code: str
    severity: str  # high | moderate | low
    category: str  # v3-ActCode: LAB, COND, DOSELINDSA ...
    since: date
    reason: str
    evidence: tuple[str, ...]
    implicated: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "category": self.category,
            "since": self.since.isoformat(),
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(slots=True)
class PatientResult:
    patient_id: str
    patient_reference: str
    ruleset: RuleSet
    as_of: date
    ruleset_choice: str
    classifications: list[Classification] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conditions: tuple[str, ...] = ()  # the nephrotic-syndrome Conditions, for CarePlan.addresses
    revisit_on: date | None = None  # when the answer may change with no new data (a window closes)
    ruleset_applied: bool = True  # False: no rule set could be chosen (`ruleset` is then only the default)
    warnings: list[str] = field(default_factory=list)  # about the evaluation itself, reported with the input problems

    def revisit(self, day: date) -> None:
        """Note that the answer may change on `day` even if no new data arrive."""
        if day > self.as_of and (self.revisit_on is None or day < self.revisit_on):
            self.revisit_on = day

    def has(self, code: str) -> bool:
        return any(c.code == code for c in self.classifications)

    def first(self, code: str) -> Classification | None:
        return next((c for c in self.classifications if c.code == code), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient_id,
            "ruleset": self.ruleset.ref if self.ruleset_applied else None,
            "ruleset_choice": self.ruleset_choice,
            "as_of": self.as_of.isoformat(),
            "classifications": [c.as_json() for c in self.classifications],
            "findings": [f.as_json() for f in self.findings],
            "notes": list(self.notes),
            "revisit_on": self.revisit_on.isoformat() if self.revisit_on else None,
        }
