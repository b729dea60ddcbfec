"""The episode model's input facts: small typed values in canonical units, no FHIR.

Every fact keeps `source`, the reference of the resource it came from ("Observation/123"), so any
conclusion drawn from it can cite its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured value, converted to the canonical unit of its unit family.

    `concept` names what was measured (see mappings/concepts.yaml); for a dipstick `value` is the
    grade's index in mappings/dipstick.yaml and `unit` is "grade".
    """

    concept: str
    on: date
    value: float
    unit: str
    source: str


@dataclass(frozen=True, slots=True)
class DrugExposure:
    """A period on a drug, with its mean daily dose.

    `daily_dose` is per day in `dose_basis` ("mg", "mg/kg" or "mg/m2"); alternate-day regimens keep
    the per-administration dose halved here and `alternate_day` set. `end` is the last day taken,
    inclusive; None means still taking it at the evaluation date. `single_administration` marks one
    dose on one day (a pulse or an infusion).
    """

    drug: str
    drug_class: str
    start: date
    end: date | None
    daily_dose: float | None
    dose_basis: str
    source: str
    alternate_day: bool = False
    route: str | None = None
    single_administration: bool = False
    matched_by_name: bool = False

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class ConditionFact:
    """A diagnosis mapped to concepts (nephrotic-syndrome, histology-fsgs, peptic-ulcer...)."""

    concepts: frozenset[str]
    onset: date | None
    abatement: date | None
    active: bool
    source: str

    def active_on(self, day: date) -> bool:
        if self.onset is not None and day < self.onset:
            return False
        if self.abatement is not None:
            return day < self.abatement
        return self.active


@dataclass(frozen=True, slots=True)
class GeneticResult:
    """A variant assessment: the genes' concepts named in it, and whether it was called pathogenic."""

    gene_concepts: frozenset[str]
    genes: tuple[str, ...]
    pathogenic: bool
    on: date
    source: str


@dataclass(slots=True)
class PatientFacts:
    """Everything read about one patient, before any clinical interpretation."""

    patient_id: str
    reference: str
    birth_date: date | None = None
    sex: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    exposures: list[DrugExposure] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    genetics: list[GeneticResult] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def sort(self) -> None:
        self.measurements.sort(key=lambda m: (m.on, m.concept, m.source))
        self.exposures.sort(key=lambda e: (e.start, e.drug, e.source))
