"""What the rules conclude about a patient: classifications, findings, notes, each with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_ns.ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class Classification:
    """A category met (ns-classification code), since when, why in one sentence, and on what evidence; a
    pending one (`response-pending`, `srns-pending-confirmation`) also says when it will be decided."""

    code: str
    since: date
    reason: str
    evidence: tuple[str, ...]
    revisit_on: date | None = None  # a pending category: the day its window closes and it is decided

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "since": self.since.isoformat(),
            "reason": self.reason,
            "evidence": list(self.evidence),
        }
        if self.revisit_on is not None:
            out["revisit_on"] = self.revisit_on.isoformat()
        return out


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


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure of relapse burden or treatment response (RULES.md §9) over a period of the patient's course.

    `code` is an ns-measure code; `therapy` the steroid-sparing regimen of the period ("tacrolimus+mizoribine"),
    None for the period before any; `value` in `unit` (UCUM: "1", "/a", "mg/kg", "d"; a state is a code with no
    unit); `reason` the one sentence with the numbers. A time-to-event measure says whether it was `censored`
    (no event by the period's end: the value is then the days observed).
    """

    code: str
    start: date
    end: date
    therapy: str | None
    value: float | int | str | None
    unit: str | None
    evidence: tuple[str, ...]
    reason: str
    censored: bool | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "period": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "therapy": self.therapy,
            "value": self.value,
            "unit": self.unit,
            "evidence": list(self.evidence),
            "reason": self.reason,
        }
        if self.censored is not None:
            out["censored"] = self.censored
        return out


@dataclass(frozen=True, slots=True)
class ProposedActivity:
    """One activity of a proposed plan, with where the record already stands on it."""

    text: str
    source: str
    status: str  # not-started | in-progress | completed
    evidence: str = ""  # the sentence saying why it is in progress or done ("on cyclosporine since 2022-04-18")
    sources: tuple[str, ...] = ()  # the resources that show it

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "status": self.status,
            "evidence": self.evidence,
            "sources": list(self.sources),
        }


@dataclass(frozen=True, slots=True)
class OmittedActivity:
    """An activity left out of a plan because something on the record contraindicates it."""

    text: str
    reason: str
    sources: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "reason": self.reason, "sources": list(self.sources)}


@dataclass(frozen=True, slots=True)
class Proposal:
    """A care plan proposed for the patient: its template, the category that triggered it (None: supportive
    care), whether it is current (`draft`) or superseded (`revoked`, with the category that superseded it),
    the templates of the plans it replaces, and its activities as they stand on the record."""

    template: str
    title: str
    intent: str  # proposal | option
    trigger: Classification | None
    status: str  # draft | revoked
    activities: tuple[ProposedActivity, ...]
    omitted: tuple[OmittedActivity, ...] = ()
    notes: tuple[str, ...] = ()
    superseded_by: Classification | None = None
    replaces: tuple[str, ...] = ()  # template ids of this patient's revoked plans that this one replaces

    def as_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "title": self.title,
            "intent": self.intent,
            "trigger": None if self.trigger is None else {"code": self.trigger.code, "since": str(self.trigger.since)},
            "status": self.status,
            "superseded_by": (
                None
                if self.superseded_by is None
                else {"code": self.superseded_by.code, "since": str(self.superseded_by.since)}
            ),
            "replaces": list(self.replaces),
            "activities": [a.as_json() for a in self.activities],
            "omitted": [a.as_json() for a in self.omitted],
            "notes": list(self.notes),
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
    unreadable_skipped: int = 0  # input records that could not be read and may be this patient's (--skip-unreadable)
    proposals: list[Proposal] = field(default_factory=list)  # the care plans, as they stand on the record
    ruleset_applied: bool = True  # False: no rule set could be chosen (`ruleset` is then only the default)
    warnings: list[str] = field(default_factory=list)  # about the evaluation itself, reported with the input problems
    measures: list[Measure] = field(default_factory=list)  # relapse burden and treatment response (RULES.md §9)

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
            "proposals": [p.as_json() for p in self.proposals],
            "measures": [m.as_json() for m in self.measures],
        } | ({"unreadable_records_skipped": self.unreadable_skipped} if self.unreadable_skipped else {})

    @property
    def incomplete_input(self) -> str:
        """The sentence that marks a result evaluated with unreadable input skipped ('' when none was)."""
        if not self.unreadable_skipped:
            return ""
        return (
            f"Evaluated with {self.unreadable_skipped} unreadable input record(s) skipped (--skip-unreadable): "
            "the patient's record may be incomplete."
        )
